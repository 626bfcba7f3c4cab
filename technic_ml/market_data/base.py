"""The one market-data interface every consumer uses.

A ``MarketData`` answers three questions, always *as of* a moment: the daily OHLCV bars of a set of
symbols, the symbol universe (with sector and industry), and the SPY and VIX bars. Implementations
(embedded sample, a parquet directory, yfinance) only load raw rows; this base class owns the
point-in-time rule so no implementation can leak the future: a daily bar for session *d* is
returned only when *d*'s NYSE close is at or before ``as_of`` (see ``technic_ml.nyse``).

Frames are long-format pandas DataFrames with naive ``datetime64`` session dates:

* bars:     date, symbol, open, high, low, close, volume, dollar_volume  (sorted by symbol, date)
* universe: symbol, name, sector, industry
* spy:      date, open, high, low, close, volume
* vix:      date, open, high, low, close
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from collections.abc import Sequence

import pandas as pd

from technic_ml.errors import MarketDataError
from technic_ml.nyse import last_completed_session

BAR_COLUMNS = ["date", "symbol", "open", "high", "low", "close", "volume", "dollar_volume"]
UNIVERSE_COLUMNS = ["symbol", "name", "sector", "industry"]
SPY_COLUMNS = ["date", "open", "high", "low", "close", "volume"]
VIX_COLUMNS = ["date", "open", "high", "low", "close"]

AsOf = dt.datetime | dt.date | str | pd.Timestamp


class MarketData(ABC):
    """Point-in-time market data. Subclasses implement the ``_load_*`` methods."""

    #: Label recorded in snapshots and scan provenance, e.g. ``"sample"``, ``"parquet:/data/market"``.
    source: str = "unknown"
    #: True for the embedded, partly synthetic sample; outputs built on it are labelled as such.
    is_sample: bool = False

    # -- public, point-in-time API -------------------------------------------------------------
    def universe(self) -> pd.DataFrame:
        return self._load_universe()[UNIVERSE_COLUMNS].reset_index(drop=True)

    def bars(
        self, symbols: Sequence[str] | None, as_of: AsOf, *, start: dt.date | None = None
    ) -> pd.DataFrame:
        """Bars of ``symbols`` (None = the whole universe) for sessions completed by ``as_of``."""
        end = last_completed_session(as_of)
        if symbols is not None:
            symbols = list(dict.fromkeys(symbols))
            if not symbols:
                return pd.DataFrame({c: pd.Series(dtype="float64") for c in BAR_COLUMNS})
        return self._clip(
            self._load_bars(symbols, start, end), start, end, BAR_COLUMNS, order=["symbol", "date"]
        )

    def spy(self, as_of: AsOf, *, start: dt.date | None = None) -> pd.DataFrame:
        end = last_completed_session(as_of)
        return self._clip(self._load_spy(start, end), start, end, SPY_COLUMNS)

    def vix(self, as_of: AsOf, *, start: dt.date | None = None) -> pd.DataFrame:
        end = last_completed_session(as_of)
        return self._clip(self._load_vix(start, end), start, end, VIX_COLUMNS)

    # -- what implementations provide -----------------------------------------------------------
    @abstractmethod
    def _load_universe(self) -> pd.DataFrame: ...

    @abstractmethod
    def _load_bars(self, symbols: list[str] | None, start: dt.date | None, end: dt.date) -> pd.DataFrame:
        """Rows for ``symbols`` with start <= date <= end (may return more; the base class clips)."""

    @abstractmethod
    def _load_spy(self, start: dt.date | None, end: dt.date) -> pd.DataFrame: ...

    @abstractmethod
    def _load_vix(self, start: dt.date | None, end: dt.date) -> pd.DataFrame: ...

    # -- helpers --------------------------------------------------------------------------------
    def _clip(
        self,
        frame: pd.DataFrame,
        start: dt.date | None,
        end: dt.date,
        columns: list[str],
        order: list[str] | None = None,
    ) -> pd.DataFrame:
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise MarketDataError(f"{self.source}: columns {missing} missing; expected columns {columns}")
        mask = frame["date"] <= pd.Timestamp(end)
        if start is not None:
            mask &= frame["date"] >= pd.Timestamp(start)
        frame = frame.loc[mask, columns]
        order = order or ["date"]
        # Sources usually return sorted rows already; sorting a 2M-row panel again costs ~0.5 s.
        if not _is_sorted(frame, order):
            frame = frame.sort_values(order, kind="stable")
        return frame.reset_index(drop=True)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(source={self.source!r})"


def _is_sorted(frame: pd.DataFrame, order: list[str]) -> bool:
    if len(frame) < 2:
        return True
    if len(order) == 1:
        return bool(frame[order[0]].is_monotonic_increasing)
    first = frame[order[0]].to_numpy()
    second = frame[order[1]].to_numpy()
    ahead = first[1:] > first[:-1]
    tie = first[1:] == first[:-1]
    return bool((ahead | (tie & (second[1:] >= second[:-1]))).all())
