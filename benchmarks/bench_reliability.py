"""Reliability and privacy, case by case (issue 8): one table of what was tried and whether it held.

Run: ``python benchmarks/bench_reliability.py [--only SECTION ...] [--skip-finetune]``
(``make bench-reliability``). Every row really tries its case on a throw-away data folder and
is ``ok`` only when the property it names holds; the script exits with 1 when a row fails.

Sections (``--only`` takes the short name in brackets):

- **bad files** [bad-files]: corrupt, truncated, empty, not-an-image and pixel-bomb files, a
  photo without a face or with two, through ``FaceAttendance``: each is refused with one
  sentence (a ``FaceAttendanceError``) and leaves the gallery byte for byte as it was; a
  16-bit PNG of a face is still read and its face found.
- **names** [names]: names that must be refused create no folder; names people have are
  stored; a case or look-alike twin of an enrolled name is refused (fake crops, no network).
- **concurrency** [concurrency]: threads enrolling at once, identification while a person is
  removed, many check-ins to one session at once (a fake network).
- **crash (kill -9)** [crash]: the kill points of ``tests/model/crash_child.py`` with the
  invariants of ``tests/model/test_crash.py`` (and its real fine-tune, ~1 minute, unless
  ``--skip-finetune``).
- **deletion** [deletion]: rename, then delete with their attendance (the facade, then the CLI):
  the fine-tuned model that learned from the person goes (models record a stable person id),
  and so do their check-ins, roster places, photos and cached embeddings.
- **kiosk without passcode** [kiosk]: Home, Check-in and Verify through Streamlit's ``AppTest``
  with a passcode set never show who is enrolled, checked in or missing, not even the closest
  person of a stranger; a roster name and a session name that are Markdown for an image show
  as text (no image, no link), to the kiosk and to the teacher.
- **passcode** [passcode]: ``PasscodeThrottle`` with a fake clock; hashed passcodes.

The test suite's own helpers drive the cases where it has them (``tests/conftest.py``,
``test_crash``, ``test_images``, ``test_pages``, ``test_kiosk``), so a row and its test cannot
drift apart. About two minutes on two CPU cores, up to half of it the real fine-tune.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib
import importlib.util
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, cast
from unittest import mock

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
TESTS_DIR = REPO_ROOT / "tests"
# The repository first (``model``, ``web_app``), then the test folders whose helpers we reuse.
for _folder in (TESTS_DIR / "web_app", TESTS_DIR / "model", TESTS_DIR, REPO_ROOT):
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))

from model.api import FaceAttendance  # noqa: E402
from model.core import registry  # noqa: E402
from model.core.images import encode_jpeg, encode_png, load_image  # noqa: E402
from model.errors import (  # noqa: E402
    FaceAttendanceError,
    ImageError,
    InvalidNameError,
    MultipleFacesError,
    NameTakenError,
    NoFaceError,
)
from model.settings import Settings, get_settings  # noqa: E402

OK = "ok"
#: Short names for ``--only``, with each section's title in the table, in the order they run.
SECTIONS = {
    "bad-files": "bad files",
    "names": "names",
    "concurrency": "concurrency",
    "crash": "crash (kill -9)",
    "deletion": "deletion",
    "kiosk": "kiosk without passcode",
    "passcode": "passcode",
}
#: Longest failure reason printed (the table stays readable; the rest is in the exception).
MAX_REASON = 300

#: Enrollment photos a teacher might upload by mistake: (case, file name).
BAD_FILES = (
    ("corrupt JPEG", "corrupt.jpg"),
    ("truncated PNG", "truncated.png"),
    ("zero-byte file", "empty.jpg"),
    ("a text file named .jpg", "notes.jpg"),
    ("PNG claiming 40000x40000 pixels", "bomb.png"),
)
#: Names the gallery must refuse, with how the table shows each.
REFUSED_NAMES = (
    ("../x", "'../x'"),
    ("a/b", "'a/b'"),
    ("", "empty name"),
    ("Anna\u200bSmith", "'Anna<U+200B>Smith' (zero-width space)"),
    ("a" * 101, "101-character name"),
    (".hidden", "'.hidden'"),
)
#: Names people have, which the gallery must store.
CJK_100 = ("李小龍" * 34)[:100]
ACCEPTED_NAMES = (
    ("J. R. R. Tolkien", "'J. R. R. Tolkien'"),
    ("Anna Smith 2", "'Anna Smith 2'"),
    ("Nguyễn Thị Minh Khai", "'Nguyễn Thị Minh Khai'"),
    ("李小龍", "'李小龍'"),
    (CJK_100, "100-character CJK name"),
)
#: Twins of the enrolled "Anna Smith 2" that a reader could not tell apart.
TWIN_NAMES = (
    ("ANNA SMITH 2", "'ANNA SMITH 2' (other case)"),
    ("\u0410nna Smith 2", "'Аnna Smith 2' (Cyrillic А)"),
)
#: Threads and people per thread enrolling at once; threads identifying during a removal;
#: threads checking the same people into one session.
ENROLL_THREADS, PEOPLE_PER_THREAD = 8, 3
IDENTIFY_THREADS = 4
CHECKIN_THREADS, CHECKIN_PEOPLE = 8, 30
CRASH_SCENARIOS = ("enroll-new", "enroll-more", "remove", "save-model")
#: A name that is Markdown for an image (and a link), as a person and a session could be called.
MARKDOWN_NAME = "![t](http://127.0.0.1:1/t.png)"
#: The two people enrolled and checked in for the kiosk cases, and one on the class's roster
#: who has not come (who is missing is the teacher's to know, too).
KIOSK_PEOPLE = ("Eileen Collins", "Grace Hopper")
KIOSK_ABSENTEE = "Ada Lovelace"
KIOSK_NAMES = (*KIOSK_PEOPLE, KIOSK_ABSENTEE)
#: Wrong passcode tries before the right one.
WRONG_TRIES = 40


# ----- the table ---------------------------------------------------------------------------

class CaseFailed(Exception):
    """A case's property does not hold; the message says why."""


def expect(condition: object, why: str) -> None:
    """Fail the current case with ``why`` unless ``condition`` holds."""
    if not condition:
        raise CaseFailed(why)


@dataclass(frozen=True)
class Row:
    section: str
    case: str
    outcome: str

    @property
    def ok(self) -> bool:
        return self.outcome == OK


@dataclass
class Table:
    """The rows so far; ``check`` runs one case and records its outcome."""

    rows: list[Row] = field(default_factory=list)

    def check(self, section: str, case: str, attempt: Callable[[], object]) -> None:
        print(f"  {section}: {case}", file=sys.stderr, flush=True)
        self.rows.append(Row(section, case, outcome_of(attempt)))

    def render(self) -> str:
        header = Row("section", "case", "outcome")
        widths = [max(_width(getattr(r, name)) for r in [header, *self.rows])
                  for name in ("section", "case")]
        lines = []
        for row in [header, Row("-" * widths[0], "-" * widths[1], "-------"), *self.rows]:
            lines.append(f"{_pad(row.section, widths[0])}  {_pad(row.case, widths[1])}  {row.outcome}")
        failed = sum(not r.ok for r in self.rows)
        lines.append(f"{len(self.rows)} cases, " + (f"{failed} failed" if failed else "all ok"))
        return "\n".join(lines)


def outcome_of(attempt: Callable[[], object]) -> str:
    """``OK`` when ``attempt()`` returns, else ``FAIL:`` and why."""
    try:
        attempt()
    except CaseFailed as failure:
        return f"FAIL: {_one_line(str(failure))}"
    except AssertionError as failure:  # an invariant of a reused test helper
        return f"FAIL: {_one_line(str(failure)) or 'an invariant broke'}"
    except Exception as error:  # a crash of the code under test is a result
        return f"FAIL: {type(error).__name__}: {_one_line(str(error))}"
    return OK


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 1] + "…"


def _width(text: str) -> int:
    """Columns ``text`` takes in a terminal (CJK letters take two, combining marks none)."""
    return sum(0 if unicodedata.combining(ch) else 2 if unicodedata.east_asian_width(ch) in "WF"
               else 1 for ch in text)


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _width(text))


# ----- shared pieces -------------------------------------------------------------------------

def _tests_module(name: str) -> Any:
    """A module of the test suite (``test_crash``, ``test_kiosk`` ...), imported as pytest
    imports it: with ``tests/conftest.py`` as ``conftest`` (under pytest another folder's
    conftest may hold that name by now)."""
    if name in sys.modules:
        return sys.modules[name]
    saved = sys.modules.get("conftest")
    sys.modules["conftest"] = _suite_conftest()
    try:
        return importlib.import_module(name)
    finally:
        if saved is None:
            sys.modules.pop("conftest", None)
        else:
            sys.modules["conftest"] = saved


_LOADING = threading.Lock()


def _suite_conftest() -> Any:
    """``tests/conftest.py`` (``FakeEmbedder``, ``random_crop``), loaded once by its path
    (threads of the concurrency cases may ask for it at the same moment)."""
    name = "_bench_reliability_conftest"
    with _LOADING:
        if name not in sys.modules:
            spec = importlib.util.spec_from_file_location(name, TESTS_DIR / "conftest.py")
            if spec is None or spec.loader is None:
                raise ImportError(f"cannot load {TESTS_DIR / 'conftest.py'}")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            sys.modules[name] = module
    return sys.modules[name]


def random_crop(seed: int) -> np.ndarray:
    """A distinct fake face crop per seed (the suite's ``random_crop``)."""
    return cast(np.ndarray, _suite_conftest().random_crop(seed))


def astronaut() -> np.ndarray:
    """The public-domain astronaut photo (512 x 512 RGB, one face), as ``tests/conftest.py`` has it."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut())


def _tree(root: Path) -> dict[str, str]:
    """Every folder and file under ``root`` (files with a hash of their bytes), the gallery's
    lock file aside: two equal trees are the same gallery byte for byte."""
    if not root.exists():
        return {}
    state = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        if relative == ".lock":
            continue
        state[relative] = ("folder" if path.is_dir()
                           else hashlib.sha1(path.read_bytes()).hexdigest())
    return state


def _tree_change(before: dict[str, str], after: dict[str, str]) -> str:
    changed = sorted(set(before) ^ set(after) | {k for k in before.keys() & after.keys()
                                                   if before[k] != after[k]})
    return ", ".join(changed[:5]) or "nothing"


def _sentence_problem(message: str, most: int = 1) -> str | None:
    """Why ``message`` is not a clear sentence for a teacher (at most ``most`` of them), or None."""
    if not message.strip():
        return "the message is empty"
    if "\n" in message or "Traceback" in message:
        return f"not one line of text: {message!r}"
    if not message.endswith("."):
        return f"not a sentence (no full stop): {message!r}"
    sentences = len(re.findall(r"[.!?](?:\s+(?=[A-Z'\"])|$)", message))
    if sentences > most:
        return f"{sentences} sentences, not {'one' if most == 1 else f'at most {most}'}: {message!r}"
    return None


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    """Environment variables set for the block, then put back as they were."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class Workspace:
    """A throw-away folder per case, and the detector and network loaded once when a case
    first needs them (a few seconds)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._engine: FaceAttendance | None = None

    def folder(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True)
        return path

    def settings(self, data_dir: Path) -> Settings:
        return replace(get_settings(), data_dir=data_dir, gallery_dir=data_dir / "gallery")

    def facade(self, name: str) -> FaceAttendance:
        """``FaceAttendance`` over a new, empty data folder, sharing the loaded models."""
        from model.school.gallery import Gallery

        if self._engine is None:
            self._engine = FaceAttendance.open(self.settings(self.folder("models-loaded-here")))
        settings = self.settings(self.folder(name))
        return FaceAttendance(self._engine.detector, self._engine.recognizer,
                              Gallery(settings.gallery_dir), settings)


# ----- bad files -------------------------------------------------------------------------

def _write_bad_files(folder: Path) -> dict[str, Path]:
    """The files of ``BAD_FILES`` and the face photos, written into ``folder``."""
    png_claiming = _tests_module("test_images")._png_claiming
    photo = astronaut()
    jpeg, png = encode_jpeg(photo), encode_png(photo)
    third = len(jpeg) // 3
    noise = np.random.default_rng(0).integers(0, 256, third, dtype=np.uint8).tobytes()
    deep = (photo.astype(np.uint16) * 257)[..., ::-1]  # 16 bits a channel, BGR for OpenCV
    import cv2
    from skimage import data

    contents = {
        "corrupt.jpg": jpeg[:third] + noise + jpeg[2 * third:],  # its middle third overwritten
        "truncated.png": png[: len(png) // 2],
        "empty.jpg": b"",
        "notes.jpg": b"Remember: bring the class list on Monday.\n",
        "bomb.png": png_claiming(40_000, 40_000),  # 1.6 gigapixels in a few dozen bytes
        "deep-16-bit.png": cv2.imencode(".png", np.ascontiguousarray(deep))[1].tobytes(),
        "coffee.jpg": encode_jpeg(np.ascontiguousarray(data.coffee())),  # a photo, no face
        "two-people.jpg": encode_jpeg(np.ascontiguousarray(np.concatenate([photo, photo], axis=1))),
    }
    paths = {}
    for name, content in contents.items():
        paths[name] = folder / name
        paths[name].write_bytes(content)
    return paths


def _refuses(engine: FaceAttendance, path: Path, error: type[FaceAttendanceError],
             says: str | None = None) -> None:
    """``path`` is refused with one sentence (an ``error``) by ``aligned_face`` and by
    ``enroll_person``, and the gallery is unchanged. Any other exception escapes: the
    table then shows it as the traceback a teacher would have seen."""
    before = _tree(engine.gallery.root)
    try:
        engine.aligned_face(path, label=path.name)
    except FaceAttendanceError as refused:
        message, kind = str(refused), type(refused)
    else:
        raise CaseFailed("accepted: one face was found in it")
    expect(issubclass(kind, error), f"{kind.__name__}, not {error.__name__}: {message}")
    expect((problem := _sentence_problem(message)) is None, str(problem))
    expect(says is None or says in message, f"does not say {says!r}: {message!r}")
    report = engine.enroll_person("New Student", [path], consent=True, labels=[path.name])
    expect(not report.saved, f"enroll saved {len(report.saved)} photo(s)")
    expect(len(report.rejected) == 1, f"enroll refused {len(report.rejected)} photos, not 1")
    expect((problem := _sentence_problem(report.rejected[0][1])) is None, f"enroll: {problem}")
    after = _tree(engine.gallery.root)
    expect(after == before, f"the gallery changed: {_tree_change(before, after)}")


def _deep_png_has_its_face(engine: FaceAttendance, path: Path) -> None:
    image = load_image(path)
    original = astronaut()
    expect(image.dtype == np.uint8 and image.shape == original.shape,
           f"decoded as {image.dtype} {image.shape}")
    expect(np.abs(image.astype(int) - original).max() <= 1,
           "its colours are not the 8-bit picture's (not scaled by bit depth)")
    faces = engine.find_faces(image)
    expect(len(faces) == 1, f"{len(faces)} faces found, not 1")
    report = engine.enroll_person("Deep Colour", [path], consent=True, labels=[path.name])
    expect(len(report.saved) == 1, f"not enrolled: {report.rejected}")


def section_bad_files(table: Table, ws: Workspace) -> None:
    title = SECTIONS["bad-files"]
    engine = ws.facade("bad-files")
    report = engine.enroll_person(KIOSK_PEOPLE[0], [astronaut()], consent=True)
    expect(len(report.saved) == 1, f"could not enroll the astronaut: {report.rejected}")
    engine.gallery.embeddings(engine.recognizer)  # the cache exists: a refusal writes nothing
    paths = _write_bad_files(ws.folder("bad-files-photos"))
    for case, name in BAD_FILES:
        says = "too many pixels" if name == "bomb.png" else None
        table.check(title, case, partial(_refuses, engine, paths[name], ImageError, says))
    table.check(title, "16-bit PNG of a face: read, face found",
                lambda: _deep_png_has_its_face(ws.facade("bad-files-deep"), paths["deep-16-bit.png"]))
    table.check(title, "photo with no face",
                lambda: _refuses(engine, paths["coffee.jpg"], NoFaceError, "no face"))
    table.check(title, "photo with two faces",
                lambda: _refuses(engine, paths["two-people.jpg"], MultipleFacesError, "2 faces"))


# ----- names -----------------------------------------------------------------------------

def _folders(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_dir()}


def _name_refused(sandbox: Path, name: str, error: type[FaceAttendanceError],
                  twin: str | None = None) -> None:
    """``name`` is refused with a sentence (an ``error``, naming ``twin`` when given); no
    folder appears anywhere under ``sandbox`` and the people are unchanged."""
    from model.school.gallery import Gallery

    gallery = Gallery(sandbox / "gallery")
    before, people = _folders(sandbox), [(p.name, p.image_count) for p in gallery.people()]
    try:
        saved = gallery.add_crops(name, [random_crop(len(name) + 1000)], consent=True)
    except FaceAttendanceError as refused:
        message, kind = str(refused), type(refused)
    else:
        raise CaseFailed(f"accepted, stored in {saved[0].parent.name!r}")
    expect(issubclass(kind, error), f"{kind.__name__}, not {error.__name__}: {message}")
    expect((problem := _sentence_problem(message, most=2)) is None, str(problem))
    expect(twin is None or twin in message, f"does not name {twin!r}: {message!r}")
    after = _folders(sandbox)
    expect(after == before, f"made folders: {sorted(after - before)}")
    expect([(p.name, p.image_count) for p in gallery.people()] == people, "the gallery changed")


def _name_stored(sandbox: Path, name: str, seed: int) -> None:
    """``name`` is stored as written, in a folder of the gallery, with its photos."""
    from model.school.gallery import PERSON_FILE, Gallery

    gallery = Gallery(sandbox / "gallery")
    saved = gallery.add_crops(name, [random_crop(seed), random_crop(seed + 1)], consent=True)
    expect(len(saved) == 2, f"{len(saved)} photos saved, not 2")
    folder = saved[0].parent
    expect(folder.is_dir() and folder.parent == gallery.root, f"no folder in the gallery: {folder}")
    expect(all(p.is_file() for p in saved), "a saved photo is missing")
    expect((folder / PERSON_FILE).is_file(), "the person's card is missing")
    expect(gallery.find_person(name) == name, f"found as {gallery.find_person(name)!r}")
    expect(gallery.person(name).image_count == 2, "the person does not list 2 photos")
    expect(name in [p.name for p in gallery.people()], "not listed among the people")


def section_names(table: Table, ws: Workspace) -> None:
    title = SECTIONS["names"]
    sandbox = ws.folder("names")
    for name, shown in REFUSED_NAMES:
        table.check(title, f"refused: {shown}",
                    partial(_name_refused, sandbox, name, InvalidNameError))
    for seed, (name, shown) in enumerate(ACCEPTED_NAMES):
        table.check(title, f"accepted: {shown}", partial(_name_stored, sandbox, name, 10 * seed))
    for name, shown in TWIN_NAMES:
        table.check(title, f"duplicate refused: {shown}",
                    partial(_name_refused, sandbox, name, NameTakenError, "Anna Smith 2"))


# ----- concurrency -----------------------------------------------------------------------

def _run_threads(target: Callable[[int], None], count: int) -> list[str]:
    """Run ``target(i)`` in ``count`` threads started together; the errors they raised."""
    barrier, errors = threading.Barrier(count), []

    def work(i: int) -> None:
        try:
            barrier.wait(30)
            target(i)
        except Exception as error:  # reported as the case's outcome
            errors.append(f"thread {i}: {type(error).__name__}: {error}")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return errors + [f"thread {i} still running" for i, t in enumerate(threads) if t.is_alive()]


def _enroll_at_once(root: Path) -> None:
    from model.core import files
    from model.school.gallery import Gallery

    gallery = Gallery(root)  # one gallery for every thread, as the app shares one engine

    def enroll(t: int) -> None:
        for i in range(PEOPLE_PER_THREAD):
            gallery.add_crops(f"Student {t}-{i}", [random_crop(100 * t + 10 * i + k) for k in range(2)],
                              consent=True)

    errors = _run_threads(enroll, ENROLL_THREADS)
    expect(not errors, "; ".join(errors))
    expected = {f"Student {t}-{i}" for t in range(ENROLL_THREADS) for i in range(PEOPLE_PER_THREAD)}
    found = {p.name: p.image_count for p in Gallery(root).people()}
    expect(set(found) == expected,
           f"lost {sorted(expected - set(found))}, extra {sorted(set(found) - expected)}")
    expect(set(found.values()) == {2}, f"photo counts {sorted(set(found.values()))}, not 2 each")
    leftovers = [p.name for p in root.iterdir() if files.is_hidden(p) and p.name != ".lock"]
    expect(not leftovers, f"left behind: {leftovers}")


class _SlowFakeRecognizer:
    """The suite's ``FakeEmbedder`` with a cohort and a rule (what identification needs);
    ``embed`` waits at ``gate`` so identifications are caught mid-way."""

    def __init__(self, gate: Callable[[], None]) -> None:
        from model.core.matching import MatchRule

        self._inner = _suite_conftest().FakeEmbedder(version="slow-fake")
        self.version = self._inner.version
        self.rule = MatchRule()
        self.cohort = np.random.default_rng(0).normal(size=(20, self._inner.dim))
        self._gate = gate

    def embed(self, faces: Any) -> np.ndarray:
        self._gate()
        return cast(np.ndarray, self._inner.embed(faces))


def _identify_while_removing(data_dir: Path) -> None:
    from model.school.gallery import CACHE_DIR, Gallery, _file_hash, _read_npz

    inside, release, stop = threading.Semaphore(0), threading.Event(), threading.Event()

    def gate() -> None:
        if not release.is_set():
            inside.release()
            release.wait(30)

    recognizer = _SlowFakeRecognizer(gate)
    settings = replace(get_settings(), data_dir=data_dir, gallery_dir=data_dir / "gallery")
    gallery = Gallery(settings.gallery_dir)
    gallery.add_crops("Ada Lovelace", [random_crop(i) for i in range(3)], consent=True)
    gallery.add_crops("Alan Turing", [random_crop(10 + i) for i in range(2)], consent=True)
    ada = {_file_hash(p) for p in gallery.image_paths("Ada Lovelace")}
    alan = {_file_hash(p) for p in gallery.image_paths("Alan Turing")}
    # identify_crops never uses the detector.
    engine = FaceAttendance(cast(Any, None), cast(Any, recognizer), gallery, settings)
    probe = random_crop(0)  # one of Ada's own photos

    def identify(_: int) -> None:
        while not stop.is_set():
            engine.identify_crops([probe])

    def remove(_: int) -> None:
        engine.remove_person("Ada Lovelace")

    errors: list[str] = []
    workers = threading.Thread(target=lambda: errors.extend(_run_threads(identify, IDENTIFY_THREADS)))
    workers.start()
    waiting = sum(inside.acquire(timeout=10) for _ in range(IDENTIFY_THREADS))
    errors += _run_threads(remove, 1)  # another thread removes her meanwhile
    release.set()
    time.sleep(0.5)  # identification goes on after the removal
    stop.set()
    workers.join(120)
    expect(waiting == IDENTIFY_THREADS, f"only {waiting} of {IDENTIFY_THREADS} identifications overlapped")
    expect(not errors, "; ".join(errors))
    cached = set(_read_npz(gallery.root / CACHE_DIR / f"{recognizer.version}.npz"))
    expect(not ada & cached, f"{len(ada & cached)} cache rows of the removed person remain")
    expect(cached == alan, f"the cache holds {len(cached)} rows, not Alan Turing's {len(alan)}")
    names = {m.name for m in engine.identify_crops([probe])} | set(
        Gallery(gallery.root).embeddings(recognizer).people)
    expect("Ada Lovelace" not in names, "the removed person is still identified")


def _check_in_at_once(path: Path) -> None:
    from model.school.attendance import AttendanceBook

    book = AttendanceBook(path)
    session = book.start_session("Busy class", open_it=True)
    people = [f"Student {i}" for i in range(CHECKIN_PEOPLE)]
    fresh: list[str] = []

    def check_in(t: int) -> None:
        order = people[:]
        random.Random(t).shuffle(order)
        for person in order:  # every thread checks everyone in: each person CHECKIN_THREADS times
            if book.check_in(session.id, person, score=0.9, how="live") is not None:
                fresh.append(person)

    errors = _run_threads(check_in, CHECKIN_THREADS)
    expect(not errors, "; ".join(errors))
    rows = [c.person for c in book.checkins(session.id)]
    expect(sorted(rows) == sorted(people),
           f"{len(rows)} rows for {len(set(rows))} people, not {len(people)} (lost or duplicated)")
    expect(sorted(fresh) == sorted(people), f"{len(fresh)} check-ins reported new, not {len(people)}")


def section_concurrency(table: Table, ws: Workspace) -> None:
    title = SECTIONS["concurrency"]
    table.check(title, f"{ENROLL_THREADS} threads enrolling {PEOPLE_PER_THREAD} people each at once",
                lambda: _enroll_at_once(ws.folder("enroll-threads") / "gallery"))
    table.check(title, f"identify in {IDENTIFY_THREADS} threads while a person is removed",
                lambda: _identify_while_removing(ws.folder("identify-remove")))
    table.check(title, f"{CHECKIN_THREADS} threads checking {CHECKIN_PEOPLE} people into one session",
                lambda: _check_in_at_once(ws.folder("checkins") / "attendance.sqlite3"))


# ----- crash (kill -9) ---------------------------------------------------------------------

def _kill_at_every_step(crash: Any, folder: Path, scenario: str) -> None:
    """``test_crash.test_kill_minus_nine_at_every_step``, step by step, with its helpers."""
    reference = folder / "reference"
    crash._seed(reference)
    old = crash._state(reference)
    done = crash._run(scenario, reference, 0)
    expect(done.returncode == 0, f"the scenario itself failed: {_one_line(done.stderr[-500:])}")
    steps = int(done.stdout.split()[-1])
    expect(old != crash._state(reference) and steps >= 3, f"the scenario changed nothing ({steps} steps)")
    new = crash._state(reference)
    for at in range(1, steps + 1):
        data = folder / f"kill-{at}"
        crash._seed(data)
        killed = crash._run(scenario, data, at)
        expect(killed.returncode == -signal.SIGKILL,
               f"step {at} of {steps}: not killed (exit {killed.returncode}) "
               f"{_one_line(killed.stderr[-300:])}")
        try:
            crash._check_whole(data)
        except AssertionError as broken:
            raise CaseFailed(f"killed at step {at} of {steps}, recovery left: "
                             f"{_one_line(str(broken)) or 'an invariant broken'}") from None
        expect(crash._state(data) in (old, new), f"killed at step {at} of {steps}: neither old nor new state")


def section_crash(table: Table, ws: Workspace, finetune: bool = True) -> None:
    title = SECTIONS["crash"]
    crash = _tests_module("test_crash")
    for scenario in CRASH_SCENARIOS:
        table.check(title, f"{scenario}: killed before every durable step",
                    partial(_kill_at_every_step, crash, ws.folder(f"crash-{scenario}"), scenario))
    if finetune:
        table.check(title, "real fine-tune: killed at first, middle, last step",
                    lambda: crash.test_kill_minus_nine_during_a_real_fine_tune(ws.folder("crash-finetune")))


# ----- deletion ----------------------------------------------------------------------------

def _seed_register(settings: Settings) -> tuple[dict[str, str], Path, Path]:
    """Ada and Alan enrolled (fake crops, embeddings cached), two fine-tuned models (one
    learned from both, active; one from Alan only), both on a class's roster and checked
    into two of its sessions. Returns (person ids, the model that learned from Ada, Alan's)."""
    from model.school.attendance import AttendanceBook
    from model.school.gallery import Gallery

    gallery = Gallery(settings.gallery_dir)
    gallery.add_crops("Ada Lovelace", [random_crop(1), random_crop(2)], consent=True)
    gallery.add_crops("Alan Turing", [random_crop(3), random_crop(4)], consent=True)
    gallery.embeddings(_suite_conftest().FakeEmbedder())
    ids = gallery.person_ids()

    def store(trained_on: list[str]) -> Path:
        card = {"match_rule": {}, "training": {registry.TRAINED_ON_IDS: trained_on}}
        return registry.store_model(lambda path: path.write_bytes(b"fake weights"),
                                    settings.models_dir, card)

    both = store(sorted({ids["Ada Lovelace"], ids["Alan Turing"]}))
    alan_only = store([ids["Alan Turing"]])
    registry.activate_model(settings.models_dir, both, previous=alan_only)
    book = AttendanceBook(settings.attendance_db)
    year7 = book.create_class("Year 7")
    book.add_to_roster(year7.id, ["Ada Lovelace", "Alan Turing"])
    for name in ("Monday", "Tuesday"):
        session = book.start_session(name, class_id=year7.id)
        for person in ("Ada Lovelace", "Alan Turing"):
            book.check_in(session.id, person, score=0.9, how="live")
    return ids, both, alan_only


def _nothing_of_ada_left(settings: Settings, ids: dict[str, str], both: Path, alan_only: Path) -> None:
    """No model that learned from Ada, no attendance row or roster place of hers (under
    either name); Alan keeps his model and rows."""
    from model.school.attendance import AttendanceBook

    models = settings.models_dir
    expect(not both.parent.exists(), "the model that learned from them is still on disk")
    expect(not registry.models_trained_on(models, ids["Ada Lovelace"]), "a model of theirs remains")
    expect(alan_only.is_file(), "Alan Turing's own model was deleted too")
    expect(registry.finetuned_model_path(models) != both, "the active model is still theirs")
    book = AttendanceBook(settings.attendance_db)
    rows = {c.person for c in book.checkins()}
    roster = {p for c in book.classes() for p in book.roster(c.id)}
    expect(rows == {"Alan Turing"}, f"attendance rows left for {sorted(rows)}")
    expect(roster == {"Alan Turing"}, f"roster places left for {sorted(roster)}")


def _rename_then_delete(ws: Workspace) -> None:
    from model.school.gallery import CACHE_DIR, _read_npz

    engine = ws.facade("rename-delete")
    ids, both, alan_only = _seed_register(engine.settings)
    digests = set(_read_npz(next((engine.gallery.root / CACHE_DIR).glob("*.npz"))))
    renamed = engine.rename_person("Ada Lovelace", "Ada King")  # as the People page does
    expect(renamed == "Ada King", f"renamed to {renamed!r}")
    removal = engine.remove_person("ada king", forget_attendance=engine.book)
    expect(removal.models == [both], f"deleted models {[registry.unit_name(m) for m in removal.models]}")
    expect(removal.attendance_rows == 2, f"{removal.attendance_rows} rows deleted, not 2")
    _nothing_of_ada_left(engine.settings, ids, both, alan_only)
    expect(engine.recognizer.path != both, "the engine still runs the model that learned from them")
    gone = not (engine.gallery.root / "Ada King").exists() and not engine.gallery.pending_removals()
    expect(gone, "their folder or the removal note remains")
    cached = {k for p in (engine.gallery.root / CACHE_DIR).glob("*.npz") for k in _read_npz(p)}
    expect(len(digests - cached) == 2, "cached embeddings of their photos remain")


def _cli_rename_then_remove(ws: Workspace) -> None:
    data = ws.folder("cli-remove")
    settings = ws.settings(data)
    ids, both, alan_only = _seed_register(settings)
    env = {**os.environ, "FACEATT_DATA_DIR": str(data)}
    env.pop("FACEATT_GALLERY", None)
    for command in (["rename", "Ada Lovelace", "Ada King"], ["remove", "ada king", "--forget-attendance"]):
        done = subprocess.run([sys.executable, "-m", "model", *command], cwd=REPO_ROOT, env=env,
                              capture_output=True, text=True, timeout=120)
        expect(done.returncode == 0, f"{command[0]}: exit {done.returncode}: {_one_line(done.stderr[-300:])}")
    _nothing_of_ada_left(settings, ids, both, alan_only)


def section_deletion(table: Table, ws: Workspace) -> None:
    title = SECTIONS["deletion"]
    table.check(title, "rename, then delete (facade): their model, rows, photos go",
                lambda: _rename_then_delete(ws))
    table.check(title, "rename, then remove --forget-attendance (CLI): same",
                lambda: _cli_rename_then_remove(ws))


# ----- kiosk without passcode --------------------------------------------------------------

def _names_shown(text: str, names: tuple[str, ...]) -> list[str]:
    return [name for name in names if name.casefold() in text.casefold()]


def _kiosk_page(kiosk: Any, pages: Any, page: str) -> Any:
    """``page`` as the kiosk opens it: no name of the register in any text, option, caption
    or table, and no table at all."""
    at = pages.open_page(page)
    leaked = _names_shown(kiosk.everything_shown(at), KIOSK_NAMES)
    expect(not leaked, f"shows {leaked}")
    expect(not at.dataframe, "shows a table")
    return at


def _kiosk_check_in(kiosk: Any, pages: Any) -> None:
    """Every mode of the kiosk's Check-in page (the teacher's list shows in Snapshot)."""
    at = _kiosk_page(kiosk, pages, "checkin")
    for mode in at.radio(key="checkin_mode").options:
        at.radio(key="checkin_mode").set_value(mode)
        at.run()
        expect(not at.exception, f"{mode}: the page failed: {at.exception}")
        leaked = _names_shown(kiosk.everything_shown(at), KIOSK_NAMES)
        expect(not leaked, f"{mode}: shows {leaked}")
        expect(not at.dataframe and not at.selectbox, f"{mode}: shows a list")


def _kiosk_stranger(kiosk: Any, pages: Any, book: Any, session_id: int) -> None:
    """The astronaut's photo at the kiosk, with the rule refusing everyone: she is a stranger
    whose closest enrolled person is herself; the page must not name her."""
    from model.core.matching import MatchRule
    from web_app.common import get_engine

    engine = get_engine()
    rule = engine.recognizer.rule
    engine.recognizer.rule = MatchRule(name_threshold=1e9, margin=1e9, pair_threshold=1e9,
                                       min_cosine=2.0, adapt_to_gallery=False)
    try:
        at = _kiosk_page(kiosk, pages, "checkin")
        at.radio(key="checkin_mode").set_value("Upload a photo")
        at.run()
        at.file_uploader(key="checkin_upload").set_value(("me.png", encode_png(astronaut()), "image/png"))
        at.run()
    finally:
        engine.recognizer.rule = rule
    expect(not at.exception, f"the page failed: {at.exception}")
    expect("not recognised" in pages.texts(at, "warning"), "the photo was not answered as a stranger")
    leaked = _names_shown(kiosk.everything_shown(at), KIOSK_NAMES)
    expect(not leaked, f"names the closest person: {leaked}")
    expect(len(book.checkins(session_id)) == len(KIOSK_PEOPLE), "a check-in was written")


def _verify_kiosk(kiosk: Any, pages: Any) -> None:
    at = _kiosk_page(kiosk, pages, "verify")
    expect(not at.selectbox, "offers a list of enrolled people")
    options = at.radio(key="verify_mode").options
    expect(len(options) == 2, f"offers the teacher's modes: {options}")


def _shown_as_text(kiosk: Any, pages: Any, page: str, teacher: bool = True) -> None:
    """Every string ``page`` renders as Markdown shows ``MARKDOWN_NAME`` as the text it is."""
    at = pages.open_page(page)
    if teacher:
        at = kiosk.unlock(at)
    if page == "checkin":
        at.radio(key="checkin_mode").set_value("Snapshot")  # the mode that lists who checked in
        at.run()
    kiosk.assert_all_text(at)  # no Markdown payload unescaped, no image, no link, no raw HTML
    expect(MARKDOWN_NAME in kiosk.everything_shown(at), "the name is not shown as written")


def section_kiosk(table: Table, ws: Workspace) -> None:
    from model.school.attendance import AttendanceBook
    from web_app import common

    title = SECTIONS["kiosk"]
    kiosk, pages = _tests_module("test_kiosk"), _tests_module("test_pages")
    data = ws.folder("kiosk") / "data"
    environment = _environment(FACEATT_DATA_DIR=str(data), FACEATT_GALLERY=str(data / "gallery"),
                               FACEATT_BASE_MODEL=str(data / "no-model.keras"),  # the untrained network
                               FACEATT_ADMIN_PASSCODE="", FACEATT_ADMIN_PASSCODE_HASH="")
    with environment, mock.patch("model.school.access.secrets_files", lambda: []):
        common.passcode_throttle.clear()
        engine = common.get_engine()  # the pages' own engine (loaded once per data folder)
        report = engine.enroll_person(KIOSK_PEOPLE[0], [astronaut()], consent=True)
        expect(len(report.saved) == 1, f"could not enroll the astronaut: {report.rejected}")
        engine.gallery.add_crops(KIOSK_PEOPLE[1], [random_crop(i) for i in range(3)], consent=True)
        book = AttendanceBook(get_settings().attendance_db)
        year7 = book.create_class("Year 7")
        book.add_to_roster(year7.id, KIOSK_NAMES)
        session = book.start_session("Maths 7B", class_id=year7.id, open_it=True)
        for person in KIOSK_PEOPLE:
            book.check_in(session.id, person, score=0.9, how="live")
        os.environ["FACEATT_ADMIN_PASSCODE"] = kiosk.PASSCODE
        table.check(title, "Home: names nobody", lambda: _kiosk_page(kiosk, pages, "home"))
        table.check(title, "Check-in, every mode: names nobody, no list",
                    lambda: _kiosk_check_in(kiosk, pages))
        table.check(title, "Check-in of a stranger: closest person not named",
                    lambda: _kiosk_stranger(kiosk, pages, book, session.id))
        table.check(title, "Verify: names nobody, no teacher modes",
                    lambda: _verify_kiosk(kiosk, pages))
        # A roster name and a session name that are Markdown for an image (both free text).
        book.add_to_roster(year7.id, [MARKDOWN_NAME])
        book.start_session(MARKDOWN_NAME, class_id=year7.id, open_it=True)
        table.check(title, f"kiosk's Check-in: session {MARKDOWN_NAME} is text",
                    partial(_shown_as_text, kiosk, pages, "checkin", teacher=False))
        for page, label in (("home", "Home"), ("checkin", "Check-in"), ("attendance", "Attendance")):
            table.check(title, f"teacher's {label}: {MARKDOWN_NAME} is text",
                        partial(_shown_as_text, kiosk, pages, page))


# ----- passcode ----------------------------------------------------------------------------

class _Clock:
    """A fake ``time.monotonic``: seconds that pass only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _unlock(throttle: Any, passcode: Any, typed: str, *keys: str) -> str:
    """What the unlock form does with a typed code: 'wait' (not even checked), 'wrong' or 'open'."""
    if throttle.check(*keys) > 0:
        return "wait"
    if passcode.matches(typed):
        throttle.succeeded(*keys)
        return "open"
    throttle.failed(*keys)
    return "wrong"


def section_passcode(table: Table) -> None:
    from model.school.access import (
        ENV_ADMIN_PASSCODE_HASH,
        MAX_DELAY_S,
        MIN_ITERATIONS,
        PasscodeThrottle,
        configured_passcode,
        hash_passcode,
    )

    title = SECTIONS["passcode"]
    code = "correct horse"
    line = hash_passcode(code, iterations=MIN_ITERATIONS)
    passcode = configured_passcode(environ={ENV_ADMIN_PASSCODE_HASH: line}, secrets=[])
    clock = _Clock()
    throttle = PasscodeThrottle(clock=clock)
    keys = ("session:kiosk-1", "address:10.0.0.7")
    waits: list[float] = []

    def guess() -> None:
        for attempt in range(WRONG_TRIES):  # a patient guesser waits out every delay
            clock.now += throttle.check(*keys)
            answer = _unlock(throttle, passcode, f"guess {attempt}", *keys)
            expect(answer == "wrong", f"guess {attempt + 1} answered {answer!r}")
            waits.append(throttle.check(*keys))
        free = next((i for i, wait in enumerate(waits) if wait > 0), None)
        if free is None:
            raise CaseFailed(f"{WRONG_TRIES} wrong tries and never a wait")
        rising, capped = waits[free:], [w for w in waits if w >= MAX_DELAY_S]
        expect(free >= 1 and not any(waits[:free]), f"waits begin {waits[:free + 1]}")
        expect(all(a < b or a == b == MAX_DELAY_S for a, b in zip(rising, rising[1:], strict=False)),
               f"waits do not grow: {waits}")
        expect(capped and max(waits) == MAX_DELAY_S, f"waits never reach {MAX_DELAY_S} s: {waits}")

    def right_code_waits() -> None:
        expect(len(waits) == WRONG_TRIES, "the wrong tries did not run")
        wait = throttle.check(*keys)
        expect(wait > 0, "no wait after 40 wrong tries")
        expect(_unlock(throttle, passcode, code, *keys) == "wait", "the right code opened at once")
        clock.now += wait - 0.5
        expect(_unlock(throttle, passcode, code, *keys) == "wait", "opened before the wait was over")
        reloaded = ("session:kiosk-2", keys[1])  # a reload is a new browser session, same computer
        expect(_unlock(throttle, passcode, code, *reloaded) == "wait", "a reload skipped the wait")
        clock.now += 0.5
        expect(_unlock(throttle, passcode, code, *keys) == "open",
               "the right code did not open after the wait")
        expect(throttle.check(*keys) == 0, "the wrong tries were not forgotten after opening")

    def hashed() -> None:
        if passcode is None or passcode.hashed is None:
            raise CaseFailed("the hash was not read")
        expect(code not in line, "the hash line holds the passcode")
        expect(passcode.matches(code), "the right code does not match")
        for wrong in ("correct horse ", "Correct horse", "correct", "", "guess 0"):
            expect(not passcode.matches(wrong), f"{wrong!r} matches")
        expect(hash_passcode(code, iterations=MIN_ITERATIONS) != line,
               "two hashes of one code are equal (no salt)")

    table.check(title, f"{WRONG_TRIES} wrong tries: delays grow up to {MAX_DELAY_S:g} s", guess)
    table.check(title, "the right code is refused while the wait lasts", right_code_waits)
    table.check(title, "a hashed passcode matches the right code only", hashed)


# ----- running -------------------------------------------------------------------------------

def run(sections: list[str] | None = None, *, finetune: bool = True,
        workdir: Path | None = None) -> list[Row]:
    """Try the cases of ``sections`` (short names of ``SECTIONS``; all by default) and return
    their rows. Everything is written under ``workdir`` (a temporary folder by default)."""
    unknown = sorted(set(sections or ()) - set(SECTIONS))
    if unknown:
        raise ValueError(f"unknown sections {unknown}; choose from {list(SECTIONS)}")
    chosen = [s for s in SECTIONS if sections is None or s in sections]
    if "kiosk" in chosen:
        # aiortc (streamlit-webrtc) must come before TensorFlow, as in the app's entry point.
        importlib.import_module("web_app.live")
    table = Table()
    with contextlib.ExitStack() as stack:
        root = workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="reliability-")))
        ws = Workspace(root)
        steps: dict[str, Callable[[], None]] = {
            "bad-files": lambda: section_bad_files(table, ws),
            "names": lambda: section_names(table, ws),
            "concurrency": lambda: section_concurrency(table, ws),
            "crash": lambda: section_crash(table, ws, finetune),
            "deletion": lambda: section_deletion(table, ws),
            "kiosk": lambda: section_kiosk(table, ws),
            "passcode": lambda: section_passcode(table),
        }
        for name in chosen:
            print(f"{SECTIONS[name]} ...", file=sys.stderr, flush=True)
            outcome = outcome_of(steps[name])
            if outcome != OK:  # the section stopped outside its cases (setting them up)
                table.rows.append(Row(SECTIONS[name], "setting up the cases", outcome))
    return table.rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=list(SECTIONS),
                        help="run only this section (repeat for several)")
    parser.add_argument("--skip-finetune", action="store_true",
                        help="leave out the real fine-tune killed mid-way (about a minute)")
    args = parser.parse_args()
    start = time.perf_counter()
    table = Table(run(args.only, finetune=not args.skip_finetune))
    print(table.render())
    print(f"run time: {time.perf_counter() - start:.1f} s")
    return 0 if table.rows and all(row.ok for row in table.rows) else 1


if __name__ == "__main__":
    sys.exit(main())
