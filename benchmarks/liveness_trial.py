"""One check-in attempt at the live kiosk, frame by frame, for the head-turn figures.

``attempt`` plays a scene (``model.learning.presentation``) to the live page's own
processor (``web_app.live.LiveCheckInProcessor``: tracker, O-Net landmarks, head-turn
challenge) on a simulated clock at ``FPS`` processed frames per second, showing the scene
the prompt the kiosk is drawing, until the person is checked in, the kiosk gives up
(``ASK_TEACHER``) or the time runs out.

Recognition is an oracle here (``NamingEngine`` names every followed face as the scene's
person once its track has ``NAMED_AFTER`` frames): the head-turn check is measured on its
own, in the worst case for it, where every photo of a student is recognised as that
student. The detector is the real one.
"""

from __future__ import annotations

import random
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from model.records import DetectedFace, Match
from model.school.attendance import AttendanceBook
from model.school.liveness import ASK_TEACHER, FAILED, MOVE, HeadTurnCheck, HeadTurnRule

FPS = 15.0
#: Frames a track needs before the oracle names it (the live rule's minimum is 3; the
#: shipped network names most students within 3-10).
NAMED_AFTER = 3
PERSON = "Student"


class Scene(Protocol):
    def frame(self, t: float, prompt: str | None) -> np.ndarray: ...


class NamingEngine:
    """An engine whose recognition names every followed face ``name`` (see module doc)."""

    version = "oracle"

    def __init__(self, detector: Any, name: str = PERSON) -> None:
        self.detector = detector
        self.name = name

    def embed_crops(self, crops: Sequence[np.ndarray]) -> tuple[np.ndarray, str]:
        rows = np.zeros((len(crops), 8), np.float32)
        rows[:, 0] = 1.0  # one person: every frame the same unit vector
        return rows, self.version

    def identify_tracks(self, fused: np.ndarray, frames: Sequence[int],
                        faces: Sequence[DetectedFace] | None = None,
                        version: str | None = None) -> list[Match]:
        matches = []
        for i, count in enumerate(frames):
            box = faces[i].box if faces is not None else (0, 0, 0, 0)
            named = count >= NAMED_AFTER
            matches.append(Match(box=box, name=self.name if named else None, score=0.9,
                                 candidates=((self.name, 0.9),),
                                 reason="" if named else "checking"))
        return matches


@dataclass
class Attempt:
    """How one attempt went: ``passed`` (checked in), seconds from the face being named to
    the check-in (None when not), the reasons of failed tries, and frames played."""

    passed: bool
    seconds: float | None
    reasons: list[str] = field(default_factory=list)
    frames: int = 0
    gave_up: bool = False


def attempt(scene: Scene, engine: Any, *, chooser: random.Random,
            rule: HeadTurnRule | None = None, max_s: float = 40.0) -> Attempt:
    """Play ``scene`` to a fresh live processor until check-in, give-up or ``max_s``."""
    from web_app.live import LiveCheckInProcessor  # the page's own processor

    with tempfile.TemporaryDirectory() as tmp:
        book = AttendanceBook(Path(tmp) / "attendance.sqlite3")
        session = book.start_session("trial", open_it=True)
        processor = LiveCheckInProcessor(engine, book, head_turn=HeadTurnCheck(rule, chooser=chooser))
        processor.start_session(session.id, head_turn=True)
        prompt: str | None = None
        named_at: float | None = None
        reasons: list[str] = []
        failing = False
        frames = int(max_s * FPS)
        for k in range(frames):
            t = k / FPS
            processor.process(scene.frame(t, prompt), now=1000.0 + t)
            result = processor.results.get_nowait()
            while not processor.results.empty():
                result = processor.results.get_nowait()
            if named_at is None and any(label.text.startswith(engine.name) for label in result.labels):
                named_at = t
            if result.checked_in:
                return Attempt(True, t - (named_at if named_at is not None else t), reasons, k + 1)
            steps = result.steps
            prompt = next((s.move for s in steps if s.action == MOVE), None)
            # A failed try's step repeats while its reason is shown: count it once.
            now_failing = any(s.action in (FAILED, ASK_TEACHER) for s in steps)
            if now_failing and not failing:
                reasons += [s.reason for s in steps if s.action in (FAILED, ASK_TEACHER)]
            failing = now_failing
            if any(s.action == ASK_TEACHER for s in steps):
                return Attempt(False, None, reasons, k + 1, gave_up=True)
        return Attempt(False, None, reasons, frames)
