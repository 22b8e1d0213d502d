"""The head-turn check through the live page's own path: the real detector, tracker and
recognizer, a real person's head-pose photos following the prompts (their order fixed by
a test-only seed) and a still print of the same person."""

from __future__ import annotations

import random

import numpy as np
import pytest

from model.learning.presentation import AWS_POSES, FPS, GenuineHead, PhotoAttack, pose_people
from model.school.attendance import AttendanceBook
from model.school.liveness import MOVE, HeadTurnCheck
from model.settings import REPO_ROOT
from web_app.live import HOW_HEAD_TURN, LiveCheckInProcessor

POSE_DIR = REPO_ROOT.parent / "shared" / "datasets" / "pose"
AWS = POSE_DIR / "aws_headpose" / "person01"
NAME = "Aws Person"


@pytest.fixture(scope="module")
def aws_person(detector):
    if not AWS.is_dir():
        pytest.skip(f"the head-pose photos are not at {POSE_DIR} (see its SOURCE.md)")
    people = pose_people(POSE_DIR, detector)
    return people["aws:person01"]


def play(processor, scene, seconds: float):
    """Play ``scene`` to ``processor`` at 15 frames/s on a simulated clock; returns the
    check-ins written and the head-turn steps seen."""
    prompt, written, steps = None, [], []
    for k in range(int(seconds * FPS)):
        t = k / FPS
        processor.process(scene.frame(t, prompt), now=5000.0 + t)
        result = processor.results.get_nowait()
        written += list(result.checked_in)
        steps += list(result.steps)
        prompt = next((s.move for s in result.steps if s.action == MOVE), None)
        if written:
            break
    return written, steps


@pytest.mark.slow
def test_a_real_head_following_the_prompts_checks_in_and_its_photo_does_not(
        attendance, aws_person, tmp_path):
    from model.core.images import load_image

    front = [load_image((AWS / f"IMG_{n}.JPG").read_bytes()) for n in AWS_POSES["front"]]
    attendance.enroll_person(NAME, front, consent=True)
    book = AttendanceBook(tmp_path / "attendance.sqlite3")
    session = book.start_session("Maths", open_it=True)

    processor = LiveCheckInProcessor(attendance, book,
                                     head_turn=HeadTurnCheck(chooser=random.Random(16)))
    processor.start_session(session.id, head_turn=True)
    written, steps = play(processor, GenuineHead(aws_person, np.random.default_rng(16)), 30)
    assert [c.name for c in written] == [NAME]
    assert [c.how for c in book.checkins(session.id)] == [HOW_HEAD_TURN]
    asked = list(dict.fromkeys((s.done, s.move) for s in steps if s.action == MOVE))
    assert len(asked) == 2  # two moves, in the seeded order

    # The same person's photo, printed and held still, on the next session: refused.
    second = book.start_session("Maths again", open_it=True)
    processor = LiveCheckInProcessor(attendance, book,
                                     head_turn=HeadTurnCheck(chooser=random.Random(16)))
    processor.start_session(second.id, head_turn=True)
    photo = PhotoAttack(front[0][80:420, 160:480], "still", np.random.default_rng(1))
    written, steps = play(processor, photo, 25)
    assert written == [] and book.checkins(second.id) == []
    assert any(s.reason.startswith("did not ") and s.reason.endswith(" in time") for s in steps)
