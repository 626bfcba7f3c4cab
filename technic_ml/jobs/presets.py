"""The daily presets' steps (flow ``daily-presets`` through ``tasks/presets.py``): both champions
loaded with the universe statistics at the snapshot's moment, every goal's suggestion, the hot
sectors; :func:`technic_ml.optimizer.daily_presets` assembles the document that
:func:`save_presets` keeps."""

from __future__ import annotations

import logging
import time
from typing import Any

from technic_ml import stores
from technic_ml.contracts import MarketConditions
from technic_ml.market_data import open_market_data
from technic_ml.market_data.base import AsOf
from technic_ml.nyse import to_ny
from technic_ml.optimizer import HotSectors, Optimizer, Suggestion, hot_sectors
from technic_ml.predictors.serving import Predictors, universe_at
from technic_ml.settings import TechnicSettings

log = logging.getLogger(__name__)


def load_predictors(settings: TechnicSettings, as_of: AsOf) -> Predictors:
    """Both champions from the registry, with the universe statistics they need at ``as_of``.

    A missing champion is not an error here: the optimizer says so and falls back, flagged.
    """
    market = open_market_data(settings)
    registry = stores.model_registry(settings)
    return Predictors.from_registry(registry, universe_at(market, to_ny(as_of)))


def suggest_presets(
    predictors: Predictors, conditions: MarketConditions
) -> tuple[dict[str, Suggestion], int, float]:
    """(suggestion per goal, configs searched, seconds) with the default goals and search space.

    A suggestion that is not the model's (a fallback) or carries flags is logged as a warning:
    the flow's run shows it."""
    optimizer = Optimizer(predictors)
    started = time.perf_counter()
    suggestions = optimizer.suggest_all(conditions)
    elapsed = time.perf_counter() - started
    for name, s in suggestions.items():
        if s.source != "model":
            log.warning("%s preset: %s", name, s.reasoning[0])
        for flag in s.flags:
            log.warning("%s preset: %s", name, flag)
    return suggestions, optimizer.space.size, elapsed


def rank_hot_sectors(settings: TechnicSettings, as_of: AsOf, window_days: int = 30) -> HotSectors:
    """The sectors ranked by recent scan activity in the configured history, as of ``as_of``."""
    return hot_sectors(stores.history_store(settings).frame(), to_ny(as_of), window_days=window_days)


def save_presets(settings: TechnicSettings, document: dict[str, Any]) -> bool:
    """Append to the presets history and make it the latest; False when these presets were saved."""
    return stores.presets_history(settings).save(document)
