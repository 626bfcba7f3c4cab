"""The reference scanner: run a ScanConfig against market data as of any moment.

technic-ml's predictors learn how many results a scan returns and how long it takes; this scanner
produces real examples of both (``technic_ml.backfill`` runs thousands of them over history).
Every scan goes through five stages over a :class:`~technic_ml.panel.Panel`, each timed:

1. **universe**: symbols in the chosen sectors and industries (null or empty = all) that have a
   bar on the last completed session, close >= $1 and a 20-session average dollar volume >=
   ``min_dollar_vol``; then the ``max_symbols`` most liquid of them (ties by symbol).
2. **indicators** over the last ``lookback_days`` sessions (L). A symbol needs at least
   ``MIN_BARS`` (21) real bars in the window; with fewer (just listed, or a lookback longer than its
   history) it is dropped here and not counted as scanned. A shorter history than L is used as is.
3. **tech_rating** in [0, 100], an *absolute* composite (not a cross-sectional rank, so in a bull
   market many symbols rate high and in a crash few do)::

       rating = 100 x (0.25 trend + 0.20 momentum + 0.20 relative_strength
                       + 0.20 risk_adjusted_return + 0.15 volume_confirmation)

   each component in [0, 1]:

   * trend = mean of [close > SMA(s)], [close > SMA(m)], [SMA(s) > SMA(m)], s = min(20, L), m = min(50, L);
   * momentum = clip((RSI14 - 30) / 40, 0, 1), RSI14 from simple averages of the last 14 changes
     (no change at all: RSI 50);
   * relative_strength = clip(0.5 + ((1 + r) / (1 + r_spy) - 1) / 0.4, 0, 1), r and r_spy the returns
     over the symbol's window (+-20 % against SPY spans the range);
   * risk_adjusted_return = clip((S + 1) / 3, 0, 1), S = annualized mean / std of daily log returns
     in the window (a Sharpe ratio of -1 scores 0, of 2 scores 1; zero volatility: S = 0);
   * volume_confirmation = clip((u - 0.3) / 0.4, 0, 1), u = share of the last 20 sessions' volume
     traded on up days (no volume at all: 0).
4. **results**: rating >= ``min_tech_rating``.
5. **signals**: results with a fresh trigger on the last bar: a *breakout* (the last close is
   above every earlier close in the window) or a *golden cross* (SMA(s) crossed above SMA(m) on
   the last bar: above now, at or below one session earlier).

Monotone by construction: raising ``min_tech_rating`` or ``min_dollar_vol`` never adds results
(the dollar-volume cut removes the least liquid, which are ranked last anyway); raising
``max_symbols`` never removes any. Narrowing sectors or industries never adds results while the
``max_symbols`` cap does not bind; when it binds, a narrower filter lets less liquid symbols of the
chosen sectors into the cap, as a user scanning one sector expects.

Point-in-time: only panel rows up to the last session completed by ``as_of`` are read (a scan
during market hours on day *d* sees closes up to *d-1*). Durations are measured wall time.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from dataclasses import dataclass

import numpy as np
import pandas as pd

from technic_ml.contracts import Provenance, ScanConfig, ScanPerformance, ScanRecord, ScanResults
from technic_ml.errors import MarketDataError
from technic_ml.market_conditions import conditions_at
from technic_ml.market_data.base import AsOf, MarketData
from technic_ml.nyse import to_ny
from technic_ml.panel import ADV_WINDOW, Panel

SCANNER_VERSION = "1.0.0"
MIN_BARS = 21
ZERO_VOL = 1e-6  # daily log-return std below this is zero volatility (float32 rounding noise)
WEIGHTS = {
    "trend": 0.25,
    "momentum": 0.20,
    "relative_strength": 0.20,
    "risk_adjusted_return": 0.20,
    "volume_confirmation": 0.15,
}
RATING_COLUMNS = (
    "symbol",
    "sector",
    "industry",
    "tech_rating",
    "close",
    "sma_short",
    "sma_long",
    "rsi14",
    "return_lookback",
    "relative_return_spy",
    "sharpe",
    "up_volume_share",
    "trend",
    "momentum",
    "relative_strength",
    "risk_adjusted_return",
    "volume_confirmation",
    "breakout",
    "golden_cross",
    "bars",
)
STAGES = ("universe", "indicators", "rating", "results", "signals", "conditions")


@dataclass
class ScanResult:
    """What a scan returns: the passing symbols (with the evidence behind each rating) and the record."""

    results: (
        pd.DataFrame
    )  # symbol, sector, industry, tech_rating, signal, breakout, golden_cross, components...
    record: ScanRecord
    bar_date: dt.date


def select_universe(panel: Panel, config: ScanConfig, end: int) -> np.ndarray:
    """Column indices of the scanned universe, most liquid first."""
    mask = panel.has_bar[end] & (panel.close[end] >= 1.0)
    adv = panel.adv20[end]  # float64: a float32 average would round the min_dollar_vol comparison
    with np.errstate(invalid="ignore"):
        mask &= np.isfinite(adv) & (adv >= config.min_dollar_vol)
    if config.sectors:
        mask &= np.isin(panel.sectors, config.sectors)
    if config.industries:
        mask &= np.isin(panel.industries, config.industries)
    idx = np.flatnonzero(mask)
    order = np.lexsort((idx, -adv[idx].astype(np.float64)))
    return idx[order[: config.max_symbols]]


def compute_ratings(panel: Panel, idx: np.ndarray, end: int, lookback: int) -> pd.DataFrame:
    """Indicators, components and tech_rating for columns ``idx`` as of panel row ``end``."""
    start = max(0, end - lookback)
    close = panel.close[start : end + 1, idx].astype(np.float64)  # (L+1) x k window copy
    real = panel.has_bar[start : end + 1, idx]
    enough = real.sum(axis=0) >= MIN_BARS
    close, real, idx = close[:, enough], real[:, enough], idx[enough]
    k = len(idx)
    if k == 0:
        return _empty_ratings()
    rows = close.shape[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        last = close[-1]
        s, m = min(20, lookback), min(50, lookback)
        sma_s, sma_m = np.nanmean(close[-s:], axis=0), np.nanmean(close[-m:], axis=0)
        # One session earlier, over the same number of bars where the window has them.
        sma_s_prev = np.nanmean(close[max(0, rows - 1 - s) : -1], axis=0)
        sma_m_prev = np.nanmean(close[max(0, rows - 1 - m) : -1], axis=0)
        trend = ((last > sma_s).astype(float) + (last > sma_m) + (sma_s > sma_m)) / 3

        diffs = np.diff(close[-15:], axis=0)
        gains, losses = (
            np.nansum(np.clip(diffs, 0, None), axis=0),
            np.nansum(np.clip(-diffs, 0, None), axis=0),
        )
        total = gains + losses
        rsi = np.where(total > 0, 100 * gains / np.where(total > 0, total, 1), 50.0)
        momentum = np.clip((rsi - 30) / 40, 0, 1)

        first_row = np.argmax(~np.isnan(close), axis=0)
        first = close[first_row, np.arange(k)]
        ret = last / first - 1
        spy = panel.spy_close[start : end + 1]
        spy_ret = spy[-1] / spy[first_row] - 1
        rel = (1 + ret) / (1 + spy_ret) - 1
        relative_strength = np.clip(0.5 + np.nan_to_num(rel) / 0.4, 0, 1)

        log_ret = np.diff(np.log(close), axis=0)
        mu = np.nanmean(log_ret, axis=0)
        sd = np.nanstd(log_ret, axis=0, ddof=1)
        # Closes are float32: a perfectly steady series shows ~1e-8 of rounding noise, not volatility.
        steady = ~(sd > ZERO_VOL)
        sharpe = np.where(steady, 0.0, mu / np.where(steady, 1, sd) * np.sqrt(252))
        risk_adjusted = np.clip((np.nan_to_num(sharpe) + 1) / 3, 0, 1)

        n_vol = min(20, rows - 1)  # sessions with a close-to-close change inside the window
        up = np.diff(close[-(n_vol + 1) :], axis=0) > 0
        vol = panel.volume[end - n_vol + 1 : end + 1, idx].astype(np.float64)
        vol_total = vol.sum(axis=0)
        up_share = np.where(
            vol_total > 0, (vol * up).sum(axis=0) / np.where(vol_total > 0, vol_total, 1), 0.0
        )
        volume_conf = np.where(vol_total > 0, np.clip((up_share - 0.3) / 0.4, 0, 1), 0.0)

        rating = 100 * (
            WEIGHTS["trend"] * trend
            + WEIGHTS["momentum"] * momentum
            + WEIGHTS["relative_strength"] * relative_strength
            + WEIGHTS["risk_adjusted_return"] * risk_adjusted
            + WEIGHTS["volume_confirmation"] * volume_conf
        )
        breakout = last > np.nanmax(np.where(np.isnan(close[:-1]), -np.inf, close[:-1]), axis=0)
        golden_cross = (sma_s > sma_m) & (sma_s_prev <= sma_m_prev)
    if not np.isfinite(rating).all():  # a bug, never a silent default
        raise AssertionError(
            f"non-finite tech_rating for {panel.symbols[idx[~np.isfinite(rating)]].tolist()}"
        )
    return pd.DataFrame(
        {
            "symbol": panel.symbols[idx],
            "sector": panel.sectors[idx],
            "industry": panel.industries[idx],
            "tech_rating": rating,
            "close": last,
            "sma_short": sma_s,
            "sma_long": sma_m,
            "rsi14": rsi,
            "return_lookback": ret,
            "relative_return_spy": rel,
            "sharpe": sharpe,
            "up_volume_share": up_share,
            "trend": trend,
            "momentum": momentum,
            "relative_strength": relative_strength,
            "risk_adjusted_return": risk_adjusted,
            "volume_confirmation": volume_conf,
            "breakout": breakout,
            "golden_cross": golden_cross,
            "bars": real.sum(axis=0),
        }
    )


def _empty_ratings() -> pd.DataFrame:
    text = pd.Series(dtype=object)
    columns = {name: pd.Series(dtype=float) for name in RATING_COLUMNS}
    columns.update(symbol=text, sector=text, industry=text)
    columns.update({name: pd.Series(dtype=bool) for name in ("breakout", "golden_cross")})
    columns["bars"] = pd.Series(dtype=np.int64)
    return pd.DataFrame(columns)[list(RATING_COLUMNS)]


class Scanner:
    """Runs scans against one panel (load once, scan many times)."""

    def __init__(self, panel: Panel):
        self.panel = panel

    @classmethod
    def from_market(cls, market: MarketData, as_of: AsOf, *, start: dt.date | None = None) -> Scanner:
        return cls(Panel.from_market(market, as_of, start=start))

    def scan(
        self,
        config: ScanConfig,
        as_of: AsOf,
        *,
        scan_id: str | None = None,
        source: str = "backfill",
    ) -> ScanResult:
        when = to_ny(as_of)
        panel = self.panel
        clock = time.perf_counter
        t0 = clock()
        end = panel.end_index(when)
        if end < 0:
            raise MarketDataError(f"{panel.source}: no session completed by {when.isoformat()} in the panel")
        needed = max(config.lookback_days, ADV_WINDOW - 1)
        if panel.loaded_from is not None and end < needed:
            raise MarketDataError(
                f"{panel.source}: the panel starts at {panel.dates[0].date()} but a scan as of"
                f" {when.isoformat()}"
                f" with lookback_days={config.lookback_days} needs {needed} sessions before"
                f" {panel.dates[end].date()}; build the panel with an earlier start"
            )
        idx = select_universe(panel, config, end)
        t1 = clock()
        ratings = compute_ratings(panel, idx, end, config.lookback_days)
        t2 = clock()
        # compute_ratings computes the rating with the indicators; the rating stage is the ordering.
        ratings = ratings.sort_values(["tech_rating", "symbol"], ascending=[False, True], ignore_index=True)
        t3 = clock()
        results = ratings[ratings["tech_rating"] >= config.min_tech_rating].reset_index(drop=True)
        t4 = clock()
        signal = (results["breakout"] | results["golden_cross"]).astype(bool)
        results.insert(4, "signal", signal)
        t5 = clock()
        conditions = conditions_at(panel.conditions, when, data_source=panel.source)
        t6 = clock()
        total = t6 - t0
        stage_seconds = dict(zip(STAGES, np.diff([t0, t1, t2, t3, t4, t5, t6]).tolist(), strict=True))
        bar_date = panel.dates[end].date()
        record = ScanRecord(
            scan_id=scan_id or f"scan_{when:%Y%m%d_%H%M%S}_{uuid.uuid4().hex[:8]}",
            timestamp=when,
            config=config,
            results=ScanResults(count=len(results), signals=int(signal.sum())),
            performance=ScanPerformance(
                total_seconds=total,
                symbols_scanned=len(ratings),
                symbols_per_second=len(ratings) / total if total > 0 else None,
                symbols_returned=len(results),
                stage_seconds=stage_seconds,
            ),
            market_conditions=conditions,
            provenance=Provenance(
                source=source, data_source=panel.source, bar_date=bar_date, scanner_version=SCANNER_VERSION
            ),
        )
        return ScanResult(results=results, record=record, bar_date=bar_date)


def run_scan(config: ScanConfig, market_data: MarketData, as_of: AsOf) -> ScanResult:
    """One scan as of ``as_of``: loads only the bars it needs, then scans.

    For many scans, build a :class:`Scanner` once (``Scanner.from_market``) and call ``scan``.
    """
    when = to_ny(as_of)
    # Enough calendar days for the lookback, the 20-session averages and holidays.
    start = (when - dt.timedelta(days=int(config.lookback_days * 1.6) + 60)).date()
    scanner = Scanner.from_market(market_data, when, start=start)
    return scanner.scan(config, when, source="scanner_log")
