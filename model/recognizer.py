"""The recognizer: a loaded Siamese network, used as an embedder plus a vectorised head.

The seed design ran the whole pair network once per gallery image. Here the
tower runs once per *query face*; scoring against the gallery is the same head
(``sigmoid(w . |q - g| + b)``) evaluated in numpy over cached gallery
embeddings, which costs microseconds per gallery image.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from model.errors import ModelError
from model.runtime import import_tensorflow_quietly
from model.settings import FACE_CROP_SIZE, Settings, get_settings

#: Threshold used by a network that has never been trained or calibrated.
UNTRAINED_THRESHOLD = 0.5
#: Query faces are embedded in batches of at most this many (memory bound).
EMBED_BATCH = 64
#: Gallery rows scored per numpy chunk. Small enough that the |q - g| temporary (1 MB)
#: is reused heap memory and the matrix-vector product stays single-threaded: one big
#: chunk made 10,000 rows cost 6.7 ms instead of 0.7 ms right after TensorFlow had run
#: (page faults, and BLAS threads fighting TensorFlow's spinning thread pool).
SCORE_CHUNK = 2048
ACTIVE_POINTER = "active.json"


@dataclass
class Recognizer:
    """An embedding tower and the Siamese head's weights.

    threshold: a pair scoring at or above it is called "same person" (1:1 verify).
        It is chosen on held-out pairs when the model is trained (see the model
        card); raising it makes the system stricter (fewer false accepts).
    identification_threshold: the best person's score must reach it for a face to
        be named (1:N identify); below it the face is "unknown". It is stricter than
        ``threshold`` because a stranger is compared with every enrolled person and
        the best of many impostor scores is high; it is calibrated on training
        people for a false-accept rate of about 5% with a class-sized gallery.
    version: a short hash of the model file; gallery embedding caches are keyed on it.
    """

    embedding_model: Any
    head_weights: np.ndarray  # [d]
    head_bias: float
    threshold: float
    identification_threshold: float
    architecture: str
    input_size: int
    trained: bool
    version: str
    path: Path | None = None
    card: dict[str, Any] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _forward: Callable[[Any], Any] | None = field(default=None, repr=False)

    @property
    def embedding_dim(self) -> int:
        return int(self.head_weights.shape[0])

    @property
    def label(self) -> str:
        """Human-readable name of this model, e.g. 'compact (base, 3f2a...)'."""
        kind = self.card.get("kind", "base" if self.trained else "untrained")
        return f"{self.architecture} ({kind}, {self.version})"

    def embed(self, faces: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """Embeddings of aligned face crops.

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
        """Siamese head scores of every query against every gallery embedding.

        query ``[m, d]`` (or ``[d]``), gallery ``[n, d]`` -> float32 ``[m, n]`` in [0, 1].
        """
        q = np.atleast_2d(np.asarray(query, dtype=np.float32))
        g = np.asarray(gallery, dtype=np.float32)
        out = np.empty((q.shape[0], g.shape[0]), dtype=np.float32)
        if g.shape[0] == 0 or q.shape[0] == 0:
            return out
        w = self.head_weights
        for i in range(q.shape[0]):
            for start in range(0, g.shape[0], SCORE_CHUNK):
                part = g[start:start + SCORE_CHUNK]
                logits = np.abs(part - q[i]) @ w + self.head_bias
                out[i, start:start + len(part)] = logits
        # Stable sigmoid on the whole block at once.
        np.negative(out, out=out)
        np.exp(np.clip(out, -60.0, 60.0), out=out)
        out += 1.0
        np.reciprocal(out, out=out)
        return out

    def score_pair(self, a: np.ndarray, b: np.ndarray) -> float:
        return float(self.score(a[None, :], b[None, :])[0, 0])

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


def sidecar_path(model_path: Path) -> Path:
    """The JSON metadata file beside a ``.keras`` model (``base.keras`` -> ``base.json``)."""
    return model_path.with_suffix(".json")


def file_version(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:12]


def finetuned_model_path(models_dir: str | Path) -> Path | None:
    """The active fine-tuned model named by ``<models_dir>/active.json``, or None (then the
    shipped base model is the active one). A damaged pointer counts as none: it must
    never stop the app."""
    pointer = Path(models_dir) / ACTIVE_POINTER
    try:
        name = json.loads(pointer.read_text(encoding="utf-8"))["model"]
        candidate = Path(models_dir) / Path(name).name
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return candidate if candidate.is_file() else None


def active_model_path(settings: Settings | None = None) -> Path | None:
    """The model the app and CLI use: the active fine-tuned one, else the shipped base, else None."""
    settings = settings or get_settings()
    finetuned = finetuned_model_path(settings.models_dir)
    if finetuned is not None:
        return finetuned
    if settings.base_model_path.exists():
        return settings.base_model_path
    return None


def activate_model(models_dir: str | Path, path: Path | None, previous: Path | None = None) -> None:
    """Make ``path`` (a model inside ``models_dir``) the active one, remembering ``previous``
    for a roll-back; ``None`` goes back to the shipped base model."""
    models_dir = Path(models_dir)
    pointer = models_dir / ACTIVE_POINTER
    if path is None:
        pointer.unlink(missing_ok=True)
        return
    if Path(path).parent.resolve() != models_dir.resolve():
        raise ModelError(f"{path} is not inside the models folder {models_dir}.")
    payload = {"model": Path(path).name, "previous": str(previous) if previous else None,
               "activated_at": datetime.now(UTC).isoformat(timespec="seconds")}
    atomic_write_bytes(pointer, json.dumps(payload, indent=2).encode("utf-8"))


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

    import model.network  # noqa: F401  (registers the custom layers before loading)

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
        kernel, bias = siamese.get_layer("head").get_weights()
    except ValueError as exc:
        raise ModelError(f"the model has no 'embedding'/'head' layers ({exc}).") from exc
    size = int(embedding.input_shape[1])
    return Recognizer(
        embedding_model=embedding,
        head_weights=np.asarray(kernel, dtype=np.float32).reshape(-1),
        head_bias=float(np.asarray(bias).reshape(-1)[0]),
        threshold=float(card.get("threshold", UNTRAINED_THRESHOLD)),
        identification_threshold=float(card.get("identification_threshold",
                                                card.get("threshold", UNTRAINED_THRESHOLD))),
        architecture=str(card.get("architecture", "compact")),
        input_size=size,
        trained=bool(card.get("trained", False)),
        version=version,
        path=path,
        card=card,
    )


@functools.lru_cache(maxsize=2)
def untrained_recognizer(architecture: str = "compact") -> Recognizer:
    """A freshly initialised network (fixed seed, so embeddings are stable across runs).

    Built once per process: it is deterministic, so a rebuild would only cost time.
    """
    import_tensorflow_quietly()
    import keras

    from model.network import build_embedding, build_siamese

    keras.utils.set_random_seed(1234)
    siamese = build_siamese(build_embedding(architecture))
    card = {"architecture": architecture, "trained": False, "kind": "untrained",
            "threshold": UNTRAINED_THRESHOLD}
    return _from_siamese(siamese, card, version=f"untrained-{architecture}", path=None)


def save_recognizer(siamese: Any, path: str | Path, card: dict[str, Any]) -> Path:
    """Save a Siamese model and its sidecar atomically (temporary files, then rename).

    The sidecar is written last, so a crash leaves at worst a model without new
    metadata, never metadata pointing at a half-written model.
    """
    path = Path(path)
    atomic_save_keras(siamese, path)
    card = {**card, "saved_at": datetime.now(UTC).isoformat()}
    atomic_write_bytes(sidecar_path(path), json.dumps(card, indent=2, default=str).encode("utf-8"))
    return path


def atomic_save_keras(model: Any, path: str | Path) -> None:
    """``model.save`` to a temporary ``.keras`` beside ``path``, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(suffix=".keras", dir=path.parent, prefix=".tmp-")
    os.close(handle)
    tmp = Path(tmp_name)
    try:
        model.save(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so readers see the old or the new file, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
