"""A dense symbols x sessions panel of daily bars: the scanner's in-memory view of the market.

Long-format bars (``technic_ml.market_data``) are pivoted once into float32 matrices indexed
``[session, symbol]`` so that a scan is a handful of vectorized slices instead of a groupby: the
backfill runs thousands of scans against one panel. Memory is ``~17 bytes x sessions x symbols``
(close and volume as float32, the 20-session average dollar volume as float64, plus a has-bar
flag): 501 symbols x 5,000 sessions is about 43 MB, 5,000 symbols about 430 MB, and a scan
never copies more than its own window (``lookback_days`` x ``max_symbols``).

Point-in-time: the panel may hold sessions after a scan's ``as_of`` (a backfill loads its whole
range once); a scan only reads rows up to :meth:`Panel.end_index`, the last session completed by
``as_of``. Everything precomputed here is backward-looking (forward-filled closes, trailing
averages), so row *t* depends only on sessions up to *t*.

Real-data quirks: a session a symbol has no bar for (not listed yet, a missing session) has
``has_bar`` False; its close is carried forward from the symbol's previous bar (never backward,
so nothing exists before listing) and its volume is zero.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from technic_ml.errors import MarketDataError
from technic_ml.market_conditions import condition_series
from technic_ml.market_data.base import AsOf, MarketData
from technic_ml.nyse import last_completed_session

ADV_WINDOW = 20


@dataclass(frozen=True)
class Panel:
    dates: pd.DatetimeIndex  # sessions, ascending
    symbols: np.ndarray  # str, sorted
    sectors: np.ndarray  # str ("" when unknown)
    industries: np.ndarray
    close: np.ndarray  # float32 [T, N], carried forward after listing, NaN before
    volume: np.ndarray  # float32 [T, N], 0 without a bar
    has_bar: np.ndarray  # bool [T, N]
    adv20: np.ndarray  # float64 [T, N], mean dollar volume of the last 20 sessions (NaN before 20 rows)
    spy_close: np.ndarray  # float64 [T], carried forward
    conditions: pd.DataFrame  # condition_series over the panel's SPY/VIX, indexed by SPY date
    source: str
    is_sample: bool
    #: First date requested when the panel was loaded from a later start than the data's; None when
    #: it holds the whole history. Scans refuse windows that would reach before it.
    loaded_from: dt.date | None = None

    @property
    def n_symbols(self) -> int:
        return len(self.symbols)

    def end_index(self, as_of: AsOf) -> int:
        """Row of the last session completed by ``as_of`` (-1 when the panel has none)."""
        last = pd.Timestamp(last_completed_session(as_of))
        return int(self.dates.searchsorted(last, side="right")) - 1

    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.close, self.volume, self.has_bar, self.adv20))

    @classmethod
    def from_market(
        cls, market: MarketData, as_of: AsOf, *, start: dt.date | None = None, symbols=None
    ) -> Panel:
        """Load every bar completed by ``as_of`` (from ``start``) into a panel."""
        universe = market.universe()
        if symbols is not None:
            universe = universe[universe["symbol"].isin(list(symbols))]
        # Ten extra days tell whether the source holds bars before ``start`` (then windows reaching
        # before it would be silently short, and scans must refuse them) or simply starts later.
        probe = None if start is None else start - dt.timedelta(days=10)
        bars = market.bars(list(universe["symbol"]), as_of, start=probe)
        truncated = start is not None and bool((bars["date"] < pd.Timestamp(start)).any())
        if truncated:
            bars = bars[bars["date"] >= pd.Timestamp(start)]
        if bars.empty:
            raise MarketDataError(f"{market.source}: no bars up to {as_of} to build a scan panel")
        spy = market.spy(as_of, start=None if start is None else start - dt.timedelta(days=120))
        try:
            vix = market.vix(as_of, start=None if start is None else start - dt.timedelta(days=120))
        except MarketDataError:
            vix = None  # conditions_at reports the missing VIX as degraded on every scan
        panel = cls.from_frames(bars, universe, spy, vix, source=market.source, is_sample=market.is_sample)
        return dataclasses.replace(panel, loaded_from=start) if truncated else panel

    @classmethod
    def from_frames(
        cls,
        bars: pd.DataFrame,
        universe: pd.DataFrame,
        spy: pd.DataFrame,
        vix: pd.DataFrame | None,
        *,
        source: str,
        is_sample: bool = False,
    ) -> Panel:
        universe = universe.drop_duplicates("symbol").sort_values("symbol", ignore_index=True)
        symbols = universe["symbol"].astype(str).to_numpy()
        dates = pd.DatetimeIndex(np.unique(bars["date"].to_numpy()))
        t = dates.searchsorted(bars["date"].to_numpy())
        n = np.searchsorted(symbols, bars["symbol"].astype(str).to_numpy())
        n = np.clip(n, 0, len(symbols) - 1)
        known = symbols[n] == bars["symbol"].astype(str).to_numpy()
        t, n = t[known], n[known]
        shape = (len(dates), len(symbols))

        close = np.full(shape, np.nan, dtype=np.float32)
        volume = np.zeros(shape, dtype=np.float32)
        dollar = np.zeros(shape, dtype=np.float32)
        has_bar = np.zeros(shape, dtype=bool)
        c = bars["close"].to_numpy(dtype=np.float64)[known]
        valid = np.isfinite(c) & (c > 0)
        close[t[valid], n[valid]] = c[valid]
        has_bar[t[valid], n[valid]] = True
        volume[t[valid], n[valid]] = np.nan_to_num(bars["volume"].to_numpy(dtype=np.float64)[known][valid])
        dollar[t[valid], n[valid]] = np.nan_to_num(
            bars["dollar_volume"].to_numpy(dtype=np.float64)[known][valid]
        )

        close = pd.DataFrame(close).ffill().to_numpy(dtype=np.float32)
        # Trailing 20-session mean dollar volume; sessions without a bar count as zero traded.
        csum = np.cumsum(dollar, axis=0, dtype=np.float64)
        adv = np.full(shape, np.nan, dtype=np.float64)
        if len(dates) >= ADV_WINDOW:
            window = csum[ADV_WINDOW - 1 :].copy()
            window[1:] -= csum[:-ADV_WINDOW]
            adv[ADV_WINDOW - 1 :] = window / ADV_WINDOW

        spy_sorted = spy.sort_values("date").drop_duplicates("date", keep="last")
        spy_series = pd.Series(
            spy_sorted["close"].to_numpy(dtype=np.float64), index=pd.DatetimeIndex(spy_sorted["date"])
        )
        spy_close = spy_series.reindex(spy_series.index.union(dates)).ffill().reindex(dates).to_numpy()

        return cls(
            dates=dates,
            symbols=symbols,
            sectors=universe["sector"].fillna("").astype(str).to_numpy(),
            industries=universe["industry"].fillna("").astype(str).to_numpy(),
            close=close,
            volume=volume,
            has_bar=has_bar,
            adv20=adv,
            spy_close=spy_close,
            conditions=condition_series(spy, vix),
            source=source,
            is_sample=is_sample,
        )
