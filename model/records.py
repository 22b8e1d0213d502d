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

    ``name`` is ``None`` when no enrolled person scored at or above the threshold
    ("unknown"). ``score`` is the best person's score in [0, 1], higher = more alike.
    ``candidates`` are the best few people, best first, each ``(name, score)``.
    """

    box: Box
    name: str | None
    score: float
    candidates: tuple[tuple[str, float], ...]
    face: DetectedFace | None = None

    @property
    def is_known(self) -> bool:
        return self.name is not None


@dataclass(frozen=True)
class Verification:
    """Whether two faces (or a face and an enrolled person) are the same person."""

    same: bool
    score: float
    threshold: float


@dataclass(frozen=True)
class Person:
    """An enrolled person as the gallery stores them."""

    name: str
    image_count: int
    enrolled_at: datetime
    consent: bool
    consent_at: datetime | None = None
