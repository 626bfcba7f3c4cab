"""A fast single-row runtime for the fitted tree ensembles.

scikit-learn's ``predict`` costs milliseconds per call for one row (input validation, joblib
dispatch over trees), which is most of a prediction's budget in the API. Here the trees of a
fitted forest or boosted model are copied once into flat arrays and walked by a small compiled
loop (numba): microseconds for one row. The numbers are the same as scikit-learn's (a test
compares them on every model the predictors can fit):

* Random Forest: scikit-learn compares float32 inputs against float64 thresholds, so the row is
  rounded to float32 first; the prediction is the mean of the trees' leaf values.
* Histogram gradient boosting: float64 inputs against ``num_threshold``, missing values follow
  ``missing_go_to_left``; raw score = baseline + sum of leaves, then the loss's inverse link
  (identity, ``exp`` for Poisson and Gamma, the logistic for binary classification).

Only numeric splits are supported (the predictors use no categorical features); a model with a
categorical split is refused rather than evaluated wrongly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np

LINKS = ("identity", "exp", "logistic")


@numba.njit(cache=True, nogil=True)
def _walk(x, feature, threshold, children, missing_left, value, roots):  # pragma: no cover - compiled
    total = 0.0
    for r in range(roots.shape[0]):
        node = roots[r]
        while True:
            f = feature[node]
            if f < 0:
                break
            v = x[f]
            if v <= threshold[node] or (v != v and missing_left[node]):
                node = children[2 * node]
            else:
                node = children[2 * node + 1]
        total += value[node]
    return total


@numba.njit(cache=True, nogil=True)
def _walk_rows(X, feature, threshold, children, missing_left, value, roots):  # pragma: no cover
    out = np.empty(X.shape[0])
    for i in range(X.shape[0]):
        out[i] = _walk(X[i], feature, threshold, children, missing_left, value, roots)
    return out


@dataclass(frozen=True)
class FlatEnsemble:
    """Trees as flat arrays; ``predict_row`` and ``predict`` match the source model's predictions."""

    feature: np.ndarray  # int64, -1 at leaves
    threshold: np.ndarray  # float64
    children: np.ndarray  # int64 [2 * nodes]: left, right
    missing_left: np.ndarray  # bool
    value: np.ndarray  # float64 leaf values (already divided by n_trees for a forest)
    roots: np.ndarray  # int64
    baseline: float
    link: str
    float32_inputs: bool
    n_features: int

    def raw_row(self, x: np.ndarray) -> float:
        """Raw score of one contiguous float64 row."""
        if self.float32_inputs:
            x = x.astype(np.float32).astype(np.float64)
        return self.baseline + _walk(
            x, self.feature, self.threshold, self.children, self.missing_left, self.value, self.roots
        )

    def predict_row(self, x: np.ndarray) -> float:
        raw = self.raw_row(
            x if x.dtype == np.float64 and x.flags.c_contiguous else np.ascontiguousarray(x, np.float64)
        )
        if self.link == "exp":
            return math.exp(raw)
        if self.link == "logistic":
            if raw >= 0:
                return 1.0 / (1.0 + math.exp(-raw))
            e = math.exp(raw)  # no overflow for very negative scores
            return e / (1.0 + e)
        return raw

    def predict(self, X: np.ndarray) -> np.ndarray:
        X = np.ascontiguousarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"X: received shape {X.shape}; expected (n, {self.n_features})")
        if self.float32_inputs:
            X = X.astype(np.float32).astype(np.float64)
        raw = self.baseline + _walk_rows(
            X, self.feature, self.threshold, self.children, self.missing_left, self.value, self.roots
        )
        return _inverse_link(raw, self.link)


def _inverse_link(raw, link: str):
    if link == "identity":
        return raw
    if link == "exp":
        return np.exp(raw)
    if link == "logistic":
        return 1.0 / (1.0 + np.exp(-raw))
    raise ValueError(f"link: received {link!r}; expected one of {list(LINKS)}")


def _pack(trees, *, baseline: float, link: str, float32_inputs: bool, n_features: int) -> FlatEnsemble:
    """``trees``: (feature, threshold, left, right, missing_left, value) per tree, -1 children at leaves."""
    features, thresholds, children, missing, values, roots = [], [], [], [], [], []
    offset = 0
    for feature, threshold, left, right, missing_left, value in trees:
        n = len(feature)
        leaf = left < 0
        own = np.arange(n, dtype=np.int64) + offset
        features.append(np.where(leaf, -1, feature).astype(np.int64))
        thresholds.append(np.asarray(threshold, dtype=np.float64))
        pair = np.empty(2 * n, dtype=np.int64)
        pair[0::2] = np.where(leaf, own, left + offset)
        pair[1::2] = np.where(leaf, own, right + offset)
        children.append(pair)
        missing.append(np.asarray(missing_left, dtype=bool))
        values.append(np.asarray(value, dtype=np.float64))
        roots.append(offset)
        offset += n
    return FlatEnsemble(
        feature=np.concatenate(features),
        threshold=np.concatenate(thresholds),
        children=np.concatenate(children),
        missing_left=np.concatenate(missing),
        value=np.concatenate(values),
        roots=np.array(roots, dtype=np.int64),
        baseline=float(baseline),
        link=link,
        float32_inputs=float32_inputs,
        n_features=int(n_features),
    )


def flatten(estimator) -> FlatEnsemble:
    """Flat copy of a fitted RandomForestRegressor or HistGradientBoosting{Regressor,Classifier}."""
    from sklearn.ensemble import (
        HistGradientBoostingClassifier,
        HistGradientBoostingRegressor,
        RandomForestRegressor,
    )

    if isinstance(estimator, RandomForestRegressor):
        n_trees = len(estimator.estimators_)
        trees = []
        for tree in estimator.estimators_:
            t = tree.tree_
            if t.n_outputs != 1:
                raise ValueError(f"estimator: received a tree with {t.n_outputs} outputs; expected 1")
            left = t.children_left.astype(np.int64)
            missing = getattr(t, "missing_go_to_left", np.zeros(t.node_count, dtype=np.uint8)).astype(bool)
            trees.append(
                (
                    t.feature.astype(np.int64),
                    t.threshold,
                    left,
                    t.children_right.astype(np.int64),
                    missing,
                    t.value[:, 0, 0] / n_trees,
                )
            )
        return _pack(
            trees, baseline=0.0, link="identity", float32_inputs=True, n_features=estimator.n_features_in_
        )

    if isinstance(estimator, HistGradientBoostingRegressor | HistGradientBoostingClassifier):
        if isinstance(estimator, HistGradientBoostingClassifier) and estimator.n_trees_per_iteration_ != 1:
            raise ValueError("estimator: multiclass boosting is not supported; expected a binary classifier")
        trees = []
        for (predictor,) in estimator._predictors:
            nodes = predictor.nodes
            if nodes["is_categorical"].any():
                raise ValueError("estimator: categorical splits are not supported by the flat runtime")
            leaf = nodes["is_leaf"].astype(bool)
            trees.append(
                (
                    nodes["feature_idx"].astype(np.int64),
                    nodes["num_threshold"],
                    np.where(leaf, -1, nodes["left"].astype(np.int64)),
                    np.where(leaf, -1, nodes["right"].astype(np.int64)),
                    nodes["missing_go_to_left"].astype(bool),
                    nodes["value"],
                )
            )
        loss = estimator.loss
        if isinstance(estimator, HistGradientBoostingClassifier):
            link = "logistic"
        elif loss in ("poisson", "gamma"):
            link = "exp"
        elif loss in ("squared_error", "absolute_error", "quantile"):
            link = "identity"
        else:
            raise ValueError(f"estimator: loss {loss!r} is not supported by the flat runtime")
        baseline = float(np.ravel(estimator._baseline_prediction)[0])
        return _pack(
            trees, baseline=baseline, link=link, float32_inputs=False, n_features=estimator.n_features_in_
        )

    raise TypeError(
        f"estimator: received {type(estimator).__name__}; expected RandomForestRegressor or"
        " HistGradientBoostingRegressor/Classifier"
    )
