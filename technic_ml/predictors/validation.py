"""Honest validation: rolling-origin backtests, baselines, gates and model selection.

Every fold trains on the past and tests on the next period (``rolling_origin_folds``: an expanding
training window, consecutive test windows, never a shuffled split). Each candidate (a model and a
feature set) and each baseline is refitted on every fold's training rows, so all of them are judged
on exactly the same future rows. The champion in the registry is judged the same way: its
parameters are refitted on the same folds, never evaluated on data it may have trained on.

Gates (:class:`Gates`, configurable; defaults from the seed) decide whether a candidate may be
published; among the candidates that pass, the lowest MAE wins: validation picks the model, not a
person. The winner replaces the champion only when it is no worse than the champion on the same
folds (``champion_tolerance``); otherwise it is published as the challenger. A candidate fails when:

* its pooled MAE or R² misses the target's bar;
* its interval coverage is below the stated coverage minus ``coverage_tolerance`` on any fold, or
  minus ``coverage_z`` binomial standard errors on a fold too small for that tolerance to be
  measurable (``Gates.coverage_floor``);
* the leakage guard trips: holdout MAE below ``leakage_ratio`` x its own training MAE on a fold (a
  model does not predict the future much better than it fits the past unless the future leaked in);
* there are too few records to validate at all (``min_records``, ``min_fold_records``); then the
  report says so and nothing is publishable.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from technic_ml.predictors.estimators import HEURISTIC_SECONDS_PER_SYMBOL, make_predictor
from technic_ml.predictors.features import Dataset, feature_set
from technic_ml.predictors.metrics import brier, regression_report

TRAIN_METRIC_ROWS = 20_000  # in-sample error for the leakage guard is estimated on at most this many rows
#: The columns of ``ModelResult.predictions``.
PREDICTION_COLUMNS = ("fold", "y", "point", "lower", "upper")


@dataclass(frozen=True)
class Gates:
    count_mae_max: float = 10.0
    count_r2_min: float = 0.6
    duration_mae_max: float = 5.0
    duration_r2_min: float = 0.7
    coverage_tolerance: float = 0.03
    #: A fold's coverage also passes within this many binomial standard errors of the stated
    #: coverage (see ``coverage_floor``); None or 0: the fixed tolerance alone.
    coverage_z: float = 2.33
    leakage_ratio: float = 0.5
    champion_tolerance: float = 0.0  # allowed relative MAE increase over the champion
    min_records: int = 500
    min_fold_records: int = 50

    def coverage_floor(self, stated: float, n: float | None) -> float:
        """The lowest coverage a fold of ``n`` held-out rows may reach: the stated coverage minus
        the larger of ``coverage_tolerance`` and ``coverage_z`` binomial standard errors.

        A perfectly calibrated 90 % interval lands below 87 % on a fold of 300 rows about 4 % of
        the time (standard error 1.7 points), so three folds and five candidates rejected good
        models by chance (bench/bench_duration_load.py: all enriched candidates once at
        86.0-86.7 %). With z = 2.33 a calibrated interval fails a fold about 1 % of the time; on
        folds of thousands of rows the fixed tolerance is the floor, as before.
        """
        margin = self.coverage_tolerance
        if self.coverage_z and n and n > 0:
            margin = max(margin, self.coverage_z * math.sqrt(stated * (1 - stated) / n))
        return stated - margin

    def bars(self, target: str) -> tuple[float, float]:
        if target == "count":
            return self.count_mae_max, self.count_r2_min
        return self.duration_mae_max, self.duration_r2_min


@dataclass(frozen=True)
class Candidate:
    model: str
    feature_set: str
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.model}/{self.feature_set}"

    def build(self, target: str, coverage: float):
        return make_predictor(
            target, model=self.model, feature_set=self.feature_set, coverage=coverage, **self.params
        )


DEFAULT_CANDIDATES = (
    Candidate("rf", "seed"),
    Candidate("hgb", "seed"),
    Candidate("rf", "enriched"),
    Candidate("hgb", "enriched"),
    Candidate("rated", "enriched"),  # duration only: work x a rate per source (predictors.rated)
)


def applies(candidate: Candidate, target: str, has_universe: bool) -> bool:
    """Whether ``candidate`` can be fitted for ``target`` on data with or without universe features."""
    if candidate.model == "rated" and target != "duration":
        return False
    return has_universe or not feature_set(candidate.feature_set, target).needs_universe


@dataclass(frozen=True)
class Fold:
    index: int
    train: np.ndarray
    test: np.ndarray
    test_start: dt.datetime
    test_end: dt.datetime

    @property
    def label(self) -> str:
        return f"{self.test_start:%Y-%m-%d}..{self.test_end:%Y-%m-%d}"


def rolling_origin_folds(
    timestamps: pd.Series,
    *,
    n_folds: int = 3,
    test_start: dt.datetime | None = None,
    test_end: dt.datetime | None = None,
    test_share: float = 0.3,
) -> list[Fold]:
    """Consecutive test windows over [test_start, test_end), each trained on everything before it.

    Without bounds, the test region is the last ``test_share`` of the time span.
    """
    if n_folds < 1:
        raise ValueError(f"n_folds: received {n_folds}; expected at least 1")
    ts = pd.DatetimeIndex(timestamps)
    if len(ts) == 0:
        raise ValueError("timestamps: received none; expected the dataset's scan times")
    if not ts.is_monotonic_increasing:
        raise ValueError("timestamps: received rows out of time order; expected oldest first")
    first, last = ts[0], ts[-1]
    start = pd.Timestamp(test_start) if test_start is not None else first + (last - first) * (1 - test_share)
    end = pd.Timestamp(test_end) if test_end is not None else last + pd.Timedelta(microseconds=1)
    if start.tzinfo is None:
        start = start.tz_localize(ts.tz)
    if end.tzinfo is None:
        end = end.tz_localize(ts.tz)
    if not start < end:
        raise ValueError(f"test_start/test_end: received {start}..{end}; expected start before end")
    edges = [start + (end - start) * k / n_folds for k in range(n_folds + 1)]
    folds = []
    for k in range(n_folds):
        lo, hi = edges[k], edges[k + 1]
        train = np.flatnonzero(ts < lo)
        test = np.flatnonzero((ts >= lo) & (ts < hi))
        folds.append(Fold(k, train, test, lo.to_pydatetime(), hi.to_pydatetime()))
    return folds


@dataclass
class ModelResult:
    """One model (candidate, baseline or champion) on every fold of one target."""

    name: str
    kind: str  # candidate | baseline | champion
    per_fold: list[dict[str, float]]
    pooled: dict[str, float]
    gate_failures: list[str] = field(default_factory=list)
    #: Why it is worse than the champion on the same folds (None: no champion, or no worse).
    vs_champion: str | None = None
    #: Pooled metrics per duration source (``features.SOURCES``) over every fold's holdout rows.
    per_source: dict[str, dict[str, float]] = field(default_factory=dict)
    #: Every holdout row of every fold, columns ``PREDICTION_COLUMNS`` (fold index, actual, point,
    #: lower, upper; NaN bounds without an interval), for the figures of :mod:`.reporting`. Kept in
    #: memory only: manifests and ``frame()`` use ``per_fold`` and ``pooled``. Not compared (arrays).
    predictions: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def passed(self) -> bool:
        return not self.gate_failures


@dataclass
class TargetReport:
    target: str
    coverage: float
    folds: list[Fold]
    results: list[ModelResult]
    chosen: str | None
    too_few: str | None = None  # why the data cannot be validated at all

    @property
    def publishable(self) -> bool:
        return self.too_few is None and self.chosen is not None and self.result(self.chosen).passed

    def result(self, name: str) -> ModelResult:
        for r in self.results:
            if r.name == name:
                return r
        raise KeyError(name)

    def frame(self) -> pd.DataFrame:
        rows = []
        for r in self.results:
            for fold, metrics in zip(self.folds, r.per_fold, strict=False):
                rows.append({"model": r.name, "kind": r.kind, "fold": fold.label, **metrics})
            rows.append({"model": r.name, "kind": r.kind, "fold": "all", **r.pooled})
        return pd.DataFrame(rows)


def _model_fold(predictor, data: Dataset, fold: Fold, target: str) -> tuple[dict, np.ndarray]:
    fs = predictor.features
    train, test = data.subset(fold.train), data.subset(fold.test)
    y_train, y_test = train.y(target), test.y(target)
    predictor.fit(train.X(fs), y_train, timestamps=train.timestamp)
    X_test = test.X(fs)
    # The served numbers (the compiled runtime), on every row: how serving's range rule treats
    # the holdout is reported apart (serving_shares).
    model = predictor.predict_batch(X_test.to_numpy(dtype=np.float64), range_rule=False)
    point, lower, upper = model["point"], model["lower"], model["upper"]
    metrics = regression_report(y_test, point, lower, upper, count=target == "count")
    if target == "count":
        metrics["brier_empty"] = brier(y_test == 0, model["p_empty"])
    metrics.update(serving_shares(predictor, X_test, y_test))
    # In-sample error on the rows the model learned from (not the calibration slice).
    n_fit = predictor.n_train_
    rows = (
        np.arange(n_fit)
        if n_fit <= TRAIN_METRIC_ROWS
        else np.linspace(0, n_fit - 1, TRAIN_METRIC_ROWS).astype(int)
    )
    X_fit = train.X(fs).iloc[rows]
    metrics["train_mae"] = float(np.mean(np.abs(predictor.predict(X_fit) - y_train[rows])))
    stacked = np.column_stack([np.full(len(y_test), fold.index), y_test, point, lower, upper])
    return metrics, stacked


def serving_shares(predictor, X_test: pd.DataFrame, y_test: np.ndarray) -> dict[str, float]:
    """How serving would treat the holdout rows under the range rule (``estimators``): the share
    it abstains on, the share it predicts extrapolating (interval widened), and the coverage of
    those widened intervals (NaN when no row extrapolates)."""
    served = predictor.predict_batch(X_test.to_numpy(dtype=np.float64))
    n = max(len(y_test), 1)
    extrapolated = served["extrapolated"]
    coverage = float("nan")
    if extrapolated.any():
        y = y_test[extrapolated]
        coverage = float(((y >= served["lower"][extrapolated]) & (y <= served["upper"][extrapolated])).mean())
    return {
        "abstain_share": float((~served["in_range"]).sum() / n),
        "extrapolated_share": float(extrapolated.sum() / n),
        "extrapolated_coverage": coverage,
    }


def _pooled(stacked: np.ndarray, target: str, extra: dict[str, float] | None = None) -> dict[str, float]:
    y, point, lower, upper = stacked[:, 1], stacked[:, 2], stacked[:, 3], stacked[:, 4]
    has_interval = np.isfinite(lower).all()
    out = regression_report(
        y, point, lower if has_interval else None, upper if has_interval else None, count=target == "count"
    )
    out.update(extra or {})
    return out


def backtest(
    candidate: Candidate, data: Dataset, folds: list[Fold], target: str, coverage: float
) -> ModelResult:
    per_fold, stacks, briers = [], [], []
    for fold in folds:
        metrics, stacked = _model_fold(candidate.build(target, coverage), data, fold, target)
        per_fold.append(metrics)
        stacks.append(stacked)
        if "brier_empty" in metrics:
            briers.append((metrics["brier_empty"], metrics["n"]))
    extra = {}
    if briers:
        extra["brier_empty"] = float(sum(b * n for b, n in briers) / sum(n for _, n in briers))
    weights = [m["n"] for m in per_fold]
    if sum(weights) > 0:
        for key in ("abstain_share", "extrapolated_share"):
            extra[key] = float(np.average([m[key] for m in per_fold], weights=weights))
    stacked = np.vstack(stacks)
    return ModelResult(
        candidate.name, "candidate", per_fold, _pooled(stacked, target, extra), predictions=stacked
    )


def baseline_mean(data: Dataset, folds: list[Fold], target: str, coverage: float) -> ModelResult:
    """The training mean as the prediction; the interval is the training targets' central quantiles."""
    per_fold, stacks = [], []
    alpha = (1 - coverage) / 2
    for fold in folds:
        y_train, y_test = data.y(target)[fold.train], data.y(target)[fold.test]
        point = np.full(len(y_test), y_train.mean())
        lower = np.full(len(y_test), np.quantile(y_train, alpha))
        upper = np.full(len(y_test), np.quantile(y_train, 1 - alpha))
        metrics = regression_report(y_test, point, lower, upper, count=target == "count")
        if target == "count":
            metrics["brier_empty"] = brier(y_test == 0, np.full(len(y_test), (y_train == 0).mean()))
        per_fold.append(metrics)
        stacks.append(np.column_stack([np.full(len(y_test), fold.index), y_test, point, lower, upper]))
    extra = {}
    if target == "count":
        extra["brier_empty"] = float(
            np.average([m["brier_empty"] for m in per_fold], weights=[m["n"] for m in per_fold])
        )
    stacked = np.vstack(stacks)
    return ModelResult(
        "training mean", "baseline", per_fold, _pooled(stacked, target, extra), predictions=stacked
    )


def baseline_heuristic(data: Dataset, folds: list[Fold]) -> ModelResult:
    """The seed's duration heuristic, max_symbols x 0.1 s (no interval: it was never calibrated)."""
    per_fold, stacks = [], []
    max_symbols = data.features["max_symbols"].to_numpy()
    for fold in folds:
        y_test = data.duration[fold.test]
        point = max_symbols[fold.test] * HEURISTIC_SECONDS_PER_SYMBOL
        per_fold.append(regression_report(y_test, point, count=False))
        nan = np.full(len(y_test), np.nan)
        stacks.append(np.column_stack([np.full(len(y_test), fold.index), y_test, point, nan, nan]))
    stacked = np.vstack(stacks)
    return ModelResult(
        "seed heuristic", "baseline", per_fold, _pooled(stacked, "duration"), predictions=stacked
    )


def per_source(
    result: ModelResult, data: Dataset, folds: list[Fold], target: str
) -> dict[str, dict[str, float]]:
    """``result``'s pooled metrics for each duration source among the holdout rows.

    Rows are stacked fold by fold in each fold's test order, so the sources line up with them.
    """
    if data.source is None or result.predictions is None:
        return {}
    sources = np.concatenate([data.source[f.test] for f in folds])
    stacked = result.predictions
    if len(sources) != len(stacked):
        return {}
    out = {}
    for name in sorted(set(sources)):
        rows = stacked[sources == name]
        if len(rows) >= 2:
            out[str(name)] = _pooled(rows, target)
    return out


def gate_failures(result: ModelResult, target: str, coverage: float, gates: Gates) -> list[str]:
    """The absolute gates a candidate misses (empty: it may be published)."""
    failures = []
    mae_max, r2_min = gates.bars(target)
    pooled = result.pooled
    if not pooled["mae"] < mae_max:
        failures.append(f"MAE {pooled['mae']:.4g} is not below {mae_max:g}")
    if not pooled["r2"] > r2_min:
        failures.append(f"R² {pooled['r2']:.3f} is not above {r2_min:g}")
    for k, metrics in enumerate(result.per_fold):
        floor = gates.coverage_floor(coverage, metrics.get("n"))
        if metrics.get("coverage", 0.0) < floor:
            failures.append(
                f"fold {k + 1}: coverage {metrics.get('coverage', 0.0):.1%} is below {floor:.1%}"
                f" ({int(metrics.get('n') or 0)} rows)"
            )
        if metrics["mae"] < gates.leakage_ratio * metrics["train_mae"]:
            failures.append(
                f"fold {k + 1}: leakage guard: holdout MAE {metrics['mae']:.4g} is below"
                f" {gates.leakage_ratio:g} x training MAE {metrics['train_mae']:.4g}"
            )
    return failures


def versus_champion(result: ModelResult, champion: ModelResult | None, gates: Gates) -> str | None:
    """Why ``result`` may not replace the champion (None: it may)."""
    if champion is None or result.pooled["mae"] <= champion.pooled["mae"] * (1 + gates.champion_tolerance):
        return None
    mine, theirs = result.pooled["mae"], champion.pooled["mae"]
    return f"MAE {mine:.4g} is worse than the champion's {theirs:.4g} on the same folds"


def validate_target(
    data: Dataset,
    target: str,
    *,
    candidates=DEFAULT_CANDIDATES,
    folds: list[Fold],
    coverage: float = 0.9,
    gates: Gates | None = None,
    champion: Candidate | None = None,
) -> TargetReport:
    """Backtest every candidate, the baselines and the champion on the same folds; pick the winner."""
    gates = gates or Gates()
    usable = [c for c in candidates if applies(c, target, data.has_universe)]
    small = [
        f for f in folds if len(f.test) < gates.min_fold_records or len(f.train) < gates.min_fold_records
    ]
    too_few = None
    if len(data) < gates.min_records:
        too_few = f"{len(data)} records; at least {gates.min_records} are needed to validate"
    elif small:
        too_few = (
            f"{len(small)} of {len(folds)} folds have fewer than {gates.min_fold_records}"
            " training or test records"
            f" (smallest test fold: {min(len(f.test) for f in folds)})"
        )
    if too_few:
        return TargetReport(target, coverage, folds, [], None, too_few=too_few)

    results = [backtest(c, data, folds, target, coverage) for c in usable]
    results.append(baseline_mean(data, folds, target, coverage))
    if target == "duration":
        results.append(baseline_heuristic(data, folds))
    champion_result = None
    if champion is not None:
        same = [r for c, r in zip(usable, results, strict=False) if c == champion]
        # A champion with the same spec as a candidate gives the same numbers (fixed random_state).
        champion_result = (
            ModelResult(
                same[0].name, same[0].kind, same[0].per_fold, same[0].pooled, predictions=same[0].predictions
            )
            if same
            else backtest(champion, data, folds, target, coverage)
        )
        champion_result.name, champion_result.kind = f"champion ({champion.name})", "champion"
        results.append(champion_result)
    for r in results:
        r.per_source = per_source(r, data, folds, target)
        if r.kind == "candidate":
            r.gate_failures = gate_failures(r, target, coverage, gates)
            r.vs_champion = versus_champion(r, champion_result, gates)
    passing = [r for r in results if r.kind == "candidate" and r.passed]
    pool = passing or [r for r in results if r.kind == "candidate"]
    chosen = min(pool, key=lambda r: r.pooled["mae"]).name if pool else None
    return TargetReport(target, coverage, folds, results, chosen)


def markdown(report: TargetReport, gates: Gates) -> str:
    """The report as a markdown table (CLI, bench, and later the Prefect UI)."""
    mae_max, r2_min = gates.bars(report.target)
    lines = [f"### {report.target}: stated coverage {report.coverage:.0%}"]
    if report.too_few:
        lines.append(f"\n**Too few records to validate**: {report.too_few}. Nothing is published.")
        return "\n".join(lines)
    lines.append(
        f"\nGates: MAE < {mae_max:g}, R² > {r2_min:g},"
        f" coverage >= {report.coverage - gates.coverage_tolerance:.0%}"
        f" on every fold (or within {gates.coverage_z:g} binomial standard errors of"
        f" {report.coverage:.0%} on a small fold), leakage guard; champion only if no worse than the"
        " current one."
    )
    cols = ["mae", "r2", "mape"] + (["q_error_median", "q_error_p90"] if report.target == "count" else [])
    cols += ["coverage", "mean_width"] + (["brier_empty"] if report.target == "count" else [])
    cols += ["abstain_share", "extrapolated_share"]
    lines.append("\n| model | kind | " + " | ".join(cols) + " | min fold coverage | gates |")
    lines.append("|" + "---|" * (len(cols) + 4))
    for r in report.results:
        cells = [_cell(r.pooled.get(c)) for c in cols]
        fold_cov = [m.get("coverage") for m in r.per_fold if m.get("coverage") is not None]
        min_cov = _cell(min(fold_cov)) if fold_cov else "-"
        verdict = (
            "-" if r.kind != "candidate" else ("pass" if r.passed else "FAIL: " + "; ".join(r.gate_failures))
        )
        if r.kind == "candidate" and r.vs_champion:
            verdict += f" (challenger only: {r.vs_champion})"
        mark = " (chosen)" if r.name == report.chosen else ""
        lines.append(f"| {r.name}{mark} | {r.kind} | " + " | ".join(cells) + f" | {min_cov} | {verdict} |")
    chosen = next((r for r in report.results if r.name == report.chosen), None)
    if chosen is not None and chosen.per_source:
        lines.append(f"\nPer duration source ({chosen.name}, every fold's holdout rows):\n")
        lines.append("| source | n | mae | r2 | coverage |")
        lines.append("|---|---|---|---|---|")
        for name, m in chosen.per_source.items():
            lines.append(
                f"| {name} | {int(m.get('n', 0))} | {_cell(m.get('mae'))} | {_cell(m.get('r2'))}"
                f" | {_cell(m.get('coverage'))} |"
            )
    return "\n".join(lines)


def _cell(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.4g}"
