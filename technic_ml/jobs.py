"""The main job: what ``make run`` (``technic-ml run``) does until the Prefect pipeline exists.

1. open the configured market data (the embedded sample by default: offline, no ../shared);
2. snapshot market conditions and persist the snapshot;
3. on a historical dataset (the sample, a market-data directory), backfill real scans: the reference
   scanner runs ``backfill_scans`` planned scans (fixed seed) over the five years before the
   snapshot, point in time, so a fresh machine builds a training history offline; re-runs skip the
   scans already stored. A live source (yfinance) is not backfilled here: it would download years
   of bars for the whole universe;
4. train both predictors on the history (enriched features from the same market data), validate
   them on rolling-origin folds, and publish those that pass their gates to the model registry;
5. compute scan-history statistics and write them next to a JSON summary of the run.

Each step is a plain function over library objects, so the Prefect flow of a later issue can wrap
the same calls as tasks.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from technic_ml.backfill import BackfillSummary, plan_backfill, run_plan
from technic_ml.contracts import MarketConditions
from technic_ml.history import ScanHistoryStore
from technic_ml.market_conditions import snapshot_market
from technic_ml.market_data import MarketData, open_market_data
from technic_ml.market_data.base import AsOf
from technic_ml.nyse import NY, calendar, now_ny, to_ny
from technic_ml.settings import TechnicSettings
from technic_ml.snapshots import SnapshotStore

log = logging.getLogger(__name__)

BACKFILL_YEARS = 5
BACKFILL_SCANS = 3000
BACKFILL_SEED = 0
STATS_GROUPS = ("max_symbols", "min_tech_rating", "lookback_days", "sectors")


@dataclass
class MainJobReport:
    settings: TechnicSettings
    market_source: str
    is_sample: bool
    as_of: dt.datetime
    as_of_reason: str
    conditions: MarketConditions
    snapshot_file: Path
    history_dir: Path
    backfill: BackfillSummary | None
    training: Any | None
    published: dict[str, Any]
    statistics: pd.DataFrame
    statistics_by_group: dict[str, pd.DataFrame] = field(default_factory=dict)
    outputs: dict[str, Path] = field(default_factory=dict)


def default_as_of(market: MarketData) -> tuple[dt.datetime, str]:
    """Now for a live source; the close of the last session in the data for a historical dataset.

    A historical dataset (the sample ends in 2018, the shared real data in 2019) snapshotted "now"
    would be years stale; the job says which moment it used and why.
    """
    if market.source == "yfinance":
        return now_ny(), "now (live source)"
    last = market.spy(now_ny())["date"].max()
    if pd.isna(last):
        return now_ny(), "now (the source returned no SPY bars)"
    close = calendar().session_close(pd.Timestamp(last)).tz_convert(NY).to_pydatetime()
    return close, f"close of the last session in the data ({last.date()})"


def sample_scan_log() -> Path:
    """The bundled copy of the original prototype's 150-line scan log (synthetic records)."""
    return Path(str(resources.files("technic_ml").joinpath("sample/scan_history_sample.jsonl")))


def run_main_job(
    settings: TechnicSettings,
    *,
    as_of: AsOf | None = None,
    backfill_scans: int = BACKFILL_SCANS,
    train: bool = True,
    progress=None,
) -> MainJobReport:
    market = open_market_data(settings)
    if as_of is None:
        when, reason = default_as_of(market)
    else:
        when, reason = to_ny(as_of), "given"

    conditions = snapshot_market(market, when)
    snapshot_file = SnapshotStore(settings.snapshot_path).save(conditions)

    store = ScanHistoryStore(settings.history_path, quarantine_dir=settings.quarantine_path)
    backfilled = None
    if settings.market_source != "yfinance" and backfill_scans > 0:
        end = conditions.spy_bar_date or when.date()
        start = end - dt.timedelta(days=365 * BACKFILL_YEARS)
        plan = plan_backfill(start, end, backfill_scans, BACKFILL_SEED, market.universe())
        backfilled = run_plan(plan, market, store, progress=progress)

    training, published = None, {}
    if train and store.count() == 0:
        log.warning("no scan history to train the predictors on (backfill or import scans first)")
    elif train:
        from technic_ml.predictors.features import TARGETS
        from technic_ml.predictors.registry import ModelRegistry
        from technic_ml.predictors.training import (
            PublishOutcome,
            current_champions,
            load_training_data,
            publish_predictors,
            train_predictors,
        )

        registry = ModelRegistry(settings.model_registry_path)
        data, note = load_training_data(store, market)
        current = current_champions(registry, data)
        todo = tuple(t for t in TARGETS if t not in current)
        training = train_predictors(data, registry=registry, data_note=note, targets=todo)
        published = publish_predictors(registry, training)
        for target, version in current.items():
            published[target] = PublishOutcome(
                target,
                False,
                version,
                "champion",
                "unchanged: the history has not changed since it was trained",
            )
        for outcome in published.values():
            if not outcome.serving:
                log.warning("%s predictor not published: %s", outcome.target, outcome.reason)

    stats = store.statistics()
    by_group = {name: store.statistics(by=[name]) for name in STATS_GROUPS} if store.count() else {}

    reports = settings.data_root / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    stats_file = reports / "history-statistics.csv"
    grouped_file = reports / "history-statistics-by-config.csv"
    stats.to_csv(stats_file, index=False)
    if by_group:
        pd.concat(
            [frame.assign(group_by=name) for name, frame in by_group.items()], ignore_index=True
        ).to_csv(grouped_file, index=False)
    summary_file = reports / "last-run.json"
    report = MainJobReport(
        settings=settings,
        market_source=market.source,
        is_sample=market.is_sample,
        as_of=when,
        as_of_reason=reason,
        conditions=conditions,
        snapshot_file=snapshot_file,
        history_dir=settings.history_path,
        backfill=backfilled,
        training=training,
        published=published,
        statistics=stats,
        statistics_by_group=by_group,
        outputs={
            "snapshot": snapshot_file,
            "history": settings.history_path,
            "statistics": stats_file,
            "summary": summary_file,
            "models": settings.model_registry_path,
        },
    )
    if by_group:
        report.outputs["statistics_by_config"] = grouped_file
    summary_file.write_text(json.dumps(_summary(report), indent=2, default=str) + "\n")
    return report


def _summary(report: MainJobReport) -> dict:
    return {
        "ran_at": now_ny().isoformat(),
        "market_source": report.market_source,
        "sample_data": report.is_sample,
        "as_of": report.as_of.isoformat(),
        "as_of_reason": report.as_of_reason,
        "market_conditions": report.conditions.model_dump(mode="json"),
        "history_records": int(report.statistics["count"].sum()) if len(report.statistics) else 0,
        "backfill": None if report.backfill is None else _backfill_dict(report.backfill),
        "predictors": {
            target: {
                "version": o.version,
                "alias": o.alias,
                "published": o.published,
                "reason": o.reason,
                "validation": (
                    _validation_dict(report.training.targets[target].report, o)
                    if target in report.training.targets
                    else None
                ),
            }
            for target, o in report.published.items()
        },
        "outputs": {k: str(v) for k, v in report.outputs.items()},
    }


def _backfill_dict(summary: BackfillSummary) -> dict:
    return {
        "planned": summary.planned,
        "already_stored": summary.skipped_existing,
        "ran": summary.ran,
        "added": summary.added,
        "empty_scans": summary.empty_scans,
        "seconds": round(summary.seconds, 3),
        "data_source": summary.data_source,
    }


def _validation_dict(target_report, outcome) -> dict:
    if target_report.too_few or target_report.chosen is None:
        return {"too_few": target_report.too_few}
    result = target_report.result(target_report.chosen)
    pooled = result.pooled
    return {
        "chosen": target_report.chosen,
        "folds": [f.label for f in target_report.folds],
        "mae": pooled["mae"],
        "r2": pooled["r2"],
        "coverage": pooled.get("coverage"),
        "min_fold_coverage": min(m["coverage"] for m in result.per_fold),
        "stated_coverage": target_report.coverage,
        "gate_failures": result.gate_failures,
    }
