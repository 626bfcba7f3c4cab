"""The grid and its batch scoring: constraints respected, the same numbers as one-at-a-time serving."""

from __future__ import annotations

import numpy as np
import pytest

from technic_ml.optimizer.goals import Constraints
from technic_ml.optimizer.search import SearchSpace, evaluate
from technic_ml.predictors.serving import Predictors


def test_the_grid_respects_every_constraint_and_includes_the_users_own_bounds():
    c = Constraints(
        sectors=["Energy"],
        max_symbols_max=120,
        min_tech_rating_min=42,
        min_dollar_vol_min=3e6,
        lookback_days=60,
    )
    configs = SearchSpace().configs(c)
    assert configs and all(c.admits(x) for x in configs)
    assert {x.sectors[0] for x in configs} == {"Energy"}
    assert 120 in {x.max_symbols for x in configs} and 42.0 in {x.min_tech_rating for x in configs}
    assert 3e6 in {x.min_dollar_vol for x in configs} and {x.lookback_days for x in configs} == {60}
    assert len(SearchSpace().configs()) == SearchSpace().size == 9 * 19 * 7 * 6


def test_batch_scores_equal_the_serving_path_config_by_config(predictors, conditions):
    configs = SearchSpace().configs()[::97]
    ev = evaluate(predictors, configs, conditions)
    assert ev.count_ok.any() and ev.duration_state == "model"
    for i, config in enumerate(configs):
        one = predictors.predict(config, conditions)
        count, duration = one["count"], one["duration"]
        assert ev.count_ok[i] == (count.state == "model")
        assert ev.duration_ok[i] == (duration.state == "model")
        if count.state == "model":
            got = (ev.count[i], ev.count_lower[i], ev.count_upper[i], ev.p_empty[i])
            assert got == pytest.approx((count.value, count.lower, count.upper, count.p_empty), rel=1e-9)
        if duration.state == "model":
            assert (ev.duration[i], ev.duration_upper[i]) == pytest.approx(
                (duration.value, duration.upper), rel=1e-9
            )


def test_without_a_duration_model_the_seed_heuristic_is_used_and_said(fitted, universe, conditions):
    from technic_ml.predictors.serving import Loaded

    only_count = Predictors(
        Loaded(fitted[0], {"version": "c"}), None, universe, notes={"duration": "no champion"}
    )
    configs = SearchSpace().configs()[:5]
    ev = evaluate(only_count, configs, conditions)
    assert ev.duration_state == "heuristic"
    assert np.allclose(ev.duration, [c.max_symbols * 0.1 for c in configs])
    assert any("seed heuristic" in n for n in ev.notes)


def test_an_abstaining_count_model_says_why(fitted, universe, conditions):
    from technic_ml.predictors.serving import Loaded

    stormy = conditions.model_copy(update={"vix_level": 500.0})
    ev = evaluate(
        Predictors(Loaded(fitted[0], {"version": "c"}), None, universe), SearchSpace().configs()[:40], stormy
    )
    assert not ev.count_ok.any()
    assert any("abstained on all 40" in n and "vix_level=500" in n for n in ev.notes)
