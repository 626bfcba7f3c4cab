"""Backfill tasks: plan scans, run one chunk of the plan (cached on its inputs and the data)."""

from __future__ import annotations

import hashlib
import json

from prefect import task
from prefect.context import TaskRunContext

from technic_ml import backfill as lib
from technic_ml import stores
from technic_ml.settings import TechnicSettings


@task
def plan_backfill(settings: TechnicSettings, start, end, n_scans: int, seed: int) -> list:
    return lib.plan_for_settings(settings, start, end, n_scans, seed)


def chunk_key(context: TaskRunContext, parameters: dict) -> str:
    """The chunk's scans, the data version (scanner and market data) and the store's identity.

    A wiped and recreated history has a new identity, so its chunks run again. Files deleted by
    hand inside a store are not noticed by the cache; ``refresh_cache=True`` (or a new seed)
    reruns, and the scans themselves are still skipped when stored.
    """
    settings, chunk = parameters["settings"], parameters["chunk"]
    ids = sorted(p.scan_id for p in chunk)
    identity = stores.history_store(settings).identity()
    blob = json.dumps([ids, lib.data_version(settings), identity])
    return "backfill-chunk-" + hashlib.sha256(blob.encode()).hexdigest()[:32]


@task(cache_key_fn=chunk_key, persist_result=True, tags=["backfill"])
def backfill_chunk(settings: TechnicSettings, chunk: list) -> lib.BackfillSummary:
    return lib.run_chunk(settings, chunk)
