"""The two predictors: ``ResultCountPredictor`` and ``DurationPredictor``.

Both follow scikit-learn's estimator contract (``__init__`` only stores parameters, ``fit`` returns
``self``, fitted attributes end in ``_``, ``check_is_fitted`` guards prediction), so they clone,
compare and persist like any scikit-learn model. ``fit`` takes time-ordered rows and holds out the
most recent ``calibration_fraction`` of them, in ``calibration_blocks`` consecutive blocks: each
block is predicted by a model fitted on every row before it (never on the block itself), and the
conformal band (:mod:`.conformal`) is calibrated on those errors. The model fitted before the last
block is the one that serves.

Models (``model=``):

* ``"rf"``: the seed's Random Forest (100 trees, max_depth 10, min_samples_split 5, random_state
  42), fitted on the raw target, as the original did.
* ``"hgb"``: histogram gradient boosting with a loss that fits the target (Poisson for counts,
  Gamma for durations, both multiplicative) and monotonic constraints where the scanner is
  monotone: a count never rises with ``min_tech_rating`` or ``min_dollar_vol`` and never falls
  with ``max_symbols``; a duration never falls with ``max_symbols``, ``lookback_days`` or the work.
* ``"rated"`` (duration only, enriched features): the same boosting as the work function of
  ``duration = work x rate[source]`` (:mod:`.rated`); ``DurationPredictor.recalibrate`` moves a
  source's rate from a few scans.

Two prediction surfaces, each with one verb per shape:

* the **model** (scikit-learn's and MAPIE's contract, on the fitted scikit-learn objects):
  ``predict(X)`` the point, ``predict_interval(X)`` (point, lower, upper) at ``coverage``; what
  the compiled runtime is tested against;
* **serving** (the API, the optimizer, validation), through the compiled flat-tree runtime
  (:mod:`.runtime`) and the range rule below: ``predict_one(x)`` one feature row in, a
  :class:`Prediction` out; ``predict_batch(X)`` the same for many rows, as arrays (with
  ``range_rule=False`` the model's own answer on every row, what validation scores). The API's
  fast path walks both predictors' ensembles in one compiled call and hands ``predict_one`` the
  scores (``scores=``) instead of letting it walk them.

Against the range each feature had in training (:meth:`_TreePredictor.range_check`):

* a **missing** input: abstain (no number), naming it;
* a **continuous** feature (``EXTRAPOLATABLE``: sizes, thresholds, market levels) above its
  training maximum or below its minimum by at most ``EXTRAPOLATION_MARGIN`` (10 %) of its training
  span: predict, flagged ``extrapolated`` with the reason, and the interval's log-scale half-width
  multiplied by ``1 + overshoot / margin`` (x2 at the margin's edge) for the farthest feature.
  Trees hold their value beyond the last split, so a modestly larger universe gets the prediction
  of the largest one seen, and the wider band says how much less is known (bench/README.md,
  "Abstain only where it matters", has what abstaining there cost);
* farther out, or a **coded** feature (source, trend, weekday, hour, market hours, numbers of
  sectors and industries) with a value never seen: abstain.

When no duration model exists, :func:`heuristic_duration` gives the seed's ``max_symbols x 0.1 s``
flagged as a heuristic with no interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numba
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestRegressor,
)
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data
from threadpoolctl import threadpool_limits

from technic_ml.contracts import ScanConfig
from technic_ml.predictors.conformal import LogConformal, integer_interval, integer_interval_one
from technic_ml.predictors.features import FeatureSet, feature_set
from technic_ml.predictors.rated import RatedRegressor
from technic_ml.predictors.runtime import flatten

MODELS = ("rf", "hgb", "rated")
INTERVALS = ("adaptive", "split")
#: Continuous features a prediction may extrapolate modestly beyond their training range (above).
EXTRAPOLATABLE = frozenset(
    {
        "max_symbols",
        "min_tech_rating",
        "min_dollar_vol",
        "lookback_days",
        "volatility",
        "momentum",
        "return_5d",
        "return_20d",
        "vix_level",
        "n_universe",
        "n_rated",
        "prev_count",
        "prev_share",
        "n_near",
        "work",
    }
)
#: How far beyond its training range (a share of the range's span) a continuous feature may be.
EXTRAPOLATION_MARGIN = 0.10
#: The feature holding the duration source (``features.SOURCE_CODES``): the rated model's rate key.
SOURCE_COLUMN = "data_source"
MIN_TRAIN_ROWS = 30
MIN_CALIBRATION_ROWS = 20
#: ``feature_set`` value for "the columns X has": a general regressor, outside the scan features
#: (no monotone constraints, not servable from a scan config); what scikit-learn's checks run on.
GIVEN = "given"
HEURISTIC_SECONDS_PER_SYMBOL = 0.1
State = Literal["model", "heuristic", "abstain"]


@dataclass(frozen=True)
class Prediction:
    """One prediction. ``coverage`` is the interval's stated coverage; ``coverage_verified`` is the
    coverage the published model's intervals reached on held-out future folds (lowest fold first:
    see the manifest), filled in by the serving layer. Both are None when there is no interval
    (a heuristic or an abstention)."""

    target: str
    state: State
    value: float | None
    lower: float | None = None
    upper: float | None = None
    coverage: float | None = None
    p_empty: float | None = None
    version: str | None = None
    reasons: tuple[str, ...] = field(default_factory=tuple)
    coverage_verified: float | None = None
    #: The duration source a duration is for (``features.SOURCES``); None for a count.
    source: str | None = None
    #: An input lies modestly outside its training range: the interval was widened (see reasons).
    extrapolated: bool = False

    def to_dict(self) -> dict[str, Any]:
        # By hand: dataclasses.asdict deep-copies recursively, a third of an API request's cost.
        return {
            "target": self.target,
            "state": self.state,
            "value": self.value,
            "lower": self.lower,
            "upper": self.upper,
            "coverage": self.coverage,
            "p_empty": self.p_empty,
            "version": self.version,
            "reasons": list(self.reasons),
            "coverage_verified": self.coverage_verified,
            "source": self.source,
            "extrapolated": self.extrapolated,
        }


def heuristic_duration(config: ScanConfig, reason: str = "no trained duration model") -> Prediction:
    """The seed's fallback, flagged: ``max_symbols x 0.1 s``, uncalibrated, so no interval."""
    return Prediction(
        target="duration",
        state="heuristic",
        value=config.max_symbols * HEURISTIC_SECONDS_PER_SYMBOL,
        reasons=(
            f"{reason}: seed heuristic max_symbols x {HEURISTIC_SECONDS_PER_SYMBOL} s (not calibrated)",
        ),
    )


class _TreePredictor(RegressorMixin, BaseEstimator):
    _target: str = ""
    _offset: float = 1.0
    _hgb_loss: str = ""  # the boosting loss that suits the target's distribution
    # Features the target can only rise (+1) or fall (-1) with, all else equal: a constraint the
    # boosted model keeps, so a stricter config never predicts more results or a longer scan.
    _monotone: dict[str, int] = {}  # noqa: RUF012 - read only, set per subclass

    def __init__(
        self,
        model: str = "hgb",
        feature_set: str = "enriched",
        coverage: float = 0.9,
        calibration_fraction: float = 0.2,
        calibration_blocks: int = 3,
        min_train_rows: int = MIN_TRAIN_ROWS,
        min_calibration_rows: int = MIN_CALIBRATION_ROWS,
        interval: str = "adaptive",
        max_iter: int = 300,
        learning_rate: float = 0.08,
        random_state: int = 42,
        n_jobs: int | None = None,
    ):
        self.model = model
        self.feature_set = feature_set
        self.coverage = coverage
        self.calibration_fraction = calibration_fraction
        self.calibration_blocks = calibration_blocks
        self.min_train_rows = min_train_rows
        self.min_calibration_rows = min_calibration_rows
        self.interval = interval
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.random_state = random_state
        self.n_jobs = n_jobs

    # -- configuration ---------------------------------------------------------------------------

    @property
    def features(self) -> FeatureSet:
        if self.feature_set == GIVEN:
            # The columns X had at fit: unknown before it.
            check_is_fitted(self, "n_features_in_")
            return FeatureSet(GIVEN, self._target, tuple(self._column_names()), False)
        return feature_set(self.feature_set, self._target)

    def _column_names(self) -> list[str]:
        """The names messages use for the columns: the feature names, or x0, x1... for an array
        fitted with ``feature_set="given"``."""
        names = getattr(self, "feature_names_in_", None)
        return [str(n) for n in names] if names is not None else [f"x{j}" for j in range(self.n_features_in_)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # Counts are >= 0 and durations > 0 (both fitted on a log scale): a target at or below zero
        # is refused with its value, and scikit-learn's checks then draw positive targets.
        tags.target_tags.positive_only = True
        return tags

    def _make_estimator(self, columns: tuple[str, ...]):
        if self.model == "rf":
            return RandomForestRegressor(
                n_estimators=100,
                max_depth=10,
                min_samples_split=5,
                random_state=self.random_state,
                n_jobs=self.n_jobs,
            )
        if self.model in ("hgb", "rated"):
            hgb = HistGradientBoostingRegressor(
                loss=self._hgb_loss,
                learning_rate=self.learning_rate,
                max_iter=self.max_iter,
                max_leaf_nodes=31,
                min_samples_leaf=40,
                l2_regularization=1.0,
                monotonic_cst=[self._monotone.get(c, 0) for c in columns],
                # Its own early stopping holds out a random (not time-ordered) slice: off.
                early_stopping=False,
                random_state=self.random_state,
            )
            if self.model == "rated":
                return RatedRegressor(hgb, columns.index(SOURCE_COLUMN))
            return hgb
        raise ValueError(f"model: received {self.model!r}; expected one of {list(MODELS)}")

    def _validate_params(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"model: received {self.model!r}; expected one of {list(MODELS)}")
        if self.feature_set == GIVEN:
            columns: tuple[str, ...] = ()
        else:
            columns = self.features.columns  # raises on an unknown feature set
        if self.model == "rated" and SOURCE_COLUMN not in columns:
            raise ValueError(
                f"model: received 'rated' with feature_set {self.feature_set!r} for {self._target};"
                f" expected a feature set with the {SOURCE_COLUMN!r} column (a rate per source)"
            )
        if not 0 < self.coverage < 1:
            raise ValueError(
                f"coverage: received {self.coverage!r}; expected a number strictly between 0 and 1"
            )
        if self.interval not in INTERVALS:
            raise ValueError(f"interval: received {self.interval!r}; expected one of {list(INTERVALS)}")
        if (
            isinstance(self.calibration_blocks, bool)
            or not isinstance(self.calibration_blocks, int)
            or self.calibration_blocks < 1
        ):
            raise ValueError(
                f"calibration_blocks: received {self.calibration_blocks!r}; expected an integer >= 1"
            )
        if not 0 < self.calibration_fraction < 1:
            raise ValueError(
                f"calibration_fraction: received {self.calibration_fraction!r}; expected a number in (0, 1)"
            )
        for name in ("min_train_rows", "min_calibration_rows"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: received {value!r}; expected an integer >= 1")

    # -- lifecycle -------------------------------------------------------------------------------

    def _check_X(self, X, *, fitting: bool) -> np.ndarray:
        if self.feature_set == GIVEN:
            # Any columns (scikit-learn's own validation and messages; names kept from a frame).
            return validate_data(self, X, reset=fitting, dtype=np.float64)
        columns = self.features.columns
        if isinstance(X, pd.DataFrame):
            missing = [c for c in columns if c not in X.columns]
            if missing:
                raise ValueError(
                    f"X: missing columns {missing}; expected the {self.feature_set!r} {self._target} features"
                    f" {list(columns)}"
                )
            X = X.loc[:, list(columns)].to_numpy(dtype=np.float64)
        else:
            X = np.asarray(X, dtype=np.float64)
            if X.ndim != 2 or X.shape[1] != len(columns):
                raise ValueError(
                    f"X: received shape {X.shape}; expected (n, {len(columns)}) columns {list(columns)}"
                )
        if fitting and not np.isfinite(X).all():
            bad = [columns[j] for j in np.flatnonzero(~np.isfinite(X).all(axis=0))]
            raise ValueError(
                f"X: columns {bad} hold NaN or infinite values; expected finite features to fit on"
            )
        return X

    def _check_y(self, y) -> np.ndarray:
        raise NotImplementedError

    def _threads(self):
        # OpenMP (histogram boosting) spin-waits when a core is busy elsewhere: on a loaded 2-core
        # machine a 1-second fit took minutes with 2 threads. One thread unless asked for more.
        return threadpool_limits(limits=self.n_jobs or 1, user_api="openmp")

    def fit(self, X, y, *, timestamps=None):
        """Fit on time-ordered rows; the newest ``calibration_fraction`` calibrate the interval."""
        with self._threads():
            return self._fit(X, y, timestamps)

    def _fit(self, X, y, timestamps):
        self._validate_params()
        X = self._check_X(X, fitting=True)
        y = self._check_y(y)
        if len(y) != len(X):
            raise ValueError(f"y: received {len(y)} values for {len(X)} rows of X; expected one per row")
        if timestamps is not None:
            ts = pd.DatetimeIndex(timestamps)
            if len(ts) != len(X):
                raise ValueError(f"timestamps: received {len(ts)} for {len(X)} rows; expected one per row")
            if not ts.is_monotonic_increasing:
                raise ValueError(
                    "timestamps: received rows out of time order; expected oldest first (no shuffling)"
                )
        n = len(X)
        n_cal = max(math.ceil(n * self.calibration_fraction), self.min_calibration_rows)
        n_train = n - n_cal
        if n_train < self.min_train_rows:
            raise ValueError(
                f"X: received {n} rows (n_samples={n}); expected at least"
                f" {self.min_train_rows + self.min_calibration_rows}"
                f" ({self.min_train_rows} to train on and {self.min_calibration_rows} to calibrate the"
                " interval)"
            )
        columns = self.features.columns if self.feature_set != GIVEN else tuple(self._column_names())
        self.conformal_ = LogConformal(self.coverage, self._offset)
        # Rolling calibration: each block of the held-out slice is predicted by a model fitted on
        # everything before it, so the pooled errors include how much the level moved from one
        # period to the next (a single split only sees the last such move). The last fit serves.
        blocks = np.array_split(np.arange(n_train, n), min(self.calibration_blocks, n_cal))
        truths, predictions, scales = [], [], []
        for block in blocks:
            start = int(block[0])
            self.estimator_ = self._make_estimator(columns).fit(X[:start], y[:start])
            self._fit_scale(X[:start], y[:start])
            predicted = self.estimator_.predict(X[block])
            seen = np.isfinite(predicted)  # False only for a source the rated model has no rate for yet
            truths.append(y[block][seen])
            predictions.append(predicted[seen])
            scale = self._scale(X[block][seen])
            scales.append(np.ones(int(seen.sum())) if scale is None else scale)
        self.conformal_.fit(np.concatenate(truths), np.concatenate(predictions), np.concatenate(scales))
        n_fit = int(blocks[-1][0])
        if self.feature_set != GIVEN:
            self.feature_names_in_ = np.array(columns, dtype=object)
            self.n_features_in_ = len(columns)
        self.feature_range_ = np.vstack([X.min(axis=0), X.max(axis=0)])
        self.n_train_, self.n_calibration_ = n_fit, n_cal
        base = getattr(self.estimator_, "base_", self.estimator_)
        # Boosting iterations of the serving model (trees of a forest): scikit-learn's n_iter_.
        self.n_iter_ = int(getattr(base, "n_iter_", None) or len(getattr(base, "estimators_", ())))
        self.runtime_ = flatten(base)
        self.scale_runtime_ = None if self.scale_model_ is None else flatten(self.scale_model_)
        self._fit_extra(X[:n_fit], y[:n_fit])
        return self

    def _fit_extra(self, X: np.ndarray, y: np.ndarray) -> None:
        pass

    def _fit_scale(self, X: np.ndarray, y: np.ndarray) -> None:
        """The difficulty model of adaptive intervals: expected |log error| from the features.

        It learns from the training rows' own residuals; those are smaller than out-of-sample ones,
        but only their relative size matters: the conformal quantile on held-out rows sets the scale.
        """
        self.scale_model_ = None
        if self.interval != "adaptive":
            return
        log_error = np.abs(
            self.conformal_.transform(y) - self.conformal_.transform(self.estimator_.predict(X))
        )
        self.scale_floor_ = float(max(np.quantile(log_error, 0.05), 1e-3))
        self.scale_model_ = HistGradientBoostingRegressor(
            loss="squared_error",
            learning_rate=0.05,
            max_iter=100,
            max_leaf_nodes=15,
            min_samples_leaf=200,
            l2_regularization=1.0,
            early_stopping=False,
            random_state=self.random_state,
        ).fit(X, log_error)

    def _scale(self, X: np.ndarray) -> np.ndarray | None:
        if self.scale_model_ is None:
            return None
        return np.maximum(self.scale_model_.predict(X), self.scale_floor_)

    def _band(self, X: np.ndarray) -> np.ndarray | None:
        """Per-row band factors of a rated model's recalibrated sources (None: no model has any)."""
        if self.model != "rated" or not getattr(self.estimator_, "bands_", None):
            return None
        return self.estimator_.bands(X[:, self.estimator_.source_column])

    def _require_estimators(self, what: str) -> None:
        """Fitted, with its scikit-learn objects (not the serving-only form of ``portable``)."""
        check_is_fitted(self)
        if getattr(self, "serving_only_", False):
            raise ValueError(
                f"{what}: this predictor was loaded from its portable serving file, without its"
                " scikit-learn objects; predict_batch serves the same numbers, and"
                " ModelRegistry.load(..., fitted=True) gives the fitted model under its library versions"
            )

    def predict(self, X) -> np.ndarray:
        self._require_estimators("predict")
        with self._threads():
            return self.estimator_.predict(self._check_X(X, fitting=False))

    def predict_interval(self, X) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(point, lower, upper) at the stated ``coverage``."""
        self._require_estimators("predict_interval")
        X = self._check_X(X, fitting=False)
        with self._threads():
            point = self.estimator_.predict(X)
            scale = self._scale(X)
            band = self._band(X)
            if band is not None:
                scale = band if scale is None else scale * band
            lower, upper = self.conformal_.interval(point, scale)
        return point, lower, upper

    def range_check(self, x: np.ndarray) -> tuple[float | None, list[str]]:
        """(interval widening factor, reasons) for a row outside the training range.

        The factor is None when the model must abstain (reasons say why); otherwise it is the
        log-scale half-width multiplier of the farthest extrapolating feature (see the module
        docstring), and the reasons name every extrapolating feature.
        """
        check_is_fitted(self)
        lo, hi = self.feature_range_
        abstain, extrapolating, widen = [], [], 1.0
        for j, name in enumerate(self._column_names()):
            v = x[j]
            if not np.isfinite(v):
                abstain.append(f"{name}: missing")
                continue
            if lo[j] <= v <= hi[j]:
                continue
            where = f"{name}={_fmt(v)} outside the training range [{_fmt(lo[j])}, {_fmt(hi[j])}]"
            span = hi[j] - lo[j]
            overshoot = (lo[j] - v if v < lo[j] else v - hi[j]) / span if span > 0 else math.inf
            if name in EXTRAPOLATABLE and overshoot <= EXTRAPOLATION_MARGIN:
                factor = 1 + overshoot / EXTRAPOLATION_MARGIN
                widen = max(widen, factor)
                extrapolating.append(
                    f"extrapolating: {where}, by {overshoot:.1%} of its span; interval widened x{factor:.2f}"
                )
            else:
                abstain.append(where)
        if abstain:
            return None, abstain
        return widen, extrapolating

    def serving_ensembles(self) -> list:
        """The compiled ensembles a served prediction walks, in the order ``predict_one(scores=)``
        takes their outputs: the point, then the interval's scale (adaptive intervals only)."""
        return [self.runtime_] if self.scale_runtime_ is None else [self.runtime_, self.scale_runtime_]

    def predict_one(
        self,
        x: np.ndarray,
        *,
        scores: list[float] | None = None,
        version: str | None = None,
        coverage_verified: float | None = None,
    ) -> Prediction:
        """Serve one feature row (see :func:`technic_ml.predictors.features.feature_vector`).

        ``scores``: the outputs of :meth:`serving_ensembles` on ``x`` when the caller already
        computed them (the API walks both predictors' ensembles in one compiled call); by default
        this walks them itself."""
        if scores is None:
            if not hasattr(self, "runtime_"):  # check_is_fitted scans every attribute: 10 µs a call
                check_is_fitted(self)
            if x.dtype != np.float64 or not x.flags.c_contiguous:
                x = np.ascontiguousarray(x, dtype=np.float64)
            if x.shape != (self.n_features_in_,):
                raise ValueError(f"x: received shape {x.shape}; expected ({self.n_features_in_},)")
            scores = [e.predict_row(x) for e in self.serving_ensembles()]
        # One compiled test on the fast path; the range rule only when it fails (NaN fails).
        widen, notes = 1.0, []
        if not _inside(x, *self.feature_range_):
            widen, notes = self.range_check(x)
            if widen is None:
                return Prediction(self._target, "abstain", None, version=version, reasons=tuple(notes))
        point = scores[0]
        if self.model == "rated":
            code = x[self.estimator_.source_column]
            rate = self.estimator_.rate(code)
            if rate != rate:  # NaN: no scan of this source in training or recalibration
                return Prediction(
                    self._target,
                    "abstain",
                    None,
                    version=version,
                    reasons=(f"{SOURCE_COLUMN}={_fmt(code)}: no rate for this source (no scans of it)",),
                )
            point *= rate
        scale = 1.0 if self.scale_runtime_ is None else max(scores[1], self.scale_floor_)
        if self.model == "rated":
            scale *= self.estimator_.band(x[self.estimator_.source_column])
        lower, upper = self.conformal_.interval_one(point, scale * widen)
        prediction = self._prediction(x, point, lower, upper, version, coverage_verified, scores)
        if notes:
            prediction = replace(prediction, extrapolated=True, reasons=(*prediction.reasons, *notes))
        return prediction

    def _prediction(self, x, point, lower, upper, version, coverage_verified=None, scores=()) -> Prediction:
        return Prediction(
            self._target,
            "model",
            point,
            lower,
            upper,
            self.coverage,
            version=version,
            coverage_verified=coverage_verified,
        )

    def predict_batch(self, X: np.ndarray, *, range_rule: bool = True) -> dict[str, np.ndarray]:
        """:meth:`predict_one` for many rows at once, as arrays (the optimizer's path).

        ``in_range`` is False where ``predict_one`` would abstain; the other arrays hold NaN there.
        ``extrapolated`` marks rows predicted under the range rule (intervals widened).
        Same compiled runtime and the same conformal band as ``predict_one`` (tested to agree).
        ``range_rule=False`` predicts every row as the model stands, neither abstaining nor
        widening (what validation scores: the numbers of :meth:`predict_interval`).
        """
        if not hasattr(self, "runtime_"):
            check_is_fitted(self)
        X = np.ascontiguousarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(f"X: received shape {X.shape}; expected (n, {self.n_features_in_})")
        lo, hi = self.feature_range_
        inside = ((lo <= X) & (hi >= X)).all(axis=1) if range_rule else np.ones(len(X), dtype=bool)
        widen = np.ones(len(X))
        for i in np.flatnonzero(~inside):  # the range rule, row by row: few rows are outside
            factor, _ = self.range_check(X[i])
            widen[i] = np.nan if factor is None else factor
        rate = None
        if self.model == "rated":  # a source with no rate abstains, as in predict_one
            rate = self.estimator_.rates_for(self.estimator_.rates_, X[:, self.estimator_.source_column])
            widen[~np.isfinite(rate)] = np.nan
        in_range = np.isfinite(widen)
        point = np.full(len(X), np.nan)
        lower, upper = point.copy(), point.copy()
        rows = X[in_range]
        if len(rows):
            point[in_range] = self.runtime_.predict(rows)
            if rate is not None:
                point[in_range] *= rate[in_range]
            scale = np.ones(len(rows))
            if self.scale_runtime_ is not None:
                scale = np.maximum(self.scale_runtime_.predict(rows), self.scale_floor_)
            band = self._band(rows)
            if band is not None:
                scale = scale * band
            lower[in_range], upper[in_range] = self.conformal_.interval(
                point[in_range], scale * widen[in_range]
            )
        out = {
            "in_range": in_range,
            "extrapolated": in_range & ~inside,
            "point": point,
            "lower": lower,
            "upper": upper,
        }
        self._batch_extra(rows, in_range, out)
        return out

    def _batch_extra(self, rows: np.ndarray, in_range: np.ndarray, out: dict[str, np.ndarray]) -> None:
        pass


@numba.njit(cache=True, nogil=True)
def _inside(x, lo, hi):  # pragma: no cover - compiled
    """Every value within [lo, hi], False on NaN (one compiled call instead of four numpy calls)."""
    for j in range(x.shape[0]):  # noqa: SIM110 - numba compiles no generator for all()
        if not (lo[j] <= x[j] <= hi[j]):
            return False
    return True


def _target_array(y) -> np.ndarray:
    """``y`` as a 1-d float array (a column vector is accepted with scikit-learn's warning)."""
    if y is None:
        raise ValueError("y: requires y to be passed, but the target y is None; expected one target per row")
    try:
        return column_or_1d(np.asarray(y, dtype=np.float64), warn=True)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"y: received {exc}; expected one number per row") from None


def _first_bad(y: np.ndarray, ok: np.ndarray) -> str:
    bad = ~(np.isfinite(y) & ok)
    return f"{float(y[np.argmax(bad)])!r} ({int(bad.sum())} of {len(y)} values)"


def _fmt(v: float) -> str:
    return f"{v:.4g}"


class ResultCountPredictor(_TreePredictor):
    """How many symbols a scan will return, with an interval and P(empty result)."""

    _target = "count"
    _offset = 1.0
    _hgb_loss = "poisson"
    _monotone = {"min_tech_rating": -1, "min_dollar_vol": -1, "max_symbols": 1, "prev_count": 1}  # noqa: RUF012

    def _check_y(self, y) -> np.ndarray:
        y = _target_array(y)
        if not np.isfinite(y).all() or (y < 0).any():
            raise ValueError(f"y: received {_first_bad(y, y >= 0)}; expected result counts (finite, >= 0)")
        return y

    def _fit_extra(self, X, y) -> None:
        empty = (y == 0).astype(int)
        self.empty_rate_ = float(empty.mean())
        if 0 < empty.sum() < len(empty):
            self.empty_classifier_ = HistGradientBoostingClassifier(
                max_iter=200,
                learning_rate=0.08,
                max_leaf_nodes=31,
                min_samples_leaf=40,
                l2_regularization=1.0,
                early_stopping=False,
                random_state=self.random_state,
            ).fit(X, empty)
            self.empty_runtime_ = flatten(self.empty_classifier_)
        else:
            # Every training scan had results (or none did): the observed rate is all there is.
            self.empty_classifier_ = None
            self.empty_runtime_ = None

    def predict_interval(self, X):
        point, lower, upper = super().predict_interval(X)
        lower, upper = integer_interval(lower, upper)
        return point, lower, upper

    def _batch_extra(self, rows, in_range, out) -> None:
        lo, hi = integer_interval(out["lower"][in_range], out["upper"][in_range])
        out["lower"][in_range], out["upper"][in_range] = lo, hi
        p_empty = np.full(len(in_range), np.nan)
        if self.empty_runtime_ is None:
            p_empty[in_range] = self.empty_rate_
        elif len(rows):
            p_empty[in_range] = self.empty_runtime_.predict(rows)
        out["p_empty"] = p_empty

    def serving_ensembles(self) -> list:
        """The point's and scale's ensembles, then P(empty)'s classifier when there is one."""
        found = super().serving_ensembles()
        return found if self.empty_runtime_ is None else [*found, self.empty_runtime_]

    def _prediction(self, x, point, lower, upper, version, coverage_verified=None, scores=()) -> Prediction:
        lo, hi = integer_interval_one(lower, upper)
        p_empty = self.empty_rate_ if self.empty_runtime_ is None else float(scores[-1])
        return Prediction(
            "count",
            "model",
            point,
            lo,
            hi,
            self.coverage,
            p_empty=p_empty,
            version=version,
            coverage_verified=coverage_verified,
        )


class DurationPredictor(_TreePredictor):
    """How long a scan will take (seconds), with an interval."""

    _target = "duration"
    # Durations are strictly positive and span orders of magnitude: a pure log band.
    _offset = 0.0
    _hgb_loss = "gamma"
    _monotone = {"max_symbols": 1, "lookback_days": 1, "n_rated": 1, "work": 1}  # noqa: RUF012

    def _check_y(self, y) -> np.ndarray:
        y = _target_array(y)
        if not np.isfinite(y).all() or (y <= 0).any():
            raise ValueError(
                f"y: received {_first_bad(y, y > 0)}; expected durations in positive finite seconds (> 0)"
            )
        return y

    def recalibrate(self, X, y) -> DurationPredictor:
        """Re-estimate the rate of each source in ``X`` from these scans (a ``"rated"`` model only).

        The work function and the interval's band are kept: a new machine, a machine under another
        load, or a new source needs a few dozen scans, not a new history (see :mod:`.rated`).
        A source new to the model becomes servable: its code is added to the training range.
        """
        self._require_estimators("recalibrate")
        if self.model != "rated":
            raise ValueError(
                f"model: received {self.model!r};"
                " expected 'rated' (only a rated model has rates to recalibrate)"
            )
        X = self._check_X(X, fitting=True)
        y = self._check_y(y)
        updated = self.estimator_.recalibrate(X, y)
        self._recalibrate_band(X, y)
        j = self.estimator_.source_column
        lo, hi = self.feature_range_
        lo[j] = min(lo[j], *updated)
        hi[j] = max(hi[j], *updated)
        return self

    def _recalibrate_band(self, X: np.ndarray, y: np.ndarray) -> None:
        """Widen a recalibrated source's band when its scans vary more than the training rows did.

        Each scan's error is scored as in calibration (log error over the difficulty scale) against
        the rate estimated from the *other* scans of its source (leave one out, so no scan grades
        its own rate); the conformal rank of those scores over the global quantile is the source's
        factor, never below 1: a few dozen scans can show that a machine under more load is
        noisier, but are too few to trust a narrower band.
        """
        source = X[:, self.estimator_.source_column]
        work = self.estimator_.work(X)
        scale = self._scale(X)
        scale = np.ones(len(y)) if scale is None else scale
        for code in np.unique(source):
            rows = np.flatnonzero(source == code)
            k = math.ceil((len(rows) + 1) * self.coverage - 1e-9)
            if k > len(rows):  # too few scans for a band at this coverage: keep the trained one
                continue
            log_ratio = np.log(y[rows]) - np.log(work[rows])
            scores = np.empty(len(rows))
            for i in range(len(rows)):
                rate = np.median(np.delete(log_ratio, i))
                scores[i] = abs(log_ratio[i] - rate) / scale[rows[i]]
            factor = float(np.sort(scores)[k - 1]) / self.conformal_.quantile_
            self.estimator_.bands_[float(code)] = max(1.0, factor)

    @property
    def rates(self) -> dict[float, float]:
        """Seconds per unit of work by source code (a ``"rated"`` model only; empty otherwise)."""
        return dict(getattr(self.estimator_, "rates_", {})) if hasattr(self, "estimator_") else {}


PREDICTORS = {"count": ResultCountPredictor, "duration": DurationPredictor}


def make_predictor(target: str, **params) -> _TreePredictor:
    try:
        cls = PREDICTORS[target]
    except KeyError:
        raise ValueError(f"target: received {target!r}; expected one of {list(PREDICTORS)}") from None
    return cls(**params)
