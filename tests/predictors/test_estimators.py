"""The predictors' estimator contract, intervals, abstentions and the serving row."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from technic_ml.contracts import ScanConfig
from technic_ml.predictors.estimators import (
    DurationPredictor,
    ResultCountPredictor,
    heuristic_duration,
)
from tests.predictors.synthetic import table


@pytest.fixture(scope="module")
def count_data():
    return table("count", "enriched")


@pytest.fixture(scope="module")
def fitted_count(count_data):
    X, y, ts = count_data
    return ResultCountPredictor(model="hgb", feature_set="enriched", max_iter=80).fit(X, y, timestamps=ts)


def test_init_only_stores_and_get_params_round_trips():
    p = ResultCountPredictor(model="rf", feature_set="seed", coverage=0.8)
    assert p.get_params()["model"] == "rf" and p.get_params()["coverage"] == 0.8
    assert clone(p).get_params() == p.get_params()
    assert not [k for k in vars(p) if k.endswith("_")]


def test_unfitted_prediction_raises_not_fitted(count_data):
    X, _, _ = count_data
    with pytest.raises(NotFittedError):
        ResultCountPredictor(feature_set="enriched").predict(X)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"model": "xgb"}, "model: received 'xgb'; expected one of"),
        ({"feature_set": "fancy"}, "feature_set: received 'fancy'"),
        ({"coverage": 1.5}, "coverage: received 1.5"),
        ({"interval": "magic"}, "interval: received 'magic'"),
        ({"calibration_fraction": 0.0}, "calibration_fraction: received 0.0"),
        ({"calibration_blocks": 0}, "calibration_blocks: received 0"),
    ],
)
def test_bad_parameters_are_named_at_fit(count_data, params, match):
    X, y, _ = count_data
    with pytest.raises(ValueError, match=match):
        ResultCountPredictor(**({"feature_set": "enriched"} | params)).fit(X, y)


def test_fit_refuses_rows_out_of_time_order(count_data):
    X, y, ts = count_data
    with pytest.raises(ValueError, match="out of time order"):
        ResultCountPredictor(feature_set="enriched").fit(X, y, timestamps=ts[::-1].reset_index(drop=True))


def test_fit_refuses_missing_features_naming_the_column(count_data):
    X, y, _ = count_data
    bad = X.copy()
    bad.loc[3, "vix_level"] = np.nan
    with pytest.raises(ValueError, match=r"\['vix_level'\]"):
        ResultCountPredictor(feature_set="enriched").fit(bad, y)
    with pytest.raises(ValueError, match="missing columns"):
        ResultCountPredictor(feature_set="enriched").fit(X.drop(columns="prev_count"), y)


def test_targets_are_checked():
    X, y, _ = table("count", "seed", n=200)
    with pytest.raises(
        ValueError, match=r"y: received -1.0 \(1 of 200 values\); expected result counts \(finite, >= 0\)"
    ):
        ResultCountPredictor(feature_set="seed").fit(X, np.where(np.arange(len(y)) == 7, -1, y))
    with pytest.raises(ValueError, match=r"y: received nan \(1 of 200 values\); expected result counts"):
        ResultCountPredictor(feature_set="seed").fit(X, np.where(np.arange(len(y)) == 3, np.nan, y))
    with pytest.raises(ValueError, match="positive finite seconds"):
        DurationPredictor(feature_set="seed").fit(
            X.loc[:, list(DurationPredictor(feature_set="seed").features.columns)], -y
        )


def test_too_few_rows_names_the_minimum():
    X, y, _ = table("count", "seed", n=40)
    with pytest.raises(ValueError, match="at least 50"):
        ResultCountPredictor(feature_set="seed").fit(X, y)


def test_fit_returns_self_with_trailing_underscore_attributes(count_data, fitted_count):
    X, _, _ = count_data
    assert fitted_count.n_features_in_ == X.shape[1]
    assert list(fitted_count.feature_names_in_) == list(X.columns)
    # three calibration blocks of 100 rows: the serving model learned from all but the last one
    assert fitted_count.n_calibration_ == 300 and fitted_count.n_train_ == len(X) - 100
    assert fitted_count.feature_range_.shape == (2, X.shape[1])


def test_the_serving_surface_serves_the_models_numbers(count_data, fitted_count):
    """predict_one, predict_one on scores walked elsewhere, and predict_batch (the compiled
    runtime) give predict_interval's numbers and the classifier's P(empty)."""
    X, _, _ = count_data
    point, lower, upper = fitted_count.predict_interval(X.iloc[:40])
    p_empty = fitted_count.empty_classifier_.predict_proba(X.iloc[:40])[:, 1]
    batch = fitted_count.predict_batch(X.iloc[:40].to_numpy())
    for i in range(40):
        x = X.iloc[i].to_numpy()
        one = fitted_count.predict_one(x, version="v1")
        assert one.state == "model" and one.version == "v1" and one.coverage == 0.9
        assert one.value == pytest.approx(point[i], rel=1e-9)
        assert (one.lower, one.upper) == (lower[i], upper[i])
        assert one.p_empty == pytest.approx(p_empty[i], rel=1e-9)
        served = tuple(batch[k][i] for k in ("point", "lower", "upper", "p_empty"))
        assert served == pytest.approx((one.value, one.lower, one.upper, one.p_empty), rel=1e-12)
        scores = [e.predict_row(x) for e in fitted_count.serving_ensembles()]
        assert fitted_count.predict_one(x, scores=scores, version="v1") == one


def test_count_intervals_are_integers_around_the_point(count_data, fitted_count):
    X, _, _ = count_data
    _point, lower, upper = fitted_count.predict_interval(X)
    assert np.array_equal(lower, np.round(lower)) and np.array_equal(upper, np.round(upper))
    assert (lower <= upper).all() and (lower >= 0).all()


def test_intervals_reach_their_coverage_on_later_rows():
    X, y, _ts = table("count", "enriched", n=6000, seed=3)
    model = ResultCountPredictor(feature_set="enriched", max_iter=80).fit(X.iloc[:3000], y[:3000])
    _, lower, upper = model.predict_interval(X.iloc[3000:])
    reached = np.mean((lower <= y[3000:]) & (y[3000:] <= upper))
    assert reached >= 0.9 - 0.03


def test_count_is_monotone_in_the_constrained_config_features(fitted_count, count_data):
    X, _, _ = count_data
    row = X.iloc[[0] * 10].copy()
    row["min_tech_rating"] = np.linspace(0, 90, 10)
    assert (np.diff(fitted_count.predict(row)) <= 1e-9).all()
    row = X.iloc[[0] * 10].copy()
    row["max_symbols"] = np.linspace(10, 500, 10)
    assert (np.diff(fitted_count.predict(row)) >= -1e-9).all()


def test_abstains_outside_the_training_range_and_on_missing_inputs(count_data, fitted_count):
    X, _, _ = count_data
    x = X.iloc[0].to_numpy().copy()
    j = list(X.columns).index("vix_level")
    x[j] = 95.0
    p = fitted_count.predict_one(x)
    assert p.state == "abstain" and p.value is None and p.lower is None
    assert any("vix_level=95 outside the training range" in r for r in p.reasons)
    x[j] = np.nan
    assert fitted_count.predict_one(x).reasons == ("vix_level: missing",)


@pytest.mark.parametrize("model", ["rf", "hgb"])
def test_duration_predictor_both_models(model):
    X, y, ts = table("duration", "enriched", n=1200)
    p = DurationPredictor(model=model, feature_set="enriched", max_iter=60).fit(X, y, timestamps=ts)
    point, lower, upper = p.predict_interval(X.iloc[:20])
    assert (lower < point).all() and (point < upper).all() and (point > 0).all()
    one = p.predict_one(X.iloc[0].to_numpy())
    assert one.state == "model" and one.p_empty is None
    assert one.value == pytest.approx(point[0], rel=1e-9)


def test_heuristic_duration_is_flagged_and_has_no_interval():
    config = ScanConfig(max_symbols=200, min_tech_rating=50, min_dollar_vol=0, lookback_days=60)
    p = heuristic_duration(config)
    assert p.state == "heuristic" and p.value == pytest.approx(20.0)
    assert p.lower is None and p.upper is None and p.coverage is None
    assert "not calibrated" in p.reasons[0]
