"""Classes and the register's rules: who is expected, and present, late or absent.

The rows live in the attendance book (``model.school.attendance``); this module holds
what they mean, with no storage of its own:

* a **class** ("Maths 7B") has a roster of people and a grace period: a check-in more
  than ``late_after_s`` seconds after its session started is **late**;
* a roster member with no check-in in a session is **absent**; a teacher's correction
  (``marked``) overrides what the camera decided;
* someone recognised who is not on the roster is a **visitor**: listed apart, never
  counted;
* a person who joined a class after the day of a session is not expected at it (unless
  they checked in to it, or joined while it was under way), so a late joiner is not marked
  absent for the weeks before.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

PRESENT, LATE, ABSENT, VISITOR = "present", "late", "absent", "visitor"
#: What a teacher may set by hand (``AttendanceBook.set_status``).
STATUSES = (PRESENT, LATE, ABSENT)


@dataclass(frozen=True)
class SchoolClass:
    """A class: its name, grace period before a check-in is late, roster size, and
    whether its live check-in asks for a head turn (``model.school.liveness``)."""

    id: int
    name: str
    late_after_s: int
    created_at: datetime
    roster_size: int = 0
    head_turn: bool = False

    @property
    def late_after_min(self) -> float:
        return self.late_after_s / 60


@dataclass(frozen=True)
class RegisterRow:
    """One person in one session's register. ``checked_at``, ``how`` and ``score`` are
    ``None`` for an absent person with no row; ``manual`` for a teacher's correction."""

    person: str
    status: str
    checked_at: datetime | None = None
    how: str | None = None
    score: float | None = None
    manual: bool = False


@dataclass(frozen=True)
class Register:
    """A session's register: every roster member (``rows``) and the ``visitors``."""

    session_id: int
    session: str
    started_at: datetime
    class_name: str
    rows: list[RegisterRow] = field(default_factory=list)
    visitors: list[RegisterRow] = field(default_factory=list)

    def with_status(self, *statuses: str) -> list[RegisterRow]:
        return [row for row in self.rows if row.status in statuses]

    @property
    def here(self) -> int:
        """Roster members present or late (the "18" of "18 of 24 here")."""
        return len(self.with_status(PRESENT, LATE))

    @property
    def expected(self) -> int:
        return len(self.rows)

    @property
    def missing(self) -> list[str]:
        """Roster members not (yet) checked in, by name."""
        return [row.person for row in self.with_status(ABSENT)]


def status_of(checked_at: datetime, started_at: datetime, late_after: timedelta, *,
              present: bool = True, marked: str | None = None) -> str:
    """A check-in's status: the teacher's ``marked`` one when set; absent when marked
    not present; late when it came more than ``late_after`` after the session started;
    else present."""
    if marked in STATUSES:
        return marked
    if not present:
        return ABSENT
    return LATE if checked_at - started_at > late_after else PRESENT


#: How long after its start a session is taken to be still under way: someone added to the
#: roster by then is expected at it, even on the next calendar day (a session started at
#: 23:50 and a roster read at 00:10). Longer than any lesson, shorter than a night.
UNDER_WAY = timedelta(hours=4)


def counts_for(added_at: datetime, session_started: datetime, *, checked_in: bool) -> bool:
    """Whether a roster member is expected at a session: they joined the class on or
    before the session's day or while it was under way (``UNDER_WAY``), or they checked in
    to it anyway."""
    return (checked_in or added_at.date() <= session_started.date()
            or added_at - session_started <= UNDER_WAY)
