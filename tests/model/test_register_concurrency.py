"""Several app processes and kiosks on one PostgreSQL register: nothing lost, nothing doubled.

``make bench-school``'s register part (``benchmarks/bench_school_register.py``) at a small
size: 2 app processes (spawned, each with its own data folder and outbox) x 2 kiosks
checking 160 students into 4 sessions while the session's throwaway server is restarted
(``pg_ctl restart -m fast``) and one app process, caught with check-ins in its outbox, is
killed with ``kill -9`` and started again on its folder. No timing is asserted.
"""

from __future__ import annotations

import pytest

from benchmarks.bench_school_register import render, run_scenario


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

