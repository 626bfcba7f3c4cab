"""Rolling-origin folds, gates, the leakage guard and model selection."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from technic_ml.nyse import NY
from technic_ml.predictors.features import Dataset
from technic_ml.predictors.validation import (
    Candidate,
    Gates,
    ModelResult,
    gate_failures,
    markdown,
    rolling_origin_folds,
    validate_target,
    versus_champion,
)
from tests.predictors.synthetic import table


def _times(n):
    return pd.Series(pd.date_range("2017-01-02", periods=n, freq="D", tz=NY))


def test_folds_train_on_the_past_and_test_on_the_next_period():
    ts = _times(1000)
    folds = rolling_origin_folds(ts, n_folds=4, test_share=0.4)
    assert len(folds) == 4
    for fold in folds:
        assert ts.iloc[fold.train].max() < ts.iloc[fold.test].min()
        assert len(fold.train) > 0 and len(fold.test) > 0
    # consecutive, non-overlapping test windows; each training window grows
    tests = np.concatenate([f.test for f in folds])
    assert len(np.unique(tests)) == len(tests) == 400
    assert [len(f.train) for f in folds] == sorted(len(f.train) for f in folds)


def test_folds_over_an_explicit_test_period():
    ts = _times(2000)
    folds = rolling_origin_folds(
        ts,
        n_folds=2,
        test_start=dt.datetime(2019, 1, 1, tzinfo=NY),
        test_end=dt.datetime(2020, 1, 1, tzinfo=NY),
    )
    assert folds[0].test_start == dt.datetime(2019, 1, 1, tzinfo=NY)
    assert all(ts.iloc[f.test].dt.year.eq(2019).all() for f in folds)
    assert (ts.iloc[folds[0].train] < pd.Timestamp("2019-01-01", tz=NY)).all()


def test_folds_refuse_shuffled_times():
    with pytest.raises(ValueError, match="out of time order"):
        rolling_origin_folds(_times(10).sample(frac=1, random_state=0))


def _result(mae, r2, coverages, train_maes, n=5000):
    per_fold = [
        {"mae": mae, "r2": r2, "coverage": c, "train_mae": t, "n": n}
        for c, t in zip(coverages, train_maes, strict=True)
    ]
    return ModelResult("m", "candidate", per_fold, {"mae": mae, "r2": r2})


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        (_result(5.0, 0.9, [0.9, 0.88], [4.0, 4.0]), []),
        (_result(12.0, 0.9, [0.9, 0.9], [10.0, 10.0]), ["MAE 12 is not below 10"]),
        (_result(5.0, 0.5, [0.9, 0.9], [4.0, 4.0]), ["R² 0.500 is not above 0.6"]),
        (_result(5.0, 0.9, [0.9, 0.86], [4.0, 4.0]), ["fold 2: coverage 86.0% is below 87.0%"]),
        (_result(1.0, 0.9, [0.9, 0.9], [1.0, 3.0]), ["fold 2: leakage guard"]),
    ],
)
def test_count_gates(result, expected):
    failures = gate_failures(result, "count", 0.9, Gates())
    assert len(failures) == len(expected)
    for failure, prefix in zip(failures, expected, strict=True):
        assert failure.startswith(prefix)


@pytest.mark.parametrize(
    ("n", "coverage", "passes"),
    [
        (5000, 0.871, True),  # large folds: the fixed 3-point tolerance
        (5000, 0.869, False),
        (300, 0.861, True),  # 2.33 standard errors of 300 rows: 4.0 points
        (300, 0.859, False),
        (50, 0.802, True),  # 9.9 points
        (50, 0.79, False),
    ],
)
def test_the_coverage_floor_widens_on_small_folds(n, coverage, passes):
    # A calibrated 90 % interval on 300 rows lands below 87 % about 4 % of the time.
    failures = gate_failures(_result(5.0, 0.9, [coverage], [4.0], n=n), "count", 0.9, Gates())
    assert (not failures) is passes, failures
    assert Gates(coverage_z=0).coverage_floor(0.9, 300) == pytest.approx(0.87)


def test_champion_comparison_uses_the_same_folds_metric():
    gates = Gates()
    better, worse = _result(4.0, 0.9, [0.9], [3.0]), _result(6.0, 0.9, [0.9], [3.0])
    assert versus_champion(better, worse, gates) is None
    assert "worse than the champion's 4" in versus_champion(worse, better, gates)
    assert versus_champion(worse, None, gates) is None


def _dataset(target, n=1600):
    X, y, ts = table(target, "seed", n=n)
    count = y if target == "count" else np.zeros(n)
    duration = y if target == "duration" else np.full(n, 0.01)
    return Dataset(X, count, duration, ts, np.array([f"s{i}" for i in range(n)]))


def test_validation_picks_a_passing_candidate_and_reports_baselines():
    data = _dataset("count")
    folds = rolling_origin_folds(data.timestamp, n_folds=3)
    candidates = (Candidate("rf", "seed"), Candidate("hgb", "seed", {"max_iter": 60}))
    report = validate_target(data, "count", candidates=candidates, folds=folds)
    names = [r.name for r in report.results]
    assert names == ["rf/seed", "hgb/seed", "training mean"]
    assert report.chosen in ("rf/seed", "hgb/seed")
    chosen = report.result(report.chosen)
    mean = report.result("training mean")
    assert chosen.pooled["mae"] < mean.pooled["mae"]
    assert len(chosen.per_fold) == 3 and all("coverage" in m for m in chosen.per_fold)
    frame = report.frame()
    assert set(frame["fold"]) == {f.label for f in folds} | {"all"}
    text = markdown(report, Gates())
    assert "(chosen)" in text and "training mean" in text


def test_enriched_candidates_are_skipped_without_market_data():
    data = _dataset("duration")
    folds = rolling_origin_folds(data.timestamp, n_folds=2)
    report = validate_target(
        data,
        "duration",
        candidates=(Candidate("hgb", "enriched"), Candidate("hgb", "seed", {"max_iter": 40})),
        folds=folds,
    )
    assert [r.name for r in report.results] == ["hgb/seed", "training mean", "seed heuristic"]


def test_too_few_records_are_flagged_and_nothing_is_chosen():
    data = _dataset("count", n=150)
    folds = rolling_origin_folds(data.timestamp, n_folds=3)
    report = validate_target(data, "count", folds=folds)
    assert report.too_few.startswith("150 records; at least 500")
    assert not report.publishable and report.chosen is None
    assert "Too few records to validate" in markdown(report, Gates())


def test_champion_with_a_candidates_spec_reuses_its_numbers():
    data = _dataset("count")
    folds = rolling_origin_folds(data.timestamp, n_folds=2)
    spec = Candidate("hgb", "seed", {"max_iter": 60})
    report = validate_target(data, "count", candidates=(spec,), folds=folds, champion=spec)
    champion = next(r for r in report.results if r.kind == "champion")
    assert champion.pooled == report.result("hgb/seed").pooled
    assert report.result("hgb/seed").vs_champion is None
