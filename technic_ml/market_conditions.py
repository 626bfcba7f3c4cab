"""Market conditions: what the market looked like at a moment, from SPY and VIX daily bars.

The predictors use these conditions as features, and every scan record stores them, so they
must be point-in-time and honest. The original prototype read a column that did not exist,
swallowed the error and returned "neutral, volatility 0.15, VIX 20" forever. Here a missing,
stale or fallen-back input never becomes a default: the snapshot carries ``degraded=True`` and a
reason per problem, and when SPY itself is unusable there is no snapshot at all
(``MarketDataError``).

Definitions (all from bars completed by ``as_of``; see ``technic_ml.nyse``):

* ``spy_trend``: *bullish* when the close is above its 20-session moving average and the
  5-session average is above the 20-session one; *bearish* when both are below; else *neutral*.
* ``spy_volatility``: standard deviation of the last 30 daily log returns, annualized by sqrt(252).
* ``spy_return_5d`` / ``spy_return_20d``: simple returns of the close over 5 / 20 sessions.
* ``spy_momentum``: tanh of the 20-session return divided by its own expected size
  (daily volatility x sqrt(20)): a trend-strength score in [-1, 1] that reads the same in calm and
  in turbulent markets (+0.76 is a one-sigma rally).
* ``vix_level``: VIX close on SPY's last session. VIX trades on a few days SPY does not and the
  reverse, so VIX is aligned on the stock calendar and carried forward; a carried value is
  reported as degraded with its age.
* ``time_of_day`` (hour), ``day_of_week`` (Monday=0) in New York time, ``is_market_hours`` from
  the real NYSE calendar (holidays and early closes).

A backfill looks conditions up thousands of times in one table: :class:`ConditionTable` holds the
table as arrays and :class:`SessionClock` the NYSE calendar as arrays, so a lookup inside a scan
costs ~0.1 ms instead of the ~0.8 ms its exchange_calendars calls and pandas row access took
(``bench/bench_scanner.py`` prints the breakdown).
"""

from __future__ import annotations

import datetime as dt
import logging

import numpy as np
import pandas as pd

from technic_ml.contracts import MarketConditions
from technic_ml.errors import MarketDataError
from technic_ml.market_data.base import AsOf, MarketData
from technic_ml.nyse import NY, calendar, last_completed_session, now_ny, session_clock, to_ny

log = logging.getLogger(__name__)

TREND_FAST, TREND_SLOW = 5, 20
VOL_WINDOW = 30
MIN_SESSIONS = VOL_WINDOW + 1
# Calendar days of bars to read so that MIN_SESSIONS sessions are available even across holidays.
_READ_DAYS = 70


def condition_series(spy: pd.DataFrame, vix: pd.DataFrame | None) -> pd.DataFrame:
    """Conditions at each SPY session close, vectorized (for snapshots and backfills alike).

    Returns one row per SPY date with spy_trend, spy_volatility, spy_momentum, spy_return_5d,
    spy_return_20d, vix_level, vix_bar_date; rows without enough history hold NaN.
    """
    spy = spy.sort_values("date").drop_duplicates("date", keep="last")
    close = pd.Series(spy["close"].to_numpy(dtype="float64"), index=pd.DatetimeIndex(spy["date"]))
    close = close.where(close > 0)
    sma_fast = close.rolling(TREND_FAST).mean()
    sma_slow = close.rolling(TREND_SLOW).mean()
    bullish = (close > sma_slow) & (sma_fast > sma_slow)
    bearish = (close < sma_slow) & (sma_fast < sma_slow)
    trend = np.where(bullish, "bullish", np.where(bearish, "bearish", "neutral"))
    trend = pd.Series(trend, index=close.index).where(sma_slow.notna())

    log_ret = np.log(close).diff()
    daily_vol = log_ret.rolling(VOL_WINDOW).std()
    ret5 = close.pct_change(5, fill_method=None)
    ret20 = close.pct_change(20, fill_method=None)
    scale = daily_vol * np.sqrt(20)
    # A perfectly steady series has zero volatility: its momentum is the sign of its return.
    momentum = np.tanh(ret20 / scale).mask((scale == 0) & (ret20 == 0), 0.0)

    out = pd.DataFrame(
        {
            "spy_trend": trend,
            "spy_volatility": daily_vol * np.sqrt(252),
            "spy_momentum": momentum,
            "spy_return_5d": ret5,
            "spy_return_20d": ret20,
        },
        index=close.index,
    )
    if vix is not None and len(vix):
        v = vix.sort_values("date").drop_duplicates("date", keep="last")
        v = v[v["close"] > 0]
        vix_close = pd.Series(v["close"].to_numpy(dtype="float64"), index=pd.DatetimeIndex(v["date"]))
        vix_date = pd.Series(vix_close.index, index=vix_close.index)
        # Align on the stock calendar, carrying the last VIX print forward (and remembering its date).
        union = close.index.union(vix_close.index)
        out["vix_level"] = vix_close.reindex(union).ffill().reindex(close.index)
        out["vix_bar_date"] = vix_date.reindex(union).ffill().reindex(close.index)
    else:
        out["vix_level"] = np.nan
        out["vix_bar_date"] = pd.NaT
    out.index.name = "date"
    return out


def compute_conditions(
    spy: pd.DataFrame,
    vix: pd.DataFrame | None,
    as_of: AsOf,
    *,
    data_source: str,
    problems: list[str] | None = None,
) -> MarketConditions:
    """Conditions as of ``as_of`` from bars already clipped to ``as_of``.

    ``problems`` are upstream issues (a failed refresh, a missing VIX feed) to report as degraded.
    Raises MarketDataError when SPY has too little history to compute anything honest.
    """
    when = to_ny(as_of)
    reasons = list(problems or [])
    if spy is None or len(spy) < MIN_SESSIONS:
        got = 0 if spy is None else len(spy)
        raise MarketDataError(
            f"spy: received {got} daily bars up to {when.isoformat()}; expected at least {MIN_SESSIONS} "
            f"to compute trend and {VOL_WINDOW}-session volatility ({data_source})"
        )
    return conditions_at(condition_series(spy, vix), when, data_source=data_source, problems=reasons)


def conditions_at(
    series: pd.DataFrame,
    as_of: AsOf,
    *,
    data_source: str,
    problems: list[str] | None = None,
) -> MarketConditions:
    """Conditions as of ``as_of`` looked up in a :func:`condition_series` table.

    The table may extend past ``as_of`` (a backfill computes it once for its whole range): only
    the row of the last session completed by ``as_of`` is read, and every column of that row was
    computed from that session and earlier ones. For many lookups in one table, build a
    :class:`ConditionTable` once and call :meth:`ConditionTable.at`.
    """
    return ConditionTable(series).at(as_of, data_source=data_source, problems=problems)


class ConditionTable:
    """A :func:`condition_series` table as arrays: a point-in-time lookup without pandas row access.

    ``series.iloc[position]`` of the mixed-dtype table costs more than the rest of a lookup. Here
    the columns are numpy views (no copy, so building a table for one lookup is cheap too) and a
    lookup reads one element of each.
    """

    def __init__(self, series: pd.DataFrame):
        self._dates = series.index.to_numpy()
        self._trend = series["spy_trend"].array
        self._volatility = series["spy_volatility"].to_numpy(dtype=np.float64)
        self._momentum = series["spy_momentum"].to_numpy(dtype=np.float64)
        self._return_5d = series["spy_return_5d"].to_numpy(dtype=np.float64)
        self._return_20d = series["spy_return_20d"].to_numpy(dtype=np.float64)
        self._vix = series["vix_level"].to_numpy(dtype=np.float64)
        self._vix_dates = series["vix_bar_date"].to_numpy()

    def _day(self, position: int) -> np.datetime64:
        return self._dates[position].astype("datetime64[D]")

    def at(
        self,
        as_of: AsOf,
        *,
        data_source: str,
        problems: list[str] | None = None,
    ) -> MarketConditions:
        """Conditions as of ``as_of`` (see :func:`conditions_at`)."""
        when = to_ny(as_of)
        clock = session_clock()
        reasons = list(problems or [])
        expected_day = clock.last_completed(when)
        position = int(np.searchsorted(self._dates, expected_day, side="right")) - 1
        if position < 0:
            raise MarketDataError(f"spy: no daily bar on or before {expected_day.item()} ({data_source})")
        spy_day = self._day(position)
        spy_date = spy_day.item()
        if position + 1 < MIN_SESSIONS:
            raise MarketDataError(
                f"spy: received {position + 1} daily bars up to {spy_date}; expected at least {MIN_SESSIONS} "
                f"to compute trend and {VOL_WINDOW}-session volatility ({data_source})"
            )
        first = max(0, position - VOL_WINDOW)
        window_start = self._day(first)
        missing = clock.count(window_start, spy_day) - (position - first + 1)
        if missing > 0:
            # Returns and volatility over a window with holes are computed across the gaps: say so.
            reasons.append(f"spy: {missing} session(s) missing between {window_start.item()} and {spy_date}")
        lag = clock.lag(spy_day, expected_day)
        if lag > 0:
            reasons.append(
                f"spy: stale, last bar {spy_date} is {lag} session(s) behind {expected_day.item()}"
            )
        trend = self._trend[position]
        needed = (
            self._volatility[position],
            self._return_20d[position],
            self._momentum[position],
            trend,
        )
        if any(pd.isna(value) for value in needed):
            raise MarketDataError(
                f"spy: the last {MIN_SESSIONS} bars up to {spy_date} contain gaps or non-positive closes; "
                f"expected {MIN_SESSIONS} consecutive valid closes ({data_source})"
            )

        vix_level: float | None
        vix_date: dt.date | None
        if np.isnan(self._vix[position]):
            vix_level, vix_date = None, None
            reasons.append(f"vix: no VIX close on or before {spy_date}")
        else:
            vix_level = float(self._vix[position])
            vix_day = self._vix_dates[position].astype("datetime64[D]")
            vix_date = vix_day.item()
            vix_lag = clock.lag(vix_day, spy_day)
            if vix_lag > 0:
                reasons.append(
                    f"vix: carried forward from {vix_date}, {vix_lag} session(s) before {spy_date}"
                )

        return MarketConditions(
            spy_trend=trend,
            spy_volatility=float(self._volatility[position]),
            spy_momentum=float(self._momentum[position]),
            spy_return_5d=float(self._return_5d[position]),
            spy_return_20d=float(self._return_20d[position]),
            vix_level=vix_level,
            time_of_day=when.hour,
            day_of_week=when.weekday(),
            is_market_hours=clock.is_open(when),
            as_of=when,
            data_source=data_source,
            degraded=bool(reasons),
            degraded_reasons=reasons or None,
            spy_bar_date=spy_date,
            vix_bar_date=vix_date,
        )


def snapshot_market(market: MarketData, as_of: AsOf | None = None) -> MarketConditions:
    """Snapshot market conditions as of ``as_of`` (default: now) from a market-data source.

    A VIX failure degrades the snapshot; a SPY failure raises (there is nothing honest to report).
    Warnings the source collected while serving (e.g. a failed refresh served from cache) are
    reported as degradation reasons.
    """
    now = now_ny()
    when = to_ny(as_of) if as_of is not None else now
    if when > now + dt.timedelta(minutes=1):
        raise ValueError(f"as_of: received {when.isoformat()}; expected a moment that is not in the future")
    start = last_completed_session(when) - dt.timedelta(days=_READ_DAYS)
    warnings_before = len(getattr(market, "warnings", []))
    problems: list[str] = []
    spy = market.spy(when, start=start)
    if len(spy) < MIN_SESSIONS:
        # The data ends well before as_of (a historical dataset, a feed that stopped): look further
        # back so the snapshot is computed on the last bars there are and reported as stale.
        start = None
        spy = market.spy(when)
    try:
        vix = market.vix(when, start=start)
    except MarketDataError as exc:
        vix = None
        problems.append(f"vix: unavailable ({exc})")
    problems.extend(str(w) for w in getattr(market, "warnings", [])[warnings_before:])
    if market.is_sample:
        log.info("market snapshot built on the embedded SAMPLE data (source=%s)", market.source)
    conditions = compute_conditions(spy, vix, when, data_source=market.source, problems=problems)
    if conditions.degraded:
        log.warning(
            "market snapshot as of %s is DEGRADED: %s",
            when.isoformat(),
            "; ".join(conditions.degraded_reasons),
        )
    return conditions


def default_as_of(market: MarketData) -> tuple[dt.datetime, str]:
    """Now for a live source; the close of the last session in the data for a historical dataset.

    A historical dataset (the sample ends in 2018, the shared real data in 2019) snapshotted "now"
    would be years stale; the job says which moment it used and why.
    """
    if market.source == "yfinance":
        return now_ny(), "now (live source)"
    last = market.spy(now_ny())["date"].max()
    if pd.isna(last):
        return now_ny(), "now (the source returned no SPY bars)"
    close = calendar().session_close(pd.Timestamp(last)).tz_convert(NY).to_pydatetime()
    return close, f"close of the last session in the data ({last.date()})"
