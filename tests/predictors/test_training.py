"""Train -> validate -> publish on a real (sample) backfilled history, and what is refused."""

import dataclasses

import numpy as np
import pytest

from technic_ml.contracts import ScanConfig
from technic_ml.history import ScanHistoryStore
from technic_ml.history.jsonl import sample_scan_log
from technic_ml.nyse import to_ny
from technic_ml.predictors.registry import ModelRegistry
from technic_ml.predictors.serving import Predictors, open_predictors
from technic_ml.predictors.training import (
    FoldPlan,
    load_training_data,
    plan_training,
    publish_predictor,
    publish_predictors,
    train_predictors,
)
from technic_ml.predictors.validation import Candidate, Gates

FAST = (Candidate("rf", "seed"), Candidate("hgb", "enriched", {"max_iter": 120}))
# Test folds here hold ~150 scans, so a fold's coverage has a sampling error of about 2.5 points:
# the 3-point tolerance is checked on the large real-data folds of bench/bench_predictors.py.
LOOSE_DURATION = Gates(duration_r2_min=-1e9, coverage_tolerance=0.1)


@pytest.fixture(scope="module")
def sample_data(sample_history, sample_market):
    return load_training_data(sample_history, sample_market)


@pytest.fixture(scope="module")
def first_run(sample_data):
    data, note = sample_data
    return train_predictors(
        data, candidates=FAST, gates=LOOSE_DURATION, folds=FoldPlan(n_folds=3), data_note=note
    )


def other_data(sample_data):
    """The sample history less its last scan: data the first run's champions were not trained on
    (on the very same data a run keeps the champion and trains nothing)."""
    data, _ = sample_data
    return data.subset(np.arange(len(data) - 1))


def test_enriched_features_come_from_the_sample_market(sample_data, sample_history):
    data, note = sample_data
    assert data.has_universe and note.startswith("sample: 300 symbols")
    assert len(data) == sample_history.count() and data.dropped.empty


def test_validation_chooses_the_enriched_count_model_and_it_passes(first_run):
    count = first_run.targets["count"]
    assert count.report.chosen == "hgb/enriched"
    result = count.report.result("hgb/enriched")
    assert result.passed, result.gate_failures
    assert result.pooled["r2"] > 0.95 and result.pooled["q_error_median"] < 1.2
    assert all(m["coverage"] >= 0.8 for m in result.per_fold)
    assert result.pooled["coverage"] >= 0.85
    assert result.pooled["mae"] < count.report.result("training mean").pooled["mae"] / 5
    manifest = count.manifest
    assert manifest["features"] == list(count.predictor.feature_names_in_)
    assert manifest["training_window"]["records"] == len(first_run.dataset)
    assert len(manifest["training_data_sha256"]) == 64


def test_publish_promotes_passing_models_and_serving_uses_them(first_run, tmp_path, sample_market):
    registry = ModelRegistry(tmp_path)
    outcomes = publish_predictors(registry, first_run)
    assert outcomes["count"].published and outcomes["count"].alias == "champion"
    assert registry.aliases("result-count")["champion"] == outcomes["count"].version
    predictors, conditions = open_predictors(registry, sample_market, to_ny("2018-12-28T11:00"))
    result = predictors.predict(
        ScanConfig(max_symbols=150, min_tech_rating=50, min_dollar_vol=1e6, lookback_days=60), conditions
    )
    count = result["count"]
    assert count.state == "model" and count.version == outcomes["count"].version
    assert count.lower <= count.value <= count.upper and 0 <= count.p_empty <= 1
    assert count.coverage == 0.9
    per_fold = first_run.targets["count"].report.result("hgb/enriched").per_fold
    assert count.coverage_verified == min(m["coverage"] for m in per_fold)


def test_failed_gates_publish_nothing_and_leave_the_champion(first_run, sample_data, tmp_path):
    registry = ModelRegistry(tmp_path)
    publish_predictors(registry, first_run)
    before = {m: registry.aliases(m) for m in ("result-count", "duration")}
    versions = {m: len(registry.versions(m)) for m in ("result-count", "duration")}
    data = other_data(sample_data)
    strict = dataclasses.replace(LOOSE_DURATION, count_mae_max=0.01, duration_mae_max=1e-9)
    run = train_predictors(data, candidates=FAST, gates=strict, folds=FoldPlan(n_folds=3), registry=registry)
    outcomes = publish_predictors(registry, run)
    assert not outcomes["count"].published and "MAE" in outcomes["count"].reason
    assert not outcomes["duration"].published
    assert {m: registry.aliases(m) for m in before} == before
    assert {m: len(registry.versions(m)) for m in versions} == versions


def test_a_model_worse_than_the_champion_becomes_challenger(first_run, sample_data, tmp_path):
    registry = ModelRegistry(tmp_path)
    champion = publish_predictors(registry, first_run)["count"].version
    data = other_data(sample_data)
    loose = dataclasses.replace(LOOSE_DURATION, count_mae_max=1e9, count_r2_min=-1e9)
    run = train_predictors(
        data, candidates=(Candidate("rf", "seed"),), gates=loose, folds=FoldPlan(n_folds=3), registry=registry
    )
    assert any(r.kind == "champion" for r in run.targets["count"].report.results)
    outcome = publish_predictors(registry, run)["count"]
    assert outcome.published and outcome.alias == "challenger"
    assert registry.aliases("result-count") == {"champion": champion, "challenger": outcome.version}


def test_the_original_150_records_train_but_are_too_few_to_validate(tmp_path, sample_market):
    store = ScanHistoryStore(tmp_path / "history")
    assert store.import_jsonl(sample_scan_log()).added == 150
    data, note = load_training_data(store, sample_market)
    assert not data.has_universe and "seed features only" in note
    run = train_predictors(data, folds=FoldPlan(n_folds=3))
    for trained in run.targets.values():
        assert trained.report.too_few.startswith("150 records; at least 500")
        assert trained.predictor is not None and trained.predictor.features.name == "seed"
    outcomes = publish_predictors(ModelRegistry(tmp_path / "models"), run)
    assert not any(o.published for o in outcomes.values())
    assert all("too few records to validate" in o.reason for o in outcomes.values())


def test_without_models_serving_says_so(tmp_path):
    from technic_ml.contracts import MarketConditions

    predictors = Predictors.from_registry(ModelRegistry(tmp_path))
    config = ScanConfig(max_symbols=80, min_tech_rating=50, min_dollar_vol=0, lookback_days=60)
    conditions = MarketConditions(
        spy_trend="neutral",
        spy_volatility=0.15,
        spy_momentum=0.0,
        spy_return_5d=0.0,
        spy_return_20d=0.0,
        vix_level=18.0,
        time_of_day=11,
        day_of_week=2,
        is_market_hours=True,
    )
    result = predictors.predict(config, conditions)
    assert result["count"].state == "abstain" and result["count"].value is None
    assert "no champion yet" in result["count"].reasons[0]
    assert result["duration"].state == "heuristic" and result["duration"].value == pytest.approx(8.0)


def test_a_champion_changed_by_another_run_meanwhile_makes_this_one_challenger(first_run, tmp_path):
    registry = ModelRegistry(tmp_path)
    trained = first_run.targets["count"]
    # This run validated against "no champion"; another run has since published and promoted one.
    other = publish_predictor(registry, trained, None)
    assert other.alias == "champion"
    replica = dataclasses.replace(trained, manifest={**trained.manifest, "training_data_sha256": "0" * 64})
    late = publish_predictor(registry, replica, None)
    assert late.published and late.alias == "challenger"
    assert "changed" in late.reason and other.version in late.reason
    assert registry.aliases("result-count")["champion"] == other.version


def test_one_training_path_keeps_a_champion_trained_on_this_data_and_trains_the_rest(
    first_run, sample_data, tmp_path
):
    # technic-ml train runs train_predictors + publish_predictors; the flow runs the same plan
    # (plan_training) and steps as tasks (tests/flows/test_train_predictors.py checks its side).
    registry = ModelRegistry(tmp_path)
    published = publish_predictors(registry, first_run)
    assert published["count"].alias == "champion"
    data, note = sample_data
    plan = plan_training(registry, data)
    # The count champion was fitted on exactly this data; duration too if it passed its gates.
    assert plan.unchanged["count"] == published["count"].version
    assert set(plan.todo) == {t for t in ("count", "duration") if t not in plan.unchanged}
    assert plan.held == {"count": published["count"].version, "duration": published["duration"].version}
    folds = FoldPlan(n_folds=3)
    again = train_predictors(
        data, candidates=FAST, gates=LOOSE_DURATION, folds=folds, registry=registry, data_note=note
    )
    assert "count" not in again.targets and again.unchanged["count"] == published["count"].version
    outcomes = publish_predictors(registry, again)
    assert outcomes["count"].alias == "champion" and not outcomes["count"].published
    assert outcomes["count"].reason == "unchanged: trained on this history"
    assert registry.aliases("result-count")["champion"] == published["count"].version


def test_a_run_validated_without_a_registry_does_not_replace_a_champion_it_never_met(
    first_run, sample_data, tmp_path
):
    registry = ModelRegistry(tmp_path)
    champion = publish_predictors(registry, first_run)["count"].version
    data, note = sample_data
    other = train_predictors(
        data, candidates=(Candidate("rf", "seed"),), gates=dataclasses.replace(
            LOOSE_DURATION, count_mae_max=1e9, count_r2_min=-1e9
        ), folds=FoldPlan(n_folds=3), targets=("count",), data_note=note
    )  # fmt: skip
    assert other.held == {}  # no registry: compared with no champion
    outcome = publish_predictors(registry, other)["count"]
    assert outcome.published and outcome.alias == "challenger" and "not compared" in outcome.reason
    assert registry.aliases("result-count")["champion"] == champion
