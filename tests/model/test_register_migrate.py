"""`python -m model migrate --to postgresql://...`: a SQLite register copied into PostgreSQL,
counts checked, and a second run changes nothing."""

from __future__ import annotations

from datetime import datetime, timedelta

from model.cli import EXIT_OK, EXIT_USER, main
from model.school.attendance import AttendanceBook
from model.school.attendance_pg import PostgresBook
from model.school.classes import ABSENT, LATE

T0 = datetime(2026, 3, 2, 9, 0, 0)


def _school(path) -> AttendanceBook:
    book = AttendanceBook(path)
    maths = book.create_class("Maths 7B", late_after_min=5, head_turn=False, now=T0)
    art = book.create_class("Art club", now=T0)
    book.add_to_roster(maths.id, ["Ada", "Grace", "Alan"], now=T0)
    book.add_to_roster(art.id, ["Zoë O'Brien"], now=T0)
    for day in range(3):
        s = book.start_session(f"Day {day}", class_id=maths.id, now=T0 + timedelta(days=day))
        book.check_in(s.id, "Ada", score=0.91, how="live", now=T0 + timedelta(days=day))
        book.check_in(s.id, "Frida", score=0.8, how="upload", now=T0 + timedelta(days=day))
    book.set_status(s.id, "Alan", LATE, now=T0 + timedelta(days=2, hours=1))
    book.set_status(s.id, "Ada", ABSENT, now=T0 + timedelta(days=2, hours=1))
    book.start_session("Painting", class_id=art.id, now=T0, open_it=True, kiosk="Room 12")
    return book


def test_migrate_copies_the_register_and_twice_changes_nothing(postgres_url, tmp_path, capsys):
    source = _school(tmp_path / "attendance.sqlite3")
    assert main(["migrate", "--to", postgres_url, "--from", str(source.path)]) == EXIT_OK
    out = capsys.readouterr().out
    assert "checkins: 7 in attendance.sqlite3, 7 in postgresql://postgres@" in out
    assert main(["migrate", "--to", postgres_url, "--from", str(source.path)]) == EXIT_OK
    assert "checkins: 7 in attendance.sqlite3, 7 in" in capsys.readouterr().out
    target = PostgresBook(postgres_url)
    try:
        assert target.classes() == source.classes()
        assert target.sessions() == source.sessions()
        assert target.checkins() == source.checkins()
        assert target.open_sessions() == source.open_sessions() == {"Room 12": 4}
        for session in source.sessions():
            assert target.register(session.id) == source.register(session.id)
        assert target.export_csv() == source.export_csv()
        # Rows made in PostgreSQL afterwards take new ids, never a copied one.
        assert target.start_session("Day 3", class_id=1).id == 5
        assert target.create_class("Choir").id == 3
    finally:
        target.close()


def test_migrate_refuses_a_database_holding_another_register(postgres_url, tmp_path, capsys):
    other = PostgresBook(postgres_url)
    try:
        other.create_class("Another school's class", now=T0)
    finally:
        other.close()
    source = _school(tmp_path / "attendance.sqlite3")
    assert main(["migrate", "--to", postgres_url, "--from", str(source.path)]) == EXIT_USER
    err = capsys.readouterr().err
    assert "already held another register: classes (2 rows here, 2 in the file)" in err
    assert "Nothing was copied" in err
    other = PostgresBook(postgres_url)
    try:
        assert [c.name for c in other.classes()] == ["Another school's class"]
        assert other.sessions() == []
    finally:
        other.close()


def test_migrate_without_a_register_says_so(tmp_path, capsys):
    missing = tmp_path / "none.sqlite3"
    assert main(["migrate", "--to", "postgresql://x@127.0.0.1:1/x", "--from", str(missing)]) \
        == EXIT_USER
    assert "there is no attendance register" in capsys.readouterr().err
