"""bench/bench_optimizer.py: without the real data it says so and exits 0; its periods are time-ordered."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_without_real_data_the_replay_says_so(tmp_path):
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "bench_optimizer.py"), str(tmp_path / "no-market")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "real market data not found" in result.stdout


def test_replay_periods_group_sessions_in_order_and_never_mix_periods():
    sys.path.insert(0, str(REPO))
    from bench.bench_optimizer import _periods

    days = [dt.date(2017, 3, 30), dt.date(2017, 3, 31), dt.date(2017, 4, 3), dt.date(2017, 7, 3)]
    assert _periods(days, "quarter") == [days[:2], [days[2]], [days[3]]]
    assert _periods(days, "half") == [days[:3], [days[3]]]
    assert _periods(days, "month") == [[days[0], days[1]], [days[2]], [days[3]]]
