"""Goals and constraints refuse nonsense with the field, the value and what was expected."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from technic_ml.optimizer.goals import (
    DEFAULT_GOALS,
    STATIC_PRESETS,
    Constraints,
    Goal,
    resolve_goal,
    static_preset,
)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"count_range": (10, 5)}, "count_range: received (10, 5)"),
        ({"duration_budget_s": 0.0}, "duration_budget_s: received 0.0"),
        ({"max_p_empty": 1.5}, "max_p_empty: received 1.5"),
        ({"objective": "cheapest"}, "objective: received 'cheapest'"),
        ({"max_pass_share": 0.0}, "max_pass_share: received 0.0"),
    ],
)
def test_a_bad_goal_names_the_parameter(change, message):
    spec = {
        "name": "g",
        "description": "d",
        "count_range": (1, 2),
        "duration_budget_s": 1.0,
        "max_p_empty": 0.1,
        "objective": "fastest",
    }
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Goal(**(spec | change))


def test_constraints_override_the_goals_range_and_budget_only():
    quick = DEFAULT_GOALS["quick"].with_constraints(Constraints(count_range=(3, 9), duration_budget_s=2.0))
    assert quick.count_range == (3, 9) and quick.duration_budget_s == 2.0
    assert quick.objective == "fastest" and quick.max_p_empty == DEFAULT_GOALS["quick"].max_p_empty


def test_constraints_refuse_unknown_fields_and_what_their_schema_refuses():
    with pytest.raises(ValidationError, match="max_symbol"):
        Constraints.model_validate({"max_symbol": 5})
    # A count range names the counts between its two ends, whichever comes first: JSON Schema
    # cannot compare two items, so an order rule could not be documented for API clients.
    assert Constraints(count_range=(9, 3)).count_range == (3, 9)
    with pytest.raises(ValidationError, match="count_range"):
        Constraints.model_validate({"count_range": [-1, 3]})
    # What the schema says is an integer or a number, and nothing else: 20.0 is 20, true is not 1.
    assert Constraints.model_validate({"lookback_days": 20.0, "max_symbols_max": 5}).lookback_days == 20
    for bad in ({"lookback_days": 20.5}, {"max_symbols_max": True}, {"min_tech_rating_min": False}):
        with pytest.raises(ValidationError):
            Constraints.model_validate(bad)
    schema = Constraints.model_json_schema()["properties"]
    assert schema["lookback_days"]["anyOf"][0] == {"type": "integer", "minimum": 20, "maximum": 500}


def test_the_static_presets_are_the_seeds():
    assert STATIC_PRESETS["quick"] == {
        "max_symbols": 50,
        "min_tech_rating": 30.0,
        "min_dollar_vol": 5e6,
        "lookback_days": 30,
    }
    assert static_preset("deep").max_symbols == 200 and static_preset("balanced").min_dollar_vol == 3e6
    with pytest.raises(ValueError, match="goal: received 'fast'"):
        resolve_goal("fast")
