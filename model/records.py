"""Plain, frozen records that cross module borders.

Box convention, stated once for the whole project: ``(x, y, w, h)`` in integer
pixels of the image it was found in, ``x, y`` the top-left corner.
Landmarks are ``(x, y)`` float pixels; "left" means the left of the *image*
(the smaller x), not the subject's left.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

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


@dataclass(frozen=True)
class Verification:
    """Whether two faces (or a face and an enrolled person) are the same person.

    ``score``: cosine similarity (float64); ``normalised``: the same in cohort standard
    deviations, compared with ``threshold`` (also normalised) to decide ``same``.
    """

    same: bool
    score: float
    threshold: float
    normalised: float = 0.0

    @property
    def percent(self) -> int:
        return int(round(100 * min(max(self.score, 0.0), 1.0)))


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
