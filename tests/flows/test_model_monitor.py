"""model-monitor on a harness server: a degraded champion's event fires the retrain automation
once; the cooldown suppresses a second request; the artifact shows the figures."""

from __future__ import annotations

import time

import pytest

from flows.model_monitor import MonitorParams, model_monitor
from tests.flows.conftest import artifacts_of, logs_of, run_id
from tests.support.champions import publish_sample_champions

pytestmark = [pytest.mark.usefixtures("prefect_harness"), pytest.mark.slow]


@pytest.fixture
def with_champions(with_history, history_template):
    publish_sample_champions(with_history.data_root, history_template)
    return with_history


def _ledger_with_outcomes(settings, n: int, actual: float):
    """n served count predictions of 10 in [8, 12] by the champion, each with outcome ``actual``."""
    from technic_ml.api.ledger import PredictionLedger
    from technic_ml.predictors.estimators import Prediction
    from technic_ml.predictors.registry import ModelRegistry

    champion = ModelRegistry(settings.model_registry_path).aliases("result-count")["champion"]
    ledger = PredictionLedger(settings.ledger_path)
    try:
        for i in range(n):
            count = Prediction("count", "model", 10.0, 8.0, 12.0, 0.9, version=champion)
            ledger.record(f"m{i}", {"max_symbols": 100}, count, Prediction("duration", "heuristic", 5.0))
            ledger.report(f"m{i}", int(actual), None)
    finally:
        ledger.close()
    return champion


def _events(name: str) -> list:
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter

    with get_client(sync_client=True) as client:
        return client.read_events(filter=EventFilter(event=EventNameFilter(name=[name])), limit=50).events


def _automated_runs(deployment_id) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterCreatedBy,
    )

    with get_client(sync_client=True) as client:
        return client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
            flow_run_filter=FlowRunFilter(created_by=FlowRunFilterCreatedBy(type_=["AUTOMATION"])),
        )


def _wait(predicate, seconds=30.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if found := predicate():
            return found
        time.sleep(0.5)
    return predicate()


def test_without_outcomes_the_monitor_reports_too_few_and_emits_healthy(with_champions):
    state = model_monitor(MonitorParams(), return_state=True)
    assert state.is_completed(), state.message
    result = state.result()
    assert result["degraded"] == [] and result["outcomes"] == 0
    assert result["models"]["count"]["champion"]["too_few"] is True
    md = artifacts_of(run_id(state))["model-monitor"].data
    assert "too few outcomes" in md and "![result-count realized coverage" in md


def test_a_degraded_champion_triggers_one_retrain_within_the_cooldown(with_champions):
    from deployments.automations import ensure_retrain_automation
    from flows.train_predictors import train_predictors

    settings = with_champions
    deployment_id = train_predictors.to_deployment(name="train-predictors").apply()
    _, how = ensure_retrain_automation(60)
    assert how in {"created", "updated"}  # updated: an earlier test session's harness left one
    assert ensure_retrain_automation(60)[1] == "unchanged"
    champion = _ledger_with_outcomes(settings, 80, actual=40)
    before = len(_automated_runs(deployment_id))

    state = model_monitor(MonitorParams(), return_state=True)
    assert state.is_completed(), state.message
    result = state.result()
    assert result["degraded"] == ["result-count"]
    findings = result["models"]["count"]["findings"]
    assert any("coverage 0.0% on its last 80 outcomes is below the floor" in f for f in findings)
    warnings = [log.message for log in logs_of(run_id(state)) if log.level >= 30]
    assert any(m.startswith("result-count degraded: coverage 0.0%") for m in warnings), warnings
    assert "DEGRADED result-count" in artifacts_of(run_id(state))["model-monitor"].description

    degraded = _wait(lambda: [e for e in _events("technic-ml.model.degraded")
                              if e.resource.get("technic-ml.version") == champion])  # fmt: skip
    assert degraded and degraded[0].resource.get("technic-ml.retrain") == "requested"
    assert degraded[0].payload["coverage"] == 0 and degraded[0].payload["n_outcomes"] == 80
    runs = _wait(lambda: len(_automated_runs(deployment_id)) > before and _automated_runs(deployment_id))
    assert runs and len(runs) == before + 1, "the automation did not run train-predictors"
    # The server rendered the degraded event's target into the run's parameters: the healthy
    # duration model is not retrained along with it.
    [new] = [r for r in runs if r.parameters["params"].get("targets") == ["count"]]
    assert new.parameters["params"]["skip_non_trading_days"] is False

    # Still degraded an hour later (here: at once): the request is suppressed, no second run.
    again = model_monitor(MonitorParams(), return_state=True)
    assert again.is_completed(), again.message
    warnings = [log.message for log in logs_of(run_id(again)) if log.level >= 30]
    assert any(m.startswith("result-count: retrain not requested: the automation ran train-predictors"
                            " for it within 360") for m in warnings), warnings  # fmt: skip
    time.sleep(3)
    assert len(_automated_runs(deployment_id)) == before + 1
