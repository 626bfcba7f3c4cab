"""Portable serving files: what a published predictor needs to serve, as plain arrays and JSON.

A pickled scikit-learn estimator loads only under the library versions it was written with, so
the registry refuses it after an upgrade (rightly: unpickling runs code and a changed class can
load wrongly). Serving never calls scikit-learn, though: a prediction walks the compiled tree
arrays of :mod:`.runtime`, the conformal quantile, the training range and, for a ``"rated"``
duration model, its rates and bands. :func:`dumps` writes exactly those into one ``.npz`` file
(numeric arrays, plus the JSON description as bytes; read back with ``allow_pickle=False``, so
loading runs no code), and :func:`loads` rebuilds a predictor that serves the same numbers bit for
bit under any numpy, scikit-learn or numba version.

A predictor loaded this way is *serving only*: ``predict_one``, ``predict_batch`` (with or without
the range rule) and ``serving_ensembles`` work; ``predict``, ``predict_interval`` and
``recalibrate`` need the fitted scikit-learn objects and say so (``ModelRegistry.load(...,
fitted=True)`` gives them, under the versions they were written with).

Fail closed: an unknown ``format``, a class or field this version does not know, or feature columns
that differ from what this version of technic-ml computes raise ``ValueError`` naming what differs.
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
from sklearn.utils.validation import check_is_fitted

from technic_ml.predictors.conformal import LogConformal
from technic_ml.predictors.estimators import PREDICTORS
from technic_ml.predictors.rated import RatedRegressor
from technic_ml.predictors.runtime import FlatEnsemble

FORMAT = 1
META = "meta.json"
# The ensembles a predictor may carry, in the order serving walks them.
ENSEMBLES = ("runtime_", "scale_runtime_", "empty_runtime_")
ARRAYS = ("feature", "threshold", "children", "missing_left", "value", "roots")
SCALARS = ("n_train_", "n_calibration_", "scale_floor_", "empty_rate_")
CLASSES = {cls.__name__: cls for cls in PREDICTORS.values()}


def describes(predictor) -> bool:
    """Whether :func:`dumps` can write ``predictor``: exactly a result-count or duration predictor
    (:func:`loads` rebuilds by class name, so a subclass would come back as its parent)."""
    return type(predictor) in CLASSES.values()


def dumps(predictor) -> bytes:
    """The serving files of a fitted predictor, as the bytes of one ``.npz`` file."""
    check_is_fitted(predictor)
    arrays: dict[str, np.ndarray] = {"feature_range": np.asarray(predictor.feature_range_, dtype=np.float64)}
    ensembles = {}
    for name in ENSEMBLES:
        ensemble = getattr(predictor, name, None)
        if ensemble is None:
            continue
        for field in ARRAYS:
            arrays[f"{name}{field}"] = np.asarray(getattr(ensemble, field))
        ensembles[name] = {
            "baseline": float(ensemble.baseline),
            "link": ensemble.link,
            "float32_inputs": bool(ensemble.float32_inputs),
            "n_features": int(ensemble.n_features),
        }
    conformal = predictor.conformal_
    rated = None
    if predictor.model == "rated":
        est = predictor.estimator_
        rated = {
            "source_column": int(est.source_column),
            # JSON keys are strings: the source codes travel as [code, value] pairs.
            "rates": [[float(c), float(r)] for c, r in est.rates_.items()],
            "bands": [[float(c), float(b)] for c, b in getattr(est, "bands_", {}).items()],
            "n_scans": [[float(c), int(n)] for c, n in getattr(est, "n_scans_", {}).items()],
        }
    meta = {
        "format": FORMAT,
        "class": type(predictor).__name__,
        "params": predictor.get_params(),
        "features": [str(f) for f in predictor.feature_names_in_],
        "fitted": {k: _plain(getattr(predictor, k)) for k in SCALARS if hasattr(predictor, k)},
        "conformal": {
            "coverage": float(conformal.coverage),
            "offset": float(conformal.offset),
            "quantile_": float(conformal.quantile_),
            "n_calibration_": int(conformal.n_calibration_),
        },
        "ensembles": ensembles,
        "rated": rated,
    }
    arrays[META] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def loads(data: bytes):
    """A serving-only predictor from :func:`dumps` bytes (see the module docstring)."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError) as exc:
        raise ValueError(f"serving file: not a readable .npz without pickles ({exc})") from None
    if META not in arrays:
        raise ValueError(f"serving file: received no {META}; expected one (written by portable.dumps)")
    meta = json.loads(arrays.pop(META).tobytes())
    if meta.get("format") != FORMAT:
        raise ValueError(f"serving file: received format {meta.get('format')!r}; expected {FORMAT}")
    cls = CLASSES.get(meta.get("class"))
    if cls is None:
        raise ValueError(
            f"serving file: received class {meta.get('class')!r}; expected one of {sorted(CLASSES)}"
        )
    predictor = cls(**meta["params"])
    expected = list(predictor.features.columns)
    if meta["features"] != expected:
        raise ValueError(
            f"serving file: received features {meta['features']}; this version of technic-ml computes"
            f" {expected} for feature_set {predictor.feature_set!r} (retrain to serve it)"
        )
    predictor.feature_names_in_ = np.array(meta["features"], dtype=object)
    predictor.n_features_in_ = len(meta["features"])
    predictor.feature_range_ = arrays["feature_range"]
    c = meta["conformal"]
    predictor.conformal_ = LogConformal(c["coverage"], c["offset"])
    predictor.conformal_.quantile_ = c["quantile_"]
    predictor.conformal_.n_calibration_ = c["n_calibration_"]
    for name, value in meta["fitted"].items():
        if name not in SCALARS:
            raise ValueError(f"serving file: received fitted {name!r}; expected some of {list(SCALARS)}")
        setattr(predictor, name, value)
    for name in ENSEMBLES:
        spec = meta["ensembles"].get(name)
        setattr(
            predictor,
            name,
            None if spec is None else FlatEnsemble(**{f: arrays[f"{name}{f}"] for f in ARRAYS}, **spec),
        )
    if meta["rated"] is not None:
        r = meta["rated"]
        est = RatedRegressor(None, r["source_column"])
        est.rates_ = {float(k): float(v) for k, v in r["rates"]}
        est.bands_ = {float(k): float(v) for k, v in r["bands"]}
        est.n_scans_ = {float(k): int(v) for k, v in r["n_scans"]}
        predictor.estimator_ = est
    # Marks what cannot be done without the scikit-learn objects (see _TreePredictor).
    predictor.serving_only_ = True
    return predictor


def _plain(value: Any):
    return value.item() if isinstance(value, np.generic) else value
