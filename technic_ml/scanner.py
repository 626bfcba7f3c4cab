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

:func:`tech_ratings` is the numeric core alone, for callers that need only the ratings. Records
carry :data:`SCANNER_VERSION`; versions 1.0.0 to 1.2.0 return the same results bit for bit and
differ in what their durations measure (bench/README.md, "Scanner versions").
"""

from __future__ import annotations

import datetime as dt
import gc
import time
import uuid
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
from pandas.api.internals import create_dataframe_from_blocks
from pandas.arrays import ArrowStringArray, NumpyExtensionArray

from technic_ml.contracts import Provenance, ScanConfig, ScanPerformance, ScanRecord, ScanResults
from technic_ml.errors import MarketDataError
from technic_ml.market_conditions import ConditionTable
from technic_ml.market_data.base import AsOf, MarketData
from technic_ml.nyse import session_clock, to_ny
from technic_ml.panel import ADV_WINDOW, Panel

__all__ = [
    "MIN_BARS",
    "RATING_COLUMNS",
    "RESULT_COLUMNS",
    "SCANNER_VERSION",
    "STAGES",
    "WEIGHTS",
    "ZERO_VOL",
    "CompletedScan",
    "Scanner",
    "compute_ratings",
    "run_scan",
    "select_universe",
    "tech_ratings",
]

SCANNER_VERSION = "1.2.0"
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
#: Columns of ``CompletedScan.results``: the ratings' columns with ``signal`` after ``tech_rating``.
RESULT_COLUMNS = (*RATING_COLUMNS[:4], "signal", *RATING_COLUMNS[4:])
_TEXT_COLUMNS = ("symbol", "sector", "industry")
_FLAG_COLUMNS = ("signal", "breakout", "golden_cross")
_FLOAT_COLUMNS = tuple(c for c in RESULT_COLUMNS if c not in (*_TEXT_COLUMNS, *_FLAG_COLUMNS, "bars"))
# Evidence shown next to the rating that the rating does not depend on: tech_ratings skips them.
_EXTRA_COLUMNS = ("breakout", "golden_cross", "bars")


@dataclass
class CompletedScan:
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


def tech_ratings(panel: Panel, idx: np.ndarray, end: int, lookback: int) -> tuple[np.ndarray, np.ndarray]:
    """(kept column indices, tech_rating float64) for columns idx as of panel row end: the symbols
    of idx with at least MIN_BARS real bars in the window, in idx order, with exactly the
    tech_rating compute_ratings gives them.

    The numeric core of :func:`compute_ratings` without its evidence columns or any pandas object:
    for callers that rate thousands of (session, universe) pairs.
    """
    kept, values = _indicators(panel, idx, end, lookback, extras=False)
    return kept, values["tech_rating"]


def compute_ratings(panel: Panel, idx: np.ndarray, end: int, lookback: int) -> pd.DataFrame:
    """Indicators, components and tech_rating for columns ``idx`` as of panel row ``end``."""
    kept, values = _indicators(panel, idx, end, lookback, extras=True)
    if len(kept) == 0:
        return _empty_ratings()
    return pd.DataFrame(
        {
            "symbol": panel.symbols[kept],
            "sector": panel.sectors[kept],
            "industry": panel.industries[kept],
            **{name: values[name] for name in RATING_COLUMNS[3:]},
        }
    )


def _indicators(
    panel: Panel, idx: np.ndarray, end: int, lookback: int, *, extras: bool
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The numeric core of a rating: the kept columns of ``idx`` and one array per rating column.

    ``extras=False`` skips ``_EXTRA_COLUMNS``, which the rating does not depend on.
    """
    if not 0 <= end < len(panel.dates):
        raise ValueError(f"end: received {end}; expected a panel row in 0..{len(panel.dates) - 1}")
    if lookback < 1:
        raise ValueError(f"lookback: received {lookback}; expected at least 1 session")
    if idx.dtype.kind not in "iu":
        raise TypeError(f"idx: received an array of dtype {idx.dtype}; expected integer column indices")
    start = max(0, end - lookback)
    real = panel.has_bar[start : end + 1, idx]
    bars = real.sum(axis=0)
    enough = bars >= MIN_BARS
    idx, bars = idx[enough], bars[enough]
    k = len(idx)
    names = RATING_COLUMNS[3:] if extras else [c for c in RATING_COLUMNS[3:] if c not in _EXTRA_COLUMNS]
    if k == 0:
        return idx, {name: _empty_column(name) for name in names}
    # (L+1) x k window copy. Fancy indexing lays each symbol's column out contiguously, so every
    # sum over sessions below is numpy's pairwise sum of that column, as in np.nanmean.
    close = panel.close[start : end + 1, idx].astype(np.float64)
    rows = close.shape[0]
    # np.nanmean and np.nanstd, written out over one NaN mask: the same sums and divisions in the
    # same order (so the same bits), without rebuilding the mask and a zero-filled copy per window.
    known = ~np.isnan(close)
    filled = np.where(known, close, 0.0)

    def window_mean(window: slice) -> np.ndarray:
        return filled[window].sum(axis=0) / known[window].sum(axis=0)

    with np.errstate(invalid="ignore", divide="ignore"):
        last = close[-1]
        s, m = min(20, lookback), min(50, lookback)
        sma_s, sma_m = window_mean(slice(-s, None)), window_mean(slice(-m, None))
        trend = ((last > sma_s).astype(float) + (last > sma_m) + (sma_s > sma_m)) / 3

        diffs = np.diff(close[-15:], axis=0)
        gains, losses = (
            np.nansum(np.clip(diffs, 0, None), axis=0),
            np.nansum(np.clip(-diffs, 0, None), axis=0),
        )
        total = gains + losses
        rsi = np.where(total > 0, 100 * gains / np.where(total > 0, total, 1), 50.0)
        momentum = np.clip((rsi - 30) / 40, 0, 1)

        first_row = np.argmax(known, axis=0)
        first = close[first_row, np.arange(k)]
        ret = last / first - 1
        spy = panel.spy_close[start : end + 1]
        spy_ret = spy[-1] / spy[first_row] - 1
        rel = (1 + ret) / (1 + spy_ret) - 1
        relative_strength = np.clip(0.5 + np.nan_to_num(rel) / 0.4, 0, 1)

        log_ret = np.diff(np.log(close), axis=0)
        ret_known = ~np.isnan(log_ret)
        n_ret = ret_known.sum(axis=0)
        deviation = np.where(ret_known, log_ret, 0.0)
        mu = deviation.sum(axis=0) / n_ret
        deviation -= mu
        np.copyto(deviation, 0.0, where=~ret_known)
        deviation *= deviation
        dof = n_ret - 1  # ddof=1
        sd = np.sqrt(np.where(dof > 0, deviation.sum(axis=0) / dof, np.nan))
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
        values = {
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
        }
        if extras:
            # One session earlier, over the same number of bars where the window has them.
            sma_s_prev = window_mean(slice(max(0, rows - 1 - s), -1))
            sma_m_prev = window_mean(slice(max(0, rows - 1 - m), -1))
            earlier = np.where(known[:-1], close[:-1], -np.inf)
            values["breakout"] = last > earlier.max(axis=0)
            values["golden_cross"] = (sma_s > sma_m) & (sma_s_prev <= sma_m_prev)
            values["bars"] = bars
    if not np.isfinite(rating).all():  # a bug, never a silent default
        raise AssertionError(
            f"non-finite tech_rating for {panel.symbols[idx[~np.isfinite(rating)]].tolist()}"
        )
    return idx, values


def _empty_column(name: str) -> np.ndarray:
    if name in ("breakout", "golden_cross"):
        return np.empty(0, dtype=bool)
    return np.empty(0, dtype=np.int64 if name == "bars" else np.float64)


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
        self._dates = panel.dates.to_numpy()
        self._conditions = ConditionTable(panel.conditions)
        # Results are ordered by rating, ties by symbol: the symbol's rank is that second key.
        self._symbol_rank = np.empty(panel.n_symbols, dtype=np.intp)
        self._symbol_rank[np.argsort(panel.symbols, kind="stable")] = np.arange(panel.n_symbols)
        # The text columns typed once as pd.DataFrame types them (pandas' arrow-backed strings, with
        # the pinned pandas and pyarrow); a scan takes its rows of all three in one arrow call, a
        # third of the cost of three takes.
        self._text = [
            pd.Series(values, copy=False).array for values in (panel.symbols, panel.sectors, panel.industries)
        ]
        self._text_table = None
        if all(isinstance(column, ArrowStringArray) for column in self._text):
            self._text_table = pa.table(
                {name: pa.array(column) for name, column in zip(_TEXT_COLUMNS, self._text, strict=True)}
            )
        self._columns = pd.Index(RESULT_COLUMNS)
        at = {name: i for i, name in enumerate(RESULT_COLUMNS)}
        self._placement = {
            group: np.array([at[name] for name in group], dtype=np.intp)
            for group in (_TEXT_COLUMNS, _FLAG_COLUMNS, _FLOAT_COLUMNS, ("bars",))
        }

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
    ) -> CompletedScan:
        # The collector pauses for garbage of whatever ran before (a backfill's thousands of records),
        # and its pauses grow with the process's age: inside the timed region they were the largest
        # source of duration noise. It runs after the scan instead.
        collecting = gc.isenabled()
        gc.disable()
        try:
            return self._scan(config, as_of, scan_id=scan_id, source=source)
        finally:
            if collecting:
                gc.enable()

    def _scan(self, config: ScanConfig, as_of: AsOf, *, scan_id: str | None, source: str) -> CompletedScan:
        when = to_ny(as_of)
        panel = self.panel
        clock = time.perf_counter
        t0 = clock()
        # Panel.end_index, with the session from the array calendar instead of exchange_calendars.
        end = int(np.searchsorted(self._dates, session_clock().last_completed(when), side="right")) - 1
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
        kept, values = _indicators(panel, idx, end, config.lookback_days, extras=True)
        t2 = clock()
        # _indicators computes the rating with the indicators; the rating stage is the ordering.
        rating = values["tech_rating"]
        order = np.lexsort((self._symbol_rank[kept], -rating))
        t3 = clock()
        passing = order[rating[order] >= config.min_tech_rating]
        t4 = clock()
        signal = values["breakout"][passing] | values["golden_cross"][passing]
        signals = int(np.count_nonzero(signal))
        t5 = clock()
        results = self._results_frame(kept, values, passing, signal)
        t6 = clock()
        conditions = self._conditions.at(when, data_source=panel.source)
        t7 = clock()
        total = t7 - t0
        stage_seconds = {
            "universe": t1 - t0,
            "indicators": t2 - t1,
            "rating": t3 - t2,
            "results": (t4 - t3) + (t6 - t5),  # choosing the rows, then building the frame
            "signals": t5 - t4,
            "conditions": t7 - t6,
        }
        bar_date = panel.dates[end].date()
        record = ScanRecord(
            scan_id=scan_id or f"scan_{when:%Y%m%d_%H%M%S}_{uuid.uuid4().hex[:8]}",
            timestamp=when,
            config=config,
            results=ScanResults(count=len(passing), signals=signals),
            performance=ScanPerformance(
                total_seconds=total,
                symbols_scanned=len(kept),
                symbols_per_second=len(kept) / total if total > 0 else None,
                symbols_returned=len(passing),
                stage_seconds=stage_seconds,
            ),
            market_conditions=conditions,
            provenance=Provenance(
                source=source, data_source=panel.source, bar_date=bar_date, scanner_version=SCANNER_VERSION
            ),
        )
        return CompletedScan(results=results, record=record, bar_date=bar_date)

    def _results_frame(
        self, kept: np.ndarray, values: dict[str, np.ndarray], rows: np.ndarray, signal: np.ndarray
    ) -> pd.DataFrame:
        """The results frame, rows ``rows`` of the rated symbols, built from its blocks.

        pd.DataFrame from a dict of 21 columns costs ~0.5 ms per scan (per-column inference and
        consolidation), more than everything else in a small scan; the blocks here are exactly
        the ones it would build (one per dtype, text as pandas' default string arrays, or object
        when ``future.infer_string`` is off), which ``tests/test_scanner.py`` checks against
        pd.DataFrame. With nothing rated the text columns are object, as compute_ratings' empty
        frame has always had them.
        """
        columns = kept[rows]
        place = self._placement
        text_place = place[_TEXT_COLUMNS]
        if not len(kept):
            blocks = [(np.empty((len(_TEXT_COLUMNS), 0), dtype=object), text_place)]
        elif self._text_table is not None:
            taken = self._text_table.take(columns)
            blocks = [
                (ArrowStringArray(taken.column(i), dtype=column.dtype), text_place[i : i + 1])
                for i, column in enumerate(self._text)
            ]
        else:  # other string storage, or object columns when pandas is told not to infer strings
            blocks = []
            for i, column in enumerate(self._text):
                taken = column.take(columns)
                # Object columns (not its StringArray subclass): pd.DataFrame keeps those as numpy.
                if type(taken) is NumpyExtensionArray:
                    taken = taken.to_numpy()[None, :]
                blocks.append((taken, text_place[i : i + 1]))
        floats = np.stack([values[name] for name in _FLOAT_COLUMNS]).take(rows, axis=1)
        flags = np.stack([signal, values["breakout"][rows], values["golden_cross"][rows]])
        blocks += [
            (floats, place[_FLOAT_COLUMNS]),
            (flags, place[_FLAG_COLUMNS]),
            (values["bars"][rows][None, :], place[("bars",)]),
        ]
        return create_dataframe_from_blocks(
            blocks, index=pd.RangeIndex(len(rows)), columns=self._columns.copy()
        )


def run_scan(config: ScanConfig, market_data: MarketData, as_of: AsOf) -> CompletedScan:
    """One scan as of ``as_of``: loads only the bars it needs, then scans.

    For many scans, build a :class:`Scanner` once (``Scanner.from_market``) and call ``scan``.
    """
    when = to_ny(as_of)
    # Enough calendar days for the lookback, the 20-session averages and holidays.
    start = (when - dt.timedelta(days=int(config.lookback_days * 1.6) + 60)).date()
    scanner = Scanner.from_market(market_data, when, start=start)
    return scanner.scan(config, when, source="scanner_log")
