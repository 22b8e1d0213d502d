"""The gallery: enrolled people as name-labelled folders of aligned face crops.

Layout (see data/README.md)::

    <root>/<Person Name>/person.json      display name, enrolment and consent times
    <root>/<Person Name>/<sha1-16>.jpg    aligned 112 x 112 crops, named by content hash
    <root>/.embeddings/<model>.npz        embedding cache of one model version
    <root>/.lock                          writers take an exclusive lock on it

Embeddings are cached per model version and keyed by the crop's content hash,
so a changed or removed image, or a new model, invalidates exactly the right
entries. Identification reads the cache and never runs the network over the
gallery again while nothing changed.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import numpy as np

from model.errors import ConsentRequiredError, NameTakenError, UnknownPersonError
from model.images import encode_jpeg, load_image
from model.naming import name_key, normalize_name
from model.recognizer import atomic_write_bytes
from model.records import Person

PERSON_FILE = "person.json"
CACHE_DIR = ".embeddings"
LOCK_FILE = ".lock"
CROP_SUFFIX = ".jpg"


class Embedder(Protocol):
    version: str

    def embed(self, faces: np.ndarray | Sequence[np.ndarray]) -> np.ndarray: ...


@dataclass(frozen=True)
class GalleryEmbeddings:
    """Every enrolled crop's embedding, row-aligned with its owner's name and file.

    ``person_rows[name]`` lists the row indices of that person, so scoring can
    aggregate per person without a Python loop over rows.
    """

    matrix: np.ndarray  # float32 [n, d]
    names: tuple[str, ...]  # [n]
    paths: tuple[Path, ...]  # [n]
    people: tuple[str, ...]  # distinct names, sorted
    person_index: np.ndarray  # int32 [n]: index into ``people`` for each row

    def __len__(self) -> int:
        return len(self.names)


class Gallery:
    """Name-labelled folders of face crops under ``root``, safe for concurrent writers."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._memo_lock = threading.Lock()
        self._memo: dict[str, tuple[tuple[tuple[str, str], ...], GalleryEmbeddings]] = {}
        self._hash_memo: dict[tuple[str, int, int], str] = {}

    # ----- reading -------------------------------------------------------------------

    def people(self) -> list[Person]:
        """Enrolled people, sorted by name (case-insensitive). Empty gallery: empty list."""
        found = [self._read_person(folder) for folder in self._person_folders()]
        return sorted(found, key=lambda p: name_key(p.name))

    def person(self, name: str) -> Person:
        return self._read_person(self._folder_of(name))

    def find_person(self, name: str) -> str | None:
        """The enrolled name matching ``name`` ignoring case, or None."""
        try:
            key = name_key(normalize_name(name))
        except ValueError:
            return None
        for folder in self._person_folders():
            if name_key(folder.name) == key:
                return folder.name
        return None

    def image_paths(self, name: str) -> list[Path]:
        """The person's crop files, oldest first."""
        return _crops_in(self._folder_of(name))

    def load_crops(self, name: str) -> list[np.ndarray]:
        return [load_image(path) for path in self.image_paths(name)]

    def __len__(self) -> int:
        return len(self._person_folders())

    # ----- writing -------------------------------------------------------------------

    def add_crops(self, name: str, crops: Sequence[np.ndarray], *, consent: bool) -> list[Path]:
        """Save aligned crops into the person's folder, creating the person if new.

        Nothing is written without ``consent``. A new person whose name differs only
        by case from an enrolled one is refused (``NameTakenError``); the exact same
        name adds photos to that person. Returns the saved files.
        """
        if not consent:
            raise ConsentRequiredError(
                "Consent is required: tick the consent box (or pass --consent). Nothing was stored.")
        name = normalize_name(name)
        encoded = [encode_jpeg(crop) for crop in crops]
        with self._write_lock():
            existing = self.find_person(name)
            if existing is not None and existing != name:
                raise NameTakenError(
                    f"{existing!r} is already enrolled; names that differ only by case are "
                    "not allowed. Use the same spelling to add photos to them.")
            folder = self.root / name
            if existing is None:
                self._create_person_folder(name)
            saved = []
            for data in encoded:
                target = folder / (hashlib.sha1(data).hexdigest()[:16] + CROP_SUFFIX)
                if not target.exists():
                    atomic_write_bytes(target, data)
                saved.append(target)
            self._touch_person(folder)
        return saved

    def remove_image(self, name: str, path: str | Path) -> None:
        """Delete one crop of a person and its cached embeddings."""
        folder = self._folder_of(name)
        target = folder / Path(path).name
        if target.parent != folder or not target.is_file() or target.suffix != CROP_SUFFIX:
            raise UnknownPersonError(f"{Path(path).name} is not one of {folder.name}'s photos.")
        with self._write_lock():
            digest = _file_hash(target)
            target.unlink()
            self._purge_cache({digest})

    def remove_person(self, name: str) -> None:
        """Delete the person's folder, every crop in it, and their cached embeddings."""
        folder = self._folder_of(name)
        with self._write_lock():
            digests = {_file_hash(p) for p in _crops_in(folder)}
            # Rename first (atomic): readers never see a half-deleted person.
            trash = self.root / f".deleting-{uuid.uuid4().hex}"
            os.rename(folder, trash)
            shutil.rmtree(trash)
            self._purge_cache(digests)

    def rename_person(self, old: str, new: str) -> str:
        """Rename a person (folder and display name). Returns the normalised new name."""
        folder = self._folder_of(old)
        new_name = normalize_name(new)
        with self._write_lock():
            clash = self.find_person(new_name)
            if clash is not None and clash != folder.name:
                raise NameTakenError(f"{clash!r} is already enrolled.")
            if new_name != folder.name:
                os.rename(folder, self.root / new_name)
            target = self.root / new_name
            info = self._read_info(target)
            info["name"] = new_name
            info["renamed_at"] = _now()
            atomic_write_bytes(target / PERSON_FILE, _json_bytes(info))
        return new_name

    # ----- embeddings ----------------------------------------------------------------

    def embeddings(self, recognizer: Embedder) -> GalleryEmbeddings:
        """Embeddings of every crop, from the cache; only new or changed crops are embedded."""
        listing = self._listing()
        signature = tuple((name, digest) for name, _, digest in listing)
        with self._memo_lock:
            memo = self._memo.get(recognizer.version)
            if memo is not None and memo[0] == signature:
                return memo[1]
        cache = self._load_cache(recognizer.version)
        # One embedding per distinct crop, even when the same crop sits in two folders.
        missing = list({digest: (path, digest) for _, path, digest in listing
                        if digest not in cache}.values())
        if missing:
            crops = [load_image(path) for path, _ in missing]
            vectors = recognizer.embed(crops)
            fresh = {digest: vectors[i] for i, (_, digest) in enumerate(missing)}
            cache.update(fresh)
            self._save_cache(recognizer.version, fresh)
        result = _assemble(listing, cache)
        with self._memo_lock:
            self._memo[recognizer.version] = (signature, result)
        return result

    # ----- internals -----------------------------------------------------------------

    def _person_folders(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return [p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")]

    def _folder_of(self, name: str) -> Path:
        found = self.find_person(name)
        if found is None:
            raise UnknownPersonError(f"Nobody called {name.strip()!r} is enrolled.")
        return self.root / found

    def _listing(self) -> list[tuple[str, Path, str]]:
        rows = []
        for folder in sorted(self._person_folders(), key=lambda p: name_key(p.name)):
            for path in _crops_in(folder):
                with contextlib.suppress(FileNotFoundError):  # deleted while listing
                    rows.append((folder.name, path, self._memo_hash(path)))
        return rows

    def _memo_hash(self, path: Path) -> str:
        stat = path.stat()
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        digest = self._hash_memo.get(key)
        if digest is None:
            digest = _file_hash(path)
            self._hash_memo[key] = digest
        return digest

    def _read_person(self, folder: Path) -> Person:
        info = self._read_info(folder)
        enrolled = _parse_time(info.get("enrolled_at")) or datetime.fromtimestamp(
            folder.stat().st_mtime, UTC)
        return Person(
            name=folder.name,
            image_count=len(_crops_in(folder)),
            enrolled_at=enrolled,
            consent=bool(info.get("consent", False)),
            consent_at=_parse_time(info.get("consent_at")),
        )

    @staticmethod
    def _read_info(folder: Path) -> dict[str, object]:
        try:
            data = json.loads((folder / PERSON_FILE).read_text(encoding="utf-8"))
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def _create_person_folder(self, name: str) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".new-", dir=self.root))
        now = _now()
        info = {"name": name, "enrolled_at": now, "consent": True, "consent_at": now}
        (staging / PERSON_FILE).write_bytes(_json_bytes(info))
        os.rename(staging, self.root / name)  # the person appears whole, or not at all

    def _touch_person(self, folder: Path) -> None:
        info = self._read_info(folder)
        info["updated_at"] = _now()
        atomic_write_bytes(folder / PERSON_FILE, _json_bytes(info))

    @contextlib.contextmanager
    def _write_lock(self) -> Iterator[None]:
        """Exclusive lock across processes (flock) for every change to the gallery."""
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / LOCK_FILE).open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _cache_path(self, version: str) -> Path:
        return self.root / CACHE_DIR / f"{version}.npz"

    def _load_cache(self, version: str) -> dict[str, np.ndarray]:
        return _read_npz(self._cache_path(version))

    def _save_cache(self, version: str, fresh: dict[str, np.ndarray]) -> None:
        # Merge under the lock: another process may have added entries meanwhile.
        with self._write_lock():
            path = self._cache_path(version)
            cache = _read_npz(path)
            cache.update(fresh)
            _write_npz(path, cache)

    def _purge_cache(self, digests: set[str]) -> None:
        """Remove these crops' embeddings from every model's cache (caller holds the lock)."""
        still_used = {self._memo_hash(p) for folder in self._person_folders() for p in _crops_in(folder)}
        gone = digests - still_used
        cache_dir = self.root / CACHE_DIR
        if gone and cache_dir.is_dir():
            for path in cache_dir.glob("*.npz"):
                cache = _read_npz(path)
                if gone & cache.keys():
                    _write_npz(path, {k: v for k, v in cache.items() if k not in gone})
        with self._memo_lock:
            self._memo.clear()


def _crops_in(folder: Path) -> list[Path]:
    try:
        files = [p for p in folder.iterdir() if p.suffix == CROP_SUFFIX and not p.name.startswith(".")]
    except FileNotFoundError:
        return []
    return sorted(files, key=lambda p: (p.stat().st_mtime_ns, p.name))


def _assemble(listing: list[tuple[str, Path, str]], cache: dict[str, np.ndarray]) -> GalleryEmbeddings:
    names = tuple(name for name, _, _ in listing)
    people = tuple(sorted(set(names), key=name_key))
    lookup = {name: i for i, name in enumerate(people)}
    if listing:
        matrix = np.stack([cache[digest] for _, _, digest in listing]).astype(np.float32)
    else:
        matrix = np.zeros((0, 0), dtype=np.float32)
    return GalleryEmbeddings(
        matrix=matrix,
        names=names,
        paths=tuple(path for _, path, _ in listing),
        people=people,
        person_index=np.array([lookup[n] for n in names], dtype=np.int32),
    )


def _file_hash(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    if not path.exists():
        return {}
    try:
        with np.load(path, allow_pickle=False) as data:
            keys, vectors = data["keys"], data["vectors"]
            return {str(k): vectors[i] for i, k in enumerate(keys)}
    except (OSError, ValueError, KeyError):
        return {}  # a damaged cache is only a cache: rebuild it


def _write_npz(path: Path, cache: dict[str, np.ndarray]) -> None:
    import io

    keys = np.array(sorted(cache), dtype=str)
    vectors = (np.stack([cache[k] for k in keys]).astype(np.float32)
               if len(keys) else np.zeros((0, 0), np.float32))
    buffer = io.BytesIO()
    np.savez(buffer, keys=keys, vectors=vectors)
    atomic_write_bytes(path, buffer.getvalue())


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _json_bytes(data: dict[str, object]) -> bytes:
    return json.dumps(data, indent=2, ensure_ascii=False).encode("utf-8")
