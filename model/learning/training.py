"""The older training recipes on LFW DevTrain (identity-disjoint from every test list).

The shipped network is distilled from a teacher (``distill.py``); these two recipes
train without one, as baselines, and save the same format (cosine Siamese model with a
cohort, open-set rule calibrated on DevTrain):

- ``compact``: the embedding tower is trained as an identity classifier with a
  large-margin cosine softmax (CosFace) over every peopleDevTrain identity.
- ``koch`` (the seed design): the whole Siamese network trained end to end on random
  pairs with binary cross-entropy, Adam 1e-4, batch 16, for a fixed CPU time budget.

Why every DevTrain identity, including the 2,854 with a single photo: what a face
embedding has to learn is to tell *people* apart, and the number of identities
matters more than photos per identity. A one-photo class still acts as a negative
prototype for all the others (and, through augmentation, teaches some invariance).

Checkpoints are written after every epoch to ``checkpoint_dir`` (the whole training
model, optimizer included), so an interrupted run started again with the same
arguments resumes at the next epoch. Library code never prints: pass ``progress``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from model.core import network
from model.core.files import atomic_save, atomic_write_text
from model.core.recognizer import save_recognizer


@dataclass(frozen=True)
class TrainProgress:
    """One progress report. ``stage`` is one of "data", "embedding", "pairs", "head",
    "threshold", "save"; ``done``/``total`` count epochs (or steps) of that stage;
    ``loss`` is the latest training loss when there is one."""

    stage: str
    done: int
    total: int
    loss: float | None = None
    accuracy: float | None = None
    message: str = ""


ProgressFn = Callable[[TrainProgress], None]

@dataclass(frozen=True)
class TrainConfig:
    """Knobs of a training run (recorded in the sidecar, so runs are reproducible).

    epochs: passes over the DevTrain photos (compact) or of ``koch_steps_per_epoch``
        steps (koch). time_budget_s stops earlier when set (checked every step).
    margin, scale: CosFace margin (0.3: larger = tighter clusters, harder to fit) and
        logit scale (30 suits a few thousand classes).
    """

    architecture: str = network.DEFAULT_ARCHITECTURE
    epochs: int = 40
    batch_size: int = 128
    learning_rate: float = 2e-3
    weight_decay: float = 5e-4
    margin: float = 0.30
    scale: float = 30.0
    min_images_per_class: int = 1
    width: int = 32
    input_size: int | None = None
    embedding_dim: int = 128
    koch_steps_per_epoch: int = 100
    time_budget_s: float | None = None
    seed: int = 0

    @property
    def size(self) -> int:
        return self.input_size or network.INPUT_SIZES[self.architecture]


@dataclass(frozen=True)
class TrainResult:
    """What a run produced: the saved path, per-epoch losses, the wall-clock seconds
    spent and the model card written."""

    model_path: Path
    losses: list[float]
    seconds: float
    card: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- data

def devtrain_data(aligned: Any, people: list[tuple[str, int]], size: int,
                  min_images: int = 1) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Network-size uint8 images and int32 class labels of the DevTrain people.

    Only people with at least ``min_images`` photos become classes. Returns
    ``(images [n, size, size, 3] uint8, labels [n] int32, class_names)``.
    """
    keep = [name for name, count in people if count >= min_images]
    rows = aligned.rows(keep)
    names = aligned.names[rows]
    classes = sorted(set(names.tolist()))
    index = {n: i for i, n in enumerate(classes)}
    labels = np.array([index[n] for n in names], dtype=np.int32)
    images = network.resize_faces(aligned.crops[rows], size).round().astype(np.uint8)
    return images, labels, classes


def build_augmenter(seed: int = 0) -> Any:
    """Training-time augmentation (inactive at inference): mirror, +-8 degrees, +-10%
    scale, +-6% shift, brightness and contrast +-20%. Small, because crops are aligned."""
    import keras
    from keras import layers

    return keras.Sequential([
        layers.RandomFlip("horizontal", seed=seed),
        layers.RandomRotation(8 / 360, fill_mode="reflect", seed=seed + 1),
        layers.RandomZoom(0.1, fill_mode="reflect", seed=seed + 2),
        layers.RandomTranslation(0.06, 0.06, fill_mode="reflect", seed=seed + 3),
        layers.RandomBrightness(0.2, value_range=(0.0, 255.0), seed=seed + 4),
        layers.RandomContrast(0.2, seed=seed + 5),
    ], name="augment")


# ------------------------------------------------------------------ checkpoints

class _Checkpoint:
    """Saves the whole training model after each epoch (atomically) and resumes from it."""

    def __init__(self, directory: Path | None, config: TrainConfig) -> None:
        self.directory = directory
        self.config = config

    @property
    def _model_path(self) -> Path:
        assert self.directory is not None
        return self.directory / "train_state.keras"

    @property
    def _state_path(self) -> Path:
        assert self.directory is not None
        return self.directory / "train_state.json"

    def resume_or(self, build: Callable[[], Any]) -> tuple[Any, int, float, dict[str, Any]]:
        """``(model, first epoch, seconds spent, history)``: from the checkpoint when there is
        a compatible one, else a fresh model from ``build()`` starting at epoch 0."""
        resumed = self.load()
        if resumed is None:
            return build(), 0, 0.0, {"loss": [], "accuracy": []}
        model, state = resumed
        history = state["history"]
        history.setdefault("seconds", [round(state["seconds"], 1)])
        return model, state["epoch"], state["seconds"], history

    def load(self) -> tuple[Any, dict[str, Any]] | None:
        """The saved training model and its state, if a compatible checkpoint exists."""
        import keras

        if self.directory is None or not self._state_path.is_file():
            return None
        state = json.loads(self._state_path.read_text())
        if state.get("config") != asdict(self.config):
            return None
        return keras.saving.load_model(self._model_path, compile=True), state

    def save(self, model: Any, state: dict[str, Any]) -> None:
        if self.directory is None:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        atomic_save(self._model_path, model.save, suffix=".keras")
        atomic_write_text(self._state_path, json.dumps({**state, "config": asdict(self.config)}))

    def clear(self) -> None:
        if self.directory is None:
            return
        for path in (self._model_path, self._state_path):
            if path.exists():
                path.unlink()


def _callbacks(checkpoint: _Checkpoint, config: TrainConfig, progress: ProgressFn | None,
               stage: str, history: dict[str, list[float]], spent_before: float) -> list[Any]:
    import keras

    started = time.monotonic()

    class Reporter(keras.callbacks.Callback):
        def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            budget = config.time_budget_s
            if budget is not None and spent_before + time.monotonic() - started >= budget:
                self.model.stop_training = True

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            logs = logs or {}
            loss = float(logs.get("loss", float("nan")))
            acc = float(logs.get("accuracy", logs.get("binary_accuracy", float("nan"))))
            history["loss"].append(loss)
            history["accuracy"].append(acc)
            spent = spent_before + time.monotonic() - started
            history.setdefault("seconds", []).append(round(spent, 1))
            checkpoint.save(self.model, {"epoch": epoch + 1, "seconds": spent, "history": history})
            if progress is not None:
                progress(TrainProgress(stage, epoch + 1, config.epochs, loss, acc,
                                       f"epoch {epoch + 1}/{config.epochs} loss {loss:.4f} "
                                       f"acc {acc:.3f} ({spent:.0f} s)"))

    return [Reporter()]


# ----------------------------------------------------------------- the compact

def _new_classifier(config: TrainConfig, labels: np.ndarray, steps: int) -> Any:
    """A fresh, compiled CosFace training model for ``labels``' identities."""
    model, _ = build_compact_trainer(config, int(labels.max()) + 1)
    _compile_classifier(model, config, steps)
    return model


def build_compact_trainer(config: TrainConfig, num_classes: int) -> tuple[Any, Any]:
    """(training model [image, label] -> CosFace logits, the backbone it trains)."""
    import keras

    backbone = network.build_compact_backbone(config.size, config.embedding_dim, config.width)
    image = keras.Input((config.size, config.size, 3), name="image")
    label = keras.Input((), dtype="int32", name="label")
    x = build_augmenter(config.seed)(image)
    logits = network.CosFaceLogits(num_classes, config.scale, config.margin,
                                   name="cosface")(backbone(x), label)
    model = keras.Model([image, label], logits, name="cosface_trainer")
    return model, backbone


def _compile_classifier(model: Any, config: TrainConfig, steps_per_epoch: int) -> None:
    import keras

    warmup = steps_per_epoch
    total = max(config.epochs * steps_per_epoch, warmup + 1)
    schedule = keras.optimizers.schedules.CosineDecay(
        config.learning_rate / 10, total - warmup, alpha=0.01,
        warmup_target=config.learning_rate, warmup_steps=warmup)
    model.compile(optimizer=keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])


def train_embedding(images: np.ndarray, labels: np.ndarray, config: TrainConfig, *,
                    checkpoint_dir: str | Path | None = None,
                    progress: ProgressFn | None = None) -> tuple[Any, dict[str, list[float]]]:
    """Train the compact backbone with CosFace on ``images`` (uint8) / ``labels`` (int).

    Returns ``(backbone, history)``; history holds per-epoch "loss" and "accuracy".
    Resumes from ``checkpoint_dir`` when it holds a checkpoint of the same config.
    """
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(config.seed)
    checkpoint = _Checkpoint(Path(checkpoint_dir) if checkpoint_dir else None, config)
    steps = max(1, len(images) // config.batch_size)
    model, start, spent, history = checkpoint.resume_or(lambda: _new_classifier(config, labels, steps))
    backbone = model.get_layer("backbone")
    over_budget = config.time_budget_s is not None and spent >= config.time_budget_s
    if start < config.epochs and not over_budget:
        data = (tf.data.Dataset.from_tensor_slices((images, labels))
                .shuffle(len(images), seed=config.seed, reshuffle_each_iteration=True)
                .batch(config.batch_size, drop_remainder=True)
                .map(lambda x, y: ((tf.cast(x, "float32"), y), y),
                     num_parallel_calls=tf.data.AUTOTUNE)
                .prefetch(tf.data.AUTOTUNE))
        model.fit(data, epochs=config.epochs, initial_epoch=start, verbose=0, shuffle=False,
                  callbacks=_callbacks(checkpoint, config, progress, "embedding", history, spent))
    return backbone, history


# -------------------------------------------------------------------- the koch

def _random_pairs(labels: np.ndarray, count: int, rng: np.random.Generator
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``count`` index pairs, half same-person, half different-person, shuffled."""
    by_class: dict[int, np.ndarray] = {}
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        if len(members) >= 2:
            by_class[int(c)] = members
    multi = np.array(sorted(by_class))
    half = count // 2
    a = np.empty(count, dtype=np.int64)
    b = np.empty(count, dtype=np.int64)
    for i, c in enumerate(rng.choice(multi, half)):
        a[i], b[i] = rng.choice(by_class[int(c)], 2, replace=False)
    n_neg = count - half
    a[half:] = rng.integers(0, len(labels), n_neg)
    b[half:] = rng.integers(0, len(labels), n_neg)
    clash = labels[a[half:]] == labels[b[half:]]
    while clash.any():
        b[half:][clash] = rng.integers(0, len(labels), int(clash.sum()))
        clash = labels[a[half:]] == labels[b[half:]]
    same = np.concatenate([np.ones(half), np.zeros(n_neg)]).astype(np.float32)
    order = rng.permutation(count)
    return a[order], b[order], same[order]


def build_koch_trainer(config: TrainConfig) -> tuple[Any, Any]:
    """(training model: augment both faces, then the siamese; the siamese itself)."""
    import keras

    siamese = network.build_siamese(network.build_koch_embedding(config.size))
    face_a = keras.Input((config.size, config.size, 3), name="face_a")
    face_b = keras.Input((config.size, config.size, 3), name="face_b")
    augment = build_augmenter(config.seed)
    out = siamese([augment(face_a), augment(face_b)])
    model = keras.Model([face_a, face_b], out, name="pair_trainer")
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate),
                  loss="binary_crossentropy", metrics=["accuracy"])
    return model, siamese


def train_pairs(images: np.ndarray, labels: np.ndarray, config: TrainConfig, *,
                checkpoint_dir: str | Path | None = None,
                progress: ProgressFn | None = None) -> tuple[Any, dict[str, list[float]]]:
    """Train the koch Siamese network end to end on random pairs (binary cross-entropy).

    Returns ``(siamese, history)``. Pairs are drawn afresh per epoch (seeded by epoch).
    """
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(config.seed)
    checkpoint = _Checkpoint(Path(checkpoint_dir) if checkpoint_dir else None, config)
    model, start, spent, history = checkpoint.resume_or(lambda: build_koch_trainer(config)[0])
    siamese = model.get_layer("siamese")
    over_budget = config.time_budget_s is not None and spent >= config.time_budget_s
    if start < config.epochs and not over_budget:
        count = config.koch_steps_per_epoch * config.batch_size
        rng = np.random.default_rng(config.seed)
        a, b, same = _random_pairs(labels, count * (config.epochs - start), rng)
        table = tf.constant(images)
        data = (tf.data.Dataset.from_tensor_slices((a, b, same))
                .batch(config.batch_size, drop_remainder=True)
                .map(lambda i, j, y: ((tf.cast(tf.gather(table, i), "float32"),
                                       tf.cast(tf.gather(table, j), "float32")), y))
                .prefetch(tf.data.AUTOTUNE))
        model.fit(data, epochs=config.epochs, initial_epoch=start, verbose=0, shuffle=False,
                  steps_per_epoch=config.koch_steps_per_epoch,
                  callbacks=_callbacks(checkpoint, config, progress, "embedding", history, spent))
    return siamese, history


# ------------------------------------------------------------ head, threshold

def embed_faces(embedding: Any, crops: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Embeddings (float32 [n, d]) of aligned uint8 crops [n, 112, 112, 3] (any square size)."""
    size = network.input_size_of(embedding)
    chunks = []
    for begin in range(0, len(crops), batch_size):
        x = network.resize_faces(crops[begin:begin + batch_size], size)
        chunks.append(np.asarray(embedding(x, training=False), dtype=np.float32))
    if not chunks:
        return np.zeros((0, int(embedding.outputs[0].shape[-1])), dtype=np.float32)
    return np.concatenate(chunks)


def fit_cosine_head(siamese: Any, embeddings: np.ndarray, names: np.ndarray, *, pairs: int = 20000,
                    seed: int = 0) -> float:
    """Fit the ``head`` layer, ``sigmoid(a * cos + b)``, by logistic regression on pairs of
    ``embeddings`` (every same-person pair plus ``pairs`` random ones); returns its loss.

    The head is only the calibrated probability shown beside a cosine; decisions use the
    open-set rule (``model.core.matching``).
    """
    rng = np.random.default_rng(seed)
    same_a, same_b = [], []
    for name in np.unique(names):
        rows = np.flatnonzero(names == name)
        for i in range(len(rows)):
            same_a += [rows[i]] * (len(rows) - i - 1)
            same_b += rows[i + 1:].tolist()
    a = np.r_[np.array(same_a, np.int64), rng.integers(0, len(names), pairs)]
    b = np.r_[np.array(same_b, np.int64), rng.integers(0, len(names), pairs)]
    same = (names[a] == names[b]).astype(np.float64)
    e = embeddings.astype(np.float64)
    e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    alpha, beta, loss = _logistic_1d(np.sum(e[a] * e[b], axis=1), same)
    siamese.get_layer("head").set_weights([np.array([[alpha]], np.float32), np.array([beta], np.float32)])
    return loss


def _logistic_1d(x: np.ndarray, y: np.ndarray, steps: int = 50) -> tuple[float, float, float]:
    """Newton's method for ``p = sigmoid(alpha * x + beta)``; returns (alpha, beta, loss)."""
    mean, std = float(x.mean()), float(x.std()) or 1.0
    z = (x - mean) / std
    w = np.zeros(2)
    design = np.stack([z, np.ones_like(z)], axis=1)
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(design @ w)))
        grad = design.T @ (p - y)
        hess = (design * (p * (1 - p))[:, None]).T @ design + 1e-6 * np.eye(2)
        w -= np.linalg.solve(hess, grad)
    p = np.clip(1.0 / (1.0 + np.exp(-(design @ w))), 1e-9, 1 - 1e-9)
    loss = float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    return float(w[0] / std), float(w[1] - w[0] * mean / std), loss


# ------------------------------------------------------------------- saving

#: LFW faces (one photo each of this many random people) carried in a model as its cohort.
COHORT_SIZE = 600


def cohort_rows(names: np.ndarray, size: int = COHORT_SIZE, seed: int = 0) -> np.ndarray:
    """One random row each of ``size`` random people among ``names``."""
    rng = np.random.default_rng(seed)
    people = np.unique(names)
    chosen = rng.choice(people, min(size, len(people)), replace=False)
    return np.array([int(rng.choice(np.flatnonzero(names == p))) for p in chosen], dtype=np.int64)


# ------------------------------------------------------------------ the run

def train_model(config: TrainConfig, output: str | Path, *, lfw_root: str | Path | None = None,
                checkpoint_dir: str | Path | None = None, progress: ProgressFn | None = None,
                evaluate: bool = True) -> TrainResult:
    """Train ``config.architecture`` (the older recipes: ``compact`` CosFace, ``koch``) on
    LFW DevTrain, wrap it in the cosine Siamese model with a cohort, calibrate the open-set
    rule on DevTrain, optionally evaluate on DevTest, and save ``output`` (+ ``.json``).

    These recipes train on every DevTrain person, so their rule is calibrated on people
    they have seen (optimistic); the distilled student (``distill``) holds people out.
    """
    from model.core.recognizer import Recognizer
    from model.learning import evaluation, lfw

    report = progress or (lambda event: None)
    report(TrainProgress("data", 0, 1, message="loading aligned LFW crops"))
    aligned = lfw.load_aligned_lfw(lfw_root)
    people = lfw.people_dev_train(lfw_root)
    images, labels, classes = devtrain_data(aligned, people, config.size,
                                            config.min_images_per_class)
    report(TrainProgress("data", 1, 1, message=f"{len(images)} DevTrain photos of "
                                                f"{len(classes)} people"))
    if config.architecture == "compact":
        backbone, history = train_embedding(images, labels, config,
                                            checkpoint_dir=checkpoint_dir, progress=progress)
        embedding = network.build_compact_embedding(backbone=backbone)
    elif config.architecture == "koch":
        pair_model, history = train_pairs(images, labels, config,
                                          checkpoint_dir=checkpoint_dir, progress=progress)
        embedding = pair_model.get_layer("embedding")
    else:
        raise ValueError(f"unknown architecture {config.architecture!r}")
    trained_at = time.monotonic()
    report(TrainProgress("threshold", 0, 1, message="cohort, head and open-set rule"))
    rows = aligned.rows(name for name, _ in people)
    names = aligned.names[rows]
    train_emb = embed_faces(embedding, aligned.crops[rows])
    siamese = network.build_cosine_siamese(embedding, train_emb[cohort_rows(names, seed=config.seed)])
    fit_cosine_head(siamese, train_emb, names, seed=config.seed)
    rule, record = evaluation.calibrate_rule(train_emb.astype(np.float64), names,
                                             Recognizer.from_model(siamese).cohort, seed=config.seed)
    train_seconds = (history.get("seconds") or [0.0])[-1] + (time.monotonic() - trained_at)
    card: dict[str, Any] = {
        "architecture": config.architecture,
        "kind": "base",
        "trained": True,
        "input_size": network.input_size_of(siamese),
        "embedding_dim": int(embedding.outputs[0].shape[-1]),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "score": "cosine of embeddings (float64); decisions on the S-normed score",
        "match_rule": asdict(rule),
        "match_rule_from": {**record, "data": "LFW DevTrain people (also the training people)"},
        "training": {
            "data": "LFW peopleDevTrain (deep-funneled), MTCNN + 5-point alignment",
            "photos": int(len(images)), "identities": len(classes),
            "epochs_run": len(history["loss"]), "seconds": round(train_seconds, 1),
            "loss": [round(v, 5) for v in history["loss"]],
            "config": asdict(config),
        },
    }
    save_recognizer(siamese, output, card)
    if evaluate:
        report(TrainProgress("evaluate", 0, 1, message="evaluating on DevTest"))
        figures = evaluation.evaluate_model(output, lfw_root=lfw_root, aligned=aligned)
        card["figures"] = figures.as_dict()
        save_recognizer(siamese, output, card)
    report(TrainProgress("save", 1, 1, message=f"saved {output}"))
    return TrainResult(Path(output), history["loss"], train_seconds, card)
