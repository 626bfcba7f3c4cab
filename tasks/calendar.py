"""Calendar task: is the scheduled day an NYSE session (scheduled flows skip holidays cleanly)."""

from __future__ import annotations

import datetime as dt

from prefect import task

from technic_ml import nyse


@task
def trading_day_check(when: dt.datetime) -> str | None:
    return nyse.trading_day_check(when)
