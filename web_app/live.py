"""Live camera processing for streamlit-webrtc: newest frame only, results through a queue.

``webrtc_streamer`` calls ``video_frame_callback`` in its own thread for every
frame. Recognition takes longer than a frame lasts, so the callback never waits
for it: it hands the frame to a ``NewestFrameWorker`` (a one-slot mailbox that
keeps only the newest frame) and draws the most recent boxes it has. The worker
thread runs the model on the newest frame, updates the boxes and puts a typed
``LiveResult`` on a ``queue.Queue`` that the page reads. Nothing here calls
``st.*``: the callback thread has no Streamlit context.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any, NamedTuple

import numpy as np

# Imported here, before anything loads TensorFlow: importing aiortc (under
# streamlit-webrtc) *after* TensorFlow crashes the process with a segmentation
# fault in pylibsrtp (two OpenSSL builds). ``app.py`` imports this module first;
# ``python -m web_app`` imports aiortc itself before its background load of TensorFlow
# (streamlit-webrtc must wait for the Streamlit server: a component declared before
# the server starts is "not found"). Where TensorFlow came first we do not try (see
# ``live_camera_problem``).
if "tensorflow" not in sys.modules or "aiortc" in sys.modules:
    # Without the package the live modes say they are unavailable.
    with contextlib.suppress(ImportError):
        import streamlit_webrtc  # noqa: F401

from model.alignment import align_face
from model.core.tracking import FaceTracker, Track
from model.school.attendance import AttendanceBook
from model.school.checkin import CheckInTracker, LiveCheckIn, TrackEvidence
from web_app.common import BoxLabel, assessment_label, draw_boxes, match_label

#: The worker thread exits after this many seconds without frames (the stream
#: stopped); the next frame starts a new one.
WORKER_IDLE_S = 5.0
#: Results kept for the page; the oldest are dropped when the page reads slowly.
RESULT_QUEUE_SIZE = 32
#: Longest side of the frame given to the detector. 320 halves MTCNN's time on a
#: 640x480 webcam frame (about 0.1 s instead of 0.2 s on 2 cores) and still finds a
#: face of about 40 pixels or more in the full frame (someone within 2-3 m of a laptop
#: camera). Raise it to find faces further away, lower it for speed.
MAX_PROCESS_SIDE = 320
#: Boxes are drawn only on frames at most this much newer (seconds) than the frame they
#: were computed from; older ones are hidden rather than left where the face was.
BOX_MAX_AGE_S = 0.3
#: A face not yet named is embedded on every processed frame until its track holds this
#: many frames (2 s at 15 frames/s), so a student is decided quickly; after that (a
#: stranger, or someone the camera sees badly) only when it moves or once a second, as a
#: named face is. Lower saves CPU on strangers; higher decides doubtful faces sooner.
GATHER_FRAMES = 30


#: Set this environment variable to a file path and the live pipeline appends one JSON
#: line per event to it (``benchmarks/bench_browser.py`` reads it; off by default):
#: ``frame`` (a camera frame reached the callback: ``t``, ``age`` of the drawn result or
#: null, ``marker`` = mean of the frame's top-left 8x8 pixels, ``ms`` spent in the
#: callback), ``result`` (the worker finished a frame: ``t``, ``frame_t``, ``ms``,
#: ``cpu_ms``, ``detect_ms``, ``embed_ms``, ``kind``, ``faces``) and ``checkin``
#: (``t``, ``name``). Times are ``time.monotonic()`` (one clock for all processes).
TRACE_ENV = "FACEATT_LIVE_TRACE"


class _Trace:
    """Appends events to the file named by ``FACEATT_LIVE_TRACE`` (no-op when unset)."""

    def __init__(self) -> None:
        self.path = os.environ.get(TRACE_ENV) or None
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        return self.path is not None

    def write(self, event: str, **fields: Any) -> None:
        if self.path is None:
            return
        line = json.dumps({"ev": event, **fields}, separators=(",", ":"))
        with self._lock, open(self.path, "a", encoding="utf-8") as out:
            out.write(line + "\n")


TRACE = _Trace()


def live_camera_problem() -> str | None:
    """Why the live camera cannot run in this process, or None when it can."""
    if "streamlit_webrtc" in sys.modules:
        return None
    if "tensorflow" in sys.modules and "aiortc" not in sys.modules:
        return ("The live camera is unavailable: start the app with `streamlit run "
                "web_app/app.py` (streamlit-webrtc must load before TensorFlow).")
    try:
        import streamlit_webrtc  # noqa: F401
    except ImportError:
        return "The live camera needs the streamlit-webrtc package (pip install streamlit-webrtc)."
    return None


class LiveResult(NamedTuple):
    """What one processed frame produced, for the page."""

    labels: tuple[BoxLabel, ...]
    checked_in: tuple[LiveCheckIn, ...]
    waited: tuple[float, ...]  # per check-in: seconds since the face was first seen
    seconds: float  # time the model took on this frame
    at: float  # time.monotonic() when it finished


class CapturedFrame(NamedTuple):
    """A processed frame kept for enrollment capture: the image and its assessments."""

    image: np.ndarray
    assessments: tuple[Any, ...]
    at: float


class NewestFrameWorker:
    """Runs ``process`` on the newest submitted frame in one background thread.

    Frames that arrive while the model is busy replace each other, so the model
    always sees the latest picture and the video never waits for it.
    """

    def __init__(self, process: Callable[[np.ndarray], Sequence[BoxLabel]], *,
                 timing: Callable[[], dict[str, Any]] | None = None) -> None:
        self._process = process
        self._timing = timing or dict
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._frame: np.ndarray | None = None
        self._labels: tuple[BoxLabel, ...] = ()
        self._frame_at = 0.0
        self._labels_at = 0.0
        self._thread: threading.Thread | None = None
        self.processed = 0
        self.errors = 0
        self.last_error: str | None = None

    def submit(self, frame: np.ndarray,
               at: float | None = None) -> tuple[tuple[BoxLabel, ...], float]:
        """Offer a frame (arrived at ``at``, monotonic seconds); returns the boxes of the
        most recently processed frame and when that frame arrived."""
        with self._lock:
            self._frame = frame
            self._frame_at = time.monotonic() if at is None else at
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="face-live-worker",
                                                daemon=True)
                self._thread.start()
            labels, labels_at = self._labels, self._labels_at
        self._wake.set()
        return labels, labels_at

    def _run(self) -> None:
        while self._wake.wait(WORKER_IDLE_S):
            self._wake.clear()
            with self._lock:
                frame, self._frame = self._frame, None
                frame_at = self._frame_at
            if frame is None:
                continue
            started, cpu = time.monotonic(), time.thread_time()
            try:
                labels = tuple(self._process(frame))
            except Exception as exc:
                self.errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                continue
            with self._lock:
                self._labels, self._labels_at = labels, frame_at
                self.processed += 1
            if TRACE:
                TRACE.write("result", t=time.monotonic(), frame_t=frame_at,
                            ms=1000 * (time.monotonic() - started),
                            cpu_ms=1000 * (time.thread_time() - cpu), faces=len(labels),
                            **self._timing())
        with self._lock:
            self._thread = None
            self._labels = ()


def frame_callback(worker: NewestFrameWorker) -> Callable[[Any], Any]:
    """A ``video_frame_callback`` that feeds ``worker`` and draws its latest boxes."""
    import av

    def callback(frame: Any) -> Any:
        arrived = time.monotonic()
        image = frame.to_ndarray(format="rgb24")
        labels, labels_at = worker.submit(image, arrived)
        if arrived - labels_at > BOX_MAX_AGE_S:
            labels = ()  # computed on a picture too old: the face may be elsewhere by now
        out = frame
        if labels:
            out = av.VideoFrame.from_ndarray(draw_boxes(image, labels), format="rgb24")
            out.pts, out.time_base = frame.pts, frame.time_base
        if TRACE:
            TRACE.write("frame", t=arrived, age=(arrived - labels_at) if labels else None,
                        marker=int(image[:8, :8].mean()),
                        ms=1000 * (time.monotonic() - arrived))
        return out

    return callback


def _mirrored(crop: np.ndarray, mirror: bool) -> np.ndarray:
    return np.ascontiguousarray(crop[:, ::-1]) if mirror else crop


def _put_newest(results: queue.Queue[Any], item: Any) -> None:
    while True:
        try:
            results.put_nowait(item)
            return
        except queue.Full:
            with contextlib.suppress(queue.Empty):
                results.get_nowait()  # drop the oldest: the page only needs recent news


class LiveCheckInProcessor:
    """Live check-in: follow the faces, gather each one's evidence, name it on the whole track.

    The page owns one per browser session (in ``st.session_state``) and reads
    ``results``; check-ins are written here, in the worker thread, so none is lost
    when nobody is looking at the page. With ``only_open_session`` a check-in is
    written only while its session is still the book's open one (the teacher may
    close it while the camera runs).

    Each frame: ``FaceTracker`` finds the faces (a full detection when nothing is
    tracked or a scan is due, O-Net around each known face otherwise). Faces still
    gathering evidence (fewer than ``GATHER_FRAMES`` frames and not yet named) are
    embedded on every frame; the others when they are new, moved or not embedded for a
    while. Each embedding joins its track's evidence (``TrackEvidence``: the mean of the
    track's unit embeddings) and the *track* is decided on that fused evidence at the
    rule's track threshold (``identify_tracks``), never on one frame: the box says
    "checking..." until the track has enough frames, then the track's answer. An unknown
    face is labelled with the reason alone, never with the person it came closest to.
    A named track checks its person in at once (the evidence is already many frames).
    """

    def __init__(self, engine: Any, book: AttendanceBook, tracker: CheckInTracker | None = None, *,
                 only_open_session: bool = False) -> None:
        # ``engine`` may be a Future of one still loading (``web_app.loading``): the video
        # then plays at once and the first frame waits for the engine in the worker.
        self.source = engine
        self.book = book
        # By default a named track checks in at once: its evidence already holds many frames.
        self.tracker = tracker if tracker is not None else CheckInTracker(1)
        self.only_open_session = only_open_session
        self._faces: FaceTracker | None = None
        self.evidence = TrackEvidence()
        self.results: queue.Queue[LiveResult] = queue.Queue(maxsize=RESULT_QUEUE_SIZE)
        self.timing: dict[str, Any] = {}
        self._last_frame = -WORKER_IDLE_S - 1.0
        self.worker = NewestFrameWorker(self.process, timing=lambda: self.timing)
        self.callback = frame_callback(self.worker)

    def start_session(self, session_id: int) -> None:
        if self.tracker.session_id != session_id:
            self.tracker.start_session(session_id, self.book.present_people(session_id))

    @property
    def engine(self) -> Any:
        """The engine, waiting for it if it is still loading."""
        if isinstance(self.source, Future):
            self.source = self.source.result()
        return self.source

    @property
    def faces(self) -> FaceTracker:
        if self._faces is None:
            self._faces = FaceTracker(self.engine.detector, max_side=MAX_PROCESS_SIDE)
        return self._faces

    def _gathering(self, track: Track) -> bool:
        """Still collecting evidence: not named yet, and fewer than ``GATHER_FRAMES`` frames."""
        named = track.match is not None and track.match.name is not None
        return not named and self.evidence.frames(track.id) < GATHER_FRAMES

    def process(self, image: np.ndarray) -> tuple[BoxLabel, ...]:
        faces = self.faces  # the first frame waits here for an engine still loading
        engine = self.engine
        started = time.monotonic()
        if started - self._last_frame > WORKER_IDLE_S:
            faces.clear()  # a new stream: the faces of the old one are gone
            self.evidence.clear()
        self._last_frame = started
        kind = faces.update(image, started)
        self.evidence.keep_only(t.id for t in faces.tracks)
        detected = time.monotonic()
        fresh_tracks = [t for t in faces.tracks
                        if self._gathering(t) or faces.needs_embedding(t, started)]
        if fresh_tracks:
            # Align from the full frame (accuracy); one forward pass for all of them.
            # Every other frame of a track is embedded mirrored: the same face, and the
            # track's mean then cancels the network's left-right quirks (a look-alike's
            # lucky side), at no extra cost (measured in model/learning/tracks.py).
            crops = [_mirrored(align_face(image, t.face), self.evidence.frames(t.id) % 2 == 1)
                     for t in fresh_tracks]
            embeddings, version = engine.embed_crops(crops)
            ids = [t.id for t in fresh_tracks]
            self.evidence.add(ids, embeddings, version)
            fused, frames = self.evidence.fused(ids)
            matches = engine.identify_tracks(fused, frames, [t.face for t in fresh_tracks],
                                             version=version)
            for track, match in zip(fresh_tracks, matches, strict=True):
                FaceTracker.embedded(track, started, match)
        embedded = time.monotonic()
        named = [(t.match.name, t.match.score) for t in faces.tracks
                 if t.match is not None and t.match.name is not None]
        checked = self.tracker.observe(named)
        written, waited = self._write(checked, started)
        done = self.tracker.checked_in()
        labels = []
        for track in faces.tracks:
            match = track.match
            label = match_label(match)
            text = f"{match.name} - checked in" if match.name in done else label.text
            labels.append(BoxLabel(track.face.box, text, label.colour))
        finished = time.monotonic()
        self.timing = {"kind": kind, "detect_ms": 1000 * (detected - started),
                       "embed_ms": 1000 * (embedded - detected), "embedded": len(fresh_tracks)}
        _put_newest(self.results, LiveResult(tuple(labels), tuple(written), tuple(waited),
                                             finished - started, finished))
        return tuple(labels)

    def _write(self, checked: list[LiveCheckIn],
               now: float) -> tuple[list[LiveCheckIn], list[float]]:
        """Write the new check-ins to the book; with, for each, the seconds since the
        face was first seen (the track's birth)."""
        session_id = self.tracker.session_id
        if checked and self.only_open_session and self.book.open_session_id() != session_id:
            session_id = None  # closed meanwhile: check nobody in
        born: dict[str, float] = {}
        for track in self.faces.tracks:
            if track.match is not None and track.match.name is not None:
                born[track.match.name] = min(track.born, born.get(track.match.name, now))
        written, waited = [], []
        for item in checked:
            if session_id is not None and self.book.check_in(
                    session_id, item.name, score=item.score, how="live") is not None:
                written.append(item)
                waited.append(time.monotonic() - born.get(item.name, now))
                if TRACE:
                    TRACE.write("checkin", t=time.monotonic(), name=item.name)
        return written, waited


class LiveEnrollProcessor:
    """Live enrollment: assess the newest frame (face found? big and sharp enough?).

    Keeps the latest assessed frame so the page can capture one every half second.
    """

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self._lock = threading.Lock()
        self._latest: CapturedFrame | None = None
        self.worker = NewestFrameWorker(self.process)
        self.callback = frame_callback(self.worker)

    def process(self, image: np.ndarray) -> tuple[BoxLabel, ...]:
        assessments = tuple(self.engine.assess_faces(image, max_side=MAX_PROCESS_SIDE))
        with self._lock:
            self._latest = CapturedFrame(image, assessments, time.monotonic())
        return tuple(assessment_label(a) for a in assessments)

    def latest(self, newer_than: float = 0.0) -> CapturedFrame | None:
        """The most recently assessed frame, if it was assessed after ``newer_than``."""
        with self._lock:
            latest = self._latest
        if latest is None or latest.at <= newer_than:
            return None
        return latest
