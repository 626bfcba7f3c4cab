"""Predictor tasks: training data, validate, train and publish one target at a time."""

from __future__ import annotations

from prefect import task

from technic_ml.jobs import predictors as steps  # not technic_ml.predictors
from technic_ml.predictors import training
from technic_ml.predictors.features import Dataset
from technic_ml.predictors.registry import ModelRegistry
from technic_ml.predictors.validation import DEFAULT_CANDIDATES, Candidate, Gates, TargetReport
from technic_ml.settings import TechnicSettings


@task
def training_data(settings: TechnicSettings) -> tuple[Dataset, str]:
    return steps.training_data(settings)


@task(task_run_name="validate-{target}")
def validate_predictor(
    data: Dataset,
    target: str,
    gates: Gates,
    coverage: float,
    folds: training.FoldPlan,
    registry: ModelRegistry,
    candidates: tuple[Candidate, ...] = DEFAULT_CANDIDATES,
) -> TargetReport:
    return training.validate_predictor(
        data, target, candidates=candidates, gates=gates, coverage=coverage, folds=folds, registry=registry
    )


@task(task_run_name="train-{report.target}")
def train_predictor(
    data: Dataset,
    report: TargetReport,
    gates: Gates,
    data_note: str,
    candidates: tuple[Candidate, ...] = DEFAULT_CANDIDATES,
) -> training.TrainedTarget:
    return training.train_predictor(data, report, candidates=candidates, gates=gates, data_note=data_note)


@task(task_run_name="publish-{trained.target}")
def publish_predictor(
    registry: ModelRegistry, trained: training.TrainedTarget, expected_champion: str | None
) -> training.PublishOutcome:
    return training.publish_predictor(registry, trained, expected_champion)


@task
def plan_training(registry: ModelRegistry, data: Dataset, targets: tuple[str, ...]) -> training.TrainingPlan:
    return training.plan_training(registry, data, targets)
