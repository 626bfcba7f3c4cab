"""The main job's reports: scan-history statistics (overall and by configuration) and the JSON
summary of the run, under ``<data_root>/reports``."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from technic_ml import stores
from technic_ml.nyse import now_ny
from technic_ml.settings import TechnicSettings

STATS_GROUPS = ("max_symbols", "min_tech_rating", "lookback_days", "sectors")


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
