"""suggest, analyze and presets history from the command line, on champions built from the sample."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from technic_ml.cli import app
from tests.support.champions import publish_sample_champions

runner = CliRunner()
AS_OF = "2018-12-20T08:30"


def invoke(root, *args):
    return runner.invoke(
        app, ["--data-root", str(root), *args], env={"COLUMNS": "250"}, catch_exceptions=False
    )


@pytest.fixture(scope="module")
def root(tmp_path_factory, history_template):
    root = tmp_path_factory.mktemp("cli-optimizer")
    publish_sample_champions(root, history_template)
    return root


def test_suggest_prints_every_goal_with_its_reasoning(root):
    result = invoke(root, "suggest", "--as-of", AS_OF)
    assert result.exit_code == 0, result.output
    for goal in ("quick", "balanced", "deep"):
        assert f"Goal {goal}:" in result.output
    data = json.loads(invoke(root, "suggest", "--goal", "quick", "--as-of", AS_OF, "--json").output)
    quick = data["suggestions"]["quick"]
    assert quick["source"] == "model" and quick["count"]["state"] == "model" and quick["count"]["version"]


def test_suggest_respects_constraints_and_refuses_unknown_goals(root):
    data = json.loads(
        invoke(
            root,
            "suggest",
            "--goal",
            "deep",
            "--as-of",
            AS_OF,
            "--max-symbols-max",
            "80",
            "--lookback-days",
            "60",
            "--json",
        ).output
    )
    config = data["suggestions"]["deep"]["config"]
    assert config["max_symbols"] <= 80 and config["lookback_days"] == 60
    bad = invoke(root, "suggest", "--goal", "fastest")
    assert bad.exit_code == 2 and "--goal: received 'fastest'" in bad.stderr


def test_analyze_labels_a_likely_empty_scan_and_fixes_it(root):
    args = [
        "analyze",
        "--max-symbols",
        "25",
        "--min-tech-rating",
        "90",
        "--min-dollar-vol",
        "5e7",
        "--lookback-days",
        "20",
        "--as-of",
        AS_OF,
    ]
    result = invoke(root, *args)
    assert result.exit_code == 0, result.output
    assert "empty" in result.output and "fix: lower min_tech_rating to" in result.output
    data = json.loads(invoke(root, *args, "--json").output)
    assert data["risks"] and data["fixes"][0]["change"].keys() == {"min_tech_rating"}


def test_presets_history_lists_what_was_saved(root):
    from technic_ml.optimizer import PresetsHistory
    from technic_ml.settings import TechnicSettings

    assert "no presets saved yet" in invoke(root, "presets", "history").output
    history = PresetsHistory(TechnicSettings(data_root=root).presets_path)
    document = {
        "schema_version": 1,
        "presets_id": "abc123",
        "for_session": "2018-12-20",
        "generated_at": "2018-12-20T08:30:05-05:00",
        "source": "model",
        "flags": [],
        "provenance": {"snapshot_id": "snap-1", "models": {"count": {"version": "v-count"}}},
        "presets": {
            "quick": {
                "config": {
                    "max_symbols": 50,
                    "min_tech_rating": 45.0,
                    "min_dollar_vol": 5e6,
                    "lookback_days": 30,
                }
            }
        },
    }
    history.save(document)
    result = invoke(root, "presets", "history")
    assert result.exit_code == 0, result.output
    assert "2018-12-20" in result.output and "50/45/" in result.output and "v-count" in result.output
    assert json.loads(invoke(root, "presets", "history", "--json").output)[0]["presets_id"] == "abc123"
