"""Prefect flows, one per file; each flow body reads like a table of contents of its tasks.

``market-snapshot``, ``collect-history``, ``backfill-history``, ``train-predictors``,
``daily-presets`` and the main job (``main-job``: backfill, then train). Schedules and serving
live in ``deployments/``.
"""

from __future__ import annotations

import datetime as dt

from prefect import runtime
from prefect.context import FlowRunContext

from tasks.calendar import trading_day_check
from technic_ml.nyse import now_ny


def _auto_scheduled() -> bool:
    """True for a run the scheduler created (not an ad-hoc, UI or subflow run)."""
    context = FlowRunContext.get()
    return bool(context and context.flow_run and context.flow_run.auto_scheduled)


def scheduled_day_check() -> str | None:
    """Why this scheduled run's day is not an NYSE session; None when it is, or for ad-hoc runs.

    Only runs the scheduler created are skipped: a user who triggers a run on a holiday means it.
    """
    if not _auto_scheduled():
        return None
    when = runtime.flow_run.scheduled_start_time
    if not isinstance(when, dt.datetime):
        when = now_ny()
    return trading_day_check(when)
