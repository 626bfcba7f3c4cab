"""The range rule: abstain on missing or far-out inputs, predict with a wider band just outside."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from technic_ml.predictors.estimators import EXTRAPOLATION_MARGIN, DurationPredictor, ResultCountPredictor
from technic_ml.predictors.validation import serving_shares
from tests.predictors.synthetic import table


@pytest.fixture(scope="module")
def count_model():
    X, y, ts = table("count", "enriched", n=1500, seed=2)
    return ResultCountPredictor(model="hgb", feature_set="enriched").fit(X, y, timestamps=ts), X


def _row(X, model, **values):
    row = X.iloc[-1].to_numpy(dtype=float).copy()
    names = list(model.feature_names_in_)
    for name, value in values.items():
        row[names.index(name)] = value
    return row


def _edge(model, name, overshoot):
    j = list(model.feature_names_in_).index(name)
    lo, hi = model.feature_range_[0][j], model.feature_range_[1][j]
    return hi + overshoot * (hi - lo)


@pytest.mark.parametrize(
    "overshoot, factor",
    [(0.0, 1.0), (0.02, 1.2), (0.05, 1.5), (EXTRAPOLATION_MARGIN, 2.0)],
)
def test_a_universe_a_little_larger_than_any_in_training_is_predicted_with_a_wider_band(
    count_model, overshoot, factor
):
    model, X = count_model
    inside = model.predict_one(_row(X, model))
    row = _row(X, model, n_universe=_edge(model, "n_universe", overshoot))
    p = model.predict_one(row)
    assert p.state == "model" and p.value is not None
    assert p.extrapolated is (overshoot > 0)
    if overshoot > 0:
        assert any(r.startswith("extrapolating: n_universe=") and f"x{factor:.2f}" in r for r in p.reasons)
        # The half-width on the log scale is `factor` times the one the same row has at the edge.
        at_edge = model.predict_one(_row(X, model, n_universe=_edge(model, "n_universe", 0.0)))
        half = np.log(p.upper + 1) - np.log(p.value + 1)
        half_edge = np.log(at_edge.upper + 1) - np.log(at_edge.value + 1)
        assert half > half_edge  # integer rounding allows no exact ratio; the widening shows
    else:
        assert not inside.extrapolated


@pytest.mark.parametrize(
    "values, reason",
    [
        ({"n_universe": float("nan")}, "n_universe: missing"),
        ({"n_universe": "far"}, "n_universe="),
        ({"trend_encoded": 2.0}, "trend_encoded=2 outside the training range"),
        ({"day_of_week": 6.0}, "day_of_week=6 outside the training range"),
    ],
)
def test_missing_far_out_or_unseen_codes_still_abstain(count_model, values, reason):
    model, X = count_model
    if values.get("n_universe") == "far":
        values = {"n_universe": _edge(model, "n_universe", EXTRAPOLATION_MARGIN * 1.5)}
    p = model.predict_one(_row(X, model, **values))
    assert p.state == "abstain" and p.value is None
    assert any(reason in r for r in p.reasons)


def test_batch_and_single_row_agree_under_the_rule(count_model):
    model, X = count_model
    rows = np.array(
        [
            _row(X, model),
            _row(X, model, n_universe=_edge(model, "n_universe", 0.05)),
            _row(X, model, vix_level=_edge(model, "vix_level", 0.08)),
            _row(X, model, n_universe=_edge(model, "n_universe", 0.5)),
        ]
    )
    out = model.predict_batch(rows)
    singles = [model.predict_one(r) for r in rows]
    assert out["in_range"].tolist() == [p.state == "model" for p in singles] == [True, True, True, False]
    assert out["extrapolated"].tolist() == [False, True, True, False]
    for i, p in enumerate(singles[:3]):
        assert (out["point"][i], out["lower"][i], out["upper"][i]) == pytest.approx(
            (p.value, p.lower, p.upper)
        )
    # Without the rule every row gets the model's own answer, unwidened: predict_interval's.
    raw = model.predict_batch(rows, range_rule=False)
    assert raw["in_range"].all() and not raw["extrapolated"].any()
    frame = pd.DataFrame(rows, columns=X.columns)
    wanted = model.predict_interval(frame)
    for got, want in zip((raw["point"], raw["lower"], raw["upper"]), wanted, strict=True):
        assert got == pytest.approx(want, rel=1e-9)
    assert raw["upper"][1] - raw["lower"][1] <= out["upper"][1] - out["lower"][1]


def test_a_fold_whose_universe_was_smaller_in_training_is_served_not_abstained():
    # Train on universes of at most 93 % of the largest, test on all: the old rule abstained on
    # every test row above the training maximum; the range rule predicts them, flagged and wider.
    X, y, ts = table("duration", "enriched", n=2400, seed=5)
    cap = X["n_universe"].max() * 0.93  # like 480 symbols of 501 in training, all in the test
    train = (X["n_universe"] <= cap).to_numpy().copy()
    train[1800:] = False
    test = np.zeros(len(X), dtype=bool)
    test[1800:] = True
    model = DurationPredictor(model="hgb", feature_set="enriched").fit(
        X[train], y[train], timestamps=ts[train]
    )
    hi = model.feature_range_[1][list(model.feature_names_in_).index("n_universe")]
    above = X["n_universe"].to_numpy()[test] > hi
    assert above.sum() >= 10  # the fold does test the rule
    shares = serving_shares(model, X[test], y[test])
    old_rule = above.mean()
    assert shares["abstain_share"] < old_rule / 2
    assert shares["extrapolated_share"] > 0
    assert shares["extrapolated_coverage"] >= 0.8  # a few dozen rows: the stated 90 % within noise
