"""Scan history: every scan that happened, stored for the predictors and the optimizer.

:class:`ScanHistoryStore` is the store (an append-only, idempotent parquet dataset
partitioned by New York scan date); :mod:`.schema` maps records to columns, :mod:`.jsonl` reads and
writes the scanner's JSONL line format, and :mod:`.inbox` collects scanner logs dropped in an inbox
folder into the store (:func:`collect_inbox`).

The names below are imported on first use: the importer's parser processes import
:mod:`.jsonl` only, and loading the store (and pandas with it) in each of them cost about
0.4 s of CPU per process, time taken from the import it was meant to speed up.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from technic_ml.history.inbox import CollectedFile, CollectReport, collect_inbox
    from technic_ml.history.jsonl import ImportSummary, sample_scan_log
    from technic_ml.history.store import (
        AUTO_COMPACT_FILES,
        AddSummary,
        CompactionReport,
        RetentionReport,
        ScanHistoryStore,
    )

_HOME = {
    "AUTO_COMPACT_FILES": "store",
    "AddSummary": "store",
    "CollectReport": "inbox",
    "CollectedFile": "inbox",
    "CompactionReport": "store",
    "ImportSummary": "jsonl",
    "RetentionReport": "store",
    "ScanHistoryStore": "store",
    "collect_inbox": "inbox",
    "sample_scan_log": "jsonl",
}

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
    "sample_scan_log",
]


def __getattr__(name: str) -> Any:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
