"""Exact statistics of a scan at the previous close: the cheap part of a result-count prediction.

A scan's result count is mostly decided by things that can be computed exactly before it runs:
how many symbols pass its cheap filters (sectors, industries, dollar volume, the ``max_symbols``
cap) and how many of those were rated at or above ``min_tech_rating`` one session earlier. The
predictors learn only what is not cheap: how the count moves between that close and the one the
scan will see, and the uncertainty around it.

Point in time: a scan as of ``t`` reads closes up to ``bar = last_completed_session(t)``; its
features here are computed at the session **before** ``bar`` (``lag=1``), never at ``bar`` itself.
Using ``bar`` would not leak the future (those closes exist when the scan runs), but it would make the
"prediction" a re-run of the scan; one session of lag keeps the features a nightly batch that a
serving process can hold, and makes the model earn its accuracy. Ratings come from the reference
scanner's own formula (:func:`technic_ml.scanner.tech_ratings`), so they are exact, not estimated.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numba
import numpy as np
import pandas as pd

from technic_ml.contracts import ScanConfig
from technic_ml.nyse import session_clock
from technic_ml.panel import Panel
from technic_ml.scanner import tech_ratings

#: Sessions between the scan's last bar and the close its features are computed at.
FEATURE_LAG = 1
#: Rating points around the threshold counted as "near": symbols likely to cross it by the next close.
NEAR_POINTS = 5.0


@numba.njit(cache=True, nogil=True)
def _count(adv, sector, industry, sector_table, industry_table, min_dollar_vol, max_symbols, ratings,
           min_rating, near_points):  # fmt: skip  # pragma: no cover - compiled
    """(chosen, rated, passing, near) over the universe in the scanner's order (see ``stats_of``)."""
    chosen = rated = passing = near = 0
    for j in range(adv.shape[0]):
        if chosen >= max_symbols:
            break
        if adv[j] >= min_dollar_vol and sector_table[sector[j]] and industry_table[industry[j]]:
            chosen += 1
            r = ratings[j]
            if r == r:  # NaN: too few bars to rate, neither passing nor near
                rated += 1
                if r >= min_rating:
                    passing += 1
                if abs(r - min_rating) < near_points:
                    near += 1
    return chosen, rated, passing, near


@dataclass(frozen=True)
class _Base:
    """The scannable universe at one session, most liquid first (the scanner's own order)."""

    idx: np.ndarray  # panel column indices
    adv: np.ndarray  # float64 20-session average dollar volume
    sector: np.ndarray  # int codes into UniverseStats.sector_names
    industry: np.ndarray


class UniverseStats:
    """Cheap, exact scan statistics at any session of a panel (see the module docstring).

    Ratings per (session, lookback) are computed once and kept in a bounded cache: a training set
    of 50,000 scans touches a few thousand sessions, a serving process one.
    """

    def __init__(self, panel: Panel, *, cache_size: int = 50_000):
        self.panel = panel
        self.sector_names, self._sector_codes = np.unique(panel.sectors, return_inverse=True)
        self.industry_names, self._industry_codes = np.unique(panel.industries, return_inverse=True)
        self._sector_lookup = {name: i for i, name in enumerate(self.sector_names)}
        self._industry_lookup = {name: i for i, name in enumerate(self.industry_names)}
        self._all_sectors = np.ones(len(self.sector_names), dtype=bool)
        self._all_industries = np.ones(len(self.industry_names), dtype=bool)
        self._bases: dict[int, _Base] = {}
        self._day_rows: dict[np.datetime64, int] = {}
        self._moment_rows: dict = {}
        self._ratings: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
        self._cache_size = cache_size

    # -- sessions --------------------------------------------------------------------------------

    def feature_rows(self, bar_dates: pd.Series | np.ndarray) -> np.ndarray:
        """Panel row of the feature session for scans whose last bar is ``bar_dates`` (-1: none)."""
        dates = pd.DatetimeIndex(pd.to_datetime(np.asarray(bar_dates)))
        bar_rows = self.panel.dates.searchsorted(dates, side="right") - 1
        exact = (bar_rows >= 0) & (self.panel.dates[np.maximum(bar_rows, 0)] == dates)
        rows = np.where(exact, bar_rows - FEATURE_LAG, -1)
        return np.where(rows >= 0, rows, -1)

    # -- statistics ------------------------------------------------------------------------------

    def stats(self, config: ScanConfig, row: int) -> tuple[int, int, int, int]:
        """(n_universe, n_rated, prev_count, n_near) of ``config`` at panel row ``row``."""
        return self.stats_of(
            config.max_symbols,
            config.min_tech_rating,
            config.min_dollar_vol,
            config.sectors,
            config.industries,
            config.lookback_days,
            row,
        )

    def stats_of(
        self,
        max_symbols: int,
        min_tech_rating: float,
        min_dollar_vol: float,
        sectors,
        industries,
        lookback_days: int,
        row: int,
    ) -> tuple[int, int, int, int]:
        base = self._base(row)
        sector_table = (
            self._selected(sectors, self._sector_lookup, len(self.sector_names))
            if sectors is not None and len(sectors)
            else self._all_sectors
        )
        industry_table = (
            self._selected(industries, self._industry_lookup, len(self.industry_names))
            if industries is not None and len(industries)
            else self._all_industries
        )
        # One compiled pass instead of a dozen numpy calls: this runs once per prediction served.
        chosen, rated, passing, near = _count(
            base.adv,
            base.sector,
            base.industry,
            sector_table,
            industry_table,
            float(min_dollar_vol),
            int(max_symbols),
            self._rating_row(row, int(lookback_days)),
            float(min_tech_rating),
            NEAR_POINTS,
        )
        return int(chosen), int(rated), int(passing), int(near)

    # -- internals -------------------------------------------------------------------------------

    @staticmethod
    def _selected(names, lookup: dict[str, int], size: int) -> np.ndarray:
        # A boolean table over the codes (a gather is much cheaper than np.isin per call); a sector
        # the universe does not have selects nothing, as it does in the scanner.
        table = np.zeros(size, dtype=bool)
        table[[lookup[n] for n in names if n in lookup]] = True
        return table

    def feature_row_at(self, as_of) -> int:
        """:meth:`feature_row_for_day` of a scan at ``as_of`` (cached: every request of a minute asks)."""
        row = self._moment_rows.get(as_of)
        if row is None:
            row = self.feature_row_for_day(session_clock().last_completed(as_of))
            if len(self._moment_rows) >= 4096:
                self._moment_rows.clear()
            self._moment_rows[as_of] = row
        return row

    def feature_row_for_day(self, day: np.datetime64) -> int:
        """:meth:`feature_rows` for one last-bar day (cached: a serving process asks for one day)."""
        row = self._day_rows.get(day)
        if row is None:
            row = int(self.feature_rows(np.array([day], dtype="datetime64[ns]"))[0])
            self._day_rows[day] = row
        return row

    def _base(self, row: int) -> _Base:
        base = self._bases.get(row)
        if base is None:
            panel = self.panel
            adv = panel.adv20[row]
            with np.errstate(invalid="ignore"):
                mask = panel.has_bar[row] & (panel.close[row] >= 1.0) & np.isfinite(adv)
            idx = np.flatnonzero(mask)
            order = np.lexsort((idx, -adv[idx]))  # the scanner's order: most liquid first, ties by symbol
            idx = idx[order]
            base = _Base(idx, adv[idx], self._sector_codes[idx], self._industry_codes[idx])
            self._bases[row] = base
        return base

    def _rating_row(self, row: int, lookback: int) -> np.ndarray:
        key = (row, lookback)
        cached = self._ratings.get(key)
        if cached is not None:
            self._ratings.move_to_end(key)
            return cached
        base = self._base(row)
        out = np.full(len(base.idx), np.nan)
        if len(base.idx):
            kept, rating = tech_ratings(self.panel, base.idx, row, lookback)
            out[np.isin(base.idx, kept)] = rating  # tech_ratings keeps idx order
        self._ratings[key] = out
        if len(self._ratings) > self._cache_size:
            self._ratings.popitem(last=False)
        return out
