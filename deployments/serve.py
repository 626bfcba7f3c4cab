"""Every deployment, its schedule and its parameters; ``python -m deployments.serve`` serves them.

Schedules are in America/New_York. Scheduled runs pass ``skip_non_trading_days``, so a schedule
that falls on an NYSE holiday ends Completed with a log line saying why. A deployment's name is
its flow's name: ``prefect deployment run 'train-predictors/train-predictors'``.
"""

from __future__ import annotations

import os

from prefect import serve
from prefect.schedules import Cron

from flows.backfill_history import backfill_history, task_runner
from flows.collect_history import collect_history
from flows.market_snapshot import market_snapshot
from flows.train_predictors import train_predictors

TZ = "America/New_York"

#: market-snapshot every 30 minutes from the open (9:30) to the close (16:00) on weekdays.
SNAPSHOT_SCHEDULES = (
    Cron("30 9 * * 1-5", timezone=TZ),
    Cron("0,30 10-15 * * 1-5", timezone=TZ),
    Cron("0 16 * * 1-5", timezone=TZ),
)
COLLECT_SCHEDULE = Cron("5 * * * *", timezone=TZ)  # hourly, off the half hours the snapshot uses
TRAIN_SCHEDULE = Cron("30 17 * * 1-5", timezone=TZ)  # nightly, after the close and the last snapshot


def deployments() -> list:
    """The RunnerDeployments ``serve`` runs (backfill-history has no schedule: ad hoc only)."""
    backfill = backfill_history.with_options(
        task_runner=task_runner(os.environ.get("TECHNIC_BACKFILL_TASK_RUNNER", "threads"))
    )
    return [
        market_snapshot.to_deployment(
            name="market-snapshot",
            schedules=list(SNAPSHOT_SCHEDULES),
            parameters={"skip_non_trading_days": True},
            description="Market conditions every 30 minutes of the trading day.",
            tags=["technic-ml"],
        ),
        collect_history.to_deployment(
            name="collect-history",
            schedules=[COLLECT_SCHEDULE],
            description="Import new scanner logs from the inbox, hourly.",
            tags=["technic-ml"],
        ),
        train_predictors.to_deployment(
            name="train-predictors",
            schedules=[TRAIN_SCHEDULE],
            parameters={"params": {"skip_non_trading_days": True}},
            description="Validate, train and publish both predictors, nightly after the close.",
            tags=["technic-ml"],
        ),
        backfill.to_deployment(
            name="backfill-history",
            description="Backfill scan history with the reference scanner (ad hoc).",
            tags=["technic-ml"],
        ),
    ]


def main() -> None:
    serve(*deployments(), limit=int(os.environ.get("TECHNIC_SERVE_LIMIT", "4")))


if __name__ == "__main__":
    main()
