"""What a preset is for: the goals (quick, balanced, deep), the user's constraints, the static presets.

A goal is a constrained search, stated in numbers the user can check afterwards:

* ``count_range``: the results a user can review. A scan outside it (empty, or hundreds) is a
  failure of the preset, so the search keeps the whole count interval at the models' stated
  coverage inside the range when it can.
* ``duration_budget_s``: the upper end of the duration interval must be within it. The interval
  holds the truth with probability >= its coverage (verified on held-out folds), so
  ``P(duration <= budget) >= coverage``. Whether it *binds* is reported per preset
  (``budget_binds``, ``budget_note``: see :func:`technic_ml.optimizer.optimizer.budget_check`):
  a 10 s budget over scans predicted to take milliseconds removes nothing and is not a finding.
* ``max_p_empty``: the empty-result probability a preset may carry.
* ``max_pass_share``: the largest share of the scanned symbols a preset may expect to return. A
  scan that passes everything it scans is a list of the most liquid names, not a scan: without
  this bound the count is "predictable" by switching the rating filter off (25 symbols, rating
  >= 0, 25 results), which the replay benchmark's first run did.
* ``objective``: what to maximise among the configs that meet the rest: ``fastest`` (lowest
  expected duration), ``widest`` (most symbols scanned) or ``surest`` (count most safely inside
  the range, relative to its uncertainty).

``STATIC_PRESETS`` are the seed's hard-coded presets: the fallback when no champion model exists
(flagged as such) and the baseline of the replay benchmark.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from technic_ml.contracts import Real, ScanConfig, integral

Objective = Literal["fastest", "widest", "surest"]
OBJECTIVES: tuple[str, ...] = ("fastest", "widest", "surest")
GOAL_NAMES: tuple[str, ...] = ("quick", "balanced", "deep")


@dataclass(frozen=True)
class Goal:
    name: str
    description: str
    count_range: tuple[int, int]
    duration_budget_s: float
    max_p_empty: float
    objective: Objective
    max_pass_share: float = 0.5

    def __post_init__(self):
        low, high = self.count_range
        if not (isinstance(low, int) and isinstance(high, int) and 0 <= low <= high):
            raise ValueError(
                f"count_range: received {self.count_range!r}; expected two integers 0 <= low <= high"
            )
        if not (math.isfinite(self.duration_budget_s) and self.duration_budget_s > 0):
            raise ValueError(
                f"duration_budget_s: received {self.duration_budget_s!r};"
                " expected a positive number of seconds"
            )
        if not 0 <= self.max_p_empty <= 1:
            raise ValueError(f"max_p_empty: received {self.max_p_empty!r}; expected a probability in [0, 1]")
        if not 0 < self.max_pass_share <= 1:
            raise ValueError(f"max_pass_share: received {self.max_pass_share!r}; expected a share in (0, 1]")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective: received {self.objective!r}; expected one of {list(OBJECTIVES)}")

    def with_constraints(self, constraints: Constraints | None) -> Goal:
        """This goal with the user's overrides of its range and budget."""
        if constraints is None:
            return self
        changes = {}
        if constraints.count_range is not None:
            changes["count_range"] = tuple(constraints.count_range)
        if constraints.duration_budget_s is not None:
            changes["duration_budget_s"] = constraints.duration_budget_s
        return replace(self, **changes) if changes else self


DEFAULT_GOALS: dict[str, Goal] = {
    "quick": Goal(
        "quick",
        "a fast scan that still returns something worth reading",
        count_range=(5, 25),
        duration_budget_s=10.0,
        max_p_empty=0.05,
        objective="fastest",
    ),
    "balanced": Goal(
        "balanced",
        "a scan whose result count is the most dependable, within a middle budget",
        count_range=(10, 50),
        duration_budget_s=30.0,
        max_p_empty=0.05,
        objective="surest",
    ),
    "deep": Goal(
        "deep",
        "the widest coverage of the market within the duration budget",
        count_range=(10, 100),
        duration_budget_s=120.0,
        max_p_empty=0.05,
        objective="widest",
    ),
}

#: The seed's hard-coded presets (quoted by the optimizer issue); nothing about them was predicted.
STATIC_PRESETS: dict[str, dict] = {
    "quick": {"max_symbols": 50, "min_tech_rating": 30.0, "min_dollar_vol": 5_000_000.0, "lookback_days": 30},
    "deep": {"max_symbols": 200, "min_tech_rating": 10.0, "min_dollar_vol": 1_000_000.0, "lookback_days": 90},
    "balanced": {
        "max_symbols": 100,
        "min_tech_rating": 20.0,
        "min_dollar_vol": 3_000_000.0,
        "lookback_days": 60,
    },
}


def static_preset(goal: str) -> ScanConfig:
    try:
        return ScanConfig(**STATIC_PRESETS[goal], profile=f"static-{goal}")
    except KeyError:
        raise ValueError(f"goal: received {goal!r}; expected one of {sorted(STATIC_PRESETS)}") from None


class Constraints(BaseModel):
    """What the user fixes or bounds; the search only explores configs that respect it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sectors: list[str] | None = Field(default=None, description="Scan only these sectors (fixed).")
    industries: list[str] | None = Field(default=None, description="Scan only these industries (fixed).")
    lookback_days: integral(20, 500) | None = Field(default=None, description="Fixed lookback.")
    max_symbols_max: integral(1, 10_000) | None = Field(
        default=None, description="At most this many symbols."
    )
    min_tech_rating_min: Real | None = Field(default=None, ge=0, le=100, description="Rating floor.")
    min_dollar_vol_min: Real | None = Field(default=None, ge=0, description="Liquidity floor (USD).")
    duration_budget_s: Real | None = Field(default=None, gt=0, description="Overrides the goal's budget.")
    count_range: tuple[integral(ge=0), integral(ge=0)] | None = Field(
        default=None,
        description="Overrides the goal's range: two result counts, the range between them (either order).",
    )

    @field_validator("count_range")
    @classmethod
    def _range_ordered(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        # JSON Schema cannot compare two items, so "low <= high" could not be documented: the
        # pair names a range whichever end comes first.
        return None if value is None else (min(value), max(value))

    def admits(self, config: ScanConfig) -> bool:
        """Whether ``config`` respects every bound (used to filter the search grid)."""
        if self.max_symbols_max is not None and config.max_symbols > self.max_symbols_max:
            return False
        if self.min_tech_rating_min is not None and config.min_tech_rating < self.min_tech_rating_min:
            return False
        if self.min_dollar_vol_min is not None and config.min_dollar_vol < self.min_dollar_vol_min:
            return False
        return not (self.lookback_days is not None and config.lookback_days != self.lookback_days)


def resolve_goal(name: str, goals: dict[str, Goal] | None = None) -> Goal:
    goals = goals or DEFAULT_GOALS
    try:
        return goals[name]
    except KeyError:
        raise ValueError(f"goal: received {name!r}; expected one of {sorted(goals)}") from None
