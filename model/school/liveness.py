"""The "turn your head" challenge: a recognised face checks in only after following two
random prompts, which a photo held to the camera cannot do.

A printed photo or a phone showing a student's face is recognised as that student as
readily as the student. What a picture cannot do is turn like a head on request:

* **random prompts.** After a face is recognised the kiosk asks for ``HeadTurnRule.moves``
  moves, each drawn with ``secrets`` from left / right / up, one after the other: "look at
  the camera" (after a short random wait) -> "turn left" -> back to the front -> "up" ->
  back to the front. Each move must be reached within ``move_timeout_s`` and held for
  ``hold_frames`` processed frames; a move made before it was asked for, or the wrong
  way, fails the try, so a replayed recording that does not follow the prompts fails;
* **flat things do not turn like heads.** Between the front view and the turned view the
  eyes and mouth corners of a photo move by one homography and its nose moves with them
  (``model.core.pose.off_plane``); a real nose leaves that plane. A turned view whose nose
  stays on the plane fails the try ("looks flat: a photo?"). Tilting a photo hardly moves
  its nose against its eyes anyway (our yaw and pitch are ratios a flat tilt keeps), so a
  photo seldom even reaches a turn;
* **the same face throughout.** The caller reports, for each front view, whether the
  face is still the one that was recognised (``same_face``); another face fails the try;
* **a few tries.** A try also fails when the face leaves the picture after being asked to
  move. After ``tries`` failed tries a person is not asked again in this session: the kiosk
  says to ask the teacher, who can mark them present on Attendance.

Pure logic, no clock or randomness of its own beyond ``secrets`` (tests pass a seeded
``random.Random``): ``HeadTurnCheck.observe`` is fed each processed frame's named faces
with the caller's time, and returns what each face must do next and who passed.
"""

from __future__ import annotations

import random
import secrets
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from model.core.pose import HeadPose, head_pose, off_plane
from model.records import Landmarks

LEFT, RIGHT, UP = "left", "right", "up"
#: The moves a prompt can ask for ("left" is the person's own left, which is the left of a
#: mirrored preview).
MOVES = (LEFT, RIGHT, UP)

# What a face is asked to do (``Step.action``).
LOOK = "look"  # look at the camera (before the first prompt, and between two)
MOVE = "move"  # turn the way ``Step.move`` says
BACK = "back"  # back to the front
PASSED = "passed"
FAILED = "failed"  # this try failed (``Step.reason`` says why); another try follows
ASK_TEACHER = "ask teacher"  # out of tries in this session

# Why a try failed (shown on the video and in the page's caption).
TOO_SLOW = "did not {move} in time"
WRONG_WAY = "turned the wrong way"
EARLY = "turned before being asked"
FLAT = "looks flat: a photo?"
OTHER_FACE = "another face"
NOT_BACK = "did not look back at the camera"
NOT_LOOKING = "did not look at the camera"
LOST = "lost your face: turn a little less"


@dataclass(frozen=True)
class HeadTurnRule:
    """The challenge's thresholds. Poses are ``model.core.pose.HeadPose`` fractions.

    Chosen on the real head-pose photos of ``../shared/datasets/pose`` and LFW (figures in
    ``benchmarks/bench_liveness.py`` and the README). In the CMU photos facing the camera
    reads |yaw| <= 0.08 and pitch 0.45-0.73 (5th-95th percentile); turned left or right
    (45-90 degrees) |yaw| >= 0.28; looking up pitch <= 0.34.
    """

    #: Moves asked for per check-in. More stops more replays (a recording in a fixed order
    #: matches a try's prompts about once in 3**moves) but each adds about 1.5 s.
    moves: int = 2
    #: Facing the camera: |yaw| at most this and pitch inside ``front_pitch``.
    front_yaw: float = 0.15
    front_pitch: tuple[float, float] = (0.38, 0.85)
    #: A turn left/right: |yaw| at least this (about 20 degrees). Lower is easier for
    #: people and for a tilted photo; higher asks for a bigger turn.
    turn_yaw: float = 0.22
    #: Looking up: pitch at most this.
    up_pitch: float = 0.38
    #: Consecutive processed frames a pose must be held (at 15 frames/s, 0.2 s).
    hold_frames: int = 3
    #: Seconds to reach a move (and to come back to the front) after it was asked for.
    move_timeout_s: float = 5.0
    #: Seconds after a prompt before which leaving the front cannot be an answer to it (no
    #: one reads an arrow and starts turning that fast; the prompt also reaches the screen
    #: a frame or two late): a turn that began sooner fails the try as "before being asked".
    min_reaction_s: float = 0.25
    #: A random wait (seconds, uniform) of facing the camera before each prompt, so that a
    #: recording cannot know when the prompt comes; turning during it fails the try.
    wait_s: tuple[float, float] = (0.2, 0.6)
    #: Seconds a face may take to face the camera before the first prompt.
    look_timeout_s: float = 8.0
    #: A turned view whose nose stayed within this many eye distances of the plane of its
    #: eyes and mouth (``off_plane`` against the front view) is flat: a photo. Real heads
    #: turned 20+ degrees: 0.17-0.36 at the 5th percentile; photos tilted up to 30 degrees:
    #: a few hundredths. Higher refuses more photos and more real turns.
    min_off_plane: float = 0.10
    #: Failed tries before the kiosk stops asking a person (in one session).
    tries: int = 3
    #: Seconds a failed try's reason stays on the video before the next try begins.
    show_failure_s: float = 1.5


@dataclass(frozen=True)
class Step:
    """What one face must do now, for the page to draw.

    ``action``: ``LOOK``, ``MOVE`` (``move`` says which way), ``BACK``, ``PASSED``,
    ``FAILED`` (``reason`` says why; the next try starts) or ``ASK_TEACHER``.
    ``done``: moves done in this try; ``of``: moves asked for; ``tries_left`` after this one.
    """

    action: str
    move: str | None = None
    reason: str = ""
    done: int = 0
    of: int = 0
    tries_left: int = 0

    @property
    def text(self) -> str:
        """A short instruction for the video ("turn left", "back to the front")."""
        if self.action == MOVE and self.move is not None:
            return _asked(self.move)
        return {LOOK: "look at the camera", BACK: "back to the front",
                PASSED: "done", FAILED: self.reason or "try again",
                ASK_TEACHER: "ask the teacher"}.get(self.action, "")


def _asked(move: str) -> str:
    """What a prompt asks, in words: "turn left", "turn right", "look up"."""
    return "look up" if move == UP else f"turn {move}"


def _reached(pose: HeadPose, rule: HeadTurnRule) -> set[str]:
    """The moves a pose counts as (a head turned left and up counts as both), or
    ``{"front"}`` facing the camera, or nothing (in between)."""
    moves = set()
    if pose.pitch <= rule.up_pitch:
        moves.add(UP)
    if pose.yaw >= rule.turn_yaw:
        moves.add(LEFT)  # the nose towards the image's right: the person's own left
    if pose.yaw <= -rule.turn_yaw:
        moves.add(RIGHT)
    low, high = rule.front_pitch
    if not moves and abs(pose.yaw) <= rule.front_yaw and low <= pose.pitch <= high:
        moves.add("front")
    return moves


@dataclass
class HeadTurnChallenge:
    """One try of one face: the moves asked for and how far it got.

    ``update`` is called once per processed frame with the face's landmarks; it returns
    the ``Step`` for the page. ``front`` holds the landmarks of the last front view (the
    reference that ``off_plane`` compares a turned view with).
    """

    moves: tuple[str, ...]
    rule: HeadTurnRule
    started: float
    chooser: random.Random
    action: str = LOOK
    index: int = 0
    since: float = 0.0  # when the current action began
    prompt_at: float = 0.0  # LOOK: when the prompt is due once the face faces the camera
    streaks: dict[str, int] = field(default_factory=dict)
    departed: float | None = None  # MOVE: when the face left the front after the prompt
    front: Landmarks | None = None
    turned: list[Landmarks] = field(default_factory=list)
    reason: str = ""  # why the try failed; on a new try, why the last one did (shown first)
    quiet_until: float = 0.0  # a new try after a failure begins here

    def __post_init__(self) -> None:
        self.since = max(self.started, self.quiet_until)
        self.prompt_at = float("inf")

    def _wait(self) -> float:
        low, high = self.rule.wait_s
        return low + (high - low) * self.chooser.random()

    def _step(self, action: str | None = None) -> Step:
        action = action or self.action
        move = self.moves[self.index] if action == MOVE else None
        return Step(action, move, self.reason, self.index, len(self.moves))

    def _fail(self, reason: str) -> Step:
        self.action, self.reason = FAILED, reason
        return self._step()

    def update(self, landmarks: Landmarks, now: float, *, same_face: bool | None = None) -> Step:
        """Feed one processed frame of this face. ``same_face``: whether the face still is
        the recognised person (None when the caller did not look this frame)."""
        if self.action in (PASSED, FAILED):
            return self._step()
        if now < self.quiet_until:
            return self._step(FAILED)  # still showing why the last try failed
        self.reason = ""
        rule = self.rule
        reached = _reached(head_pose(landmarks), rule)
        # Consecutive frames in each pose (a pose held is one reached hold_frames in a row).
        self.streaks = {pose: self.streaks.get(pose, 0) + 1 for pose in reached}
        held = {pose for pose, count in self.streaks.items() if count >= rule.hold_frames}
        front = "front" in reached
        if front and same_face is False:
            return self._fail(OTHER_FACE)
        if self.action == LOOK:
            if held - {"front"} and self.prompt_at < float("inf"):
                return self._fail(EARLY)  # turned while waiting for the prompt
            if not front:  # the prompt waits until it faces the camera again
                if now - self.since > rule.look_timeout_s:
                    return self._fail(NOT_BACK if self.index else NOT_LOOKING)
                return self._step()
            self.front = landmarks
            if "front" in held and self.prompt_at == float("inf"):
                self.prompt_at = now + self._wait()
            if now >= self.prompt_at:
                self.action, self.since, self.turned, self.departed = MOVE, now, [], None
            return self._step()
        if self.action == MOVE:
            wanted = self.moves[self.index]
            if front:
                self.departed = None
            elif self.departed is None:
                self.departed = now
            if held - {"front", wanted} and wanted not in reached:
                return self._fail(WRONG_WAY)
            if wanted in reached:
                self.turned.append(landmarks)
                if wanted in held:
                    if self.departed is not None and self.departed - self.since < rule.min_reaction_s:
                        return self._fail(EARLY)  # began before anyone could read the prompt
                    assert self.front is not None
                    # The largest departure of the held frames: one good view is enough
                    # for a head, and a photo has none.
                    depth = max(off_plane(self.front, view) for view in self.turned[-rule.hold_frames:])
                    if depth < rule.min_off_plane:
                        return self._fail(FLAT)
                    if self.index + 1 == len(self.moves) and same_face is not False:
                        # The last move done: no need to come back first (the front views
                        # before it confirmed who it is).
                        self.index += 1
                        self.action = PASSED
                        return self._step()
                    self.action, self.since = BACK, now
                    return self._step()
            if now - self.since > rule.move_timeout_s:
                return self._fail(TOO_SLOW.format(move=_asked(wanted)))
            return self._step()
        # BACK: face the camera again, then the next prompt (after a wait).
        if "front" in held:
            self.front = landmarks
            self.index += 1
            self.action, self.since = LOOK, now
            self.prompt_at = now + self._wait()
            return self._step()
        if now - self.since > rule.move_timeout_s:
            return self._fail(NOT_BACK)
        return self._step()


@dataclass(frozen=True)
class FaceInView:
    """A named face in this frame, for ``HeadTurnCheck.observe``: its track id, the name
    it was recognised as, its landmarks, and whether this frame's look at it confirmed the
    same person (None when it was not embedded this frame)."""

    track_id: int
    name: str
    landmarks: Landmarks
    same_face: bool | None = None


class HeadTurnCheck:
    """The head-turn challenges of one kiosk: one per followed face, tries per person.

    ``observe`` takes the frame's named faces not yet checked in and returns each one's
    ``Step`` (by track id) and the names that passed in this frame. A face whose track
    ends after it was asked to move loses that try. Call ``start_session`` when the class
    session changes (tries count per session). One caller thread at a time.
    """

    def __init__(self, rule: HeadTurnRule | None = None, *,
                 chooser: random.Random | None = None) -> None:
        self.rule = rule or HeadTurnRule()
        # secrets' generator by default: the prompts must not be predictable.
        self.chooser = chooser if chooser is not None else secrets.SystemRandom()
        self._challenges: dict[int, tuple[str, HeadTurnChallenge]] = {}
        self._failed: Counter[str] = Counter()  # failed tries per name, this session
        self._lost: dict[str, str] = {}  # name -> why its last try ended off camera
        self._session: int | None = None

    def start_session(self, session_id: int | None) -> None:
        if session_id != self._session:
            self._session = session_id
            self._challenges = {}
            self._failed = Counter()
            self._lost = {}

    def failed_tries(self, name: str) -> int:
        return self._failed[name]

    def _new(self, now: float, after: str = "") -> HeadTurnChallenge:
        """A fresh try; ``after`` a failure, whose reason shows for ``show_failure_s``."""
        moves = tuple(self.chooser.choice(MOVES) for _ in range(self.rule.moves))
        quiet = now + self.rule.show_failure_s if after else 0.0
        return HeadTurnChallenge(moves, self.rule, now, self.chooser, reason=after,
                                 quiet_until=quiet)

    def observe(self, faces: Sequence[FaceInView],
                now: float) -> tuple[dict[int, Step], list[str]]:
        """Advance every face's challenge by one frame: (step by track id, names passed)."""
        self._end_lost({f.track_id for f in faces})
        steps: dict[int, Step] = {}
        passed: list[str] = []
        for face in faces:
            if self._failed[face.name] >= self.rule.tries:
                steps[face.track_id] = Step(ASK_TEACHER, of=self.rule.moves)
                continue
            kept = self._challenges.get(face.track_id)
            if kept is None or kept[0] != face.name:
                if kept is not None:
                    self._count_failure(kept[0], kept[1])  # another name on this track
                kept = (face.name, self._new(now, self._lost.pop(face.name, "")))
                self._challenges[face.track_id] = kept
            challenge = kept[1]
            step = challenge.update(face.landmarks, now, same_face=face.same_face)
            if step.action == PASSED:
                passed.append(face.name)
                del self._challenges[face.track_id]
            elif challenge.action == FAILED:  # (not the last try's reason still shown)
                self._failed[face.name] += 1
                self._challenges[face.track_id] = (face.name, self._new(now, step.reason))
            left = max(self.rule.tries - self._failed[face.name], 0)
            if challenge.action == FAILED and left == 0:
                step = Step(ASK_TEACHER, reason=step.reason, of=self.rule.moves)
            steps[face.track_id] = replace(step, tries_left=left)
        return steps, passed

    def _end_lost(self, alive: Iterable[int]) -> None:
        alive = set(alive)
        for track_id in [t for t in self._challenges if t not in alive]:
            name, challenge = self._challenges.pop(track_id)
            self._count_failure(name, challenge)

    def _count_failure(self, name: str, challenge: HeadTurnChallenge) -> None:
        """A challenge abandoned after its first prompt counts as a failed try (a photo
        swapped for another must not get endless fresh tries)."""
        if challenge.action in (MOVE, BACK) or challenge.index > 0:
            self._failed[name] += 1
            self._lost[name] = LOST
