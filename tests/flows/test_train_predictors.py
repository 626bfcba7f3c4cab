"""train-predictors: publish on passing gates, artifacts in the UI, Failed and untouched otherwise."""

from __future__ import annotations

import datetime as dt
import math
import threading
import time

import pytest

from flows.train_predictors import TrainParams, train_predictors
from technic_ml.backfill import plan_backfill, run_plan
from technic_ml.market_data import open_market_data
from technic_ml.predictors.registry import ModelRegistry
from technic_ml.predictors.validation import Gates
from technic_ml.stores import history_store
from tests.flows.conftest import artifacts_of, run_id

pytestmark = [pytest.mark.usefixtures("prefect_harness"), pytest.mark.slow]

# One candidate and two folds keep a run to seconds. The sample's millisecond durations are
# mostly machine noise (R² about 0.3), so these tests lower the duration bar to let it publish.
FAST = {"candidates": ["hgb/enriched"], "n_folds": 2, "collect": False}
# Two small folds also make coverage noisy, so its tolerance is wide too: these tests are about
# the orchestration; accuracy and coverage are tested in tests/predictors on purpose-built data.
LENIENT = Gates(duration_r2_min=-math.inf, duration_mae_max=math.inf, coverage_tolerance=0.5)


def test_passing_gates_publish_both_champions_with_their_artifacts(with_history):
    state = train_predictors(TrainParams(**FAST, gates=LENIENT), return_state=True)
    assert state.is_completed(), state.message
    result = state.result()
    assert {t: r["alias"] for t, r in result.items()} == {"count": "champion", "duration": "champion"}
    registry = ModelRegistry(with_history.model_registry_path)
    assert registry.aliases("result-count")["champion"] == result["count"]["version"]

    found = artifacts_of(run_id(state))
    expected = {
        "train-predictors",
        "validation-count",
        "validation-duration",
        "validation-count-figure",
        "feature-importances-count",
        "model-registry",
        "model-aliases",
    }
    assert expected <= set(found), sorted(found)
    assert "data:image/png;base64," in found["validation-count-figure"].data
    assert "champion" in found["train-predictors"].data

    # Unchanged history: the champions are kept without retraining.
    again = train_predictors(TrainParams(**FAST, gates=LENIENT))
    assert again["count"]["version"] == result["count"]["version"]
    assert "unchanged" in again["count"]["reason"]


def test_a_failed_gate_publishes_nothing_and_fails_the_run_with_the_reason(with_history):
    train_predictors(TrainParams(**FAST, gates=LENIENT, targets=["count"]))
    registry = ModelRegistry(with_history.model_registry_path)
    champion = registry.aliases("result-count")["champion"]
    versions = [v.version for v in registry.versions("result-count")]

    # New scans (so the champion is not "unchanged") and a bar no model can meet.
    market = open_market_data(with_history)
    plan = plan_backfill(dt.date(2018, 6, 1), dt.date(2018, 12, 31), 40, 99, market.universe())
    run_plan(plan, market, history_store(with_history))
    impossible = Gates(count_mae_max=1e-9)
    state = train_predictors(TrainParams(**FAST, gates=impossible, targets=["count"]), return_state=True)
    assert state.is_failed()
    assert "count" in state.message and "gates failed" in state.message and "MAE" in state.message
    assert registry.aliases("result-count")["champion"] == champion
    assert [v.version for v in registry.versions("result-count")] == versions
    decision = artifacts_of(run_id(state))["train-predictors"].data
    assert "NOT published" in decision
    # ... and in the event feed, with the champion it left serving
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventRelatedFilter

    def gate_failed():
        with get_client(sync_client=True) as client:
            return client.read_events(
                filter=EventFilter(
                    event=EventNameFilter(name=["technic-ml.model.gate-failed"]),
                    related=EventRelatedFilter(id=[f"prefect.flow-run.{run_id(state)}"]),
                ),
                limit=50,
            ).events

    deadline = time.monotonic() + 20  # events travel asynchronously (a websocket worker)
    while not (events := gate_failed()) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert [e.resource.id for e in events] == ["technic-ml.model.result-count"]
    assert events[0].payload["champion_untouched"] == champion and "MAE" in events[0].payload["reason"]


def test_a_misspelt_parameter_is_refused_not_ignored():
    with pytest.raises(ValueError, match="n_fold"):
        TrainParams.model_validate({"n_fold": 4})


def test_two_runs_at_once_leave_a_consistent_registry(with_history):
    states = []

    def one():
        states.append(
            train_predictors(TrainParams(**FAST, gates=LENIENT, targets=["count"]), return_state=True)
        )

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(s.is_completed() for s in states), [s.message for s in states]
    registry = ModelRegistry(with_history.model_registry_path)
    for version in registry.versions("result-count"):
        registry.load("result-count", version.version)  # every version verifies (sha256, manifest)
    _, manifest = registry.load("result-count", "champion")
    assert manifest["target"] == "count"
