"""The public facade: detect, align, embed and match in one object.

``FaceAttendance.open()`` loads the detector and the active network once; every
method then works on plain numpy images (RGB uint8) or image sources (paths,
bytes) and returns frozen records. The web app wraps one instance in
``st.cache_resource``; the CLI makes one per run, so many photos load the
network once.
"""

from __future__ import annotations

import bisect
import hashlib
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from model.core import registry
from model.core.alignment import align_face
from model.core.detection import FaceDetector, load_detector
from model.core.images import ImageSource, encode_jpeg, load_image
from model.core.matching import Decision, GalleryIndex
from model.core.recognizer import Recognizer, load_recognizer
from model.errors import (
    ConsentRequiredError,
    DifferentPersonError,
    FaceAttendanceError,
    FaceQualityError,
    MultipleFacesError,
    NoFaceError,
)
from model.naming import display_name, name_key, normalize_name, normalize_student_id
from model.records import DetectedFace, Match, Verification
from model.school.attendance import RegisterBook, open_register
from model.school.classes import SchoolClass
from model.school.gallery import Gallery, GalleryEmbeddings
from model.school.importing import (
    ImportReport,
    PersonFolder,
    PersonImport,
    RosterEntry,
    extract_zip,
    person_folders,
    read_roster,
)
from model.settings import Settings, get_settings

#: Variance of the Laplacian of the aligned crop's grey image below which we call
#: it blurry. Sharp webcam faces score in the hundreds; motion blur drops it
#: under ~30. Raise it to demand sharper enrollment photos.
BLUR_THRESHOLD = 30.0

#: Faces whose box area is within this share of the largest one's count as equally large
#: when Verify picks the main face of a group photo; among them the most central wins.
#: Raise it to let centrality decide between faces of more different sizes.
MAIN_FACE_SIZE_TOLERANCE = 0.10

#: A bulk import reads and detects this many people ahead (in a worker thread) and embeds
#: their crops in one batch: the network costs ~12 ms a crop two at a time, ~2 ms in a
#: batch of 32 (2 CPU cores). More only holds more photos in memory.
IMPORT_BATCH = 16

ImageInput = ImageSource | np.ndarray


@dataclass(frozen=True)
class _ReadFolder:
    """One person folder of a bulk import after reading and detection (worker thread):
    the name checked, the good crops, the photos refused (label, why), or why the whole
    folder is refused (``error``)."""

    folder: PersonFolder
    plain: str = ""
    crops: list[np.ndarray] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)
    error: str | None = None
    # Filled in by ``_BulkEnrollment.embedded``: the crops' embeddings, and those of the
    # crops as the gallery stores them (JPEG), keyed by the stored file's SHA-1.
    query: np.ndarray | None = None
    stored: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class FaceAssessment:
    """Whether a detected face is good enough to enroll, and why not."""

    face: DetectedFace
    crop: np.ndarray  # aligned 112 x 112 RGB
    blur: float  # variance of the Laplacian; higher is sharper
    problem: str | None  # a sentence for the user, None when the face is usable

    @property
    def ok(self) -> bool:
        return self.problem is None


@dataclass(frozen=True)
class EnrollmentReport:
    """What ``enroll_person`` did: files saved, photos refused (with reasons), look-alikes."""

    name: str
    saved: list[Path] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)
    similar_to: list[tuple[str, float]] = field(default_factory=list)


@dataclass(frozen=True)
class PersonRemoval:
    """What removing a person deleted: photos, fine-tuned models, attendance rows."""

    name: str
    person_id: str
    photos: int
    models: list[Path] = field(default_factory=list)
    attendance_rows: int = 0


class AttendanceRecords(Protocol):
    """What removal needs of an attendance book (``model.school.attendance.RegisterBook``)."""

    def forget_person(self, person: str) -> int: ...


def remove_person(gallery: Gallery, models_dir: Path, name: str, *,
                  forget_attendance: AttendanceRecords | None = None) -> PersonRemoval:
    """Delete a person completely: their folder and photos, every cached embedding, every
    fine-tuned model that learned from their photos (found by their stable id, so a
    rename does not hide one), and, with ``forget_attendance``, their attendance rows.
    A crash part-way is finished by the next start-up (``recover_after_crash``).
    Raises ``UnknownPersonError`` when nobody has that name. The CLI and the People page
    both come here; ``FaceAttendance.remove_person`` also reloads the network."""
    removal = gallery.remove_person(name, forget_attendance=forget_attendance is not None)
    models = registry.forget_person_models(models_dir, removal.person_id, [removal.name])
    rows = forget_attendance.forget_person(removal.name) if forget_attendance is not None else 0
    gallery.finish_removal(removal)
    return PersonRemoval(name=removal.name, person_id=removal.person_id, photos=removal.photos,
                         models=models, attendance_rows=rows)


def rename_person(gallery: Gallery, book: RegisterBook, old: str, new: str, *,
                  student_id: str | None = None, keep_student_id: bool = True) -> str:
    """Rename a person in the gallery and everywhere the register names them (check-ins,
    class rosters); returns the new name as shown. The CLI and the People page both come
    here. Raises ``UnknownPersonError``, ``InvalidNameError`` or ``NameTakenError``."""
    old_label = gallery.person(old).name
    new_label = gallery.rename_person(old_label, new, student_id=student_id,
                                      keep_student_id=keep_student_id)
    if new_label != old_label:
        book.rename_person(old_label, new_label)
    return new_label


@dataclass(frozen=True)
class RosterReport:
    """What reading a roster did: the class, who was added to it, who still needs photos,
    and the lines refused (line number, why)."""

    school_class: SchoolClass
    added: list[str] = field(default_factory=list)
    needs_photos: list[str] = field(default_factory=list)
    refused: list[tuple[int, str]] = field(default_factory=list)


def import_roster(gallery: Gallery, book: RegisterBook, data: bytes | str,
                  class_name: str) -> RosterReport:
    """Read a roster CSV into the class ``class_name`` (made when new): its people join
    the roster, enrolled or not; ``needs_photos`` lists the roster members with no
    photos yet. Needs no network (the CLI's ``roster`` and the Classes page)."""
    entries, refused = read_roster(data)
    if not entries:
        raise FaceAttendanceError("The roster has no name on it: put one name per line "
                                  "(and a student id after a comma if you use them).")
    school_class = book.find_class(class_name) or book.create_class(class_name)
    names = [_roster_name(gallery, entry) for entry in entries]
    added = book.add_to_roster(school_class.id, names)
    enrolled = {p.name for p in gallery.people()}
    needs = [name for name in book.roster(school_class.id) if name not in enrolled]
    return RosterReport(school_class=book.school_class(school_class.id) or school_class,
                        added=added, needs_photos=needs, refused=refused)


def _roster_name(gallery: Gallery, entry: RosterEntry) -> str:
    """How a roster line is named in the register: as the enrolled person is shown when
    one matches (any case), else as written (with the student id in brackets)."""
    label = display_name(entry.name, entry.student_id)
    return gallery.find_person(label) or label


def recover_after_crash(settings: Settings, gallery: Gallery | None = None) -> list[Path]:
    """Start-up repair (cheap when nothing crashed): finish removals a crash interrupted,
    roll back unfinished enrollments, sweep hidden temporaries of dead writers, drop
    card-less older models. Returns what was removed."""
    gallery = gallery or Gallery(settings.gallery_dir)
    removed: list[Path] = []
    for removal in gallery.pending_removals():
        removed += registry.forget_person_models(settings.models_dir, removal.person_id,
                                                 [removal.name])
        if removal.forget_attendance:
            book = open_register(settings)
            try:
                book.forget_person(removal.name)
            finally:
                book.close()
        gallery.finish_removal(removal)
    return removed + gallery.recover() + registry.sweep(settings.models_dir)


class FaceAttendance:
    """Detector + recognizer + gallery. Thread-safe: the app shares one across sessions."""

    def __init__(self, detector: FaceDetector, recognizer: Recognizer, gallery: Gallery,
                 settings: Settings) -> None:
        self.detector = detector
        self.recognizer = recognizer
        self.gallery = gallery
        self.settings = settings
        self._model_lock = threading.Lock()
        self._index_lock = threading.Lock()
        self._index: tuple[GalleryEmbeddings, Recognizer, GalleryIndex] | None = None
        self._book_lock = threading.Lock()
        self._book: RegisterBook | None = None

    @classmethod
    def open(cls, settings: Settings | None = None, *, gallery_dir: str | Path | None = None,
             model_path: str | Path | None = None) -> FaceAttendance:
        """Load everything once (a few seconds: TensorFlow, MTCNN, the network)."""
        settings = settings or get_settings()
        if gallery_dir is not None:
            settings = settings.with_gallery(gallery_dir)
        gallery = Gallery(settings.gallery_dir)
        recover_after_crash(settings, gallery)
        detector = load_detector(min_confidence=settings.min_detection_confidence,
                                 max_side=settings.max_detection_side)
        recognizer = load_recognizer(model_path, settings)
        engine = cls(detector, recognizer, gallery, settings)
        if settings.database_url or settings.attendance_db.exists():
            # It may be a book of the single-class version: opening it finishes its
            # upgrade now, before a page reads it, as it did when every start opened it.
            engine._open_book()
        return engine

    @property
    def book(self) -> RegisterBook:
        """The attendance book (``settings.attendance_db``, or the PostgreSQL database of
        ``settings.database_url``), opened on first use: the file is made only by what uses
        the register (classes, sessions, check-ins), never by enrolling, identifying or
        verifying alone."""
        return self._open_book()

    def _open_book(self) -> RegisterBook:
        with self._book_lock:
            if self._book is None:
                book = open_register(self.settings)
                # A book from the single-class version: everyone enrolled joins its one class.
                book.adopt_enrolled(p.name for p in self.gallery.people())
                self._book = book
            return self._book

    def warm_up(self) -> None:
        """Trace the detector and network once so the first user does not wait."""
        self.detector.warm_up()
        self.recognizer.warm_up()

    def reload_model(self, model_path: str | Path | None = None) -> Recognizer:
        """Switch to the active (or given) model, e.g. after fine-tuning."""
        recognizer = load_recognizer(model_path, self.settings)
        with self._model_lock:
            self.recognizer = recognizer
        return recognizer

    def remove_person(self, name: str, *,
                      forget_attendance: bool | AttendanceRecords | None = None
                      ) -> PersonRemoval:
        """``remove_person`` on this gallery (``forget_attendance=True``: this app's book),
        then back to the previous network if the active one had learned from this person."""
        book = self.book if forget_attendance is True else (forget_attendance or None)
        removal = remove_person(self.gallery, self.settings.models_dir, name,
                                forget_attendance=book)
        if removal.models:
            self.reload_model()
        with self._index_lock:
            self._index = None
        return removal

    def rename_person(self, old: str, new: str, *, student_id: str | None = None,
                      keep_student_id: bool = True) -> str:
        """``rename_person`` on this gallery and book; returns the new name."""
        renamed = rename_person(self.gallery, self.book, old, new, student_id=student_id,
                                keep_student_id=keep_student_id)
        with self._index_lock:
            self._index = None
        return renamed

    # ----- bulk import ---------------------------------------------------------------

    def import_folders(self, root: str | Path, *, consent: bool, class_name: str | None = None,
                       add_to_existing: bool = False,
                       progress: Callable[[int, int, str], None] | None = None) -> ImportReport:
        """Enroll every sub-folder of ``root`` named after a person (the seed layout, see
        ``model.school.importing``), each like ``enroll_person``: per person, how many
        photos were used and which were refused and why; a folder whose name is refused,
        whose photos all fail, or whose photos look like someone else already enrolled
        under that name stores nothing and says why. With ``class_name`` (made when new)
        everyone enrolled from the folders joins that class's roster. ``progress(done,
        total, name)`` is called before each person. Without ``consent`` nothing is read.
        """
        if not consent:
            raise ConsentRequiredError(
                "Consent is required: confirm that every person in these folders agreed to "
                "have their face stored (--consent). Nothing was stored.")
        folders, skipped = person_folders(root)
        school_class = None
        if class_name is not None and class_name.strip():
            school_class = self.book.find_class(class_name) or self.book.create_class(class_name)
        people: list[PersonImport] = []
        bulk = _BulkEnrollment(self)
        reads = self._read_folders(folders)
        try:
            for done, read in enumerate(bulk.embedded(reads)):
                if progress is not None:
                    progress(done, len(folders), read.folder.name)
                refused = [(name, f"{name}: not a photo (use JPEG, PNG, WebP, BMP or TIFF)")
                           for name in read.folder.not_photos] + read.folder.left_out
                if read.error is not None:
                    people.append(PersonImport(read.folder.name, refused=refused, error=read.error))
                    continue
                try:
                    report = bulk.enroll(read, add_to_existing=add_to_existing)
                except FaceAttendanceError as exc:
                    people.append(PersonImport(read.folder.name, refused=refused, error=str(exc)))
                    continue
                refused += read.rejected
                people.append(PersonImport(report.name, used=len(report.saved), refused=refused,
                                           error=None if report.saved else
                                           "no photo had exactly one usable face",
                                           similar_to=report.similar_to))
        finally:
            bulk.finish()
        if school_class is not None:
            self.book.add_to_roster(school_class.id, [p.name for p in people if p.ok])
        return ImportReport(people=people, skipped=skipped,
                            class_name=school_class.name if school_class else None)

    def _read_folders(self, folders: Sequence[PersonFolder]) -> Iterator[_ReadFolder]:
        """Each folder read, detected and aligned (``_read_folder``), in order. A worker
        thread works ``IMPORT_BATCH`` people ahead, so detection (TensorFlow, which lets go
        of the GIL) runs on one core while this thread embeds and writes on the other."""
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="import-read") as worker:
            ahead: list[Future[_ReadFolder]] = []
            queued = iter(folders)
            for folder in queued:
                ahead.append(worker.submit(self._read_folder, folder))
                if len(ahead) > IMPORT_BATCH:
                    break
            while ahead:
                yield ahead.pop(0).result()
                nxt = next(queued, None)
                if nxt is not None:
                    ahead.append(worker.submit(self._read_folder, nxt))

    def _read_folder(self, folder: PersonFolder) -> _ReadFolder:
        """``enroll_person``'s checks of one folder: its name, then each photo (read, one
        face, good enough), as the aligned crops to store and the photos refused."""
        if not folder.photos:
            return _ReadFolder(folder, error="no photo in this folder")
        try:
            plain = normalize_name(folder.name)
        except FaceAttendanceError as exc:
            return _ReadFolder(folder, error=str(exc))
        crops, rejected = self._good_crops(
            folder.photos, [str(p.relative_to(folder.folder)) for p in folder.photos])
        return _ReadFolder(folder, plain=plain, crops=crops, rejected=rejected)

    def _good_crops(self, images: Sequence[ImageInput], labels: Sequence[str]
                    ) -> tuple[list[np.ndarray], list[tuple[str, str]]]:
        """(aligned crops of the photos showing exactly one good face, (label, why) for
        the others)."""
        crops: list[np.ndarray] = []
        rejected: list[tuple[str, str]] = []
        for image, label in zip(images, labels, strict=True):
            try:
                array = _as_array(image, label=label)
                face = self._single_face(array, label)
                assessment = self._assess(array, face)
                if assessment.problem:
                    raise FaceQualityError(f"{label}: {assessment.problem}")
                crops.append(assessment.crop)
            except FaceAttendanceError as exc:
                rejected.append((label, str(exc)))
        return crops, rejected

    def import_zip(self, data: bytes | Path, *, consent: bool, class_name: str | None = None,
                   add_to_existing: bool = False,
                   progress: Callable[[int, int, str], None] | None = None) -> ImportReport:
        """``import_folders`` on a zip of person folders (unpacked safely into a temporary
        folder that is deleted afterwards)."""
        if not consent:
            raise ConsentRequiredError(
                "Consent is required: confirm that every person in this zip agreed to have "
                "their face stored. Nothing was stored.")
        with tempfile.TemporaryDirectory(prefix="faceatt-import-") as folder:
            root = extract_zip(data, Path(folder) / "zip")
            return self.import_folders(root, consent=True, class_name=class_name,
                                       add_to_existing=add_to_existing, progress=progress)

    def import_roster(self, data: bytes | str, class_name: str) -> RosterReport:
        """``import_roster`` on this gallery and book."""
        return import_roster(self.gallery, self.book, data, class_name)

    # ----- faces ---------------------------------------------------------------------

    def find_faces(self, image: ImageInput, *, max_side: int | None = None) -> list[DetectedFace]:
        """Faces in an image, largest first (empty list when there are none)."""
        return self.detector.detect(_as_array(image), max_side=max_side)

    def assess_faces(self, image: ImageInput, *, max_side: int | None = None) -> list[FaceAssessment]:
        """Every face with its aligned crop and a quality verdict (for enrollment feedback)."""
        array = _as_array(image)
        return [self._assess(array, face) for face in self.find_faces(array, max_side=max_side)]

    def aligned_face(self, image: ImageInput, *, label: str = "the photo") -> np.ndarray:
        """The aligned crop of the single face in ``image``.

        Raises ``NoFaceError`` or ``MultipleFacesError`` (naming ``label``) otherwise.
        """
        array = _as_array(image, label=label)
        return align_face(array, self._single_face(array, label))

    # ----- enrollment ----------------------------------------------------------------

    def enroll_person(self, name: str, images: Sequence[ImageInput], *, consent: bool,
                      labels: Sequence[str] | None = None, student_id: str | None = None,
                      add_to_existing: bool = False) -> EnrollmentReport:
        """Add a person (or more photos of them) from photos showing exactly one good face.

        Photos that cannot be read, show no face, several faces, or a face too small
        or blurry are refused with a sentence naming them; the others are saved.
        Without ``consent`` nothing is read or stored (``ConsentRequiredError``).
        Photos for a name that is already enrolled whose faces do not match that person
        raise ``DifferentPersonError`` (nothing stored) unless ``add_to_existing``: two
        students may share a name, and a ``student_id`` tells them apart.
        """
        if not consent:
            raise ConsentRequiredError(
                "Consent is required: tick the consent box (or pass --consent). Nothing was stored.")
        plain, sid = normalize_name(name), normalize_student_id(student_id)
        name = display_name(plain, sid)
        labels = list(labels) if labels is not None else [_label_of(img, i) for i, img in enumerate(images)]
        crops, rejected = self._good_crops(images, labels)
        report = self.enroll_crops(plain, crops, student_id=sid, add_to_existing=add_to_existing)
        return EnrollmentReport(name=report.name, saved=report.saved, rejected=rejected,
                                similar_to=report.similar_to)

    def enroll_crops(self, name: str, crops: Sequence[np.ndarray], *,
                     student_id: str | None = None,
                     add_to_existing: bool = False) -> EnrollmentReport:
        """Store aligned face crops (already checked: one good face each) as ``name``:
        the camera paths of the Enroll page come here, ``enroll_person`` too. Raises
        ``DifferentPersonError`` (nothing stored) when the name is enrolled and the crops
        do not look like that person, unless ``add_to_existing``."""
        plain, sid = normalize_name(name), normalize_student_id(student_id)
        label = display_name(plain, sid)
        existing = self.gallery.find_person(label)
        if crops and existing is not None and not add_to_existing:
            same, score = self.matches_person(existing, crops)
            if not same:
                raise DifferentPersonError(
                    f"These photos do not look like the {existing} already enrolled (similarity "
                    f"{100 * max(score, 0):.0f}%). If this is a different person, give them a "
                    "student id (or another name); if it is the same person, add the photos "
                    "anyway. Nothing was stored.")
        similar = self.look_alikes(label, crops) if crops else []
        saved = (self.gallery.add_crops(plain, list(crops), consent=True, student_id=sid)
                 if crops else [])
        return EnrollmentReport(name=existing or label, saved=saved, similar_to=similar)

    def matches_person(self, name: str, crops: Sequence[np.ndarray]) -> tuple[bool, float]:
        """Do these aligned crops show the enrolled person ``name``? (same?, best cosine).

        A crop matches when it passes the 1:1 pair rule (the Verify page's "same person")
        against at least one of the person's stored photos; the crops show the person
        when at least half of them match. The pair rule, not the stricter rule that
        names a face among everyone enrolled: a new photo of a student in other light
        must not be mistaken for a namesake's.
        """
        recognizer = self.recognizer
        gallery = self.gallery.embeddings(recognizer)
        person = self.gallery.person(name).name
        if person not in gallery.people or not crops:
            return True, 1.0
        stored = gallery.matrix[gallery.person_index == gallery.people.index(person)]
        votes, best = 0, -1.0
        for embedding in recognizer.embed(crops):
            results = [recognizer.verify_pair(embedding, row, gallery.matrix) for row in stored]
            votes += any(same for _, _, same in results)
            best = max([best] + [raw for raw, _, _ in results])
        return 2 * votes >= len(crops), best

    # ----- recognition ---------------------------------------------------------------

    def identify_faces(self, image: ImageInput, *, max_side: int | None = None) -> list[Match]:
        """Who is each face in the photo? One ``Match`` per face, largest face first.

        One forward pass for all faces of the photo, then vectorised scoring against
        the cached gallery embeddings. ``name`` is None ("unknown") when the best
        person scores below the recognizer's threshold.
        """
        array = _as_array(image)
        faces = self.find_faces(array, max_side=max_side)
        crops = [align_face(array, face) for face in faces]
        return self.identify_crops(crops, faces)

    def identify_crops(self, crops: Sequence[np.ndarray],
                       faces: Sequence[DetectedFace] | None = None) -> list[Match]:
        """Like ``identify_faces`` for crops that are already aligned (one photo each)."""
        if len(crops) == 0:
            return []
        recognizer = self.recognizer
        gallery = self.gallery.embeddings(recognizer)
        index = self.gallery_index(recognizer, gallery)
        decisions = index.decide(recognizer.embed(crops), self.settings.max_candidates)
        return _matches(decisions, gallery.people, faces)

    def embed_crops(self, crops: Sequence[np.ndarray]) -> tuple[np.ndarray, str]:
        """(unit embeddings float32 ``[n, d]``, version of the network that made them) of
        aligned crops: the live page gathers them per track (``TrackEvidence``)."""
        recognizer = self.recognizer
        return recognizer.embed(crops), recognizer.version

    def identify_tracks(self, fused: np.ndarray, frames: Sequence[int],
                        faces: Sequence[DetectedFace] | None = None,
                        version: str | None = None) -> list[Match]:
        """Who is each followed face, on its track's fused evidence (live video)?

        fused: ``[m, d]`` unit means of each track's frame embeddings (``TrackEvidence``),
        frames: how many frames each holds, version: the network that embedded them (a
        different active network answers "checking": the caller starts the tracks again).
        A track is named only at the rule's track threshold with enough frames; until it
        has them its ``reason`` is "checking".
        """
        if len(frames) == 0:
            return []
        recognizer = self.recognizer
        gallery = self.gallery.embeddings(recognizer)
        index = self.gallery_index(recognizer, gallery)
        if version is not None and version != recognizer.version:
            frames = [0] * len(frames)  # the model changed under the track: decide nothing
        decisions = index.decide_tracks(fused, list(frames), self.settings.max_candidates)
        return _matches(decisions, gallery.people, faces)

    def gallery_index(self, recognizer: Recognizer | None = None,
                      gallery: GalleryEmbeddings | None = None) -> GalleryIndex:
        """The gallery prepared for the open-set rule; rebuilt only when the gallery or the
        model changed (its adaptive threshold follows every enroll, removal and fine-tune)."""
        recognizer = recognizer or self.recognizer
        gallery = gallery if gallery is not None else self.gallery.embeddings(recognizer)
        with self._index_lock:
            cached = self._index
            if (cached is not None and cached[0] is gallery and cached[1] is recognizer
                    and cached[2].rule == recognizer.rule):
                return cached[2]
        grown = _grown_index(cached, gallery, recognizer) if cached is not None else None
        index = grown or GalleryIndex.prepare(gallery.matrix, gallery.person_index,
                                              len(gallery.people), recognizer.cohort,
                                              recognizer.rule)
        with self._index_lock:
            self._index = (gallery, recognizer, index)
        return index

    def verify_faces(self, image_a: ImageInput, image_b: ImageInput, *,
                     labels: Sequence[str] | None = None) -> Verification:
        """Do two photos show the same person? (1:1, the pair rule, graded)

        Each photo's main face is compared (``main_face``: the largest, then the most
        central); when a photo shows several, ``note`` says so and ``faces`` holds the ones
        used. The verdict is "same person" (``same``), "probably the same person - check"
        or "different people" (``Recognizer.verify``). ``labels`` name the photos in notes
        and errors (default: the file name, else "photo 1" / "photo 2"). Raises
        ``NoFaceError`` when a photo shows no face.
        """
        names = list(labels) if labels is not None else [_label_of(image_a, 0), _label_of(image_b, 1)]
        (face_a, crop_a, count_a), (face_b, crop_b, count_b) = (
            self._main_face(image, label) for image, label in zip((image_a, image_b), names,
                                                                   strict=True))
        recognizer = self.recognizer
        emb = recognizer.embed([crop_a, crop_b])
        gallery = self.gallery.embeddings(recognizer)
        result = recognizer.verify(emb[0], emb[1], gallery.matrix)
        return replace(result, note=_main_face_note(names, (count_a, count_b)),
                       faces=(face_a, face_b), face_counts=(count_a, count_b),
                       crops=(crop_a, crop_b))

    def verify_person(self, image: ImageInput, name: str, *, label: str | None = None) -> Verification:
        """Is the main face in ``image`` the enrolled person ``name``? (claimed identity)

        The rule of identification without the margin: the claimed person's normalised
        score must reach the gallery's naming threshold (and the rule's cosine floor). Two
        answers only, "same person" or "different people": no calibrated "probably" band
        exists for a claimed identity. A photo with several faces is answered for its main
        face (``main_face``), and ``note`` says so.
        """
        person = self.gallery.person(name).name  # raises UnknownPersonError
        label = label or _label_of(image, 0)
        face, crop, count = self._main_face(image, label)
        recognizer = self.recognizer
        gallery = self.gallery.embeddings(recognizer)
        index = self.gallery_index(recognizer, gallery)
        j = gallery.people.index(person)
        decision = index.decide(recognizer.embed([crop]), candidates=len(gallery.people))[0]
        raw, norm = next((r, n) for p, r, n in decision.ranked if p == j)
        same = norm >= index.threshold and raw >= recognizer.rule.min_cosine
        return Verification(same=same, score=raw, threshold=index.threshold, normalised=norm,
                            note=_main_face_note([label], [count]), faces=(face,),
                            face_counts=(count,), crops=(crop,), person=person)

    def rank_candidates(self, anchor: ImageInput,
                        candidates: Sequence[ImageInput]) -> list[tuple[int, float, bool]]:
        """Which candidates show the anchor's person? ``(candidate index, cosine, same person?)``,
        best first, "same" by the 1:1 rule. Candidates without exactly one face are left out."""
        anchor_crop = self.aligned_face(anchor, label="the anchor photo")
        crops, indices = [], []
        for i, image in enumerate(candidates):
            try:
                crops.append(self.aligned_face(image, label=f"candidate {i + 1}"))
                indices.append(i)
            except FaceAttendanceError:
                continue
        if not crops:
            return []
        recognizer = self.recognizer
        emb = recognizer.embed([anchor_crop, *crops])
        ranked = []
        for i, vector in zip(indices, emb[1:], strict=True):
            raw, _, same = recognizer.verify_pair(emb[0], vector)
            ranked.append((i, raw, same))
        return sorted(ranked, key=lambda t: -t[1])

    # ----- internals -----------------------------------------------------------------

    def _main_face(self, image: ImageInput, label: str) -> tuple[DetectedFace, np.ndarray, int]:
        """(the main face, its aligned crop, how many faces the photo showed)."""
        array = _as_array(image, label=label)
        faces = self.find_faces(array)
        if not faces:
            raise NoFaceError(f"{label}: no face was found. Use a photo where the face is "
                              "clearly visible, from the front.")
        face = main_face(faces, array.shape)
        return face, align_face(array, face), len(faces)

    def _single_face(self, image: np.ndarray, label: str) -> DetectedFace:
        faces = self.find_faces(image)
        if not faces:
            raise NoFaceError(f"{label}: no face was found.")
        if len(faces) > 1:
            raise MultipleFacesError(
                f"{label}: {len(faces)} faces were found; use a photo of one person only.")
        return faces[0]

    def _assess(self, image: np.ndarray, face: DetectedFace) -> FaceAssessment:
        crop = align_face(image, face)
        blur = laplacian_variance(crop)
        problem = None
        if face.size < self.settings.min_face_pixels:
            problem = (f"the face is too small ({face.size} pixels; at least "
                       f"{self.settings.min_face_pixels} needed) - move closer to the camera.")
        elif blur < BLUR_THRESHOLD:
            problem = "the face is too blurry - hold still, or add light."
        return FaceAssessment(face=face, crop=crop, blur=blur, problem=problem)

    def look_alikes(self, name: str, crops: Sequence[np.ndarray]) -> list[tuple[str, float]]:
        """Other enrolled people these aligned crops of ``name`` would be named as, best first.

        The identification rule itself decides (against the gallery without ``name``): a
        likely duplicate enrollment or a mix-up that check-ins would suffer from.
        Returns ``(person, cosine)``.
        """
        recognizer = self.recognizer
        gallery = self.gallery.embeddings(recognizer)
        if len(gallery) == 0 or len(crops) == 0:
            return []
        own = self.gallery.find_person(name)
        keep = np.array([n != own for n in gallery.names], dtype=bool)
        people = [p for p in gallery.people if p != own]
        if not people:
            return []
        remap = {p: i for i, p in enumerate(people)}
        owners = np.array([remap[n] for n, k in zip(gallery.names, keep, strict=True) if k])
        index = GalleryIndex.prepare(gallery.matrix[keep], owners, len(people), recognizer.cohort,
                                     recognizer.rule)
        found: dict[str, float] = {}
        for decision in index.decide(recognizer.embed(crops)):
            if decision.person is not None:
                person = people[decision.person]
                found[person] = max(found.get(person, -1.0), decision.raw)
        return sorted(found.items(), key=lambda t: -t[1])


class _BulkEnrollment:
    """``enroll_crops`` for one person after another (a bulk import), without re-deriving
    the whole gallery for each: the gallery is read and prepared once, each new person
    joins that index (``GalleryIndex.with_person``, at their place in name order, as a
    fresh ``prepare`` would have them), crops are embedded a batch of people at a time,
    and the embeddings of the stored photos reach the gallery's cache once at the end
    (``finish``). Each person is still written on their own, atomically. A name that is
    already enrolled takes ``enroll_crops``'s own path (it reads the gallery)."""

    def __init__(self, engine: FaceAttendance) -> None:
        self.engine = engine
        self.recognizer = engine.recognizer
        self.fresh: dict[str, np.ndarray] = {}
        self._read_gallery()

    def _read_gallery(self) -> None:
        gallery = self.engine.gallery.embeddings(self.recognizer)
        self.index = self.engine.gallery_index(self.recognizer, gallery)
        self.names = list(gallery.people)
        self.keys = [name_key(name) for name in self.names]

    def embedded(self, reads: Iterator[_ReadFolder]) -> Iterator[_ReadFolder]:
        """``reads`` again, each batch of ``IMPORT_BATCH`` embedded in one network call: the
        crops as taken (the look-alike check) and as the gallery stores them (JPEG)."""
        batch: list[_ReadFolder] = []
        for read in reads:
            batch.append(read)
            if len(batch) == IMPORT_BATCH:
                yield from self._embed(batch)
                batch = []
        yield from self._embed(batch)

    def _embed(self, batch: list[_ReadFolder]) -> list[_ReadFolder]:
        files = [{hashlib.sha1(data).hexdigest(): data for data in map(encode_jpeg, read.crops)}
                 for read in batch]
        taken = [crop for read in batch for crop in read.crops]
        crops = taken + [load_image(data) for stored in files for data in stored.values()]
        if not crops:
            return batch
        vectors = self.recognizer.embed(crops)
        first, kept, out = 0, len(taken), []
        for read, stored in zip(batch, files, strict=True):
            query = vectors[first:first + len(read.crops)]
            first += len(read.crops)
            out.append(replace(read, query=query,
                               stored=dict(zip(stored, vectors[kept:kept + len(stored)], strict=True))))
            kept += len(stored)
        return out

    def enroll(self, read: _ReadFolder, *, add_to_existing: bool) -> EnrollmentReport:
        """``enroll_crops(read.plain, read.crops)`` against the gallery as it now is."""
        engine = self.engine
        label = display_name(read.plain, None)
        existing = engine.gallery.find_person(label)
        if not read.crops:
            return EnrollmentReport(name=existing or label)
        if existing is not None or read.query is None:
            self.finish()  # enroll_crops reads the gallery: hand it what is embedded
            report = engine.enroll_crops(read.plain, read.crops, add_to_existing=add_to_existing)
            self._read_gallery()
            return report
        similar = self._look_alikes(read.query)
        saved = engine.gallery.add_crops(read.plain, list(read.crops), consent=True)
        self.fresh.update(read.stored)
        position = bisect.bisect_left(self.keys, name_key(label))
        self.index = self.index.with_person(np.stack(list(read.stored.values())), position)
        self.names.insert(position, label)
        self.keys.insert(position, name_key(label))
        return EnrollmentReport(name=label, saved=saved, similar_to=similar)

    def _look_alikes(self, query: np.ndarray) -> list[tuple[str, float]]:
        """``FaceAttendance.look_alikes`` for a person not yet enrolled."""
        found: dict[str, float] = {}
        if self.index.people == 0:
            return []
        for decision in self.index.decide(query):
            if decision.person is not None:
                person = self.names[decision.person]
                found[person] = max(found.get(person, -1.0), decision.raw)
        return sorted(found.items(), key=lambda t: -t[1])

    def finish(self) -> None:
        """Hand the stored photos' embeddings to the gallery's cache (one write)."""
        if self.fresh:
            self.engine.gallery.remember_embeddings(self.recognizer.version, self.fresh)
            self.fresh = {}


def _grown_index(cached: tuple[GalleryEmbeddings, Recognizer, GalleryIndex],
                 gallery: GalleryEmbeddings, recognizer: Recognizer) -> GalleryIndex | None:
    """The cached index with one more person, when ``gallery`` is the cached gallery plus
    one new person and nothing else changed (one enrollment): ``with_person`` scores the
    new photos only instead of re-deriving everyone's statistics. None otherwise."""
    before, model, index = cached
    if model is not recognizer or index.rule != recognizer.rule or \
            len(gallery.people) != len(before.people) + 1:
        return None
    known = set(before.people)
    added = [i for i, name in enumerate(gallery.people) if name not in known]
    if len(added) != 1 or gallery.people[:added[0]] + gallery.people[added[0] + 1:] != before.people:
        return None
    mine = gallery.person_index == added[0]
    if not np.array_equal(gallery.matrix[~mine], before.matrix):
        return None
    return index.with_person(gallery.matrix[mine], added[0])


def _matches(decisions: Sequence[Decision], people: Sequence[str],
             faces: Sequence[DetectedFace | None] | None) -> list[Match]:
    """The rule's decisions as ``Match`` records (names instead of gallery indices)."""
    matches = []
    for i, decision in enumerate(decisions):
        face = faces[i] if faces is not None else None
        box = face.box if face is not None else (0, 0, 0, 0)
        candidates = tuple((people[j], round(raw, 4)) for j, raw, _ in decision.ranked)
        matches.append(Match(
            box=box, name=people[decision.person] if decision.person is not None else None,
            score=decision.raw, candidates=candidates, face=face, normalised=decision.normalised,
            threshold=decision.threshold,
            closest=people[decision.best] if decision.best is not None else None,
            reason=decision.reason))
    return matches


def main_face(faces: Sequence[DetectedFace], image_shape: tuple[int, ...], *,
              size_tolerance: float = MAIN_FACE_SIZE_TOLERANCE) -> DetectedFace:
    """The face a photo is about: the largest (box area), and among faces within
    ``size_tolerance`` of the largest one's area, the one whose box centre is nearest the
    image centre (``image_shape``: ``(H, W, ...)``). Ties keep the detector's order.
    Raises ``ValueError`` for an empty ``faces``.
    """
    if not faces:
        raise ValueError("main_face needs at least one face")
    largest = max(f.box[2] * f.box[3] for f in faces)
    near = [f for f in faces if f.box[2] * f.box[3] >= (1.0 - size_tolerance) * largest]
    cy, cx = image_shape[0] / 2.0, image_shape[1] / 2.0

    def off_centre(face: DetectedFace) -> float:
        x, y, w, h = face.box
        return float(np.hypot(x + w / 2.0 - cx, y + h / 2.0 - cy))

    return min(near, key=off_centre)


def _main_face_note(labels: Sequence[str], counts: Sequence[int]) -> str:
    """What Verify says about photos that showed several faces ("" when none did)."""
    return " ".join(f"{label} has {count} faces; the largest, most central one was used."
                    for label, count in zip(labels, counts, strict=True) if count > 1)


def laplacian_variance(crop: np.ndarray) -> float:
    """Sharpness of an RGB crop: variance of the Laplacian of its grey image."""
    grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def _as_array(image: ImageInput, label: str | None = None) -> np.ndarray:
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise TypeError(f"expected an RGB uint8 image, got {image.dtype} {image.shape}")
        return image
    return load_image(image, label=label)


def _label_of(image: ImageInput, index: int) -> str:
    if isinstance(image, (str, Path)):
        return str(image)
    return f"photo {index + 1}"
