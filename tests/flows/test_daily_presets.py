"""daily-presets: champions -> presets with provenance -> history and artifacts; flagged fallbacks."""

from __future__ import annotations

import pytest

from flows.daily_presets import PresetsParams, daily_presets
from technic_ml.optimizer import STATIC_PRESETS, PresetsHistory
from technic_ml.predictors.registry import ModelRegistry
from tests.flows.conftest import artifacts_of, logs_of, run_id
from tests.support.champions import publish_sample_champions

pytestmark = [pytest.mark.usefixtures("prefect_harness"), pytest.mark.slow]

AS_OF = "2018-12-20T08:30:00-05:00"


@pytest.fixture
def with_champions(with_history, history_template):
    """Both champions published from the sample history (one small candidate, lenient gates)."""
    publish_sample_champions(with_history.data_root, history_template)
    return with_history


def test_presets_are_saved_with_provenance_and_shown(with_champions):
    state = daily_presets(PresetsParams(as_of=AS_OF), return_state=True)
    assert state.is_completed(), state.message
    result = state.result()
    assert result["source"] == "model" and result["saved"] and result["for_session"] == "2018-12-20"
    assert set(result["presets"]) == {"quick", "balanced", "deep"}

    saved = PresetsHistory(with_champions.presets_path).latest()
    registry = ModelRegistry(with_champions.model_registry_path)
    prov = saved["provenance"]
    assert prov["models"]["count"]["version"] == registry.aliases("result-count")["champion"]
    assert prov["models"]["duration"]["version"] == registry.aliases("duration")["champion"]
    assert prov["snapshot_id"] and prov["snapshot_as_of"].startswith("2018-12-20T08:30")
    assert saved["hot_sectors"]["window_days"] == 30

    found = artifacts_of(run_id(state))
    assert {"daily-presets", "daily-presets-table", "hot-sectors", "market-snapshot"} <= set(found)
    assert "# Daily presets for 2018-12-20" in found["daily-presets"].data
    assert prov["models"]["count"]["version"] in found["daily-presets"].data

    # Same inputs again: recognised, nothing appended.
    again = daily_presets(PresetsParams(as_of=AS_OF))
    assert again["presets_id"] == result["presets_id"] and again["saved"] is False
    assert len(PresetsHistory(with_champions.presets_path).history()) == 1


def test_without_champions_the_static_presets_are_saved_flagged_and_warned(with_history):
    state = daily_presets(PresetsParams(as_of=AS_OF), return_state=True)
    assert state.is_completed(), state.message
    result = state.result()
    assert result["source"] == "static" and result["flags"]
    for goal, config in result["presets"].items():
        assert {k: config[k] for k in STATIC_PRESETS[goal]} == STATIC_PRESETS[goal]
    warnings = [log.message for log in logs_of(run_id(state)) if log.level >= 30]
    assert any("static preset" in m for m in warnings), warnings
    assert "FLAGGED" in artifacts_of(run_id(state))["daily-presets"].description


def test_a_misspelt_parameter_is_refused():
    with pytest.raises(ValueError, match="window"):
        PresetsParams.model_validate({"window": 5})
