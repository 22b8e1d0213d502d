"""The attendance book: classes, their rosters, class sessions and who checked in.

One interface (``RegisterBook``), two stores: by default one SQLite file,
``settings.attendance_db`` (``<data_dir>/attendance.sqlite3``), through the standard
library's ``sqlite3`` (``AttendanceBook``); with ``FACEATT_DATABASE_URL`` set, a shared
PostgreSQL database that many kiosks and app instances use at once
(``model.school.attendance_pg.PostgresBook``). ``open_register(settings)`` picks.
pandas only turns rows into tables and CSV.

Tables:

* ``classes``   one row per class ("Maths 7B"), with its late-after grace period;
* ``roster``    who is expected in each class (a person may be in several classes; a
  name may be on a roster before the person has photos);
* ``sessions``  one row per class session (its class, a name and when it started);
* ``checkins``  one row per (session, person), enforced by ``UNIQUE(session_id, person)``,
  saying when, with what score, how (``live``, ``snapshot``, ``upload`` or ``manual``),
  whether the person counts as present and, for a teacher's correction, the status
  they chose (``marked``: present, late or absent);
* ``kiosk_sessions``  one row per kiosk with an open session: the session that kiosk
  ("Room 12"; ``DEFAULT_KIOSK`` for a school with one) checks people into, chosen by
  the teacher (a kiosk itself can neither choose nor read sessions);
* ``meta``      small facts about the book (a migration still to finish, the change
  counter kiosks poll).

``register(session_id)`` turns these into the register: every roster member present,
late or absent, and the visitors (recognised, not on the roster, never counted); see
``model.school.classes`` for the rules.

A database made by an older version is upgraded the first time it is opened
(``PRAGMA user_version`` records the schema version): version 3 puts every existing
session into one class, ``DEFAULT_CLASS_NAME``, whose roster is everyone who ever
checked in, and asks the app (``adopt_enrolled``) to add everyone enrolled.

Every write is one transaction, so a crash never leaves half a check-in. Each
call opens its own connection (or borrows one from PostgreSQL's pool), so a book can be
shared between threads (the webrtc callback thread, several browser sessions) without
locks of our own; the database serialises the writers.
"""

from __future__ import annotations

import io
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pandas as pd

if TYPE_CHECKING:
    from model.settings import Settings

from model.school.classes import (
    ABSENT,
    LATE,
    PRESENT,
    STATUSES,
    Register,
    RegisterRow,
    SchoolClass,
    counts_for,
    status_of,
)

#: How a check-in was made. ``manual`` is a teacher's correction; ``head turn`` the live
#: camera after the head-turn challenge (``model.school.liveness``).
CHECKIN_METHODS = ("live", "head turn", "snapshot", "upload", "manual")

#: Longest session name we store; longer names are cut, not refused.
MAX_SESSION_NAME = 120

#: Seconds a writer waits for another writer before giving up (SQLite ``timeout``).
_BUSY_TIMEOUT_S = 10.0

#: The class existing sessions are moved into when an older book is upgraded.
DEFAULT_CLASS_NAME = "My class"
#: Longest class name we store (longer ones are refused: a class name is typed once).
MAX_CLASS_NAME = 80
#: Minutes after a session's start from which a check-in counts as late, for a new class.
DEFAULT_LATE_AFTER_MIN = 10
#: The ``meta`` key naming the class that should take in everyone enrolled (migration).
_ADOPT_KEY = "adopt_enrolled_into_class"
#: The ``meta`` key counting changes (``RegisterBook.change_number``).
_CHANGES_KEY = "changes"

#: The kiosk of a school with one: a page that names no kiosk checks into its session.
DEFAULT_KIOSK = ""
#: Longest kiosk name ("Room 12", "Sports hall east door").
MAX_KIOSK_NAME = 60

_SCHEMA = """
CREATE TABLE IF NOT EXISTS classes (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT NOT NULL UNIQUE COLLATE NOCASE,
    late_after_s  INTEGER NOT NULL DEFAULT 600 CHECK (late_after_s >= 0),
    created_at    TEXT NOT NULL,
    head_turn     INTEGER NOT NULL DEFAULT 0 CHECK (head_turn IN (0, 1))
);
CREATE TABLE IF NOT EXISTS roster (
    class_id    INTEGER NOT NULL REFERENCES classes(id) ON DELETE CASCADE,
    person      TEXT NOT NULL,
    added_at    TEXT NOT NULL,
    PRIMARY KEY (class_id, person)
);
CREATE TABLE IF NOT EXISTS meta (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    class_id    INTEGER REFERENCES classes(id) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS checkins (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id  INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    person      TEXT NOT NULL,
    checked_at  TEXT NOT NULL,
    score       REAL,
    how         TEXT NOT NULL CHECK (how IN ('live', 'head turn', 'snapshot', 'upload',
                                         'manual')),
    present     INTEGER NOT NULL DEFAULT 1 CHECK (present IN (0, 1)),
    marked      TEXT CHECK (marked IN ('present', 'late', 'absent')),
    UNIQUE (session_id, person)
);
CREATE INDEX IF NOT EXISTS checkins_person ON checkins(person);
CREATE TABLE IF NOT EXISTS kiosk_sessions (
    kiosk       TEXT PRIMARY KEY,
    session_id  INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    opened_at   TEXT NOT NULL
);
"""

#: Schema version kept in ``PRAGMA user_version``: 1 = sessions and check-ins,
#: 2 = and the open session, 3 = classes, rosters, marked statuses, 4 = a class's "ask
#: for a head turn" and the "head turn" check-in, 5 = an open session per kiosk. Every
#: change adds the step from the previous version (``_upgrade``).
SCHEMA_VERSION = 5
#: Columns added to tables of older books: (table, column, declaration). A class made
#: before version 4 keeps checking in as it did (no head turn) until the teacher asks.
_ADDED_COLUMNS = (
    ("sessions", "class_id", "INTEGER REFERENCES classes(id) ON DELETE CASCADE"),
    ("checkins", "marked", "TEXT CHECK (marked IN ('present', 'late', 'absent'))"),
    ("classes", "head_turn", "INTEGER NOT NULL DEFAULT 0 CHECK (head_turn IN (0, 1))"),
)
#: The check-in table's columns, in order (copied as they are when it is rebuilt).
_CHECKIN_TABLE_COLUMNS = "id, session_id, person, checked_at, score, how, present, marked"

#: Columns of the check-in table as pandas returns it.
CHECKIN_COLUMNS = ["session_id", "session", "started_at", "person", "checked_at",
                   "score", "how", "present"]
#: Columns of the register table (and of its CSV): one row per roster member per session.
REGISTER_COLUMNS = ["class", "session", "started_at", "person", "status", "checked_at",
                    "how", "score"]


class RegisterOffline(ConnectionError):
    """The register's database cannot be reached (the network or its server is down)."""

    def __init__(self, where: str) -> None:
        super().__init__(f"The attendance register at {where} cannot be reached: check the "
                         "network, or ask the school's IT person whether its database is up.")


@dataclass(frozen=True)
class Session:
    """A class session. ``started_at`` is local time, to the second; ``class_id`` is the
    class it belongs to (``None`` only for a session whose class was never set)."""

    id: int
    name: str
    started_at: datetime
    class_id: int | None = None


@dataclass(frozen=True)
class CheckIn:
    """One person's attendance in one session.

    ``score`` is the recognition score in [0, 1] (``None`` for manual marks);
    ``present`` is False only when a teacher marked the person absent; ``marked`` is the
    status a teacher chose (present, late or absent), ``None`` when the camera decided.
    """

    session_id: int
    person: str
    checked_at: datetime
    score: float | None
    how: str
    present: bool = True
    marked: str | None = None


class Database(Protocol):
    """What the register's SQL needs of a connection: ``execute`` with ``?`` placeholders,
    returning a cursor (``fetchone``, ``fetchall``, ``rowcount``). ``sqlite3.Connection``
    is one; ``model.school.attendance_pg`` wraps a psycopg connection into one."""

    def execute(self, sql: str, parameters: Any = ..., /) -> Any: ...


class RegisterBook(ABC):
    """The register's storage interface, and its logic in SQL both databases speak.

    Two implementations: ``AttendanceBook`` (one SQLite file, the default) and
    ``model.school.attendance_pg.PostgresBook`` (a shared PostgreSQL database, for many
    kiosks and app instances). A subclass supplies ``_connect`` (one transaction per
    call, committed on success) and creates or upgrades its tables; the SQL here uses
    ``?`` placeholders, ``INSERT ... ON CONFLICT``, ``RETURNING`` and ``lower()`` for
    names compared without case, which both understand. Times are written as ISO 8601
    text (local time, to the second) and read back by ``_moment``.
    """

    @property
    @abstractmethod
    def location(self) -> str:
        """Where the register lives, for people (a file path, or a database URL without
        its password)."""

    @abstractmethod
    def _connect(self) -> AbstractContextManager[Database]:
        """One connection and transaction: committed when the block ends, rolled back
        when it raises."""

    def close(self) -> None:
        """Let go of pooled connections (nothing to do for a file)."""
        return

    # -- polling and the offline outbox (a shared database's; a file has neither) --------

    def change_number(self) -> int:
        """A number that grows with every change to the register (a class, a roster, a
        session, a check-in, a kiosk's open session): a kiosk or page that polls it
        reloads only when it moved. 0 for a book nobody changed yet."""
        with self._connect() as db:
            row = db.execute("SELECT value FROM meta WHERE key = ?", (_CHANGES_KEY,)).fetchone()
        return 0 if row is None else int(row[0])

    def outbox_waiting(self) -> int:
        """Check-ins made while the database could not be reached, not yet delivered (a
        file is always reachable: 0)."""
        return 0

    def deliver_outbox(self) -> int:
        """Deliver the check-ins waiting in the outbox, if the database can be reached;
        returns how many were delivered (a file has no outbox: 0)."""
        return 0

    # -- classes and rosters ------------------------------------------------------

    def create_class(self, name: str, *, late_after_min: float = DEFAULT_LATE_AFTER_MIN,
                     head_turn: bool = True, now: datetime | None = None) -> SchoolClass:
        """A new class called ``name`` (spaces folded). ``head_turn``: its live check-in
        asks each face for a head turn (``model.school.liveness``; on for new classes, so
        a photo held to the camera checks nobody in). Raises ``ValueError`` with a
        sentence for an empty or too long name, or one already used (any case)."""
        clean = _class_name(name)
        with self._connect() as db:
            if db.execute("SELECT 1 FROM classes WHERE lower(name) = lower(?)",
                          (clean,)).fetchone():
                raise ValueError(f"There is already a class called {clean}.")
            class_id = int(db.execute(
                "INSERT INTO classes (name, late_after_s, created_at, head_turn)"
                " VALUES (?, ?, ?, ?) RETURNING id",
                (clean, _late_seconds(late_after_min),
                 _second(now or datetime.now()).isoformat(), bool(head_turn))).fetchone()[0])
            self._changed(db)
        return self._class(class_id)

    def classes(self) -> list[SchoolClass]:
        """Every class, by name (case-insensitive)."""
        with self._connect() as db:
            rows = db.execute(f"{_CLASS_QUERY} ORDER BY lower(c.name), c.name").fetchall()
        return [_school_class(row) for row in rows]

    def school_class(self, class_id: int) -> SchoolClass | None:
        with self._connect() as db:
            row = db.execute(f"{_CLASS_QUERY} WHERE c.id = ?", (class_id,)).fetchone()
        return None if row is None else _school_class(row)

    def find_class(self, name: str) -> SchoolClass | None:
        """The class called ``name`` (any case, spaces folded), or ``None``."""
        with self._connect() as db:
            row = db.execute(f"{_CLASS_QUERY} WHERE lower(c.name) = lower(?)",
                             (" ".join(str(name).split()),)).fetchone()
        return None if row is None else _school_class(row)

    def update_class(self, class_id: int, *, name: str | None = None,
                     late_after_min: float | None = None,
                     head_turn: bool | None = None) -> SchoolClass:
        """Rename a class, change its late-after grace period (minutes), and/or whether
        its live check-in asks for a head turn."""
        with self._connect() as db:
            self._require_class(db, class_id)
            if name is not None:
                clean = _class_name(name)
                if db.execute("SELECT 1 FROM classes WHERE lower(name) = lower(?) AND id != ?",
                              (clean, class_id)).fetchone():
                    raise ValueError(f"There is already a class called {clean}.")
                db.execute("UPDATE classes SET name = ? WHERE id = ?", (clean, class_id))
            if late_after_min is not None:
                db.execute("UPDATE classes SET late_after_s = ? WHERE id = ?",
                           (_late_seconds(late_after_min), class_id))
            if head_turn is not None:
                db.execute("UPDATE classes SET head_turn = ? WHERE id = ?",
                           (bool(head_turn), class_id))
            self._changed(db)
        return self._class(class_id)

    def delete_class(self, class_id: int) -> None:
        """Delete a class with its roster, its sessions and their check-ins."""
        with self._connect() as db:
            if db.execute("DELETE FROM classes WHERE id = ?", (class_id,)).rowcount:  # cascades
                self._changed(db)

    def roster(self, class_id: int) -> list[str]:
        """The people expected in a class, by name."""
        with self._connect() as db:
            rows = db.execute("SELECT person FROM roster WHERE class_id = ?",
                              (class_id,)).fetchall()
        return sorted((r[0] for r in rows), key=str.casefold)

    def add_to_roster(self, class_id: int, people: Iterable[str], *,
                      now: datetime | None = None) -> list[str]:
        """Put people on a class's roster; returns those who were not on it yet."""
        when = _second(now or datetime.now()).isoformat()
        added = []
        with self._connect() as db:
            self._require_class(db, class_id)
            for person in dict.fromkeys(p for p in people if p):
                cursor = db.execute("INSERT INTO roster (class_id, person, added_at)"
                                    " VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                                    (class_id, person, when))
                if cursor.rowcount:
                    added.append(person)
            if added:
                self._changed(db)
        return added

    def remove_from_roster(self, class_id: int, people: Iterable[str]) -> int:
        """Take people off a class's roster (their past check-ins stay); returns how many."""
        with self._connect() as db:
            removed = sum(db.execute("DELETE FROM roster WHERE class_id = ? AND person = ?",
                                     (class_id, person)).rowcount for person in people)
            if removed:
                self._changed(db)
        return removed

    def classes_of(self, person: str) -> list[SchoolClass]:
        """The classes whose roster has ``person``."""
        with self._connect() as db:
            rows = db.execute(f"{_CLASS_QUERY} JOIN roster r ON r.class_id = c.id"
                              " WHERE r.person = ? ORDER BY lower(c.name), c.name",
                              (person,)).fetchall()
        return [_school_class(row) for row in rows]

    def adopt_enrolled(self, people: Iterable[str]) -> list[str]:
        """Finish the upgrade of an older book: everyone enrolled joins the class that
        received the old sessions. Does nothing (returns []) when no upgrade waits."""
        with self._connect() as db:
            row = db.execute("SELECT value FROM meta WHERE key = ?", (_ADOPT_KEY,)).fetchone()
        if row is None:
            return []
        class_id = int(row[0])
        added = (self.add_to_roster(class_id, people, now=datetime(1970, 1, 1))
                 if self.school_class(class_id) is not None else [])
        with self._connect() as db:
            db.execute("DELETE FROM meta WHERE key = ?", (_ADOPT_KEY,))
        return added

    # -- sessions -----------------------------------------------------------------

    def start_session(self, name: str = "", *, class_id: int | None = None,
                      now: datetime | None = None, open_it: bool = False,
                      kiosk: str = DEFAULT_KIOSK) -> Session:
        """Start a new session of class ``class_id`` called ``name`` (trimmed; when empty,
        the class's name and the date).

        With ``open_it`` it also becomes the open session of ``kiosk``, in the same
        transaction. Raises ``ValueError`` for an unknown class.
        """
        started = _second(now or datetime.now())
        with self._connect() as db:
            prefix = "Class"
            if class_id is not None:
                prefix = self._require_class(db, class_id)
            clean = " ".join(name.split())[:MAX_SESSION_NAME] or f"{prefix} {started:%Y-%m-%d %H:%M}"
            session_id = int(db.execute(
                "INSERT INTO sessions (name, started_at, class_id) VALUES (?, ?, ?) RETURNING id",
                (clean, started.isoformat(), class_id)).fetchone()[0])
            if open_it:
                self._open(db, session_id, started, _kiosk_name(kiosk))
            self._changed(db)
        return Session(id=session_id, name=clean, started_at=started, class_id=class_id)

    def rename_session(self, session_id: int, name: str) -> Session:
        """Give a session another name (trimmed; an empty name is refused)."""
        clean = " ".join(str(name).split())[:MAX_SESSION_NAME]
        if not clean:
            raise ValueError("A session needs a name.")
        with self._connect() as db:
            self._require_session(db, session_id)
            db.execute("UPDATE sessions SET name = ? WHERE id = ?", (clean, session_id))
            self._changed(db)
        found = self.session(session_id)
        assert found is not None
        return found

    def open_session(self, session_id: int, *, now: datetime | None = None,
                     kiosk: str = DEFAULT_KIOSK) -> Session:
        """Make ``session_id`` the open session of ``kiosk``: the one that kiosk checks
        people into.

        Replaces the session that kiosk had open before; other kiosks keep theirs (one
        session may be open at several kiosks, e.g. two doors of one hall). Raises
        ``ValueError`` for an unknown session or an unusable kiosk name.
        """
        kiosk = _kiosk_name(kiosk)
        with self._connect() as db:
            self._require_session(db, session_id)
            self._open(db, session_id, _second(now or datetime.now()), kiosk)
            self._changed(db)
            row = db.execute(f"{_SESSION_QUERY} WHERE id = ?", (session_id,)).fetchone()
        return _session(row)

    def close_session(self, *, kiosk: str = DEFAULT_KIOSK) -> None:
        """Close the open session of ``kiosk``, if any: that kiosk then checks nobody in."""
        with self._connect() as db:
            if db.execute("DELETE FROM kiosk_sessions WHERE kiosk = ?",
                          (_kiosk_name(kiosk),)).rowcount:
                self._changed(db)

    def open_session_id(self, kiosk: str = DEFAULT_KIOSK) -> int | None:
        """The id of the open session of ``kiosk``, or ``None`` when it has none."""
        with self._connect() as db:
            row = db.execute("SELECT session_id FROM kiosk_sessions WHERE kiosk = ?",
                             (_kiosk_name(kiosk),)).fetchone()
        return None if row is None else int(row[0])

    def current_session(self, kiosk: str = DEFAULT_KIOSK) -> Session | None:
        """The open session of ``kiosk``, or ``None`` when the teacher opened none there."""
        with self._connect() as db:
            row = db.execute(f"{_SESSION_QUERY} WHERE id = (SELECT session_id FROM"
                             " kiosk_sessions WHERE kiosk = ?)", (_kiosk_name(kiosk),)).fetchone()
        return None if row is None else _session(row)

    def open_sessions(self) -> dict[str, int]:
        """Every kiosk with an open session: kiosk name -> session id, by kiosk name (the
        default kiosk, ``DEFAULT_KIOSK``, first)."""
        with self._connect() as db:
            rows = db.execute("SELECT kiosk, session_id FROM kiosk_sessions").fetchall()
        return {str(k): int(s) for k, s in sorted(rows, key=lambda r: str(r[0]).casefold())}

    def sessions(self, class_id: int | None = None, *, start: date | None = None,
                 end: date | None = None) -> list[Session]:
        """Sessions, newest first: all, or one class's; ``start``/``end`` (dates,
        inclusive) keep those that started in that range."""
        where, args = _session_filter(class_id, start, end)
        with self._connect() as db:
            rows = db.execute(f"{_SESSION_QUERY}{where} ORDER BY started_at DESC, id DESC",
                              args).fetchall()
        return [_session(r) for r in rows]

    def session(self, session_id: int) -> Session | None:
        with self._connect() as db:
            row = db.execute(f"{_SESSION_QUERY} WHERE id = ?", (session_id,)).fetchone()
        return None if row is None else _session(row)

    def delete_session(self, session_id: int) -> None:
        """Delete a session and all its check-ins."""
        with self._connect() as db:
            db.execute("DELETE FROM checkins WHERE session_id = ?", (session_id,))
            db.execute("DELETE FROM kiosk_sessions WHERE session_id = ?", (session_id,))
            if db.execute("DELETE FROM sessions WHERE id = ?", (session_id,)).rowcount:
                self._changed(db)

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
                "INSERT INTO checkins (session_id, person, checked_at, score, how, present)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (session_id, person, when.isoformat(), _score(score), how, True))
            if cursor.rowcount == 0:
                return None
            self._changed(db)
        return CheckIn(session_id, person, when, _score(score), how, True)

    def mark(self, session_id: int, person: str, present: bool, *,
             now: datetime | None = None) -> CheckIn:
        """A teacher's manual correction: mark ``person`` present or absent (see
        ``set_status`` for late)."""
        return self.set_status(session_id, person, PRESENT if present else ABSENT, now=now)

    def set_status(self, session_id: int, person: str, status: str, *,
                   now: datetime | None = None) -> CheckIn:
        """A teacher's manual correction: ``person`` was present, late or absent.

        Overwrites any earlier row for this person in this session (``how`` becomes
        ``manual``, the score is cleared). Raises ``ValueError`` for another status.
        """
        if status not in STATUSES:
            raise ValueError(f"Unknown status {status!r}; use one of {STATUSES}.")
        when = _second(now or datetime.now())
        present = status != ABSENT
        with self._connect() as db:
            self._require_session(db, session_id)
            db.execute(
                "INSERT INTO checkins (session_id, person, checked_at, score, how, present,"
                " marked) VALUES (?, ?, ?, NULL, 'manual', ?, ?)"
                " ON CONFLICT (session_id, person) DO UPDATE SET"
                " checked_at = excluded.checked_at, score = NULL, how = 'manual',"
                " present = excluded.present, marked = excluded.marked",
                (session_id, person, when.isoformat(), present, status))
            self._changed(db)
        return CheckIn(session_id, person, when, None, "manual", present, status)

    def checkins(self, session_id: int | None = None) -> list[CheckIn]:
        """Check-ins of one session (or of all), in the order they happened."""
        query = ("SELECT session_id, person, checked_at, score, how, present, marked"
                 " FROM checkins" + (" WHERE session_id = ?" if session_id is not None else "")
                 + " ORDER BY checked_at, id")
        args: tuple[int, ...] = (session_id,) if session_id is not None else ()
        with self._connect() as db:
            rows = db.execute(query, args).fetchall()
        return [CheckIn(int(r[0]), r[1], _moment(r[2]),
                        None if r[3] is None else float(r[3]), r[4], bool(r[5]), r[6])
                for r in rows]

    def present_people(self, session_id: int) -> list[str]:
        """Names counted present (on time or late) in a session, in check-in order."""
        return [c.person for c in self.checkins(session_id) if c.present]

    # -- the register -------------------------------------------------------------

    def register(self, session_id: int) -> Register:
        """The register of one session: every roster member of its class present, late
        or absent (``model.school.classes.status_of``), and the visitors: people checked
        in who are not on the roster, listed apart and never counted. Raises
        ``ValueError`` for an unknown session."""
        session = self.session(session_id)
        if session is None:
            raise ValueError(f"There is no class session number {session_id}.")
        school_class = None if session.class_id is None else self.school_class(session.class_id)
        late_after = timedelta(seconds=school_class.late_after_s if school_class else 0)
        with self._connect() as db:
            members = dict(db.execute("SELECT person, added_at FROM roster WHERE class_id = ?",
                                      (session.class_id,)).fetchall())
        rows, visitors = [], []
        found = {c.person: c for c in self.checkins(session_id)}
        for person in sorted(members, key=str.casefold):
            checkin = found.get(person)
            if counts_for(_moment(members[person]), session.started_at,
                          checked_in=checkin is not None):
                rows.append(_register_row(person, checkin, session.started_at, late_after))
        for person, checkin in found.items():
            if person not in members and checkin.present:
                visitors.append(_register_row(person, checkin, session.started_at, late_after))
        return Register(session_id=session.id, session=session.name,
                        started_at=session.started_at,
                        class_name=school_class.name if school_class else "",
                        rows=rows, visitors=visitors)

    # -- people -------------------------------------------------------------------

    def rename_person(self, old: str, new: str) -> None:
        """Follow a rename in the gallery, so past attendance and class places stay with
        the person."""
        with self._connect() as db:
            # A row already under the new name in the same session wins over the old one.
            db.execute("DELETE FROM checkins WHERE person = ? AND session_id IN"
                       " (SELECT session_id FROM checkins WHERE person = ?)", (old, new))
            db.execute("UPDATE checkins SET person = ? WHERE person = ?", (new, old))
            db.execute("DELETE FROM roster WHERE person = ? AND class_id IN"
                       " (SELECT class_id FROM roster WHERE person = ?)", (old, new))
            db.execute("UPDATE roster SET person = ? WHERE person = ?", (new, old))
            self._changed(db)

    def forget_person(self, person: str) -> int:
        """Delete every attendance row of ``person`` and their places on class rosters;
        returns how many attendance rows were deleted."""
        with self._connect() as db:
            db.execute("DELETE FROM roster WHERE person = ?", (person,))
            deleted = int(db.execute("DELETE FROM checkins WHERE person = ?", (person,)).rowcount)
            self._changed(db)
        return deleted

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
            rows = db.execute(query, args).fetchall()
        frame = pd.DataFrame.from_records([tuple(r) for r in rows], columns=CHECKIN_COLUMNS)
        frame["score"] = frame["score"].astype(float)
        frame["present"] = frame["present"].astype(bool)
        frame["started_at"] = pd.to_datetime(frame["started_at"])
        frame["checked_at"] = pd.to_datetime(frame["checked_at"])
        return frame[CHECKIN_COLUMNS]

    def register_table(self, session_id: int | None = None, *, class_id: int | None = None,
                       start: date | None = None, end: date | None = None) -> pd.DataFrame:
        """One row per roster member per session (``REGISTER_COLUMNS``), oldest session
        first: one session, or the sessions of a class (or of every class) started
        between ``start`` and ``end``. Visitors are not in it."""
        if session_id is not None:
            sessions = [self.session(session_id)]
        else:
            sessions = list(reversed(self.sessions(class_id, start=start, end=end)))
        records = []
        for session in filter(None, sessions):
            register = self.register(session.id)
            for row in register.rows:
                records.append({"class": register.class_name, "session": register.session,
                                "started_at": register.started_at, "person": row.person,
                                "status": row.status, "checked_at": row.checked_at,
                                "how": row.how, "score": row.score})
        frame = pd.DataFrame.from_records(records, columns=REGISTER_COLUMNS)
        for column in ("started_at", "checked_at"):
            frame[column] = pd.to_datetime(frame[column])
        return frame

    def rates(self, people: Iterable[str] = (), *, class_id: int | None = None) -> pd.DataFrame:
        """Per-person attendance: columns ``person, attended, sessions, rate``.

        ``sessions`` counts only the sessions of the classes the person is on the roster
        of (of ``class_id`` alone when given) since they joined; ``attended`` those they
        were present or late at; ``rate`` = attended / sessions (0 when no session).
        ``people`` adds names with no class yet (e.g. everyone enrolled), shown with 0
        sessions. Sorted by rate, then name.
        """
        counted: dict[str, list[int]] = {person: [0, 0] for person in people}
        classes = [class_id] if class_id is not None else [c.id for c in self.classes()]
        for cid in classes:
            for session in self.sessions(cid):
                for row in self.register(session.id).rows:
                    tally = counted.setdefault(row.person, [0, 0])
                    tally[0] += row.status in (PRESENT, LATE)
                    tally[1] += 1
            if class_id is not None:
                for person in self.roster(cid):
                    counted.setdefault(person, [0, 0])
        frame = pd.DataFrame({"person": list(counted),
                              "attended": [a for a, _ in counted.values()],
                              "sessions": [n for _, n in counted.values()]},
                             columns=["person", "attended", "sessions"])
        frame["attended"] = frame["attended"].astype(int)
        frame["sessions"] = frame["sessions"].astype(int)
        frame["rate"] = (frame["attended"] / frame["sessions"].where(frame["sessions"] > 0)
                         ).fillna(0.0).astype(float)
        return frame.sort_values(["rate", "person"], ascending=[False, True],
                                 ignore_index=True)

    def export_csv(self, session_id: int | None = None, *, class_id: int | None = None,
                   start: date | None = None, end: date | None = None) -> bytes:
        """The register as UTF-8 CSV bytes (with a BOM so Excel shows accents): one row per
        roster member per session with their status (``register_table``)."""
        return _csv_bytes(self.register_table(session_id, class_id=class_id, start=start,
                                              end=end))

    def export_register_csv(self, class_id: int, *, start: date | None = None,
                            end: date | None = None) -> bytes:
        """A class's register over a date range like a paper one: one row per roster
        member, one column per session (oldest first) holding present, late or absent
        (empty before they joined), then attended, sessions and rate."""
        sessions = list(reversed(self.sessions(class_id, start=start, end=end)))
        # One register per session, read once: its statuses fill that session's column.
        statuses = {f"{s.started_at:%Y-%m-%d %H:%M} {s.name}":
                    {row.person: row.status for row in self.register(s.id).rows}
                    for s in sessions}
        members = sorted(set(self.roster(class_id)).union(*statuses.values()), key=str.casefold)
        grid = pd.DataFrame({"person": members})
        for title, column in statuses.items():
            grid[title] = [column.get(person, "") for person in members]
        marks = grid.drop(columns=["person"])
        grid["attended"] = marks.isin([PRESENT, LATE]).sum(axis=1).astype(int)
        grid["sessions"] = (marks != "").sum(axis=1).astype(int)
        grid["rate"] = (grid["attended"] / grid["sessions"].where(grid["sessions"] > 0)
                        ).fillna(0.0).round(3)
        return _csv_bytes(grid)

    # -- plumbing -----------------------------------------------------------------

    @staticmethod
    def _open(db: Database, session_id: int, when: datetime, kiosk: str) -> None:
        db.execute("INSERT INTO kiosk_sessions (kiosk, session_id, opened_at) VALUES (?, ?, ?)"
                   " ON CONFLICT (kiosk) DO UPDATE SET session_id = excluded.session_id,"
                   " opened_at = excluded.opened_at", (kiosk, session_id, when.isoformat()))

    def _changed(self, db: Database) -> None:
        """Count one more change (``change_number``), in the writer's transaction."""
        db.execute("INSERT INTO meta (key, value) VALUES (?, '1') ON CONFLICT (key) DO UPDATE"
                   " SET value = CAST(CAST(meta.value AS INTEGER) + 1 AS TEXT)", (_CHANGES_KEY,))

    def _class(self, class_id: int) -> SchoolClass:
        found = self.school_class(class_id)
        if found is None:
            raise ValueError(f"There is no class number {class_id}.")
        return found

    @staticmethod
    def _require_class(db: Database, class_id: int) -> str:
        row = db.execute("SELECT name FROM classes WHERE id = ?", (class_id,)).fetchone()
        if row is None:
            raise ValueError(f"There is no class number {class_id}.")
        return str(row[0])

    @staticmethod
    def _require_session(db: Database, session_id: int) -> None:
        if db.execute("SELECT 1 FROM sessions WHERE id = ?", (session_id,)).fetchone() is None:
            raise ValueError(f"There is no class session number {session_id}.")



class AttendanceBook(RegisterBook):
    """The register in one SQLite file (created on first use): one school computer."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            self._upgrade(db)

    @property
    def location(self) -> str:
        return str(self.path)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_S)
        try:
            db.execute("PRAGMA foreign_keys = ON")
            with db:  # one transaction: commit on success, roll back on error
                yield db
        finally:
            db.close()

    def _upgrade(self, db: sqlite3.Connection) -> None:
        """Create the tables of a new book; bring an older one to ``SCHEMA_VERSION``."""
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        had_sessions = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table'"
                                  " AND name = 'sessions'").fetchone() is not None
        # CREATE ... IF NOT EXISTS: a new file gets every table, an older one the tables
        # added since; then the columns added since. No row is lost.
        db.executescript(_SCHEMA)
        for table, column, declaration in _ADDED_COLUMNS:
            columns = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
            if column not in columns:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
        if had_sessions and version < 3:
            # Version 3: one book served one class. Its sessions become that class's,
            # marked absences keep their meaning, everyone who checked in is on its roster.
            # A teacher's old mark stays what it said (its time is when it was made, not
            # when the person came, so it must not be judged late).
            db.execute("UPDATE checkins SET marked = CASE present WHEN 1 THEN 'present'"
                       " ELSE 'absent' END WHERE how = 'manual' AND marked IS NULL")
            if db.execute("SELECT 1 FROM sessions WHERE class_id IS NULL").fetchone():
                class_id = self._migration_class(db)
                db.execute("UPDATE sessions SET class_id = ? WHERE class_id IS NULL",
                           (class_id,))
                db.execute("INSERT OR IGNORE INTO roster (class_id, person, added_at)"
                           " SELECT DISTINCT ?, person, ? FROM checkins",
                           (class_id, datetime(1970, 1, 1).isoformat()))
                db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                           (_ADOPT_KEY, str(class_id)))
        if had_sessions and version < 4:
            # Version 4 allows how = 'head turn': SQLite cannot change a CHECK, so the
            # check-in table is rebuilt with every row (inside this transaction).
            self._rebuild_checkins(db)
        if db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table'"
                      " AND name = 'open_session'").fetchone():
            # Version 5: the one open session becomes the default kiosk's.
            db.execute("INSERT OR IGNORE INTO kiosk_sessions (kiosk, session_id, opened_at)"
                       " SELECT ?, session_id, opened_at FROM open_session", (DEFAULT_KIOSK,))
            db.execute("DROP TABLE open_session")
        if version < SCHEMA_VERSION:
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @staticmethod
    def _rebuild_checkins(db: sqlite3.Connection) -> None:
        create = _SCHEMA[_SCHEMA.index("CREATE TABLE IF NOT EXISTS checkins"):]
        create = create[:create.index(");") + 2].replace("IF NOT EXISTS checkins",
                                                         "checkins_v4")
        db.execute(create)
        db.execute(f"INSERT INTO checkins_v4 ({_CHECKIN_TABLE_COLUMNS})"
                   f" SELECT {_CHECKIN_TABLE_COLUMNS} FROM checkins")
        db.execute("DROP TABLE checkins")
        db.execute("ALTER TABLE checkins_v4 RENAME TO checkins")
        db.execute("CREATE INDEX IF NOT EXISTS checkins_person ON checkins(person)")

    @staticmethod
    def _migration_class(db: sqlite3.Connection) -> int:
        row = db.execute("SELECT id FROM classes WHERE name = ?", (DEFAULT_CLASS_NAME,)
                         ).fetchone()
        if row is not None:
            return int(row[0])
        cursor = db.execute("INSERT INTO classes (name, late_after_s, created_at)"
                            " VALUES (?, ?, ?)", (DEFAULT_CLASS_NAME, 60 * DEFAULT_LATE_AFTER_MIN,
                                                  _second(datetime.now()).isoformat()))
        return int(cursor.lastrowid or 0)


def open_attendance(path: str | Path | None = None) -> RegisterBook:
    """The attendance book at ``path`` (a SQLite file); without ``path``, the one the
    settings name (``open_register(get_settings())``)."""
    if path is None:
        from model.settings import get_settings

        return open_register(get_settings())
    return AttendanceBook(path)


def open_register(settings: Settings) -> RegisterBook:
    """The register the settings name: PostgreSQL when ``settings.database_url`` is set
    (``FACEATT_DATABASE_URL``), with its offline outbox at ``settings.outbox_db``; else
    the SQLite file ``settings.attendance_db``."""
    if settings.database_url:
        from model.school.attendance_pg import PostgresBook

        return PostgresBook(settings.database_url, outbox=settings.outbox_db,
                            pool_size=settings.database_pool_size,
                            offline_retry_s=settings.offline_retry_s)
    return AttendanceBook(settings.attendance_db)


def _check_method(how: str) -> None:
    if how not in CHECKIN_METHODS:
        raise ValueError(f"Unknown check-in method {how!r}; use one of {CHECKIN_METHODS}.")


def _score(score: float | None) -> float | None:
    return None if score is None else round(float(score), 4)


def _second(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)


def _moment(value: str | datetime) -> datetime:
    """A stored time: ISO 8601 text (SQLite) or a ``timestamp`` (PostgreSQL)."""
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def _kiosk_name(name: str) -> str:
    """A kiosk's name with its spaces folded ("" is the default kiosk)."""
    clean = " ".join(str(name).split())
    if len(clean) > MAX_KIOSK_NAME:
        raise ValueError(f"A kiosk name has at most {MAX_KIOSK_NAME} characters.")
    if any(not ch.isprintable() for ch in clean):
        raise ValueError("A kiosk name cannot hold control or invisible characters.")
    return clean


_CLASS_QUERY = ("SELECT c.id, c.name, c.late_after_s, c.created_at,"
                " (SELECT COUNT(*) FROM roster WHERE class_id = c.id), c.head_turn"
                " FROM classes c")
_SESSION_QUERY = "SELECT id, name, started_at, class_id FROM sessions"


def _school_class(row: Any) -> SchoolClass:
    return SchoolClass(id=int(row[0]), name=row[1], late_after_s=int(row[2]),
                       created_at=_moment(row[3]), roster_size=int(row[4]),
                       head_turn=bool(row[5]))


def _session(row: Any) -> Session:
    return Session(int(row[0]), row[1], _moment(row[2]),
                   None if row[3] is None else int(row[3]))


def _session_filter(class_id: int | None, start: date | None,
                    end: date | None) -> tuple[str, tuple[object, ...]]:
    clauses: list[str] = []
    args: list[object] = []
    if class_id is not None:
        clauses.append("class_id = ?")
        args.append(class_id)
    if start is not None:
        clauses.append("started_at >= ?")
        args.append(datetime.combine(start, time.min).isoformat())
    if end is not None:
        clauses.append("started_at < ?")
        args.append(datetime.combine(end + timedelta(days=1), time.min).isoformat())
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), tuple(args)


def _register_row(person: str, checkin: CheckIn | None, started_at: datetime,
                  late_after: timedelta) -> RegisterRow:
    if checkin is None:
        return RegisterRow(person=person, status=ABSENT)
    status = status_of(checkin.checked_at, started_at, late_after, present=checkin.present,
                       marked=checkin.marked)
    return RegisterRow(person=person, status=status, checked_at=checkin.checked_at,
                       how=checkin.how, score=checkin.score, manual=checkin.how == "manual")


def _class_name(name: str) -> str:
    clean = " ".join(str(name).split())
    if not clean:
        raise ValueError("A class needs a name, e.g. Maths 7B.")
    if len(clean) > MAX_CLASS_NAME:
        raise ValueError(f"A class name has at most {MAX_CLASS_NAME} characters.")
    if any(not ch.isprintable() for ch in clean):
        raise ValueError("A class name cannot hold control or invisible characters.")
    return clean


def _late_seconds(minutes: float) -> int:
    if not 0 <= float(minutes) <= 24 * 60:
        raise ValueError("The late-after time is between 0 and 1440 minutes.")
    return round(float(minutes) * 60)


def _csv_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, date_format="%Y-%m-%d %H:%M:%S")
    return buffer.getvalue().encode("utf-8-sig")
