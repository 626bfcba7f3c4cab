"""Budgets that mean something: a duration budget is reported as binding only when a candidate came
near it; millisecond scans against a 10 s budget are not presented as a finding.

Stub predictors and hand-built evaluations (no fitting): fast, and the numbers are checked by hand.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from technic_ml.contracts import MarketConditions, ScanConfig
from technic_ml.optimizer import PresetsHistory, daily_presets
from technic_ml.optimizer.goals import DEFAULT_GOALS, Goal
from technic_ml.optimizer.optimizer import LAST_RESORT, Optimizer, budget_check, choose, tier_text
from technic_ml.optimizer.reporting import preset_rows, presets_markdown
from technic_ml.optimizer.search import Evaluation
from technic_ml.predictors.estimators import Prediction

#            count  lower upper p_empty duration upper breadth
MS_CANDIDATES = [
    (12.0, 8.0, 18.0, 0.01, 0.0020, 0.0030, 25),
    (20.0, 14.0, 30.0, 0.01, 0.0025, 0.0035, 50),
    (40.0, 30.0, 55.0, 0.01, 0.0030, 0.0041, 100),
    (60.0, 45.0, 80.0, 0.01, 0.0032, 0.0040, 200),
]

#            count  lower upper p_empty duration upper breadth
SLOW_CANDIDATES = [
    (12.0, 8.0, 18.0, 0.01, 4.0, 6.0, 25),  # 0: quick enough for every budget
    (20.0, 14.0, 30.0, 0.01, 12.0, 20.0, 50),  # 1: over quick's 10 s, inside balanced's 30 s
    (40.0, 30.0, 55.0, 0.01, 25.0, 45.0, 100),  # 2: over balanced's 30 s
    (60.0, 45.0, 80.0, 0.01, 70.0, 150.0, 200),  # 3: the widest, over deep's 120 s
    (50.0, 40.0, 70.0, 0.01, 40.0, 90.0, 150),  # 4: deep's pick: widest within 120 s
]


def _evaluation(rows, state: str = "model") -> Evaluation:
    a = np.array(rows, dtype=float)
    n = len(a)
    duration_upper = a[:, 5] if state == "model" else a[:, 4]  # the heuristic has no interval
    return Evaluation(
        configs=[
            ScanConfig(max_symbols=int(r[6]), min_tech_rating=float(i), min_dollar_vol=0.0, lookback_days=30)
            for i, r in enumerate(rows)
        ],
        count_ok=np.ones(n, bool),
        count=a[:, 0],
        count_lower=a[:, 1],
        count_upper=a[:, 2],
        p_empty=a[:, 3],
        duration_ok=np.ones(n, bool),
        duration=a[:, 4],
        duration_upper=duration_upper,
        duration_state=state,
        breadth=a[:, 6],
        coverage=0.9,
    )


@dataclasses.dataclass(frozen=True)
class _SourcedPrediction(Prediction):
    """A prediction that names its data source (what the duration predictor may add later)."""

    source: str | None = None


class _Stub:
    """What the optimizer asks of ``Predictors``, answering from the evaluation's rows."""

    def __init__(self, ev: Evaluation, *, count: bool = True, source: str | None = None):
        self.ev = ev
        self.count = object() if count else None
        self.duration = object() if ev.duration_state == "model" else None
        self.notes = {} if count else {"count": "no champion yet"}
        self.source = source

    def predict(self, config: ScanConfig, conditions) -> dict[str, Prediction]:
        ev = self.ev
        i = ev.configs.index(config) if config in ev.configs else None
        if i is None or not self.count:
            count = Prediction("count", "abstain", None, reasons=("no result-count model",))
        else:
            count = Prediction(
                "count", "model", ev.count[i], ev.count_lower[i], ev.count_upper[i], 0.9, ev.p_empty[i], "c"
            )
        if i is None or ev.duration_state != "model":
            duration = Prediction("duration", "heuristic", config.max_symbols * 0.1, reasons=("seed",))
        else:
            duration = _SourcedPrediction(
                "duration", "model", ev.duration[i], None, ev.duration_upper[i], 0.9, source=self.source
            )
        return {"count": count, "duration": duration}


def _suggest_all(ev: Evaluation, goals=None, **stub) -> dict:
    optimizer = Optimizer(_Stub(ev, **stub), goals=goals or DEFAULT_GOALS)
    return {name: optimizer.suggest(name, None, evaluation=ev) for name in optimizer.goals}


def _conditions() -> MarketConditions:
    return MarketConditions(
        spy_trend="bullish",
        spy_volatility=0.15,
        spy_momentum=0.1,
        spy_return_5d=0.01,
        spy_return_20d=0.02,
        vix_level=15.0,
        time_of_day=8,
        day_of_week=3,
        is_market_hours=False,
    )


def _document(suggestions) -> dict:
    return daily_presets(
        suggestions,
        None,
        _conditions(),
        snapshot_id="snap",
        models={"count": None, "duration": None},
        searched=4,
        elapsed_seconds=0.01,
    )


def test_millisecond_scans_do_not_make_a_10_s_budget_a_finding():
    suggestions = _suggest_all(_evaluation(MS_CANDIDATES))
    for name, s in suggestions.items():
        budget = DEFAULT_GOALS[name].duration_budget_s
        assert s.budget_binds is False, s.budget
        d = s.to_dict()
        assert d["budget_binds"] is False and d["duration_over_budget"] == 0
        assert d["duration_longest_s"] == pytest.approx(0.0041)
        note = d["budget_note"]
        assert note.startswith(f"Duration budget {budget:.3g} s does not bind: ")
        assert "every one of the 4 candidate scans is predicted to take at most 4.1 ms" in note
        assert note in s.reasoning  # the CLI and the markdown print the reasoning
        text = " ".join(s.reasoning)
        assert "within" not in text.replace("count interval within", ""), text
        assert "duration bound" not in text
        json.dumps(d, allow_nan=False)
    assert "on results alone" in suggestions["deep"].budget.note
    assert "on results, then on predicted speed" in suggestions["quick"].budget.note

    document = _document(suggestions)
    markdown = presets_markdown(document)
    assert "does not bind" in markdown and "duration bound within" not in markdown
    assert {r["goal"]: r["budget_binds"] for r in preset_rows(document)} == dict.fromkeys(suggestions, "no")


def test_a_budget_some_candidates_exceed_binds_and_the_preset_respects_it():
    ev = _evaluation(SLOW_CANDIDATES)
    suggestions = _suggest_all(ev)
    expected = {"quick": (0, 4), "balanced": (1, 3), "deep": (4, 1)}  # chosen row, candidates over
    for name, s in suggestions.items():
        goal = DEFAULT_GOALS[name]
        row, over = expected[name]
        assert s.budget_binds is True, s.budget
        assert s.config == ev.configs[row] and s.tier == 1
        assert s.duration.upper <= goal.duration_budget_s  # the preset respects the budget
        assert s.budget.over == over and s.to_dict()["duration_over_budget"] == over
        assert s.budget.note.startswith(f"Duration budget {goal.duration_budget_s:.3g} s binds: ")
        assert f"{over} of 5 candidate scans" in s.budget.note and "is within it" in s.budget.note
        assert f"duration bound within {goal.duration_budget_s:.3g} s" in s.reasoning[0]
    # Deep would have taken the widest (row 3); the budget is what stopped it.
    assert suggestions["deep"].binding.startswith("duration bound over 120 s (1 of 1 wider")
    assert "longest 150 s" in suggestions["deep"].budget.note
    assert {r["goal"]: r["budget_binds"] for r in preset_rows(_document(suggestions))} == dict.fromkeys(
        suggestions, "yes"
    )


def test_a_preset_over_a_binding_budget_says_so():
    goal = Goal("q", "t", (5, 25), 1.0, 0.05, "fastest")
    rows = [(12.0, 8.0, 18.0, 0.01, 2.0, 3.0, 25), (30.0, 20.0, 40.0, 0.01, 0.1, 0.2, 25)]
    ev = _evaluation(rows)
    s = Optimizer(_Stub(ev), goals={"q": goal}).suggest("q", None, evaluation=ev)
    assert s.tier == 4 and s.budget_binds is True
    assert "the preset's bound, 3 s, is over it (a compromise)" in s.budget.note
    assert "compromise: the expected count inside the range, over the duration budget" in s.flags


def test_a_bound_exactly_at_the_budget_binds_and_a_missing_upper_falls_back_to_the_point():
    goal = Goal("q", "t", (5, 25), 0.004, 0.05, "fastest")
    at = budget_check(goal, _evaluation([*MS_CANDIDATES[:1], (12.0, 8.0, 18.0, 0.01, 0.002, 0.004, 25)]))
    assert at.binds is True and at.over == 1
    ev = _evaluation(MS_CANDIDATES)
    ev.duration_upper[:] = np.nan  # no interval: the point is the duration
    ev.duration[2] = 0.005
    point = budget_check(goal, ev)
    assert point.binds is True and point.over == 1 and point.longest_s == pytest.approx(0.005)


def test_heuristic_durations_leave_the_budget_unknown():
    ev = _evaluation(SLOW_CANDIDATES, state="heuristic")
    for s in _suggest_all(ev).values():
        assert s.budget_binds is None and s.to_dict()["budget_binds"] is None
        assert "not assessed" in s.budget.note and "seed heuristic" in s.budget.note
        assert "duration not modelled: the seed heuristic, uncalibrated" in s.flags  # as before
        assert "seed-heuristic duration (uncalibrated)" in s.reasoning[0]
        assert "duration bound" not in s.reasoning[0]
    rows = preset_rows(_document(_suggest_all(ev)))
    assert {r["budget_binds"] for r in rows} == {"?"}


def test_a_duration_model_that_abstained_everywhere_leaves_the_budget_unknown():
    ev = _evaluation(MS_CANDIDATES)
    ev.duration_ok[:] = False
    ev.duration[:] = ev.duration_upper[:] = np.nan
    check = budget_check(DEFAULT_GOALS["quick"], ev)
    assert check.binds is None and check.predicted == 0 and "abstained on all 4" in check.note
    # Nothing can be chosen then: the static preset, whose budget is unknown too.
    assert choose(DEFAULT_GOALS["quick"], ev) is None
    s = Optimizer(_Stub(ev)).suggest("quick", None, evaluation=ev)
    assert s.source == "static" and s.budget_binds is None and "not assessed" in s.to_dict()["budget_note"]


def test_candidates_the_duration_model_did_not_predict_are_not_counted_but_named():
    ev = _evaluation(SLOW_CANDIDATES)
    ev.duration_ok[1:] = False
    check = budget_check(DEFAULT_GOALS["quick"], ev)
    assert check.binds is False and check.predicted == 1
    assert "4 not predicted (outside the duration model's range)" in check.note


def test_without_a_count_model_the_static_presets_carry_an_unknown_budget():
    ev = _evaluation(MS_CANDIDATES)
    for s in Optimizer(_Stub(ev, count=False)).suggest_all(None).values():
        assert s.source == "static" and s.budget_binds is None
        assert "no candidates were searched (the static preset)" in s.budget.note


def test_the_note_names_the_data_source_when_the_prediction_does():
    ev = _evaluation(MS_CANDIDATES)
    s = _suggest_all(ev, source="reference")["quick"]
    assert s.budget.note.startswith("Duration budget 10 s does not bind for scans of source 'reference': ")
    assert s.to_dict()["duration_source"] == "reference"
    assert _suggest_all(ev)["quick"].to_dict()["duration_source"] is None  # plain predictions: no source


def test_the_last_resort_is_not_called_over_the_budget():
    goal = Goal("x", "t", (100, 200), 10.0, 0.05, "fastest")
    ev = _evaluation(MS_CANDIDATES)
    index, tier, _ = choose(goal, ev)
    assert tier == 4 and tier_text(goal, ev, index, tier) == LAST_RESORT
    s = Optimizer(_Stub(ev), goals={"x": goal}).suggest("x", None, evaluation=ev)
    assert s.flags == (f"compromise: {LAST_RESORT}",) and s.budget_binds is False


def test_documents_saved_before_the_budget_fields_still_read_and_render(tmp_path):
    document = _document(_suggest_all(_evaluation(SLOW_CANDIDATES)))
    old = json.loads(json.dumps(document))
    new_fields = ["budget_binds", "budget_note", "duration_longest_s", "duration_over_budget"]
    new_fields.append("duration_source")
    for preset in old["presets"].values():
        for key in new_fields:
            del preset[key]
    history = PresetsHistory(tmp_path / "presets")
    assert history.save({**old, "presets_id": "old"}) and history.save(document)
    assert [d["presets_id"] for d in history.history()] == [document["presets_id"], "old"]
    assert history.latest()["presets"]["deep"]["budget_binds"] is True
    assert {r["budget_binds"] for r in preset_rows(old)} == {"?"}
    assert "## deep" in presets_markdown(old)
