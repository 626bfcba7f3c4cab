"""Accuracy and calibration metrics of the validation report (pure numpy, hand-checked in tests).

* ``mae``, ``r2``: the seed's gates.
* ``mape``: mean absolute percentage error over rows whose truth is not zero (a zero-result scan has
  no percentage error); the share of rows used is reported next to it.
* ``q_error``: max(pred/true, true/pred) on ``y + 1`` (so empty scans count): 1 is perfect, 2 means
  off by a factor of two either way. Median and p90 for counts.
* ``coverage``/``mean_width``: share of truths inside their interval, and its average width.
* ``brier``: mean squared error of P(empty) against the 0/1 outcome.
"""

from __future__ import annotations

import numpy as np


def _arrays(y_true, y_pred):
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true/y_pred: received shapes {y_true.shape} and {y_pred.shape}; expected equal")
    if len(y_true) == 0:
        raise ValueError("y_true: received no rows; expected at least one")
    return y_true, y_pred


def mae(y_true, y_pred) -> float:
    y_true, y_pred = _arrays(y_true, y_pred)
    return float(np.mean(np.abs(y_true - y_pred)))


def r2(y_true, y_pred) -> float:
    y_true, y_pred = _arrays(y_true, y_pred)
    total = np.sum((y_true - y_true.mean()) ** 2)
    if total == 0:
        return float("nan")  # a constant truth has no variance to explain
    return float(1 - np.sum((y_true - y_pred) ** 2) / total)


def mape(y_true, y_pred) -> tuple[float, float]:
    """(MAPE over non-zero truths, share of rows with a non-zero truth)."""
    y_true, y_pred = _arrays(y_true, y_pred)
    nonzero = y_true != 0
    if not nonzero.any():
        return float("nan"), 0.0
    value = np.mean(np.abs((y_true[nonzero] - y_pred[nonzero]) / y_true[nonzero]))
    return float(value), float(nonzero.mean())


def q_errors(y_true, y_pred) -> np.ndarray:
    y_true, y_pred = _arrays(y_true, y_pred)
    a, b = np.maximum(y_true, 0) + 1, np.maximum(y_pred, 0) + 1
    return np.maximum(a / b, b / a)


def coverage(y_true, lower, upper) -> float:
    y_true = np.asarray(y_true, dtype=np.float64)
    return float(np.mean((np.asarray(lower) <= y_true) & (y_true <= np.asarray(upper))))


def mean_width(lower, upper) -> float:
    return float(np.mean(np.asarray(upper, dtype=np.float64) - np.asarray(lower, dtype=np.float64)))


def brier(outcome, probability) -> float:
    outcome, probability = _arrays(outcome, probability)
    return float(np.mean((probability - outcome) ** 2))


def regression_report(y_true, y_pred, lower=None, upper=None, *, count: bool) -> dict[str, float]:
    """Every metric of one target on one set of rows."""
    m, m_share = mape(y_true, y_pred)
    out = {
        "n": float(len(np.asarray(y_true))),
        "mae": mae(y_true, y_pred),
        "r2": r2(y_true, y_pred),
        "mape": m,
        "mape_rows": m_share,
    }
    if count:
        q = q_errors(y_true, y_pred)
        out["q_error_median"] = float(np.median(q))
        out["q_error_p90"] = float(np.quantile(q, 0.9))
    if lower is not None and upper is not None:
        out["coverage"] = coverage(y_true, lower, upper)
        out["mean_width"] = mean_width(lower, upper)
    return out
