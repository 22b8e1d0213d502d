"""A detected face made up for tests: a box with five landmarks where a frontal face has them.

For tests of the live pipeline (tracker, processor, kiosk) that fake the detector; the
landmarks only need to give ``align_face`` a sensible upright crop.
"""

from __future__ import annotations

from model.records import DetectedFace, Landmarks


def synthetic_face(x: float, y: float = 50, width: float = 100,
                   height: float | None = None) -> DetectedFace:
    """A face whose box is ``(x, y, width, height)`` (square unless ``height`` is given)."""
    w = float(width)
    h = w if height is None else float(height)
    marks = Landmarks(left_eye=(x + 0.3 * w, y + 0.4 * h), right_eye=(x + 0.7 * w, y + 0.4 * h),
                      nose=(x + 0.5 * w, y + 0.6 * h), mouth_left=(x + 0.35 * w, y + 0.8 * h),
                      mouth_right=(x + 0.65 * w, y + 0.8 * h))
    box = (x, y, width, width if height is None else height)
    return DetectedFace(box=box, confidence=0.99, landmarks=marks)
