"""The flat-tree runtime gives scikit-learn's numbers, row by row and in batches."""

import numpy as np
import pytest
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestRegressor,
)

from technic_ml.predictors.runtime import flatten


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 6))
    X[:, 5] = rng.integers(0, 5, size=3000)  # a discrete column, thresholds between integers
    y = np.exp(0.5 * X[:, 0] - 0.3 * X[:, 1]) * 10 + rng.poisson(2, size=3000)
    return X, y


def _models(X, y):
    yield RandomForestRegressor(n_estimators=20, max_depth=10, min_samples_split=5, random_state=42).fit(X, y)
    for loss in ("squared_error", "poisson", "gamma", "absolute_error"):
        yield HistGradientBoostingRegressor(loss=loss, max_iter=50, random_state=0).fit(X, y + 0.1)
    yield HistGradientBoostingClassifier(max_iter=50, random_state=0).fit(X, y > np.median(y))


@pytest.mark.parametrize("index", range(6))
def test_flat_runtime_equals_sklearn(data, index):
    X, y = data
    model = list(_models(X, y))[index]
    flat = flatten(model)
    probe = np.random.default_rng(1).normal(size=(400, 6)) * 1.5
    expected = model.predict_proba(probe)[:, 1] if hasattr(model, "predict_proba") else model.predict(probe)
    np.testing.assert_allclose(flat.predict(probe), expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(
        [flat.predict_row(r) for r in probe[:50]], expected[:50], rtol=1e-9, atol=1e-12
    )


def test_missing_values_follow_the_boosted_trees_learned_direction(data):
    X, y = data
    X = X.copy()
    X[::7, 2] = np.nan
    model = HistGradientBoostingRegressor(max_iter=30, random_state=0).fit(X, y)
    probe = X[:200].copy()
    probe[::3, 0] = np.nan
    np.testing.assert_allclose(flatten(model).predict(probe), model.predict(probe), rtol=1e-9)


def test_unsupported_estimators_are_refused():
    from sklearn.linear_model import LinearRegression

    with pytest.raises(TypeError, match="RandomForestRegressor"):
        flatten(LinearRegression().fit([[0], [1]], [0, 1]))


def test_wrong_width_is_refused(data):
    X, y = data
    flat = flatten(HistGradientBoostingRegressor(max_iter=5).fit(X, y))
    with pytest.raises(ValueError, match=r"expected \(n, 6\)"):
        flat.predict(np.zeros((2, 5)))
