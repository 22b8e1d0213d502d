"""Several app processes and kiosks on one PostgreSQL register: nothing lost, nothing doubled.

``make bench-school``'s register part (``benchmarks/bench_school_register.py``) at a small
size: 2 app processes (spawned, each with its own data folder and outbox) x 2 kiosks
checking 160 students into 4 sessions while the session's throwaway server is restarted
(``pg_ctl restart -m fast``) and one app process, caught with check-ins in its outbox, is
killed with ``kill -9`` and started again on its folder. No timing is asserted. Then what a
kiosk remembers of its open session for an outage.
"""

from __future__ import annotations

import pytest

from benchmarks.bench_school_register import render, run_scenario
from model.school.attendance_pg import PostgresBook


@pytest.mark.slow
def test_kiosks_in_two_processes_lose_and_double_nobody_through_a_restart_and_a_kill(
        postgres, tmp_path):
    figures = run_scenario(postgres, tmp_path, chaos=True, apps=2, kiosks=2, classes=4,
                           class_size=40, offline_retry_s=1.0)
    table = render([figures])
    assert any("killed (kill -9)" in event for event in figures.events), table  # mid-run
    assert figures.students == 160 and figures.sessions == 4, table
    assert figures.lost == 0 and figures.doubled == 0 and figures.unexpected == 0, table
    assert figures.outbox_left == 0 and figures.errors == 0, table


def test_a_kiosk_that_loses_the_database_keeps_the_session_it_just_opened(postgres,
                                                                          postgres_url, tmp_path):
    """The book remembers the session it opened itself, not the one it read before: a
    kiosk page that asks during an outage checks people into the session the teacher
    just opened there, not the previous one (where they would be lost to the register)."""
    kiosk = PostgresBook(postgres_url, outbox=tmp_path / "outbox.sqlite3", offline_retry_s=0.0,
                         connect_timeout_s=1.0)
    try:
        monday = kiosk.start_session("Monday", open_it=True, kiosk="Room 12")
        assert kiosk.current_session("Room 12") == monday
        tuesday = kiosk.start_session("Tuesday", open_it=True, kiosk="Room 12")
        hall = kiosk.start_session("Assembly")
        kiosk.open_session(hall.id, kiosk="Hall")
        kiosk.current_session("Hall")
        kiosk.open_session(monday.id, kiosk="Hall")
        kiosk.close_session(kiosk="Gym")
        assert kiosk.current_session("Gym") is None
        kiosk.start_session("Gym class", open_it=True, kiosk="Gym")
        kiosk.close_session(kiosk="Gym")
        cancelled = kiosk.start_session("Lab", open_it=True, kiosk="Lab")
        assert kiosk.current_session("Lab") == cancelled
        kiosk.delete_session(cancelled.id)
        postgres.stop()
        try:
            assert kiosk.current_session("Room 12") == tuesday
            assert kiosk.open_session_id("Hall") == monday.id
            assert kiosk.current_session("Gym") is None
            assert kiosk.current_session("Lab") is None
        finally:
            postgres.start()
    finally:
        kiosk.close()
