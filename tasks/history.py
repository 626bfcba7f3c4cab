"""Scan-history tasks: collect scanner logs from the inbox, compact small files."""

from __future__ import annotations

from pathlib import Path

from prefect import task

from technic_ml import stores
from technic_ml.api import ledger
from technic_ml.history import inbox
from technic_ml.history.inbox import CollectReport, collect_inbox
from technic_ml.history.store import CompactionReport
from technic_ml.settings import TechnicSettings


@task(retries=2, retry_delay_seconds=5)
def fetch_shared_inbox(settings: TechnicSettings) -> list[Path]:
    return inbox.fetch_shared_inbox(stores.shared_inbox(settings), settings.inbox_path)


@task
def collect_history(
    settings: TechnicSettings, inbox_dir: Path, processed: Path, compact_min_files: int
) -> CollectReport:
    return collect_inbox(
        stores.history_store(settings), inbox_dir, processed, compact_min_files=compact_min_files
    )


@task
def compact_history(settings: TechnicSettings, min_files: int) -> CompactionReport:
    return stores.history_store(settings).compact(min_files=min_files)


@task
def match_outcomes(settings: TechnicSettings) -> int | None:
    return ledger.match_outcomes(settings)
