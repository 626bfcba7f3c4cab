"""analyze(config): risk labels from stated thresholds, fixes that the models confirm."""

from __future__ import annotations

import numpy as np
import pytest

from technic_ml.contracts import ScanConfig
from technic_ml.optimizer.analysis import Review, analyze, risks_of
from technic_ml.predictors.estimators import Prediction

REVIEW = Review()


def _count(value, lower, upper, p_empty):
    return Prediction("count", "model", value, lower, upper, 0.9, p_empty=p_empty, version="v")


def _duration(value, upper):
    return Prediction("duration", "model", value, value / 2, upper, 0.9, version="v")


@pytest.mark.parametrize(
    ("count", "duration", "labels"),
    [
        (_count(12, 8, 17, 0.01), _duration(2, 3), []),
        (_count(0.4, 0, 2, 0.7), _duration(2, 3), ["likely empty"]),
        (_count(3, 0, 8, 0.25), _duration(2, 3), ["may be empty"]),
        (_count(0.2, 0, 0, 0.1), _duration(2, 3), ["likely empty"]),  # the whole interval is 0
        (_count(240, 200, 280, 0.0), _duration(2, 3), ["more results than anyone will review"]),
        (_count(12, 8, 17, 0.0), _duration(20, 45), ["slow"]),
        (
            Prediction("count", "abstain", None, reasons=("vix_level=90 outside",)),
            _duration(2, 3),
            ["not predictable"],
        ),
        (_count(12, 8, 17, 0.0), Prediction("duration", "heuristic", 50.0), ["slow"]),
    ],
)
def test_risk_labels_follow_the_stated_thresholds(count, duration, labels):
    assert [r.label for r in risks_of(count, duration, REVIEW)] == labels


def test_a_likely_empty_scan_gets_a_rating_fix_that_the_model_confirms(predictors, conditions):
    config = ScanConfig(max_symbols=25, min_tech_rating=90, min_dollar_vol=5e7, lookback_days=20)
    a = analyze(predictors, config, conditions)
    assert {"likely empty", "may be empty"} & {r.label for r in a.risks}, a.summary
    fix = a.fixes[0]
    assert "min_tech_rating" in fix.change and fix.text.startswith("lower min_tech_rating to ")
    fixed = ScanConfig(**{**config.model_dump(), **fix.change})
    again = predictors.predict(fixed, conditions)["count"]
    assert again.value == pytest.approx(fix.count) and again.value >= 1
    assert f"expect about {again.value:.0f} results" in fix.text
    assert not {"likely empty", "may be empty"} & {
        r.label for r in analyze(predictors, fixed, conditions).risks
    }


def test_a_scan_that_returns_hundreds_is_told_to_raise_the_rating(predictors, conditions):
    config = ScanConfig(max_symbols=200, min_tech_rating=10, min_dollar_vol=0, lookback_days=60)
    a = analyze(predictors, config, conditions)
    assert "more results than anyone will review" in [r.label for r in a.risks], a.summary
    rating = next(f for f in a.fixes if "min_tech_rating" in f.change)
    assert rating.text.startswith("raise min_tech_rating to ") and 1 <= rating.count <= REVIEW.max_results


def test_a_slow_scan_gets_a_fix_within_the_limit(predictors, conditions):
    from technic_ml.optimizer.analysis import _variants
    from technic_ml.optimizer.search import SearchSpace, evaluate

    # The sample's millisecond durations are mostly noise, so which config is slow is read off the
    # model: the slowest of a coarse grid, and a limit between it and its fastest one-field variant.
    grid = SearchSpace(max_symbols=(50, 150, 250), min_tech_rating=(60.0,), min_dollar_vol=(0.0,)).configs()
    ev = evaluate(predictors, grid, conditions)
    big = grid[int(np.nanargmax(np.where(ev.duration_ok, ev.duration_upper, np.nan)))]
    upper_big = predictors.predict(big, conditions)["duration"].upper
    variants = evaluate(predictors, [v[2] for v in _variants(big)], conditions)
    fastest = float(np.nanmin(np.where(variants.duration_ok, variants.duration_upper, np.nan)))
    assert fastest < upper_big
    review = Review(slow_s=(fastest + upper_big) / 2)
    a = analyze(predictors, big, conditions, review)
    assert "slow" in [r.label for r in a.risks]
    assert a.fixes and all(f.duration_upper <= review.slow_s for f in a.fixes)
    assert any("finish within" in f.text for f in a.fixes)


def test_an_unpredictable_config_says_why_and_offers_no_numbers(predictors, conditions):
    stormy = conditions.model_copy(update={"vix_level": 500.0})
    a = analyze(
        predictors, ScanConfig(max_symbols=50, min_tech_rating=50, min_dollar_vol=0, lookback_days=60), stormy
    )
    assert a.count.state == "abstain" and a.count.value is None
    assert any(r.label == "not predictable" and "vix_level" in r.reason for r in a.risks)
    assert a.fixes == ()
