"""Enroll a whole class from a few group photos (issue 19).

``group_photos`` finds every face in every photo, keeps those that pass enrollment's
quality gates (``FaceAttendance.assess_faces``: too small or too blurry faces are reported,
not grouped), embeds them in one batch and groups them by person
(``model.school.grouping``: two faces of one photo never share a group, a lone face is kept
only when it is clearly nobody else, the rest are *not sure*). The teacher then names the
groups (merging, splitting and dropping faces on the way) and ``enroll_groups`` enrolls
everyone named, as the zip import does, and puts them on the class roster.

Box convention: ``(x, y, w, h)`` in pixels of the photo as read (``model.records``).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from model.core.images import load_image
from model.errors import ConsentRequiredError, FaceAttendanceError
from model.records import Box
from model.school.grouping import face_scores, group_faces
from model.school.importing import (
    PHOTO_SUFFIXES,
    ImportProblem,
    ImportReport,
    PersonImport,
    extract_zip,
)

if TYPE_CHECKING:
    from model.api import FaceAttendance, ImageInput

#: The most photos one grouping reads: a class needs 3-6; the grouping's cost grows with
#: the square of the faces (a few hundred are a fraction of a second).
MAX_GROUP_PHOTOS = 40


@dataclass(frozen=True)
class GroupedFace:
    """One usable face of a group photo and where the grouping put it.

    photo: the photo's label (its file name); box: where the face is in it.
    crop: the aligned 112 x 112 RGB face (what enrollment stores).
    group: index into ``PhotoGrouping.groups``, None when not sure.
    affinity: mean normalised score to the rest of its group (for a face that is not
        sure: to the closest group; NaN when there is none). sure: see ``FacePlace``.
    """

    photo: str
    box: Box
    crop: np.ndarray
    group: int | None
    affinity: float
    sure: bool


@dataclass(frozen=True)
class PhotoGrouping:
    """The faces of some group photos grouped by person.

    photos: the labels of the photos read; faces: every usable face, photo by photo;
    groups: indices into ``faces``, one tuple per person, most typical face first;
    refused: ``(photo, box or None, why)`` for every face too small or blurry to use and
    every photo that could not be read or showed no face. embeddings: ``[len(faces), d]``.
    """

    photos: list[str]
    faces: list[GroupedFace]
    groups: list[tuple[int, ...]]
    refused: list[tuple[str, Box | None, str]] = field(default_factory=list)
    embeddings: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    threshold: float = 0.0

    @property
    def unsure(self) -> list[int]:
        """The faces left in no group."""
        return [i for i, face in enumerate(self.faces) if face.group is None]


@dataclass(frozen=True)
class NamedGroup:
    """What the teacher decided for one person: a name and which faces show them."""

    name: str
    faces: tuple[int, ...]
    student_id: str | None = None


def group_photos(engine: FaceAttendance, photos: Sequence[ImageInput], *,
                 labels: Sequence[str] | None = None) -> PhotoGrouping:
    """Every usable face of ``photos`` (paths, bytes or RGB arrays), grouped by person with
    the engine's recognizer and ``settings.group_threshold``. Empty in, empty out."""
    if len(photos) > MAX_GROUP_PHOTOS:
        raise FaceAttendanceError(f"{len(photos)} photos: group at most {MAX_GROUP_PHOTOS} "
                                  "at a time (a class needs 3 to 6).")
    names = list(labels) if labels is not None else [
        Path(p).name if isinstance(p, (str, Path)) else f"photo {i + 1}" for i, p in enumerate(photos)]
    crops: list[np.ndarray] = []
    where: list[tuple[str, Box]] = []
    photo_of: list[int] = []
    refused: list[tuple[str, Box | None, str]] = []
    for number, (photo, label) in enumerate(zip(photos, names, strict=True)):
        try:
            image = photo if isinstance(photo, np.ndarray) else load_image(photo, label=label)
            assessments = engine.assess_faces(image)
        except FaceAttendanceError as exc:
            refused.append((label, None, str(exc)))
            continue
        if not assessments:
            refused.append((label, None, f"{label}: no face was found."))
        for assessment in assessments:
            if assessment.problem:
                refused.append((label, assessment.face.box, assessment.problem))
                continue
            crops.append(assessment.crop)
            where.append((label, assessment.face.box))
            photo_of.append(number)
    recognizer = engine.recognizer
    embeddings = recognizer.embed(crops)
    settings = engine.settings
    scores = face_scores(embeddings, photo_of, recognizer.cohort, recognizer.rule)
    grouping = group_faces(scores, photo_of, threshold=settings.group_threshold,
                           single_threshold=settings.group_single_threshold,
                           margin=recognizer.rule.margin)
    faces = [GroupedFace(photo=label, box=box, crop=crop, group=place.group,
                         affinity=place.affinity, sure=place.sure)
             for (label, box), crop, place in zip(where, crops, grouping.faces, strict=True)]
    return PhotoGrouping(photos=names, faces=faces, groups=list(grouping.groups), refused=refused,
                         embeddings=embeddings, threshold=grouping.threshold)


def photo_files(source: str | Path, unpack_to: Path | None = None) -> list[Path]:
    """The photo files of a folder (sorted, hidden entries left out, sub-folders read too)
    or of a zip, which is unpacked safely into the empty folder ``unpack_to`` first (a zip
    without it is refused). Raises ``ImportProblem`` when there is no photo."""
    source = Path(source)
    if source.is_file():
        if unpack_to is None:
            raise ImportProblem(f"{source.name} is a file: give a folder of group photos.")
        source = extract_zip(source, unpack_to)
    elif not source.is_dir():
        raise ImportProblem(f"{source} is neither a folder nor a zip of photos.")
    found = sorted((p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES
                    and not any(part.startswith(".") or part == "__MACOSX"
                                for part in p.relative_to(source).parts)),
                   key=lambda p: str(p.relative_to(source)).casefold())
    if not found:
        raise ImportProblem(f"{source.name} holds no photo (JPEG, PNG, WebP, BMP or TIFF).")
    return found


def group_photo_files(engine: FaceAttendance, source: str | Path) -> PhotoGrouping:
    """``group_photos`` on the photos of a folder or a zip (``photo_files``)."""
    with tempfile.TemporaryDirectory(prefix="faceatt-group-") as folder:
        root = Path(source)
        files = photo_files(root, Path(folder) / "zip")
        base = Path(folder) / "zip" if root.is_file() else root
        return group_photos(engine, files, labels=[str(p.relative_to(base)) for p in files])


def enroll_groups(engine: FaceAttendance, grouping: PhotoGrouping, named: Sequence[NamedGroup], *,
                  consent: bool, class_name: str | None = None,
                  progress: Callable[[int, int, str], None] | None = None) -> ImportReport:
    """Enroll each named group's faces as that person and put everyone enrolled on
    ``class_name``'s roster (made when new): the zip import's per-person report. A name that
    is already enrolled gets the faces only when they look like that person (as the import
    checks; ``DifferentPersonError``'s sentence otherwise, nothing stored for them). Faces
    named twice are refused for the second name. Without ``consent`` nothing is stored."""
    if not consent:
        raise ConsentRequiredError(
            "Consent is required: confirm that every person in these photos agreed to have "
            "their face stored. Nothing was stored.")
    school_class = None
    if class_name is not None and class_name.strip():
        school_class = engine.book.find_class(class_name) or engine.book.create_class(class_name)
    people: list[PersonImport] = []
    used: set[int] = set()
    for done, group in enumerate(named):
        if progress is not None:
            progress(done, len(named), group.name)
        faces = [i for i in dict.fromkeys(group.faces) if 0 <= i < len(grouping.faces)]
        taken = [i for i in faces if i in used]
        faces = [i for i in faces if i not in used]
        refused = [(_face_label(grouping, i), "this face was already named as someone else")
                   for i in taken]
        try:
            name, student_id = _enrollment_name(engine, group)
            report = engine.enroll_crops(name, [grouping.faces[i].crop for i in faces],
                                         student_id=student_id)
        except FaceAttendanceError as exc:
            people.append(PersonImport(group.name, refused=refused, error=str(exc)))
            continue
        used.update(faces)
        people.append(PersonImport(report.name, used=len(report.saved), refused=refused,
                                   error=None if report.saved else "no face was given",
                                   similar_to=report.similar_to))
    if school_class is not None:
        engine.book.add_to_roster(school_class.id, [p.name for p in people if p.ok])
    return ImportReport(people=people, class_name=school_class.name if school_class else None)


def _enrollment_name(engine: FaceAttendance, group: NamedGroup) -> tuple[str, str | None]:
    """(name, student id) to enroll ``group`` as: an enrolled person picked by their label
    ("Ada Lovelace (7B-12)") is that person's name and student id."""
    if group.student_id is None:
        label = engine.gallery.find_person(group.name)
        if label is not None:
            person = engine.gallery.person(label)
            sid = person.student_id
            suffix = f" ({sid})" if sid else ""
            return (label[:-len(suffix)] if suffix and label.endswith(suffix) else label), sid
    return group.name, group.student_id


def _face_label(grouping: PhotoGrouping, face: int) -> str:
    found = grouping.faces[face]
    x, y, w, h = found.box
    return f"{found.photo} (face at {x},{y}, {w}x{h})"
