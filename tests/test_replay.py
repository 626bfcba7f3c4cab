"""The replay's pure parts: the day plan, the truth shipped as a scanner log, the per-month table."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from technic_ml.history import ScanHistoryStore
from technic_ml.history.inbox import collect_inbox
from technic_ml.market_data.sample import SampleMarketData
from technic_ml.replay import markdown, monthly_table, plan_days, run_day, ship_day


@pytest.fixture(scope="module")
def market():
    return SampleMarketData()


def test_days_are_the_sessions_with_their_scans_in_time_order(market):
    days = plan_days(dt.date(2018, 7, 2), dt.date(2018, 7, 6), 10, 1, market.universe())
    # 2018-07-04 is a holiday: four sessions
    assert [d.session for d in days] == [dt.date(2018, 7, d) for d in (2, 3, 5, 6)]
    assert sum(len(d.scans) for d in days) == 40
    for d in days:
        assert all(p.as_of.date() == d.session for p in d.scans)
        assert [p.as_of for p in d.scans] == sorted(p.as_of for p in d.scans)
    assert plan_days(dt.date(2018, 7, 2), dt.date(2018, 7, 6), 10, 1, market.universe()) == days
    with pytest.raises(ValueError, match="per_day: received 0"):
        plan_days(dt.date(2018, 7, 2), dt.date(2018, 7, 6), 0, 1, market.universe())


def test_a_day_runs_once_and_ships_as_a_log_the_inbox_imports_whole(tmp_path, market):
    [day] = plan_days(dt.date(2018, 7, 2), dt.date(2018, 7, 2), 6, 2, market.universe())
    truth = ScanHistoryStore(tmp_path / "truth")
    assert run_day(day, market, truth, timing_runs=1) == len(day.scans)
    assert run_day(day, market, truth, timing_runs=1) == 0  # idempotent
    shipped = ship_day(day, truth, tmp_path / "inbox")
    assert shipped.name == "replay-2018-07-02.jsonl" and not list((tmp_path / "inbox").glob("*.part"))
    store = ScanHistoryStore(tmp_path / "policy")
    report = collect_inbox(store, tmp_path / "inbox", tmp_path / "processed")
    assert report.added == len(day.scans)
    a = truth.frame().set_index("scan_id").sort_index()
    b = store.frame().set_index("scan_id").sort_index()
    assert list(a["result_count"]) == list(b["result_count"])
    assert list(a["total_seconds"]) == pytest.approx(list(b["total_seconds"]))
    # the timing extras survive the log format: the duration label is learnable downstream
    assert all('"work_units"' in x for x in b["performance_extra"])


def _served(pid, scan, value, lower, upper, actual, state="model"):
    return dict(prediction_id=pid, scan_id=scan, target="count", role="served", state=state,
                value=value, lower=lower, upper=upper, actual=actual)  # fmt: skip


def test_the_monthly_table_by_hand():
    frame = pd.DataFrame(
        [
            _served("p1", "s1", 10, 8, 12, 11),  # January: inside, error 1
            _served("p2", "s2", 10, 8, 12, 20),  # January: outside, error 10
            _served("p3", "s3", None, None, None, 5, "abstain"),  # February: abstained
            _served("p4", "s4", 10, 8, 12, 9),  # February: inside, error 1
        ]
    )
    dates = {"s1": dt.date(2018, 1, 5), "s2": dt.date(2018, 1, 9), "s3": dt.date(2018, 2, 1),
             "s4": dt.date(2018, 2, 2)}  # fmt: skip
    table = monthly_table({"monitor": frame}, {"monitor": [(dt.date(2018, 2, 1), "degraded")]}, dates)
    jan, feb = table.iloc[0], table.iloc[1]
    assert (jan["month"], jan["outcomes"], jan["coverage"], jan["mae"]) == ("2018-01", 2, 0.5, 5.5)
    assert (jan["abstained"], jan["retrains"]) == (0.0, 0)
    assert (feb["outcomes"], feb["coverage"], feb["abstained"], feb["retrains"]) == (1, 1.0, 0.5, 1)
    text = markdown(table)
    assert "| 2018-01 | **50.0%**, 5.5, 0.0%, 0 |" in text  # MAE to 3 significant digits: durations are ms
    assert "| **all** | 66.7% overall, 0/2 months in band, 1 retrains |" in text
