"""Hot sectors: which sectors' recent scans turned up the most signals per symbol scanned.

Evidence comes from the scan history, in a window before ``as_of``: a scan restricted to exactly
one sector attributes its signals and symbols scanned to that sector. Scans over several sectors
or the whole market cannot be split (a record holds totals only): they set the overall rate and
are counted as unattributed, never guessed apart.

Ranks use empirical-Bayes shrinkage (beta-binomial): a sector's rate is
``(signals + k x overall) / (symbols scanned + k)``, so a sector with three lucky scans stays
near the market's rate and one with hundreds of scans keeps its own. ``k`` (the prior's weight,
in symbols scanned) is estimated by the method of moments from how much the sectors' rates
differ beyond sampling noise, bounded to ``[k_min, k_max]``; when they do not differ at all the
bound ``k_max`` applies and the result says no sector stands out. The floor ``k_min`` (1,000
symbols scanned, about twenty scans of fifty) is there because a symbol scanned is not an
independent trial: scans of a sector on the same days see the same symbols, so the binomial noise
the estimate assumes is smaller than the real one and would under-shrink. Each row shows its
evidence.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from technic_ml.nyse import to_ny


@dataclass(frozen=True)
class HotSector:
    sector: str
    rank: int
    scans: int
    symbols_scanned: int
    signals: int
    raw_rate: float
    rate: float  # shrunk
    lift: float  # rate / overall rate


@dataclass(frozen=True)
class HotSectors:
    as_of: dt.datetime
    window_days: int
    overall_rate: float | None
    prior_symbols: float | None
    scans: int
    attributed_scans: int
    sectors: tuple[HotSector, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)

    def top(self, n: int = 3) -> list[str]:
        return [s.sector for s in self.sectors[:n]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of.isoformat(),
            "window_days": self.window_days,
            "overall_rate": self.overall_rate,
            "prior_symbols": self.prior_symbols,
            "scans": self.scans,
            "attributed_scans": self.attributed_scans,
            "sectors": [vars(s) for s in self.sectors],
            "notes": list(self.notes),
        }


def prior_strength(signals: np.ndarray, scanned: np.ndarray, k_min: float, k_max: float) -> float:
    """Method-of-moments weight ``k`` of the beta prior (see the module docstring)."""
    signals, scanned = np.asarray(signals, float), np.asarray(scanned, float)
    total = scanned.sum()
    if len(scanned) < 3 or total <= 0:
        return k_max
    p = signals.sum() / total
    if p <= 0 or p >= 1:
        return k_max
    rates = signals / scanned
    spread = float((scanned * (rates - p) ** 2).sum())
    noise = (len(scanned) - 1) * p * (1 - p)
    effective = total - float((scanned**2).sum()) / total
    tau2 = (spread - noise) / effective if effective > 0 else 0.0
    if tau2 <= 0:
        return k_max
    return float(np.clip(p * (1 - p) / tau2 - 1, k_min, k_max))


def hot_sectors(
    history: pd.DataFrame,
    as_of: dt.datetime,
    *,
    window_days: int = 30,
    k_min: float = 1000.0,
    k_max: float = 1e6,
) -> HotSectors:
    """Rank sectors over the ``window_days`` before ``as_of`` (``history``: ``ScanHistoryStore.frame()``)."""
    if window_days < 1:
        raise ValueError(f"window_days: received {window_days!r}; expected at least 1")
    as_of = to_ny(as_of)
    start = as_of - dt.timedelta(days=window_days)
    recent = history
    if len(history):
        ts = pd.to_datetime(history["timestamp"])
        recent = history[(ts >= start) & (ts < as_of)]
    notes: list[str] = []
    if not len(recent):
        return HotSectors(
            as_of,
            window_days,
            None,
            None,
            0,
            0,
            (),
            (f"no scans in the {window_days} days before {as_of:%Y-%m-%d %H:%M}: nothing to rank",),
        )
    scanned_all = recent["symbols_scanned"].to_numpy(float)
    overall = float(recent["result_signals"].sum() / scanned_all.sum()) if scanned_all.sum() > 0 else None
    sectors = recent["sectors"].map(lambda s: list(s) if s is not None else [])
    single = sectors.map(len) == 1
    one = recent[single].assign(sector=sectors[single].map(lambda s: s[0]))
    one = one[one["symbols_scanned"] > 0]
    if not len(one) or overall is None:
        notes.append("no single-sector scans with symbols scanned in the window: nothing to attribute")
        return HotSectors(as_of, window_days, overall, None, len(recent), 0, (), tuple(notes))
    grouped = one.groupby("sector").agg(
        scans=("scan_id", "size"), scanned=("symbols_scanned", "sum"), signals=("result_signals", "sum")
    )
    k = prior_strength(grouped["signals"].to_numpy(), grouped["scanned"].to_numpy(), k_min, k_max)
    if k >= k_max:
        notes.append("the sectors' rates differ no more than chance would make them: no sector stands out")
    shrunk = (grouped["signals"] + k * overall) / (grouped["scanned"] + k)
    grouped = grouped.assign(raw=grouped["signals"] / grouped["scanned"], rate=shrunk)
    grouped = grouped.sort_values(["rate", "scans"], ascending=[False, False], kind="stable")
    rows = tuple(
        HotSector(
            sector=str(name),
            rank=i + 1,
            scans=int(r.scans),
            symbols_scanned=int(r.scanned),
            signals=int(r.signals),
            raw_rate=float(r.raw),
            rate=float(r.rate),
            lift=float(r.rate / overall) if overall > 0 else float("nan"),
        )
        for i, (name, r) in enumerate(grouped.iterrows())
    )
    unattributed = len(recent) - len(one)
    if unattributed:
        notes.append(
            f"{unattributed} of {len(recent)} scans covered several sectors or the whole market: they set"
            " the overall rate but are not split between sectors"
        )
    return HotSectors(as_of, window_days, overall, k, len(recent), len(one), rows, tuple(notes))
