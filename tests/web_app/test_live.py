"""The live-camera plumbing without a browser: newest frame only, check-ins through the queue."""

from __future__ import annotations

import threading
import time
from fractions import Fraction

import numpy as np
from synthetic_faces import synthetic_face

from model.records import DetectedFace, Match
from model.school.attendance import AttendanceBook
from model.school.checkin import CheckInTracker
from web_app.live import BOX_MAX_AGE_S, LiveCheckInProcessor, NewestFrameWorker, frame_callback

FRAME = np.zeros((480, 640, 3), dtype=np.uint8)


def wait_for(condition, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


def test_worker_processes_only_the_newest_frame():
    seen = []
    gate = threading.Event()

    def slow(frame):
        gate.wait(2)
        seen.append(int(frame[0, 0, 0]))
        return ()

    worker = NewestFrameWorker(slow)
    worker.submit(np.full((2, 2, 3), 1, np.uint8))
    time.sleep(0.05)  # the worker is now busy with frame 1
    for value in range(2, 10):
        worker.submit(np.full((2, 2, 3), value, np.uint8))
    gate.set()
    assert wait_for(lambda: worker.processed == 2)
    time.sleep(0.1)
    assert seen == [1, 9]  # frames 2..8 were replaced before the model saw them


def test_a_worker_with_a_minimum_interval_skips_the_frames_in_between():
    """Live enrollment's worker assesses at most ENROLL_MAX_FPS frames a second, however
    fast frames come, and always the newest one."""
    seen = []
    worker = NewestFrameWorker(lambda frame: seen.append(int(frame[0, 0, 0])) or (),
                               min_interval_s=0.2)
    started = time.monotonic()
    value = 0
    while time.monotonic() - started < 1.0:  # a camera at ~100 frames/s for a second
        value += 1
        worker.submit(np.full((2, 2, 3), value % 256, np.uint8))
        time.sleep(0.01)
    assert 4 <= len(seen) <= 6  # one every 0.2 s, not ~100
    assert wait_for(lambda: seen[-1] == value % 256)  # the last frame is still processed


def test_worker_survives_a_failing_frame():
    calls = []

    def flaky(frame):
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("bad frame")
        return ()

    worker = NewestFrameWorker(flaky)
    worker.submit(FRAME)
    assert wait_for(lambda: worker.errors == 1)
    worker.submit(FRAME)
    assert wait_for(lambda: worker.processed == 1)
    assert worker.last_error == "ValueError: bad frame"


class FakeDetector:
    """One face in view (or none, when ``present`` is False), at ``x``."""

    def __init__(self) -> None:
        self.present = True
        self.x = 10

    def _face(self):
        return face(self.x) if self.present else None

    def detect(self, image, *, max_side=None):
        return [self._face()] if self.present else []

    def follow(self, image, boxes):
        return [self._face() for _ in boxes]


def face(x: int) -> DetectedFace:
    return synthetic_face(x, 10)


class FakeEngine:
    """Names a track "Ada Lovelace" once it holds ``min_frames`` frames ("checking" before);
    with ``stranger`` it never names anyone. Counts the faces it embedded."""

    def __init__(self, min_frames: int = 3, stranger: bool = False) -> None:
        self.detector = FakeDetector()
        self.embedded = 0
        self.min_frames = min_frames
        self.stranger = stranger
        self.frames_seen: list[int] = []

    def embed_crops(self, crops):
        self.embedded += len(crops)
        self.crops = getattr(self, "crops", []) + list(crops)
        return np.ones((len(crops), 4), np.float32) / 2, "v1"

    def identify_tracks(self, fused, frames, faces, version=None):
        assert version == "v1" and fused.shape == (len(frames), 4)
        self.frames_seen += list(frames)
        out = []
        for f, n in zip(faces, frames, strict=True):
            if n < self.min_frames:
                out.append(Match(box=f.box, name=None, score=0.9, candidates=(), reason="checking"))
            elif self.stranger:
                out.append(Match(box=f.box, name=None, score=0.5, candidates=(("Ada Lovelace", 0.5),),
                                 closest="Ada Lovelace", reason="not close enough"))
            else:
                out.append(Match(box=f.box, name="Ada Lovelace", score=0.9,
                                 candidates=(("Ada Lovelace", 0.9),)))
        return out


def test_live_check_in_on_the_tracks_evidence(tmp_path):
    book = AttendanceBook(tmp_path / "a.sqlite3")
    session = book.start_session("Maths")
    engine = FakeEngine(min_frames=3)
    processor = LiveCheckInProcessor(engine, book, CheckInTracker(1))
    processor.start_session(session.id)
    labels = [processor.process(FRAME) for _ in range(5)]
    assert [lab[0].text for lab in labels[:2]] == ["checking...", "checking..."]  # never a name
    assert "checked in" in labels[2][0].text
    assert engine.frames_seen[:3] == [1, 2, 3]  # one track, its evidence growing frame by frame
    results = [processor.results.get_nowait() for _ in range(5)]
    fresh = [c.name for r in results for c in r.checked_in]
    assert fresh == ["Ada Lovelace"]  # once, on the third frame
    waited = [w for r in results for w in r.waited]
    assert len(waited) == 1 and waited[0] >= 0
    assert [c.how for c in book.checkins(session.id)] == ["live"]


def test_a_class_asking_for_a_head_turn_checks_no_still_face_in(tmp_path):
    """The same named face: with the class's head turn it is asked to move and, never
    moving, is not checked in; without it, it checks in at once (as "live")."""
    book = AttendanceBook(tmp_path / "a.sqlite3")
    asked = book.start_session("Maths")
    processor = LiveCheckInProcessor(FakeEngine(min_frames=3), book)
    processor.start_session(asked.id, head_turn=True)
    labels = [processor.process(FRAME, now=100 + k / 15) for k in range(60)]
    assert book.checkins(asked.id) == []
    texts = {label[0].text for label in labels}
    assert "Ada Lovelace: look at the camera" in texts
    prompts = [label[0] for label in labels if label[0].prompt]
    assert prompts and prompts[0].text.startswith("Ada Lovelace: ")  # an arrow and a word

    plain_session = book.start_session("Art")
    processor = LiveCheckInProcessor(FakeEngine(min_frames=3), book)
    processor.start_session(plain_session.id, head_turn=False)
    for k in range(4):
        processor.process(FRAME, now=200 + k / 15)
    assert [c.how for c in book.checkins(plain_session.id)] == ["live"]


def test_the_kiosk_video_is_a_mirror_with_readable_labels():
    """The returned frame is flipped left-right (the person's left on the screen's left)
    and the boxes are flipped with it."""
    import av

    picture = np.zeros((48, 64, 3), np.uint8)
    picture[:, :8] = 255  # a white band on the camera's left
    worker = NewestFrameWorker(lambda image: ())
    callback = frame_callback(worker, mirror=lambda: True)
    frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
    frame.pts, frame.time_base = 0, Fraction(1, 15)
    out = callback(frame).to_ndarray(format="rgb24")
    assert out[:, -8:].mean() > 200 and out[:, :8].mean() < 50
    from web_app.common import BoxLabel

    assert BoxLabel((10, 5, 20, 20), "x", (0, 0, 0)).mirrored(64).box == (34, 5, 20, 20)


def test_live_check_in_respects_earlier_check_ins(tmp_path):
    book = AttendanceBook(tmp_path / "a.sqlite3")
    session = book.start_session("Maths")
    book.check_in(session.id, "Ada Lovelace", score=0.8, how="snapshot")
    processor = LiveCheckInProcessor(FakeEngine(min_frames=1), book, CheckInTracker(1))
    processor.start_session(session.id)
    processor.process(FRAME)
    assert processor.results.get_nowait().checked_in == ()
    assert len(book.checkins(session.id)) == 1



def test_a_face_is_embedded_only_while_it_matters_and_its_box_goes_when_it_leaves(tmp_path):
    book = AttendanceBook(tmp_path / "a.sqlite3")
    session = book.start_session("Maths")
    engine = FakeEngine(min_frames=3)
    processor = LiveCheckInProcessor(engine, book, CheckInTracker(1))
    processor.start_session(session.id)
    for _ in range(3):
        processor.process(FRAME)
    assert engine.embedded == 3  # each frame of a track still gathering evidence is looked at
    for _ in range(3):
        labels = processor.process(FRAME)
    assert engine.embedded == 3  # checked in and still: nothing to embed
    assert labels[0].text == "Ada Lovelace - checked in"
    engine.detector.x = 60  # a step sideways: looked at again
    labels = processor.process(FRAME)
    assert engine.embedded == 4 and labels[0].box[0] == 60
    engine.detector.present = False
    assert processor.process(FRAME) == ()  # left: no box on the empty view


def test_a_stranger_who_stays_is_never_named_and_costs_less_after_the_first_two_seconds(
        tmp_path, monkeypatch):
    import model.core.tracking as tracking
    from web_app.live import GATHER_FRAMES

    monkeypatch.setattr(tracking, "REFRESH_S", 1e9)  # no once-a-second look in this test

    book = AttendanceBook(tmp_path / "a.sqlite3")
    session = book.start_session("Maths")
    engine = FakeEngine(min_frames=3, stranger=True)
    processor = LiveCheckInProcessor(engine, book, CheckInTracker(1))
    processor.start_session(session.id)
    texts = {processor.process(FRAME)[0].text for _ in range(GATHER_FRAMES + 20)}
    assert texts == {"checking...", "unknown: not close enough"}  # never Ada's name
    assert engine.embedded == GATHER_FRAMES  # standing still after that: no new look
    assert book.checkins(session.id) == []
    engine.detector.present = False
    processor.process(FRAME)
    engine.detector.present = True
    processor.process(FRAME)
    assert engine.frames_seen[-1] == 1  # a new track starts its evidence from nothing


def test_every_other_frame_of_a_track_is_embedded_mirrored(tmp_path, monkeypatch):
    import web_app.live as live

    crop = np.arange(112 * 112 * 3, dtype=np.uint32).reshape(112, 112, 3).astype(np.uint8)
    monkeypatch.setattr(live, "align_face", lambda image, face: crop)
    engine = FakeEngine(min_frames=10)
    processor = LiveCheckInProcessor(engine, AttendanceBook(tmp_path / "a.sqlite3"), CheckInTracker(1))
    for _ in range(4):
        processor.process(FRAME)
    assert [np.array_equal(c, crop) for c in engine.crops] == [True, False, True, False]
    assert np.array_equal(engine.crops[1], crop[:, ::-1])  # the same face, mirrored


class FakeFrame:
    """What streamlit-webrtc hands the callback (an av.VideoFrame's two methods we use)."""

    pts, time_base = 0, Fraction(1, 90000)

    def to_ndarray(self, format):
        return FRAME.copy()


def test_boxes_are_drawn_only_on_frames_close_to_the_one_they_came_from(monkeypatch):
    import web_app.live as live

    label = live.BoxLabel((10, 10, 100, 100), "Ada", (0, 200, 0))

    class Worker:
        def __init__(self, at):
            self.at = at

        def submit(self, image, at):
            return (label,), self.at

    drawn = []
    monkeypatch.setattr(live, "draw_boxes", lambda image, labels: drawn.append(labels) or image)
    now = time.monotonic()
    frame_callback(Worker(now))(FakeFrame())
    assert drawn == [(label,)]
    frame_callback(Worker(now - BOX_MAX_AGE_S - 0.5))(FakeFrame())
    assert drawn == [(label,)]  # half a second old: hidden, not drawn where the face was
