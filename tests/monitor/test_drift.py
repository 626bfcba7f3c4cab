"""Input drift (PSI) on tiny hand-checked data, plus a property test over arbitrary samples."""

import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from technic_ml.history.schema import FILE_SCHEMA
from technic_ml.monitor import drift
from technic_ml.monitor.drift import (
    DEFAULT_INPUTS,
    PROPORTION_FLOOR,
    PSI_MAJOR,
    PSI_MODERATE,
    DriftResult,
    input_drift,
    psi,
    psi_categorical,
)

# reference [1, 2, 3, 4], bins=2: the median edge is 2, bins (-inf, 2] and (2, +inf) hold r = (0.5, 0.5).
# current [1, 1, 1, 4] holds c = (0.75, 0.25):
# PSI = (0.75 - 0.5) ln(0.75 / 0.5) + (0.25 - 0.5) ln(0.25 / 0.5) = 0.25 (ln 1.5 + ln 2) = 0.25 ln 3 = 0.27465
QUARTER_LN3 = 0.25 * math.log(3)


def _floor_term(share: float) -> float:
    """The contribution of a bin holding ``share`` on one side and nothing on the other."""
    return (share - PROPORTION_FLOOR) * math.log(share / PROPORTION_FLOOR)


@pytest.mark.parametrize(
    ("reference", "current", "bins", "expected"),
    [
        ([1, 2, 3, 4], [1, 1, 1, 4], 2, QUARTER_LN3),
        # Out of the reference range: -100 lands in the lowest bin, 100 in the highest.
        ([1, 2, 3, 4], [-100, 100, 100, 100], 2, QUARTER_LN3),
        ([1, 2, 3, 4], [1, 2, 3, 4], 2, 0.0),
        # bins=4: edges 1, 2, 3 -> (-inf, 1], (1, 2], (2, 3], (3, +inf), a quarter each in the reference;
        # current [-5, 50] fills only the two end bins, half each: 2 * (0.25 ln 2) + two emptied bins.
        ([1, 2, 3, 4], [-5, 50], 4, 2 * 0.25 * math.log(2) + 2 * _floor_term(0.25)),
        # Ties: [0, 0, 0, 1] has one edge, 0 -> r = (0.75, 0.25); current (0.25, 0.75):
        # (-0.5) ln(1/3) + 0.5 ln 3 = ln 3.
        ([0, 0, 0, 1], [0, 1, 1, 1], 10, math.log(3)),
    ],
)
def test_psi_hand_checked(reference, current, bins, expected):
    assert psi(reference, current, bins=bins) == pytest.approx(expected)


def test_out_of_range_values_count_in_the_end_bins():
    # Edges 1, 2, 3: shares (0.4, 0.2, 0.2, 0.2), so the lowest bin is told apart from the others.
    reference = [1, 1, 2, 3, 4]
    assert psi(reference, [-1e9, -1e9], bins=4) == pytest.approx(psi(reference, [1, 1], bins=4))
    assert psi(reference, [-1e9, -1e9], bins=4) != pytest.approx(psi(reference, [2, 2], bins=4))
    assert psi(reference, [1e9, 1e9], bins=4) == pytest.approx(psi(reference, [4, 4], bins=4))
    assert psi(reference, [1e9, 1, 1, 2, 3], bins=4) == pytest.approx(0.0)


def test_values_just_above_a_tied_maximum_share_its_bin():
    # The top quantiles all equal the maximum 1: the top bin is (0, +inf), so 1.5 counts like 1.
    reference = [0] * 20 + [1] * 80
    assert psi(reference, [1.5] * 80 + [0] * 20) == pytest.approx(0.0)


def test_identical_samples_do_not_drift():
    sample = np.random.default_rng(1).normal(size=500)
    assert psi(sample, sample.copy()) == pytest.approx(0.0, abs=1e-12)
    assert psi(sample, np.random.default_rng(1).permutation(sample)) == pytest.approx(0.0, abs=1e-12)


def test_a_shifted_normal_is_major_drift_and_a_resample_is_not():
    rng = np.random.default_rng(7)
    reference = rng.normal(0, 1, 2000)
    assert psi(reference, rng.normal(1, 1, 2000)) > PSI_MAJOR
    assert psi(reference, rng.normal(0, 1, 2000)) < PSI_MODERATE


@pytest.mark.parametrize(
    ("current", "expected"),
    [
        ([5] * 10, 0.0),
        # r = (1, 0 -> floor) on (== 5, != 5); c = (0.5, 0.5): a value below the constant is as new as above.
        ([5] * 5 + [6] * 5, 0.5 * math.log(2) + _floor_term(0.5)),
        ([5] * 5 + [4] * 5, 0.5 * math.log(2) + _floor_term(0.5)),
    ],
)
def test_constant_reference_compares_equal_or_not(current, expected):
    assert psi([5.0] * 10, current) == pytest.approx(expected)


def test_missing_values_are_dropped_from_both_sides():
    with_nan = psi([1, 2, np.nan, 3, 4], [np.nan, 1, 1, 1, 4, None], bins=2)
    assert with_nan == pytest.approx(QUARTER_LN3)
    nullable = pd.Series([1, 2, None, 3, 4], dtype="Float64")
    assert psi(nullable, pd.Series([1, 1, 1, 4, None], dtype="Int64"), bins=2) == pytest.approx(QUARTER_LN3)


@pytest.mark.parametrize(
    ("reference", "current", "expected"),
    [
        (["a", "a", "b", "b"], ["a", "b", "a", "b"], 0.0),
        # r = (a .5, b .5, c 0 -> floor); c = (a .25, b .25, c .5): 2 * (0.25 ln 2) + the new category.
        (["a", "a", "b", "b"], ["a", "b", "c", "c"], 0.5 * math.log(2) + _floor_term(0.5)),
        # A category gone from live data weighs like a new one, from the other side.
        (["a", "b", "c", "c"], ["a", "a", "b", "b"], 0.5 * math.log(2) + _floor_term(0.5)),
        (["a", None, "b", np.nan], ["b", "a"], 0.0),
        (pd.Series([True, False]), [False, True, None], 0.0),
    ],
)
def test_psi_categorical_hand_checked(reference, current, expected):
    assert psi_categorical(reference, current) == pytest.approx(expected)


def test_psi_categorical_accepts_pandas_categoricals_with_new_categories():
    reference = pd.Series(["up", "up", "down"], dtype="category")
    current = pd.Series(["up", "flat", "flat"], dtype="category")
    assert psi_categorical(reference, current) > PSI_MAJOR


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: psi([1, 2], [1, 2], bins=1), r"bins: received 1; expected an integer of at least 2"),
        (lambda: psi([1, 2], [1, 2], bins=2.5), r"bins: received 2\.5"),
        (lambda: psi([1, 2], [1, 2], bins=True), r"bins: received True"),
        (lambda: psi([np.nan, np.nan], [1.0]), r"reference: received no finite values"),
        (lambda: psi([1.0], []), r"current: received no finite values"),
        (lambda: psi([1.0, np.inf], [1.0]), r"reference: received 1 infinite value"),
        (lambda: psi([1.0], ["x"]), r"current: received values that are not numbers"),
        (lambda: psi([[1.0, 2.0]], [1.0]), r"reference: received an array of shape \(1, 2\)"),
        (lambda: psi_categorical([None], ["a"]), r"reference: received no non-missing values"),
        (lambda: psi_categorical(["a"], "abc"), r"current: received the string 'abc'"),
        (lambda: psi_categorical([["a"]], ["a"]), r"reference: received values that cannot be categories"),
    ],
)
def test_errors_name_the_parameter(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def _frame(n: int, shift: float = 0.0, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "vix_level": rng.normal(20 + shift, 3, n),
            "spy_trend": rng.choice(["bullish", "neutral", "bearish"], n),
            "is_market_hours": rng.random(n) < 0.5,
            "timestamp": pd.date_range("2025-01-01", periods=n, freq="h"),
        }
    )


def test_input_drift_infers_kinds_and_measures_each_common_column():
    results = input_drift(_frame(400), _frame(400, shift=6, seed=1).drop(columns="is_market_hours"))
    # timestamp is left out (a later window always differs in time), is_market_hours is not in current.
    assert [(r.column, r.kind) for r in results] == [("vix_level", "numeric"), ("spy_trend", "categorical")]
    vix, trend = results
    assert vix.level == "major" and vix.drifted
    assert trend.level == "stable" and not trend.drifted
    assert (vix.n_reference, vix.n_current) == (400, 400)


def test_too_few_rows_report_no_psi():
    current = _frame(50, seed=1)
    current.loc[5:, "vix_level"] = np.nan  # 5 non-missing VIX values left
    results = input_drift(_frame(100), current, {"vix_level": "numeric", "spy_trend": "categorical"})
    vix, trend = results
    assert (vix.psi, vix.level, vix.n_current, vix.drifted) == (None, "too_few", 5, False)
    assert trend.psi is not None and trend.level != "too_few"
    assert vix.to_dict() == {
        "column": "vix_level",
        "kind": "numeric",
        "psi": None,
        "n_reference": 100,
        "n_current": 5,
        "level": "too_few",
        "threshold": PSI_MAJOR,
        "drifted": False,
    }


def test_the_caller_sets_the_drift_threshold():
    reference, current = _frame(300), _frame(300, shift=1.0, seed=1)
    (loose,) = input_drift(reference, current, {"vix_level": "numeric"})
    (strict,) = input_drift(reference, current, {"vix_level": "numeric"}, threshold=0.01)
    assert loose.psi == strict.psi and loose.psi < PSI_MAJOR
    assert not loose.drifted and strict.drifted and strict.threshold == 0.01


@pytest.mark.parametrize(
    ("value", "level"),
    [
        (0.0, "stable"),
        (0.099, "stable"),
        (0.1, "moderate"),
        (0.2499, "moderate"),
        (0.25, "major"),
        (3.0, "major"),
    ],
)
def test_levels_follow_the_usual_thresholds(value, level):
    assert drift.drift_level(value) == level
    assert DriftResult("x", "numeric", value, 30, 30, level).level == level


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"columns": {"vix": "numeric"}}, r"columns: \['vix'\] missing from the reference frame"),
        ({"columns": {"vix_level": "ordinal"}}, r"columns\['vix_level'\]: received 'ordinal'"),
        ({"columns": {}}, r"columns: received \{\}"),
        ({"min_rows": 0}, r"min_rows: received 0; expected an integer of at least 1"),
        ({"bins": 1}, r"bins: received 1"),
        ({"threshold": -1.0}, r"threshold: received -1\.0"),
        (
            {"columns": {"spy_trend": "numeric"}},
            r"column 'spy_trend' \(numeric\): reference: received values",
        ),
    ],
)
def test_input_drift_errors_name_the_parameter(kwargs, match):
    with pytest.raises(ValueError, match=match):
        input_drift(_frame(40), _frame(40), **kwargs)


def test_a_column_missing_from_current_is_named():
    with pytest.raises(ValueError, match=r"\['spy_trend'\] missing from the current frame"):
        input_drift(_frame(40), _frame(40).drop(columns="spy_trend"), {"spy_trend": "categorical"})
    with pytest.raises(ValueError, match="reference: received list"):
        input_drift([1, 2], _frame(40))


def test_inconsistent_results_are_refused():
    with pytest.raises(ValueError, match="level: received 'stable'; expected 'major'"):
        DriftResult("x", "numeric", 0.3, 30, 30, "stable")
    with pytest.raises(ValueError, match="level: received 'stable'; expected 'too_few'"):
        DriftResult("x", "numeric", None, 3, 30, "stable")
    with pytest.raises(ValueError, match="kind: received 'ordinal'"):
        DriftResult("x", "ordinal", 0.0, 30, 30, "stable")


# Stored types compared as numbers; the rest (strings, bool, small ints) are compared as categories.
_NUMERIC_TYPES = (pa.float64(), pa.int64())


def test_default_inputs_are_columns_of_the_history_frame():
    for name, kind in DEFAULT_INPUTS.items():
        field = FILE_SCHEMA.field(name)  # KeyError if the history frame has no such column
        assert kind in drift.KINDS
        if kind == "numeric":
            assert field.type in _NUMERIC_TYPES, name


def test_default_inputs_run_on_a_history_like_frame():
    n = 60
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        {
            name: rng.integers(0, 5, n) if kind == "numeric" else rng.choice(["a", "b"], n)
            for name, kind in DEFAULT_INPUTS.items()
        }
    )
    frame.loc[: n - 10, "vix_level"] = np.nan  # degraded snapshots have no VIX
    results = input_drift(frame, frame, DEFAULT_INPUTS)
    assert [r.column for r in results] == list(DEFAULT_INPUTS)
    assert {r.level for r in results if r.column != "vix_level"} == {"stable"}
    assert next(r for r in results if r.column == "vix_level").level == "too_few"


_finite = st.floats(allow_nan=False, allow_infinity=False)


@settings(max_examples=150, deadline=None)
@given(
    reference=st.lists(_finite, min_size=1, max_size=40),
    current=st.lists(_finite, min_size=1, max_size=40),
    bins=st.integers(2, 20),
)
def test_psi_is_finite_and_non_negative(reference, current, bins):
    value = psi(reference, current, bins=bins)
    assert math.isfinite(value) and value >= 0
    assert psi(reference, reference, bins=bins) == pytest.approx(0.0, abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(
    reference=st.lists(st.sampled_from("abcde"), min_size=1, max_size=30),
    current=st.lists(st.sampled_from("abcdef"), min_size=1, max_size=30),
)
def test_psi_categorical_is_finite_and_non_negative(reference, current):
    value = psi_categorical(reference, current)
    assert math.isfinite(value) and value >= 0


@pytest.mark.parametrize(
    ("reference", "current", "kind", "share"),
    [
        (np.arange(1000.0), np.full(10, 500.0), "numeric", 0.0),  # narrow but inside: no drift
        (np.arange(1000.0), np.r_[np.full(3, 2000.0), np.full(7, 500.0)], "numeric", 0.3),
        (np.arange(1000.0), np.full(4, -1.0), "numeric", 1.0),
        (np.r_[np.arange(1000.0), np.nan], np.r_[np.nan, 500.0], "numeric", 0.0),  # NaN on neither side
        (["bullish", "neutral"], ["bearish", "bullish"], "categorical", 0.5),  # never seen in training
    ],
)
def test_outside_support_by_hand(reference, current, kind, share):
    from technic_ml.monitor.drift import outside_support

    assert outside_support(reference, current, kind)[0] == pytest.approx(share)


def test_outside_support_names_the_support_and_refuses_empty_sides():
    from technic_ml.monitor.drift import outside_support

    assert outside_support(np.arange(1001.0), [1.0], "numeric")[1] == "[5, 995]"
    with pytest.raises(ValueError, match="received 0 and 1 values; expected at least one each"):
        outside_support([np.nan], [1.0], "numeric")
    with pytest.raises(ValueError, match="kind: received 'ordinal'"):
        outside_support([1.0], [1.0], "ordinal")
