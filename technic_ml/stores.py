"""Open each store where the settings say it lives: the one place that knows local from shared.

With a local data root every store is the on-disk one (``flock`` and renames, one machine). With
``TECHNIC_DATA_ROOT=s3://bucket/prefix`` (``settings.shared_root``) the scan history is a Delta
table, the registry, snapshots and presets are objects under the same prefix, and what is per
machine (the local inbox logs are fetched into, quarantine, market cache, API ledger) stays under
the local ``data_root``. Library
code, tasks, flows, the CLI and the API all open stores through these functions.
"""

from __future__ import annotations

from technic_ml.history import ScanHistoryStore
from technic_ml.objectstore import ObjectRoot
from technic_ml.optimizer.presets import PresetsHistory, SharedPresetsHistory
from technic_ml.predictors.registry import ModelRegistry
from technic_ml.settings import TechnicSettings
from technic_ml.snapshots import SharedSnapshotStore, SnapshotStore


def history_store(settings: TechnicSettings) -> ScanHistoryStore:
    if settings.shared_root:
        from technic_ml.history.delta import DeltaHistoryStore

        return DeltaHistoryStore(f"{settings.shared_root}/history", quarantine_dir=settings.quarantine_path)
    return ScanHistoryStore(settings.history_path, quarantine_dir=settings.quarantine_path)


def model_registry(settings: TechnicSettings) -> ModelRegistry:
    if settings.shared_root:
        root = ObjectRoot(f"{settings.shared_root}/models")
        return ModelRegistry(root.path, filesystem=root.fs)
    return ModelRegistry(settings.model_registry_path)


def snapshot_store(settings: TechnicSettings) -> SnapshotStore:
    if settings.shared_root:
        return SharedSnapshotStore(ObjectRoot(f"{settings.shared_root}/snapshots"))
    return SnapshotStore(settings.snapshot_path)


def presets_history(settings: TechnicSettings) -> PresetsHistory:
    if settings.shared_root:
        return SharedPresetsHistory(ObjectRoot(f"{settings.shared_root}/presets"))
    return PresetsHistory(settings.presets_path)


def shared_inbox(settings: TechnicSettings) -> ObjectRoot | None:
    """``<bucket>/inbox`` with an object-storage data root (scanners upload logs there), else None."""
    return ObjectRoot(f"{settings.shared_root}/inbox") if settings.shared_root else None


def describe(settings: TechnicSettings) -> dict[str, str]:
    """Where each store lives, for logs and reports."""
    if settings.shared_root:
        shared = settings.shared_root
        return {
            "history": f"{shared}/history (Delta table)",
            "models": f"{shared}/models",
            "snapshots": f"{shared}/snapshots",
            "presets": f"{shared}/presets",
            "inbox": f"{shared}/inbox, fetched into {settings.inbox_path}",
        }
    return {
        "history": str(settings.history_path),
        "models": str(settings.model_registry_path),
        "snapshots": str(settings.snapshot_path),
        "presets": str(settings.presets_path),
        "inbox": str(settings.inbox_path),
    }
