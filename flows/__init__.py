"""Prefect flows, one per file; each flow body reads like a table of contents of its tasks.

``market-snapshot``, ``collect-history``, ``backfill-history``, ``train-predictors`` and the main
job (``main-job``: backfill, then train). Schedules and serving live in ``deployments/``.
"""

from __future__ import annotations

import datetime as dt

from prefect import runtime

from tasks.calendar import trading_day_check
from technic_ml.nyse import now_ny


def scheduled_day_check() -> str | None:
    """Why this run's scheduled day is not an NYSE session (None when it is one)."""
    when = runtime.flow_run.scheduled_start_time
    if not isinstance(when, dt.datetime):
        when = now_ny()
    return trading_day_check(when)
