"""Labeled Faces in the Wild: the View 1 lists, and aligned crops cached on disk.

LFW is used for training (``peopleDevTrain``), threshold choice (``pairsDevTrain``)
and reporting (``pairsDevTest``, ``peopleDevTest``) only; the app never reads it.

Every photo goes through the app's own MTCNN + five-point alignment, so the
network is trained on crops that look like the ones it will see. LFW photos
often show several people: the labelled one is the face whose box centre is
nearest the image centre (LFW centred the labelled face when it was built).
When MTCNN finds nothing, we fall back to a square crop of the typical face box
(the median of the detected ones) and count those fallbacks.

Detection takes about ten minutes for the 13,233 photos on two CPU cores, so the
aligned 112 x 112 crops are cached once, outside the repository, in one ``.npz``
under the cache directory (``FACEATT_CACHE_DIR``, default ``~/.cache/face-attendance``).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from model.settings import FACE_CROP_SIZE, get_settings

ENV_CACHE_DIR = "FACEATT_CACHE_DIR"
#: Name of the cache file; bump the version when the alignment changes.
CACHE_NAME = "lfw_aligned_112_v1.npz"

#: progress(done, total, message)
Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class Pair:
    """One line of a LFW pairs file: image ``index_a`` of ``name_a`` vs ``index_b`` of ``name_b``.

    Indices are LFW's 1-based image numbers. ``same`` is True for matched pairs.
    """

    name_a: str
    index_a: int
    name_b: str
    index_b: int

    @property
    def same(self) -> bool:
        return self.name_a == self.name_b


@dataclass(frozen=True)
class AlignedLfw:
    """Aligned LFW crops: ``crops`` uint8 [n, 112, 112, 3], with per-row ``names`` and
    ``indices`` (1-based LFW image numbers); ``fallback`` marks rows where MTCNN found
    no face and a centred crop was used."""

    crops: np.ndarray
    names: np.ndarray
    indices: np.ndarray
    fallback: np.ndarray

    def __len__(self) -> int:
        return int(self.crops.shape[0])

    def rows(self, people: Iterable[str]) -> np.ndarray:
        """Row numbers of every image of ``people`` (int64, in cache order)."""
        wanted = set(people)
        return np.flatnonzero(np.fromiter((n in wanted for n in self.names), bool, len(self)))

    def row_of(self) -> dict[tuple[str, int], int]:
        """Map (name, 1-based image number) -> row."""
        return {(str(n), int(i)): r for r, (n, i) in enumerate(zip(self.names, self.indices, strict=False))}

    def pair_rows(self, pairs: Sequence[Pair]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows of both sides of each pair and the same-person labels (1 = same)."""
        lookup = self.row_of()
        a = np.array([lookup[(p.name_a, p.index_a)] for p in pairs], dtype=np.int64)
        b = np.array([lookup[(p.name_b, p.index_b)] for p in pairs], dtype=np.int64)
        same = np.array([p.same for p in pairs], dtype=np.int64)
        return a, b, same


def cache_dir() -> Path:
    """Where caches live (never inside the repository)."""
    return Path(os.environ.get(ENV_CACHE_DIR, Path.home() / ".cache" / "face-attendance"))


def lfw_dir() -> Path:
    return get_settings().lfw_dir


def lfw_available(root: str | Path | None = None) -> bool:
    """True if ``root`` (default: the setting) holds the LFW lists and image folders."""
    base = Path(root) if root is not None else lfw_dir()
    return (base / "peopleDevTrain.txt").is_file() and (base / "pairsDevTest.txt").is_file()


def read_people(path: str | Path) -> list[tuple[str, int]]:
    """A LFW people file (first line: count; then ``name<TAB>n_images``) as (name, count)."""
    lines = Path(path).read_text().split("\n")
    people: list[tuple[str, int]] = []
    for line in lines[1:]:
        parts = line.split()
        if len(parts) == 2:
            people.append((parts[0], int(parts[1])))
    return people


def read_pairs(path: str | Path) -> list[Pair]:
    """A LFW View 1 pairs file: N matched lines ``name i j``, then N mismatched ``a i b j``."""
    pairs: list[Pair] = []
    for line in Path(path).read_text().split("\n")[1:]:
        parts = line.split()
        if len(parts) == 3:
            pairs.append(Pair(parts[0], int(parts[1]), parts[0], int(parts[2])))
        elif len(parts) == 4:
            pairs.append(Pair(parts[0], int(parts[1]), parts[2], int(parts[3])))
    return pairs


def people_dev_train(root: str | Path | None = None) -> list[tuple[str, int]]:
    return read_people(Path(root or lfw_dir()) / "peopleDevTrain.txt")


def people_dev_test(root: str | Path | None = None) -> list[tuple[str, int]]:
    return read_people(Path(root or lfw_dir()) / "peopleDevTest.txt")


def pairs_dev_train(root: str | Path | None = None) -> list[Pair]:
    return read_pairs(Path(root or lfw_dir()) / "pairsDevTrain.txt")


def pairs_dev_test(root: str | Path | None = None) -> list[Pair]:
    return read_pairs(Path(root or lfw_dir()) / "pairsDevTest.txt")


def image_path(root: str | Path, name: str, index: int) -> Path:
    """``<root>/<name>/<name>_<index:04d>.jpg`` (LFW's layout)."""
    return Path(root) / name / f"{name}_{index:04d}.jpg"


def load_aligned_lfw(root: str | Path | None = None, *, cache: str | Path | None = None,
                     progress: Progress | None = None, batch_size: int = 32,
                     people: Sequence[tuple[str, int]] | None = None) -> AlignedLfw:
    """Aligned crops of LFW photos, from the cache if present, else detected and cached.

    ``people`` restricts the photos (default: every person of peopleDevTrain and
    peopleDevTest, i.e. all of LFW). A restricted run is not cached unless ``cache``
    is given explicitly. ``progress(done, total, message)`` is called per batch.
    """
    base = Path(root) if root is not None else lfw_dir()
    if not lfw_available(base):
        raise FileNotFoundError(f"LFW not found in {base} (set FACEATT_LFW_DIR).")
    explicit = cache is not None
    path = Path(cache) if cache is not None else cache_dir() / CACHE_NAME
    if path.is_file():
        return _read_cache(path)
    if people is None:
        people = people_dev_train(base) + people_dev_test(base)
    elif not explicit:
        path = None  # type: ignore[assignment]
    data = align_lfw(base, people, progress=progress, batch_size=batch_size)
    if path is not None:
        _write_cache(path, data)
    return data


def align_lfw(root: str | Path, people: Sequence[tuple[str, int]], *,
              progress: Progress | None = None, batch_size: int = 32) -> AlignedLfw:
    """Detect and align every image of ``people`` (no cache). See the module docstring."""
    from model.core.alignment import align_face, crop_box
    from model.core.detection import load_detector

    detector = load_detector(min_confidence=get_settings().min_detection_confidence)
    entries = [(name, i) for name, count in people for i in range(1, count + 1)]
    total = len(entries)
    crops = np.zeros((total, FACE_CROP_SIZE, FACE_CROP_SIZE, 3), dtype=np.uint8)
    found = np.zeros(total, dtype=bool)
    boxes = np.zeros((total, 4), dtype=np.float64)
    images: dict[int, np.ndarray] = {}
    start = time.monotonic()
    for begin in range(0, total, batch_size):
        chunk = entries[begin:begin + batch_size]
        batch = [_read_rgb(image_path(root, name, i)) for name, i in chunk]
        for offset, (image, faces) in enumerate(zip(batch, detector.detect_batch(batch), strict=False)):
            row = begin + offset
            h, w = image.shape[:2]
            if faces:
                face = min(faces, key=lambda f: (f.box[0] + f.box[2] / 2 - w / 2) ** 2
                           + (f.box[1] + f.box[3] / 2 - h / 2) ** 2)
                crops[row] = align_face(image, face, FACE_CROP_SIZE)
                found[row] = True
                # Box relative to the image centre, to build the typical box for fallbacks.
                boxes[row] = (face.box[0] - w / 2, face.box[1] - h / 2, face.box[2], face.box[3])
            else:
                images[row] = image
        if progress is not None:
            done = min(begin + batch_size, total)
            rate = done / max(time.monotonic() - start, 1e-6)
            progress(done, total, f"aligned {done}/{total} ({rate:.1f} img/s, "
                                  f"{int((~found[:done]).sum())} without a face)")
    typical = np.median(boxes[found], axis=0) if found.any() else np.array([-50, -60, 100, 120])
    for row, image in images.items():
        h, w = image.shape[:2]
        box = (int(typical[0] + w / 2), int(typical[1] + h / 2), int(typical[2]), int(typical[3]))
        crops[row] = crop_box(image, box, FACE_CROP_SIZE)
    names = np.array([name for name, _ in entries])
    indices = np.array([i for _, i in entries], dtype=np.int32)
    return AlignedLfw(crops=crops, names=names, indices=indices, fallback=~found)


def _read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f"cannot read {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _read_cache(path: Path) -> AlignedLfw:
    with np.load(path, allow_pickle=False) as data:
        return AlignedLfw(crops=data["crops"], names=data["names"].astype(str),
                          indices=data["indices"], fallback=data["fallback"])


def _write_cache(path: Path, data: AlignedLfw) -> None:
    """Atomic: written under a temporary name in the same folder, then renamed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp.npz")
    os.close(fd)
    try:
        np.savez(tmp, crops=data.crops, names=data.names.astype(str),
                 indices=data.indices, fallback=data.fallback)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _print_progress(done: int, total: int, message: str) -> None:
    print(message, flush=True)


if __name__ == "__main__":  # python -m model.learning.lfw : build the cache once
    t0 = time.monotonic()
    result = load_aligned_lfw(progress=_print_progress)
    print(f"{len(result)} crops, {int(result.fallback.sum())} fallbacks, "
          f"{time.monotonic() - t0:.0f} s, cache {cache_dir() / CACHE_NAME}", flush=True)
