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

import dataclasses
import functools
import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from technic_ml.contracts import MarketConditions, ScanConfig
from technic_ml.errors import RegistryError
from technic_ml.predictors.estimators import Prediction, heuristic_duration
from technic_ml.predictors.features import SOURCES, feature_values, source_name, vector
from technic_ml.predictors.registry import MODEL_NAMES, ModelRegistry
from technic_ml.predictors.runtime import FusedEnsembles
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


def check_source(source: str | None) -> str | None:
    """``source`` if it names a duration source; a ValueError naming the choices otherwise."""
    if source is not None and source not in SOURCES:
        raise ValueError(f"duration_source: received {source!r}; expected one of {list(SOURCES)}")
    return source


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
        cls,
        registry: ModelRegistry,
        universe: UniverseStats | None = None,
        ref: str | dict[str, str | None] = "champion",
    ) -> Predictors:
        """Both targets' models at ``ref`` (an alias or version; a dict gives one per target, and
        None there leaves that target unloaded without a note)."""
        loaded: dict[str, Loaded | None] = {}
        notes = {}
        for target, model in MODEL_NAMES.items():
            target_ref = ref.get(target) if isinstance(ref, dict) else ref
            if target_ref is None:
                loaded[target] = None
                continue
            try:
                predictor, manifest = registry.load(model, target_ref)
                loaded[target] = Loaded(predictor, manifest)
            except RegistryError as exc:
                loaded[target] = None
                notes[target] = str(exc)
                log.warning("%s model not loaded: %s", model, exc)
        return cls(loaded["count"], loaded["duration"], universe, notes)

    @functools.cached_property
    def _fused(self) -> tuple[FusedEnsembles, list[tuple[str, Loaded, tuple[str, ...], int]]] | None:
        """Every ensemble of both loaded models, walked in one compiled call (see ``runtime``).

        Built on first use: the models must not be replaced after a prediction (the API builds a
        new ``Predictors`` for a new champion pair instead).
        """
        loaded = [(t, m) for t, m in (("count", self.count), ("duration", self.duration)) if m is not None]
        if not loaded:
            return None
        ensembles, rows, layout = [], [], []
        for row, (target, model) in enumerate(loaded):
            found = model.predictor.serving_ensembles()
            layout.append((target, model, model.predictor.features.columns, len(found)))
            ensembles += found
            rows += [row] * len(found)
        return FusedEnsembles(ensembles, rows), layout

    @functools.cached_property
    def _needs_universe(self) -> bool:
        return any(m is not None and m.predictor.features.needs_universe for m in (self.count, self.duration))

    def predict(
        self, config: ScanConfig, conditions: MarketConditions, duration_source: str | None = None
    ) -> dict[str, Prediction]:
        """Both predictions; the features (universe statistics included) are computed once and both
        models' trees are walked in one compiled call.

        ``duration_source`` names whose durations to predict (``features.SOURCES``); None: the
        reference scanner on the market data the conditions came from (the configured source).
        """
        source = check_source(duration_source) or (
            source_name(conditions.data_source) if conditions.data_source else None
        )
        values = feature_values(
            config, conditions, self.universe if self._needs_universe else None, data_source=source
        )
        out = {}
        if self._fused is not None:
            fused, layout = self._fused
            width = fused.n_features
            # One array from nested lists: a slice assignment per row cost more than the rows.
            X = np.array(
                [
                    [values[c] for c in columns] + [math.nan] * (width - len(columns))
                    for _, _, columns, _ in layout
                ]
            )
            scores = fused.predict(X).tolist()
            start = 0
            for row, (target, model, columns, n) in enumerate(layout):
                prediction = model.predictor.predict_one(
                    X[row, : len(columns)],
                    scores=scores[start : start + n],
                    version=model.version,
                    coverage_verified=model.verified_coverage,
                )
                out[target] = self._flag_missing_universe(model, prediction)
                start += n
        if "count" not in out:
            out["count"] = self.predict_count(config, conditions, values)
        if "duration" not in out:
            out["duration"] = self.predict_duration(config, conditions, values)
        return {"count": out["count"], "duration": dataclasses.replace(out["duration"], source=source)}

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
        return self._flag_missing_universe(loaded, prediction)

    def _flag_missing_universe(self, loaded: Loaded, prediction: Prediction) -> Prediction:
        if (
            prediction.state == "abstain"
            and self.universe is None
            and loaded.predictor.features.needs_universe
        ):
            return Prediction(
                prediction.target,
                "abstain",
                None,
                version=loaded.version,
                reasons=("no market data for the previous close (universe statistics)", *prediction.reasons),
            )
        return prediction


def universe_at(market, when, since=None) -> UniverseStats | None:
    """Universe statistics for scans at ``when`` and, when ``since`` (a date) is given, at every
    session from ``since`` on (None, with a warning, when the data lacks them)."""
    import datetime as dt

    from technic_ml.errors import MarketDataError
    from technic_ml.panel import Panel

    first = min(when.date(), since) if since is not None else when.date()
    try:
        panel = Panel.from_market(market, when, start=first - dt.timedelta(days=800))
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
