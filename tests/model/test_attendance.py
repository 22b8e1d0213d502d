"""The attendance book: sessions, one check-in per person, corrections, rates, CSV."""

from __future__ import annotations

import io
import threading
from datetime import datetime, timedelta

import pandas as pd
import pytest

from model.school.attendance import CHECKIN_COLUMNS, AttendanceBook, open_attendance

T0 = datetime(2026, 3, 2, 9, 0, 0)


@pytest.fixture()
def book(tmp_path):
    return AttendanceBook(tmp_path / "sub" / "attendance.sqlite3")


def test_creates_file_and_starts_sessions_newest_first(book):
    first = book.start_session("Maths 7B", now=T0)
    second = book.start_session("  Art   club ", now=T0 + timedelta(hours=1))
    assert book.path.exists()
    assert second.name == "Art club"
    assert [s.id for s in book.sessions()] == [second.id, first.id]
    assert book.session(first.id) == first
    assert book.session(999) is None


def test_empty_session_name_gets_a_default(book):
    assert book.start_session("   ", now=T0).name == "Class 2026-03-02 09:00"


def test_check_in_once_per_session(book):
    s = book.start_session("Maths", now=T0)
    first = book.check_in(s.id, "Ada", score=0.91234567, how="live", now=T0)
    assert first is not None and first.score == 0.9123 and first.present
    assert book.check_in(s.id, "Ada", score=0.99, how="snapshot") is None
    rows = book.checkins(s.id)
    assert len(rows) == 1 and rows[0].how == "live" and rows[0].checked_at == T0


def test_same_person_in_two_sessions(book):
    a, b = book.start_session("A", now=T0), book.start_session("B", now=T0)
    assert book.check_in(a.id, "Ada", score=0.9, how="upload")
    assert book.check_in(b.id, "Ada", score=0.9, how="upload")
    assert len(book.checkins()) == 2


def test_bad_method_and_unknown_session_are_refused(book):
    s = book.start_session("A")
    with pytest.raises(ValueError, match="method"):
        book.check_in(s.id, "Ada", score=0.9, how="telepathy")
    with pytest.raises(ValueError, match="no class session"):
        book.check_in(s.id + 1, "Ada", score=0.9, how="live")


def test_manual_marks_override(book):
    s = book.start_session("A", now=T0)
    book.check_in(s.id, "Ada", score=0.9, how="live")
    absent = book.mark(s.id, "Ada", present=False)
    assert absent.how == "manual" and not absent.present
    assert book.present_people(s.id) == []
    book.mark(s.id, "Ada", present=True)
    book.mark(s.id, "Grace", present=True)
    assert set(book.present_people(s.id)) == {"Ada", "Grace"}
    assert all(c.score is None for c in book.checkins(s.id))


def test_table_and_rates(book):
    a, b = book.start_session("A", now=T0), book.start_session("B", now=T0 + timedelta(days=1))
    book.check_in(a.id, "Ada", score=0.9, how="live", now=T0)
    book.check_in(b.id, "Ada", score=0.8, how="snapshot", now=T0 + timedelta(days=1))
    book.check_in(a.id, "Grace", score=0.7, how="upload", now=T0)
    book.mark(b.id, "Grace", present=False)
    table = book.table()
    assert list(table.columns) == CHECKIN_COLUMNS
    assert len(table) == 4 and table["present"].dtype == bool
    assert list(book.table(a.id)["person"]) == ["Ada", "Grace"]
    rates = book.rates(people=["Alan"])
    assert list(rates["person"]) == ["Ada", "Grace", "Alan"]
    assert list(rates["rate"]) == [1.0, 0.5, 0.0]
    assert set(rates["sessions"]) == {2}


def test_rates_with_no_sessions(book):
    rates = book.rates(people=["Ada"])
    assert list(rates["rate"]) == [0.0]
    assert book.rates().empty


def test_csv_export_round_trip_with_accents(book):
    s = book.start_session("Français", now=T0)
    book.check_in(s.id, "Zoë O'Brien", score=0.93, how="live", now=T0)
    data = book.export_csv()
    assert data.startswith(b"\xef\xbb\xbf")
    frame = pd.read_csv(io.BytesIO(data), encoding="utf-8-sig")
    assert list(frame.columns) == CHECKIN_COLUMNS
    assert frame.loc[0, "person"] == "Zoë O'Brien"
    assert frame.loc[0, "checked_at"] == "2026-03-02 09:00:00"


def test_empty_export_has_header(book):
    header = book.export_csv().decode("utf-8-sig").strip()
    assert header.split(",") == CHECKIN_COLUMNS


def test_rename_and_forget_person(book):
    a, b = book.start_session("A"), book.start_session("B")
    book.check_in(a.id, "Ada", score=0.9, how="live")
    book.check_in(b.id, "Ada", score=0.9, how="live")
    book.check_in(b.id, "Ada L", score=0.9, how="live")
    book.rename_person("Ada", "Ada L")
    assert sorted((c.session_id, c.person) for c in book.checkins()) == [
        (a.id, "Ada L"), (b.id, "Ada L")]
    assert book.forget_person("Ada L") == 2
    assert book.checkins() == []


def test_delete_session(book):
    s = book.start_session("A")
    book.check_in(s.id, "Ada", score=0.9, how="live")
    book.delete_session(s.id)
    assert book.sessions() == [] and book.checkins() == []


def test_concurrent_check_ins_keep_one_row(book):
    s = book.start_session("A")
    results = []

    def worker():
        results.append(book.check_in(s.id, "Ada", score=0.9, how="live"))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r is not None for r in results) == 1
    assert len(book.checkins(s.id)) == 1


def test_open_attendance_uses_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEATT_DATA_DIR", str(tmp_path))
    book = open_attendance()
    assert book.path == tmp_path / "attendance.sqlite3"


# ----- the open session (the kiosk's) ----------------------------------------------------

def test_no_session_is_open_at_first(book):
    book.start_session("Maths", now=T0)
    assert book.open_session_id() is None
    assert book.current_session() is None


def test_open_close_and_switch(book):
    maths = book.start_session("Maths", now=T0)
    art = book.start_session("Art", now=T0 + timedelta(hours=1))
    assert book.open_session(maths.id) == maths
    assert book.open_session_id() == maths.id and book.current_session() == maths
    book.open_session(art.id)  # only one is open: opening another replaces it
    assert book.current_session() == art
    book.close_session()
    assert book.open_session_id() is None and book.current_session() is None
    book.close_session()  # closing twice is harmless
    assert [s.id for s in book.sessions()] == [art.id, maths.id]  # sessions are kept


def test_start_session_can_open_it_at_once(book):
    first = book.start_session("Maths", now=T0, open_it=True)
    assert book.current_session() == first
    book.start_session("Art", now=T0 + timedelta(hours=1))
    assert book.current_session() == first  # starting without open_it changes nothing
    third = book.start_session("Music", now=T0 + timedelta(hours=2), open_it=True)
    assert book.open_session_id() == third.id


def test_open_an_unknown_session_is_refused(book):
    with pytest.raises(ValueError, match="no class session number 42"):
        book.open_session(42)
    assert book.open_session_id() is None


def test_deleting_the_open_session_closes_it(book):
    s = book.start_session("Maths", now=T0, open_it=True)
    book.delete_session(s.id)
    assert book.open_session_id() is None


def test_the_open_session_is_shared_by_every_book_on_the_file(tmp_path):
    path = tmp_path / "attendance.sqlite3"
    teacher, kiosk = AttendanceBook(path), AttendanceBook(path)
    s = teacher.start_session("Maths", open_it=True)
    assert kiosk.current_session() == s
    teacher.close_session()
    assert kiosk.current_session() is None


def test_an_older_database_gets_the_open_session_table(tmp_path):
    """A file made before the open session existed: its data stays, the table is added."""
    import sqlite3

    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript("""
            CREATE TABLE sessions (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL,
                                   started_at TEXT NOT NULL);
            CREATE TABLE checkins (id INTEGER PRIMARY KEY AUTOINCREMENT,
                session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
                person TEXT NOT NULL, checked_at TEXT NOT NULL, score REAL,
                how TEXT NOT NULL CHECK (how IN ('live', 'snapshot', 'upload', 'manual')),
                present INTEGER NOT NULL DEFAULT 1 CHECK (present IN (0, 1)),
                UNIQUE (session_id, person));
            INSERT INTO sessions (name, started_at) VALUES ('Old class', '2025-09-01T09:00:00');
            INSERT INTO checkins (session_id, person, checked_at, score, how, present)
                VALUES (1, 'Ada', '2025-09-01T09:01:00', 0.9, 'live', 1);
        """)
    db.close()
    book = AttendanceBook(path)
    assert [s.name for s in book.sessions()] == ["Old class"]
    assert book.present_people(1) == ["Ada"]
    assert book.open_session_id() is None
    book.open_session(1)
    assert book.current_session().name == "Old class"
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 2
    db.close()
    assert AttendanceBook(path).open_session_id() == 1  # opening again keeps it
