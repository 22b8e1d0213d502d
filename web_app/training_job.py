"""Fine-tuning in a background thread, shared by every browser session.

Training takes minutes of CPU; run on the page's script thread it would block
that session and, through the GIL-heavy startup, slow the others. A single
``TrainingJob`` (kept in ``st.cache_resource`` by the Train page) owns one thread
at a time; pages only read its ``snapshot()``. No ``st.*`` here.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class LossPoint:
    """One progress report: stage, step within it, loss (may be None)."""

    stage: str
    done: int
    total: int
    loss: float | None
    at: float


@dataclass(frozen=True)
class JobSnapshot:
    """A consistent copy of the job's state for a page to draw."""

    running: bool
    started_at: float | None
    finished_at: float | None
    points: tuple[LossPoint, ...]
    message: str
    result: Any
    error: str | None


@dataclass
class TrainingJob:
    """At most one fine-tuning run at a time; thread-safe."""

    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None
    _started_at: float | None = None
    _finished_at: float | None = None
    _points: list[LossPoint] = field(default_factory=list)
    _message: str = ""
    _result: Any = None
    _error: str | None = None

    def start(self, run: Callable[[Callable[[Any], None]], Any]) -> bool:
        """Start ``run(progress)`` in a thread; False if a run is already going."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return False
            self._started_at, self._finished_at = time.time(), None
            self._points, self._message, self._result, self._error = [], "Starting…", None, None
            self._thread = threading.Thread(target=self._main, args=(run,), name="fine-tune",
                                            daemon=True)
            self._thread.start()
        return True

    def report(self, event: Any) -> None:
        """The progress callback handed to the trainer (any object with stage/done/total/loss)."""
        point = LossPoint(stage=str(getattr(event, "stage", "")),
                          done=int(getattr(event, "done", getattr(event, "epoch", 0)) or 0),
                          total=int(getattr(event, "total", getattr(event, "epochs", 0)) or 0),
                          loss=_float_or_none(getattr(event, "loss", None)), at=time.time())
        message = str(getattr(event, "message", "") or "")
        with self._lock:
            self._points.append(point)
            self._message = message or f"{point.stage}: {point.done}/{point.total}"

    def snapshot(self) -> JobSnapshot:
        with self._lock:
            running = self._thread is not None and self._thread.is_alive()
            return JobSnapshot(running, self._started_at, self._finished_at,
                               tuple(self._points), self._message, self._result, self._error)

    def clear_result(self) -> None:
        """Forget a finished run (after the teacher kept or rolled it back)."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._result, self._error, self._points, self._message = None, None, [], ""
                self._started_at = self._finished_at = None

    def _main(self, run: Callable[[Callable[[Any], None]], Any]) -> None:
        try:
            result = run(self.report)
            error = None
        except Exception as exc:
            result, error = None, f"{exc}" if str(exc) else traceback.format_exc(limit=3)
        with self._lock:
            self._result, self._error = result, error
            self._finished_at = time.time()
            self._message = "Finished." if error is None else "Failed."


def _float_or_none(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None
