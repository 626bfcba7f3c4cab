"""Report content: the validation figure, importances, registry tables and the publish decision."""

import base64
import dataclasses
import json

import numpy as np
import pytest

from technic_ml.predictors.features import Dataset
from technic_ml.predictors.registry import ModelRegistry
from technic_ml.predictors.reporting import (
    IMPORTANCE_COLUMNS,
    MAX_SCATTER_POINTS,
    PNG_SIGNATURE,
    alias_history_rows,
    decision_markdown,
    feature_importances,
    image_markdown,
    png_data_uri,
    registry_rows,
    validation_figure_png,
)
from technic_ml.predictors.training import FoldPlan, TrainedTarget, publish_predictors, train_predictors
from technic_ml.predictors.validation import (
    Candidate,
    Gates,
    ModelResult,
    TargetReport,
    rolling_origin_folds,
)
from tests.predictors.synthetic import table

N = 800
FAST = (Candidate("hgb", "seed", {"max_iter": 30}),)
# Small folds (~120 rows) have a few points of sampling error in coverage; the bars are not the point.
LOOSE = Gates(
    count_mae_max=1e9,
    count_r2_min=-1e9,
    duration_mae_max=1e9,
    duration_r2_min=-1e9,
    coverage_tolerance=0.2,
    min_records=300,
)
IMPOSSIBLE = dataclasses.replace(LOOSE, count_mae_max=1e-9, duration_r2_min=0.999999)


def _dataset(n: int = N) -> Dataset:
    # Same seed, same n: both tables share the feature draws, so one matrix serves both targets.
    X, count, ts = table("count", "seed", n=n)
    _, duration, _ = table("duration", "seed", n=n)
    return Dataset(X, count, duration, ts, np.array([f"s{i}" for i in range(n)]))


@pytest.fixture(scope="module")
def data():
    return _dataset()


@pytest.fixture(scope="module")
def run(data):
    return train_predictors(
        data, candidates=FAST, gates=LOOSE, folds=FoldPlan(n_folds=3), data_note="synthetic"
    )


# -- predictions kept by the backtest --------------------------------------------------------------


def test_backtest_keeps_every_holdout_row(run):
    report = run.targets["count"].report
    for result in report.results:
        stacked = result.predictions
        assert stacked.shape == (sum(len(f.test) for f in report.folds), 5)
        assert list(np.unique(stacked[:, 0])) == [f.index for f in report.folds]
        assert np.mean(np.abs(stacked[:, 1] - stacked[:, 2])) == pytest.approx(result.pooled["mae"])
    # The manifest (JSON) and the table still use only the per-fold and pooled numbers.
    assert json.dumps(run.targets["count"].manifest, default=str)
    assert "predictions" not in report.frame().columns
    assert "predictions" not in repr(report.results[0])


# -- figure ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "name"), [("count", None), ("duration", None), ("count", "training mean")]
)
def test_validation_figure_is_a_png(run, target, name):
    png = validation_figure_png(run.targets[target].report, name=name, gates=run.gates)
    assert png.startswith(PNG_SIGNATURE) and len(png) > 5_000


def test_figure_subsamples_large_reports_deterministically(run):
    report = run.targets["duration"].report
    chosen = report.result(report.chosen)
    rng = np.random.default_rng(1)
    n = 3 * MAX_SCATTER_POINTS
    y = rng.uniform(0.01, 1.0, n)
    big = np.column_stack([np.repeat([0, 1, 2], n // 3), y, y * 1.1, y * 0.8, y * 1.3])
    result = ModelResult(chosen.name, "candidate", chosen.per_fold, chosen.pooled, predictions=big)
    large = TargetReport(report.target, report.coverage, report.folds, [result], chosen.name)
    first, second = validation_figure_png(large), validation_figure_png(large)
    assert first.startswith(PNG_SIGNATURE) and first == second


def test_figure_refuses_reports_without_predictions(run, data):
    small = data.subset(np.arange(100))
    too_few = TargetReport(
        "count", 0.9, rolling_origin_folds(small.timestamp), [], None, too_few="100 records"
    )
    with pytest.raises(ValueError, match="too few records: 100 records"):
        validation_figure_png(too_few)
    with pytest.raises(ValueError, match=r"name: received 'nope'; expected one of \['hgb/seed'"):
        validation_figure_png(run.targets["count"].report, name="nope")
    report = run.targets["count"].report
    bare = dataclasses.replace(report, results=[dataclasses.replace(report.results[0], predictions=None)])
    with pytest.raises(ValueError, match="holds no holdout predictions"):
        validation_figure_png(bare)


def test_data_uri_round_trips_and_renders_as_markdown_image(run):
    png = validation_figure_png(run.targets["count"].report)
    uri = png_data_uri(png)
    assert uri.startswith("data:image/png;base64,")
    assert base64.b64decode(uri.split(",", 1)[1]) == png
    assert image_markdown(png, "count [folds]") == f"![count (folds)]({uri})"
    with pytest.raises(ValueError, match="expected PNG bytes"):
        png_data_uri(b"GIF89a")


# -- importances ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "driver", "noise"),
    [("count", "min_tech_rating", "vix_level"), ("duration", "max_symbols", "day_of_week")],
)
def test_importances_rank_a_driving_feature_above_noise(run, data, target, driver, noise):
    trained = run.targets[target]
    frame = feature_importances(trained, data, n_rows=500)
    assert tuple(frame.columns) == IMPORTANCE_COLUMNS
    assert set(frame["feature"]) == set(trained.predictor.features.columns)
    assert list(frame["rank"]) == list(range(1, len(frame) + 1))
    assert frame["importance"].is_monotonic_decreasing
    by_feature = frame.set_index("feature")
    assert by_feature.loc[driver, "importance"] > 0
    assert by_feature.loc[driver, "rank"] < by_feature.loc[noise, "rank"]
    assert by_feature.loc[driver, "importance"] > 10 * abs(by_feature.loc[noise, "importance"])
    assert "part of the final model's training data" in frame.attrs["method"]
    assert "newest 500 rows" in frame.attrs["method"]
    again = feature_importances(trained, data, n_rows=500)
    assert again.equals(frame)


def test_importances_without_a_model_are_empty_and_say_why(run, data):
    trained = run.targets["count"]
    none = TrainedTarget("count", dataclasses.replace(trained.report, too_few="150 records"), None, None)
    frame = feature_importances(none, data)
    assert frame.empty and tuple(frame.columns) == IMPORTANCE_COLUMNS
    assert "no model was fitted" in frame.attrs["method"] and "150 records" in frame.attrs["method"]
    with pytest.raises(ValueError, match="n_rows: received 1"):
        feature_importances(trained, data, n_rows=1)


# -- registry tables ------------------------------------------------------------------------------


def test_registry_rows_show_versions_aliases_and_damage(run, tmp_path, caplog):
    registry = ModelRegistry(tmp_path)
    trained = run.targets["count"]
    first = registry.publish("result-count", trained.predictor, trained.manifest).version
    second = registry.publish("result-count", trained.predictor, trained.manifest).version
    registry.promote("result-count", first, "first")
    registry.promote("result-count", second, "second")

    def aliases():
        return {r["version"]: r["alias"] for r in registry_rows(registry) if r["model"] == "result-count"}

    assert aliases() == {second: "champion", first: ""}
    rows = registry_rows(registry)
    assert [r["version"] for r in rows] == [second, first]  # newest first
    row = rows[0]
    assert row["feature_set"] == "seed" and row["kind"] == "hgb" and row["records"] == N
    assert row["mae"] == trained.manifest["validation"]["pooled"]["mae"]
    assert row["coverage"] is not None and row["problem"] == ""

    registry.rollback("result-count", "second was bad")
    registry.set_challenger("result-count", second, "kept for comparison")
    assert aliases() == {second: "challenger", first: "champion"}

    damaged = registry.publish("result-count", trained.predictor, trained.manifest).version
    (tmp_path / "result-count" / "versions" / damaged / "manifest.json").write_text("{not json")
    with caplog.at_level("WARNING"):
        rows = registry_rows(registry)
    broken = next(r for r in rows if r["version"] == damaged)
    assert broken["problem"].startswith("damaged:") and "not valid JSON" in broken["problem"]
    assert [r["problem"] for r in rows if r["version"] != damaged] == ["", ""]

    history = alias_history_rows(registry)
    assert [(h["alias"], h["action"], h["version"]) for h in history] == [
        ("challenger", "set", second),
        ("champion", "rollback", first),
        ("champion", "promote", second),
        ("champion", "promote", first),
    ]
    assert history[1]["reason"].startswith("second was bad") and all(h["who"] and h["time"] for h in history)


def test_empty_registry_has_no_rows(tmp_path):
    registry = ModelRegistry(tmp_path)
    assert registry_rows(registry) == [] and alias_history_rows(registry) == []


# -- decision -------------------------------------------------------------------------------------


def test_decision_when_gates_pass_names_the_champion(run, tmp_path):
    outcomes = publish_predictors(ModelRegistry(tmp_path), run)
    text = decision_markdown(run, outcomes)
    assert f"**Records**: {N} scans" in text and "**Data**: synthetic." in text
    assert "## count (result-count)" in text and "## duration (duration)" in text
    assert text.count("3 rolling-origin folds") == 2 and "| hgb/seed (chosen) |" in text
    for target in ("count", "duration"):
        assert f"published as **champion** version `{outcomes[target].version}`" in text
    assert "NOT published" not in text


def test_decision_when_gates_fail_says_not_published_and_why(data, tmp_path):
    failing = train_predictors(data, candidates=FAST, gates=IMPOSSIBLE, folds=FoldPlan(n_folds=3))
    outcomes = publish_predictors(ModelRegistry(tmp_path), failing)
    text = decision_markdown(failing, outcomes)
    assert text.count("**NOT published**") == 2
    assert "gates failed: MAE" in text and "is not below 1e-09" in text
    assert "is not above 0.999999" in text
    assert "published as" not in text


def test_decision_without_outcomes_is_validation_only(run):
    text = decision_markdown(run, None)
    assert text.count("validation only (not published)") == 2
