"""Fine-tuning the Siamese network on the enrolled class, in about a minute on a laptop.

The gallery is a folder of name-labelled folders, ``<gallery>/<Person Name>/*.jpg``,
each an aligned 112 x 112 RGB crop (other files, and folders starting with ``.``, are
ignored). Part of each person's crops is held out; the rest trains.

Why it is fast: the network up to its ``adapter`` (a square linear map that starts
as the identity) stays frozen, so its outputs are computed once and cached; only the
adapter and the head train, with binary cross-entropy on every pair of a batch (same
person / two different enrolled people). Because only the adapter changes, the
cohort of LFW faces the model carries maps exactly into the fine-tuned space, and the
open-set rule keeps working.

Why it is safe: held-out figures are measured before and after (pair accuracy and
identification rank-1 of held-out crops against the training crops), and the new
model becomes active only when neither got worse. Each accepted model is saved,
versioned, under ``models_dir`` (a ``finetuned-<UTC time>/`` unit, see ``registry``); the
previous ones are kept and ``active.json`` names the active one and its predecessor.
The open-set rule keeps the base model's LFW-calibrated numbers; each gallery then
re-derives its adaptive threshold (``model.core.matching``).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from model.core.registry import (
    TRAINED_ON,
    TRAINED_ON_IDS,
    activate_model,
    delete_unit,
    finetuned_model_path,
    learned_from,
    store_model,
)
from model.settings import FACE_CROP_SIZE

IMAGE_SUFFIXES = (".jpg", ".jpeg")


@dataclass(frozen=True)
class FinetuneProgress:
    """One progress report: ``stage`` in "load", "features", "train", "evaluate", "save";
    ``done``/``total`` count epochs during "train"; ``loss`` is that epoch's mean loss."""

    stage: str
    done: int
    total: int
    loss: float | None = None
    message: str = ""


ProgressFn = Callable[[FinetuneProgress], None]


@dataclass(frozen=True)
class HeldOutFigures:
    """Figures on held-out crops. pair_accuracy: balanced accuracy of held-out-vs-training
    crop pairs at ``threshold``; identification: share of held-out crops whose best
    person (mean of top-2 photo scores) is right (rank-1, threshold not applied)."""

    pair_accuracy: float
    identification: float
    threshold: float
    pairs: int
    queries: int
    #: ROC of the held-out pairs: ``(false-accept rate, true-accept rate)`` points from
    #: (0, 0) to (1, 1), at most ``ROC_POINTS`` of them (for the Train page's chart).
    roc: tuple[tuple[float, float], ...] = ()


@dataclass(frozen=True)
class FinetuneResult:
    """What a fine-tune did. ``replaced`` says whether the new model became active;
    ``model_path`` is the saved version (None when not replaced); ``active_path`` is the
    model in use afterwards."""

    replaced: bool
    model_path: Path | None
    active_path: Path
    previous_path: Path | None
    before: HeldOutFigures | None
    after: HeldOutFigures | None
    threshold: float
    people: int
    train_crops: int
    held_out_crops: int
    epochs: int
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    message: str = ""


# ------------------------------------------------------------------ gallery

def read_gallery(gallery_dir: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Every crop of the gallery: (uint8 [n, 112, 112, 3], person names [n]).

    People are the sub-folders (sorted); only ``.jpg``/``.jpeg`` files count; folders
    and files starting with ``.`` are skipped. Crops of another size are resized.
    """
    import cv2

    from model.core.images import load_image

    crops, names = [], []
    root = Path(gallery_dir)
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) \
        if root.is_dir() else []
    for folder in folders:
        for path in sorted(folder.iterdir()):
            if path.name.startswith(".") or path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            image = load_image(path)
            if image.shape[:2] != (FACE_CROP_SIZE, FACE_CROP_SIZE):
                image = cv2.resize(image, (FACE_CROP_SIZE, FACE_CROP_SIZE),
                                   interpolation=cv2.INTER_AREA)
            crops.append(image)
            names.append(folder.name)
    if not crops:
        return np.zeros((0, FACE_CROP_SIZE, FACE_CROP_SIZE, 3), np.uint8), np.array([], dtype=str)
    return np.stack(crops), np.array(names)


def split_held_out(labels: np.ndarray, fraction: float = 0.3,
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, held-out rows): about ``fraction`` of each person's crops held out,
    at least one when the person has 3 or more crops, none when fewer."""
    rng = np.random.default_rng(seed)
    train, held = [], []
    for person in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == person))
        k = max(1, int(round(len(rows) * fraction))) if len(rows) >= 3 else 0
        held += rows[:k].tolist()
        train += rows[k:].tolist()
    return np.array(sorted(train), dtype=np.int64), np.array(sorted(held), dtype=np.int64)


# ------------------------------------------------------------------- scoring

def _embed(siamese: Any, crops: np.ndarray) -> np.ndarray:
    """Embeddings through the one scorer's embedder (``Recognizer.from_model``)."""
    from model.core.recognizer import Recognizer

    return Recognizer.from_model(siamese).embed(crops)


def _balanced_threshold(scores: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """(threshold, balanced accuracy) maximising the mean of TAR and TRR."""
    same = same.astype(bool)
    s = np.unique(scores)
    candidates = np.r_[s[0] - 1e-6, (s[1:] + s[:-1]) / 2.0, s[-1] + 1e-6]
    best_t, best_acc = 0.5, -1.0
    for t in candidates:
        acc = _balanced_accuracy(scores, same, t)
        if acc > best_acc:
            best_t, best_acc = float(t), acc
    return best_t, best_acc


def _balanced_accuracy(scores: np.ndarray, same: np.ndarray, threshold: float) -> float:
    same = same.astype(bool)
    accept = scores >= threshold
    tar = accept[same].mean() if same.any() else 1.0
    trr = (~accept[~same]).mean() if (~same).any() else 1.0
    return float((tar + trr) / 2.0)


#: Points kept of a held-out ROC curve (enough for a chart, small enough for a sidecar).
ROC_POINTS = 101


def _roc_points(scores: np.ndarray, same: np.ndarray) -> tuple[tuple[float, float], ...]:
    from model.learning.evaluation import roc_curve

    far, tar, _ = roc_curve(scores, same)
    keep = np.unique(np.linspace(0, len(far) - 1, min(ROC_POINTS, len(far))).round().astype(int))
    return tuple((round(float(far[i]), 4), round(float(tar[i]), 4)) for i in keep)


def held_out_figures(embeddings: np.ndarray, labels: np.ndarray, train: np.ndarray, held: np.ndarray,
                     threshold: float | None = None, top_k: int = 2) -> HeldOutFigures:
    """Held-out figures (see ``HeldOutFigures``) from cosine scores. ``threshold=None``
    picks the best cosine threshold on these pairs (for the Train page's comparison)."""
    from model.core.matching import aggregate_by_person, cosine_matrix

    photo = cosine_matrix(embeddings[held], embeddings[train])
    same = labels[held][:, None] == labels[train][None, :]
    flat_scores, flat_same = photo.ravel(), same.ravel()
    if threshold is None:
        threshold, pair_acc = _balanced_threshold(flat_scores, flat_same)
    else:
        pair_acc = _balanced_accuracy(flat_scores, flat_same, threshold)
    people, owners = np.unique(labels[train], return_inverse=True)
    per_person = aggregate_by_person(photo, owners, len(people), top_k)
    predicted = people[per_person.argmax(axis=1)]
    return HeldOutFigures(pair_accuracy=float(pair_acc),
                          identification=float(np.mean(predicted == labels[held])),
                          threshold=float(threshold), pairs=int(flat_same.size),
                          queries=int(len(held)), roc=_roc_points(flat_scores, flat_same))


# ----------------------------------------------------------- the fine-tune

def _split_model(siamese: Any) -> tuple[Callable[[np.ndarray], np.ndarray], Any]:
    """(frozen part as a function of network-size images -> pre-adapter features,
    trainable part: features -> unit embedding through the model's own ``adapter``)."""
    import keras

    from model.core.network import L2Normalize
    from model.errors import ModelError

    embedding = siamese.get_layer("embedding")
    names = {layer.name for layer in embedding.layers}
    if "adapter" not in names:
        raise ModelError("This model has no adapter layer to fine-tune (an older design); "
                         "use the shipped base model.")
    adapter = embedding.get_layer("adapter")
    frozen = keras.Model(embedding.inputs[0], adapter.input)
    features = keras.Input((int(adapter.input.shape[-1]),))
    upper = keras.Model(features, L2Normalize()(adapter(features)))
    return (lambda x: np.asarray(frozen(x, training=False))), upper


def _features(lower: Callable[[np.ndarray], np.ndarray], crops: np.ndarray, size: int,
              batch: int = 64) -> np.ndarray:
    from model.core.network import resize_faces

    return np.concatenate([lower(resize_faces(crops[begin:begin + batch], size))
                           for begin in range(0, len(crops), batch)])


def _pairwise_trainer(siamese: Any, upper: Any, feature_dim: int) -> Any:
    """A model ``[features, labels] -> loss`` (one value per row).

    Every pair inside a batch is scored at once (the ``[n, n]`` cosine matrix through the
    head's calibration), so one pass per crop serves ``n^2`` pairs: fine-tuning takes
    seconds. Only the adapter (a square matrix, started at the identity) and the head train.
    """
    import keras
    from keras import ops

    head = siamese.get_layer("head")

    class PairwiseHeadLoss(keras.layers.Layer):
        """Balanced binary cross-entropy of the head over all pairs of a batch."""

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.head = head  # tracked, so the head's weights train too

        def call(self, emb: Any, labels: Any) -> Any:
            cosine = ops.expand_dims(ops.matmul(emb, ops.transpose(emb)), -1)
            prob = ops.clip(ops.squeeze(self.head(cosine), -1), 1e-6, 1.0 - 1e-6)
            labels = ops.reshape(labels, (-1,))
            same = ops.cast(ops.equal(ops.expand_dims(labels, 1), ops.expand_dims(labels, 0)),
                            "float32")
            n = ops.shape(emb)[0]
            pos = same * (1.0 - ops.eye(n))           # a crop with itself teaches nothing
            neg = 1.0 - same
            loss = (ops.sum(pos * -ops.log(prob)) / ops.maximum(ops.sum(pos), 1.0)
                    + ops.sum(neg * -ops.log(1.0 - prob)) / ops.maximum(ops.sum(neg), 1.0)) / 2.0
            return ops.ones_like(ops.cast(labels, "float32")) * loss

    feats = keras.Input((feature_dim,))
    labels = keras.Input((), dtype="int32")
    return keras.Model([feats, labels], PairwiseHeadLoss()(upper(feats), labels))


def finetune_model(siamese: Any, crops: np.ndarray, labels: np.ndarray, *,
                   train: np.ndarray, epochs: int = 30, learning_rate: float = 3e-4,
                   batch_size: int = 128, seed: int = 0,
                   progress: ProgressFn | None = None) -> list[float]:
    """Fine-tune ``siamese`` in place on the ``train`` rows of ``crops``/``labels``.

    The network up to the adapter is frozen (its outputs computed once); the adapter and
    the head train with a balanced binary cross-entropy over every same/different pair of
    each batch, Adam. Because only the adapter changes, the cohort the model carries is
    mapped into the new space exactly. Returns the per-epoch losses. A higher
    ``learning_rate`` or more ``epochs`` adapt more to the class but risk forgetting what
    LFW taught; the held-out check in ``finetune_gallery`` guards against that.
    """
    import keras

    from model.core.network import input_size_of

    report = progress or (lambda event: None)
    keras.utils.set_random_seed(seed)
    lower, upper = _split_model(siamese)
    report(FinetuneProgress("features", 0, 1, message="computing frozen features"))
    feats = _features(lower, crops[train], input_size_of(siamese))
    report(FinetuneProgress("features", 1, 1, message=f"{len(train)} crops"))
    trainer = _pairwise_trainer(siamese, upper, feats.shape[1])
    trainer.compile(optimizer=keras.optimizers.Adam(learning_rate),
                    loss=lambda y_true, y_pred: keras.ops.mean(y_pred))
    codes = np.unique(labels[train], return_inverse=True)[1].astype(np.int32)
    losses: list[float] = []

    class Report(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            losses.append(float((logs or {}).get("loss", float("nan"))))
            report(FinetuneProgress("train", epoch + 1, epochs, losses[-1],
                                    f"epoch {epoch + 1}/{epochs} loss {losses[-1]:.4f}"))

    trainer.fit([feats, codes], np.zeros(len(codes), np.float32),
                batch_size=min(batch_size, len(codes)), epochs=epochs, shuffle=True, verbose=0,
                callbacks=[Report()])
    return losses


# ------------------------------------------------------------ model registry
# The registry (active pointer, roll-back, forgetting a person) lives with the recognizer,
# so deleting a person never needs the training code.

# -------------------------------------------------------------- the facade

def finetune_gallery(gallery_dir: str | Path, base_model_path: str | Path | None = None,
                     models_dir: str | Path | None = None, *,
                     progress: ProgressFn | None = None, held_out_fraction: float = 0.3,
                     epochs: int = 30, learning_rate: float = 3e-4, seed: int = 0
                     ) -> FinetuneResult:
    """Fine-tune the active model on the gallery's people; activate it if held-out
    figures did not get worse. Defaults: the active model of ``models_dir`` (else the
    shipped base), and ``settings.models_dir``. See the module docstring."""
    import keras

    from model.core import network  # noqa: F401  (registers the custom layers)
    from model.settings import get_settings

    started = time.monotonic()
    report = progress or (lambda event: None)
    settings = get_settings()
    models = Path(models_dir) if models_dir is not None else settings.models_dir
    previous = finetuned_model_path(models)
    base = Path(base_model_path) if base_model_path is not None else (
        previous or settings.base_model_path)

    from model.school.gallery import Gallery

    gallery = Gallery(gallery_dir)
    report(FinetuneProgress("load", 0, 1, message="reading the gallery"))
    ids_by_name = gallery.person_ids()
    crops, labels = read_gallery(gallery_dir)
    person_ids = {ids_by_name[str(n)] for n in np.unique(labels) if str(n) in ids_by_name}
    train, held = split_held_out(labels, held_out_fraction, seed)
    people = len(np.unique(labels))
    base_meta_path = base.with_suffix(".json")
    base_meta = json.loads(base_meta_path.read_text()) if base_meta_path.is_file() else {}
    base_threshold = float(base_meta.get("match_rule", {}).get("name_threshold", 0.0))

    def finish(message: str, **kw: Any) -> FinetuneResult:
        defaults: dict[str, Any] = dict(
            replaced=False, model_path=None, active_path=previous or base,
            previous_path=None, before=None, after=None, threshold=base_threshold,
            people=people, train_crops=len(train), held_out_crops=len(held), epochs=0)
        defaults.update(kw)
        return FinetuneResult(**defaults, seconds=time.monotonic() - started, message=message)

    if people < 2 or len(held) == 0 or len(np.unique(labels[held])) < 2:
        return finish("Fine-tuning needs at least two people with three or more photos each.")

    siamese = keras.saving.load_model(base, compile=False)
    report(FinetuneProgress("evaluate", 0, 2, message="measuring held-out figures before"))
    before = held_out_figures(_embed(siamese, crops), labels, train, held, threshold=None)
    losses = finetune_model(siamese, crops, labels, train=train, epochs=epochs,
                            learning_rate=learning_rate, seed=seed, progress=progress)
    report(FinetuneProgress("evaluate", 1, 2, message="measuring held-out figures after"))
    after = held_out_figures(_embed(siamese, crops), labels, train, held, threshold=None)
    report(FinetuneProgress("evaluate", 2, 2, message=(
        f"held-out pairs {before.pair_accuracy:.3f} -> {after.pair_accuracy:.3f}, "
        f"identification {before.identification:.3f} -> {after.identification:.3f}")))
    better = (after.pair_accuracy >= before.pair_accuracy
              and after.identification >= before.identification)
    if not better:
        return finish("The fine-tuned model did worse on held-out photos; kept the current one.",
                      before=before, after=after, epochs=epochs, losses=losses)

    report(FinetuneProgress("save", 0, 1, message="saving the new model"))
    models.mkdir(parents=True, exist_ok=True)
    # The open-set rule keeps the base model's LFW-calibrated numbers (never loosened on
    # the class's own people, who were this fine-tune's negatives); the cohort follows the
    # adapter, and each gallery re-derives its own adaptive threshold.
    sidecar = {**base_meta, "trained": True, "kind": "finetuned",
               "created": datetime.now(UTC).isoformat(timespec="seconds"),
               "figures": {**base_meta.get("figures", {}),
                           "held_out_before": asdict(before), "held_out_after": asdict(after)},
               "training": {**base_meta.get("training", {}), "finetuned_from": str(base),
                            # Whose faces shaped these weights (cumulative over fine-tunes), by
                            # stable person id (it survives a rename), so deleting a person can
                            # delete the models that learned from them.
                            TRAINED_ON_IDS: sorted(learned_from(base_meta)[0] | person_ids),
                            TRAINED_ON: sorted(learned_from(base_meta)[1]),
                            "finetune": {"people": people, "train_crops": int(len(train)),
                                         "held_out_crops": int(len(held)), "epochs": epochs,
                                         "learning_rate": learning_rate, "trains": "adapter + head",
                                         "losses": [round(v, 5) for v in losses]}}}
    path = store_model(siamese.save, models, sidecar)
    # Published before this check, so a concurrent removal either sees the new model (and
    # deletes it) or has already removed the person, whom the check below then misses.
    with gallery.write_lock():
        if not person_ids <= set(gallery.person_ids().values()):
            delete_unit(models, path)
            return finish("Someone was deleted while the network trained on their photos; the "
                          "new model was discarded.", before=before, after=after, epochs=epochs,
                          losses=losses)
        activate_model(models, path, previous or base)
    report(FinetuneProgress("save", 1, 1, message=f"saved {path.name}"))
    return finish("The fine-tuned model is now active.", replaced=True, model_path=path,
                  active_path=path, previous_path=previous or base, before=before,
                  after=after, threshold=after.threshold, epochs=epochs, losses=losses)


# -------------------------------------------------------- the LFW measurement

def lfw_finetune_benchmark(base_model_path: str | Path, *, people: int = 30, enroll: int = 5,
                           draws: int = 3, seed: int = 0, lfw_root: str | Path | None = None,
                           progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Identification before/after fine-tuning on ``people`` DevTest people with >= 6
    photos: ``enroll`` photos each form the gallery (fine-tuned on, 1 held out per person
    for the recalibration), the rest query; other DevTest people are impostors.
    Averages over ``draws`` random draws. Returns plain figures (a JSON-able dict)."""
    import cv2

    from model.core.matching import GalleryIndex
    from model.core.recognizer import load_recognizer
    from model.learning import evaluation, lfw

    report = progress or (lambda message: None)
    aligned = lfw.load_aligned_lfw(lfw_root)
    test_people = lfw.people_dev_test(lfw_root)
    rows = aligned.rows(name for name, _ in test_people)
    names, crops = aligned.names[rows], aligned.crops[rows]
    many = sorted(name for name, count in test_people if count >= 6)
    rng = np.random.default_rng(seed)
    runs: dict[str, list[evaluation.IdentificationResult]] = {"before": [], "after": []}
    seconds: list[float] = []
    accepted: list[bool] = []
    with tempfile.TemporaryDirectory() as tmp:
        for d in range(draws):
            chosen = sorted(rng.choice(many, people, replace=False).tolist())
            gallery = Path(tmp) / f"gallery{d}"
            g, owners, q, q_owner, strangers = evaluation.enroll_split(names, chosen, enroll, seed + d)
            for r, o in zip(g, owners, strict=True):
                folder = gallery / chosen[o]
                folder.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(folder / f"{r}.jpg"), cv2.cvtColor(crops[r], cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_JPEG_QUALITY, 95])
            t0 = time.monotonic()
            result = finetune_gallery(gallery, base_model_path, Path(tmp) / f"models{d}",
                                      held_out_fraction=0.2, seed=seed + d)
            seconds.append(time.monotonic() - t0)
            accepted.append(result.replaced)
            for label, path in (("before", Path(base_model_path)), ("after", result.model_path)):
                if path is None:  # rejected: the active model stays the base one
                    runs[label].append(runs["before"][-1])
                    continue
                recognizer = load_recognizer(path)
                emb = recognizer.embed(crops)
                index = GalleryIndex.prepare(emb[g], owners, len(chosen), recognizer.cohort, recognizer.rule)
                runs[label].append(evaluation.identify(index, emb[q], q_owner, emb[strangers]))
                report(f"draw {d + 1}/{draws} {label}: named {runs[label][-1].named:.3f}, "
                       f"strangers accepted {runs[label][-1].false_accept_rate:.3f}")
            shutil.rmtree(gallery)
    return {"people": people, "enrolled_per_person": enroll, "draws": draws,
            "before": asdict(evaluation.average_results(runs["before"])),
            "after": asdict(evaluation.average_results(runs["after"])),
            "accepted_draws": int(sum(accepted)),
            "finetune_seconds_mean": round(float(np.mean(seconds)), 1)}
