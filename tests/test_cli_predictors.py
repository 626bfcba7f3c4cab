"""The predictor commands end to end on the embedded sample: backfill, train, list, predict, rollback."""

import json

import pytest
from typer.testing import CliRunner

from technic_ml.cli import app
from technic_ml.history.jsonl import sample_scan_log

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, list(args), env={"COLUMNS": "250"}, catch_exceptions=False)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-predictors")
    result = invoke(
        "--data-root",
        str(root),
        "backfill",
        "--start",
        "2015-01-01",
        "--end",
        "2018-12-31",
        "--n-scans",
        "1500",
        "--seed",
        "3",
    )
    assert result.exit_code == 0, result.output
    return root


@pytest.mark.slow
@pytest.mark.timeout(600)  # trains twice: minutes on a busy 2-core runner
def test_train_list_predict_promote_rollback(data_root):
    root = str(data_root)
    first = invoke("--data-root", root, "train", "--folds", "2")
    assert first.exit_code in (0, 3), first.output
    assert "### count: stated coverage 90%" in first.output and "training mean" in first.output
    assert "count: published" in first.output
    again = invoke("--data-root", root, "train", "--folds", "2")
    assert "count: kept" in again.output and "unchanged" in again.output

    listed = invoke("--data-root", root, "models", "list")
    assert listed.exit_code == 0 and "result-count" in listed.output and "champion" in listed.output

    predicted = invoke(
        "--data-root",
        root,
        "predict",
        "--max-symbols",
        "120",
        "--min-tech-rating",
        "50",
        "--as-of",
        "2018-12-27T11:00",
        "--json",
    )
    assert predicted.exit_code == 0, predicted.output
    body = json.loads(predicted.stdout)
    assert body["count"]["state"] == "model" and body["count"]["lower"] <= body["count"]["upper"]
    assert body["count"]["coverage"] == 0.9 and 0 <= body["count"]["p_empty"] <= 1
    assert body["duration"]["state"] in ("model", "heuristic")

    shown = invoke("--data-root", root, "models", "show", "result-count")
    assert shown.exit_code == 0 and '"model_sha256"' in shown.output and "promote" in shown.output

    refused = invoke("--data-root", root, "models", "rollback", "result-count")
    assert refused.exit_code == 1 and "only one champion so far" in refused.output
    validated = invoke("--data-root", root, "validate", "--folds", "2")
    assert validated.exit_code == 0 and "(chosen)" in validated.output


def test_train_on_the_original_150_records_is_flagged_and_publishes_nothing(tmp_path):
    root = str(tmp_path)
    assert invoke("--data-root", root, "history", "import", str(sample_scan_log())).exit_code == 0
    result = invoke("--data-root", root, "train")
    assert result.exit_code == 3
    assert "Too few records to validate" in result.output
    assert "NOT published: too few records to validate: 150 records" in result.output
    assert "no champion" not in invoke("--data-root", root, "models", "list").output
    predicted = invoke("--data-root", root, "predict", "--json")
    body = json.loads(predicted.stdout)
    assert body["count"]["state"] == "abstain" and body["count"]["value"] is None
    assert body["duration"]["state"] == "heuristic"


def test_unknown_model_name_is_one_clear_line(tmp_path):
    result = invoke("--data-root", str(tmp_path), "models", "rollback", "nope")
    assert result.exit_code == 1
    assert "model: received 'nope'; expected one of ['duration', 'result-count']" in result.output
