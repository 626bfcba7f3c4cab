"""Live performance: how each published model is doing on the outcomes scans actually reported.

The API records every prediction it serves (and every challenger's shadow prediction) in the
ledger; the scanner reports outcomes later (``technic_ml.api.ledger``). This module turns the
ledger's :meth:`~technic_ml.api.ledger.PredictionLedger.outcomes_frame` into figures per model
version, over a rolling window of its last outcomes:

* realized **coverage** of its intervals, against the stated coverage and the same size-aware
  floor the validation gate uses (``Gates.coverage_floor``): a calibrated 90 % interval on 60
  outcomes lands below 87 % often, so the floor widens on a small window instead of crying wolf;
* **MAE**, and its ratio to the MAE the model reached in validation (its manifest);
* **q-error**, the median of max(predicted / actual, actual / predicted) (counts shifted by one so
  an empty scan is a number), a scale-free error that reads the same for 5 and 500 results;
* **abstention share** among its last predictions, outcome or not.

A figure over fewer than ``min_outcomes`` outcomes is reported and never judged: the verdict is
"too few", not a guess. :func:`coverage_series` draws realized coverage over time for the plots.
Pure pandas: the ``model-monitor`` flow reads the ledger and calls this.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from technic_ml.predictors.validation import Gates


@dataclass(frozen=True)
class Thresholds:
    """When the monitor calls a model degraded (settings ``TECHNIC_MONITOR_*``, see settings.py)."""

    #: Figures are over each model's last this many outcomes (and predictions, for abstention).
    window: int = 200
    #: Fewer outcomes than this: figures reported, no verdict.
    min_outcomes: int = 50
    #: Live MAE above this multiple of the validated MAE is degraded.
    mae_ratio_max: float = 1.5
    #: More than this share of a model's recent predictions abstaining is degraded.
    abstain_max: float = 0.25
    #: An input whose PSI exceeds what sampling alone gives by this much has drifted.
    psi_max: float = 0.25
    #: A market-condition input has drifted when more than this share of recent scans lie outside
    #: its training support (``drift.outside_support``).
    support_max: float = 0.5
    #: Fewer recent rows than this per side: no drift verdict for that input.
    drift_min_rows: int = 200
    #: A challenger is compared with the champion on at least this many shared outcomes.
    promote_min_outcomes: int = 100
    #: One-sided significance for "the challenger's errors are smaller on the same scans".
    promote_p_max: float = 0.05

    def __post_init__(self):
        for name in ("window", "min_outcomes", "drift_min_rows", "promote_min_outcomes"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: received {value!r}; expected an integer of at least 1")
        if self.min_outcomes > self.window:
            raise ValueError(
                f"min_outcomes: received {self.min_outcomes}; expected at most window ({self.window})"
            )
        for name in ("mae_ratio_max", "abstain_max", "psi_max", "support_max", "promote_p_max"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name}: received {value!r}; expected a positive number")

    @classmethod
    def from_settings(cls, settings) -> Thresholds:
        return cls(
            window=settings.monitor_window,
            min_outcomes=settings.monitor_min_outcomes,
            mae_ratio_max=settings.monitor_mae_ratio_max,
            abstain_max=settings.monitor_abstain_max,
            psi_max=settings.monitor_psi_max,
            support_max=settings.monitor_support_max,
            drift_min_rows=settings.monitor_drift_min_rows,
            promote_min_outcomes=settings.monitor_promote_min_outcomes,
        )


def q_errors(predicted: np.ndarray, actual: np.ndarray, target: str) -> np.ndarray:
    """max(p / a, a / p) per row; counts shifted by one (an empty scan is 1), durations floored at
    a millisecond (a zero-second scan is a logging artefact, not an infinite error)."""
    p, a = np.asarray(predicted, dtype=float), np.asarray(actual, dtype=float)
    if target == "count":
        p, a = np.maximum(p, 0) + 1, np.maximum(a, 0) + 1
    else:
        p, a = np.maximum(p, 1e-3), np.maximum(a, 1e-3)
    return np.maximum(p / a, a / p)


@dataclass(frozen=True)
class LivePerformance:
    """One model version's figures over its window of recent outcomes (None: nothing to compute)."""

    target: str
    version: str
    role: str  # champion | challenger (what the registry calls it now)
    n_predictions: int
    n_outcomes: int
    coverage: float | None
    stated_coverage: float | None
    coverage_floor: float | None
    mae: float | None
    validated_mae: float | None
    q_error: float | None
    abstain_share: float | None
    findings: tuple[str, ...] = field(default_factory=tuple)
    too_few: bool = False

    @property
    def degraded(self) -> bool:
        return bool(self.findings)

    def to_dict(self) -> dict[str, Any]:
        d = dict(vars(self))
        d["findings"] = list(self.findings)
        d["degraded"] = self.degraded
        return d


def model_rows(frame: pd.DataFrame, target: str, version: str) -> pd.DataFrame:
    """A version's predictions of ``target`` (served or shadowed), oldest first."""
    rows = frame[(frame["target"] == target) & (frame["version"] == version)]
    return rows.sort_values(["created_at", "prediction_id"], kind="stable")


def scored(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows a model can be judged on: it predicted with an interval and an outcome came back;
    ordered by when the outcome arrived."""
    ok = rows[(rows["state"] == "model") & rows["actual"].notna() & rows["lower"].notna()]
    return ok.sort_values(["reported_at", "prediction_id"], kind="stable")


def live_performance(
    frame: pd.DataFrame,
    target: str,
    version: str,
    manifest: dict[str, Any],
    *,
    role: str = "champion",
    thresholds: Thresholds = Thresholds(),
    gates: Gates | None = None,
) -> LivePerformance:
    """Figures and findings for one model version over its last ``thresholds.window`` outcomes.

    ``manifest`` is the version's registry manifest: its stated coverage, the validation MAE and
    the gates it was published under (``gates`` overrides them).
    """
    gates = gates or _gates(manifest)
    stated = manifest.get("coverage")
    validated_mae = ((manifest.get("validation") or {}).get("pooled") or {}).get("mae")
    rows = model_rows(frame, target, version)
    recent = rows.tail(thresholds.window)
    n_predictions = len(recent)
    abstain = float((recent["state"] == "abstain").mean()) if n_predictions else None
    judged = scored(rows).tail(thresholds.window)
    n = len(judged)
    coverage = mae = q = floor = None
    if n:
        actual, value = judged["actual"].to_numpy(), judged["value"].to_numpy()
        inside = (judged["lower"] <= judged["actual"]) & (judged["actual"] <= judged["upper"])
        coverage = float(inside.mean())
        mae = float(np.abs(value - actual).mean())
        q = float(np.median(q_errors(value, actual, target)))
        if stated is not None:
            floor = gates.coverage_floor(stated, n)
    findings = []
    too_few = n < thresholds.min_outcomes
    if not too_few:
        if coverage is not None and floor is not None and coverage < floor:
            findings.append(
                f"coverage {coverage:.1%} on its last {n} outcomes is below the floor {floor:.1%}"
                f" (stated {stated:.0%})"
            )
        if mae is not None and validated_mae and mae > thresholds.mae_ratio_max * validated_mae:
            findings.append(
                f"MAE {mae:.4g} on its last {n} outcomes is {mae / validated_mae:.2f}x the validated"
                f" {validated_mae:.4g} (limit {thresholds.mae_ratio_max:g}x)"
            )
    if n_predictions >= thresholds.min_outcomes and abstain is not None and abstain > thresholds.abstain_max:
        findings.append(
            f"abstained on {abstain:.1%} of its last {n_predictions} predictions"
            f" (limit {thresholds.abstain_max:.0%})"
        )
    return LivePerformance(
        target, version, role, n_predictions, n, coverage, stated, floor, mae, validated_mae, q, abstain,
        tuple(findings), too_few,
    )  # fmt: skip


def _gates(manifest: dict[str, Any]) -> Gates:
    recorded = (manifest.get("validation") or {}).get("gates") or {}
    known = {k: v for k, v in recorded.items() if k in Gates.__dataclass_fields__}
    return Gates(**known)


def coverage_series(frame: pd.DataFrame, target: str, version: str, window: int) -> pd.DataFrame:
    """Realized coverage and MAE over the last ``window`` outcomes, after each outcome (time,
    n, coverage, mae): the line the monitor's plot draws against the stated coverage and floor."""
    judged = scored(model_rows(frame, target, version))
    if judged.empty:
        return pd.DataFrame(columns=["at", "n", "coverage", "mae"])
    hit = ((judged["lower"] <= judged["actual"]) & (judged["actual"] <= judged["upper"])).astype(float)
    err = (judged["value"] - judged["actual"]).abs()
    return pd.DataFrame(
        {
            "at": pd.to_datetime(judged["reported_at"], utc=True, format="ISO8601").to_numpy(),
            "n": np.minimum(np.arange(1, len(judged) + 1), window),
            "coverage": hit.rolling(window, min_periods=1).mean().to_numpy(),
            "mae": err.rolling(window, min_periods=1).mean().to_numpy(),
        }
    )
