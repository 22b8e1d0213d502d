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
import logging
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

from model.core.alignment import align_face
from model.core.tracking import FaceTracker, Track
from model.school.attendance import DEFAULT_KIOSK, RegisterBook
from model.school.checkin import CheckInTracker, LiveCheckIn, TrackEvidence
from model.school.liveness import ASK_TEACHER, FAILED, MOVE, FaceInView, HeadTurnCheck, Step
from web_app.common import (
    COLOUR_PROBLEM,
    COLOUR_PROMPT,
    BoxLabel,
    assessment_label,
    draw_boxes,
    match_label,
)

#: Set to a logging level (``INFO``, ``DEBUG``) to have streamlit-webrtc's own messages
#: (ICE states, its worker started or stopped) in the server's output; unset, they are
#: dropped. The real-browser test sets it, so a stream that drops says on which side.
WEBRTC_LOG_ENV = "FACEATT_WEBRTC_LOG"
if _webrtc_level := os.environ.get(WEBRTC_LOG_ENV, "").strip().upper():
    _webrtc_log = logging.getLogger("streamlit_webrtc")
    if not _webrtc_log.handlers:
        _handler = logging.StreamHandler()
        _handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
        _webrtc_log.addHandler(_handler)
        _webrtc_log.setLevel(_webrtc_level)

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
#: Live enrollment assesses at most this many frames a second (a full detection each): a
#: capture takes one every half second, and the green/red box needs no more. Unthrottled,
#: the detector took a whole core, which the server's WebRTC connection (the same process)
#: then lacked on a busy 2-core laptop: the stream dropped in a capture.
ENROLL_MAX_FPS = 8
#: Boxes are drawn only on frames at most this much newer (seconds) than the frame they
#: were computed from; older ones are hidden rather than left where the face was.
BOX_MAX_AGE_S = 0.3
#: A face not yet named is embedded on every processed frame until its track holds this
#: many frames (2 s at 15 frames/s), so a student is decided quickly; after that (a
#: stranger, or someone the camera sees badly) only when it moves or once a second, as a
#: named face is. Lower saves CPU on strangers; higher decides doubtful faces sooner.
GATHER_FRAMES = 30
#: During a head-turn challenge a face must stay the person it was recognised as: each
#: front view's embedding is compared (cosine) with the track's fused embedding from
#: before the challenge, and one below this is "another face" (a photo swapped for a
#: friend who then turns). Measured on the shipped network (``python
#: benchmarks/bench_liveness.py --same-face``, 300 LFW DevTrain people, a photo against the
#: unit mean of 3 other photos): same person p1 0.442, p5 0.544; different people p99
#: 0.535; each photo's nearest of 299 other people, median 0.545. So 0.45 keeps 99% of a
#: person's photos of *other days* (a live face against its own track of seconds ago
#: scores far higher) and stops most friends, but not a close look-alike: a coarse check
#: beside the tracker's, which must follow the face throughout.
SAME_FACE_COSINE = 0.45
#: How a check-in after a head turn is written in the register's "How" column.
HOW_HEAD_TURN = "head turn"


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
    #: Head-turn steps of the faces in this frame (those being asked to turn).
    steps: tuple[Step, ...] = ()


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
                 timing: Callable[[], dict[str, Any]] | None = None,
                 min_interval_s: float = 0.0) -> None:
        self._process = process
        self._min_interval_s = min_interval_s
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
            # At most one frame per ``min_interval_s``: the frames that arrive meanwhile
            # replace each other, and the CPU goes to the rest of the server.
            time.sleep(max(0.0, started + self._min_interval_s - time.monotonic()))
            if TRACE:
                TRACE.write("result", t=time.monotonic(), frame_t=frame_at,
                            ms=1000 * (time.monotonic() - started),
                            cpu_ms=1000 * (time.thread_time() - cpu), faces=len(labels),
                            **self._timing())
        with self._lock:
            self._thread = None
            self._labels = ()


def frame_callback(worker: NewestFrameWorker, *,
                   mirror: Callable[[], bool] | None = None) -> Callable[[Any], Any]:
    """A ``video_frame_callback`` that feeds ``worker`` and draws its latest boxes.

    With ``mirror`` returning True the video goes back flipped left-right (a mirror, as a
    kiosk's preview should be: the person's left is the screen's left, which is where a
    head-turn prompt's "left" arrow points); the worker still sees the camera's picture.
    """
    import av

    def callback(frame: Any) -> Any:
        arrived = time.monotonic()
        image = frame.to_ndarray(format="rgb24")
        labels, labels_at = worker.submit(image, arrived)
        if arrived - labels_at > BOX_MAX_AGE_S:
            labels = ()  # computed on a picture too old: the face may be elsewhere by now
        out = frame
        flip = mirror is not None and mirror()
        if flip:
            width = image.shape[1]
            image = np.ascontiguousarray(image[:, ::-1])
            labels = tuple(label.mirrored(width) for label in labels)
        if labels or flip:
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
    written only while its session is still the open one of the page's kiosk (the teacher
    may close it while the camera runs).

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

    def __init__(self, engine: Any, book: RegisterBook, tracker: CheckInTracker | None = None, *,
                 only_open_session: bool = False, head_turn: HeadTurnCheck | None = None,
                 mirror: bool = True, kiosk: str = DEFAULT_KIOSK) -> None:
        # ``engine`` may be a Future of one still loading (``web_app.loading``): the video
        # then plays at once and the first frame waits for the engine in the worker.
        self.source = engine
        self.book = book
        # By default a named track checks in at once: its evidence already holds many frames.
        self.tracker = tracker if tracker is not None else CheckInTracker(1)
        self.only_open_session = only_open_session
        #: The kiosk whose open session ``only_open_session`` follows.
        self.kiosk = kiosk
        #: Ask each recognised face for a head turn before checking it in (the class's
        #: setting; ``start_session`` sets it).
        self.require_turn = False
        self.turns = head_turn if head_turn is not None else HeadTurnCheck()
        self.mirror = mirror
        self._faces: FaceTracker | None = None
        self.evidence = TrackEvidence()
        # Per track in a head-turn challenge: its fused embedding when the challenge began.
        self._reference: dict[int, np.ndarray] = {}
        self.results: queue.Queue[LiveResult] = queue.Queue(maxsize=RESULT_QUEUE_SIZE)
        self.timing: dict[str, Any] = {}
        self._last_frame = -WORKER_IDLE_S - 1.0
        self.worker = NewestFrameWorker(self.process, timing=lambda: self.timing)
        self.callback = frame_callback(self.worker, mirror=lambda: self.mirror)

    def start_session(self, session_id: int, *, head_turn: bool | None = None) -> None:
        """Check into ``session_id`` from now on; ``head_turn``: whether its class asks for
        a head turn (None keeps the current setting)."""
        if head_turn is not None:
            self.require_turn = head_turn
        if self.tracker.session_id != session_id:
            self.tracker.start_session(session_id, self.book.present_people(session_id))
            self.turns.start_session(session_id)

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

    def _challenged(self, track: Track, done: set[str]) -> bool:
        """Named, not checked in, and asked for a head turn: looked at on every frame."""
        match = track.match
        return (self.require_turn and match is not None and match.name is not None
                and match.name not in done)

    def process(self, image: np.ndarray, now: float | None = None) -> tuple[BoxLabel, ...]:
        """Follow, identify and check in the faces of one camera frame (RGB uint8); ``now``
        is the frame's time (``time.monotonic()`` when None; tests and benchmarks pass
        their own clock). Returns the boxes to draw."""
        faces = self.faces  # the first frame waits here for an engine still loading
        engine = self.engine
        clock = time.monotonic()
        started = clock if now is None else now
        if started - self._last_frame > WORKER_IDLE_S:
            faces.clear()  # a new stream: the faces of the old one are gone
            self.evidence.clear()
        self._last_frame = started
        kind = faces.update(image, started)
        self.evidence.keep_only(t.id for t in faces.tracks)
        self._reference = {t.id: self._reference[t.id] for t in faces.tracks
                           if t.id in self._reference}
        detected = time.monotonic()
        done = self.tracker.checked_in()
        fresh_tracks = [t for t in faces.tracks
                        if self._gathering(t) or self._challenged(t, done)
                        or faces.needs_embedding(t, started)]
        same_face: dict[int, bool] = {}
        if fresh_tracks:
            # Align from the full frame (accuracy); one forward pass for all of them.
            # Every other frame of a track is embedded mirrored: the same face, and the
            # track's mean then cancels the network's left-right quirks (a look-alike's
            # lucky side), at no extra cost (measured in model/learning/tracks.py).
            crops = [_mirrored(align_face(image, t.face), self.evidence.frames(t.id) % 2 == 1)
                     for t in fresh_tracks]
            embeddings, version = engine.embed_crops(crops)
            ids = [t.id for t in fresh_tracks]
            for track, row in zip(fresh_tracks, np.asarray(embeddings), strict=True):
                reference = self._reference.get(track.id)
                if reference is not None:
                    unit = row / max(float(np.linalg.norm(row)), 1e-12)
                    same_face[track.id] = float(unit @ reference) >= SAME_FACE_COSINE
            self.evidence.add(ids, embeddings, version)
            fused, frames = self.evidence.fused(ids)
            matches = engine.identify_tracks(fused, frames, [t.face for t in fresh_tracks],
                                             version=version)
            for track, match, row in zip(fresh_tracks, matches, fused, strict=True):
                is_named = match is not None and match.name is not None
                if is_named and track.id not in self._reference:
                    self._reference[track.id] = np.asarray(row, np.float64)
                elif not is_named or (track.match is not None and track.match.name != match.name):
                    self._reference.pop(track.id, None)
                FaceTracker.embedded(track, started, match)
        embedded = time.monotonic()
        named = [(t.match.name, t.match.score) for t in faces.tracks
                 if t.match is not None and t.match.name is not None]
        steps: dict[int, Step] = {}
        if self.require_turn:
            # A recognised face checks in only once it has followed the prompts.
            waiting = [FaceInView(t.id, t.match.name, t.face.landmarks, same_face.get(t.id))
                       for t in faces.tracks if self._challenged(t, done)]
            steps, passed = self.turns.observe(waiting, started)
            scores = dict(named)
            named = [(name, scores[name]) for name in passed]
        checked = self.tracker.observe(named)
        written, waited = self._write(checked, started)
        done = self.tracker.checked_in()
        labels = []
        for track in faces.tracks:
            match = track.match
            label = match_label(match)
            step = steps.get(track.id)
            if match.name in done:
                labels.append(BoxLabel(track.face.box, f"{match.name} - checked in",
                                       label.colour))
            elif step is not None:
                labels.append(_step_label(track.face.box, match.name, step))
            else:
                labels.append(BoxLabel(track.face.box, label.text, label.colour))
        finished = time.monotonic()
        self.timing = {"kind": kind, "detect_ms": 1000 * (detected - clock),
                       "embed_ms": 1000 * (embedded - detected), "embedded": len(fresh_tracks)}
        _put_newest(self.results, LiveResult(tuple(labels), tuple(written), tuple(waited),
                                             finished - clock, finished, tuple(steps.values())))
        return tuple(labels)

    def _write(self, checked: list[LiveCheckIn],
               now: float) -> tuple[list[LiveCheckIn], list[float]]:
        """Write the new check-ins to the book; with, for each, the seconds since the
        face was first seen (the track's birth)."""
        session_id = self.tracker.session_id
        if checked and self.only_open_session and self.book.open_session_id(self.kiosk) != session_id:
            session_id = None  # closed meanwhile: check nobody in
        born: dict[str, float] = {}
        for track in self.faces.tracks:
            if track.match is not None and track.match.name is not None:
                born[track.match.name] = min(track.born, born.get(track.match.name, now))
        written, waited = [], []
        how = HOW_HEAD_TURN if self.require_turn else "live"
        for item in checked:
            if session_id is not None and self.book.check_in(
                    session_id, item.name, score=item.score, how=how) is not None:
                written.append(item)
                waited.append(time.monotonic() - born.get(item.name, now))
                if TRACE:
                    TRACE.write("checkin", t=time.monotonic(), name=item.name)
        return written, waited


def _step_label(box: tuple[int, int, int, int], name: str, step: Step) -> BoxLabel:
    """A face in a head-turn challenge: its name and what to do, and the prompt's arrow."""
    if step.action == MOVE:
        return BoxLabel(box, f"{name}: {step.text}", COLOUR_PROMPT, step.move or "")
    if step.action == ASK_TEACHER:
        return BoxLabel(box, f"{name}: ask the teacher", COLOUR_PROBLEM)
    if step.action == FAILED:
        return BoxLabel(box, f"{name}: {step.reason}", COLOUR_PROBLEM)
    return BoxLabel(box, f"{name}: {step.text}", COLOUR_PROMPT)


class LiveEnrollProcessor:
    """Live enrollment: assess the newest frame (face found? big and sharp enough?).

    Keeps the latest assessed frame so the page can capture one every half second.
    """

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self._lock = threading.Lock()
        self._latest: CapturedFrame | None = None
        self.worker = NewestFrameWorker(self.process, min_interval_s=1.0 / ENROLL_MAX_FPS)
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
