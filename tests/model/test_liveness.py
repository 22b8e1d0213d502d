"""The head-turn challenge and the flat-motion test, on synthetic landmarks (no models)."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from model.core.pose import head_pose, off_plane
from model.records import Landmarks
from model.school.liveness import (
    ASK_TEACHER,
    BACK,
    EARLY,
    FAILED,
    FLAT,
    LOOK,
    MOVE,
    OTHER_FACE,
    PASSED,
    WRONG_WAY,
    FaceInView,
    HeadTurnCheck,
    HeadTurnRule,
)

FPS = 15.0

# A head: eyes at y=0, nose tip 0.55 down and ``depth`` eye distances in front of the
# face's plane (towards the camera, -z), mouth corners at y=1. Unit = the eye distance.
EYES = [(-0.5, 0.0, 0.0), (0.5, 0.0, 0.0)]
MOUTH = [(-0.4, 1.0, 0.0), (0.4, 1.0, 0.0)]


def head(yaw_deg: float = 0.0, pitch_deg: float = 0.0, *, depth: float = 0.5,
         shear: float = 0.0, scale: float = 60.0, centre=(320.0, 240.0),
         distance: float = 8.0) -> Landmarks:
    """Landmarks of a head turned ``yaw_deg`` to its own left (positive) and ``pitch_deg``
    up, seen by a pinhole camera (unmirrored: its own left is the image's right).
    ``depth`` 0 is a flat picture of a face; ``shear`` pushes the picture's lower part
    sideways (a flat picture made to look turned)."""
    a, b = math.radians(yaw_deg), math.radians(pitch_deg)
    points = [*EYES, (0.0, 0.55, -depth), *MOUTH]
    out = []
    for x, y, z in points:
        x = x + shear * y
        # pitch (about x): up moves the nose, in front of the plane, upwards
        y, z = y * math.cos(b) + z * math.sin(b), -y * math.sin(b) + z * math.cos(b)
        # yaw (about y): to its own left moves the nose towards the image's right
        x, z = x * math.cos(a) - z * math.sin(a), x * math.sin(a) + z * math.cos(a)
        f = distance / (distance + z)
        out.append((centre[0] + scale * x * f, centre[1] + scale * y * f))
    return Landmarks(*out)


POSES = {"front": head(), "left": head(35), "right": head(-35), "up": head(0, 30)}


def test_a_head_turned_to_its_own_left_reads_a_positive_yaw_and_up_a_small_pitch():
    assert abs(head_pose(POSES["front"]).yaw) < 0.05
    assert head_pose(POSES["left"]).yaw > 0.25
    assert head_pose(POSES["right"]).yaw < -0.25
    assert head_pose(POSES["up"]).pitch < head_pose(POSES["front"]).pitch - 0.2


def test_a_real_nose_leaves_the_plane_and_a_tilted_picture_does_not():
    for turned in ("left", "right", "up"):
        assert off_plane(POSES["front"], POSES[turned]) > 0.15
    flat_front = head(depth=0.0)
    for yaw, pitch in ((30, 0), (-30, 0), (0, 30), (20, 20)):
        assert off_plane(flat_front, head(yaw, pitch, depth=0.0)) < 0.01
    # a picture sheared until its own nose offset reads as a turn is still flat
    sheared = head(depth=0.0, shear=0.45)
    assert head_pose(sheared).yaw > HeadTurnRule().turn_yaw
    assert off_plane(flat_front, sheared) < 0.01
    assert off_plane(Landmarks(*[(1.0, 1.0)] * 5), POSES["front"]) == 0.0  # degenerate


class Person:
    """Follows the prompts like a person: after ``reaction`` seconds, the asked pose."""

    def __init__(self, poses=POSES, reaction: float = 0.5, wrong: dict | None = None) -> None:
        self.poses, self.reaction, self.wrong = poses, reaction, wrong or {}
        self.prompt, self.since = None, 0.0

    def landmarks(self, t: float, step) -> Landmarks:
        prompt = step.move if step is not None and step.action == MOVE else None
        if prompt != self.prompt:
            self.prompt, self.since = prompt, t
        if prompt is not None and t - self.since >= self.reaction:
            return self.poses[self.wrong.get(prompt, prompt)]
        return self.poses["front"]


def play(check: HeadTurnCheck, person, seconds: float = 30.0, *, name: str = "Ada",
         track: int = 1, same_face=True, start: float = 0.0):
    """Feed ``check`` a face for ``seconds``; returns (time passed or None, steps seen)."""
    step, steps = None, []
    for k in range(int(seconds * FPS)):
        t = start + k / FPS
        marks = person(t, step) if callable(person) else person.landmarks(t, step)
        found, passed = check.observe([FaceInView(track, name, marks, same_face)], t)
        step = found[track]
        steps.append(step)
        if passed:
            return t, steps
        if step.action == ASK_TEACHER:
            return None, steps
    return None, steps


def test_a_person_who_follows_the_prompts_passes_in_a_few_seconds():
    times = []
    for seed in range(20):
        check = HeadTurnCheck(chooser=random.Random(seed))
        passed_at, steps = play(check, Person())
        assert passed_at is not None
        times.append(passed_at)
        asked = [s.move for s in steps if s.action == MOVE]
        assert len(dict.fromkeys(asked)) <= 2 and {s.action for s in steps} >= {LOOK, MOVE}
        assert steps[-1].action == PASSED and steps[-1].done == 2
    assert np.median(times) < 4.0


def test_the_prompts_are_random_and_a_seed_fixes_them():
    def prompts(chooser):
        check = HeadTurnCheck(chooser=chooser)
        _, steps = play(check, Person())
        return tuple(dict.fromkeys((s.done, s.move) for s in steps if s.action == MOVE))

    assert prompts(random.Random(3)) == prompts(random.Random(3))
    assert len({prompts(random.Random(seed)) for seed in range(30)}) >= 6
    assert len({prompts(None) for _ in range(30)}) >= 4  # secrets by default


def test_a_still_photo_is_asked_three_times_then_sent_to_the_teacher():
    check = HeadTurnCheck(chooser=random.Random(0))
    passed_at, steps = play(check, lambda t, step: POSES["front"], seconds=60)
    assert passed_at is None and steps[-1].action == ASK_TEACHER
    reasons = [s.reason for a, s in zip(steps, steps[1:], strict=False)
               if s.action == FAILED and a.action != FAILED]
    assert len(reasons) == 2 and all(r.startswith("did not ") and r.endswith(" in time") for r in reasons)
    assert check.failed_tries("Ada") == 3
    # the same person on a new track is not asked again in this session ...
    again, steps = play(check, Person(), seconds=5, track=2, start=100)
    assert again is None and steps[-1].action == ASK_TEACHER
    # ... until the next session
    check.start_session(2)
    assert play(check, Person(), track=3, start=200)[0] is not None


def test_a_flat_picture_made_to_reach_the_pose_fails_as_flat():
    flat = {"front": head(depth=0.0), "left": head(depth=0.0, shear=0.45),
            "right": head(depth=0.0, shear=-0.45), "up": head(0, 45, depth=0.0, shear=0.0)}
    check = HeadTurnCheck(HeadTurnRule(tries=1), chooser=random.Random(1))
    # a sheared or tilted picture: where it reaches the asked pose, its nose stayed flat
    flat["up"] = Landmarks(*[(x, y - (30 if i == 2 else 0)) for i, (x, y) in
                             enumerate(head(depth=0.0).as_list())])  # nose painted higher
    passed_at, steps = play(check, Person(poses=flat))
    assert passed_at is None
    assert any(s.reason == FLAT for s in steps)


def test_the_wrong_way_or_too_early_fails_the_try():
    check = HeadTurnCheck(HeadTurnRule(tries=1), chooser=random.Random(0))
    wrong = Person(wrong={"left": "right", "right": "left", "up": "left"})
    passed_at, steps = play(check, wrong)
    assert passed_at is None and any(s.reason == WRONG_WAY for s in steps)

    early = HeadTurnCheck(HeadTurnRule(tries=1), chooser=random.Random(0))

    def impatient(t, step):  # faces the camera a moment, then turns unasked
        return POSES["front"] if t < 0.25 else POSES["left"]

    passed_at, steps = play(early, impatient)
    assert passed_at is None and any(s.reason == EARLY for s in steps)


def test_another_face_at_a_front_view_fails_the_try():
    check = HeadTurnCheck(HeadTurnRule(tries=1), chooser=random.Random(0))
    person = Person()
    step, reasons = None, []
    for k in range(int(20 * FPS)):
        t = k / FPS
        # the recognised face is swapped for another one after the first move
        same = not (step is not None and step.action in (BACK, LOOK) and step.done >= 1)
        found, passed = check.observe([FaceInView(1, "Ada", person.landmarks(t, step), same)], t)
        step = found[1]
        reasons.append(step.reason)
        assert not passed
    assert OTHER_FACE in reasons


def test_a_face_lost_after_a_prompt_costs_a_try_and_says_so():
    check = HeadTurnCheck(chooser=random.Random(0))
    t, step = 0.0, None
    person = Person(reaction=10)  # never turns
    while step is None or step.action != MOVE:
        found, _ = check.observe([FaceInView(1, "Ada", person.landmarks(t, step))], t)
        step, t = found[1], t + 1 / FPS
    check.observe([], t)  # the face left the picture
    assert check.failed_tries("Ada") == 1
    found, _ = check.observe([FaceInView(2, "Ada", POSES["front"])], t + 0.1)
    assert found[2].action == FAILED and "lost your face" in found[2].reason


@pytest.mark.parametrize("moves", [1, 3])
def test_the_number_of_moves_is_a_setting(moves):
    check = HeadTurnCheck(HeadTurnRule(moves=moves), chooser=random.Random(5))
    passed_at, steps = play(check, Person())
    assert passed_at is not None and steps[-1].done == moves


def test_the_moves_asked_for_are_a_setting_with_a_clear_error(monkeypatch):
    from model.settings import ENV_HEAD_TURN_MOVES, get_settings

    assert get_settings().head_turn_moves == HeadTurnRule().moves == 2
    monkeypatch.setenv(ENV_HEAD_TURN_MOVES, "3")
    assert get_settings().head_turn_moves == 3
    for bad in ("0", "six", "9"):
        monkeypatch.setenv(ENV_HEAD_TURN_MOVES, bad)
        with pytest.raises(ValueError, match="whole number from 1 to 5"):
            get_settings()
