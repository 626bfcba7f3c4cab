"""collect-history: import new scanner logs from the inbox into the scan history.

Imported files move to the processed folder, bad lines go to quarantine with their reasons, the
same file arriving twice imports nothing new, and small history files are compacted once they
pile up (all in :func:`technic_ml.history.inbox.collect_inbox`).
"""

from __future__ import annotations

from typing import Annotated

from prefect import flow, get_run_logger
from pydantic import Field

from tasks import history
from tasks.artifacts import collect_artifact
from technic_ml.settings import TechnicSettings


@flow(name="collect-history")
def collect_history(
    compact_min_files: Annotated[int, Field(ge=2, le=10_000)] = 8,
    create_inbox: bool = True,
) -> dict:
    """Import every log in ``<data_root>/inbox`` (``TECHNIC_INBOX_DIR``)."""
    logger = get_run_logger()
    settings = TechnicSettings()
    if create_inbox:
        settings.inbox_path.mkdir(parents=True, exist_ok=True)
    fetched = history.fetch_shared_inbox(settings) if settings.shared_root else []
    if settings.shared_root:
        logger.info("shared inbox %s/inbox: %d logs fetched", settings.shared_root, len(fetched))
    report = history.collect_history(
        settings, settings.inbox_path, settings.processed_path, compact_min_files
    )
    collect_artifact(report)
    logger.info("%s", report)
    if report.quarantined or report.files_unreadable:
        # WARNING, not INFO: kept records are fine, but someone has to look at what was set aside.
        logger.warning(
            "collect-history: %d lines quarantined (%s), %d inbox entries unreadable and moved aside",
            report.quarantined,
            ", ".join(str(f.quarantine_file) for f in report.files if f.quarantine_file) or "-",
            report.files_unreadable,
        )
    matched = history.match_outcomes(settings) if report.added else None
    if matched:
        logger.info("prediction ledger: %d predictions matched with their scan's outcome", matched)
    result = {
        "files_imported": report.files_imported,
        "files_duplicate": report.files_duplicate,
        "files_unreadable": report.files_unreadable,
        "added": report.added,
        "invalid": report.invalid,
        "outcomes_matched": matched,
    }
    if settings.shared_root:
        result["shared_logs_fetched"] = len(fetched)
    return result
