"""Split conformal on a log scale: the quantile rule, the guarantee, integer bands."""

import math

import numpy as np
import pytest

from technic_ml.predictors.conformal import LogConformal, integer_interval


def test_quantile_is_the_ceil_n_plus_one_times_coverage_smallest_score():
    # offset 0: scores are |log(y / p)| = log 1, log 2, log 4, log 8 ... for y = p x 2^k
    y = np.array([1, 2, 4, 8, 16, 32, 64, 128, 256, 512], dtype=float)
    p = np.ones(10)
    conf = LogConformal(coverage=0.8, offset=0.0).fit(y, p)
    # ceil(11 x 0.8) = 9 -> the 9th smallest score is log(256)
    assert conf.quantile_ == pytest.approx(math.log(256))
    lower, upper = conf.interval(np.array([2.0]))
    assert lower[0] == pytest.approx(2 / 256) and upper[0] == pytest.approx(512)


def test_too_few_calibration_rows_is_an_error_naming_the_minimum():
    with pytest.raises(ValueError, match="at least 9"):
        LogConformal(coverage=0.9).fit(np.ones(5), np.ones(5))


@pytest.mark.parametrize("coverage", [0.8, 0.9, 0.95])
def test_reaches_its_coverage_on_exchangeable_data(coverage):
    rng = np.random.default_rng(0)
    truth = rng.poisson(30, size=20_000).astype(float)
    prediction = truth * np.exp(rng.normal(0, 0.3, size=truth.size))
    conf = LogConformal(coverage).fit(truth[:5000], prediction[:5000])
    lower, upper = conf.interval(prediction[5000:])
    reached = np.mean((lower <= truth[5000:]) & (truth[5000:] <= upper))
    assert abs(reached - coverage) < 0.02


def test_scaled_scores_make_hard_rows_wider_with_the_same_coverage():
    rng = np.random.default_rng(1)
    scale = rng.choice([0.05, 0.5], size=20_000)
    truth = np.full(scale.size, 50.0)
    prediction = truth * np.exp(rng.normal(0, scale))
    conf = LogConformal(0.9).fit(truth[:5000], prediction[:5000], scale[:5000])
    lower, upper = conf.interval(prediction[5000:], scale[5000:])
    inside = (lower <= truth[5000:]) & (truth[5000:] <= upper)
    width = upper - lower
    hard = scale[5000:] == 0.5
    assert abs(inside.mean() - 0.9) < 0.02
    assert abs(inside[hard].mean() - 0.9) < 0.03 and abs(inside[~hard].mean() - 0.9) < 0.03
    assert width[hard].mean() > 5 * width[~hard].mean()


@pytest.mark.parametrize(
    ("lower", "upper", "expected"),
    [(0.2, 3.7, (1, 3)), (2.0, 2.0, (2, 2)), (4.2, 4.6, (4, 4)), (0.0, 0.9, (0, 0))],
)
def test_integer_interval(lower, upper, expected):
    lo, hi = integer_interval([lower], [upper])
    assert (lo[0], hi[0]) == expected
