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

Serving walks a packed copy of the same trees (:attr:`FlatEnsemble.packed`): one 16-byte record
per node (threshold or leaf value, feature with the missing-value side, right child), numbered
depth first so the left child is the next record: a visited node is one cache line, and a path
that goes left reads memory in order. A prediction's ensembles (count, its interval scale,
P(empty), duration, its scale) are walked by one compiled call (:class:`FusedEnsembles`), since
the CPU caches of an API server are cold between predictions (bench/README.md, "Prediction API",
has the measurements behind both choices). Tests check the packed walk against a plain reference
walk bit for bit.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numba
import numpy as np

LINKS = ("identity", "exp", "logistic")
# value: the split threshold, or the leaf value at a leaf; code: 2 * feature + (missing values go
# left), -1 at a leaf; right: the right child's index (the left child is the next node).
NODE = np.dtype([("value", np.float64), ("code", np.int32), ("right", np.int32)])


@numba.njit(cache=True, nogil=True)
def _walk_packed(x, nodes, roots, start, stop, round32):  # pragma: no cover - compiled
    total = 0.0
    for r in range(start, stop):
        i = roots[r]
        while True:
            code = nodes[i].code
            if code < 0:
                break
            v = x[code >> 1]
            if round32:  # a forest compares float32-rounded inputs
                v = np.float64(np.float32(v))
            go_left = v <= nodes[i].value or (v != v and (code & 1) == 1)
            i = i + 1 if go_left else nodes[i].right
        total += nodes[i].value
    return total


@numba.njit(cache=True, nogil=True)
def _walk_packed_rows(X, nodes, roots, round32):  # pragma: no cover - compiled
    out = np.empty(X.shape[0])
    for i in range(X.shape[0]):
        out[i] = _walk_packed(X[i], nodes, roots, 0, roots.shape[0], round32)
    return out


@numba.njit(cache=True, nogil=True)
def _walk_fused(X, rows, nodes, roots, bounds, round32, baselines, links, out):  # pragma: no cover
    # links: 0 identity, 1 exp, 2 logistic (LINKS order); the same formulas as FlatEnsemble.link_one.
    for k in range(rows.shape[0]):
        raw = baselines[k] + _walk_packed(X[rows[k]], nodes, roots, bounds[k], bounds[k + 1], round32[k])
        if links[k] == 1:
            raw = math.exp(raw)
        elif links[k] == 2:
            if raw >= 0:
                raw = 1.0 / (1.0 + math.exp(-raw))
            else:
                e = math.exp(raw)
                raw = e / (1.0 + e)
        out[k] = raw
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

    @functools.cached_property
    def packed(self) -> tuple[np.ndarray, np.ndarray]:
        """(nodes, roots): the same trees as :data:`NODE` records, depth first (left child next).

        Derived from the flat arrays on first use (not a field: models persisted before it existed
        load and get it too).
        """
        return _pack_nodes(
            self.feature, self.threshold, self.children, self.missing_left, self.value, self.roots
        )

    def raw_row(self, x: np.ndarray) -> float:
        """Raw score of one contiguous float64 row."""
        nodes, roots = self.packed
        return self.baseline + _walk_packed(x, nodes, roots, 0, roots.shape[0], self.float32_inputs)

    def predict_row(self, x: np.ndarray) -> float:
        return self.link_one(
            self.raw_row(
                x if x.dtype == np.float64 and x.flags.c_contiguous else np.ascontiguousarray(x, np.float64)
            )
        )

    def link_one(self, raw: float) -> float:
        """The inverse link of one raw score (what :meth:`predict_row` applies)."""
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
        nodes, roots = self.packed
        raw = self.baseline + _walk_packed_rows(X, nodes, roots, self.float32_inputs)
        return _inverse_link(raw, self.link)


class FusedEnsembles:
    """Several ensembles walked by one compiled call (a prediction's five, see the module docstring).

    ``rows[k]`` is the row of the ``X`` given to :meth:`predict` that ensemble ``k`` reads (the
    count and duration models have different feature sets: one row each, padded to one width).
    """

    def __init__(self, ensembles: Sequence[FlatEnsemble], rows: Sequence[int]):
        if len(ensembles) != len(rows) or not ensembles:
            raise ValueError(
                f"ensembles/rows: received {len(ensembles)} ensembles and {len(rows)} rows;"
                " expected one row per ensemble, at least one"
            )
        nodes, roots, bounds, offset = [], [], [0], 0
        for ensemble in ensembles:
            n, r = ensemble.packed
            shifted = n.copy()
            shifted["right"][n["code"] >= 0] += offset
            nodes.append(shifted)
            roots.append(r + offset)
            bounds.append(bounds[-1] + len(r))
            offset += len(n)
        if offset >= 2**31:
            raise ValueError(f"ensembles: {offset} nodes in all; expected fewer than 2**31")
        self.nodes = np.concatenate(nodes)
        self.roots = np.concatenate(roots)
        self.bounds = np.array(bounds, dtype=np.int64)
        self.rows = np.array(rows, dtype=np.int64)
        self.round32 = np.array([e.float32_inputs for e in ensembles])
        self.baselines = np.array([e.baseline for e in ensembles])
        self.links = np.array([LINKS.index(e.link) for e in ensembles], dtype=np.int64)
        self.n_features = max(e.n_features for e in ensembles)
        self._min_rows = int(self.rows.max()) + 1

    def predict(self, X: np.ndarray) -> np.ndarray:
        """One prediction per ensemble (inverse link applied), in the order given at construction.

        ``X``: a C-contiguous float64 array (the serving path builds it so; this runs per request,
        and every numpy call here costs more than a tree walk when the caches are cold).
        """
        if X.dtype != np.float64 or not X.flags.c_contiguous:
            X = np.ascontiguousarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] < self.n_features or X.shape[0] < self._min_rows:
            raise ValueError(
                f"X: received shape {X.shape}; expected at least ({self._min_rows}, {self.n_features})"
            )
        out = np.empty(len(self.rows))
        return _walk_fused(
            X, self.rows, self.nodes, self.roots, self.bounds, self.round32, self.baselines, self.links, out
        )


def _pack_nodes(feature, threshold, children, missing_left, value, roots) -> tuple[np.ndarray, np.ndarray]:
    """Renumber each tree depth first (pre-order) so a node's left child is the next record (NODE)."""
    nodes = np.empty(len(feature), dtype=NODE)
    new_roots = np.empty(len(roots), dtype=np.int64)
    feature, children = feature.tolist(), children.tolist()
    threshold, value, missing_left = threshold.tolist(), value.tolist(), missing_left.tolist()
    out_value, out_code, out_right = [], [], []
    for r, root in enumerate(roots.tolist()):
        new_roots[r] = len(out_value)
        # Iterative pre-order: (old node, position of the parent whose right child it is, or -1).
        stack = [(root, -1)]
        while stack:
            old, parent = stack.pop()
            if parent >= 0:
                out_right[parent] = len(out_value)
            position = len(out_value)
            if feature[old] < 0:
                out_value.append(value[old])
                out_code.append(-1)
                out_right.append(-1)
            else:
                out_value.append(threshold[old])
                out_code.append(2 * feature[old] + int(missing_left[old]))
                out_right.append(-1)  # known once the left subtree is numbered
                stack.append((children[2 * old + 1], position))
                stack.append((children[2 * old], -1))  # popped first: the next record
    if len(out_value) != len(nodes):
        raise ValueError(f"trees: {len(out_value)} nodes reachable of {len(nodes)}; expected all of them")
    nodes["value"], nodes["code"], nodes["right"] = out_value, out_code, out_right
    return nodes, new_roots


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
