"""Split conformal intervals on a log scale: the "honest uncertainty" of both predictors.

A model's residuals on data it never saw (the most recent slice of its training window, held out
in time) are ranked; the ``ceil((n + 1) x coverage)``-th smallest is the interval half-width. Under
exchangeability that interval contains the truth with probability at least ``coverage``; markets
drift, so the rolling-origin backtest (``validation``) checks the coverage actually reached on later
periods instead of trusting the theorem.

With a ``scale`` (normalized, or locally adaptive, conformal: Lei et al. 2018), each residual is
divided by the error a second model expects for that row, so the band is wide where scans are
hard to predict (many symbols near the threshold, a volatile market) and narrow where they are
easy, and the guarantee is unchanged: the quantile is still taken on held-out rows.

Residuals are measured as ``|log(y + offset) - log(prediction + offset)|``: errors of a scan count
or a duration grow with their size, so a multiplicative band (say x/÷ 1.3) fits every scale, while
an additive one would be too wide for small scans and too narrow for large ones. Counts use
``offset = 1`` (zero results are common); durations use a small offset relative to their scale.
"""

from __future__ import annotations

import math

import numpy as np


def _rank(n: int, coverage: float) -> int:
    # The tolerance keeps 0.9 x 10 = 9.000000000000002 from rounding up to 10.
    return math.ceil((n + 1) * coverage - 1e-9)


class LogConformal:
    """Fit on held-out (y, prediction) pairs; ``interval`` turns predictions into bands."""

    def __init__(self, coverage: float = 0.9, offset: float = 1.0):
        self.coverage = coverage
        self.offset = offset

    def fit(self, y_true, y_pred, scale=None) -> LogConformal:
        """``scale``: the expected size of each row's error (normalized conformal); None: 1."""
        if not 0 < self.coverage < 1:
            raise ValueError(
                f"coverage: received {self.coverage!r}; expected a number strictly between 0 and 1"
            )
        if not self.offset >= 0:
            raise ValueError(f"offset: received {self.offset!r}; expected a number >= 0")
        y_true = np.asarray(y_true, dtype=np.float64)
        y_pred = np.asarray(y_pred, dtype=np.float64)
        if y_true.shape != y_pred.shape or y_true.ndim != 1:
            raise ValueError(
                f"y_true/y_pred: received shapes {y_true.shape} and {y_pred.shape};"
                " expected two equal 1-d shapes"
            )
        n = len(y_true)
        k = _rank(n, self.coverage)
        if n == 0 or k > n:
            need = next(m for m in range(1, 10**7) if _rank(m, self.coverage) <= m)
            raise ValueError(
                f"calibration set: received {n} held-out predictions; expected at least {need} for a"
                f" {self.coverage:.0%} interval"
            )
        scores = np.abs(self.transform(y_true) - self.transform(y_pred)) / self._scale(scale, n)
        self.quantile_ = float(np.sort(scores)[k - 1])
        self.n_calibration_ = n
        return self

    @staticmethod
    def _scale(scale, n: int) -> np.ndarray:
        if scale is None:
            return np.ones(n)
        scale = np.asarray(scale, dtype=np.float64)
        if scale.shape != (n,) or not (np.isfinite(scale).all() and (scale > 0).all()):
            raise ValueError(
                f"scale: received shape {scale.shape} or non-positive values; expected {n} positive numbers"
            )
        return scale

    def transform(self, y):
        """The scale residuals are measured on: ``log(y + offset)``."""
        return np.log(np.maximum(y, 0.0) + self.offset)

    def interval(self, y_pred, scale=None) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) around ``y_pred`` (real-valued; lower clipped at 0)."""
        centre = self.transform(np.asarray(y_pred, dtype=np.float64))
        half = self.quantile_ * self._scale(scale, len(centre))
        lower = np.maximum(np.exp(centre - half) - self.offset, 0.0)
        upper = np.exp(centre + half) - self.offset
        return lower, upper

    def interval_one(self, y_pred: float, scale: float = 1.0) -> tuple[float, float]:
        """:meth:`interval` for one prediction in plain float arithmetic (the serving path)."""
        centre = math.log(max(y_pred, 0.0) + self.offset)
        half = self.quantile_ * scale
        return max(math.exp(centre - half) - self.offset, 0.0), math.exp(centre + half) - self.offset

    @property
    def factor(self) -> float:
        """The band's multiplicative half-width on ``y + offset`` (e.g. 1.25 means x/÷ 1.25)."""
        return math.exp(self.quantile_)


def integer_interval(lower, upper) -> tuple[np.ndarray, np.ndarray]:
    """The integers inside [lower, upper]: the same coverage for a count, and a tighter band.

    A band too narrow to hold an integer keeps the nearest one to its middle, so it is never empty.
    """
    lower, upper = np.asarray(lower, dtype=np.float64), np.asarray(upper, dtype=np.float64)
    lo = np.ceil(lower - 1e-9)
    hi = np.floor(upper + 1e-9)
    empty = lo > hi
    mid = np.round((lower + upper) / 2)
    return np.where(empty, mid, lo), np.where(empty, mid, hi)


def integer_interval_one(lower: float, upper: float) -> tuple[float, float]:
    """:func:`integer_interval` for one band, in plain floats."""
    lo, hi = math.ceil(lower - 1e-9), math.floor(upper + 1e-9)
    if lo > hi:
        mid = float(round((lower + upper) / 2))
        return mid, mid
    return float(lo), float(hi)
