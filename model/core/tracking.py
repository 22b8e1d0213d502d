"""Follow faces from one video frame to the next, so most frames cost a fraction of a
detection and each face is embedded only when it is new or has moved.

A full detection (the whole MTCNN cascade, tens of milliseconds) runs when nothing is
tracked, and otherwise every ``scan_every_s`` to find newcomers. In between, each
tracked face is followed with ``FaceDetector.follow`` (O-Net alone around its last box,
a few milliseconds). A face that ``follow`` no longer finds is looked for at once with a full
detection (a head turned far keeps its track); one that is not found either (it left) is
dropped, so its box disappears with it.

Pure bookkeeping around a detector: no threads, no clock of its own (callers pass
``now``), nothing about names or check-ins; ``Track.match`` holds whatever the caller
identified the face as.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from model.records import Box, DetectedFace

#: Full detection at least this often (seconds) while faces are tracked, to find people
#: who just stepped in. Lower finds newcomers sooner but every scan costs a full
#: detection (about 40-60 ms at 320 pixels on 2 cores, against 5-15 ms for following).
SCAN_EVERY_S = 0.5
#: A detection and a tracked face are the same face when their boxes overlap at least
#: this much (intersection over union). Faces move little in the 0.1 s between frames.
MATCH_IOU = 0.3
#: Two tracks whose boxes overlap more than this follow the same face: the newer goes.
DUPLICATE_IOU = 0.5
#: Re-embed a face when one of its landmarks moved more than this fraction of the face's
#: size since it was last embedded (a step, a head turn). Lower re-embeds more often.
MOVED_FRACTION = 0.10
#: ... and at least this often (seconds) even when it keeps still (light changes).
REFRESH_S = 1.0


class Detector(Protocol):
    def detect(self, image: np.ndarray, *, max_side: int | None = None) -> list[DetectedFace]: ...

    def follow(self, image: np.ndarray, boxes: Sequence[Box]) -> list[DetectedFace | None]: ...


@dataclass
class Track:
    """One face followed across frames."""

    id: int
    face: DetectedFace  # where it is in the newest frame
    born: float  # when it was first detected (the caller's clock)
    embedded_face: DetectedFace | None = None  # where it was when last embedded
    embedded_at: float = -math.inf
    match: Any = None  # the caller's identification of this face, from its last embedding


class FaceTracker:
    """The faces in view, kept up to date frame by frame (one caller thread at a time)."""

    def __init__(self, detector: Detector, *, max_side: int | None = None,
                 scan_every_s: float = SCAN_EVERY_S) -> None:
        self.detector = detector
        self.max_side = max_side
        self.scan_every_s = scan_every_s
        self.tracks: list[Track] = []
        self._last_scan = -math.inf
        self._ids = itertools.count(1)

    def update(self, image: np.ndarray, now: float) -> str:
        """Find the tracked faces in ``image`` (and new ones when a scan is due).

        Returns ``"scan"`` when a full detection ran, ``"follow"`` otherwise.
        """
        if not self.tracks or now - self._last_scan >= self.scan_every_s:
            self._scan(image, now)
            return "scan"
        lost = self._follow(image, self.tracks)
        if lost:
            # O-Net lost a face (a head turned far, a blur): a full detection looks for it
            # where it was before its track is given up, so a turning head keeps its track
            # (the head-turn check needs the same track throughout). A face that left costs
            # one detection.
            self.tracks += lost
            self._scan(image, now)
            return "scan"
        return "follow"

    def needs_embedding(self, track: Track, now: float) -> bool:
        """New, moved since its last embedding, or not embedded for ``REFRESH_S``."""
        if track.embedded_face is None or now - track.embedded_at >= REFRESH_S:
            return True
        return _moved(track.embedded_face, track.face) > MOVED_FRACTION

    @staticmethod
    def embedded(track: Track, now: float, match: Any) -> None:
        """Record that ``track`` was just embedded and identified as ``match``."""
        track.embedded_face, track.embedded_at, track.match = track.face, now, match

    def clear(self) -> None:
        """Forget every face (the stream stopped)."""
        self.tracks = []
        self._last_scan = -math.inf

    def _scan(self, image: np.ndarray, now: float) -> None:
        found = self.detector.detect(image, max_side=self.max_side)
        self._last_scan = now
        pairs = sorted(((_iou(t.face.box, f.box), i, j) for i, t in enumerate(self.tracks)
                        for j, f in enumerate(found)), reverse=True)
        taken_tracks: set[int] = set()
        taken_faces: set[int] = set()
        for overlap, i, j in pairs:
            if overlap < MATCH_IOU:
                break
            if i in taken_tracks or j in taken_faces:
                continue
            self.tracks[i].face = found[j]
            taken_tracks.add(i)
            taken_faces.add(j)
        # A tracked face the scan missed (small at the scan's size, at the edge) is still
        # followed; it goes only when following fails too.
        missed = [t for i, t in enumerate(self.tracks) if i not in taken_tracks]
        if missed:
            self._follow(image, missed)  # drops those it cannot find from self.tracks
        self.tracks += [Track(next(self._ids), face, now) for j, face in enumerate(found)
                        if j not in taken_faces]
        self._drop_duplicates()

    def _follow(self, image: np.ndarray, tracks: list[Track]) -> list[Track]:
        """Follow ``tracks`` with O-Net; those it cannot find leave ``self.tracks`` and are
        returned."""
        followed = self.detector.follow(image, [t.face.box for t in tracks])
        lost = [track for track, face in zip(tracks, followed, strict=True) if face is None]
        for track, face in zip(tracks, followed, strict=True):
            if face is not None:
                track.face = face
        gone = {t.id for t in lost}
        self.tracks = [t for t in self.tracks if t.id not in gone]
        self._drop_duplicates()
        return lost

    def _drop_duplicates(self) -> None:
        kept: list[Track] = []
        for track in sorted(self.tracks, key=lambda t: t.born):
            if all(_iou(track.face.box, other.face.box) <= DUPLICATE_IOU for other in kept):
                kept.append(track)
        self.tracks = sorted(kept, key=lambda t: t.face.box[2] * t.face.box[3], reverse=True)


def _iou(a: Box, b: Box) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = min(ax + aw, bx + bw) - max(ax, bx)
    h = min(ay + ah, by + bh) - max(ay, by)
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / float(aw * ah + bw * bh - inter)


def _moved(before: DetectedFace, after: DetectedFace) -> float:
    """Largest landmark displacement, as a fraction of the face's size."""
    old = np.array(_points(before))
    new = np.array(_points(after))
    return float(np.linalg.norm(new - old, axis=1).max()) / max(after.size, 1)


def _points(face: DetectedFace) -> list[tuple[float, float]]:
    marks = face.landmarks
    return [marks.left_eye, marks.right_eye, marks.nose, marks.mouth_left, marks.mouth_right]
