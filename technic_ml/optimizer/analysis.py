"""``analyze(config)``: what a scan will do before it runs, what is risky about it, and how to fix it.

Risks are read off the champions' predictions with stated thresholds (``Review``):

* ``likely empty``: P(empty) >= ``likely_empty`` (or the whole count interval is 0);
  ``may be empty``: P(empty) >= ``may_be_empty``;
* ``more results than anyone will review``: the expected count is above ``max_results``;
* ``slow``: the upper end of the duration interval is above ``slow_s``;
* ``not predictable``: a model abstained (inputs outside its training range), with its reasons.

Fixes change one field at a time (rating, symbols, dollar volume, lookback), score every variant
through the same batch path as the optimizer, and keep the ones that remove the risk, nearest to
``target_results`` first: "lower min_tech_rating to 55 to expect about 12 results".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from technic_ml.contracts import MarketConditions, ScanConfig
from technic_ml.optimizer.optimizer import _seconds, describe_predictions
from technic_ml.optimizer.search import Evaluation, evaluate
from technic_ml.predictors.estimators import Prediction
from technic_ml.predictors.serving import Predictors

Severity = Literal["high", "medium"]


@dataclass(frozen=True)
class Review:
    """The thresholds risk labels are read against (all configurable)."""

    max_results: int = 100
    target_results: int = 12
    likely_empty: float = 0.5
    may_be_empty: float = 0.2
    slow_s: float = 30.0


@dataclass(frozen=True)
class Risk:
    label: str
    severity: Severity
    reason: str


@dataclass(frozen=True)
class Fix:
    change: dict[str, Any]
    text: str
    count: float | None
    count_interval: tuple[float, float] | None
    p_empty: float | None
    duration_upper: float | None


@dataclass(frozen=True)
class Analysis:
    config: ScanConfig
    count: Prediction
    duration: Prediction
    risks: tuple[Risk, ...]
    fixes: tuple[Fix, ...]
    summary: str
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": self.config.model_dump(mode="json", exclude_none=True),
            "count": self.count.to_dict(),
            "duration": self.duration.to_dict(),
            "p_empty": self.count.p_empty,
            "risks": [vars(r) for r in self.risks],
            "fixes": [
                {**vars(f), "count_interval": list(f.count_interval) if f.count_interval else None}
                for f in self.fixes
            ],
            "summary": self.summary,
            "notes": list(self.notes),
        }


def risks_of(count: Prediction, duration: Prediction, review: Review) -> list[Risk]:
    risks: list[Risk] = []
    if count.state == "model":
        p = count.p_empty or 0.0
        if p >= review.likely_empty or count.upper == 0:
            risks.append(
                Risk("likely empty", "high", f"P(empty) is {p:.0%}; expected {count.value:.1f} results")
            )
        elif p >= review.may_be_empty:
            risks.append(Risk("may be empty", "medium", f"P(empty) is {p:.0%}"))
        if count.value > review.max_results:
            risks.append(
                Risk(
                    "more results than anyone will review",
                    "high" if count.lower > review.max_results else "medium",
                    f"expected {count.value:.0f} results ({count.coverage:.0%}: {count.lower:.0f}-"
                    f"{count.upper:.0f}); more than {review.max_results} is more than anyone reviews",
                )
            )
    else:
        risks.append(Risk("not predictable", "medium", "result count: " + "; ".join(count.reasons)))
    if duration.state == "model":
        if duration.upper > review.slow_s:
            risks.append(
                Risk(
                    "slow",
                    "high" if duration.value > review.slow_s else "medium",
                    f"may take up to {_seconds(duration.upper)} (expected {_seconds(duration.value)});"
                    f" slow means over {_seconds(review.slow_s)}",
                )
            )
    elif duration.state == "heuristic":
        if duration.value > review.slow_s:
            risks.append(
                Risk(
                    "slow",
                    "medium",
                    f"the seed heuristic (uncalibrated) says {_seconds(duration.value)};"
                    f" slow means over {_seconds(review.slow_s)}",
                )
            )
    else:
        risks.append(Risk("not predictable", "medium", "duration: " + "; ".join(duration.reasons)))
    return risks


def _variants(config: ScanConfig) -> list[tuple[str, Any, ScanConfig]]:
    base = config.model_dump()
    options: dict[str, list] = {
        "min_tech_rating": [float(r) for r in range(0, 101)],
        "max_symbols": [10, 25, 50, 75, 100, 150, 200, 300, 400, 500, 750, 1000],
        "min_dollar_vol": [0.0, 5e5, 1e6, 2e6, 3e6, 5e6, 1e7, 2e7, 5e7, 1e8],
        "lookback_days": [20, 30, 40, 60, 90, 120, 150, 200, 250],
    }
    out = []
    for name, values in options.items():
        for v in values:
            if v != base[name]:
                out.append((name, v, ScanConfig(**{**base, name: v})))
    return out


def _fix_text(name: str, old: Any, new: Any, what: str) -> str:
    verb = "raise" if new > old else "lower"
    shown = f"{new:g}" if isinstance(new, float) else str(new)
    return f"{verb} {name} to {shown} to {what}"


def fixes_for(
    predictors: Predictors,
    config: ScanConfig,
    conditions: MarketConditions,
    risks: list[Risk],
    review: Review,
) -> tuple[list[Fix], Evaluation | None]:
    labels = {r.label for r in risks}
    if not labels & {"likely empty", "may be empty", "more results than anyone will review", "slow"}:
        return [], None
    variants = _variants(config)
    ev = evaluate(predictors, [v[2] for v in variants], conditions)
    with np.errstate(invalid="ignore"):
        count_fine = (
            ev.count_ok
            & (ev.count >= 1)
            & (ev.count <= review.max_results)
            & (ev.p_empty < review.may_be_empty)
        )
        fast = ev.duration_ok & (ev.duration_upper <= review.slow_s)
    base = config.model_dump()
    fixes: list[Fix] = []
    if labels & {"likely empty", "may be empty", "more results than anyone will review"}:
        ok = count_fine & (fast if "slow" in labels else True)
        distance = np.abs(np.log1p(ev.count) - np.log1p(review.target_results))
        fixes += _best_per_field(
            variants, ev, ok, distance, base, lambda i: f"expect about {ev.count[i]:.0f} results"
        )
    if "slow" in labels:
        ok = fast & (count_fine if ev.count_ok.any() else True)
        # The smallest change that is fast enough: least work given up.
        distance = -ev.duration_upper
        fixes += _best_per_field(
            variants,
            ev,
            ok,
            distance,
            base,
            lambda i: f"finish within {_seconds(review.slow_s)} (at most {_seconds(ev.duration_upper[i])})",
        )
    fixes.sort(key=lambda f: 0 if "min_tech_rating" in f.change else 1)
    return fixes[:4], ev


def _best_per_field(variants, ev: Evaluation, ok, distance, base, what) -> list[Fix]:
    best: dict[str, int] = {}
    for i, (name, _, _) in enumerate(variants):
        if ok[i] and (name not in best or distance[i] < distance[best[name]]):
            best[name] = i
    fixes = []
    for name, i in sorted(best.items(), key=lambda kv: distance[kv[1]]):
        value = variants[i][1]
        counted = bool(ev.count_ok[i])
        fixes.append(
            Fix(
                change={name: value},
                text=_fix_text(name, base[name], value, what(i)),
                count=float(ev.count[i]) if counted else None,
                count_interval=(float(ev.count_lower[i]), float(ev.count_upper[i])) if counted else None,
                p_empty=float(ev.p_empty[i]) if counted else None,
                duration_upper=float(ev.duration_upper[i]) if ev.duration_ok[i] else None,
            )
        )
    return fixes


def analyze(
    predictors: Predictors, config: ScanConfig, conditions: MarketConditions, review: Review | None = None
) -> Analysis:
    review = review or Review()
    predictions = predictors.predict(config, conditions)
    count, duration = predictions["count"], predictions["duration"]
    risks = risks_of(count, duration, review)
    fixes, ev = fixes_for(predictors, config, conditions, risks, review)
    notes = tuple(ev.notes) if ev is not None else ()
    summary = describe_predictions(predictions)
    if risks:
        summary += ". Risks: " + "; ".join(r.label for r in risks)
    if fixes:
        summary += ". Try: " + fixes[0].text
    return Analysis(config, count, duration, tuple(risks), tuple(fixes), summary, notes)
