"""Live check-in: turn a stream of recognitions into check-ins.

Two pieces:

- ``TrackEvidence`` fuses what the frames of one followed face say. A single frame
  can be wrong (motion blur, a look-alike at a lucky angle), and a stranger who
  stands in front of a kiosk for a minute is looked at hundreds of times: decided
  frame by frame, a few percent of false accepts per photo become a near-certain
  false check-in. So a face is named only on its *track's* evidence: the mean of
  the unit embeddings of its frames, judged against the rule's track threshold
  (``GalleryIndex.decide_tracks``), never on one frame.
- ``CheckInTracker`` turns named faces into check-ins, each person once per
  session; it can also ask for ``required_frames`` consecutive recognitions (the
  live page asks for one: the track's fused evidence already holds many frames).

Pure and thread-safe: the webrtc callback thread calls ``observe`` while the page
thread reads ``streaks`` or starts a new session; one lock guards the state.
Nothing here touches the disk; the page writes the returned check-ins to the
``AttendanceBook``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

#: Consecutive processed frames a person must be recognised in before checking in.
#: Higher is safer against a one-frame mistake but slower (at 5 processed frames
#: per second, 3 frames is about 0.6 s of looking at the camera).
DEFAULT_REQUIRED_FRAMES = 3


@dataclass
class _Track:
    total: np.ndarray  # float64 [d]: the sum of the track's unit embeddings
    frames: int
    version: str  # the network that embedded them (another network: start again)


class TrackEvidence:
    """The fused evidence of each followed face: the mean of its frames' unit embeddings.

    Tracks are the caller's ids (``model.core.tracking.Track.id``). One caller thread at a
    time (the live worker); nothing here decides: ``fused`` goes to the gallery's
    ``decide_tracks``.
    """

    def __init__(self) -> None:
        self._tracks: dict[int, _Track] = {}

    def add(self, track_ids: Sequence[int], embeddings: np.ndarray, version: str = "") -> None:
        """Add one frame's embedding (row of ``embeddings``) to each of ``track_ids``.

        Embeddings of another network (``version``) than the track's earlier frames
        replace them: two networks' spaces do not mix.
        """
        rows = np.atleast_2d(np.asarray(embeddings, np.float64))
        rows = rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
        for track_id, row in zip(track_ids, rows, strict=True):
            track = self._tracks.get(track_id)
            if track is None or track.version != version:
                self._tracks[track_id] = _Track(row.copy(), 1, version)
            else:
                track.total += row
                track.frames += 1

    def frames(self, track_id: int) -> int:
        """How many frames track ``track_id`` has contributed (0 when unknown)."""
        track = self._tracks.get(track_id)
        return track.frames if track is not None else 0

    def fused(self, track_ids: Sequence[int]) -> tuple[np.ndarray, list[int]]:
        """(unit mean embeddings ``[n, d]`` float64, frames of each) of tracks with evidence."""
        tracks = [self._tracks[i] for i in track_ids]
        if not tracks:
            return np.zeros((0, 0)), []
        total = np.stack([t.total for t in tracks])
        return total / np.maximum(np.linalg.norm(total, axis=1, keepdims=True), 1e-12), [
            t.frames for t in tracks]

    def keep_only(self, track_ids: Iterable[int]) -> None:
        """Forget every track not in ``track_ids`` (those faces left the picture)."""
        alive = set(track_ids)
        self._tracks = {i: t for i, t in self._tracks.items() if i in alive}

    def clear(self) -> None:
        self._tracks = {}


@dataclass(frozen=True)
class Recognition:
    """A person recognised in a frame: their name and score in [0, 1]."""

    name: str
    score: float


@dataclass(frozen=True)
class LiveCheckIn:
    """A person who has just been checked in by the tracker.

    ``score`` is the mean score over the frames of the winning streak.
    """

    session_id: int | None
    name: str
    score: float
    at: datetime
    frames: int


class CheckInTracker:
    """Counts consecutive recognitions per person; emits each person once per session."""

    def __init__(self, required_frames: int = DEFAULT_REQUIRED_FRAMES, *,
                 session_id: int | None = None, already_checked_in: Iterable[str] = ()) -> None:
        if required_frames < 1:
            raise ValueError("required_frames must be at least 1.")
        self.required_frames = required_frames
        self._lock = threading.Lock()
        self._session_id = session_id
        self._done: set[str] = set(already_checked_in)
        self._streaks: dict[str, list[float]] = {}

    @property
    def session_id(self) -> int | None:
        with self._lock:
            return self._session_id

    def start_session(self, session_id: int | None,
                      already_checked_in: Iterable[str] = ()) -> None:
        """Switch to another session: forget every streak and who was checked in."""
        with self._lock:
            self._session_id = session_id
            self._done = set(already_checked_in)
            self._streaks = {}

    def observe(self, recognised: Iterable[Recognition | tuple[str | None, float]], *,
                now: datetime | None = None, carried: Iterable[str] = ()) -> list[LiveCheckIn]:
        """Feed the recognitions of one processed frame; returns who checks in now.

        ``recognised`` holds the known faces of the frame (unknown faces may be
        passed with ``name=None``; they are ignored). A person seen twice in one
        frame counts once, with their best score. ``carried`` names people still in
        view whose face was not looked at again in this frame (live video embeds a
        face only when it is new or moved): their streak is kept, not lengthened.
        """
        best: dict[str, float] = {}
        for item in recognised:
            name, score = (item.name, item.score) if isinstance(item, Recognition) else item
            if name is None:
                continue
            best[name] = max(float(score), best.get(name, float("-inf")))
        moment = now or datetime.now()
        fresh: list[LiveCheckIn] = []
        with self._lock:
            # Anyone not in this frame loses their streak: only consecutive frames count.
            kept = {name: self._streaks[name] for name in carried
                    if name in self._streaks and name not in best}
            self._streaks = kept | {name: self._streaks.get(name, []) + [score]
                                    for name, score in best.items() if name not in self._done}
            for name, scores in self._streaks.items():
                if len(scores) >= self.required_frames:
                    self._done.add(name)
                    fresh.append(LiveCheckIn(self._session_id, name,
                                             sum(scores) / len(scores), moment, len(scores)))
            for done in fresh:
                del self._streaks[done.name]
        return fresh

    def streaks(self) -> dict[str, int]:
        """Current consecutive-frame counts of people not yet checked in."""
        with self._lock:
            return {name: len(scores) for name, scores in self._streaks.items()}

    def checked_in(self) -> set[str]:
        """Everyone checked in during this session (including ``already_checked_in``)."""
        with self._lock:
            return set(self._done)

    def forget(self, name: str) -> None:
        """Allow ``name`` to check in again (e.g. after a teacher undid their check-in)."""
        with self._lock:
            self._done.discard(name)
            self._streaks.pop(name, None)
