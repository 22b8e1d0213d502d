"""Reading what a teacher brings: folders of photos named after each person, a zip of such
folders, a roster CSV. Nothing here detects faces (the facade does, ``FaceAttendance.
import_folders``); this module only finds the people and their photo files, safely.

The seed layout::

    photos/
      Ada Lovelace/   1.jpg 2.jpg ...
      Alan_Turing/    a.png ...

Each sub-folder is a person; an underscore in its name stands for a space (``Alan_Turing``
is "Alan Turing"). Hidden entries (``.DS_Store``, ``__MACOSX``) are ignored; files that
are not photos are reported, never read as one. A link to a photo file (what photo
managers and scripts make) is read as that photo, wherever it points: the folder is the
teacher's own, on their own machine. A link that leads to no file is reported; a
person folder that is itself a link is not followed (it could lead back into the tree).
A zip may hold no link at all (``extract_zip``). A zip holding one top folder with the
person folders inside (``class.zip/7B/Ada/1.jpg``) is read the same way.
"""

from __future__ import annotations

import csv
import io
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from model.errors import FaceAttendanceError
from model.naming import normalize_name, normalize_student_id

#: File endings read as photos (what ``model.core.images.load_image`` decodes).
PHOTO_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"})
#: Limits on an uploaded zip: members, bytes once unpacked, bytes of one member. A class
#: of 40 with 20 phone photos each is ~800 files and ~4 GB at most; more is refused
#: before anything is written (a zip bomb expands a few kB into gigabytes).
MAX_ZIP_MEMBERS = 5_000
MAX_ZIP_BYTES = 4_000_000_000
MAX_ZIP_MEMBER_BYTES = 60_000_000
#: Names ignored in a folder tree or zip: operating-system clutter.
_CLUTTER = frozenset({"__MACOSX", "Thumbs.db", "desktop.ini"})


class ImportProblem(FaceAttendanceError):
    """A folder tree, zip or roster that cannot be imported (the sentence says why)."""


@dataclass(frozen=True)
class PersonFolder:
    """One person's folder: the name it gives, its photo files, the files left out."""

    name: str
    folder: Path
    photos: list[Path] = field(default_factory=list)
    not_photos: list[str] = field(default_factory=list)
    #: (file, why) for entries left out for another reason than not being a photo.
    left_out: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class PersonImport:
    """What importing one folder did: photos used, photos refused (and why), or, for the
    whole folder, why nothing was stored (``error``)."""

    name: str
    used: int = 0
    refused: list[tuple[str, str]] = field(default_factory=list)
    error: str | None = None
    #: Other enrolled people these photos would be named as (``EnrollmentReport``).
    similar_to: list[tuple[str, float]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None and self.used > 0


@dataclass(frozen=True)
class ImportReport:
    """A whole import: one row per person folder, the entries skipped, the class."""

    people: list[PersonImport] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    class_name: str | None = None

    @property
    def enrolled(self) -> list[str]:
        return [p.name for p in self.people if p.ok]

    @property
    def photos_used(self) -> int:
        return sum(p.used for p in self.people)


@dataclass(frozen=True)
class RosterEntry:
    """One line of a roster CSV: a name and an optional student id."""

    name: str
    student_id: str | None = None


def person_folders(root: str | Path) -> tuple[list[PersonFolder], list[tuple[str, str]]]:
    """The person folders under ``root`` (sorted by name) and the entries skipped with why.

    Raises ``ImportProblem`` when ``root`` is not a folder or holds no person folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise ImportProblem(f"{root} is not a folder.")
    root = _single_top_folder(root)
    found, skipped = [], []
    for entry in sorted(root.iterdir(), key=lambda p: p.name.casefold()):
        if _ignored(entry.name):
            continue
        if entry.is_symlink() and entry.is_dir():
            skipped.append((entry.name, "a link to a folder: links to folders are not "
                                        "followed (one could lead back into this folder); "
                                        "put the photos, or links to them, in a real folder"))
            continue
        if entry.is_symlink() or not entry.is_dir():
            skipped.append((entry.name, "not a folder: put each person's photos in a folder "
                                        "named after them"))
            continue
        photos, others, left_out = [], [], []
        for item in sorted(entry.rglob("*"), key=lambda p: str(p).casefold()):
            relative = item.relative_to(entry)
            if any(_ignored(part) for part in relative.parts):
                continue
            if item.is_symlink() and not item.is_file():
                left_out.append((str(relative), f"{relative}: a link that leads to no file "
                                                "(its target was moved or deleted); skipped"))
                continue
            if not item.is_file():  # a folder (walked into) or something else
                continue
            if item.suffix.lower() in PHOTO_SUFFIXES:
                photos.append(item)  # a link to a photo file is read as that photo
            else:
                others.append(str(relative))
        found.append(PersonFolder(name=entry.name.replace("_", " "), folder=entry,
                                  photos=photos, not_photos=others, left_out=left_out))
    if not found:
        raise ImportProblem(f"{root} holds no folder of photos: make one folder per person, "
                           "named after them, with their photos inside.")
    return found, skipped


def extract_zip(data: bytes | Path, target: Path) -> Path:
    """Unpack a zip of person folders into the empty folder ``target``, refusing anything
    unsafe before a byte is written: absolute paths, ``..``, links, too many members or
    bytes. Returns ``target``."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data) if isinstance(data, bytes) else data)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ImportProblem(f"This file is not a zip archive we can read ({exc}).") from None
    with archive:
        members = archive.infolist()
        for member in members:
            member.filename = _member_name(member)
        if len(members) > MAX_ZIP_MEMBERS:
            raise ImportProblem(f"The zip holds {len(members)} entries; at most "
                               f"{MAX_ZIP_MEMBERS} are accepted.")
        total = 0
        for member in members:
            path = PurePosixPath(member.filename.replace("\\", "/"))
            if path.is_absolute() or ".." in path.parts or ":" in member.filename:
                raise ImportProblem(f"The zip entry {member.filename!r} points outside the "
                                   "zip; nothing was imported.")
            if stat.S_ISLNK(member.external_attr >> 16):
                raise ImportProblem(f"The zip entry {member.filename!r} is a link; nothing "
                                   "was imported.")
            if member.file_size > MAX_ZIP_MEMBER_BYTES:
                raise ImportProblem(f"The zip entry {member.filename!r} is "
                                   f"{member.file_size // 1_000_000} MB; a photo may be at "
                                   f"most {MAX_ZIP_MEMBER_BYTES // 1_000_000} MB.")
            total += member.file_size
        if total > MAX_ZIP_BYTES:
            raise ImportProblem(f"The zip unpacks to {total // 1_000_000} MB; at most "
                               f"{MAX_ZIP_BYTES // 1_000_000} MB are accepted.")
        target.mkdir(parents=True, exist_ok=True)
        for member in members:
            if member.is_dir():
                continue
            destination = target.joinpath(
                *PurePosixPath(member.filename.replace("\\", "/")).parts)
            destination.parent.mkdir(parents=True, exist_ok=True)
            try:
                with archive.open(member) as source, open(destination, "wb") as sink:
                    # Read at most the declared size (+1 to notice a lying header).
                    data_read = source.read(member.file_size + 1)
                    if len(data_read) > member.file_size:
                        raise ImportProblem(f"The zip entry {member.filename!r} is larger "
                                           "than it says; nothing was imported.")
                    sink.write(data_read)
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                raise ImportProblem(f"The zip entry {member.filename!r} is damaged "
                                   f"({exc}).") from None
    return target


def read_roster(data: bytes | str) -> tuple[list[RosterEntry], list[tuple[int, str]]]:
    """A roster CSV: one person per line, the name first and an optional student id
    second (commas, semicolons or tabs between). A first line ``name[,student id]`` is a
    header. Returns the entries (duplicates dropped) and ``(line number, why)`` for the
    lines refused (names are checked by ``model.naming``)."""
    text = _decode_text(data) if isinstance(data, bytes) else data
    text = text.lstrip("\ufeff")
    # The separator is the one most lines use (Excel writes ';' where ',' is a decimal
    # comma); a file of names alone has none.
    lines = [line for line in text.splitlines() if line.strip()]
    delimiter = max(",;\t", key=lambda d: (sum(d in line for line in lines), d == ","))
    entries: dict[str, RosterEntry] = {}
    refused = []
    for number, row in enumerate(csv.reader(io.StringIO(text), delimiter=delimiter),
                                start=1):
        cells = [cell.strip() for cell in row]
        if not any(cells):
            continue
        if number == 1 and cells[0].casefold() in ("name", "names", "student", "full name"):
            continue
        try:
            name = normalize_name(cells[0])
            sid = normalize_student_id(cells[1]) if len(cells) > 1 else None
        except FaceAttendanceError as exc:
            refused.append((number, str(exc)))
            continue
        entry = RosterEntry(name, sid)
        entries.setdefault(f"{name.casefold()}\0{sid or ''}", entry)
    return list(entries.values()), refused


def _decode_text(data: bytes) -> str:
    """A roster file's text: UTF-8 (with or without a BOM), else Windows-1252, which is what
    Excel writes as "CSV" on many Western European Windows machines."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _member_name(member: zipfile.ZipInfo) -> str:
    """A zip entry's name as its maker meant it. Without the UTF-8 flag, ``zipfile`` reads
    names as CP437; macOS and many tools write UTF-8 without setting the flag, so a folder
    "Zoë" would come out as "Zo├½". Names that are valid UTF-8 once re-encoded are read as
    UTF-8; others stay CP437 (old DOS and Windows zips)."""
    if member.flag_bits & 0x800:
        return member.filename
    try:
        return member.filename.encode("cp437").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return member.filename


def _single_top_folder(root: Path) -> Path:
    """``root`` itself, or the one folder inside it when it holds nothing else (a zip of
    a class folder)."""
    entries = [e for e in root.iterdir() if not _ignored(e.name)]
    if len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink():
        inner = [e for e in entries[0].iterdir() if not _ignored(e.name)]
        if inner and all(e.is_dir() for e in inner):
            return entries[0]
    return root


def _ignored(name: str) -> bool:
    return name.startswith(".") or name in _CLUTTER
