"""Tiny hand-checkable markets for the panel and scanner tests.

Symbols' closes are given per session on real NYSE sessions (``SESSIONS``, 2019-01-02 on); SPY and
VIX start earlier (``SPY_SESSIONS``) so market conditions have their 31 sessions of history on every
stock session. The default SPY is flat, so a symbol's relative strength is its own return.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from technic_ml.market_data.base import BAR_COLUMNS
from technic_ml.nyse import sessions_between
from technic_ml.panel import Panel
from tests.support.frames import FrameMarketData, spy_frame, vix_frame

SESSIONS = sessions_between(dt.date(2019, 1, 2), dt.date(2019, 12, 31))  # 252 sessions
SPY_SESSIONS = sessions_between(dt.date(2018, 9, 4), dt.date(2019, 12, 31))
PRICE_COLUMNS = ["open", "high", "low", "close", "dollar_volume"]


def bars_frame(
    closes: Mapping[str, Sequence[float]],
    volumes: Mapping[str, Sequence[float] | float] | None = None,
    *,
    first: Mapping[str, int] | None = None,
    dates: pd.DatetimeIndex = SESSIONS,
    drop_nan: bool = True,
) -> pd.DataFrame:
    """Long bars: symbol ``s`` has ``closes[s][i]`` on ``dates[first[s] + i]`` (``first`` defaults to 0).

    A NaN close is a missing session: the row is left out (``drop_nan``) or kept with NaN prices.
    Volumes default to 1,000,000 shares a day; ``dollar_volume = close x volume``.
    """
    rows = []
    for symbol, series in closes.items():
        c = np.asarray(series, dtype=float)
        v = (volumes or {}).get(symbol, 1_000_000.0)
        v = np.broadcast_to(np.asarray(v, dtype=float), c.shape)
        offset = (first or {}).get(symbol, 0)
        d = dates[offset : offset + len(c)]
        assert len(d) == len(c), f"{symbol}: {len(c)} closes do not fit the {len(dates) - offset} sessions"
        frame = pd.DataFrame(
            {
                "date": d,
                "symbol": symbol,
                "open": c,
                "high": c,
                "low": c,
                "close": c,
                "volume": v,
                "dollar_volume": c * v,
            }
        )
        if drop_nan:
            frame = frame[np.isfinite(c)]
        rows.append(frame)
    out = pd.concat(rows, ignore_index=True)
    out["date"] = out["date"].astype("datetime64[us]")
    return out.sort_values(["symbol", "date"], ignore_index=True)[BAR_COLUMNS]


def universe_frame(
    symbols: Sequence[str],
    sectors: Mapping[str, str] | None = None,
    industries: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    sectors, industries = sectors or {}, industries or {}
    return pd.DataFrame(
        {
            "symbol": list(symbols),
            "name": [f"{s} Inc" for s in symbols],
            "sector": [sectors.get(s, "Information Technology") for s in symbols],
            "industry": [industries.get(s, "Software") for s in symbols],
        }
    )


def flat_spy(price: float = 100.0, dates: pd.DatetimeIndex = SPY_SESSIONS) -> pd.DataFrame:
    return spy_frame(dates, [price] * len(dates))


def spy_with_return(window_return: float, last: int, lookback: int) -> pd.DataFrame:
    """SPY flat at 100, then a straight line to ``100 x (1 + window_return)`` over the ``lookback``
    sessions ending on ``SESSIONS[last]``, then flat again."""
    closes = pd.Series(100.0, index=SPY_SESSIONS)
    end = SPY_SESSIONS.get_loc(SESSIONS[last])
    closes.iloc[end - lookback : end + 1] = np.linspace(100.0, 100.0 * (1 + window_return), lookback + 1)
    closes.iloc[end + 1 :] = 100.0 * (1 + window_return)
    return spy_frame(SPY_SESSIONS, closes.to_numpy())


def constant_vix(dates: pd.DatetimeIndex = SPY_SESSIONS) -> pd.DataFrame:
    return vix_frame(dates, [15.0] * len(dates))


@dataclasses.dataclass
class TinyMarket:
    """The four frames of a tiny market, with constructors for a panel and a ``MarketData``."""

    bars: pd.DataFrame
    universe: pd.DataFrame
    spy: pd.DataFrame
    vix: pd.DataFrame | None

    def panel(self, source: str = "tiny") -> Panel:
        return Panel.from_frames(self.bars, self.universe, self.spy, self.vix, source=source)

    def market(self, source: str = "tiny") -> FrameMarketData:
        return FrameMarketData(
            spy=self.spy, vix=self.vix, bars=self.bars, universe=self.universe, source=source
        )

    def perturbed_after(self, cutoff: dt.date) -> TinyMarket:
        """A copy where every row dated after ``cutoff`` has prices x10 and volumes x3."""
        return TinyMarket(*(perturb_after(f, cutoff) for f in (self.bars, self.universe, self.spy, self.vix)))


def tiny_market(
    closes: Mapping[str, Sequence[float]],
    volumes: Mapping[str, Sequence[float] | float] | None = None,
    *,
    first: Mapping[str, int] | None = None,
    sectors: Mapping[str, str] | None = None,
    industries: Mapping[str, str] | None = None,
    spy: pd.DataFrame | None = None,
    drop_nan: bool = True,
) -> TinyMarket:
    return TinyMarket(
        bars=bars_frame(closes, volumes, first=first, drop_nan=drop_nan),
        universe=universe_frame(list(closes), sectors, industries),
        spy=flat_spy() if spy is None else spy,
        vix=constant_vix(),
    )


def perturb_after(frame: pd.DataFrame | None, cutoff: dt.date) -> pd.DataFrame | None:
    """Prices x10 and volumes x3 on every row dated after ``cutoff`` (frames without dates unchanged)."""
    if frame is None or "date" not in frame.columns:
        return frame
    frame = frame.copy()
    later = (frame["date"] > pd.Timestamp(cutoff)).to_numpy()
    for col in PRICE_COLUMNS:
        if col in frame.columns:
            frame[col] = np.where(
                later, frame[col].to_numpy(dtype=float) * 10, frame[col].to_numpy(dtype=float)
            )
    if "volume" in frame.columns:
        frame["volume"] = np.where(later, frame["volume"].to_numpy() * 3, frame["volume"].to_numpy())
    return frame


def rising(n: int, start: float = 100.0, step: float = 1.0) -> np.ndarray:
    """A straight line up: start, start + step, ..."""
    return start + step * np.arange(n, dtype=float)


def falling(n: int, start: float = 200.0, step: float = 1.0) -> np.ndarray:
    return start - step * np.arange(n, dtype=float)
