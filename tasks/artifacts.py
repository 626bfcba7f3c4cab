"""What the Prefect UI shows: artifacts built from the library's report content.

Plain functions, not tasks: each creates artifacts in the current flow run (a task would add a
run per artifact and nothing to retry). Keys are stable, so the Artifacts page keeps each one's
history across runs: ``market-snapshot``, ``collect-history``, ``backfill-progress``,
``backfill-history``, ``validation-<target>``, ``validation-<target>-figure``,
``feature-importances-<target>``, ``model-registry``, ``model-aliases``, ``train-predictors``,
``daily-presets``, ``daily-presets-table``, ``hot-sectors``, ``model-monitor``.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from technic_ml.jobs.market import Snapshot
from technic_ml.monitor import figures as monitor_figures
from technic_ml.optimizer import reporting as presets_reporting
from technic_ml.predictors import reporting, validation
from technic_ml.predictors.registry import ModelRegistry

log = logging.getLogger("technic_ml.artifacts")


def _cell(value: Any) -> Any:
    """Table cells the UI renders: finite numbers rounded, NaN as empty, others as text."""
    if isinstance(value, float):
        return None if not math.isfinite(value) else round(value, 6)
    if value is None or isinstance(value, int | str | bool):
        return value
    return str(value)


def _rows(rows: list[dict]) -> list[dict]:
    return [{k: _cell(v) for k, v in row.items()} for row in rows]


def snapshot_artifact(snapshot: Snapshot, *, skipped: str | None = None) -> None:
    c = snapshot.conditions
    status = "**DEGRADED**: " + "; ".join(c.degraded_reasons or []) if c.degraded else "complete"
    lines = [
        f"# Market snapshot {snapshot.as_of:%Y-%m-%d %H:%M %Z}",
        "",
        f"Source: `{snapshot.market_source}`{' (embedded sample)' if snapshot.is_sample else ''};"
        f" as of {snapshot.as_of.isoformat()} ({snapshot.as_of_reason}). Status: {status}.",
        "",
        "| field | value |",
        "|---|---|",
    ]
    for key, value in c.model_dump(mode="json").items():
        lines.append(f"| {key} | {value} |")
    lines.append(f"\nStored at `{snapshot.path}`.")
    create_markdown_artifact(
        "\n".join(lines),
        key="market-snapshot",
        description="DEGRADED market snapshot" if c.degraded else "Market snapshot",
    )


def collect_artifact(report) -> None:
    create_table_artifact(
        _rows(report.as_rows()) or [{"file": "(inbox empty)"}],
        key="collect-history",
        description=str(report),
    )


class BackfillProgress:
    """A progress artifact updated as chunks finish (the UI shows a bar on the run page)."""

    def __init__(self, total_scans: int):
        self.total = max(total_scans, 1)
        self.done = 0
        self.id = create_progress_artifact(
            0.0, key="backfill-progress", description=f"backfill: 0 of {total_scans} scans"
        )

    def advance(self, scans: int) -> None:
        self.done += scans
        update_progress_artifact(
            self.id,
            min(100.0, 100.0 * self.done / self.total),
            description=f"backfill: {self.done} of {self.total} scans",
        )


def backfill_artifact(summary, chunks: int) -> None:
    create_markdown_artifact(
        f"# Backfill\n\n{summary}\n\nChunks: {chunks}.",
        key="backfill-history",
        description="Backfill summary",
    )


def validation_artifacts(trained, data, gates) -> None:
    """Per target: the validation table against the gates and champion, the figure, importances."""
    target, report = trained.target, trained.report
    create_markdown_artifact(
        validation.markdown(report, gates),
        key=f"validation-{target}",
        description=f"{target} predictor: rolling-origin validation",
    )
    if report.chosen is not None and not report.too_few:
        png = reporting.validation_figure_png(report, gates=gates)
        create_markdown_artifact(
            reporting.image_markdown(png, f"{target}: predicted vs actual and coverage per fold"),
            key=f"validation-{target}-figure",
            description=f"{target}: predicted vs actual, coverage per fold",
        )
    importances = reporting.feature_importances(trained, data, n_rows=1000)
    if len(importances):
        create_table_artifact(
            _rows(importances.to_dict("records")),
            key=f"feature-importances-{target}",
            description=importances.attrs.get("method", "permutation importance"),
        )


def registry_artifacts(registry: ModelRegistry) -> None:
    create_table_artifact(
        _rows(reporting.registry_rows(registry)) or [{"model": "(no versions)"}],
        key="model-registry",
        description="Model registry: versions, newest first",
    )
    create_table_artifact(
        _rows(reporting.alias_history_rows(registry)) or [{"model": "(no aliases)"}],
        key="model-aliases",
        description="Champion / challenger history",
    )


def decision_artifact(run, outcomes) -> None:
    create_markdown_artifact(
        reporting.decision_markdown(run, outcomes),
        key="train-predictors",
        description="Validation and publish decision",
    )


def presets_artifacts(document: dict, saved: bool) -> None:
    flagged = " (FLAGGED)" if document["flags"] else ""
    create_markdown_artifact(
        presets_reporting.presets_markdown(document, saved=saved),
        key="daily-presets",
        description=f"Daily presets for {document['for_session']}{flagged}",
    )
    create_table_artifact(
        _rows(presets_reporting.preset_rows(document)),
        key="daily-presets-table",
        description=f"Presets {document['presets_id']} ({document['source']})",
    )
    rows = presets_reporting.hot_sector_rows(document)
    notes = "; ".join((document.get("hot_sectors") or {}).get("notes", []))
    create_table_artifact(
        _rows(rows) or [{"sector": "(no evidence)", "note": notes}],
        key="hot-sectors",
        description=f"Hot sectors: {notes}" if notes else "Hot sectors",
    )


def monitor_artifacts(report, outcomes) -> None:
    degraded = [m.model for m in report.degraded]
    create_markdown_artifact(
        monitor_figures.monitor_markdown(report, outcomes),
        key="model-monitor",
        description="Model monitor: "
        + (f"DEGRADED {', '.join(degraded)}" if degraded else "no model degraded"),
    )
