"""Replaying real days: the scans users run, their true outcomes, and what each policy got right.

A replay walks NYSE sessions one by one over real market data. Each day has its scans (configs and
times drawn like a backfill's: presets, favourites, random; :func:`plan_days`), run by the
reference scanner on that day's point-in-time data (:func:`run_day`): their records are the truth
every policy is judged against, the same for all. The orchestration (predicting through the API
code, reporting outcomes, monitoring and training through the Prefect flows) lives in
``deployments/replay.py``, because the library never imports Prefect; this module holds the pure
parts: the day plan, the truth, the scanner log a day ships to an inbox, and the per-month table.

Retraining policies compared on the same days (``POLICIES``):

* ``frozen``: the champion trained once before the first day, never retrained;
* ``nightly``: train-predictors after every session;
* ``monitor``: model-monitor after every session, train-predictors only when it reports a degraded
  model and the last retrain is at least the cooldown ago (in replay days).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from technic_ml.backfill import PlannedScan, plan_backfill, run_plan
from technic_ml.history import ScanHistoryStore
from technic_ml.market_data.base import MarketData
from technic_ml.nyse import NY

POLICIES = ("frozen", "nightly", "monitor")


@dataclass(frozen=True)
class ReplayDay:
    session: dt.date
    scans: tuple[PlannedScan, ...]


def plan_days(
    start: dt.date, end: dt.date, per_day: int, seed: int, universe: pd.DataFrame
) -> list[ReplayDay]:
    """The sessions from ``start`` to ``end`` and their scans (``per_day`` on average; a busy day
    has more, a quiet one fewer), drawn from the backfill's config space with one set of
    favourites for the whole replay, as one user base would."""
    if per_day < 1:
        raise ValueError(f"per_day: received {per_day!r}; expected at least 1")
    from technic_ml.nyse import sessions_between

    sessions = sessions_between(start, end)
    if len(sessions) == 0:
        raise ValueError(f"start/end: received {start}..{end}; expected at least one NYSE session")
    plan = plan_backfill(start, end, per_day * len(sessions), seed, universe)
    by_day: dict[dt.date, list[PlannedScan]] = {}
    for p in plan:
        by_day.setdefault(pd.Timestamp(p.as_of).tz_convert(NY).date(), []).append(p)
    return [ReplayDay(s.date(), tuple(by_day.get(s.date(), ()))) for s in sessions]


def run_day(day: ReplayDay, market: MarketData, truth: ScanHistoryStore, *, timing_runs: int = 3) -> int:
    """Run the day's scans with the reference scanner into the truth store (idempotent: a scan
    already stored is not run again). Returns how many were added."""
    if not day.scans:
        return 0
    return run_plan(list(day.scans), market, truth, timing_runs=timing_runs).added


def ship_day(day: ReplayDay, truth: ScanHistoryStore, inbox: Path) -> Path | None:
    """The day's records as the scanner's log in ``inbox``, written under a hidden name (which the
    inbox ignores) and renamed in whole, as the inbox requires of writers; None when the day had no
    scans."""
    if not day.scans:
        return None
    inbox.mkdir(parents=True, exist_ok=True)
    final = inbox / f"replay-{day.session}.jsonl"
    hidden = inbox / f".{final.name}"
    start = dt.datetime.combine(day.session, dt.time(0), NY)
    if truth.export_jsonl(hidden, start=start, end=start + dt.timedelta(days=1)) == 0:
        hidden.unlink(missing_ok=True)  # an empty log is no log
        return None
    os.replace(hidden, final)
    return final


def _month_rows(outcomes: pd.DataFrame, scan_months: pd.Series, target: str) -> pd.DataFrame:
    served = outcomes[(outcomes["role"] == "served") & (outcomes["target"] == target)].copy()
    served["month"] = served["scan_id"].map(scan_months)
    served = served[served["month"].notna()]
    judged = served[(served["state"] == "model") & served["actual"].notna() & served["lower"].notna()]
    inside = (judged["lower"] <= judged["actual"]) & (judged["actual"] <= judged["upper"])
    g = judged.assign(inside=inside, err=(judged["value"] - judged["actual"]).abs()).groupby("month")
    out = pd.DataFrame(
        {
            "outcomes": g.size(),
            "coverage": g["inside"].mean(),
            "mae": g["err"].mean(),
        }
    )
    out["abstained"] = served.assign(a=served["state"] == "abstain").groupby("month")["a"].mean()
    return out


def monthly_table(
    outcomes: dict[str, pd.DataFrame],
    retrains: dict[str, Sequence[tuple[dt.date, str]]],
    scan_dates: dict[str, dt.date],
    target: str = "count",
) -> pd.DataFrame:
    """Per month and policy: outcomes judged, realized coverage, MAE, abstention share, retrains.

    ``outcomes``: policy -> its ledger's ``outcomes_frame()``; ``retrains``: policy -> (session,
    reason) of each train-predictors run; ``scan_dates``: scan_id -> session (months are the scans'
    months, not the wall clock's the replay ran on).
    """
    months = pd.Series({k: f"{v:%Y-%m}" for k, v in scan_dates.items()}, dtype=object)
    frames = []
    for policy, frame in outcomes.items():
        rows = _month_rows(frame, months, target)
        done = pd.Series([f"{d:%Y-%m}" for d, _ in retrains.get(policy, ())], dtype=object)
        rows["retrains"] = done.value_counts().reindex(rows.index).fillna(0).astype(int)
        rows["policy"] = policy
        frames.append(rows.reset_index(names="month"))
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True)[
        ["month", "policy", "outcomes", "coverage", "mae", "abstained", "retrains"]
    ]


def markdown(table: pd.DataFrame, band: tuple[float, float] = (0.87, 0.93)) -> str:
    """One row per month, the policies side by side (coverage outside ``band`` in bold)."""
    if table.empty:
        return "(no outcomes)\n"
    policies = list(dict.fromkeys(table["policy"]))
    head = "| month | " + " | ".join(f"{p}: coverage, MAE, abstained, retrains" for p in policies) + " |"
    lines = [head, "|---|" + "---|" * len(policies)]
    for month, rows in table.groupby("month", sort=True):
        cells = []
        for p in policies:
            r = rows[rows["policy"] == p]
            if r.empty or not r["outcomes"].iloc[0]:
                cells.append("-")
                continue
            r = r.iloc[0]
            cov = f"{r['coverage']:.1%}"
            if not band[0] <= r["coverage"] <= band[1]:
                cov = f"**{cov}**"
            cells.append(f"{cov}, {r['mae']:.3g}, {r['abstained']:.1%}, {int(r['retrains'])}")
        lines.append(f"| {month} | " + " | ".join(cells) + " |")
    totals = []
    for p in policies:
        r = table[table["policy"] == p]
        n = r["outcomes"].sum()
        cov = float(np.average(r["coverage"], weights=r["outcomes"])) if n else float("nan")
        inside = int(((r["coverage"] >= band[0]) & (r["coverage"] <= band[1])).sum())
        totals.append(
            f"{cov:.1%} overall, {inside}/{len(r)} months in band, {int(r['retrains'].sum())} retrains"
        )
    lines.append("| **all** | " + " | ".join(totals) + " |")
    return "\n".join(lines) + "\n"
