"""Metrics on tiny hand-checked inputs."""

import math

import numpy as np
import pytest

from technic_ml.predictors import metrics


@pytest.mark.parametrize(
    ("y", "p", "expected"),
    [([1, 2, 3], [1, 2, 3], 0.0), ([0, 0, 10], [1, 1, 7], 5 / 3), ([2], [5], 3.0)],
)
def test_mae(y, p, expected):
    assert metrics.mae(y, p) == pytest.approx(expected)


def test_r2_hand_checked():
    # mean 2, total SS = 2; residual SS = 0.25 + 0 + 0.25 = 0.5 -> 1 - 0.5 / 2
    assert metrics.r2([1, 2, 3], [1.5, 2, 2.5]) == pytest.approx(0.75)
    assert math.isnan(metrics.r2([4, 4], [4, 5]))


def test_mape_skips_zero_truths_and_reports_the_share_used():
    value, share = metrics.mape([0, 10, 20], [5, 12, 10])
    assert value == pytest.approx((0.2 + 0.5) / 2)
    assert share == pytest.approx(2 / 3)


def test_q_error_counts_empty_scans_through_plus_one():
    q = metrics.q_errors([0, 9, 3], [1, 4, 3])
    assert q.tolist() == pytest.approx([2.0, 2.0, 1.0])


def test_coverage_width_and_brier():
    assert metrics.coverage([1, 5, 10], [0, 5, 11], [2, 6, 12]) == pytest.approx(2 / 3)
    assert metrics.mean_width([0, 5], [2, 9]) == pytest.approx(3.0)
    assert metrics.brier([1, 0], [0.8, 0.4]) == pytest.approx((0.04 + 0.16) / 2)


def test_mismatched_or_empty_inputs_are_refused():
    with pytest.raises(ValueError, match="shapes"):
        metrics.mae([1, 2], [1])
    with pytest.raises(ValueError, match="no rows"):
        metrics.mae([], [])


def test_regression_report_has_every_metric_of_a_count():
    report = metrics.regression_report(np.array([0, 10]), np.array([1, 10]), [0, 8], [2, 12], count=True)
    assert set(report) >= {"mae", "r2", "mape", "q_error_median", "q_error_p90", "coverage", "mean_width"}
    assert report["coverage"] == 1.0
