"""The flat-tree runtime gives scikit-learn's numbers, row by row and in batches."""

import numpy as np
import pytest
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestRegressor,
)

from technic_ml.predictors.runtime import NODE, FlatEnsemble, FusedEnsembles, flatten


def walk_flat(ensemble: FlatEnsemble, x: np.ndarray) -> float:
    """The reference walk: the raw score of one row through the flat arrays, one node at a time
    (no packing, no compilation), for the packed walk to be checked against bit for bit."""
    if ensemble.float32_inputs:
        x = x.astype(np.float32).astype(np.float64)
    total = 0.0
    for root in ensemble.roots:
        node = int(root)
        while ensemble.feature[node] >= 0:
            v = x[ensemble.feature[node]]
            left = v <= ensemble.threshold[node] or (v != v and ensemble.missing_left[node])
            node = int(ensemble.children[2 * node + (0 if left else 1)])
        total += ensemble.value[node]
    return ensemble.baseline + total


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


def test_packed_nodes_on_a_hand_built_tree():
    # Root (old 0) splits on x1 <= 0.5 (missing go left); its left child (old 1) is a leaf 10.0, its
    # right child (old 2) splits on x0 <= 2 into the leaves 20 (old 3) and 30 (old 4). Here the
    # creation order is already pre-order, so only the links change.
    from technic_ml.predictors.runtime import _pack_nodes

    feature = np.array([1, -1, 0, -1, -1])
    threshold = np.array([0.5, 0, 2.0, 0, 0])
    children = np.array([1, 2, 1, 1, 3, 4, 3, 3, 4, 4])
    missing = np.array([True, False, False, False, False])
    value = np.array([0, 10.0, 0, 20.0, 30.0])
    nodes, roots = _pack_nodes(feature, threshold, children, missing, value, np.array([0]))
    assert nodes.dtype == NODE and nodes.itemsize == 16 and roots.tolist() == [0]
    assert nodes["code"].tolist() == [3, -1, 0, -1, -1]  # 2 * feature + missing-left
    assert nodes["right"].tolist() == [2, -1, 4, -1, -1]  # left children are the next node
    assert nodes["value"].tolist() == [0.5, 10.0, 2.0, 20.0, 30.0]


@pytest.mark.parametrize("index", range(6))
def test_packed_walk_gives_the_flat_walk_and_fused_gives_each(data, index):
    X, y = data
    models = list(_models(X, y))
    flat = flatten(models[index])
    probe = np.random.default_rng(2).normal(size=(100, 6)) * 1.5
    probe[::5, 3] = np.nan
    packed = [flat.raw_row(r) for r in probe]
    assert packed == [walk_flat(flat, r) for r in probe]  # same nodes, same sums: bit for bit
    # All six models in one call, reading two different rows (widths padded to the widest).
    ensembles = [flatten(m) for m in models]
    rows = [k % 2 for k in range(len(ensembles))]
    fused = FusedEnsembles(ensembles, rows)
    for r in probe[:20]:
        X2 = np.vstack([r, r[::-1]])
        expected = [e.predict_row(X2[k]) for e, k in zip(ensembles, rows, strict=True)]
        np.testing.assert_allclose(fused.predict(X2), expected, rtol=1e-12, atol=1e-14)


def test_fused_refuses_a_row_it_does_not_have(data):
    X, y = data
    flat = flatten(HistGradientBoostingRegressor(max_iter=5).fit(X, y))
    with pytest.raises(ValueError, match="one row per ensemble"):
        FusedEnsembles([flat], [0, 1])
    with pytest.raises(ValueError, match=r"expected at least \(2, 6\)"):
        FusedEnsembles([flat, flat], [0, 1]).predict(np.zeros((1, 6)))


def test_packed_nodes_renumber_a_tree_grown_out_of_order():
    # Best-first growth numbers nodes by creation: root 0 -> (1, 2); node 2 split before node 1:
    # 2 -> (3, 4), then 1 -> (5, 6). Pre-order is 0, 1, 5, 6, 2, 3, 4.
    from technic_ml.predictors.runtime import _pack_nodes

    feature = np.array([0, 1, 2, -1, -1, -1, -1])
    children = np.array([1, 2, 5, 6, 3, 4, 3, 3, 4, 4, 5, 5, 6, 6])
    value = np.array([0, 0, 0, 3.0, 4.0, 5.0, 6.0])
    nodes, _ = _pack_nodes(feature, np.zeros(7), children, np.zeros(7, bool), value, np.array([0]))
    assert nodes["code"].tolist() == [0, 2, -1, -1, 4, -1, -1]
    assert nodes["right"].tolist() == [4, 3, -1, -1, 6, -1, -1]
    assert nodes["value"][[2, 3, 5, 6]].tolist() == [5.0, 6.0, 3.0, 4.0]
