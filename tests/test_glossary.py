"""docs/glossary.md's checked names: one name per thing across the layers (issue 18)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CODE = [
    p
    for folder in ("technic_ml", "tasks", "flows", "deployments", "tests", "bench")
    for p in sorted((REPO / folder).rglob("*.py"))
    if p.name != "test_glossary.py"
]


def _uses(word: str) -> list[str]:
    pattern = re.compile(rf"\b{word}\b")
    return [
        f"{p.relative_to(REPO)}:{n}"
        for p in CODE
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if pattern.search(line)
    ]


def test_retired_names_are_gone():
    # ScanResult (next to contracts.ScanResults) is now CompletedScan; the loaded pair of
    # champions is "predictors", so the step that loads them is load_predictors.
    assert _uses("ScanResult") == []
    assert _uses("load_champions") == []


def test_the_session_clock_lives_with_the_calendar():
    from technic_ml import market_conditions, nyse

    assert nyse.SessionClock.__module__ == "technic_ml.nyse"
    assert not hasattr(market_conditions, "SessionClock")


def test_the_names_the_glossary_states():
    from technic_ml.contracts import MARKET_SIGNALS, MarketConditions
    from technic_ml.monitor.drift import MARKET_INPUTS
    from technic_ml.predictors.features import TARGETS
    from technic_ml.predictors.registry import MODEL_NAMES

    assert set(TARGETS) == set(MODEL_NAMES) == {"count", "duration"}
    assert MODEL_NAMES == {"count": "result-count", "duration": "duration"}
    assert set(MARKET_SIGNALS) <= set(MarketConditions.model_fields) and MARKET_INPUTS == MARKET_SIGNALS
    glossary = (REPO / "docs" / "glossary.md").read_text()
    for name in ("CompletedScan", "MARKET_SIGNALS", "MODEL_NAMES", "load_predictors", "plan_training"):
        assert name in glossary
