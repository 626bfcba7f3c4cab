"""The config space the optimizer searches, and every candidate in it scored by the champions at once.

The space is a grid (``SearchSpace``): a few thousand configs a day is small enough to score
exhaustively through the compiled runtime in well under a second, so nothing is left to a local
search that could miss the feasible corner. The user's constraints fix or bound it.

:func:`evaluate` computes each candidate's features once (universe statistics at the previous
close included) and runs both champions over the whole batch: count point, interval, P(empty),
duration point and interval, and whether the model abstained (inputs outside its training range
or missing market data). Without a duration model the seed heuristic is used, flagged: it has no
interval, so a budget checked against it is not a probability.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from technic_ml.contracts import MarketConditions, ScanConfig
from technic_ml.optimizer.goals import Constraints
from technic_ml.predictors.estimators import HEURISTIC_SECONDS_PER_SYMBOL
from technic_ml.predictors.features import feature_values, vector
from technic_ml.predictors.serving import Predictors


@dataclass(frozen=True)
class SearchSpace:
    """The grid of candidate configs (sectors and industries come from the constraints only)."""

    max_symbols: tuple[int, ...] = (25, 50, 75, 100, 150, 200, 300, 400, 500)
    min_tech_rating: tuple[float, ...] = tuple(float(r) for r in range(0, 95, 5))
    min_dollar_vol: tuple[float, ...] = (0.0, 1e6, 2e6, 5e6, 1e7, 2e7, 5e7)
    lookback_days: tuple[int, ...] = (20, 30, 60, 90, 120, 250)

    @property
    def size(self) -> int:
        """Configs in the unconstrained grid (without building them)."""
        return (
            len(self.max_symbols)
            * len(self.min_tech_rating)
            * len(self.min_dollar_vol)
            * len(self.lookback_days)
        )

    def configs(self, constraints: Constraints | None = None) -> list[ScanConfig]:
        c = constraints or Constraints()
        lookbacks = (c.lookback_days,) if c.lookback_days is not None else self.lookback_days
        caps = self.max_symbols
        if c.max_symbols_max is not None:
            caps = tuple(sorted({m for m in caps if m <= c.max_symbols_max} | {c.max_symbols_max}))
        ratings = self.min_tech_rating
        if c.min_tech_rating_min is not None:
            ratings = tuple(
                sorted({r for r in ratings if r >= c.min_tech_rating_min} | {c.min_tech_rating_min})
            )
        vols = self.min_dollar_vol
        if c.min_dollar_vol_min is not None:
            vols = tuple(sorted({v for v in vols if v >= c.min_dollar_vol_min} | {c.min_dollar_vol_min}))
        return [
            ScanConfig(
                max_symbols=m,
                min_tech_rating=r,
                min_dollar_vol=v,
                sectors=c.sectors or None,
                industries=c.industries or None,
                lookback_days=lb,
            )
            for m, r, v, lb in itertools.product(caps, ratings, vols, lookbacks)
        ]


@dataclass
class Evaluation:
    """Both champions' predictions for every candidate (NaN where a model abstained)."""

    configs: list[ScanConfig]
    count_ok: np.ndarray  # bool: the count model predicted (did not abstain)
    count: np.ndarray
    count_lower: np.ndarray
    count_upper: np.ndarray
    p_empty: np.ndarray
    duration_ok: np.ndarray
    duration: np.ndarray
    duration_upper: np.ndarray
    duration_state: str  # "model" or "heuristic"
    breadth: np.ndarray  # symbols the scan would rate (cheap filters and cap), max_symbols if unknown
    coverage: float | None
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.configs)

    def margin(self, low: int, high: int) -> np.ndarray:
        """How safely each point sits inside [low, high], in units of its interval's half-width.

        On the log(1 + count) scale the band is built on: 1 means the whole interval touches the
        range's edges at most, 0 means the point is on an edge, negative means outside.
        """
        with np.errstate(invalid="ignore", divide="ignore"):
            centre = np.log1p(self.count)
            half = np.maximum((np.log1p(self.count_upper) - np.log1p(self.count_lower)) / 2, 1e-6)
            inside = np.minimum(centre - np.log1p(low), np.log1p(high) - centre)
            return np.where(self.count_ok, inside / half, -np.inf)


def evaluate(predictors: Predictors, configs: list[ScanConfig], conditions: MarketConditions) -> Evaluation:
    loaded = [m for m in (predictors.count, predictors.duration) if m is not None]
    needs = any(m.predictor.features.needs_universe for m in loaded)
    universe = predictors.universe if needs else None
    values = [feature_values(c, conditions, universe) for c in configs]
    n = len(configs)
    nan = np.full(n, np.nan)
    notes: list[str] = []

    if predictors.count is not None:
        model = predictors.count.predictor
        out = model.predict_batch(_matrix(model.features, values))
        count_ok, count, lower, upper, p_empty = (
            out["in_range"],
            out["point"],
            out["lower"],
            out["upper"],
            out["p_empty"],
        )
        coverage = model.coverage
        if n and not count_ok.any():
            notes.append(
                f"the result-count model abstained on all {n} candidates: " + _common_reasons(model, values)
            )
    else:
        count_ok, count, lower, upper, p_empty = np.zeros(n, bool), nan, nan, nan, nan
        coverage = None
        notes.append(f"no result-count model: {predictors.notes.get('count', 'not loaded')}")

    if predictors.duration is not None:
        model = predictors.duration.predictor
        out = model.predict_batch(_matrix(model.features, values))
        duration_ok, duration, duration_upper, state = out["in_range"], out["point"], out["upper"], "model"
    else:
        duration = np.array([c.max_symbols * HEURISTIC_SECONDS_PER_SYMBOL for c in configs], dtype=float)
        duration_ok, duration_upper, state = np.ones(n, bool), duration, "heuristic"
        notes.append(
            "no duration model: budgets are checked against the seed heuristic"
            f" (max_symbols x {HEURISTIC_SECONDS_PER_SYMBOL} s), not a calibrated bound"
        )

    breadth = np.array([v["n_universe"] for v in values], dtype=float)
    caps = np.array([c.max_symbols for c in configs], dtype=float)
    breadth = np.where(np.isfinite(breadth), breadth, caps)
    return Evaluation(
        configs=configs,
        count_ok=count_ok,
        count=count,
        count_lower=lower,
        count_upper=upper,
        p_empty=p_empty,
        duration_ok=duration_ok,
        duration=duration,
        duration_upper=duration_upper,
        duration_state=state,
        breadth=breadth,
        coverage=coverage,
        notes=notes,
    )


def _matrix(fs, values: list[dict[str, float]]) -> np.ndarray:
    if not values:
        return np.empty((0, len(fs.columns)))
    return np.vstack([vector(fs, v) for v in values])


def _common_reasons(model, values: list[dict[str, float]], sample: int = 50) -> str:
    """The out-of-range reasons every sampled candidate shares (market conditions, usually)."""
    rows = values[:: max(1, len(values) // sample)]
    found = [set(model.range_check(vector(model.features, v))[1]) for v in rows]
    common = set.intersection(*found) if found else set()
    return "; ".join(sorted(common)) or "each candidate for its own reasons"
