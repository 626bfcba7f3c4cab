"""The steps of the main job and of the Prefect flows, as plain library functions.

Every flow in ``flows/`` is a table of contents over these steps (each wrapped by one task in
``tasks/``); nothing here knows about Prefect, so each step is tested on its own:

1. :func:`take_snapshot`: market conditions at a moment (the end of a historical dataset by
   default, now for a live source), persisted to the snapshot store;
2. :func:`main_backfill_window`: the scans are planned (fixed seed) over the five years before the
   snapshot, point in time, so a fresh machine builds a training history offline; a live source
   (yfinance) is not backfilled: it would download years of bars for the whole universe;
3. :func:`technic_ml.backfill.run_chunk` runs a chunk of that plan (re-runs skip stored scans);
4. :func:`training_data`, then the predictors' ``validate_predictor`` / ``train_predictor`` /
   ``publish_predictor`` (:mod:`technic_ml.predictors.training`);
5. :func:`write_reports`: scan-history statistics and the JSON summary of a run.

The daily presets (flow ``daily-presets``) add: :func:`load_predictors` (both champions, loaded,
with the universe statistics at the snapshot's moment), :func:`suggest_presets` (every goal),
:func:`rank_hot_sectors`, then :func:`technic_ml.optimizer.daily_presets` and :func:`save_presets`.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from technic_ml import stores
from technic_ml.backfill import BACKFILL_YEARS, BackfillSummary, backfill_window
from technic_ml.contracts import MarketConditions
from technic_ml.market_conditions import default_as_of, snapshot_market
from technic_ml.market_data import open_market_data
from technic_ml.market_data.base import AsOf
from technic_ml.nyse import now_ny, to_ny
from technic_ml.settings import TechnicSettings

log = logging.getLogger(__name__)

STATS_GROUPS = ("max_symbols", "min_tech_rating", "lookback_days", "sectors")


@dataclass(frozen=True)
class Snapshot:
    """A persisted market snapshot and the moment it was taken for."""

    conditions: MarketConditions
    path: Path
    as_of: dt.datetime
    as_of_reason: str
    market_source: str
    is_sample: bool


def sample_scan_log() -> Path:
    """The bundled copy of the original prototype's 150-line scan log (synthetic records)."""
    return Path(str(resources.files("technic_ml").joinpath("sample/scan_history_sample.jsonl")))


def take_snapshot(settings: TechnicSettings, as_of: AsOf | None = None) -> Snapshot:
    """Snapshot market conditions from the configured source and persist the snapshot.

    A failed refresh that the source could serve from its cache comes back ``degraded`` with the
    reasons; with nothing to serve, the source's :class:`~technic_ml.errors.MarketDataError` is raised.
    """
    market = open_market_data(settings)
    if as_of is None:
        when, reason = default_as_of(market)
    else:
        when, reason = to_ny(as_of), "given"
    conditions = snapshot_market(market, when)
    path = stores.snapshot_store(settings).save(conditions)
    return Snapshot(conditions, path, when, reason, market.source, market.is_sample)


def main_backfill_window(
    settings: TechnicSettings, snapshot: Snapshot, years: int = BACKFILL_YEARS
) -> tuple[dt.date, dt.date] | None:
    """The main job's training history window: the ``years`` before the snapshot's last bar.

    None for a live source (see the module docstring).
    """
    if settings.market_source == "yfinance":
        return None
    return backfill_window(snapshot.conditions.spy_bar_date or snapshot.as_of.date(), years)


def training_data(settings: TechnicSettings):
    """(dataset, note): the scan history joined with point-in-time features from the market data."""
    from technic_ml.predictors.training import load_training_data

    return load_training_data(stores.history_store(settings), open_market_data(settings))


def write_reports(settings: TechnicSettings, summary: dict[str, Any]) -> dict[str, Any]:
    """Scan-history statistics (overall and by config) and ``summary`` as ``reports/last-run.json``.

    Returns the document written: ``summary`` plus the history's size and statistics and every
    output's path.
    """
    store = stores.history_store(settings)
    stats = store.statistics()
    reports = settings.data_root / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    outputs = {"statistics": reports / "history-statistics.csv", "summary": reports / "last-run.json"}
    stats.to_csv(outputs["statistics"], index=False)
    if store.count():
        by_group = [store.statistics(by=[name]).assign(group_by=name) for name in STATS_GROUPS]
        outputs["statistics_by_config"] = reports / "history-statistics-by-config.csv"
        pd.concat(by_group, ignore_index=True).to_csv(outputs["statistics_by_config"], index=False)
    document = {
        "ran_at": now_ny().isoformat(),
        **summary,
        "history_records": store.count(),
        "statistics": stats.iloc[0].to_dict() if len(stats) else {},
        "outputs": {k: str(v) for k, v in {**summary.get("outputs", {}), **outputs}.items()},
    }
    outputs["summary"].write_text(json.dumps(document, indent=2, default=str) + "\n")
    return json.loads(outputs["summary"].read_text())


def snapshot_dict(snapshot: Snapshot) -> dict[str, Any]:
    return {
        "market_source": snapshot.market_source,
        "sample_data": snapshot.is_sample,
        "as_of": snapshot.as_of.isoformat(),
        "as_of_reason": snapshot.as_of_reason,
        "market_conditions": snapshot.conditions.model_dump(mode="json"),
        "snapshot_file": str(snapshot.path),
    }


def backfill_dict(summary: BackfillSummary | None) -> dict | None:
    if summary is None:
        return None
    return {
        "planned": summary.planned,
        "already_stored": summary.skipped_existing,
        "ran": summary.ran,
        "added": summary.added,
        "empty_scans": summary.empty_scans,
        "seconds": round(summary.seconds, 3),
        "data_source": summary.data_source,
    }


# -- daily presets -------------------------------------------------------------------------------


def load_predictors(settings: TechnicSettings, as_of: AsOf):
    """Both champions from the registry, with the universe statistics they need at ``as_of``.

    A missing champion is not an error here: the optimizer says so and falls back, flagged.
    """
    from technic_ml.predictors.serving import Predictors, universe_at

    market = open_market_data(settings)
    registry = stores.model_registry(settings)
    return Predictors.from_registry(registry, universe_at(market, to_ny(as_of)))


def suggest_presets(predictors, conditions: MarketConditions) -> tuple[dict, int, float]:
    """(suggestion per goal, configs searched, seconds) with the default goals and search space."""
    import time

    from technic_ml.optimizer import Optimizer

    optimizer = Optimizer(predictors)
    started = time.perf_counter()
    suggestions = optimizer.suggest_all(conditions)
    elapsed = time.perf_counter() - started
    for name, s in suggestions.items():
        if s.source != "model":
            log.warning("%s preset: %s", name, s.reasoning[0])
        for flag in s.flags:
            log.warning("%s preset: %s", name, flag)
    return suggestions, optimizer.space.size, elapsed


def rank_hot_sectors(settings: TechnicSettings, as_of: AsOf, window_days: int = 30):
    from technic_ml.optimizer import hot_sectors

    return hot_sectors(stores.history_store(settings).frame(), to_ny(as_of), window_days=window_days)


def save_presets(settings: TechnicSettings, document: dict[str, Any]) -> bool:
    """Append to the presets history and make it the latest; False when these presets were saved."""

    return stores.presets_history(settings).save(document)
