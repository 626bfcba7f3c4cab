"""A tiny in-memory MarketData for tests of code that consumes market data."""

from __future__ import annotations

import pandas as pd

from technic_ml.market_data.base import MarketData


class FrameMarketData(MarketData):
    def __init__(self, *, spy=None, vix=None, bars=None, universe=None, source="frames", warn_on_read=None):
        self._spy, self._vix, self._bars, self._universe = spy, vix, bars, universe
        self.source = source
        # Like the yfinance source, warnings are appended while serving a read.
        self.warnings: list[str] = []
        self._warn_on_read = warn_on_read

    def _load_universe(self):
        return self._universe

    def _load_bars(self, symbols, start, end):
        frame = self._bars
        return frame if symbols is None else frame[frame["symbol"].isin(symbols)]

    def _load_spy(self, start, end):
        if self._warn_on_read:
            self.warnings.append(self._warn_on_read)
        return self._spy

    def _load_vix(self, start, end):
        if self._vix is None:
            from technic_ml.errors import MarketDataError

            raise MarketDataError("vix: feed unavailable")
        return self._vix


def spy_frame(dates, closes) -> pd.DataFrame:
    closes = pd.Series(closes, dtype="float64")
    return pd.DataFrame(
        {
            "date": pd.DatetimeIndex(dates),
            "open": closes,
            "high": closes,
            "low": closes,
            "close": closes,
            "volume": 1_000_000,
        }
    )


def vix_frame(dates, closes) -> pd.DataFrame:
    closes = pd.Series(closes, dtype="float64")
    return pd.DataFrame(
        {"date": pd.DatetimeIndex(dates), "open": closes, "high": closes, "low": closes, "close": closes}
    )
