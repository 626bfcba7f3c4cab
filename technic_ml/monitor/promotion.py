"""Champion against challenger on live data: the rule that may promote a challenger.

Validation publishes a model as *challenger* when it passed its gates but did not beat the
champion on the held-out folds, or when the champion changed while it was validated. The API then
shadows it: it predicts every request the champion serves and the ledger keeps both predictions
for the same outcome. :func:`compare` pairs them, and the challenger is promoted only when all of:

1. **enough evidence**: at least ``promote_min_outcomes`` scans on which both made a prediction
   with an interval and an outcome came back;
2. **better on the same scans**: its mean absolute error is lower, and a one-sided Wilcoxon
   signed-rank test on the paired absolute errors gives p below ``promote_p_max`` (a lower mean
   driven by a handful of scans is not "better");
3. **calibrated**: its realized coverage on those scans is at or above the validation gate's floor
   for that many rows (``Gates.coverage_floor``).

The decision says which condition failed, with the figures; the monitor records a promotion in the
registry's alias history with that reason, so every promotion says why it happened.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import wilcoxon

from technic_ml.monitor.live import Thresholds
from technic_ml.predictors.validation import Gates


@dataclass(frozen=True)
class Comparison:
    target: str
    champion: str
    challenger: str
    n: int  # shared scored outcomes
    champion_mae: float | None
    challenger_mae: float | None
    challenger_coverage: float | None
    coverage_floor: float | None
    p_value: float | None
    promote: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def paired(frame: pd.DataFrame, target: str, champion: str, challenger: str) -> pd.DataFrame:
    """Scans both versions predicted with an interval and that have an outcome, one row each:
    prediction_id, actual, the champion's value and the challenger's value, lower and upper."""
    usable = frame[
        (frame["target"] == target)
        & (frame["state"] == "model")
        & frame["actual"].notna()
        & frame["lower"].notna()
    ]
    a = usable[usable["version"] == champion][["prediction_id", "actual", "value"]]
    b = usable[usable["version"] == challenger][["prediction_id", "value", "lower", "upper"]]
    # A version that was champion for some requests and shadowed for others appears once per
    # prediction either way (a prediction has one served and at most one shadow per version).
    a = a.drop_duplicates("prediction_id")
    b = b.drop_duplicates("prediction_id")
    return a.merge(b, on="prediction_id", suffixes=("_champion", "_challenger"))


def compare(
    frame: pd.DataFrame,
    target: str,
    champion: str,
    challenger: str,
    *,
    stated_coverage: float,
    thresholds: Thresholds = Thresholds(),
    gates: Gates = Gates(),
) -> Comparison:
    """Apply the promotion rule (module docstring) to the ledger's shared outcomes."""
    pairs = paired(frame, target, champion, challenger)
    n = len(pairs)

    def result(promote, reason, **figures):
        base = dict.fromkeys(
            ("champion_mae", "challenger_mae", "challenger_coverage", "coverage_floor", "p_value")
        )
        return Comparison(
            target, champion, challenger, n, **{**base, **figures}, promote=promote, reason=reason
        )

    if n < thresholds.promote_min_outcomes:
        return result(False, f"{n} shared outcomes; at least {thresholds.promote_min_outcomes} needed")
    actual = pairs["actual"].to_numpy()
    err_a = np.abs(pairs["value_champion"].to_numpy() - actual)
    err_b = np.abs(pairs["value_challenger"].to_numpy() - actual)
    mae_a, mae_b = float(err_a.mean()), float(err_b.mean())
    covered = float(((pairs["lower"] <= pairs["actual"]) & (pairs["actual"] <= pairs["upper"])).mean())
    floor = gates.coverage_floor(stated_coverage, n)
    diff = err_b - err_a
    # Identical errors everywhere (the same model twice): no evidence either way.
    p = 1.0 if not np.any(diff) else float(wilcoxon(diff, alternative="less", zero_method="zsplit").pvalue)
    figures = dict(
        champion_mae=mae_a, challenger_mae=mae_b, challenger_coverage=covered, coverage_floor=floor, p_value=p
    )
    head = f"on {n} shared outcomes: challenger MAE {mae_b:.4g} vs champion {mae_a:.4g} (p={p:.3g})"
    if not mae_b < mae_a or p >= thresholds.promote_p_max:
        return result(False, f"{head}; not better at p < {thresholds.promote_p_max:g}", **figures)
    if covered < floor:
        return result(False, f"{head}; coverage {covered:.1%} below the floor {floor:.1%}", **figures)
    return result(True, f"live: {head}, coverage {covered:.1%} >= floor {floor:.1%}", **figures)
