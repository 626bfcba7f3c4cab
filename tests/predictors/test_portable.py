"""Portable serving files: every kind of predictor serves the same numbers from them, bit for bit,
and a damaged or foreign file is refused with the reason."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from technic_ml.predictors import portable
from technic_ml.predictors.estimators import DurationPredictor, ResultCountPredictor
from tests.predictors.synthetic import table
from tests.predictors.test_rated import LOG, two_sources

KINDS = {
    "count hgb seed": lambda: _fit(ResultCountPredictor(feature_set="seed", max_iter=30), "count", "seed"),
    "count rf enriched": lambda: _fit(
        ResultCountPredictor(model="rf", feature_set="enriched"), "count", "enriched"
    ),
    "count split interval": lambda: _fit(
        ResultCountPredictor(feature_set="seed", interval="split", max_iter=30), "count", "seed"
    ),
    "duration hgb enriched": lambda: _fit(DurationPredictor(max_iter=30), "duration", "enriched"),
    "duration rated, recalibrated": lambda: _rated(),
}


def _fit(model, target, features):
    X, y, ts = table(target, features, n=600)
    return model.fit(X, y, timestamps=ts), X


def _rated():
    X, y, ts, from_log = two_sources(n=800)
    model = DurationPredictor(model="rated", feature_set="enriched", max_iter=30).fit(X, y, timestamps=ts)
    model.recalibrate(X[from_log].iloc[:60], y[from_log][:60] * 1.7)  # a band and a moved rate
    return model, X


@pytest.fixture(scope="module", params=sorted(KINDS))
def fitted(request):
    return KINDS[request.param]()


def _rows(model, X):
    """Training rows, plus rows just outside the range (extrapolated) and far outside (abstain)."""
    rows = model._check_X(X.iloc[:80], fitting=False).copy()
    lo, hi = model.feature_range_
    j = list(model.feature_names_in_).index("max_symbols")
    rows[0, j] = hi[j] + 0.05 * (hi[j] - lo[j])
    rows[1, j] = hi[j] * 10
    rows[2, j] = np.nan
    return rows


def test_the_serving_file_serves_the_same_numbers(fitted):
    model, X = fitted
    loaded = portable.loads(portable.dumps(model))
    rows = _rows(model, X)
    want, got = model.predict_batch(rows), loaded.predict_batch(rows)
    assert want.keys() == got.keys()
    for key in want:
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)
    assert not want["in_range"][1] and want["extrapolated"][0]  # both paths of the range rule ran
    for x in rows[:20]:
        assert loaded.predict_one(x, version="v") == model.predict_one(x, version="v")


def test_serving_only_predictors_say_what_they_cannot_do(fitted):
    model, X = fitted
    loaded = portable.loads(portable.dumps(model))
    with pytest.raises(ValueError, match="predict_interval: this predictor was loaded from its portable"):
        loaded.predict_interval(X.iloc[:3])
    with pytest.raises(ValueError, match="fitted=True"):
        loaded.predict(X.iloc[:3])


def test_the_file_holds_no_pickle(fitted):
    model, _ = fitted
    with np.load(io.BytesIO(portable.dumps(model)), allow_pickle=False) as npz:
        assert all(npz[name].dtype != object for name in npz.files)


def _rewrite(data: bytes, **changes) -> bytes:
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(arrays[portable.META].tobytes())
    meta.update(changes)
    arrays[portable.META] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    out = io.BytesIO()
    np.savez(out, **arrays)
    return out.getvalue()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"format": 99}, "received format 99; expected 1"),
        ({"class": "LinearRegression"}, "received class 'LinearRegression'; expected one of"),
        ({"features": ["max_symbols"]}, r"received features \['max_symbols'\]; this version of technic-ml"),
        ({"fitted": {"os_system_": 1}}, "received fitted 'os_system_'"),
    ],
)
def test_an_unexpected_file_is_refused(changes, message):
    model, _ = KINDS["count hgb seed"]()
    with pytest.raises(ValueError, match=message):
        portable.loads(_rewrite(portable.dumps(model), **changes))


def test_not_an_npz_is_refused():
    with pytest.raises(ValueError, match=r"not a readable \.npz"):
        portable.loads(b"\x80\x04K\x01.")  # a pickle


def test_a_rated_models_rates_and_bands_survive():
    model, _ = _rated()
    loaded = portable.loads(portable.dumps(model))
    assert loaded.rates == model.rates and loaded.estimator_.bands_ == model.estimator_.bands_
    assert loaded.estimator_.band(LOG) > 1.0
