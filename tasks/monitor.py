"""Model-monitor tasks: read the ledger and history, judge the models, promote, emit events."""

from __future__ import annotations

import datetime as dt

import pandas as pd
from prefect import get_client, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    FlowRunFilter,
    FlowRunFilterCreatedBy,
    FlowRunFilterExpectedStartTime,
)
from prefect.events import emit_event
from prefect.exceptions import ObjectNotFound

from technic_ml.monitor import inputs, report
from technic_ml.monitor.live import Thresholds
from technic_ml.predictors.registry import ModelRegistry
from technic_ml.settings import TechnicSettings

TRAIN_DEPLOYMENT = "train-predictors/train-predictors"


@task(retries=2, retry_delay_seconds=2)  # SQLite busy while the API flushes: worth a retry
def ledger_outcomes(settings: TechnicSettings) -> pd.DataFrame:
    return inputs.ledger_outcomes(settings)


@task(cache_policy=NO_CACHE)
def scan_history(settings: TechnicSettings) -> pd.DataFrame | None:
    return inputs.scan_history(settings)


@task(cache_policy=NO_CACHE)
def monitor_models(
    outcomes: pd.DataFrame, registry: ModelRegistry, history, thresholds: Thresholds
) -> report.MonitorReport:
    return report.monitor_models(outcomes, registry, history, thresholds=thresholds)


@task(cache_policy=NO_CACHE)
def promote_challengers(registry: ModelRegistry, monitored: report.MonitorReport) -> list[dict]:
    return report.promote_challengers(registry, monitored)


@task(retries=1, retry_delay_seconds=5)
def recent_retrains(cooldown_minutes: int) -> dict[str, list[str]]:
    """Per target, the train-predictors runs an automation created within the cooldown that retrain
    it (none when the deployment does not exist, e.g. an ad-hoc run on an ephemeral server)."""
    since = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=cooldown_minutes)
    with get_client(sync_client=True) as client:
        try:
            deployment = client.read_deployment_by_name(TRAIN_DEPLOYMENT)
        except ObjectNotFound:
            return {}
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])),
            flow_run_filter=FlowRunFilter(
                created_by=FlowRunFilterCreatedBy(type_=["AUTOMATION"]),
                expected_start_time=FlowRunFilterExpectedStartTime(after_=since),
            ),
        )
    out: dict[str, list[str]] = {}
    for run in runs:
        for target in report.retrained_targets(run.parameters):
            out.setdefault(target, []).append(run.name)
    return out


@task
def emit_events(events: list[dict]) -> int:
    """Emit each event to Prefect (the event feed; the retrain automation listens)."""
    for e in events:
        if emit_event(event=e["event"], resource=e["resource"], payload=e["payload"]) is None:
            get_run_logger().warning("%s not emitted: no Prefect events client", e["event"])
    return len(events)
