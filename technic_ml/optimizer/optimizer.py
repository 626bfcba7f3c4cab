"""``Optimizer``: the champions turned into a suggested config per goal, with the reasons.

For a goal (:mod:`.goals`) the grid (:mod:`.search`) is scored once, then filtered in tiers, each
weaker than the one before, and the first non-empty tier wins; the suggestion says which tier it
came from, so a compromise is never presented as a clean answer:

1. the whole count interval inside the goal's range, P(empty) within its limit, and the upper
   end of the duration interval within the budget;
2. the point estimate inside the range (the interval spills over an edge), the rest as in 1;
3. the point inside the range and the budget met, P(empty) over its limit;
4. the point inside the range, over the budget.

Inside the tier the goal's objective ranks the candidates (``fastest``, ``widest``, ``surest``);
ties fall to the count's margin, then to the grid order (deterministic). The reasoning names the
binding constraint: of the candidates that would have been better on the objective, what
rejected most of them.

Whether the duration budget means anything is decided per goal (:func:`budget_check`): it *binds*
only when at least one candidate of that goal's search space has a predicted duration (the upper
end of its interval; the point where there is no interval) at or above the budget, i.e. the budget
removed or could remove a candidate. When every candidate is predicted far under it (the reference
scanner's scans take milliseconds, the budgets are 10 s to 120 s), the suggestion says so
(``budget_binds=False`` and ``budget_note``) and its reasoning claims no duration bound "within"
the budget: a budget nothing came near is not a finding. Without a duration model (the seed
heuristic), when the duration model abstained on every candidate, or for a static preset, nothing
is known about it: ``budget_binds=None``, with the reason in the note. When the duration
prediction names the data source it was made for (a ``source`` attribute, if the predictor
provides one), the note names it.

Without a result-count champion nothing can be predicted: the seed's static preset is returned,
flagged ``source="static"``, with the reason. :func:`technic_ml.optimizer.analysis.analyze` uses
the same scoring for one config.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from technic_ml.contracts import MarketConditions, ScanConfig
from technic_ml.optimizer.goals import DEFAULT_GOALS, Constraints, Goal, resolve_goal, static_preset
from technic_ml.optimizer.search import Evaluation, SearchSpace, evaluate
from technic_ml.predictors.estimators import HEURISTIC_SECONDS_PER_SYMBOL, Prediction
from technic_ml.predictors.serving import Predictors

Source = Literal["model", "static"]
TIERS = {
    1: "the whole count interval inside the range",
    2: "the expected count inside the range, its interval spilling over an edge",
    3: "the expected count inside the range, P(empty) over the goal's limit",
    4: "the expected count inside the range, over the duration budget",
}
#: Tier 4 as the last resort: no candidate's expected count is inside the range at all.
LAST_RESORT = "no expected count inside the range: the config likeliest to reach it"


@dataclass(frozen=True)
class BudgetCheck:
    """Whether a goal's duration budget binds on the candidates searched (see the module docstring).

    ``binds``: True when at least one candidate's predicted duration bound is at or above the
    budget, False when none is, None when unknown (heuristic durations, the model abstained on
    every candidate, or no search: a static preset). ``longest_s``: the longest predicted bound
    among the candidates the duration model predicted; ``over``: how many are at or above the
    budget; ``predicted``: how many it predicted; ``source``: the data source the durations were
    predicted for, when the predictor says.
    """

    binds: bool | None
    note: str
    budget_s: float
    longest_s: float | None = None
    over: int | None = None
    predicted: int | None = None
    source: str | None = None


@dataclass(frozen=True)
class Suggestion:
    goal: str
    source: Source
    config: ScanConfig
    count: Prediction
    duration: Prediction
    reasoning: tuple[str, ...]
    flags: tuple[str, ...] = ()
    binding: str | None = None
    tier: int | None = None
    searched: int = 0
    feasible: int = 0
    spec: dict[str, Any] = field(default_factory=dict)
    budget: BudgetCheck | None = None

    @property
    def p_empty(self) -> float | None:
        return self.count.p_empty

    @property
    def budget_binds(self) -> bool | None:
        return None if self.budget is None else self.budget.binds

    def to_dict(self) -> dict[str, Any]:
        return {
            "goal": self.goal,
            "source": self.source,
            "config": self.config.model_dump(mode="json", exclude_none=True),
            "count": self.count.to_dict(),
            "duration": self.duration.to_dict(),
            "p_empty": self.p_empty,
            "reasoning": list(self.reasoning),
            "flags": list(self.flags),
            "binding": self.binding,
            "tier": self.tier,
            "searched": self.searched,
            "feasible": self.feasible,
            "goal_spec": self.spec,
            # Whether the duration budget binds (None: unknown), in one line, and its evidence.
            "budget_binds": self.budget_binds,
            "budget_note": None if self.budget is None else self.budget.note,
            "duration_longest_s": None if self.budget is None else self.budget.longest_s,
            "duration_over_budget": None if self.budget is None else self.budget.over,
            "duration_source": None if self.budget is None else self.budget.source,
        }


class Optimizer:
    """Suggest a config per goal from the champions (see the module docstring)."""

    def __init__(
        self,
        predictors: Predictors,
        goals: dict[str, Goal] | None = None,
        space: SearchSpace | None = None,
    ):
        self.predictors = predictors
        self.goals = dict(goals or DEFAULT_GOALS)
        self.space = space or SearchSpace()

    @property
    def has_count_model(self) -> bool:
        return self.predictors.count is not None

    def evaluate(self, conditions: MarketConditions, constraints: Constraints | None = None) -> Evaluation:
        return evaluate(self.predictors, self.space.configs(constraints), conditions)

    def suggest(
        self,
        goal: str,
        market_conditions: MarketConditions,
        constraints: Constraints | None = None,
        *,
        evaluation: Evaluation | None = None,
    ) -> Suggestion:
        spec = resolve_goal(goal, self.goals).with_constraints(constraints)
        if not self.has_count_model:
            return self._static(spec, market_conditions, self.predictors.notes.get("count", "not loaded"))
        ev = evaluation if evaluation is not None else self.evaluate(market_conditions, constraints)
        pick = choose(spec, ev)
        if pick is None:
            reason = "; ".join(ev.notes) or "no candidate config could be predicted"
            return self._static(spec, market_conditions, reason)
        index, tier, feasible = pick
        config = ev.configs[index]
        predictions = self.predictors.predict(config, market_conditions)
        flags = [f"compromise: {tier_text(spec, ev, index, tier)}"] if tier > 1 else []
        if ev.duration_state != "model":
            flags.append("duration not modelled: the seed heuristic, uncalibrated")
        binding = binding_constraint(spec, ev, index, tier)
        budget = budget_check(spec, ev, chosen=index, source=self._duration_source(predictions["duration"]))
        return _suggestion(
            spec,
            "model",
            config,
            predictions,
            reasoning=tuple(_reasoning(spec, ev, index, tier, binding, predictions, budget)),
            flags=tuple(flags),
            binding=binding,
            tier=tier,
            searched=len(ev),
            feasible=feasible,
            budget=budget,
        )

    def suggest_all(
        self, market_conditions: MarketConditions, constraints: Constraints | None = None
    ) -> dict[str, Suggestion]:
        """Every goal, scoring the grid once."""
        ev = self.evaluate(market_conditions, constraints) if self.has_count_model else None
        return {
            name: self.suggest(name, market_conditions, constraints, evaluation=ev) for name in self.goals
        }

    def _duration_source(self, prediction: Prediction) -> str | None:
        """The data source the durations were predicted for, when the predictor says (optional)."""
        found = getattr(prediction, "source", None) or getattr(self.predictors.duration, "source", None)
        return str(found) if found else None

    def _static(self, spec: Goal, conditions: MarketConditions, reason: str) -> Suggestion:
        config = static_preset(spec.name)
        predictions = self.predictors.predict(config, conditions)
        budget = BudgetCheck(
            None,
            f"Duration budget {_seconds(spec.duration_budget_s)} not assessed: no candidates were"
            " searched (the static preset).",
            spec.duration_budget_s,
            source=self._duration_source(predictions["duration"]),
        )
        return _suggestion(
            spec,
            "static",
            config,
            predictions,
            reasoning=(
                f"No prediction possible ({reason}): this is the seed's static {spec.name} preset,"
                " not a suggestion; its result count was not predicted.",
            ),
            flags=("static preset: no result-count champion could score the candidates",),
            budget=budget,
        )


def _suggestion(
    spec: Goal, source: Source, config: ScanConfig, predictions: dict[str, Prediction], **rest: Any
) -> Suggestion:
    """A suggestion for ``spec``: ``config`` with both of its predictions, and the rest as given."""
    return Suggestion(
        goal=spec.name,
        source=source,
        config=config,
        count=predictions["count"],
        duration=predictions["duration"],
        spec=_spec_dict(spec),
        **rest,
    )


# -- choosing -------------------------------------------------------------------------------------


def _objective_keys(goal: Goal, ev: Evaluation, margin: np.ndarray) -> list[np.ndarray]:
    """Sort keys, most important first, smaller is better."""
    if goal.objective == "fastest":
        return [ev.duration, -margin]
    if goal.objective == "widest":
        return [-ev.breadth, -margin]
    return [-np.minimum(margin, 10.0), -ev.breadth]  # surest


def _masks(goal: Goal, ev: Evaluation) -> dict[str, np.ndarray]:
    low, high = goal.count_range
    with np.errstate(invalid="ignore"):
        known = ev.count_ok & ev.duration_ok
        selective = known & (ev.count <= goal.max_pass_share * ev.breadth)
        return {
            "known": known,
            "selective": selective,
            "point": selective & (ev.count >= low) & (ev.count <= high),
            "interval": selective & (ev.count_lower >= low) & (ev.count_upper <= high),
            "empty": known & (ev.p_empty <= goal.max_p_empty),
            "budget": known & (ev.duration_upper <= goal.duration_budget_s),
        }


def choose(goal: Goal, ev: Evaluation) -> tuple[int, int, int] | None:
    """(index, tier, size of tier 1) of the chosen candidate, or None when nothing was predicted."""
    m = _masks(goal, ev)
    tiers = {
        1: m["interval"] & m["empty"] & m["budget"],
        2: m["point"] & m["empty"] & m["budget"],
        3: m["point"] & m["budget"],
        4: m["point"],
    }
    margin = ev.margin(*goal.count_range)
    for tier, mask in tiers.items():
        rows = np.flatnonzero(mask)
        if len(rows):
            keys = [k[rows] for k in _objective_keys(goal, ev, margin)]
            order = np.lexsort((rows, *reversed(keys)))
            return int(rows[order[0]]), tier, int(tiers[1].sum())
    if m["known"].any():
        # Nothing predicted inside the range at all: tier 4's last resort is the config likeliest to
        # reach it (distance in units of its own band), selective ones first.
        rows = np.flatnonzero(m["selective"] if m["selective"].any() else m["known"])
        best = rows[np.lexsort((rows, -margin[rows]))[0]]
        return int(best), 4, 0
    return None


def binding_constraint(goal: Goal, ev: Evaluation, index: int, tier: int) -> str | None:
    """What stopped the candidates that were better on the objective than the chosen one."""
    margin = ev.margin(*goal.count_range)
    primary = _objective_keys(goal, ev, margin)[0]
    better = np.flatnonzero(primary < primary[index] - 1e-12)
    if not len(better):
        return None
    m = _masks(goal, ev)
    low, high = goal.count_range
    reasons = Counter()
    for i in better:
        if not m["known"][i]:
            reasons["outside what the models were trained on"] += 1
        elif not m["selective"][i]:
            reasons[f"expected to return over {goal.max_pass_share:.0%} of the symbols scanned"] += 1
        elif not m["point"][i]:
            reasons[f"expected count outside {low}-{high}"] += 1
        elif tier <= 1 and not m["interval"][i]:
            reasons[f"count interval leaves {low}-{high}"] += 1
        elif tier <= 2 and not m["empty"][i]:
            reasons[f"P(empty) above {goal.max_p_empty:.0%}"] += 1
        elif tier <= 3 and not m["budget"][i]:
            reasons[f"duration bound over {_seconds(goal.duration_budget_s)}"] += 1
        else:
            reasons["a tie on the objective"] += 1
    reason, n = reasons.most_common(1)[0]
    return f"{reason} ({n} of {len(better)} {_better_word(goal)} candidates)"


def tier_text(goal: Goal, ev: Evaluation, index: int, tier: int) -> str:
    """What the chosen candidate's tier means; tier 4 is also the last resort (nothing in range)."""
    if tier == 4 and not _masks(goal, ev)["point"][index]:
        return LAST_RESORT
    return TIERS[tier]


def budget_check(
    goal: Goal, ev: Evaluation, *, chosen: int | None = None, source: str | None = None
) -> BudgetCheck:
    """Whether ``goal``'s duration budget binds on the candidates of ``ev`` (module docstring).

    A candidate's duration is the upper end of its interval, or the point where there is none;
    candidates the duration model abstained on are not counted (the budget cannot remove what
    is already out). ``chosen``: the index of the suggested candidate, whose bound the note then
    compares with a binding budget.
    """
    budget = goal.duration_budget_s
    words = f"Duration budget {_seconds(budget)}"
    of = f" for scans of source {source!r}" if source else ""
    if ev.duration_state != "model":
        return BudgetCheck(
            None,
            f"{words} not assessed{of}: no duration model, the candidates' durations are the seed"
            f" heuristic (max_symbols x {HEURISTIC_SECONDS_PER_SYMBOL} s), not a calibrated prediction.",
            budget,
            source=source,
        )
    with np.errstate(invalid="ignore"):
        bound = np.where(np.isfinite(ev.duration_upper), ev.duration_upper, ev.duration)
        rows = np.asarray(ev.duration_ok, bool) & np.isfinite(bound)
    predicted = int(rows.sum())
    if not predicted:
        return BudgetCheck(
            None,
            f"{words} not assessed{of}: the duration model abstained on all {len(ev)} candidates.",
            budget,
            predicted=0,
            source=source,
        )
    longest = float(bound[rows].max())
    over = int((bound[rows] >= budget).sum())
    missing = len(ev) - predicted
    unpredicted = f"; {missing} not predicted (outside the duration model's range)" if missing else ""
    if over:
        mine = ""
        if chosen is not None and rows[chosen]:
            where = "within it" if bound[chosen] <= budget else "over it (a compromise)"
            mine = f"; the preset's bound, {_seconds(float(bound[chosen]))}, is {where}"
        note = (
            f"{words} binds{of}: {over} of {predicted} candidate scans have a predicted duration bound"
            f" at or above it (longest {_seconds(longest)}){unpredicted}{mine}."
        )
    else:
        chosen_on = (
            "on results, then on predicted speed" if goal.objective == "fastest" else "on results alone"
        )
        note = (
            f"{words} does not bind{of}: every one of the {predicted} candidate scans is predicted to"
            f" take at most {_seconds(longest)} (longest upper bound){unpredicted}; the preset is chosen"
            f" {chosen_on}."
        )
    return BudgetCheck(over > 0, note, budget, longest, over, predicted, source)


def _better_word(goal: Goal) -> str:
    return {"fastest": "faster", "widest": "wider", "surest": "surer"}[goal.objective]


# -- words ----------------------------------------------------------------------------------------


def _reasoning(goal, ev: Evaluation, index, tier, binding, predictions, budget: BudgetCheck) -> list[str]:
    low, high = goal.count_range
    coverage = f"{ev.coverage:.0%}" if ev.coverage else "stated"
    objective = {
        "fastest": "the fastest config",
        "widest": "the config that scans the most symbols",
        "surest": "the config whose count sits most safely inside the range",
    }[goal.objective]
    wanted = [
        f"its {coverage} count interval within {low}-{high} results",
        f"P(empty) <= {goal.max_p_empty:.0%}",
        f"at most {goal.max_pass_share:.0%} of the scanned symbols expected to pass",
    ]
    # The budget is stated as a condition only where it means something (see budget_check).
    if budget.binds:
        wanted.append(f"a {coverage} duration bound within {_seconds(goal.duration_budget_s)}")
    elif ev.duration_state != "model":
        wanted.append(f"a seed-heuristic duration (uncalibrated) within {_seconds(goal.duration_budget_s)}")
    conditions = ", ".join(wanted[:-1]) + ", and " + wanted[-1]
    lines = [
        f"Goal {goal.name}: {objective} with {conditions} (searched {len(ev)} configs).",
        f"Chose {describe_config(ev.configs[index])}: {describe_predictions(predictions)}.",
    ]
    if tier > 1:
        lines.append(f"No config met every condition; this one has {tier_text(goal, ev, index, tier)}.")
    if binding:
        lines.append(f"Binding: {binding}.")
    lines.append(_trade_off(goal, ev, index))
    lines.append(budget.note)
    return lines


def _trade_off(goal: Goal, ev: Evaluation, index: int) -> str:
    breadth = int(ev.breadth[index])
    widest = int(np.nanmax(ev.breadth))
    if goal.objective == "fastest":
        return f"Traded off breadth for speed: {breadth} symbols scanned (the grid reaches {widest})."
    if goal.objective == "widest":
        fastest = float(np.nanmin(np.where(ev.duration_ok, ev.duration, np.nan)))
        return (
            f"Traded off speed for breadth: {breadth} symbols in about {_seconds(ev.duration[index])}"
            f" (the fastest candidate takes {_seconds(fastest)})."
        )
    return (
        f"Traded off breadth and speed for a dependable count: {breadth} symbols in about"
        f" {_seconds(ev.duration[index])}."
    )


def describe_config(config: ScanConfig) -> str:
    parts = [
        f"{config.max_symbols} symbols",
        f"rating >= {config.min_tech_rating:g}",
        f"dollar volume >= {_money(config.min_dollar_vol)}",
        f"{config.lookback_days}-day lookback",
    ]
    if config.sectors:
        parts.append("sectors " + ", ".join(config.sectors))
    if config.industries:
        parts.append("industries " + ", ".join(config.industries))
    return ", ".join(parts)


def describe_predictions(predictions: dict[str, Prediction]) -> str:
    count, duration = predictions["count"], predictions["duration"]
    parts = []
    if count.state == "model":
        parts.append(
            f"expect {count.value:.0f} results ({count.coverage:.0%}: {count.lower:.0f}-{count.upper:.0f}),"
            f" P(empty) {count.p_empty:.1%}"
        )
    else:
        parts.append("result count not predicted (" + "; ".join(count.reasons) + ")")
    if duration.state == "model":
        parts.append(f"about {_seconds(duration.value)} (at most {_seconds(duration.upper)})")
    elif duration.state == "heuristic":
        parts.append(f"about {_seconds(duration.value)} by the seed heuristic (uncalibrated)")
    else:
        parts.append("duration not predicted")
    return "; ".join(parts)


def _money(value: float) -> str:
    if value >= 1e6:
        return f"${value / 1e6:g}M"
    if value >= 1e3:
        return f"${value / 1e3:g}k"
    return f"${value:g}"


def _seconds(value: float) -> str:
    if value < 1:
        return f"{value * 1e3:.2g} ms" if value < 0.01 else f"{value * 1e3:.0f} ms"
    return f"{value:.3g} s"


def _spec_dict(goal: Goal) -> dict[str, Any]:
    return {
        "description": goal.description,
        "count_range": list(goal.count_range),
        "duration_budget_s": goal.duration_budget_s,
        "max_p_empty": goal.max_p_empty,
        "max_pass_share": goal.max_pass_share,
        "objective": goal.objective,
    }
