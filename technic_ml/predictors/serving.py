"""Serving: the published champions answering "how many results, how long" for one config.

:class:`Predictors` loads both champions from the registry (verified, see ``registry``) and
predicts for a config under given market conditions. Features come from the same code as in
training (``features.feature_vector``) and the trees run in the compiled runtime, so one call of
both models costs microseconds. What is missing is said, never filled in:

* no count model: the count is ``abstain`` with the reason (the API answers 503);
* no duration model: the seed's heuristic, flagged ``heuristic``, with no interval;
* no market data at the previous close for an enriched model (``universe`` not given or not
  covering the moment): ``abstain``, naming the missing inputs.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any

from technic_ml.contracts import MarketConditions, ScanConfig
from technic_ml.errors import RegistryError
from technic_ml.predictors.estimators import Prediction, heuristic_duration
from technic_ml.predictors.features import feature_values, vector
from technic_ml.predictors.registry import MODEL_NAMES, ModelRegistry
from technic_ml.predictors.universe import UniverseStats

log = logging.getLogger(__name__)


@dataclass
class Loaded:
    predictor: Any
    manifest: dict[str, Any]

    @property
    def version(self) -> str:
        return self.manifest["version"]

    @functools.cached_property
    def verified_coverage(self) -> float | None:
        """The lowest coverage its intervals reached on a held-out fold in validation."""
        folds = (self.manifest.get("validation") or {}).get("per_fold") or []
        values = [f["coverage"] for f in folds if f.get("coverage") is not None]
        return min(values) if values else None


class Predictors:
    def __init__(
        self,
        count: Loaded | None,
        duration: Loaded | None,
        universe: UniverseStats | None = None,
        notes: dict[str, str] | None = None,
    ):
        self.count = count
        self.duration = duration
        self.universe = universe
        self.notes = dict(notes or {})

    @classmethod
    def from_registry(
        cls, registry: ModelRegistry, universe: UniverseStats | None = None, ref: str = "champion"
    ) -> Predictors:
        loaded: dict[str, Loaded | None] = {}
        notes = {}
        for target, model in MODEL_NAMES.items():
            try:
                predictor, manifest = registry.load(model, ref)
                loaded[target] = Loaded(predictor, manifest)
            except RegistryError as exc:
                loaded[target] = None
                notes[target] = str(exc)
                log.warning("%s model not loaded: %s", model, exc)
        return cls(loaded["count"], loaded["duration"], universe, notes)

    def predict(self, config: ScanConfig, conditions: MarketConditions) -> dict[str, Prediction]:
        """Both predictions; the features (universe statistics included) are computed once."""
        needs = [
            m for m in (self.count, self.duration) if m is not None and m.predictor.features.needs_universe
        ]
        values = feature_values(config, conditions, self.universe if needs else None)
        return {
            "count": self.predict_count(config, conditions, values),
            "duration": self.predict_duration(config, conditions, values),
        }

    def predict_count(self, config: ScanConfig, conditions: MarketConditions, values=None) -> Prediction:
        if self.count is None:
            return Prediction(
                "count", "abstain", None, reasons=(f"no result-count model: {self.notes.get('count', '')}",)
            )
        return self._predict(self.count, config, conditions, values)

    def predict_duration(self, config: ScanConfig, conditions: MarketConditions, values=None) -> Prediction:
        if self.duration is None:
            return heuristic_duration(
                config, reason=f"no duration model ({self.notes.get('duration', 'not loaded')})"
            )
        return self._predict(self.duration, config, conditions, values)

    def _predict(
        self, loaded: Loaded, config: ScanConfig, conditions: MarketConditions, values=None
    ) -> Prediction:
        predictor = loaded.predictor
        if values is None:
            values = feature_values(
                config, conditions, self.universe if predictor.features.needs_universe else None
            )
        x = vector(predictor.features, values)
        prediction = predictor.predict_one(
            x, version=loaded.version, coverage_verified=loaded.verified_coverage
        )
        if predictor.features.needs_universe and self.universe is None and prediction.state == "abstain":
            prediction = Prediction(
                prediction.target,
                "abstain",
                None,
                version=loaded.version,
                reasons=("no market data for the previous close (universe statistics)", *prediction.reasons),
            )
        return prediction


def universe_at(market, when) -> UniverseStats | None:
    """Universe statistics for scans at ``when`` (None, with a warning, when the data lacks them)."""
    import datetime as dt

    from technic_ml.errors import MarketDataError
    from technic_ml.panel import Panel

    try:
        panel = Panel.from_market(market, when, start=(when - dt.timedelta(days=800)).date())
        return UniverseStats(panel)
    except MarketDataError as exc:
        log.warning("no universe statistics at %s (%s): enriched models will abstain", when.isoformat(), exc)
        return None


def open_predictors(registry: ModelRegistry, market, as_of) -> tuple[Predictors, MarketConditions]:
    """Champions plus what they need at ``as_of``: market conditions and the previous close's universe."""
    from technic_ml.market_conditions import snapshot_market
    from technic_ml.nyse import to_ny

    when = to_ny(as_of)
    conditions = snapshot_market(market, when)
    return Predictors.from_registry(registry, universe_at(market, when)), conditions
