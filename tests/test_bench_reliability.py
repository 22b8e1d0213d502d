"""The reliability table (``benchmarks/bench_reliability.py``): its fast sections run and hold.

The whole table (TensorFlow, AppTest pages, kill -9 children, a fine-tune) is
``make bench-reliability``; these sections need no network and take a few seconds.
"""

from __future__ import annotations

import pytest

from benchmarks.bench_reliability import SECTIONS, Table, run

FAST = ["names", "concurrency", "passcode"]


def test_the_fast_sections_are_all_ok(tmp_path):
    rows = run(FAST, workdir=tmp_path)
    assert {row.section for row in rows} == {SECTIONS[name] for name in FAST}
    assert len(rows) >= 15 and all(row.ok for row in rows), Table(rows).render()


def test_an_unknown_section_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown sections"):
        run(["nmaes"], workdir=tmp_path)
