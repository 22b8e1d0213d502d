"""The gallery: enrolled people as name-labelled folders of aligned face crops.

Layout (see data/README.md)::

    <root>/<Person Name>/person.json      stable id, display name, enrolment and consent times
    <root>/<Person Name>/<sha1-16>.jpg    aligned 112 x 112 crops, named by content hash
    <root>/.embeddings/<model>.npz        embedding cache of one model version
    <root>/.lock                          writers take an exclusive lock on it

Crash safety: a new person is built in a hidden staging folder and appears by one
rename, with their photos; photos added to an enrolled person are listed first in a
hidden journal (``.enrolling-*.json``), so ``recover()`` (run at start-up) can take
back a half-finished addition. Hidden names (a leading dot) never show in a listing.
A folder without a single photo is not a person.

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
import secrets
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import numpy as np

from model.core import files
from model.core.files import atomic_write_bytes
from model.core.images import encode_jpeg, load_image
from model.errors import ConsentRequiredError, LastPhotoError, NameTakenError, UnknownPersonError
from model.naming import (
    confusable_key,
    display_name,
    folder_name,
    name_key,
    normalize_name,
    normalize_student_id,
)
from model.records import Person

PERSON_FILE = "person.json"
CACHE_DIR = ".embeddings"
LOCK_FILE = ".lock"
CROP_SUFFIX = ".jpg"
#: Hidden journal of the photos an unfinished ``add_crops`` was adding to a person.
JOURNAL_PREFIX = ".enrolling-"
#: Hidden note that a person is being removed; kept until everything else that held their
#: face (fine-tuned models, attendance) is deleted too, so a crash is finished at start-up.
REMOVAL_PREFIX = ".removing-"


@dataclass(frozen=True)
class Removal:
    """A person's removal: their stable id, name and photo count, and the note that stays
    until ``finish_removal`` (see ``REMOVAL_PREFIX``)."""

    person_id: str
    name: str
    photos: int
    note: Path | None = None
    forget_attendance: bool = False


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
        self._label_memo: dict[tuple[str, int], str] = {}

    # ----- reading -------------------------------------------------------------------

    def people(self) -> list[Person]:
        """Enrolled people (folders with at least one photo), sorted by name
        (case-insensitive). Folders that cannot be read are skipped (see
        ``unreadable_folders``). Empty gallery: empty list."""
        found = []
        for folder in self._person_folders():
            try:
                person = self._read_person(folder)
            except OSError:
                continue
            if person.image_count:
                found.append(person)
        return sorted(found, key=lambda p: name_key(p.name))

    def unreadable_folders(self) -> list[tuple[str, str]]:
        """(folder name, why) for each folder in the gallery that cannot be read as a person,
        so a page can say so and carry on."""
        problems = []
        for folder in self._person_folders():
            try:
                _list_crops(folder)
            except OSError as exc:
                problems.append((folder.name, f"cannot be read ({exc.strerror or exc})"))
        return problems

    def folder_of(self, name: str) -> Path:
        """The folder holding the person called ``name`` (``UnknownPersonError`` if none)."""
        return self._folder_of(name)

    def person(self, name: str) -> Person:
        return self._read_person(self._folder_of(name))

    def person_ids(self) -> dict[str, str]:
        """Every person's name (as ``people()`` shows it) -> their stable id; also keyed by
        folder name where that differs, so a reader of the folders can map them too."""
        found = {}
        for folder in self._person_folders():
            person_id = _person_id(folder, self._read_info(folder))
            found[folder.name] = person_id
            found[self._label(folder)] = person_id
        return found

    def find_person(self, name: str) -> str | None:
        """The enrolled name matching ``name`` ignoring case, or None. A name is the person's
        name with their student id in brackets when they have one ("Anna Smith (12345)").
        A folder made by hand with a name the app would not accept is found by its own name."""
        folder = self._find_folder(name)
        return self._label(folder) if folder is not None else None

    def find_look_alike(self, name: str, student_id: str | None = None) -> str | None:
        """An enrolled name that a reader could not tell from this one (other case, letters of
        another script that look the same), other than the exact same name; None if none."""
        label = display_name(normalize_name(name), normalize_student_id(student_id))
        key = confusable_key(label)
        for folder in self._person_folders():
            other = self._label(folder)
            if confusable_key(other) == key and other != label:
                return other
        return None

    def image_paths(self, name: str) -> list[Path]:
        """The person's crop files, oldest first."""
        return _crops_in(self._folder_of(name))

    def load_crops(self, name: str) -> list[np.ndarray]:
        return [load_image(path) for path in self.image_paths(name)]

    def __len__(self) -> int:
        return len(self.people())

    # ----- writing -------------------------------------------------------------------

    def add_crops(self, name: str, crops: Sequence[np.ndarray], *, consent: bool,
                  student_id: str | None = None) -> list[Path]:
        """Save aligned crops into the person's folder, creating the person if new.

        Nothing is written without ``consent``. A new person whose name differs only
        by case or by look-alike letters from an enrolled one is refused
        (``NameTakenError``); the exact same name (and student id) adds photos to that
        person. A student id tells two people with the same name apart. All or nothing,
        even under ``kill -9``: a new person appears with every photo at once; photos
        added to an enrolled person are journalled and taken back by ``recover`` if the
        process dies. Returns the saved files.
        """
        if not consent:
            raise ConsentRequiredError(
                "Consent is required: tick the consent box (or pass --consent). Nothing was stored.")
        name = normalize_name(name)
        student_id = normalize_student_id(student_id)
        label = display_name(name, student_id)
        encoded = {hashlib.sha1(data).hexdigest()[:16] + CROP_SUFFIX: data
                   for data in (encode_jpeg(crop) for crop in crops)}
        if not encoded:
            return []
        with self._write_lock():
            folder = self._find_folder(label)
            if folder is not None and self._label(folder) != label:
                raise NameTakenError(
                    f"{self._label(folder)!r} is already enrolled; names that differ only by "
                    "case are not allowed. Use the same spelling to add photos to them.")
            if folder is None:
                if (twin := self.find_look_alike(name, student_id)) is not None:
                    raise NameTakenError(
                        f"{label!r} looks the same as {twin!r}, who is already enrolled (letters "
                        "from another alphabet, or another case). Use the same spelling to add "
                        "photos to them, or add a student id to tell two people apart.")
                folder = self._create_person(name, student_id, encoded)
            else:
                self._add_to_person(folder, encoded)
        return [folder / file_name for file_name in encoded]

    def remove_image(self, name: str, path: str | Path) -> None:
        """Delete one crop of a person and its cached embeddings. A person's last photo is
        not deleted (``LastPhotoError``): delete the person instead."""
        folder = self._folder_of(name)
        target = folder / Path(path).name
        label = self._label(folder)
        if target.parent != folder or not target.is_file() or target.suffix != CROP_SUFFIX:
            raise UnknownPersonError(f"{Path(path).name} is not one of {label}'s photos.")
        with self._write_lock():
            if len(_crops_in(folder)) <= 1:
                raise LastPhotoError(
                    f"That is {label}'s only photo. To remove them completely, delete "
                    "the person on the People page.")
            target.unlink()
            self._purge_cache()

    def remove_person(self, name: str, *, forget_attendance: bool = False) -> Removal:
        """Delete the person's folder, every crop in it, and their cached embeddings.

        A hidden note of the removal stays until ``finish_removal``: the caller deletes
        what else learned from the face (models, attendance) in between, and a crash
        there is finished by the next start-up (``pending_removals``)."""
        with self._write_lock():
            folder = self._folder_of(name)
            person_id = _person_id(folder, self._read_info(folder))
            label = self._label(folder)
            crops = _crops_in(folder)
            note = self.root / f"{REMOVAL_PREFIX}{os.getpid()}-{secrets.token_hex(6)}.json"
            atomic_write_bytes(note, _json_bytes({"id": person_id, "name": label,
                                                  "folder": folder.name,
                                                  "forget_attendance": forget_attendance}))
            # Renamed away first (atomic): readers never see a half-deleted person.
            files.remove_tree(folder)
            self._purge_cache()
        return Removal(person_id=person_id, name=label, photos=len(crops), note=note,
                       forget_attendance=forget_attendance)

    def finish_removal(self, removal: Removal) -> None:
        """Everything else that held this person's face is gone: drop the note."""
        if removal.note is not None:
            removal.note.unlink(missing_ok=True)

    def pending_removals(self) -> list[Removal]:
        """Removals whose process died before ``finish_removal`` (their folder is deleted
        again here if it is still there), for the caller to finish."""
        found: list[Removal] = []
        if not self.root.is_dir():
            return found
        with self._write_lock():
            for note in sorted(self.root.glob(f"{REMOVAL_PREFIX}*.json")):
                pid = note.name[len(REMOVAL_PREFIX):].split("-", 1)[0]
                if pid.isdigit() and files.writer_alive(int(pid)):
                    continue
                info = self._read_json(note)
                person_id, name = str(info.get("id", "")), str(info.get("name", ""))
                stored = Path(str(info.get("folder", ""))).name
                folder = self.root / stored if stored else None
                if folder is not None and folder.is_dir() and not files.is_hidden(folder) and \
                        _person_id(folder, self._read_info(folder)) == person_id:
                    files.remove_tree(folder)
                    self._purge_cache()
                found.append(Removal(person_id=person_id, name=name, photos=0, note=note,
                                     forget_attendance=bool(info.get("forget_attendance"))))
        return found

    def rename_person(self, old: str, new: str, *, student_id: str | None = None,
                      keep_student_id: bool = True) -> str:
        """Rename a person (and set their ``student_id`` unless ``keep_student_id``; the
        stable id stays). Returns their new name as ``people()`` shows it."""
        new_name = normalize_name(new)
        with self._write_lock():
            folder = self._folder_of(old)
            info = self._read_info(folder)
            sid = (normalize_student_id_or_none(info.get("student_id")) if keep_student_id
                   else normalize_student_id(student_id))
            label = display_name(new_name, sid)
            clash = self._find_folder(label)
            if clash is not None and clash != folder:
                raise NameTakenError(f"{self._label(clash)!r} is already enrolled.")
            twin = self.find_look_alike(new_name, sid)
            if twin is not None and twin != self._label(folder):
                raise NameTakenError(f"{label!r} looks the same as {twin!r}, who is already "
                                     "enrolled.")
            info["id"] = _person_id(folder, info)  # fixed before the folder name changes
            info["name"], info["student_id"] = new_name, sid
            info["renamed_at"] = _now()
            atomic_write_bytes(folder / PERSON_FILE, _json_bytes(info))
            target = self.root / folder_name(label)
            if target != folder and not target.exists():
                os.rename(folder, target)
        return label

    def recover(self) -> list[Path]:
        """Start-up repair after a crash: take back photos of an enrollment that never
        finished, delete hidden temporaries of dead writers, drop person folders this app
        made that hold no photo, and give every person a stable id. Returns what was
        removed."""
        if not self.root.is_dir():
            return []
        removed: list[Path] = []
        with self._write_lock():
            for folder in self._person_folders():
                try:
                    journals = [p for p in folder.iterdir() if p.name.startswith(JOURNAL_PREFIX)]
                except OSError:
                    continue
                for journal in journals:  # under the lock, every journal is a dead writer's
                    removed += self._roll_back(folder, journal)
            removed += files.sweep_temporaries(self.root, depth=1)
            for folder in self._person_folders():
                with contextlib.suppress(OSError):
                    entries = list(folder.iterdir())
                    if [p.name for p in entries if not files.is_hidden(p)] == [PERSON_FILE]:
                        files.remove_tree(folder)  # made by us, never got a photo
                        removed.append(folder)
                    elif (folder / PERSON_FILE).is_file() and "id" not in self._read_info(folder):
                        info = self._read_info(folder)
                        info["id"] = _person_id(folder, info)
                        atomic_write_bytes(folder / PERSON_FILE, _json_bytes(info))
            if removed:
                self._purge_cache()
        return removed

    @contextlib.contextmanager
    def write_lock(self) -> Iterator[None]:
        """Hold the gallery's exclusive lock (across processes): while held, nobody enrolls,
        renames or removes. Used by the model registry to publish a fine-tuned model only
        if everyone it learned from is still enrolled."""
        with self._write_lock():
            yield

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
            crops, embedded = [], []
            for path, digest in missing:
                with contextlib.suppress(FileNotFoundError):  # removed meanwhile
                    crops.append(load_image(path))
                    embedded.append(digest)
            vectors = recognizer.embed(crops) if crops else np.zeros((0, 0), np.float32)
            fresh = {digest: vectors[i] for i, digest in enumerate(embedded)}
            cache.update(fresh)
            self._save_cache(recognizer.version, fresh)
            listing = [row for row in listing if row[2] in cache]
        result = _assemble(listing, cache)
        with self._memo_lock:
            self._memo[recognizer.version] = (signature, result)
        return result

    def remember_embeddings(self, version: str, vectors: dict[str, np.ndarray]) -> None:
        """Put embeddings already computed (by the network of ``version``) into the cache,
        keyed by the SHA-1 of the stored crop file's bytes, so ``embeddings`` does not run
        the network over them again: a bulk import embeds its crops anyway. Entries of
        crops no longer in the gallery are dropped."""
        if vectors:
            self._save_cache(version, {k: np.asarray(v, np.float32) for k, v in vectors.items()})

    # ----- internals -----------------------------------------------------------------

    def _person_folders(self) -> list[Path]:
        # scandir: whether an entry is a folder comes with the listing, not one stat each
        # (this runs a few times per enrollment; a school's gallery has thousands).
        try:
            with os.scandir(self.root) as entries:
                found = [Path(entry.path) for entry in entries if entry.is_dir()]
            return [folder for folder in found if not files.is_hidden(folder)]
        except (FileNotFoundError, NotADirectoryError):
            return []

    def _folder_of(self, name: str) -> Path:
        found = self._find_folder(name)
        if found is None:
            raise UnknownPersonError(f"Nobody called {name.strip()!r} is enrolled.")
        return found

    def _listing(self) -> list[tuple[str, Path, str]]:
        rows = []
        labelled = sorted(((self._label(f), f) for f in self._person_folders()),
                          key=lambda pair: name_key(pair[0]))
        for label, folder in labelled:
            for path in _crops_in(folder):
                with contextlib.suppress(FileNotFoundError):  # deleted while listing
                    rows.append((label, path, self._memo_hash(path)))
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
            name=self._label(folder),
            image_count=len(_list_crops(folder)),
            enrolled_at=enrolled,
            consent=bool(info.get("consent", False)),
            consent_at=_parse_time(info.get("consent_at")),
            id=_person_id(folder, info),
            student_id=normalize_student_id_or_none(info.get("student_id")),
        )

    def _label(self, folder: Path) -> str:
        """The person's name as shown and matched: the name in their card (else the
        folder's) with their student id in brackets when they have one."""
        try:
            stamp = (folder / PERSON_FILE).stat().st_mtime_ns
        except OSError:
            stamp = -1
        key = (str(folder), stamp)
        label = self._label_memo.get(key)
        if label is None:
            info = self._read_info(folder)
            name = _text(info.get("name")) or folder.name
            label = display_name(name, normalize_student_id_or_none(info.get("student_id")))
            self._label_memo[key] = label
        return label

    def _find_folder(self, name: str) -> Path | None:
        keys = {name_key(name.strip())}
        with contextlib.suppress(ValueError):
            keys.add(name_key(normalize_name(name)))
        for folder in self._person_folders():
            if name_key(self._label(folder)) in keys or name_key(folder.name) in keys:
                return folder
        return None

    @staticmethod
    def _read_info(folder: Path) -> dict[str, object]:
        return Gallery._read_json(folder / PERSON_FILE)

    @staticmethod
    def _read_json(path: Path) -> dict[str, object]:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def _create_person(self, name: str, student_id: str | None, crops: dict[str, bytes]) -> Path:
        """Build the person's folder, card and photos hidden, then publish it by one rename."""
        now = _now()
        info: dict[str, object] = {"id": uuid.uuid4().hex, "name": name, "student_id": student_id,
                "enrolled_at": now, "consent": True, "consent_at": now, "updated_at": now}
        target = self.root / folder_name(display_name(name, student_id))
        n = 1
        while target.exists():  # a folder someone made by hand, or a shortened-name twin
            n += 1
            target = self.root / f"{folder_name(display_name(name, student_id))}~{n}"
        with files.staging_folder(self.root) as staging:
            for file_name, data in crops.items():
                (staging / file_name).write_bytes(data)
            (staging / PERSON_FILE).write_bytes(_json_bytes(info))
            files.publish_folder(staging, target)
        return target

    def _add_to_person(self, folder: Path, crops: dict[str, bytes]) -> None:
        """Add photos to an existing person: the new files are journalled first, so a crash
        part-way is rolled back by ``recover`` (old state), never left half-done."""
        fresh = {n: d for n, d in crops.items() if not (folder / n).exists()}
        journal = folder / f"{JOURNAL_PREFIX}{os.getpid()}-{secrets.token_hex(6)}.json"
        atomic_write_bytes(journal, json.dumps(sorted(fresh)).encode("utf-8"))
        for file_name, data in fresh.items():
            atomic_write_bytes(folder / file_name, data)
        info = self._read_info(folder)
        now = _now()
        info.setdefault("name", folder.name)
        info["id"] = _person_id(folder, info)
        info.setdefault("enrolled_at", now)
        info["consent"], info["consent_at"], info["updated_at"] = True, now, now
        atomic_write_bytes(folder / PERSON_FILE, _json_bytes(info))
        journal.unlink()

    def _roll_back(self, folder: Path, journal: Path) -> list[Path]:
        try:
            added = json.loads(journal.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            added = []
        removed = []
        for file_name in added if isinstance(added, list) else []:
            target = folder / Path(str(file_name)).name
            if target.suffix == CROP_SUFFIX and target.exists():
                target.unlink()
                removed.append(target)
        journal.unlink(missing_ok=True)
        return removed + [journal]

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
        # Merge under the lock: another process may have added entries meanwhile, and a
        # person removed while we embedded their photos must not come back into the cache.
        with self._write_lock():
            present = {digest for _, _, digest in self._listing()}
            kept = {k: v for k, v in fresh.items() if k in present}
            if not kept:
                return
            path = self._cache_path(version)
            cache = _read_npz(path)
            cache.update(kept)
            _write_npz(path, cache)

    def _purge_cache(self) -> None:
        """Remove every embedding no crop uses any more from every model's cache (caller
        holds the lock)."""
        still_used = {digest for _, _, digest in self._listing()}
        cache_dir = self.root / CACHE_DIR
        if cache_dir.is_dir():
            for path in cache_dir.glob("*.npz"):
                cache = _read_npz(path)
                if cache.keys() - still_used:
                    _write_npz(path, {k: v for k, v in cache.items() if k in still_used})
        with self._memo_lock:
            self._memo.clear()


def _person_id(folder: Path, info: dict[str, object]) -> str:
    """The stable id in the person's card; for a folder made by hand (no id yet), one
    derived from the folder name, which ``recover`` or the first write then keeps."""
    stored = info.get("id")
    if isinstance(stored, str) and stored:
        return stored
    return "n" + hashlib.sha1(name_key(folder.name).encode("utf-8")).hexdigest()[:31]


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def normalize_student_id_or_none(value: object) -> str | None:
    """A stored student id, or None when missing or not valid (a hand-edited card)."""
    try:
        return normalize_student_id(_text(value))
    except ValueError:
        return None


def _list_crops(folder: Path) -> list[Path]:
    """The crop files of a folder; raises ``OSError`` when it cannot be read."""
    return [p for p in folder.iterdir() if p.suffix == CROP_SUFFIX and not files.is_hidden(p)]


def _crops_in(folder: Path) -> list[Path]:
    """The crop files of a folder, oldest first (none when it is gone or unreadable)."""
    try:
        listed = _list_crops(folder)
    except OSError:
        return []
    found = []
    for path in listed:
        with contextlib.suppress(FileNotFoundError):  # deleted while listing
            found.append((path.stat().st_mtime_ns, path.name, path))
    return [path for _, _, path in sorted(found)]


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
