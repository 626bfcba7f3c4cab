"""scikit-learn's estimator checks on both predictors, with no exemptions.

The checks feed random arrays of 1-10 columns and 10-200 rows, so they run on the general form of
each predictor: ``feature_set="given"`` (the columns X has, instead of the 14 named scan features)
and small row floors with a 50 % interval, for which a handful of calibration rows is enough (a
90 % interval needs at least 9). Production fits keep the default floors (30 rows to train, 20 to
calibrate); everything else, from parameter handling and cloning to fit, predict and pickling, is
the same code the scan predictors run.
"""

from __future__ import annotations

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from technic_ml.predictors.estimators import DurationPredictor, ResultCountPredictor

SMALL = {
    "feature_set": "given",
    "coverage": 0.5,
    "min_train_rows": 2,
    "min_calibration_rows": 2,
    "calibration_blocks": 1,
    "max_iter": 10,
}
ESTIMATORS = [
    cls(**SMALL, model=model, interval=interval)
    for cls in (ResultCountPredictor, DurationPredictor)
    for model, interval in (("hgb", "adaptive"), ("rf", "adaptive"), ("hgb", "split"))
]


@pytest.mark.filterwarnings("ignore")
@parametrize_with_checks(ESTIMATORS)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def test_the_given_feature_set_is_not_servable_before_fit():
    predictor = ResultCountPredictor(feature_set="given")
    with pytest.raises(Exception, match="not fitted"):
        _ = predictor.features


def test_row_floors_are_validated():
    import numpy as np

    X, y = np.random.default_rng(0).random((60, 3)), np.arange(60.0)
    with pytest.raises(ValueError, match=r"min_train_rows: received 0; expected an integer >= 1"):
        ResultCountPredictor(feature_set="given", min_train_rows=0).fit(X, y)
    with pytest.raises(ValueError, match=r"X: received 60 rows \(n_samples=60\); expected at least 80"):
        ResultCountPredictor(feature_set="given", min_train_rows=60).fit(X, y)
