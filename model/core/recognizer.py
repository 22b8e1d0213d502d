"""The recognizer: a loaded Siamese network, used as an embedder plus the one scorer.

The seed design ran the whole pair network once per gallery image. Here the
tower runs once per *query face*; scores against the gallery are cosines of unit
embeddings computed in float64 over cached gallery embeddings (microseconds per
gallery image). Decisions (who is this, same person or not) follow the model's
open-set rule (``model.core.matching``), normalised against the cohort the model
carries. Training, evaluation and fine-tuning score through this class too
(``Recognizer.from_model``), so the formula lives in one place.
"""

from __future__ import annotations

import functools
import hashlib
import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from model.core import files
from model.core.matching import MatchRule, cosine_matrix, pair_score
from model.core.registry import active_model_path, sidecar_path
from model.core.runtime import import_tensorflow_quietly
from model.errors import ModelError
from model.records import Verification
from model.settings import FACE_CROP_SIZE, Settings

#: Query faces are embedded in batches of at most this many (memory bound).
EMBED_BATCH = 64


@dataclass
class Recognizer:
    """An embedding tower, the cohort it normalises against, and its open-set rule.

    rule: the tuned numbers of the decision (``MatchRule``): naming threshold, margin,
        1:1 pair threshold, all in cohort-normalised units, chosen on held-out LFW
        DevTrain people when the model was trained (see the model card).
    cohort: float64 ``[c, d]`` unit embeddings of LFW DevTrain faces in this model's
        space (empty for a model that carries none).
    version: a short hash of the model file; gallery embedding caches are keyed on it.
    """

    embedding_model: Any
    embedding_dim: int
    rule: MatchRule
    cohort: np.ndarray
    architecture: str
    input_size: int
    trained: bool
    version: str
    path: Path | None = None
    card: dict[str, Any] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _forward: Callable[[Any], Any] | None = field(default=None, repr=False)

    @classmethod
    def from_model(cls, siamese: Any, card: dict[str, Any] | None = None, *, version: str = "in-memory",
                   path: Path | None = None) -> Recognizer:
        """A recognizer around an in-memory Siamese model (training, fine-tuning, evaluation)."""
        return _from_siamese(siamese, card or {}, version=version, path=path)

    @property
    def label(self) -> str:
        """Human-readable name of this model, e.g. 'student (base, 3f2a...)'."""
        kind = self.card.get("kind", "base" if self.trained else "untrained")
        return f"{self.architecture} ({kind}, {self.version})"

    def embed(self, faces: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """Unit-length embeddings of aligned face crops.

        faces: uint8 RGB crops, ``[n, H, W, 3]`` or a sequence of ``H x W x 3``
        (any square size; resized to the network's input). Returns float32 ``[n, d]``.
        An empty input gives an empty ``[0, d]`` array.
        """
        batch = self._prepare(faces)
        if len(batch) == 0:
            return np.zeros((0, self.embedding_dim), dtype=np.float32)
        parts = []
        for start in range(0, len(batch), EMBED_BATCH):
            chunk = batch[start:start + EMBED_BATCH]
            parts.append(np.asarray(self._run(chunk), dtype=np.float32))
        return np.concatenate(parts, axis=0)

    def score(self, query: np.ndarray, gallery: np.ndarray) -> np.ndarray:
        """Cosine similarity of every query against every gallery embedding.

        query ``[m, d]`` (or ``[d]``), gallery ``[n, d]`` -> float64 ``[m, n]`` in [-1, 1].
        Unsquashed and in float64, so it never saturates and never ties by rounding.
        """
        q = np.atleast_2d(np.asarray(query))
        return cosine_matrix(q, np.asarray(gallery).reshape(-1, q.shape[1]))

    def score_pair(self, a: np.ndarray, b: np.ndarray) -> float:
        """Cosine of two embeddings (float)."""
        return float(self.score(a[None, :], b[None, :])[0, 0])

    def verify_pair(self, a: np.ndarray, b: np.ndarray, extra_cohort: np.ndarray | None = None
                    ) -> tuple[float, float, bool]:
        """1:1 rule on two embeddings: (cosine, normalised score, same person?).

        "Same person" is the strict answer (``rule.pair_threshold``); ``verify`` gives the
        graded one. ``extra_cohort`` (e.g. the gallery's embeddings) joins the model's cohort.
        """
        result = self.verify(a, b, extra_cohort)
        return result.score, result.normalised, result.same

    def verify(self, a: np.ndarray, b: np.ndarray, extra_cohort: np.ndarray | None = None
               ) -> Verification:
        """1:1 rule on two embeddings (``[d]`` each), graded: "same person" from the rule's
        ``pair_threshold``, "probably the same person - check" from its
        ``pair_maybe_threshold``, else "different people" (see ``grade_pair``).

        ``extra_cohort`` (e.g. the gallery's embeddings) joins the model's cohort.
        """
        cohort = self.cohort if extra_cohort is None or len(extra_cohort) == 0 else np.concatenate(
            [self.cohort, np.asarray(extra_cohort, np.float64)])
        raw, norm = pair_score(a, b, cohort, self.rule)
        return Verification.graded(raw, norm, self.rule.pair_threshold,
                                   self.rule.pair_maybe_threshold)

    def warm_up(self) -> None:
        """One forward pass so the first real query is not slowed by graph tracing."""
        self.embed(np.zeros((1, FACE_CROP_SIZE, FACE_CROP_SIZE, 3), dtype=np.uint8))

    def _prepare(self, faces: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        size = self.input_size
        if isinstance(faces, np.ndarray) and faces.ndim == 4:
            if faces.shape[1:3] == (size, size):
                return faces.astype(np.float32)
            faces = list(faces)
        resized = [
            face if face.shape[:2] == (size, size)
            else cv2.resize(face, (size, size), interpolation=cv2.INTER_AREA)
            for face in faces
        ]
        if not resized:
            return np.zeros((0, size, size, 3), dtype=np.float32)
        return np.stack(resized).astype(np.float32)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        if self._forward is None:
            self._forward = _compile_forward(self.embedding_model)
        with self._lock:
            # Keras models are not documented as re-entrant; one forward pass at a time.
            result = self._forward(batch)
        return np.asarray(result)


def _compile_forward(model: Any) -> Callable[[Any], Any]:
    """A traced forward function (no ``model.predict``: its per-call overhead is ~30 ms)."""
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        fn = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
        return lambda x: fn(tf.convert_to_tensor(x)).numpy()
    return lambda x: keras.ops.convert_to_numpy(model(x, training=False))


def file_version(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:12]


def load_recognizer(path: str | Path | None = None, settings: Settings | None = None) -> Recognizer:
    """Load a saved Siamese model, or the active one when ``path`` is None.

    With no trained model anywhere, returns a freshly initialised compact network
    (deterministic seed) marked ``trained=False``: the pipeline runs, but its
    scores mean nothing until a model is trained.
    """
    chosen = Path(path) if path is not None else active_model_path(settings)
    if chosen is None:
        return untrained_recognizer()
    return _load_file(chosen)


def _load_file(path: Path) -> Recognizer:
    import_tensorflow_quietly()
    import keras

    import model.core.network  # noqa: F401  (registers the custom layers before loading)

    if not path.exists():
        raise ModelError(f"{path}: no such model file.")
    try:
        siamese = keras.saving.load_model(path, compile=False)
    except Exception as exc:
        raise ModelError(f"{path}: not a usable model file ({type(exc).__name__}: {exc}).") from exc
    card: dict[str, Any] = {}
    meta = sidecar_path(path)
    if meta.exists():
        try:
            card = json.loads(meta.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise ModelError(f"{meta}: the model's metadata is not valid JSON ({exc}).") from exc
    return _from_siamese(siamese, card, version=file_version(path), path=path)


def _from_siamese(siamese: Any, card: dict[str, Any], version: str, path: Path | None) -> Recognizer:
    try:
        embedding = siamese.get_layer("embedding")
    except ValueError as exc:
        raise ModelError(f"the model has no 'embedding' layer ({exc}).") from exc
    dim = int(embedding.outputs[0].shape[-1])
    return Recognizer(
        embedding_model=embedding,
        embedding_dim=dim,
        rule=MatchRule.from_card(card),
        cohort=_cohort_of(siamese, embedding, dim),
        architecture=str(card.get("architecture", "compact")),
        input_size=int(embedding.input_shape[1]),
        trained=bool(card.get("trained", False)),
        version=version,
        path=path,
        card=card,
    )


def _cohort_of(siamese: Any, embedding: Any, dim: int) -> np.ndarray:
    """The model's cohort in its own embedding space: the stored (base-space) cohort
    passed through the embedding's ``adapter`` when fine-tuning trained one."""
    try:
        matrix = np.asarray(siamese.get_layer("cohort").matrix, dtype=np.float32)
    except ValueError:
        return np.zeros((0, dim), dtype=np.float64)
    if matrix.size and any(layer.name == "adapter" for layer in embedding.layers):
        matrix = np.asarray(embedding.get_layer("adapter")(matrix), dtype=np.float32)
    matrix = matrix.astype(np.float64)
    return matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)


@functools.lru_cache(maxsize=2)
def untrained_recognizer(architecture: str = "compact") -> Recognizer:
    """A freshly initialised network (fixed seed, so embeddings are stable across runs).

    Built once per process: it is deterministic, so a rebuild would only cost time.
    """
    import_tensorflow_quietly()
    import keras

    from model.core.network import build_embedding, build_siamese

    keras.utils.set_random_seed(1234)
    siamese = build_siamese(build_embedding(architecture))
    card = {"architecture": architecture, "trained": False, "kind": "untrained"}
    return _from_siamese(siamese, card, version=f"untrained-{architecture}", path=None)


def save_recognizer(siamese: Any, path: str | Path, card: dict[str, Any]) -> Path:
    """Save a Siamese model and its card at an explicit path (the shipped base model,
    training checkpoints). Fine-tuned models go through ``registry.store_model`` instead,
    which publishes model and card as one unit.

    The card is written last, so a crash leaves at worst a model without new
    metadata, never metadata pointing at a half-written model.
    """
    path = Path(path)
    files.atomic_save(path, siamese.save, suffix=".keras")
    card = {**card, "saved_at": datetime.now(UTC).isoformat()}
    files.atomic_write_bytes(sidecar_path(path), json.dumps(card, indent=2, default=str).encode("utf-8"))
    return path
