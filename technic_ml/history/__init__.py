"""Scan history: every scan that happened, stored for the predictors and the optimizer.

:class:`ScanHistoryStore` is the store (an append-only, idempotent parquet dataset
partitioned by New York scan date); :mod:`.schema` maps records to columns, :mod:`.jsonl` reads and
writes the scanner's JSONL line format, and :mod:`.inbox` collects scanner logs dropped in an inbox
folder into the store (:func:`collect_inbox`).
"""

from technic_ml.history.inbox import CollectedFile, CollectReport, collect_inbox
from technic_ml.history.jsonl import ImportSummary
from technic_ml.history.store import (
    AUTO_COMPACT_FILES,
    AddSummary,
    CompactionReport,
    RetentionReport,
    ScanHistoryStore,
)

__all__ = [
    "AUTO_COMPACT_FILES",
    "AddSummary",
    "CollectReport",
    "CollectedFile",
    "CompactionReport",
    "ImportSummary",
    "RetentionReport",
    "ScanHistoryStore",
    "collect_inbox",
]
