"""The attendance book: class sessions and who checked in, in one SQLite file.

Stored at ``settings.attendance_db`` (``<data_dir>/attendance.sqlite3``) with the
standard library's ``sqlite3``; pandas only reads it back for tables and CSV.

Three tables:

* ``sessions``  one row per class session (a name and when it started);
* ``checkins``  one row per (session, person), enforced by ``UNIQUE(session_id, person)``,
  saying when, with what score, how (``live``, ``snapshot``, ``upload`` or ``manual``)
  and whether the person counts as present (a teacher can mark someone absent);
* ``open_session``  at most one row: the session the kiosk checks people into, chosen
  by the teacher (the kiosk itself can neither choose nor read sessions).

A database made before ``open_session`` existed gets the table the first time it is
opened (``PRAGMA user_version`` records the schema version).

Every write is one transaction, so a crash never leaves half a check-in. Each
call opens its own connection, so a book can be shared between threads (the
webrtc callback thread, several browser sessions) without locks of our own;
SQLite serialises the writers.
"""

from __future__ import annotations

import io
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd

#: How a check-in was made. ``manual`` is a teacher's correction.
CHECKIN_METHODS = ("live", "snapshot", "upload", "manual")

#: Longest session name we store; longer names are cut, not refused.
MAX_SESSION_NAME = 120

#: Seconds a writer waits for another writer before giving up (SQLite ``timeout``).
_BUSY_TIMEOUT_S = 10.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL,
    started_at  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS checkins (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id  INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    person      TEXT NOT NULL,
    checked_at  TEXT NOT NULL,
    score       REAL,
    how         TEXT NOT NULL CHECK (how IN ('live', 'snapshot', 'upload', 'manual')),
    present     INTEGER NOT NULL DEFAULT 1 CHECK (present IN (0, 1)),
    UNIQUE (session_id, person)
);
CREATE INDEX IF NOT EXISTS checkins_person ON checkins(person);
CREATE TABLE IF NOT EXISTS open_session (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    session_id  INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    opened_at   TEXT NOT NULL
);
"""

#: Schema version kept in ``PRAGMA user_version``: 1 = sessions and check-ins,
#: 2 = and the open session. Every change adds the step from the previous version.
SCHEMA_VERSION = 2

#: Columns of the check-in table as pandas returns it (and as the CSV has them).
CHECKIN_COLUMNS = ["session_id", "session", "started_at", "person", "checked_at",
                   "score", "how", "present"]


@dataclass(frozen=True)
class Session:
    """A class session. ``started_at`` is local time, to the second."""

    id: int
    name: str
    started_at: datetime


@dataclass(frozen=True)
class CheckIn:
    """One person's attendance in one session.

    ``score`` is the recognition score in [0, 1] (``None`` for manual marks);
    ``present`` is False only when a teacher marked the person absent.
    """

    session_id: int
    person: str
    checked_at: datetime
    score: float | None
    how: str
    present: bool = True


class AttendanceBook:
    """Sessions and check-ins stored in one SQLite file (created on first use)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            # CREATE ... IF NOT EXISTS: a new file gets every table, an older one the
            # tables added since (version 1 -> 2: ``open_session``); no data is touched.
            db.executescript(_SCHEMA)
            if int(db.execute("PRAGMA user_version").fetchone()[0]) < SCHEMA_VERSION:
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    # -- sessions -----------------------------------------------------------------

    def start_session(self, name: str, *, now: datetime | None = None,
                      open_it: bool = False) -> Session:
        """Start a new class session called ``name`` (trimmed; a default if empty).

        With ``open_it`` it also becomes the open session (the kiosk's), in the same
        transaction.
        """
        started = _second(now or datetime.now())
        clean = " ".join(name.split())[:MAX_SESSION_NAME] or f"Class {started:%Y-%m-%d %H:%M}"
        with self._connect() as db:
            cursor = db.execute("INSERT INTO sessions (name, started_at) VALUES (?, ?)",
                                (clean, started.isoformat()))
            session_id = int(cursor.lastrowid or 0)
            if open_it:
                self._open(db, session_id, started)
        return Session(id=session_id, name=clean, started_at=started)

    def open_session(self, session_id: int, *, now: datetime | None = None) -> Session:
        """Make ``session_id`` the open session: the one the kiosk checks people into.

        Replaces any session open before. Raises ``ValueError`` for an unknown session.
        """
        with self._connect() as db:
            self._require_session(db, session_id)
            self._open(db, session_id, _second(now or datetime.now()))
            row = db.execute("SELECT id, name, started_at FROM sessions WHERE id = ?",
                             (session_id,)).fetchone()
        return Session(int(row[0]), row[1], datetime.fromisoformat(row[2]))

    def close_session(self) -> None:
        """Close the open session, if any: the kiosk then checks nobody in."""
        with self._connect() as db:
            db.execute("DELETE FROM open_session")

    def open_session_id(self) -> int | None:
        """The id of the open session, or ``None`` when the teacher opened none."""
        with self._connect() as db:
            row = db.execute("SELECT session_id FROM open_session WHERE id = 1").fetchone()
        return None if row is None else int(row[0])

    def current_session(self) -> Session | None:
        """The open session, or ``None`` when the teacher opened none."""
        with self._connect() as db:
            row = db.execute("SELECT s.id, s.name, s.started_at FROM open_session o"
                             " JOIN sessions s ON s.id = o.session_id WHERE o.id = 1").fetchone()
        return None if row is None else Session(int(row[0]), row[1],
                                                datetime.fromisoformat(row[2]))

    def sessions(self) -> list[Session]:
        """All sessions, newest first."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT id, name, started_at FROM sessions ORDER BY started_at DESC, id DESC"
            ).fetchall()
        return [Session(int(r[0]), r[1], datetime.fromisoformat(r[2])) for r in rows]

    def session(self, session_id: int) -> Session | None:
        with self._connect() as db:
            row = db.execute("SELECT id, name, started_at FROM sessions WHERE id = ?",
                             (session_id,)).fetchone()
        return None if row is None else Session(int(row[0]), row[1],
                                                datetime.fromisoformat(row[2]))

    def delete_session(self, session_id: int) -> None:
        """Delete a session and all its check-ins."""
        with self._connect() as db:
            db.execute("DELETE FROM checkins WHERE session_id = ?", (session_id,))
            db.execute("DELETE FROM open_session WHERE session_id = ?", (session_id,))
            db.execute("DELETE FROM sessions WHERE id = ?", (session_id,))

    # -- check-ins ----------------------------------------------------------------

    def check_in(self, session_id: int, person: str, *, score: float | None, how: str,
                 now: datetime | None = None) -> CheckIn | None:
        """Record that ``person`` is present in the session.

        Returns the new ``CheckIn``, or ``None`` if the person already has a row for
        this session (the first check-in wins; use ``mark`` to correct it).
        Raises ``ValueError`` for an unknown ``how`` or session.
        """
        _check_method(how)
        when = _second(now or datetime.now())
        with self._connect() as db:
            self._require_session(db, session_id)
            cursor = db.execute(
                "INSERT OR IGNORE INTO checkins (session_id, person, checked_at, score, how,"
                " present) VALUES (?, ?, ?, ?, ?, 1)",
                (session_id, person, when.isoformat(), _score(score), how))
            if cursor.rowcount == 0:
                return None
        return CheckIn(session_id, person, when, _score(score), how, True)

    def mark(self, session_id: int, person: str, present: bool, *,
             now: datetime | None = None) -> CheckIn:
        """A teacher's manual correction: mark ``person`` present or absent.

        Overwrites any earlier row for this person in this session (``how`` becomes
        ``manual``, the score is cleared).
        """
        when = _second(now or datetime.now())
        with self._connect() as db:
            self._require_session(db, session_id)
            db.execute(
                "INSERT INTO checkins (session_id, person, checked_at, score, how, present)"
                " VALUES (?, ?, ?, NULL, 'manual', ?)"
                " ON CONFLICT (session_id, person) DO UPDATE SET"
                " checked_at = excluded.checked_at, score = NULL, how = 'manual',"
                " present = excluded.present",
                (session_id, person, when.isoformat(), int(present)))
        return CheckIn(session_id, person, when, None, "manual", bool(present))

    def checkins(self, session_id: int | None = None) -> list[CheckIn]:
        """Check-ins of one session (or of all), in the order they happened."""
        query = ("SELECT session_id, person, checked_at, score, how, present FROM checkins"
                 + (" WHERE session_id = ?" if session_id is not None else "")
                 + " ORDER BY checked_at, id")
        args: tuple[int, ...] = (session_id,) if session_id is not None else ()
        with self._connect() as db:
            rows = db.execute(query, args).fetchall()
        return [CheckIn(int(r[0]), r[1], datetime.fromisoformat(r[2]),
                        None if r[3] is None else float(r[3]), r[4], bool(r[5])) for r in rows]

    def present_people(self, session_id: int) -> list[str]:
        """Names counted present in a session, in check-in order."""
        return [c.person for c in self.checkins(session_id) if c.present]

    # -- people -------------------------------------------------------------------

    def rename_person(self, old: str, new: str) -> None:
        """Follow a rename in the gallery, so past attendance stays with the person."""
        with self._connect() as db:
            # A row already under the new name in the same session wins over the old one.
            db.execute("DELETE FROM checkins WHERE person = ? AND session_id IN"
                       " (SELECT session_id FROM checkins WHERE person = ?)", (old, new))
            db.execute("UPDATE checkins SET person = ? WHERE person = ?", (new, old))

    def forget_person(self, person: str) -> int:
        """Delete every attendance row of ``person``; returns how many were deleted."""
        with self._connect() as db:
            return db.execute("DELETE FROM checkins WHERE person = ?", (person,)).rowcount

    # -- tables for people --------------------------------------------------------

    def table(self, session_id: int | None = None) -> pd.DataFrame:
        """Check-ins as a DataFrame with ``CHECKIN_COLUMNS`` (one session or all)."""
        query = ("SELECT c.session_id, s.name AS session, s.started_at, c.person, c.checked_at,"
                 " c.score, c.how, c.present FROM checkins c JOIN sessions s"
                 " ON s.id = c.session_id"
                 + (" WHERE c.session_id = ?" if session_id is not None else "")
                 + " ORDER BY s.started_at, c.checked_at, c.id")
        args: tuple[int, ...] = (session_id,) if session_id is not None else ()
        with self._connect() as db:
            frame = pd.read_sql_query(query, db, params=args)
        frame["present"] = frame["present"].astype(bool)
        frame["started_at"] = pd.to_datetime(frame["started_at"])
        frame["checked_at"] = pd.to_datetime(frame["checked_at"])
        return frame[CHECKIN_COLUMNS]

    def rates(self, people: Iterable[str] = ()) -> pd.DataFrame:
        """Per-person attendance: columns ``person, attended, sessions, rate``.

        ``rate`` = sessions present / all sessions (0..1). ``people`` adds names with
        no check-in yet (e.g. everyone enrolled), so they show with a rate of 0.
        Sorted by rate, then name.
        """
        with self._connect() as db:
            total = int(db.execute("SELECT COUNT(*) FROM sessions").fetchone()[0])
            rows = db.execute("SELECT person, SUM(present) FROM checkins GROUP BY person"
                              ).fetchall()
        attended = {person: int(count or 0) for person, count in rows}
        for person in people:
            attended.setdefault(person, 0)
        frame = pd.DataFrame({"person": list(attended), "attended": list(attended.values())},
                             columns=["person", "attended"])
        frame["attended"] = frame["attended"].astype(int)
        frame["sessions"] = total
        frame["rate"] = frame["attended"] / total if total else 0.0
        frame["rate"] = frame["rate"].astype(float)
        return frame.sort_values(["rate", "person"], ascending=[False, True],
                                 ignore_index=True)

    def export_csv(self, session_id: int | None = None) -> bytes:
        """The check-in table as UTF-8 CSV bytes (with a BOM so Excel shows accents)."""
        buffer = io.StringIO()
        frame = self.table(session_id)
        frame.to_csv(buffer, index=False, date_format="%Y-%m-%d %H:%M:%S")
        return buffer.getvalue().encode("utf-8-sig")

    # -- plumbing -----------------------------------------------------------------

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_S)
        try:
            db.execute("PRAGMA foreign_keys = ON")
            with db:  # one transaction: commit on success, roll back on error
                yield db
        finally:
            db.close()

    @staticmethod
    def _open(db: sqlite3.Connection, session_id: int, when: datetime) -> None:
        db.execute("INSERT INTO open_session (id, session_id, opened_at) VALUES (1, ?, ?)"
                   " ON CONFLICT (id) DO UPDATE SET session_id = excluded.session_id,"
                   " opened_at = excluded.opened_at", (session_id, when.isoformat()))

    @staticmethod
    def _require_session(db: sqlite3.Connection, session_id: int) -> None:
        if db.execute("SELECT 1 FROM sessions WHERE id = ?", (session_id,)).fetchone() is None:
            raise ValueError(f"There is no class session number {session_id}.")


def open_attendance(path: str | Path | None = None) -> AttendanceBook:
    """The attendance book at ``path`` (default: ``get_settings().attendance_db``)."""
    if path is None:
        from model.settings import get_settings

        path = get_settings().attendance_db
    return AttendanceBook(path)


def _check_method(how: str) -> None:
    if how not in CHECKIN_METHODS:
        raise ValueError(f"Unknown check-in method {how!r}; use one of {CHECKIN_METHODS}.")


def _score(score: float | None) -> float | None:
    return None if score is None else round(float(score), 4)


def _second(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)
