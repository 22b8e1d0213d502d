"""The teacher: dlib's face-recognition ResNet, used at training time only.

dlib's ResNet (public domain, shipped in the ``face-recognition-models`` wheel with
the prebuilt ``dlib-bin``) reaches ~98.5% on LFW pairsDevTest but costs ~80 ms per
face on a laptop CPU. We distil its embedding geometry into our own small network
(``model.learning.distill``); the app never imports this module, and ``make run``
never installs dlib. Its author states that its ~7.5k training identities avoid
every LFW identity, so LFW DevTest stays a test of unseen people.

Teacher embeddings of every LFW photo (128-d, unit length) are computed once, on
all CPU cores, and cached beside the aligned-crop cache (``FACEATT_CACHE_DIR``).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from model.learning.lfw import cache_dir, image_path, people_dev_test, people_dev_train

#: Bump when the teacher's input (detection, fallback box) changes.
CACHE_NAME = "lfw_teacher_dlib_v1.npz"
#: dlib's face box (left, top, right, bottom) in a 250 x 250 deep-funneled LFW photo
#: when its HOG detector finds none (the median of the boxes it does find).
LFW_FALLBACK_BOX = (67, 80, 175, 187)

Progress = Callable[[int, int, str], None]


def teacher_available() -> bool:
    """True when dlib and its face-recognition models are installed (training extras)."""
    try:
        import dlib  # noqa: F401
        import face_recognition_models  # noqa: F401
    except ImportError:
        return False
    return True


class Teacher:
    """dlib's HOG detector, 5-point shape predictor and ResNet, loaded once."""

    def __init__(self) -> None:
        import dlib
        import face_recognition_models as frm

        self._dlib = dlib
        self.detector = dlib.get_frontal_face_detector()
        self.shape = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
        self.net = dlib.face_recognition_model_v1(frm.face_recognition_model_location())
        self.last_norm = 1.0

    def locate(
        self, image: np.ndarray, fallback: tuple[int, int, int, int] | None = None, upsample: int = 1
    ) -> tuple[int, int, int, int] | None:
        """The face box nearest the image centre (left, top, right, bottom), else ``fallback``."""
        found = self.detector(image, upsample)
        if len(found) == 0:
            return fallback
        h, w = image.shape[:2]
        best = min(
            found,
            key=lambda r: (
                ((r.left() + r.right()) / 2 - w / 2) ** 2 + ((r.top() + r.bottom()) / 2 - h / 2) ** 2
            ),
        )
        return best.left(), best.top(), best.right(), best.bottom()

    def embed(self, image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
        """128-d unit-length embedding (float32) of the face in ``box`` of an RGB uint8 image."""
        rect = self._dlib.rectangle(*[int(v) for v in box])
        shape = self.shape(image, rect)
        vector = np.asarray(self.net.compute_face_descriptor(image, shape), dtype=np.float32)
        self.last_norm = max(float(np.linalg.norm(vector)), 1e-9)
        return vector / self.last_norm


@dataclass(frozen=True)
class TeacherLfw:
    """Teacher embeddings of LFW photos: ``embeddings`` float32 [n, 128] with per-row
    ``names`` and 1-based ``indices``; ``detected`` is False where the fallback box was used."""

    embeddings: np.ndarray
    names: np.ndarray
    indices: np.ndarray
    detected: np.ndarray

    def lookup(self, names: np.ndarray, indices: np.ndarray) -> np.ndarray:
        """Embeddings for the given (name, index) rows, in that order."""
        row = {(str(n), int(i)): r for r, (n, i) in enumerate(zip(self.names, self.indices, strict=True))}
        order = np.array([row[(str(n), int(i))] for n, i in zip(names, indices, strict=True)], dtype=np.int64)
        return self.embeddings[order]


_worker: Teacher | None = None


def _embed_files(job: tuple[Sequence[str], bool, bool]) -> list[tuple[np.ndarray, bool]]:
    """Worker: (paths, unit?, shifted camera?) -> [(embedding, detected)]."""
    from model.learning.camera import LFW_PHOTO_SCALE, shifted_camera

    global _worker
    if _worker is None:
        _worker = Teacher()
    paths, unit, shifted = job
    out = []
    for path in paths:
        image = cv2.cvtColor(np.asarray(cv2.imread(path, cv2.IMREAD_COLOR)), cv2.COLOR_BGR2RGB)
        if shifted:
            image = shifted_camera(image, seed=_stable_seed(path), scale=LFW_PHOTO_SCALE)
        box = _worker.locate(image)
        vector = _worker.embed(image, box or LFW_FALLBACK_BOX)
        if not unit:  # face_recognition's own (unnormalised) descriptor
            vector = vector * _worker.last_norm
        out.append((vector, box is not None))
    return out


def _stable_seed(path: str) -> int:
    import zlib

    return zlib.crc32(Path(path).name.encode("utf-8"))


def embed_lfw(
    root: str | Path,
    people: Sequence[tuple[str, int]],
    *,
    workers: int | None = None,
    progress: Progress | None = None,
    chunk: int = 64,
    unit: bool = True,
    shifted: bool = False,
) -> TeacherLfw:
    """Teacher embeddings of every photo of ``people`` (no cache), on ``workers`` processes.

    ``unit=False`` keeps dlib's raw descriptor (what ``face_recognition`` compares with its
    0.6 tolerance); ``shifted=True`` degrades each photo with the benchmark camera first.
    """
    entries = [(name, i) for name, count in people for i in range(1, count + 1)]
    paths = [str(image_path(root, name, i)) for name, i in entries]
    chunks = [(paths[s : s + chunk], unit, shifted) for s in range(0, len(paths), chunk)]
    results: list[tuple[np.ndarray, bool]] = []
    with ProcessPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        for part in pool.map(_embed_files, chunks):
            results.extend(part)
            if progress is not None:
                progress(len(results), len(paths), f"teacher embedded {len(results)}/{len(paths)}")
    return TeacherLfw(
        embeddings=np.stack([e for e, _ in results]).astype(np.float32)
        if results
        else np.zeros((0, 128), np.float32),
        names=np.array([n for n, _ in entries]),
        indices=np.array([i for _, i in entries], dtype=np.int32),
        detected=np.array([d for _, d in results], dtype=bool),
    )


def load_teacher_lfw(
    root: str | Path,
    *,
    cache: str | Path | None = None,
    people: Sequence[tuple[str, int]] | None = None,
    progress: Progress | None = None,
    unit: bool = True,
    shifted: bool = False,
) -> TeacherLfw:
    """Teacher embeddings of all of LFW, from the cache or computed (~10 min on 2 cores) and cached.

    With ``people`` given (a small test run), nothing is cached unless ``cache`` is given.
    ``unit``/``shifted`` as in ``embed_lfw`` (each combination has its own cache file).
    """
    name = (
        CACHE_NAME
        if unit and not shifted
        else CACHE_NAME.replace(".npz", ("" if unit else "_raw") + ("_shifted" if shifted else "") + ".npz")
    )
    path = Path(cache) if cache is not None else cache_dir() / name
    if path.is_file():
        with np.load(path, allow_pickle=False) as data:
            return TeacherLfw(
                embeddings=data["embeddings"],
                names=data["names"].astype(str),
                indices=data["indices"],
                detected=data["detected"],
            )
    store = cache is not None or people is None
    if people is None:
        people = people_dev_train(root) + people_dev_test(root)
    result = embed_lfw(root, people, progress=progress, unit=unit, shifted=shifted)
    if store:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp.npz")
        os.close(fd)
        try:
            np.savez(
                tmp,
                embeddings=result.embeddings,
                names=result.names.astype(str),
                indices=result.indices,
                detected=result.detected,
            )
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return result


def teacher_embed_images(
    teacher: Teacher, images: Sequence[np.ndarray], boxes: Sequence[tuple[int, int, int, int] | None]
) -> np.ndarray:
    """Embed one face per image (the given box, else the detected face nearest the centre)."""
    out = [
        teacher.embed(img, box or teacher.locate(img, LFW_FALLBACK_BOX) or LFW_FALLBACK_BOX)
        for img, box in zip(images, boxes, strict=True)
    ]
    return np.stack(out) if out else np.zeros((0, 128), np.float32)


__all__: list[str] = ["Teacher", "TeacherLfw", "embed_lfw", "load_teacher_lfw", "teacher_available"]
