"""Daily-presets tasks: the predictors, suggestions per goal, hot sectors, the saved document."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from technic_ml import optimizer
from technic_ml.contracts import MarketConditions
from technic_ml.jobs import presets
from technic_ml.optimizer import HotSectors
from technic_ml.predictors.serving import Predictors
from technic_ml.settings import TechnicSettings

# The predictors carry the universe panel (about 100 MB on the real data): hashing it for a cache
# key would cost more than the work, and presets are for one moment, so nothing is reused.


@task(cache_policy=NO_CACHE)
def load_predictors(settings: TechnicSettings, as_of) -> Predictors:
    return presets.load_predictors(settings, as_of)


@task(cache_policy=NO_CACHE)
def suggest_presets(predictors: Predictors, conditions: MarketConditions) -> tuple[dict, int, float]:
    return presets.suggest_presets(predictors, conditions)


@task(cache_policy=NO_CACHE)
def rank_hot_sectors(settings: TechnicSettings, as_of, window_days: int = 30) -> HotSectors:
    return presets.rank_hot_sectors(settings, as_of, window_days)


@task(cache_policy=NO_CACHE)
def daily_presets(
    suggestions, hot, conditions, snapshot_id: str, models: dict, searched: int, elapsed: float
):
    return optimizer.daily_presets(
        suggestions,
        hot,
        conditions,
        snapshot_id=snapshot_id,
        models=models,
        searched=searched,
        elapsed_seconds=elapsed,
    )


@task(cache_policy=NO_CACHE)
def save_presets(settings: TechnicSettings, document: dict) -> bool:
    return presets.save_presets(settings, document)
