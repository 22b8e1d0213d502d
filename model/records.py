"""Plain, frozen records that cross module borders.

Box convention, stated once for the whole project: ``(x, y, w, h)`` in integer
pixels of the image it was found in, ``x, y`` the top-left corner.
Landmarks are ``(x, y)`` float pixels; "left" means the left of the *image*
(the smaller x), not the subject's left.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

import numpy as np

Box = tuple[int, int, int, int]
Point = tuple[float, float]


@dataclass(frozen=True)
class Landmarks:
    left_eye: Point
    right_eye: Point
    nose: Point
    mouth_left: Point
    mouth_right: Point

    def as_list(self) -> list[Point]:
        """The five points in template order: eyes, nose, mouth corners."""
        return [self.left_eye, self.right_eye, self.nose, self.mouth_left, self.mouth_right]


@dataclass(frozen=True)
class DetectedFace:
    """One face found by the detector."""

    box: Box
    confidence: float
    landmarks: Landmarks

    @property
    def size(self) -> int:
        """Shorter side of the box, in pixels."""
        return min(self.box[2], self.box[3])


@dataclass(frozen=True)
class Match:
    """What identification says about one face in a photo.

    ``name`` is ``None`` when the open-set rule names nobody ("unknown").
    ``score`` is the closest person's cosine similarity (float64, -1..1; 1 = identical
    embeddings), never squashed, so it does not saturate. ``normalised`` is the score
    in cohort standard deviations, the number the rule decides on, and ``threshold``
    the value it had to reach for this gallery. ``closest`` is the nearest enrolled
    person even when unnamed, and ``reason`` why the face was refused ("" when named).
    ``candidates`` are the best few people, best first, each ``(name, cosine)``.
    """

    box: Box
    name: str | None
    score: float
    candidates: tuple[tuple[str, float], ...]
    face: DetectedFace | None = None
    normalised: float = 0.0
    threshold: float = 0.0
    closest: str | None = None
    reason: str = ""

    @property
    def is_known(self) -> bool:
        return self.name is not None

    @property
    def percent(self) -> int:
        """The similarity as a 0-100 figure for people (cosine below 0 shows as 0)."""
        return int(round(100 * min(max(self.score, 0.0), 1.0)))

    @property
    def explanation(self) -> str:
        """Why this face was or was not named, in a sentence for a teacher."""
        if self.name is not None:
            return f"{self.name}: similarity {self.percent}%"
        if self.closest is None:
            return "unknown: " + (self.reason or "no one is enrolled")
        return f"unknown - closest: {self.closest} ({self.percent}%), but {self.reason}"


class Verdict(StrEnum):
    """The answer of 1:1 verification, strongest first (the value is what people read)."""

    SAME = "same person"
    PROBABLY_SAME = "probably the same person - check"
    DIFFERENT = "different people"


def grade_pair(normalised: float, threshold: float, maybe_threshold: float | None = None) -> Verdict:
    """The graded 1:1 answer for a normalised score (cohort standard deviations).

    ``normalised >= threshold``: SAME; ``maybe_threshold <= normalised < threshold``:
    PROBABLY_SAME; below (or NaN): DIFFERENT. Without ``maybe_threshold``, or when it is not
    below ``threshold``, there is no "probably" band: two answers only.
    """
    if normalised >= threshold:
        return Verdict.SAME
    if maybe_threshold is not None and maybe_threshold < threshold and normalised >= maybe_threshold:
        return Verdict.PROBABLY_SAME
    return Verdict.DIFFERENT


@dataclass(frozen=True)
class Verification:
    """Whether two faces (or a face and an enrolled person) are the same person.

    ``score``: cosine similarity (float64, -1..1); ``normalised``: the same in cohort
    standard deviations, the number the decision is made on. ``threshold`` (normalised) is
    what "same person" needs; ``maybe_threshold``, when set, is where "probably the same
    person - check" starts (below it: "different people"). ``same`` is the strict answer
    (``verdict is Verdict.SAME``), so a caller that acts on it never acts on a "probably".
    ``verdict`` defaults to what ``same`` says.

    ``note`` says which face was used when a photo showed several ("" otherwise);
    ``faces`` are the faces used, one per photo, in the photos' order; ``face_counts`` how
    many faces each photo showed; ``crops`` the aligned RGB uint8 crops of the faces used;
    ``person`` the enrolled person a photo was checked against (``verify_person``).
    """

    same: bool
    score: float
    threshold: float
    normalised: float = 0.0
    verdict: Verdict | None = None
    maybe_threshold: float | None = None
    note: str = ""
    faces: tuple[DetectedFace, ...] = ()
    face_counts: tuple[int, ...] = ()
    crops: tuple[np.ndarray, ...] = field(default=(), compare=False, repr=False)
    person: str | None = None

    def __post_init__(self) -> None:
        if self.verdict is None:
            object.__setattr__(self, "verdict", Verdict.SAME if self.same else Verdict.DIFFERENT)
        elif self.same != (self.verdict is Verdict.SAME):
            raise ValueError(f"same={self.same} contradicts the verdict {self.verdict.value!r}")

    @classmethod
    def graded(cls, score: float, normalised: float, threshold: float,
               maybe_threshold: float | None = None, *, note: str = "",
               faces: tuple[DetectedFace, ...] = (), crops: tuple[np.ndarray, ...] = (),
               person: str | None = None) -> Verification:
        """The record for a pair scored ``normalised``, its verdict graded by ``grade_pair``."""
        verdict = grade_pair(normalised, threshold, maybe_threshold)
        return cls(same=verdict is Verdict.SAME, score=score, threshold=threshold,
                   normalised=normalised, verdict=verdict, maybe_threshold=maybe_threshold,
                   note=note, faces=faces, crops=crops, person=person)

    @property
    def percent(self) -> int:
        """The cosine as a 0-100 figure. Not a probability and not the decision: two
        different people often reach 50-60%; prefer ``explanation``."""
        return int(round(100 * min(max(self.score, 0.0), 1.0)))

    @property
    def explanation(self) -> str:
        """The answer in a sentence for a teacher (no percentages: the cosine misleads)."""
        if self.person is not None:
            if self.same:
                return (f"Same person: this face matches {self.person}'s enrolled photos as "
                        "closely as photos of one person do.")
            return (f"Not {self.person}, as far as the photos show: this face is not close "
                    f"enough to {self.person}'s enrolled photos. A side view, a dark or a "
                    "blurry photo can also do this; try a clear, frontal one.")
        if self.verdict is Verdict.SAME:
            return ("Same person: these two faces match as closely as two photos of one "
                    "person do; photos of different people very rarely come this close.")
        if self.verdict is Verdict.PROBABLY_SAME:
            return ("Probably the same person, but check: the faces are close, yet people "
                    "who merely look alike sometimes come this close. Compare the photos "
                    "yourself, or try a clearer photo.")
        return ("Different people: these two faces are not close enough to be one person. "
                "A side view, a dark or a blurry photo can also do this; try a clear, frontal "
                "one if you expected a match.")


@dataclass(frozen=True)
class Person:
    """An enrolled person as the gallery stores them."""

    name: str
    image_count: int
    enrolled_at: datetime
    consent: bool
    consent_at: datetime | None = None
    #: Stable id (kept through renames): what fine-tuned models record, never the name.
    id: str = ""
    #: Optional school id that tells two people with the same name apart; when set,
    #: ``name`` shows it in brackets ("Anna Smith (12345)").
    student_id: str | None = None
