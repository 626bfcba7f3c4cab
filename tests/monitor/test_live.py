"""Live figures on hand-checked ledgers: coverage against the size-aware floor, MAE, q-error,
abstention, and no verdict on too few outcomes."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from technic_ml.monitor.live import Thresholds, coverage_series, live_performance, q_errors
from technic_ml.predictors.validation import Gates

MANIFEST = {"coverage": 0.9, "validation": {"pooled": {"mae": 2.0}, "gates": {"coverage_tolerance": 0.03}}}


def ledger_frame(rows, target="count", version="v1", role="served") -> pd.DataFrame:
    """rows: (value, lower, upper, actual or None, state)."""
    out = []
    for i, (value, lower, upper, actual, state) in enumerate(rows):
        out.append(
            {
                "prediction_id": f"p{i:04d}",
                "scan_id": None,
                "created_at": f"2026-01-01T10:{i // 60:02d}:{i % 60:02d}",
                "reported_at": None if actual is None else f"2026-01-02T10:{i // 60:02d}:{i % 60:02d}",
                "config": "{}",
                "target": target,
                "role": role,
                "version": version,
                "state": state,
                "value": value,
                "lower": lower,
                "upper": upper,
                "actual": math.nan if actual is None else actual,
            }
        )
    return pd.DataFrame(out)


@pytest.mark.parametrize(
    ("predicted", "actual", "target", "expected"),
    [
        (9, 4, "count", 2.0),  # (9+1)/(4+1)
        (0, 0, "count", 1.0),  # an empty scan predicted empty is perfect, not 0/0
        (2.0, 8.0, "duration", 4.0),
        (0.0, 1.0, "duration", 1000.0),  # floored at a millisecond, finite
    ],
)
def test_q_error(predicted, actual, target, expected):
    assert q_errors(np.array([predicted]), np.array([actual]), target)[0] == pytest.approx(expected)


def test_a_calibrated_model_is_healthy_with_hand_checked_figures():
    # 60 outcomes: 54 inside [8, 12] (actual 10, error 0), 6 outside (actual 20, error 10).
    rows = [(10, 8, 12, 10, "model")] * 54 + [(10, 8, 12, 20, "model")] * 6
    perf = live_performance(ledger_frame(rows), "count", "v1", MANIFEST)
    assert perf.n_outcomes == 60 and perf.coverage == pytest.approx(0.9)
    assert perf.mae == pytest.approx(1.0) and perf.q_error == pytest.approx(1.0)
    assert perf.coverage_floor == pytest.approx(Gates().coverage_floor(0.9, 60))
    assert perf.abstain_share == 0 and not perf.degraded and not perf.too_few


def test_coverage_below_the_floor_and_mae_above_its_ratio_are_findings():
    rows = [(10, 8, 12, 10, "model")] * 40 + [(10, 8, 12, 20, "model")] * 20  # 66.7 %, MAE 3.33
    perf = live_performance(ledger_frame(rows), "count", "v1", MANIFEST)
    assert perf.degraded and len(perf.findings) == 2
    assert "coverage 66.7% on its last 60 outcomes is below the floor" in perf.findings[0]
    assert "1.67x the validated 2" in perf.findings[1]


def test_too_few_outcomes_are_reported_never_judged():
    rows = [(10, 8, 12, 30, "model")] * 10
    perf = live_performance(ledger_frame(rows), "count", "v1", MANIFEST)
    assert perf.too_few and perf.coverage == 0 and not perf.degraded


def test_the_window_is_the_last_outcomes_and_abstentions_count_without_outcomes():
    # 100 old misses, then 60 recent hits: a window of 60 sees only the hits.
    rows = [(10, 8, 12, 30, "model")] * 100 + [(10, 8, 12, 10, "model")] * 60
    perf = live_performance(ledger_frame(rows), "count", "v1", MANIFEST, thresholds=Thresholds(window=60))
    assert perf.coverage == 1.0 and not perf.degraded
    abstaining = [(None, None, None, None, "abstain")] * 30 + [(10, 8, 12, None, "model")] * 30
    perf = live_performance(ledger_frame(abstaining), "count", "v1", MANIFEST)
    assert perf.abstain_share == 0.5 and perf.n_outcomes == 0
    assert perf.findings == ("abstained on 50.0% of its last 60 predictions (limit 25%)",)


def test_other_versions_and_targets_are_not_mixed_in():
    frame = pd.concat(
        [
            ledger_frame([(10, 8, 12, 10, "model")] * 60),
            ledger_frame([(10, 8, 12, 99, "model")] * 60, version="v2"),
            ledger_frame([(10, 8, 12, 99, "model")] * 60, target="duration"),
        ]
    )
    assert live_performance(frame, "count", "v1", MANIFEST).coverage == 1.0


def test_coverage_series_is_a_rolling_window():
    rows = [(10, 8, 12, 10, "model")] * 3 + [(10, 8, 12, 30, "model")] * 3
    series = coverage_series(ledger_frame(rows), "count", "v1", window=3)
    assert list(series["coverage"].round(3)) == [1, 1, 1, 0.667, 0.333, 0]
    assert list(series["n"]) == [1, 2, 3, 3, 3, 3]


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [("window", 0, "window: received 0"), ("psi_max", -1, "psi_max: received -1"),
     ("min_outcomes", 500, "expected at most window")],
)  # fmt: skip
def test_thresholds_name_the_bad_value(field, value, expected):
    with pytest.raises(ValueError, match=expected):
        Thresholds(**{field: value})
