"""Duration = work x rate: the structure of the ``"rated"`` duration model.

Database cost models (and learned runtime predictors such as Redshift's Stage or Bao) split a
query's time into the work it does, which depends on the query and the data, and the rate at
which a given machine does work. A scan is the same: its work follows from the config and the
universe at the previous close (symbols chosen and rated, lookback, results); the rate is the
data source's (the reference scanner on this machine, or a production scanner behind a network).

:class:`RatedRegressor` learns one work function shared by every source (a gradient-boosted model
of the features with the source column blanked, so no tree can split on it) and one rate per
source: ``duration = work(x) x rate[source]``. The two are fitted alternately in log space: a
rate is the median of ``log(duration) - log(work)`` over the source's scans, the work is refitted
on ``duration / rate``. A new machine or source shares the work function and needs only its rate:
:meth:`recalibrate` estimates it from a few scans (the median is robust to a slow outlier), which
``bench/bench_duration_load.py`` shows with 50 scans of one load condition after training on
another.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import clone

ROUNDS = 3  # alternating fits of work and rates; the rates settle within 1 % by the third


class RatedRegressor:
    """``predict(X) = work(X) x rates_[X[:, source_column]]``; NaN for a source it has no rate for."""

    def __init__(self, base, source_column: int):
        self.base = base
        self.source_column = source_column

    def _blank(self, X: np.ndarray) -> np.ndarray:
        X = np.array(X, dtype=np.float64, copy=True)
        X[:, self.source_column] = 0.0
        return X

    def fit(self, X, y) -> RatedRegressor:
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        source = X[:, self.source_column]
        blank = self._blank(X)
        codes = np.unique(source)
        rates = {float(c): float(np.median(y[source == c])) for c in codes}
        scale = rates[float(codes[np.argmax([np.sum(source == c) for c in codes])])]
        rates = {c: r / scale for c, r in rates.items()}  # the most common source starts at 1
        for _ in range(ROUNDS):
            base = clone(self.base).fit(blank, y / self.rates_for(rates, source))
            log_ratio = np.log(y) - np.log(base.predict(blank))
            rates = {float(c): float(np.exp(np.median(log_ratio[source == c]))) for c in codes}
        self.base_ = base
        self.rates_ = rates
        self.n_scans_ = {float(c): int(np.sum(source == c)) for c in codes}
        self.bands_ = {}  # source code -> interval band factor set by recalibration (1 otherwise)
        return self

    @staticmethod
    def rates_for(rates: dict[float, float], source: np.ndarray) -> np.ndarray:
        return np.array([rates.get(float(c), np.nan) for c in source])

    def rate(self, code: float) -> float:
        """Seconds per unit of work for the source coded ``code`` (NaN: never seen)."""
        return self.rates_.get(float(code), float("nan"))

    def band(self, code: float) -> float:
        """The interval band factor of a source (1 unless recalibration widened it)."""
        return getattr(self, "bands_", {}).get(float(code), 1.0)

    def bands(self, source: np.ndarray) -> np.ndarray:
        return np.array([self.band(c) for c in source])

    def work(self, X) -> np.ndarray:
        return self.base_.predict(self._blank(X))

    def predict(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        return self.work(X) * self.rates_for(self.rates_, X[:, self.source_column])

    def recalibrate(self, X, y) -> dict[float, float]:
        """Re-estimate the rate of every source in ``X`` from these scans alone; the new rates."""
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        if len(y) == 0 or len(y) != len(X):
            raise ValueError(
                f"y: received {len(y)} durations for {len(X)} rows; expected one per row, at least one"
            )
        if not (np.isfinite(y).all() and (y > 0).all()):
            raise ValueError("y: received durations that are not positive finite seconds; expected > 0")
        source = X[:, self.source_column]
        log_ratio = np.log(y) - np.log(self.work(X))
        updated = {}
        for c in np.unique(source):
            rows = source == c
            updated[float(c)] = float(np.exp(np.median(log_ratio[rows])))
            self.n_scans_[float(c)] = int(rows.sum())
        self.rates_ = {**self.rates_, **updated}
        return updated
