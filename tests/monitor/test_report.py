"""monitor_models on a real registry: verdicts per champion, drift beyond sampling noise, the
challenger's case, the events, promotion into the alias history, and the artifact markdown."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from technic_ml.api.ledger import OUTCOME_COLUMNS
from technic_ml.monitor.figures import monitor_markdown
from technic_ml.monitor.live import Thresholds
from technic_ml.monitor.report import (
    DEGRADED_EVENT,
    HEALTHY_EVENT,
    PROMOTED_EVENT,
    RETRAIN_LABEL,
    monitor_models,
    promote_challengers,
    retrained_targets,
    sampling_psi,
)
from technic_ml.predictors.registry import ModelRegistry
from tests.monitor.test_live import ledger_frame

WINDOW = {"first": "2018-01-02T09:30:00-05:00", "last": "2018-06-29T16:00:00-04:00"}


def _manifest(mae=2.0):
    return {
        "coverage": 0.9,
        "training_window": WINDOW,
        "validation": {"pooled": {"mae": mae}, "gates": {}},
    }


@pytest.fixture
def registry(tmp_path):
    reg = ModelRegistry(tmp_path / "models")
    count = reg.publish("result-count", {"stand-in": 1}, _manifest()).version
    reg.promote("result-count", count)
    return reg


def history(n_train=600, n_recent=300, shift=0.0, seed=3, recent_vix=None, symbols_shift=0):
    rng = np.random.default_rng(seed)
    train = pd.date_range("2018-01-03 10:00", periods=n_train, freq="7h", tz="America/New_York")
    recent = pd.date_range("2018-07-02 10:00", periods=n_recent, freq="1h", tz="America/New_York")
    vix = np.r_[
        rng.normal(15, 3, n_train),
        rng.normal(15 + shift, 3, n_recent) if recent_vix is None else np.full(n_recent, recent_vix),
    ]
    symbols = np.r_[rng.integers(50, 500, n_train), rng.integers(50, 500, n_recent) + symbols_shift]
    return pd.DataFrame({"timestamp": train.append(recent), "vix_level": vix, "max_symbols": symbols})


def test_sampling_noise_of_psi():
    assert sampling_psi(3000, 200, 10) == pytest.approx(9 * (1 / 3000 + 1 / 200))


def test_a_healthy_champion_emits_healthy_and_a_failing_one_degraded(registry):
    champion = registry.aliases("result-count")["champion"]
    good = ledger_frame([(10, 8, 12, 10, "model")] * 60, version=champion)
    report = monitor_models(good, registry, history())
    assert not report.degraded
    [event] = report.events()  # no duration champion: nothing to say about it
    assert event["event"] == HEALTHY_EVENT
    assert event["resource"]["prefect.resource.id"] == "technic-ml.model.result-count"
    assert event["resource"]["technic-ml.version"] == champion
    assert report.models["duration"].note == "no champion"

    bad = ledger_frame([(10, 8, 12, 30, "model")] * 60, version=champion)
    report = monitor_models(bad, registry, history())
    [event] = report.events()
    assert event["event"] == DEGRADED_EVENT and event["payload"]["coverage"] == 0
    assert any("below the floor" in f for f in event["payload"]["findings"])
    # The payload names the target: the retrain automation retrains that one alone.
    assert event["payload"]["target"] == "count"
    assert event["resource"][RETRAIN_LABEL] == "requested"
    [event] = report.events(suppressed={"count"})  # a retrain of it ran within the cooldown
    assert event["resource"][RETRAIN_LABEL] == "suppressed"
    [event] = report.events(suppressed={"duration"})  # another target's retrain says nothing of it
    assert event["resource"][RETRAIN_LABEL] == "requested"


@pytest.mark.parametrize(
    "parameters, expected",
    [
        ({"params": {"targets": ["count"]}}, ("count",)),
        ({"params": {"targets": ["duration", "count"]}}, ("count", "duration")),
        ({"params": {"skip_non_trading_days": False}}, ("count", "duration")),  # the flow's default
        ({}, ("count", "duration")),
        ({"params": None}, ("count", "duration")),
    ],
)
def test_retrained_targets_reads_a_train_predictors_runs_parameters(parameters, expected):
    assert retrained_targets(parameters) == expected


def test_drift_is_judged_beyond_sampling_noise(registry):
    champion = registry.aliases("result-count")["champion"]
    good = ledger_frame([(10, 8, 12, 10, "model")] * 60, version=champion)
    calm = monitor_models(good, registry, history(shift=0.0)).models["count"]
    assert not calm.drift_findings
    assert {d.column for d in calm.drift} == {"vix_level", "max_symbols"}
    # A market condition is judged on support: a quiet fortnight at one VIX level inside the
    # training range is no drift (its PSI is huge), a regime beyond the range is.
    quiet = monitor_models(good, registry, history(recent_vix=12.0)).models["count"]
    assert next(d for d in quiet.drift if d.column == "vix_level").psi > 2
    assert not quiet.drift_findings
    shifted = monitor_models(good, registry, history(shift=9.0)).models["count"]
    [finding] = shifted.drift_findings
    assert finding.startswith("input vix_level outside its training support:")
    assert "of 200 recent scans beyond the training window's [" in finding and "(limit 50%)" in finding
    # A config input is judged on PSI beyond sampling noise.
    asked = monitor_models(good, registry, history(symbols_shift=400)).models["count"]
    [finding] = asked.drift_findings
    assert finding.startswith("input max_symbols drifted: PSI") and "over 200 recent scans" in finding
    few = monitor_models(good, registry, history(n_recent=50)).models["count"]
    assert not few.drift_findings and {d.level for d in few.drift} == {"too_few"}


def test_a_better_shadowed_challenger_is_promoted_with_its_reason(registry):
    champion = registry.aliases("result-count")["champion"]
    challenger = registry.publish("result-count", {"stand-in": 2}, _manifest()).version
    registry.set_challenger("result-count", challenger, "passed its gates but not better in validation")
    rng = np.random.default_rng(1)
    err = rng.normal(0, 3, 150)
    served = ledger_frame([(10 + e, 10 + e - 5, 10 + e + 5, 10, "model") for e in err], version=champion)
    shadow = ledger_frame(
        [(10 + e / 3, 10 + e / 3 - 5, 10 + e / 3 + 5, 10, "model") for e in err],
        version=challenger,
        role="shadow",
    )
    outcomes = pd.concat([served, shadow])
    report = monitor_models(outcomes, registry, history(), thresholds=Thresholds())
    comparison = report.models["count"].comparison
    assert comparison.promote and report.models["count"].challenger.role == "challenger"
    [event] = promote_challengers(registry, report)
    assert event["event"] == PROMOTED_EVENT and event["payload"]["previous"] == champion
    assert registry.aliases("result-count") == {"champion": challenger, "challenger": None}
    last = [e for e in registry.alias_history("result-count") if e["alias"] == "champion"][-1]
    assert last["reason"].startswith("live: on 150 shared outcomes")
    # a second pass has nothing left to promote
    assert promote_challengers(registry, monitor_models(outcomes, registry, history())) == []

    md = monitor_markdown(report, outcomes)
    assert "| result-count | challenger |" in md and "![result-count realized coverage" in md
    assert "challenger " + challenger + ": promote" in md


def test_an_empty_ledger_gives_a_report_without_verdicts(registry):
    report = monitor_models(
        pd.DataFrame(columns=list(OUTCOME_COLUMNS)), registry, None, at=dt.datetime(2026, 1, 1)
    )
    assert not report.degraded and report.outcomes == 0
    assert report.models["count"].champion.too_few
    assert report.models["count"].note == "no scan history to judge input drift on"
    assert "too few outcomes" in monitor_markdown(report, pd.DataFrame(columns=list(OUTCOME_COLUMNS)))
