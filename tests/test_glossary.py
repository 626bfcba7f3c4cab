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


def test_every_library_path_the_glossary_names_exists():
    """A dotted name in backticks whose first part is a library module (``jobs.market.take_snapshot``,
    ``predictors.training.plan_training``) must resolve: a rename that misses the glossary fails."""
    import importlib

    import technic_ml

    units = {p.stem if p.is_file() else p.name for p in (REPO / "technic_ml").iterdir()}
    glossary = (REPO / "docs" / "glossary.md").read_text()
    named = sorted(
        {
            path
            for path in re.findall(r"`([a-z_]+(?:\.[A-Za-z_]+)+)`", glossary)
            if path.split(".")[0] in units
        }
    )
    assert len(named) > 15, named  # the glossary's paths are really read
    unresolved = []
    for path in named:
        parts, obj = path.split("."), technic_ml
        if parts[0] == "settings":  # settings.ledger_path: a field or property of the settings object
            from technic_ml.settings import TechnicSettings

            ok = parts[1] in TechnicSettings.model_fields or hasattr(TechnicSettings, parts[1])
            unresolved += [] if ok else [path]
            continue
        for i, part in enumerate(parts):
            try:
                obj = (
                    getattr(obj, part)
                    if hasattr(obj, part)
                    else importlib.import_module("technic_ml." + ".".join(parts[: i + 1]))
                )
            except ImportError:
                unresolved.append(path)
                break
    assert unresolved == []
