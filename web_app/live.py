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
import queue
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

# Imported here, before anything loads TensorFlow: importing aiortc (under
# streamlit-webrtc) *after* TensorFlow crashes the process with a segmentation
# fault in pylibsrtp (two OpenSSL builds). ``app.py`` imports this module first;
# in a process where TensorFlow is already loaded we do not try (see
# ``live_camera_problem``).
if "tensorflow" not in sys.modules:
    # Without the package the live modes say they are unavailable.
    with contextlib.suppress(ImportError):
        import streamlit_webrtc  # noqa: F401

from model.school.attendance import AttendanceBook
from model.school.checkin import CheckInTracker, LiveCheckIn
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


def live_camera_problem() -> str | None:
    """Why the live camera cannot run in this process, or None when it can."""
    if "streamlit_webrtc" in sys.modules:
        return None
    if "tensorflow" in sys.modules:
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
    waited: tuple[float, ...]  # per check-in: seconds from the face's first recognised frame
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

    def __init__(self, process: Callable[[np.ndarray], Sequence[BoxLabel]]) -> None:
        self._process = process
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._frame: np.ndarray | None = None
        self._labels: tuple[BoxLabel, ...] = ()
        self._thread: threading.Thread | None = None
        self.processed = 0
        self.errors = 0
        self.last_error: str | None = None

    def submit(self, frame: np.ndarray) -> tuple[BoxLabel, ...]:
        """Offer a frame; returns the boxes of the most recently processed one."""
        with self._lock:
            self._frame = frame
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="face-live-worker",
                                                daemon=True)
                self._thread.start()
            labels = self._labels
        self._wake.set()
        return labels

    def _run(self) -> None:
        while self._wake.wait(WORKER_IDLE_S):
            self._wake.clear()
            with self._lock:
                frame, self._frame = self._frame, None
            if frame is None:
                continue
            try:
                labels = tuple(self._process(frame))
            except Exception as exc:
                self.errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                continue
            with self._lock:
                self._labels = labels
                self.processed += 1
        with self._lock:
            self._thread = None
            self._labels = ()


def frame_callback(worker: NewestFrameWorker) -> Callable[[Any], Any]:
    """A ``video_frame_callback`` that feeds ``worker`` and draws its latest boxes."""
    import av

    def callback(frame: Any) -> Any:
        image = frame.to_ndarray(format="rgb24")
        labels = worker.submit(image)
        if not labels:
            return frame
        out = av.VideoFrame.from_ndarray(draw_boxes(image, labels), format="rgb24")
        out.pts, out.time_base = frame.pts, frame.time_base
        return out

    return callback


def _put_newest(results: queue.Queue[Any], item: Any) -> None:
    while True:
        try:
            results.put_nowait(item)
            return
        except queue.Full:
            with contextlib.suppress(queue.Empty):
                results.get_nowait()  # drop the oldest: the page only needs recent news


class LiveCheckInProcessor:
    """Live check-in: identify faces, feed the tracker, write check-ins to the book.

    The page owns one per browser session (in ``st.session_state``) and reads
    ``results``; check-ins are written here, in the worker thread, so none is lost
    when nobody is looking at the page. With ``only_open_session`` a check-in is
    written only while its session is still the book's open one (the teacher may
    close it while the camera runs).

    Box labels name a face only when it was recognised; an unknown face is labelled
    with the reason alone, never with the person it came closest to.
    """

    def __init__(self, engine: Any, book: AttendanceBook, tracker: CheckInTracker, *,
                 only_open_session: bool = False) -> None:
        self.engine = engine
        self.book = book
        self.tracker = tracker
        self.only_open_session = only_open_session
        self.results: queue.Queue[LiveResult] = queue.Queue(maxsize=RESULT_QUEUE_SIZE)
        # When each person's current streak began (the frame their face was first
        # recognised), to report the time from a face entering view to its check-in.
        self._first_seen: dict[str, float] = {}
        self.worker = NewestFrameWorker(self.process)
        self.callback = frame_callback(self.worker)

    def start_session(self, session_id: int) -> None:
        if self.tracker.session_id != session_id:
            self.tracker.start_session(session_id, self.book.present_people(session_id))

    def process(self, image: np.ndarray) -> tuple[BoxLabel, ...]:
        started = time.monotonic()
        # Detect on a small copy (speed), but align from the full frame (accuracy).
        matches = self.engine.identify_faces(image, max_side=MAX_PROCESS_SIDE)
        seen = {m.name for m in matches if m.name is not None}
        self._first_seen = {name: self._first_seen.get(name, started) for name in seen}
        fresh = self.tracker.observe([(m.name, m.score) for m in matches])
        session_id = self.tracker.session_id
        if fresh and self.only_open_session and self.book.open_session_id() != session_id:
            session_id = None  # closed meanwhile: check nobody in
        written, waited = [], []
        for item in fresh:
            if session_id is not None and self.book.check_in(
                    session_id, item.name, score=item.score, how="live") is not None:
                written.append(item)
                waited.append(time.monotonic() - self._first_seen.get(item.name, started))
        streaks = self.tracker.streaks()
        done = self.tracker.checked_in()
        labels = []
        for match in matches:
            label = match_label(match)
            if match.name in done:
                text = f"{match.name} - checked in"
            elif match.name in streaks:
                text = f"{label.text} ({streaks[match.name]}/{self.tracker.required_frames})"
            else:
                text = label.text
            labels.append(BoxLabel(match.box, text, label.colour))
        _put_newest(self.results, LiveResult(tuple(labels), tuple(written), tuple(waited),
                                             time.monotonic() - started, time.monotonic()))
        return tuple(labels)


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
