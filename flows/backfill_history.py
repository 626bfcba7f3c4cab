"""backfill-history: run the reference scanner over past days, chunks fanned out with ``.map``.

The task runner is configurable: threads by default (:func:`task_runner`), or Dask through the
optional ``dask`` extra (``pip install 'technic-ml[dask]'``): ``TECHNIC_DASK_ADDRESS=tcp://host:8786``
sends the chunks to that scheduler's workers, ``TECHNIC_BACKFILL_TASK_RUNNER=dask`` alone starts a
LocalCluster where the flow runs (:func:`configured_task_runner`); in code,
``backfill_history.with_options(task_runner=task_runner("dask", address="tcp://..."))``. Every
worker writes to the configured history store itself, so it must see the same data root.
Chunks are independent (each opens its own market data and writes under the store's lock) and
cached on their inputs and the data version, so a re-run skips finished chunks. Afterwards the
day partitions the chunks wrote are compacted.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Annotated, Any

from prefect import flow, get_run_logger, unmapped
from prefect.futures import as_completed
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import BaseModel, ConfigDict, Field, model_validator

from tasks import history
from tasks.artifacts import BackfillProgress, backfill_artifact
from tasks.backfill import backfill_chunk, plan_backfill
from technic_ml.backfill import (
    BACKFILL_SCANS,
    BACKFILL_SEED,
    BACKFILL_YEARS,
    BackfillSummary,
    backfill_window,
    split_plan,
)
from technic_ml.market_conditions import default_as_of
from technic_ml.market_data import open_market_data
from technic_ml.settings import TechnicSettings


class BackfillParams(BaseModel):
    """What to backfill; without dates, the ``years`` before the last session of the data."""

    model_config = ConfigDict(extra="forbid")  # a misspelt --param fails instead of being ignored

    start: dt.date | None = None
    end: dt.date | None = None
    n_scans: Annotated[int, Field(ge=1, le=2_000_000)] = BACKFILL_SCANS
    seed: int = BACKFILL_SEED
    chunks: Annotated[int, Field(ge=1, le=10_000)] = 4
    years: Annotated[int, Field(ge=1, le=30)] = BACKFILL_YEARS

    @model_validator(mode="after")
    def _ordered(self):
        if self.start and self.end and self.start > self.end:
            raise ValueError(f"start/end: received {self.start}..{self.end}; expected start <= end")
        return self


def task_runner(kind: str = "threads", *, workers: int = 2, address: str | None = None, **cluster: Any):
    """``threads`` (default) or ``dask`` (a LocalCluster of ``workers`` processes, or ``address``)."""
    if kind == "threads":
        return ThreadPoolTaskRunner(max_workers=workers)
    if kind == "dask":
        try:
            from prefect_dask import DaskTaskRunner
        except ImportError as exc:  # the optional extra
            raise RuntimeError(
                "task runner 'dask' needs the optional extra: pip install 'technic-ml[dask]'"
            ) from exc
        if address:
            return DaskTaskRunner(address=address)
        return DaskTaskRunner(cluster_kwargs={"n_workers": workers, "threads_per_worker": 1, **cluster})
    raise ValueError(f"task runner: received {kind!r}; expected 'threads' or 'dask'")


def configured_task_runner(settings: TechnicSettings | None = None):
    """The runner the settings ask for: Dask at ``dask_address``, else ``backfill_task_runner``."""
    settings = settings or TechnicSettings()
    if settings.dask_address:
        return task_runner("dask", address=settings.dask_address)
    return task_runner(settings.backfill_task_runner)


# Chosen here, not with .with_options in deployments/serve.py: served and worker runs load the
# entrypoint from this file, so only the decorator's runner is the one they use.
@flow(name="backfill-history", task_runner=configured_task_runner())
def backfill_history(params: BackfillParams | None = None) -> dict:
    logger = get_run_logger()
    params = params or BackfillParams()
    settings = TechnicSettings()
    start, end = params.start, params.end
    if start is None or end is None:
        last, _ = default_as_of(open_market_data(settings))
        default_start, end = backfill_window(end or last.date(), params.years)
        start = start or default_start
    plan = plan_backfill(settings, start, end, params.n_scans, params.seed)
    chunks = split_plan(plan, params.chunks)
    logger.info("backfill %s..%s: %d scans in %d chunks", start, end, len(plan), len(chunks))
    progress = BackfillProgress(len(plan))
    total = BackfillSummary(data_source=settings.market_source, chunks=0)
    t0 = time.perf_counter()
    for future in as_completed(backfill_chunk.map(settings=unmapped(settings), chunk=chunks)):
        part = future.result()
        if future.state.is_completed() and future.state.name == "Cached":
            # The cached summary is the first run's; this run ran nothing for the chunk.
            part = BackfillSummary(part.planned, skipped_existing=part.planned, data_source=part.data_source)
        total = total.merge(part)
        progress.advance(part.planned)
    total.seconds = time.perf_counter() - t0
    if total.added:
        # Chunks write in batches, several files per day partition; one file per day reads faster.
        compaction = history.compact_history(settings, 2)
        logger.info("%s", compaction)
    backfill_artifact(total, len(chunks))
    logger.info("%s", total)
    return total.to_dict() | {"chunks": len(chunks)}
