"""train-predictors: snapshot -> collect history -> validate -> train -> publish, both targets.

Validation comes first because it is what trains: every candidate is fitted on the past of each
rolling-origin fold and judged on the next period; the winner is then refitted on all rows and
published only if it passed its gates. A target that fails leaves its champion untouched, and the
run ends Failed with the reason (also in the ``train-predictors`` artifact). A target whose
champion was trained on exactly this history is kept as is. A target not published also emits a
``technic-ml.model.gate-failed`` event (the UI's event feed). Two runs at once are safe: the
history store and the registry serialize their writers, and publishing is atomic.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from prefect import flow, get_run_logger
from prefect.states import Failed, State
from pydantic import BaseModel, ConfigDict, Field

from flows import scheduled_day_check
from flows.collect_history import collect_history
from tasks import artifacts, market, monitor, predictors
from technic_ml import stores
from technic_ml.monitor.report import gate_failed_event
from technic_ml.predictors.features import TARGETS
from technic_ml.predictors.registry import MODEL_NAMES
from technic_ml.predictors.training import FoldPlan, TrainingRun, unchanged_outcome
from technic_ml.predictors.validation import DEFAULT_CANDIDATES, Gates
from technic_ml.settings import TechnicSettings

Target = Literal["count", "duration"]
CandidateName = Literal[tuple(c.name for c in DEFAULT_CANDIDATES)]


class TrainParams(BaseModel):
    """How to validate; gates default to the seed's bars (count MAE < 10, R² > 0.6; ...)."""

    model_config = ConfigDict(extra="forbid")  # a misspelt --param fails instead of being ignored

    targets: list[Target] = Field(default_factory=lambda: list(TARGETS), min_length=1)
    coverage: Annotated[float, Field(gt=0.5, lt=1.0)] = 0.9
    n_folds: Annotated[int, Field(ge=1, le=24)] = 3
    test_start: dt.datetime | None = None
    test_end: dt.datetime | None = None
    gates: Gates = Field(default_factory=Gates)
    candidates: list[CandidateName] = Field(
        default_factory=lambda: [c.name for c in DEFAULT_CANDIDATES], min_length=1
    )
    collect: bool = True
    skip_non_trading_days: bool = True  # scheduled runs only; ad-hoc runs always train
    as_of: str | None = None  # the snapshot's moment (default: now live, the data's last close offline)


@flow(name="train-predictors")
def train_predictors(params: TrainParams | None = None) -> dict | State:
    logger = get_run_logger()
    params = params or TrainParams()
    if params.skip_non_trading_days and (reason := scheduled_day_check()):
        logger.info("%s: no training today", reason)
        return {}
    settings = TechnicSettings()
    registry = stores.model_registry(settings)
    folds = FoldPlan(params.n_folds, params.test_start, params.test_end)
    candidates = tuple(c for c in DEFAULT_CANDIDATES if c.name in params.candidates)

    market.take_snapshot(settings, params.as_of)
    if params.collect:
        collect_history()
    data, note = predictors.training_data(settings)
    # The same plan and steps as technic_ml.predictors.training.train_predictors (technic-ml train).
    plan = predictors.plan_training(registry, data, tuple(params.targets))
    todo, held = plan.todo, plan.held
    reports = {
        t: predictors.validate_predictor.submit(
            data, t, params.gates, params.coverage, folds, registry, candidates
        )
        for t in todo
    }
    trained = {
        t: predictors.train_predictor.submit(data, reports[t], params.gates, note, candidates).result()
        for t in todo
    }
    for t in todo:
        artifacts.validation_artifacts(trained[t], data, params.gates)
    outcomes = {t: predictors.publish_predictor(registry, trained[t], held[t]) for t in todo}
    outcomes |= {t: unchanged_outcome(t, version) for t, version in plan.unchanged.items()}
    run = TrainingRun(data, params.gates, trained, note, held=held, unchanged=plan.unchanged)
    artifacts.decision_artifact(run, outcomes)
    artifacts.registry_artifacts(registry)

    failed = [o for o in outcomes.values() if not o.serving]
    if failed:  # in the UI's event feed, next to the monitor's verdicts
        monitor.emit_events(
            [gate_failed_event(MODEL_NAMES[o.target], held[o.target], o.target, o.reason) for o in failed]
        )
    for o in outcomes.values():
        logger.info("%s: %s %s (%s)", o.target, o.alias or "NOT published", o.version or "", o.reason)
    if failed:
        # A Failed state, not an exception: a failed gate is an expected outcome with a reason,
        # shown as the run's state message in the UI, without a traceback in the logs.
        why = "not published, champion untouched: " + "; ".join(f"{o.target}: {o.reason}" for o in failed)
        logger.error("%s", why)
        return Failed(message=why)
    return {t: {"version": o.version, "alias": o.alias, "reason": o.reason} for t, o in outcomes.items()}
