import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest

from technic_ml.contracts import MarketConditions
from technic_ml.errors import MarketDataError
from technic_ml.market_conditions import (
    MIN_SESSIONS,
    VOL_WINDOW,
    ConditionTable,
    compute_conditions,
    condition_series,
    conditions_at,
    snapshot_market,
)
from technic_ml.nyse import (
    is_market_hours,
    last_completed_session,
    session_lag,
    sessions_between,
    to_ny,
)
from tests.support.frames import FrameMarketData, spy_frame, vix_frame

SESSIONS = sessions_between(dt.date(2019, 1, 2), dt.date(2019, 3, 29))  # 61 sessions
LAST = SESSIONS[39]  # 2019-03-01
AFTER_CLOSE = dt.datetime.combine(LAST.date(), dt.time(17, 0))


def conditions(closes, vix=None, as_of=AFTER_CLOSE, **kw):
    dates = SESSIONS[: len(closes)]
    vix_df = vix_frame(dates, vix if vix is not None else [15.0] * len(closes))
    return compute_conditions(spy_frame(dates, closes), vix_df, as_of, data_source="test", **kw)


def test_steady_rise_is_bullish_with_exact_returns():
    closes = [100 * 1.01**t for t in range(40)]
    c = conditions(closes)
    assert c.spy_trend == "bullish"
    assert c.spy_return_5d == pytest.approx(1.01**5 - 1)
    assert c.spy_return_20d == pytest.approx(1.01**20 - 1)
    assert c.spy_volatility == pytest.approx(0.0, abs=1e-12)
    assert c.spy_momentum == 1.0
    assert c.degraded is False and c.degraded_reasons is None
    assert c.spy_bar_date == LAST.date()


def test_steady_fall_is_bearish():
    c = conditions([100 * 0.99**t for t in range(40)])
    assert c.spy_trend == "bearish"
    assert c.spy_momentum == -1.0


def test_bounce_below_the_slow_average_is_neutral():
    # SMA20 = (15*100 + 4*90 + 101) / 20 = 98.05 < close 101, but SMA5 = 92.2 < SMA20.
    c = conditions([100.0] * 35 + [90.0, 90.0, 90.0, 90.0, 101.0])
    assert c.spy_trend == "neutral"


def test_volatility_is_annualized_std_of_30_log_returns():
    closes = [100.0 if t % 2 == 0 else 101.0 for t in range(40)]
    c = conditions(closes)
    expected = math.log(1.01) * math.sqrt(30 / 29) * math.sqrt(252)
    assert c.spy_volatility == pytest.approx(expected)
    assert -1 <= c.spy_momentum <= 1


def test_time_fields_are_new_york_time():
    c = conditions([100 * 1.01**t for t in range(40)], as_of=dt.datetime(2019, 3, 1, 22, 0, tzinfo=dt.UTC))
    assert (c.time_of_day, c.day_of_week, c.is_market_hours) == (17, 4, False)  # Friday 17:00 New York


def test_carried_forward_vix_is_reported_as_degraded():
    vix = [15.0] * 39 + [np.nan]
    dates = SESSIONS[:40]
    vix_df = vix_frame(dates[:39], vix[:39])  # VIX has no bar on the last SPY session
    c = compute_conditions(
        spy_frame(dates, [100 * 1.01**t for t in range(40)]), vix_df, AFTER_CLOSE, data_source="t"
    )
    assert c.vix_level == 15.0
    assert c.degraded is True
    assert c.vix_bar_date == SESSIONS[38].date()
    assert any("carried forward" in r for r in c.degraded_reasons)


def test_missing_vix_is_null_and_degraded_never_defaulted():
    dates = SESSIONS[:40]
    c = compute_conditions(
        spy_frame(dates, [100 * 1.01**t for t in range(40)]), None, AFTER_CLOSE, data_source="t"
    )
    assert c.vix_level is None
    assert c.degraded is True
    assert any(r.startswith("vix:") for r in c.degraded_reasons)


def test_stale_spy_is_degraded():
    later = dt.datetime.combine(SESSIONS[45].date(), dt.time(17, 0))
    c = conditions([100 * 1.01**t for t in range(40)], as_of=later)
    assert c.degraded is True
    assert any("spy: stale" in r and "6 session(s) behind" in r for r in c.degraded_reasons)


def test_too_little_spy_history_is_an_error():
    with pytest.raises(MarketDataError, match="received 20 daily bars"):
        conditions([100.0] * 20, as_of=dt.datetime.combine(SESSIONS[19].date(), dt.time(17, 0)))


def test_snapshot_is_point_in_time_and_reports_source_warnings():
    closes = np.linspace(100, 130, len(SESSIONS))
    spy = spy_frame(SESSIONS, closes)
    vix = vix_frame(SESSIONS, np.linspace(30, 12, len(SESSIONS)))
    during = dt.datetime.combine(
        LAST.date(), dt.time(12, 0)
    )  # market hours: sees closes up to the day before
    base = snapshot_market(FrameMarketData(spy=spy, vix=vix), during)
    future = SESSIONS >= LAST
    spy2, vix2 = spy.copy(), vix.copy()
    spy2.loc[future, "close"] *= 10
    vix2.loc[future, "close"] *= 10
    moved = snapshot_market(FrameMarketData(spy=spy2, vix=vix2), during)
    assert moved == base
    assert base.spy_bar_date == SESSIONS[38].date()
    assert base.is_market_hours is True

    warned = snapshot_market(
        FrameMarketData(spy=spy, vix=vix, warn_on_read="yfinance: refresh failed, served cache"), during
    )
    assert warned.degraded and "yfinance: refresh failed, served cache" in warned.degraded_reasons


def test_snapshot_survives_a_vix_feed_failure_visibly():
    spy = spy_frame(SESSIONS, np.linspace(100, 130, len(SESSIONS)))
    c = snapshot_market(FrameMarketData(spy=spy, vix=None), AFTER_CLOSE)
    assert c.vix_level is None and c.degraded
    assert any("vix: unavailable" in r for r in c.degraded_reasons)


REAL_CASES = [
    # as_of (New York), checks
    ("2008-10-10 17:00", lambda c: c.spy_trend == "bearish" and c.vix_level > 60),
    ("2008-10-10 12:00", lambda c: c.spy_trend == "bearish" and c.vix_level > 60 and c.is_market_hours),
    ("2013-05-15 17:00", lambda c: c.spy_trend == "bullish" and c.spy_volatility < 0.15),
    ("2017-06-30 17:00", lambda c: c.spy_volatility < 0.10),
    ("2019-07-04 12:00", lambda c: c.is_market_hours is False),
    ("2019-11-29 13:30", lambda c: c.is_market_hours is False and c.spy_bar_date == dt.date(2019, 11, 29)),
]


@pytest.mark.parametrize(("as_of", "check"), REAL_CASES, ids=[c[0] for c in REAL_CASES])
def test_acceptance_dates_on_real_spy_and_vix(shared_market_dir, as_of, check):
    spy = pd.read_parquet(shared_market_dir / "spy.parquet")
    vix = pd.read_parquet(shared_market_dir / "vix.parquet")
    c = snapshot_market(FrameMarketData(spy=spy, vix=vix, source=f"parquet:{shared_market_dir}"), as_of)
    assert check(c), c
    assert c.degraded is False


def test_snapshot_long_after_the_data_ends_is_stale_not_an_error():
    spy = spy_frame(SESSIONS, np.linspace(100, 130, len(SESSIONS)))
    vix = vix_frame(SESSIONS, np.linspace(30, 12, len(SESSIONS)))
    c = snapshot_market(FrameMarketData(spy=spy, vix=vix), dt.datetime(2020, 6, 1, 12, 0))
    assert c.spy_bar_date == SESSIONS[-1].date()
    assert c.degraded is True
    assert any(r.startswith("spy: stale, last bar 2019-03-29") for r in c.degraded_reasons)


def test_missing_spy_sessions_inside_the_window_are_reported():
    keep = [i for i in range(40) if i not in (30, 31, 32)]
    dates = SESSIONS[:40][keep]
    closes = [100 * 1.01**t for t in keep]
    c = compute_conditions(
        spy_frame(dates, closes), vix_frame(dates, [15.0] * len(keep)), AFTER_CLOSE, data_source="t"
    )
    assert c.degraded is True
    assert any("3 session(s) missing" in r for r in c.degraded_reasons)


def test_future_snapshots_are_refused():
    spy = spy_frame(SESSIONS, np.linspace(100, 130, len(SESSIONS)))
    with pytest.raises(ValueError, match="not in the future"):
        snapshot_market(FrameMarketData(spy=spy, vix=None), dt.datetime(2100, 1, 1))


# -- the array calendar and table behind a backfill's thousands of lookups -------------------------


def _row_lookup(series: pd.DataFrame, as_of, *, data_source: str) -> MarketConditions:
    """The lookup as it was written before the ConditionTable: technic_ml.nyse calendar calls and a
    pandas row. An oracle for the array version, which must give the same snapshot, reasons included."""
    when = to_ny(as_of)
    reasons = []
    expected = last_completed_session(when)
    position = int(series.index.searchsorted(pd.Timestamp(expected), side="right")) - 1
    if position < 0:
        raise MarketDataError(f"spy: no daily bar on or before {expected} ({data_source})")
    row = series.iloc[position]
    spy_date = series.index[position].date()
    if position + 1 < MIN_SESSIONS:
        raise MarketDataError(f"spy: received {position + 1} daily bars up to {spy_date}")
    first = max(0, position - VOL_WINDOW)
    window_start = series.index[first].date()
    missing = len(sessions_between(window_start, spy_date)) - (position - first + 1)
    if missing > 0:
        reasons.append(f"spy: {missing} session(s) missing between {window_start} and {spy_date}")
    lag = session_lag(spy_date, expected)
    if lag > 0:
        reasons.append(f"spy: stale, last bar {spy_date} is {lag} session(s) behind {expected}")
    needed = (row["spy_volatility"], row["spy_return_20d"], row["spy_momentum"], row["spy_trend"])
    if any(pd.isna(value) for value in needed):
        raise MarketDataError(f"spy: the last {MIN_SESSIONS} bars up to {spy_date} contain gaps")
    if pd.isna(row["vix_level"]):
        vix_level, vix_date = None, None
        reasons.append(f"vix: no VIX close on or before {spy_date}")
    else:
        vix_level, vix_date = float(row["vix_level"]), pd.Timestamp(row["vix_bar_date"]).date()
        vix_lag = session_lag(vix_date, spy_date)
        if vix_lag > 0:
            reasons.append(f"vix: carried forward from {vix_date}, {vix_lag} session(s) before {spy_date}")
    return MarketConditions(
        spy_trend=row["spy_trend"],
        spy_volatility=float(row["spy_volatility"]),
        spy_momentum=float(row["spy_momentum"]),
        spy_return_5d=float(row["spy_return_5d"]),
        spy_return_20d=float(row["spy_return_20d"]),
        vix_level=vix_level,
        time_of_day=when.hour,
        day_of_week=when.weekday(),
        is_market_hours=is_market_hours(when),
        as_of=when,
        data_source=data_source,
        degraded=bool(reasons),
        degraded_reasons=reasons or None,
        spy_bar_date=spy_date,
        vix_bar_date=vix_date,
    )


@pytest.mark.parametrize("vix_kind", ["gappy", "none"])
def test_condition_table_gives_the_row_lookups_snapshot(vix_kind):
    # Half a year of SPY with three missing sessions and a NaN close, VIX missing on some days.
    dates = sessions_between(dt.date(2019, 1, 2), dt.date(2019, 6, 28))
    rng = np.random.default_rng(2)
    closes = 250 * np.exp(np.cumsum(rng.normal(0.0004, 0.01, len(dates))))
    keep = np.ones(len(dates), dtype=bool)
    keep[[60, 61, 95]] = False
    closes[110] = np.nan
    spy = spy_frame(dates[keep], closes[keep])
    vix = None
    if vix_kind == "gappy":
        vix_keep = keep.copy()
        vix_keep[[40, 70, 71, 72]] = False
        vix = vix_frame(dates[vix_keep], 15 + rng.random(vix_keep.sum()) * 10)
    series = condition_series(spy, vix)
    table = ConditionTable(series)
    moments = [
        dt.datetime.combine(d.date(), dt.time(hour, minute))
        for d in sessions_between(dt.date(2019, 2, 10), dt.date(2019, 7, 20))
        for hour, minute in ((9, 0), (12, 0), (16, 0), (17, 30))
    ] + [dt.datetime(2019, 7, 4, 12, 0), dt.datetime(2019, 9, 2, 12, 0)]
    outcomes = {"ok": 0, "degraded": 0, "error": 0}
    for when in moments:
        try:
            expected = _row_lookup(series, when, data_source="t")
        except MarketDataError:
            with pytest.raises(MarketDataError):
                table.at(when, data_source="t")
            outcomes["error"] += 1
            continue
        assert table.at(when, data_source="t") == expected, when
        assert conditions_at(series, when, data_source="t") == expected, when
        outcomes["degraded" if expected.degraded else "ok"] += 1
    # Not vacuous: errors (the NaN close), clean, and degraded snapshots all occur.
    assert outcomes["error"] > 0 and outcomes["degraded"] > 0
    assert vix_kind == "none" or outcomes["ok"] > 0, outcomes
