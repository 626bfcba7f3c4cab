"""Hot sectors: shrinkage keeps three lucky scans off the top, and every rank shows its evidence."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from technic_ml.nyse import NY
from technic_ml.optimizer.hot_sectors import hot_sectors, prior_strength

AS_OF = dt.datetime(2019, 6, 3, 8, 30, tzinfo=NY)


def _frame(rows):
    return pd.DataFrame(
        [
            {
                "scan_id": f"s{i}",
                "timestamp": AS_OF - dt.timedelta(days=days_ago),
                "sectors": sectors,
                "symbols_scanned": scanned,
                "result_signals": signals,
            }
            for i, (days_ago, sectors, scanned, signals) in enumerate(rows)
        ]
    )


def _history():
    rows = []
    # A sector with lots of evidence at 8 % signals per symbol scanned, twice the market's 4 %.
    rows += [(1 + i % 20, ["Energy"], 50, 4) for i in range(100)]
    # Three lucky scans: 50 % of a few symbols.
    rows += [(2, ["Utilities"], 10, 5)] * 3
    # A sector at the market's rate, and the market itself.
    rows += [(3 + i % 10, ["Materials"], 50, 2) for i in range(40)]
    rows += [(1 + i % 25, None, 400, 10) for i in range(100)]
    return _frame(rows)


def test_three_lucky_scans_do_not_top_a_sector_with_evidence():
    result = hot_sectors(_history(), AS_OF)
    by_name = {s.sector: s for s in result.sectors}
    assert by_name["Utilities"].raw_rate == 0.5 and by_name["Energy"].raw_rate == 0.08
    assert result.top(1) == ["Energy"]
    lucky = by_name["Utilities"]
    assert (lucky.scans, lucky.symbols_scanned, lucky.signals) == (3, 30, 15)
    # The shrunk rate is the stated formula, hand-checked from the evidence.
    k, p = result.prior_symbols, result.overall_rate
    assert lucky.rate == pytest.approx((15 + k * p) / (30 + k))
    assert lucky.rate < 1.5 * p  # pulled most of the way back to the market's rate
    assert result.attributed_scans == 143 and result.scans == 243
    assert any("100 of 243 scans" in n for n in result.notes)


def test_overall_rate_counts_every_scan_in_the_window_and_only_those():
    rows = [(1, ["Energy"], 50, 5), (40, ["Energy"], 50, 50), (-1, ["Energy"], 50, 50), (2, None, 150, 5)]
    result = hot_sectors(_frame(rows), AS_OF, window_days=30)
    assert result.scans == 2 and result.overall_rate == pytest.approx(10 / 200)


def test_sectors_that_differ_only_by_chance_get_the_strongest_shrinkage_and_say_so():
    rows = [(1, [s], 100, 5) for s in ("A", "B", "C", "D") for _ in range(5)]
    result = hot_sectors(_frame(rows), AS_OF)
    assert result.prior_symbols == 1e6
    assert "no sector stands out" in " ".join(result.notes)
    assert prior_strength([5, 5, 5], [100, 100, 100], 1000, 1e6) == 1e6


def test_an_empty_window_ranks_nothing_and_says_so():
    result = hot_sectors(_history(), AS_OF - dt.timedelta(days=400), window_days=5)
    assert result.sectors == () and "no scans" in result.notes[0]
    with pytest.raises(ValueError, match="window_days: received 0"):
        hot_sectors(_history(), AS_OF, window_days=0)
