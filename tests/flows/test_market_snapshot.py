"""market-snapshot: sample, NYSE holiday skip, yfinance outage served from cache (degraded), no cache."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from prefect.runtime import flow_run

import flows
from flows.market_snapshot import market_snapshot
from technic_ml.market_data import YFinanceMarketData
from technic_ml.nyse import sessions_between
from technic_ml.snapshots import SnapshotStore
from tests.flows.conftest import artifacts_of, logs_of, run_id
from tests.market_data.test_yfinance_source import FakeYahoo, yfinance_frame

pytestmark = pytest.mark.usefixtures("prefect_harness")


def test_an_ad_hoc_run_on_a_holiday_still_snapshots(settings, monkeypatch):
    christmas = dt.datetime(2026, 12, 25, 15, 0, tzinfo=dt.UTC)
    monkeypatch.setitem(flow_run.FIELDS, "scheduled_start_time", lambda: christmas)
    assert market_snapshot() is not None  # not auto-scheduled: the user asked for it


def test_snapshot_of_the_sample_is_persisted_and_shown(settings):
    state = market_snapshot(return_state=True)
    assert state.is_completed(), state.message
    result = state.result()
    assert result["market_conditions"]["data_source"] == "sample"
    assert result["as_of"].startswith("2018-12-31T16:00")
    assert SnapshotStore(settings.snapshot_path).latest() is not None
    artifact = artifacts_of(run_id(state))["market-snapshot"]
    assert "Status: complete" in artifact.data and "spy_trend" in artifact.data


def test_a_scheduled_run_on_an_nyse_holiday_completes_without_a_snapshot(settings, monkeypatch):
    # What prefect.runtime reports for a run scheduled at 10:00 New York time on Christmas Day.
    christmas = dt.datetime(2026, 12, 25, 15, 0, tzinfo=dt.UTC)
    monkeypatch.setitem(flow_run.FIELDS, "scheduled_start_time", lambda: christmas)
    monkeypatch.setattr(flows, "_auto_scheduled", lambda: True)
    state = market_snapshot(return_state=True)
    assert state.is_completed()
    assert state.result() is None
    assert not settings.snapshot_path.exists()
    said = [line.message for line in logs_of(run_id(state))]
    assert any("2026-12-25 is not an NYSE trading day" in m and "no snapshot today" in m for m in said), said


def _long_history(level: float, sessions) -> pd.DataFrame:
    k = np.arange(len(sessions), dtype=float)
    close = level * (1 + 0.001 * k)
    return pd.DataFrame(
        {"Open": close, "High": close * 1.01, "Low": close * 0.99, "Close": close, "Volume": 1e6 + k},
        index=pd.DatetimeIndex(sessions, name="Date"),
    )


def test_yfinance_outage_is_served_from_cache_and_flagged_degraded(settings, monkeypatch):
    monkeypatch.setenv("TECHNIC_MARKET_SOURCE", "yfinance")
    sessions = sessions_between(dt.date(2018, 1, 2), dt.date(2019, 12, 2))
    fake = FakeYahoo({"SPY": _long_history(260, sessions), "^VIX": _long_history(14, sessions)})
    cached = YFinanceMarketData(settings.market_cache_path, download=fake)
    cached.spy(dt.date(2019, 12, 2), start=dt.date(2018, 1, 2))
    cached.vix(dt.date(2019, 12, 2), start=dt.date(2018, 1, 2))

    # The network is down: yfinance.download answers an empty frame, as it does without a network.
    calls = []

    def down(tickers, **kwargs):
        calls.append(tickers)
        return yfinance_frame({t: None for t in tickers})

    monkeypatch.setattr("yfinance.download", down)
    state = market_snapshot(as_of="2019-12-04T16:30", return_state=True)
    assert state.is_completed(), state.message
    conditions = state.result()["market_conditions"]
    assert calls, "the refresh was attempted"
    assert conditions["degraded"] is True
    assert any("cache" in r.lower() or "refresh" in r.lower() for r in conditions["degraded_reasons"])
    artifact = artifacts_of(run_id(state))["market-snapshot"]
    assert "DEGRADED" in artifact.data and artifact.description.startswith("DEGRADED")
    # The library's own warning (std logging, logger technic_ml.*) is in the run's logs in the UI.
    library_lines = [line for line in logs_of(run_id(state)) if line.name.startswith("technic_ml")]
    assert any(line.level >= 30 and "cache" in line.message.lower() for line in library_lines), [
        (line.name, line.message[:80]) for line in logs_of(run_id(state))
    ]


def test_yfinance_outage_without_a_cache_fails_with_a_clear_message(settings, monkeypatch):
    import tasks.market

    monkeypatch.setenv("TECHNIC_MARKET_SOURCE", "yfinance")
    monkeypatch.setattr("yfinance.download", lambda tickers, **kw: yfinance_frame({t: None for t in tickers}))
    # Same retries, no waiting between them.
    monkeypatch.setattr(
        tasks.market, "take_snapshot", tasks.market.take_snapshot.with_options(retry_delay_seconds=0)
    )
    state = market_snapshot(as_of="2019-12-04T16:30", return_state=True)
    assert state.is_failed()
    assert "yfinance" in state.message.lower() or "yfinance" in str(state.result(raise_on_failure=False))
