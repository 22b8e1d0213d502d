"""The live-camera plumbing without a browser: newest frame only, check-ins through the queue."""

from __future__ import annotations

import threading
import time

import numpy as np

from model.records import Match
from model.school.attendance import AttendanceBook
from model.school.checkin import CheckInTracker
from web_app.live import LiveCheckInProcessor, NewestFrameWorker

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


class FakeEngine:
    """Recognises one person in every frame (what identify_faces would return)."""

    def identify_faces(self, image, max_side=None):
        return [Match(box=(10, 10, 100, 100), name="Ada Lovelace", score=0.9,
                      candidates=(("Ada Lovelace", 0.9),))]


def test_live_check_in_after_consecutive_frames(tmp_path):
    book = AttendanceBook(tmp_path / "a.sqlite3")
    session = book.start_session("Maths")
    processor = LiveCheckInProcessor(FakeEngine(), book, CheckInTracker(3))
    processor.start_session(session.id)
    labels = [processor.process(FRAME) for _ in range(5)]
    assert labels[0][0].text.endswith("(1/3)")
    assert "checked in" in labels[2][0].text
    results = [processor.results.get_nowait() for _ in range(5)]
    fresh = [c.name for r in results for c in r.checked_in]
    assert fresh == ["Ada Lovelace"]  # once, on the third frame
    waited = [w for r in results for w in r.waited]
    assert len(waited) == 1 and waited[0] >= 0
    assert [c.how for c in book.checkins(session.id)] == ["live"]


def test_live_check_in_respects_earlier_check_ins(tmp_path):
    book = AttendanceBook(tmp_path / "a.sqlite3")
    session = book.start_session("Maths")
    book.check_in(session.id, "Ada Lovelace", score=0.8, how="snapshot")
    processor = LiveCheckInProcessor(FakeEngine(), book, CheckInTracker(1))
    processor.start_session(session.id)
    processor.process(FRAME)
    assert processor.results.get_nowait().checked_in == ()
    assert len(book.checkins(session.id)) == 1

