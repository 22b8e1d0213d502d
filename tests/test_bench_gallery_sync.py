"""``benchmarks/bench_gallery_sync.py`` end to end on a tiny school (2 kiosk processes, 3
people, one change of each kind); no timing is asserted (the benchmark prints figures)."""

from __future__ import annotations

import pytest

from benchmarks.bench_gallery_sync import run
from benchmarks.postgres_cluster import find_bin_dir


@pytest.mark.skipif(find_bin_dir() is None, reason="PostgreSQL is not installed (make postgres)")
def test_every_change_reaches_every_kiosk() -> None:
    result = run(kiosks=2, people=3, changes=4, poll_s=0.2, scenarios=("plain", "dropped"))
    assert result["photos"] == 6
    for scenario in ("plain", "dropped"):
        assert result[scenario]["changes"] == 4
        assert result[scenario]["median_s"] <= result[scenario]["max_s"]
