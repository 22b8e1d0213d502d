"""The live check-in tracker: N consecutive frames, once per session, thread-safe."""

from __future__ import annotations

import threading
from datetime import datetime

import pytest

from model.school.checkin import CheckInTracker, Recognition

T = datetime(2026, 3, 2, 9, 0, 0)


def test_needs_consecutive_frames():
    tracker = CheckInTracker(3, session_id=7)
    assert tracker.observe([("Ada", 0.8)]) == []
    assert tracker.observe([Recognition("Ada", 0.9)]) == []
    assert tracker.streaks() == {"Ada": 2}
    done = tracker.observe([("Ada", 1.0)], now=T)
    assert len(done) == 1
    assert done[0].name == "Ada" and done[0].session_id == 7 and done[0].frames == 3
    assert done[0].score == pytest.approx(0.9) and done[0].at == T
    assert tracker.checked_in() == {"Ada"}


def test_a_missed_frame_restarts_the_count():
    tracker = CheckInTracker(2)
    tracker.observe([("Ada", 0.9)])
    tracker.observe([])
    assert tracker.observe([("Ada", 0.9)]) == []
    assert [c.name for c in tracker.observe([("Ada", 0.9)])] == ["Ada"]


def test_being_seen_as_someone_else_restarts_the_count():
    tracker = CheckInTracker(2)
    tracker.observe([("Ada", 0.9)])
    tracker.observe([("Grace", 0.9)])
    assert [c.name for c in tracker.observe([("Ada", 0.9), ("Grace", 0.8)])] == ["Grace"]


def test_only_once_per_session():
    tracker = CheckInTracker(1)
    assert len(tracker.observe([("Ada", 0.9)])) == 1
    for _ in range(5):
        assert tracker.observe([("Ada", 0.9)]) == []
    assert tracker.streaks() == {}


def test_new_session_allows_check_in_again_and_respects_already_checked():
    tracker = CheckInTracker(1, session_id=1)
    tracker.observe([("Ada", 0.9)])
    tracker.start_session(2, already_checked_in=["Grace"])
    names = [c.name for c in tracker.observe([("Ada", 0.9), ("Grace", 0.9)])]
    assert names == ["Ada"] and tracker.session_id == 2


def test_unknown_faces_and_duplicates():
    tracker = CheckInTracker(2)
    tracker.observe([(None, 0.3), ("Ada", 0.5), ("Ada", 0.9)])
    assert tracker.streaks() == {"Ada": 1}
    done = tracker.observe([("Ada", 0.7)])
    assert done[0].score == pytest.approx(0.8)


def test_several_people_at_once():
    tracker = CheckInTracker(2)
    tracker.observe([("Ada", 0.9), ("Grace", 0.9)])
    assert sorted(c.name for c in tracker.observe([("Ada", 0.9), ("Grace", 0.9)])) == [
        "Ada", "Grace"]


def test_forget_lets_a_person_check_in_again():
    tracker = CheckInTracker(1)
    tracker.observe([("Ada", 0.9)])
    tracker.forget("Ada")
    assert len(tracker.observe([("Ada", 0.9)])) == 1


def test_required_frames_must_be_positive():
    with pytest.raises(ValueError):
        CheckInTracker(0)


def test_threads_check_each_person_in_once():
    tracker = CheckInTracker(2)
    out = []
    lock = threading.Lock()

    def worker():
        for _ in range(200):
            fresh = tracker.observe([("Ada", 0.9), ("Grace", 0.8)])
            with lock:
                out.extend(fresh)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(c.name for c in out) == ["Ada", "Grace"]


def test_a_carried_face_keeps_its_streak_without_lengthening_it():
    tracker = CheckInTracker(3, session_id=1)
    assert tracker.observe([("Ada", 0.9)]) == []
    assert tracker.observe([], carried=["Ada"]) == []  # still in view, not looked at again
    assert tracker.streaks() == {"Ada": 1}
    assert tracker.observe([("Ada", 0.8)]) == []
    [done] = tracker.observe([("Ada", 0.7)])
    assert done.frames == 3
    tracker.start_session(2)
    tracker.observe([("Bo", 0.9)])
    assert tracker.observe([]) == [] and tracker.streaks() == {}  # gone: the streak ends
