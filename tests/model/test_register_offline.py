"""A kiosk on the shared PostgreSQL register that loses the database keeps checking in.

The session's throwaway server (tests/model/conftest.py) is stopped mid-test, as a pulled
cable or a crashed server would look to the kiosk, and started again.
"""

from __future__ import annotations

import shutil
import socket
import time
from datetime import datetime, timedelta

import pytest

from model.school.attendance import RegisterOffline
from model.school.attendance_pg import PostgresBook

T0 = datetime(2026, 3, 2, 9, 0, 0)


@pytest.fixture
def outage(postgres):
    """Stops the server when called; it runs again after the test in any case."""
    yield postgres.stop
    postgres.start()


def _delivered(book: PostgresBook, within_s: float = 20.0) -> int:
    """What ``deliver_outbox`` delivers once the server is back (the pool may need a few
    tries to reconnect, as a kiosk's page polling every second would)."""
    give_up = time.monotonic() + within_s
    while True:
        delivered = book.deliver_outbox()
        if delivered or not book.outbox_waiting() or time.monotonic() > give_up:
            return delivered
        time.sleep(0.2)


def _reconnected(book: PostgresBook, within_s: float = 20.0) -> PostgresBook:
    """``book`` once it reaches the server again (a dropped pooled connection is replaced
    in about a second; a teacher's page would show the error once, then the register)."""
    give_up = time.monotonic() + within_s
    while True:
        try:
            book.change_number()
            return book
        except RegisterOffline:
            if time.monotonic() > give_up:
                raise
            time.sleep(0.2)


def _book(url: str, tmp_path, name: str = "kiosk") -> PostgresBook:
    return PostgresBook(url, outbox=tmp_path / f"{name}-outbox.sqlite3", offline_retry_s=0.0,
                        connect_timeout_s=1.0)


def test_check_ins_wait_in_the_outbox_and_are_delivered_once(postgres, postgres_url, tmp_path,
                                                             outage):
    teacher, kiosk = _book(postgres_url, tmp_path, "teacher"), _book(postgres_url, tmp_path)
    try:
        maths = teacher.create_class("Maths 7B")
        teacher.add_to_roster(maths.id, ["Ada", "Grace", "Alan", "Marie", "Pierre"])
        s = teacher.start_session("M", class_id=maths.id, now=T0, open_it=True,
                                  kiosk="Room 12")
        assert kiosk.current_session("Room 12") == s
        assert kiosk.check_in(s.id, "Ada", score=0.9, how="live", now=T0) is not None
        assert kiosk.present_people(s.id) == ["Ada"]
        assert kiosk.school_class(maths.id) is not None
        outage()
        # The kiosk still knows its session, who is in and its class, and keeps checking in.
        assert kiosk.current_session("Room 12") == s and kiosk.open_session_id("Room 12") == s.id
        assert kiosk.school_class(maths.id).name == "Maths 7B"
        for minute, person in enumerate(["Grace", "Alan", "Marie", "Pierre"], start=1):
            made = kiosk.check_in(s.id, person, score=0.8, how="live",
                                  now=T0 + timedelta(minutes=minute))
            assert made is not None and made.checked_at == T0 + timedelta(minutes=minute)
        assert kiosk.check_in(s.id, "Grace", score=0.8, how="live") is None  # waiting already
        assert kiosk.outbox_waiting() == 4
        assert kiosk.present_people(s.id) == ["Ada", "Grace", "Alan", "Marie", "Pierre"]
        assert kiosk.deliver_outbox() == 0 and kiosk.outbox_waiting() == 4
        with pytest.raises(RegisterOffline, match="cannot be reached"):
            kiosk.register(s.id)
        kept = tmp_path / "outbox-copy.sqlite3"
        shutil.copy(kiosk.outbox.path, kept)  # as if the kiosk crashed before clearing it
        postgres.start()
        assert _delivered(kiosk) == 4 and kiosk.outbox_waiting() == 0
        register = _reconnected(teacher).register(s.id)
        assert register.here == 5 and register.missing == []
        times = {c.person: c.checked_at for c in teacher.checkins(s.id)}
        assert times["Pierre"] == T0 + timedelta(minutes=4)  # when it happened, not delivered
        # The crashed kiosk delivers the same check-ins again: none is doubled.
        shutil.copy(kept, kiosk.outbox.path)
        assert kiosk.outbox_waiting() == 4
        assert kiosk.deliver_outbox() == 0 and kiosk.outbox_waiting() == 0
        assert len(teacher.checkins(s.id)) == 5
    finally:
        teacher.close()
        kiosk.close()


def test_two_offline_kiosks_check_the_same_person_in_once(postgres, postgres_url, tmp_path,
                                                          outage):
    teacher = _book(postgres_url, tmp_path, "teacher")
    doors = [_book(postgres_url, tmp_path, f"door{i}") for i in range(2)]
    try:
        s = teacher.start_session("Assembly", now=T0)
        for door in doors:
            door.open_session(s.id, kiosk=f"door {id(door)}")
        outage()
        for i, door in enumerate(doors):
            assert door.check_in(s.id, "Ada", score=0.9, how="live",
                                 now=T0 + timedelta(minutes=i)) is not None
        postgres.start()
        delivered = [_delivered(door) for door in doors]
        assert delivered == [1, 0]  # the second door's copy is skipped, not doubled
        [only] = _reconnected(teacher).checkins(s.id)
        assert only.person == "Ada" and only.checked_at == T0
    finally:
        for book in [teacher, *doors]:
            book.close()


def test_a_check_in_goes_straight_through_once_the_database_is_back(postgres, postgres_url,
                                                                    tmp_path, outage):
    kiosk = _book(postgres_url, tmp_path)
    try:
        s = kiosk.start_session("M", now=T0, open_it=True)
        outage()
        kiosk.check_in(s.id, "Ada", score=0.9, how="live", now=T0)
        postgres.start()
        _reconnected(kiosk)
        # The next check-in delivers what waited first, then goes to the server itself.
        assert kiosk.check_in(s.id, "Grace", score=0.9, how="live", now=T0) is not None
        assert kiosk.outbox_waiting() == 0
        assert kiosk.present_people(s.id) == ["Ada", "Grace"]
    finally:
        kiosk.close()


def test_a_book_opened_while_the_database_is_away_says_so(tmp_path):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    book = PostgresBook(f"postgresql://postgres:secret@127.0.0.1:{port}/school",
                        outbox=tmp_path / "outbox.sqlite3", connect_timeout_s=0.5)
    try:
        assert book.offline
        with pytest.raises(RegisterOffline) as raised:
            book.classes()
        assert f"postgresql://postgres@127.0.0.1:{port}/school" in str(raised.value)
        assert "secret" not in str(raised.value)
        with pytest.raises(RegisterOffline):
            book.current_session()  # nothing remembered yet
        assert book.check_in(1, "Ada", score=0.9, how="live") is not None
        assert book.outbox_waiting() == 1
    finally:
        book.close()
