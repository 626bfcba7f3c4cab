"""Input drift: has what a model sees moved away from what it was trained on?

A predictor is only as good as the resemblance between its training window and the scans it is
asked about now. The model monitor compares each input's distribution in the training window
(``reference``) with recent live data (``current``) and emits a "degraded" event when an input has
drifted; this module is the measurement, pure numpy/pandas, with no knowledge of models or events.

The measure is the Population Stability Index, PSI = sum((c - r) * ln(c / r)) over bins, where ``r``
and ``c`` are the reference and current shares of each bin:

* numeric inputs (:func:`psi`): bins are the reference's quantiles, so each holds about the same
  share of the training window; the outer bins are open so live values beyond anything seen in
  training still count (in the end bins) instead of falling out of the comparison;
* categorical inputs (:func:`psi_categorical`): one bin per category seen on either side, so a new
  category in live data shows up as drift.

Conventional reading (:data:`PSI_MODERATE`, :data:`PSI_MAJOR`): below 0.1 stable, 0.1 to 0.25 a
moderate shift, 0.25 and above a major one. :func:`input_drift` measures every input of two frames
and reports a column without enough data as ``"too_few"`` with no PSI at all, rather than a number
computed from a handful of rows. :data:`DEFAULT_INPUTS` names the scan history columns
(:meth:`technic_ml.history.store.ScanHistoryStore.frame`) a scan prediction is made from.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from technic_ml.contracts import MARKET_SIGNALS

PSI_MODERATE = 0.1
PSI_MAJOR = 0.25
#: Share given to a bin that is empty on one side. Without it a bin empty in the reference and not in
#: the current sample (or the reverse) makes ln(c / r) infinite and PSI useless exactly when something
#: new appears; 1e-4 (one row in ten thousand) keeps such a bin a large but finite contribution.
PROPORTION_FLOOR = 1e-4

KINDS = ("numeric", "categorical")
LEVELS = ("stable", "moderate", "major", "too_few")

#: The inputs of a scan prediction as columns of the scan history frame, with how each is compared.
#: Config first (what the user asked), then market conditions at scan time. ``day_of_week``,
#: ``time_of_day`` and ``is_market_hours`` take a handful of values, so they are compared as categories:
#: an hour never scanned in training appearing live is exactly the drift to notice. ``sectors`` and
#: ``industries`` are absent: the models see their counts, which are not columns of the frame.
DEFAULT_INPUTS: dict[str, str] = {
    "max_symbols": "numeric",
    "min_tech_rating": "numeric",
    "min_dollar_vol": "numeric",
    "lookback_days": "numeric",
    "spy_trend": "categorical",
    "spy_volatility": "numeric",
    "spy_momentum": "numeric",
    "spy_return_5d": "numeric",
    "spy_return_20d": "numeric",
    "vix_level": "numeric",
    "time_of_day": "categorical",
    "day_of_week": "categorical",
    "is_market_hours": "categorical",
}


#: Market conditions at scan time: every scan of a day shares them and they move over weeks, so a
#: few hundred recent scans hold a handful of days. Their PSI against years of training is large
#: whatever happens (a replay of 2018 read PSI 2-3 on ``spy_trend`` in quiet weeks), so these are
#: judged on support instead (:func:`outside_support`): are recent scans in conditions the
#: training window covered?
MARKET_INPUTS = MARKET_SIGNALS
#: Support of a numeric input: the training window's central 99 % (a single extreme day in three
#: years does not widen it).
SUPPORT_TAIL = 0.005


def outside_support(reference, current, kind: str, *, tail: float = SUPPORT_TAIL) -> tuple[float, str]:
    """(share of ``current`` outside the support of ``reference``, the support as text).

    Numeric: outside [q(tail), q(1 - tail)] of the reference; categorical: a category the reference
    never had. Missing values are left out of both sides.
    """
    if kind not in KINDS:
        raise ValueError(f"kind: received {kind!r}; expected one of {list(KINDS)}")
    ref = pd.Series(reference).dropna()
    cur = pd.Series(current).dropna()
    if ref.empty or cur.empty:
        raise ValueError(
            f"reference/current: received {len(ref)} and {len(cur)} values; expected at least one each"
        )
    if kind == "categorical":
        seen = set(ref.astype(str))
        return float((~cur.astype(str).isin(seen)).mean()), "{" + ", ".join(sorted(seen)) + "}"
    lo, hi = np.quantile(ref.to_numpy(dtype=float), [tail, 1 - tail])
    values = cur.to_numpy(dtype=float)
    return float(((values < lo) | (values > hi)).mean()), f"[{lo:.4g}, {hi:.4g}]"


def _check_int(name: str, value: Any, minimum: int) -> None:
    # bool is an int subclass, and True silently meaning 1 bin or 1 row is never what was meant.
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name}: received {value!r}; expected an integer of at least {minimum}")


def _check_threshold(threshold: Any) -> None:
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, int | float | np.integer | np.floating)
        or not math.isfinite(threshold)
        or threshold <= 0
    ):
        raise ValueError(
            f"threshold: received {threshold!r}; expected a positive finite PSI such as {PSI_MAJOR}"
        )


def _numeric_values(name: str, values: Any) -> np.ndarray:
    """``values`` as a float array without its missing values (NaN, None, pd.NA)."""
    try:
        if isinstance(values, pd.Series | pd.Index | pd.api.extensions.ExtensionArray):
            array = values.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: received values that are not numbers ({exc}); expected numbers") from None
    if array.ndim != 1:
        raise ValueError(f"{name}: received an array of shape {array.shape}; expected one dimension")
    # An infinity is not a measurement of any market, and it would turn quantile edges into nonsense.
    infinite = int(np.isinf(array).sum())
    if infinite:
        raise ValueError(
            f"{name}: received {infinite} infinite value(s); expected finite numbers (NaN for missing)"
        )
    return array[~np.isnan(array)]


def _category_counts(name: str, values: Any) -> pd.Series:
    """Rows per category of ``values``, missing values left out."""
    if isinstance(values, str | bytes):
        raise ValueError(f"{name}: received the string {values!r}; expected a sequence of categories")
    # object dtype: a pandas categorical would otherwise refuse categories it does not declare.
    series = pd.Series(values, dtype=object) if not isinstance(values, pd.Series) else values.astype(object)
    try:
        counts = series.value_counts(dropna=True, sort=False)
        set(counts.index)  # pandas counts some unhashable values (lists) without complaint
        return counts
    except TypeError as exc:
        raise ValueError(
            f"{name}: received values that cannot be categories ({exc}); expected hashable scalars"
        ) from None


def _index(reference_counts: np.ndarray, current_counts: np.ndarray) -> float:
    r = np.maximum(reference_counts / reference_counts.sum(), PROPORTION_FLOOR)
    c = np.maximum(current_counts / current_counts.sum(), PROPORTION_FLOOR)
    # Each term is >= 0 (c - r and ln(c / r) share their sign), floored or not, so PSI is too.
    return float(np.sum((c - r) * np.log(c / r)))


def _psi_numeric(reference: np.ndarray, current: np.ndarray, bins: int) -> float:
    distinct = np.unique(reference)
    if len(distinct) == 1:
        # Quantiles of a constant are one point: the only question left is "the value or not".
        value = distinct[0]
        ref_counts = np.array([len(reference), 0])
        cur_equal = int(np.sum(current == value))
        return _index(ref_counts, np.array([cur_equal, len(current) - cur_equal]))
    # inverted_cdf edges are reference values themselves (no interpolation, so no overflow between
    # extreme values); ties collapse into one edge, leaving fewer but still meaningful bins.
    quantiles = np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1], method="inverted_cdf")
    # An edge at the maximum would leave (max, +inf) empty in the reference, so live values just above
    # the training range would weigh as if never seen; the top bin starts below the maximum instead.
    edges = np.unique(np.where(quantiles == distinct[-1], distinct[-2], quantiles))
    # Bins are (-inf, e1], (e1, e2], ..., (ek, +inf): open at both ends for out-of-range live values.
    ref_counts = np.bincount(np.searchsorted(edges, reference, side="left"), minlength=len(edges) + 1)
    cur_counts = np.bincount(np.searchsorted(edges, current, side="left"), minlength=len(edges) + 1)
    return _index(ref_counts, cur_counts)


def _psi_categories(reference: pd.Series, current: pd.Series) -> float:
    categories = list(dict.fromkeys([*reference.index, *current.index]))
    ref_counts = reference.reindex(categories, fill_value=0).to_numpy(dtype=np.float64)
    cur_counts = current.reindex(categories, fill_value=0).to_numpy(dtype=np.float64)
    return _index(ref_counts, cur_counts)


def psi(reference, current, *, bins: int = 10) -> float:
    """PSI of a numeric input between ``reference`` and ``current`` (1-D array-likes of numbers).

    Bins are the reference's ``bins``-quantiles (fewer when values repeat); a reference holding a
    single distinct value is compared on two bins, equal to it or not. Missing values are dropped
    from both sides; a side with no value left, or any infinite value, is a ValueError.
    """
    _check_int("bins", bins, 2)
    ref = _numeric_values("reference", reference)
    cur = _numeric_values("current", current)
    for name, array in (("reference", ref), ("current", cur)):
        if len(array) == 0:
            raise ValueError(f"{name}: received no finite values; expected at least one number")
    return _psi_numeric(ref, cur, bins)


def psi_categorical(reference, current) -> float:
    """PSI of a categorical input: one bin per category seen on either side, missing values dropped."""
    ref = _category_counts("reference", reference)
    cur = _category_counts("current", current)
    for name, counts in (("reference", ref), ("current", cur)):
        if counts.sum() == 0:
            raise ValueError(f"{name}: received no non-missing values; expected at least one category")
    return _psi_categories(ref, cur)


def drift_level(value: float) -> str:
    """``"stable"`` below :data:`PSI_MODERATE`, ``"moderate"`` below :data:`PSI_MAJOR`, else ``"major"``."""
    if value >= PSI_MAJOR:
        return "major"
    return "moderate" if value >= PSI_MODERATE else "stable"


@dataclass(frozen=True)
class DriftResult:
    """The drift of one input. ``psi`` is None exactly when ``level`` is ``"too_few"``: a side had
    fewer non-missing rows than asked for. ``drifted`` compares ``psi`` with the caller's
    ``threshold`` (by default :data:`PSI_MAJOR`, the start of a major shift)."""

    column: str
    kind: str
    psi: float | None
    n_reference: int
    n_current: int
    level: str
    threshold: float = PSI_MAJOR

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind: received {self.kind!r}; expected one of {list(KINDS)}")
        _check_threshold(self.threshold)
        expected = "too_few" if self.psi is None else drift_level(self.psi)
        if self.level != expected:
            raise ValueError(f"level: received {self.level!r}; expected {expected!r} for psi {self.psi!r}")

    @property
    def drifted(self) -> bool:
        return self.psi is not None and self.psi >= self.threshold

    def to_dict(self) -> dict[str, Any]:
        return {**vars(self), "drifted": self.drifted}


def _default_kinds(reference: pd.DataFrame, current: pd.DataFrame) -> dict[str, str]:
    kinds = {}
    for name in reference.columns:
        if name not in current.columns:
            continue
        dtype, types = reference[name].dtype, pd.api.types
        # bool before numeric: pandas counts bool as numeric, but True/False are two categories.
        if types.is_bool_dtype(dtype) or isinstance(dtype, pd.CategoricalDtype):
            kinds[name] = "categorical"
        elif types.is_numeric_dtype(dtype):
            kinds[name] = "numeric"
        elif types.is_object_dtype(dtype) or types.is_string_dtype(dtype):
            kinds[name] = "categorical"
        # Timestamps and durations are left out: a later window always "drifts" in time.
    return kinds


def input_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: Mapping[str, str] | None = None,
    *,
    min_rows: int = 30,
    bins: int = 10,
    threshold: float = PSI_MAJOR,
) -> list[DriftResult]:
    """Drift of each input column between the training window and live data, in ``columns`` order.

    ``columns`` maps a column name to ``"numeric"`` or ``"categorical"`` (for a model's inputs,
    :data:`DEFAULT_INPUTS`); without it, every column of both frames is measured, numeric dtypes as
    numeric and bool/object/category/string ones as categorical. A column with fewer than
    ``min_rows`` non-missing values on either side is reported ``"too_few"`` with ``psi`` None.
    """
    for name, frame in (("reference", reference), ("current", current)):
        if not isinstance(frame, pd.DataFrame):
            raise ValueError(f"{name}: received {type(frame).__name__}; expected a pandas DataFrame")
    _check_int("min_rows", min_rows, 1)
    _check_int("bins", bins, 2)
    _check_threshold(threshold)
    if columns is None:
        kinds = _default_kinds(reference, current)
        if not kinds:
            raise ValueError(
                "columns: received None and the frames share no numeric, boolean or categorical column;"
                " expected frames with common input columns, or columns naming them"
            )
    else:
        if not isinstance(columns, Mapping) or not columns:
            raise ValueError(f"columns: received {columns!r}; expected a non-empty mapping column -> kind")
        kinds = dict(columns)
        for name, kind in kinds.items():
            if kind not in KINDS:
                raise ValueError(f"columns[{name!r}]: received {kind!r}; expected one of {list(KINDS)}")
        for side, frame in (("reference", reference), ("current", current)):
            missing = [name for name in kinds if name not in frame.columns]
            if missing:
                raise ValueError(
                    f"columns: {missing} missing from the {side} frame; expected columns of both frames"
                    f" (the {side} frame has {list(frame.columns)})"
                )
    results = []
    for name, kind in kinds.items():
        try:
            if kind == "numeric":
                ref, cur = (
                    _numeric_values("reference", reference[name]),
                    _numeric_values("current", current[name]),
                )
                n_ref, n_cur = len(ref), len(cur)
            else:
                ref, cur = (
                    _category_counts("reference", reference[name]),
                    _category_counts("current", current[name]),
                )
                n_ref, n_cur = int(ref.sum()), int(cur.sum())
        except ValueError as exc:
            raise ValueError(f"column {name!r} ({kind}): {exc}") from None
        if min(n_ref, n_cur) < min_rows:
            value, level = None, "too_few"
        else:
            value = _psi_numeric(ref, cur, bins) if kind == "numeric" else _psi_categories(ref, cur)
            level = drift_level(value)
        results.append(DriftResult(name, kind, value, n_ref, n_cur, level, threshold))
    return results
