"""Every deployment, its schedule and its parameters; ``python -m deployments.serve`` serves them.

Schedules are in America/New_York. A run the scheduler creates on an NYSE holiday ends Completed
with a log line saying why (ad-hoc runs always run). ``concurrency_limit=1``: a run that would
overlap the previous one of the same deployment waits for it. A deployment's name is
its flow's name: ``prefect deployment run 'train-predictors/train-predictors'``.

Serving also creates (or leaves unchanged) the retrain automation (``deployments/automations.py``):
a ``technic-ml.model.degraded`` event from ``model-monitor`` runs ``train-predictors``.
"""

from __future__ import annotations

from deployments import prefect_env

prefect_env.set_defaults()  # before Prefect is imported (python -m deployments.serve): it reads them then

from prefect import serve  # noqa: E402
from prefect.schedules import Cron  # noqa: E402

from deployments.automations import RETRAIN_AUTOMATION, ensure_retrain_automation  # noqa: E402
from flows.backfill_history import backfill_history  # noqa: E402
from flows.collect_history import collect_history  # noqa: E402
from flows.daily_presets import daily_presets  # noqa: E402
from flows.market_snapshot import market_snapshot  # noqa: E402
from flows.model_monitor import model_monitor  # noqa: E402
from flows.train_predictors import train_predictors  # noqa: E402
from technic_ml.settings import TechnicSettings  # noqa: E402

TZ = "America/New_York"

#: market-snapshot every 30 minutes from the open (9:30) to the close (16:00) on weekdays.
SNAPSHOT_SCHEDULES = (
    Cron("30 9 * * 1-5", timezone=TZ),
    Cron("0,30 10-15 * * 1-5", timezone=TZ),
    Cron("0 16 * * 1-5", timezone=TZ),
)
COLLECT_SCHEDULE = Cron("5 * * * *", timezone=TZ)  # hourly, off the half hours the snapshot uses
TRAIN_SCHEDULE = Cron("30 17 * * 1-5", timezone=TZ)  # nightly, after the close and the last snapshot
PRESETS_SCHEDULE = Cron("30 8 * * 1-5", timezone=TZ)  # before the open, from last night's champions
#: model-monitor hourly through the trading day (9:45 to 15:45), and after the close (16:30): late
#: enough for the day's outcomes, early enough that a retrain it asks for beats the nightly one.
MONITOR_SCHEDULES = (Cron("45 9-15 * * 1-5", timezone=TZ), Cron("30 16 * * 1-5", timezone=TZ))


def _deployment(flow, description: str, schedules=()):
    """A deployment named after its flow, one run at a time (an overlapping run waits)."""
    return flow.to_deployment(
        name=flow.name,
        schedules=list(schedules),
        description=description,
        tags=["technic-ml"],
        concurrency_limit=1,
    )


def deployments() -> list:
    """The RunnerDeployments ``serve`` runs (backfill-history has no schedule: ad hoc only)."""
    return [
        _deployment(
            market_snapshot, "Market conditions every 30 minutes of the trading day.", SNAPSHOT_SCHEDULES
        ),
        _deployment(collect_history, "Import new scanner logs from the inbox, hourly.", [COLLECT_SCHEDULE]),
        _deployment(
            train_predictors,
            "Validate, train and publish both predictors, nightly after the close.",
            [TRAIN_SCHEDULE],
        ),
        _deployment(
            daily_presets,
            "Suggest quick, balanced and deep presets and hot sectors, weekdays before the open.",
            [PRESETS_SCHEDULE],
        ),
        _deployment(
            model_monitor,
            "Live coverage, error, abstention and input drift of every model; degraded ones ask for"
            " a retrain. Hourly in the trading day and after the close.",
            MONITOR_SCHEDULES,
        ),
        _deployment(backfill_history, "Backfill scan history with the reference scanner (ad hoc)."),
    ]


def main() -> None:
    served = deployments()
    # The automation names train-predictors by id: register that deployment first (serve
    # registers it again, an upsert that keeps the id and leaves this automation alone).
    train = next(d for d in served if d.name == train_predictors.name)
    cooldown = TechnicSettings().retrain_cooldown_minutes
    _, how = ensure_retrain_automation(cooldown, train.apply())
    print(f"automation {RETRAIN_AUTOMATION!r}: {how} (cooldown {cooldown} minutes)", flush=True)
    serve(*served, limit=TechnicSettings().serve_limit)


if __name__ == "__main__":
    main()
