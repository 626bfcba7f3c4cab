"""The rated duration model: work x a rate per source, per-source prediction and recalibration."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from technic_ml.predictors.estimators import DurationPredictor, ResultCountPredictor
from technic_ml.predictors.features import SOURCE_CODES
from tests.predictors.synthetic import table

SAMPLE, LOG = SOURCE_CODES["sample"], SOURCE_CODES["scanner_log"]


def two_sources(n: int = 1600, seed: int = 0, log_rate: float = 8000.0):
    """Reference scans of ~ms and production-log scans of the same work at log_rate x the time,
    interleaved in time (a fifth from the log)."""
    X, y, ts = table("duration", "enriched", n=n, seed=seed)
    from_log = np.random.default_rng(seed + 1).random(n) < 0.2
    X = X.copy()
    X["data_source"] = np.where(from_log, LOG, SAMPLE)
    y = np.where(from_log, y * log_rate, y)
    return X, y, ts, from_log


def test_one_model_predicts_each_source_at_its_own_scale():
    X, y, ts, _ = two_sources()
    model = DurationPredictor(model="rated", feature_set="enriched").fit(X, y, timestamps=ts)
    rates = model.rates
    assert rates[LOG] / rates[SAMPLE] == pytest.approx(8000, rel=0.05)
    row = X.iloc[-1].to_numpy(dtype=float).copy()
    row[list(X.columns).index("data_source")] = SAMPLE
    reference = model.predict_one(row)
    row[list(X.columns).index("data_source")] = LOG
    production = model.predict_one(row)
    assert reference.state == production.state == "model"
    assert production.value / reference.value == pytest.approx(rates[LOG] / rates[SAMPLE])
    # The band is relative: the same factor around either scale.
    assert production.upper / production.value == pytest.approx(reference.upper / reference.value)
    # Batch and single-row serving agree, sources included.
    batch = model.predict_batch(X.to_numpy(dtype=float)[-50:])
    singles = [model.predict_one(r).value for r in X.to_numpy(dtype=float)[-50:]]
    np.testing.assert_allclose(batch["point"], singles, rtol=1e-12)
    np.testing.assert_allclose(batch["point"], model.predict(X.iloc[-50:]), rtol=1e-9)


def test_a_source_without_scans_abstains_and_names_it():
    X, y, ts, _ = two_sources()
    model = DurationPredictor(model="rated", feature_set="enriched").fit(X, y, timestamps=ts)
    row = X.iloc[-1].to_numpy(dtype=float).copy()
    row[list(X.columns).index("data_source")] = SOURCE_CODES["parquet"]  # between 0 and 3: in range
    p = model.predict_one(row)
    assert p.state == "abstain" and p.value is None
    assert "no rate for this source" in p.reasons[0]


@pytest.mark.parametrize("factor", [0.5, 3.0, 40.0])
def test_recalibration_from_50_scans_moves_only_the_rate(factor):
    X, y, ts = table("duration", "enriched", n=1500, seed=3)
    X = X.copy()
    X["data_source"] = SAMPLE
    model = DurationPredictor(model="rated", feature_set="enriched").fit(X, y, timestamps=ts)
    # The same machine under another load: every scan `factor` times slower, with its own noise.
    new_X, new_y, _ = table("duration", "enriched", n=600, seed=4)
    new_X = new_X.copy()
    new_X["data_source"] = SAMPLE
    new_y = new_y * factor
    before = model.predict(new_X.iloc[50:])
    model.recalibrate(new_X.iloc[:50], new_y[:50])
    after = model.predict(new_X.iloc[50:])
    np.testing.assert_allclose(after / before, factor, rtol=0.08)
    truth = new_y[50:]
    r2 = 1 - ((truth - after) ** 2).sum() / ((truth - truth.mean()) ** 2).sum()
    assert r2 > 0.8
    _, lower, upper = model.predict_interval(new_X.iloc[50:])
    assert ((truth >= lower) & (truth <= upper)).mean() >= 0.85


def test_recalibration_adds_a_new_source():
    X, y, ts = table("duration", "enriched", n=1500, seed=3)
    X = X.copy()
    X["data_source"] = SAMPLE
    model = DurationPredictor(model="rated", feature_set="enriched").fit(X, y, timestamps=ts)
    logged = X.iloc[:50].copy()
    logged["data_source"] = LOG
    row = logged.iloc[0].to_numpy(dtype=float).copy()
    assert model.predict_one(row).state == "abstain"  # never seen: outside the training range
    model.recalibrate(logged, y[:50] * 5000)
    p = model.predict_one(row)
    assert p.state == "model"
    assert p.value / model.predict_one(X.iloc[0].to_numpy(dtype=float)).value == pytest.approx(
        model.rates[LOG] / model.rates[SAMPLE]
    )
    assert model.rates[LOG] / model.rates[SAMPLE] == pytest.approx(5000, rel=0.1)


@pytest.mark.parametrize(
    "make, message",
    [
        (
            lambda: DurationPredictor(model="rated", feature_set="seed"),
            "expected a feature set with the 'data_source'",
        ),
        (
            lambda: ResultCountPredictor(model="rated", feature_set="enriched"),
            "expected a feature set with the",
        ),
    ],
)
def test_rated_needs_the_source_column(make, message):
    X, y, ts = table("duration", "enriched", n=200)
    with pytest.raises(ValueError, match=message):
        make().fit(X, y, timestamps=ts)


def test_recalibrating_another_model_is_refused_by_name():
    X, y, ts = table("duration", "enriched", n=300)
    model = DurationPredictor(model="hgb", feature_set="enriched").fit(X, y, timestamps=ts)
    with pytest.raises(ValueError, match="model: received 'hgb'; expected 'rated'"):
        model.recalibrate(X.iloc[:50], y[:50])


def test_recalibration_refuses_bad_durations():
    X, y, ts = table("duration", "enriched", n=300)
    model = DurationPredictor(model="rated", feature_set="enriched").fit(X, y, timestamps=ts)
    bad = y[:50].copy()
    bad[3] = 0.0
    with pytest.raises(ValueError, match="positive finite seconds"):
        model.recalibrate(X.iloc[:50], bad)
    assert isinstance(pd.Series(model.rates), pd.Series)  # unchanged and still readable


def test_a_rated_model_round_trips_through_the_registry_and_serves_both_sources(tmp_path):
    from technic_ml.predictors.registry import ModelRegistry

    X, y, ts, _ = two_sources(n=800)
    model = DurationPredictor(model="rated", feature_set="enriched", max_iter=50).fit(X, y, timestamps=ts)
    registry = ModelRegistry(tmp_path / "models")
    manifest = {"features": [str(f) for f in model.feature_names_in_], "params": model.get_params()}
    version = registry.publish("duration", model, manifest).version
    loaded, _ = registry.load("duration", version)
    assert loaded.rates == model.rates
    rows = X.to_numpy(dtype=float)[-20:]
    assert [loaded.predict_one(r).value for r in rows] == [model.predict_one(r).value for r in rows]


def test_serving_names_the_source_and_defaults_to_the_configured_one(sample_market):
    import datetime as dt

    from technic_ml.contracts import ScanConfig
    from technic_ml.market_conditions import snapshot_market
    from technic_ml.nyse import NY
    from technic_ml.predictors.serving import Loaded, Predictors, universe_at

    X, y, ts, _ = two_sources()
    model = DurationPredictor(model="rated", feature_set="enriched").fit(X, y, timestamps=ts)
    when = dt.datetime(2018, 6, 12, 15, 0, tzinfo=NY)
    conditions = snapshot_market(sample_market, when)
    predictors = Predictors(None, Loaded(model, {"version": "v1"}), universe_at(sample_market, when))
    config = ScanConfig(max_symbols=150, min_tech_rating=50, min_dollar_vol=1e6, lookback_days=60)
    default = predictors.predict(config, conditions)["duration"]
    production = predictors.predict(config, conditions, "scanner_log")["duration"]
    assert default.source == "sample" and production.source == "scanner_log"  # the sample market's
    assert default.state == production.state == "model"
    assert production.value / default.value == pytest.approx(model.rates[LOG] / model.rates[SAMPLE])
    with pytest.raises(ValueError, match="duration_source: received 'nasdaq'; expected one of"):
        predictors.predict(config, conditions, "nasdaq")


def test_recalibration_widens_the_band_of_a_noisier_source_never_narrows_it():
    X, y, ts = table("duration", "enriched", n=1500, seed=3)  # log noise sd 0.1
    X = X.copy()
    X["data_source"] = SAMPLE
    model = DurationPredictor(model="rated", feature_set="enriched").fit(X, y, timestamps=ts)
    new_X, new_y, _ = table("duration", "enriched", n=1000, seed=6)
    new_X = new_X.copy()
    new_X["data_source"] = SAMPLE
    noisy = new_y * 2.0 * np.exp(np.random.default_rng(7).normal(0, 0.3, len(new_y)))  # 3x the noise
    model.recalibrate(new_X.iloc[:50], noisy[:50])
    assert model.estimator_.band(SAMPLE) > 1.5
    _, lower, upper = model.predict_interval(new_X.iloc[50:])
    truth = noisy[50:]
    assert ((truth >= lower) & (truth <= upper)).mean() >= 0.85
    one = model.predict_one(new_X.iloc[60].to_numpy(dtype=float))
    assert (one.lower, one.upper) == pytest.approx((lower[10], upper[10]))
    # A quieter machine keeps the trained band: 50 scans are too few to trust a narrower one.
    quiet = DurationPredictor(model="rated", feature_set="enriched").fit(X, y, timestamps=ts)
    quiet.recalibrate(new_X.iloc[:50], new_y[:50])
    assert quiet.estimator_.band(SAMPLE) >= 1.0


def test_batch_abstains_where_a_source_has_no_rate_like_predict_one():
    X, y, ts, _ = two_sources(n=800)
    model = DurationPredictor(model="rated", feature_set="enriched", max_iter=50).fit(X, y, timestamps=ts)
    rows = X.to_numpy(dtype=float)[-4:].copy()
    rows[1, list(X.columns).index("data_source")] = SOURCE_CODES["parquet"]  # in range, no rate
    out = model.predict_batch(rows)
    assert out["in_range"].tolist() == [model.predict_one(r).state == "model" for r in rows]
    assert out["in_range"].tolist() == [True, False, True, True]
    assert np.isnan(out["point"][1]) and np.isfinite(out["point"][[0, 2, 3]]).all()
