"""A short replay on the embedded sample through the real flows and the API code: every policy's
ledger gets each scan's prediction and outcome, nightly retrains every session, frozen never."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from deployments.replay import run_replay
from technic_ml.predictors.validation import Gates
from technic_ml.replay import markdown

pytestmark = [pytest.mark.usefixtures("prefect_harness"), pytest.mark.slow]

LENIENT = Gates(count_mae_max=1e9, count_r2_min=-1e9, duration_mae_max=1e9, duration_r2_min=-1e9,
                coverage_tolerance=0.5)  # fmt: skip


def test_a_short_replay_through_the_flows(tmp_path, settings, monkeypatch):
    lines = []
    result = run_replay(
        dt.date(2018, 12, 3), dt.date(2018, 12, 4), tmp_path / "replay", initial_scans=600, per_day=15,
        candidates=("hgb/seed",), timing_runs=1, gates=LENIENT, cooldown_days=1, log=lines.append,
    )  # fmt: skip
    assert result.days == 2 and result.scans == 30
    assert [d for d, _ in result.retrains["nightly"]] == [dt.date(2018, 12, 3), dt.date(2018, 12, 4)]
    assert result.retrains["frozen"] == []
    for policy, frame in result.outcomes.items():
        served = frame[(frame["role"] == "served") & (frame["target"] == "count")]
        assert served["scan_id"].nunique() == 30, policy
        assert served["actual"].notna().all(), policy  # every outcome reported by scan_id
        durations = frame[(frame["role"] == "served") & (frame["target"] == "duration")]
        assert durations["actual"].notna().all() and (durations["actual"] > 0).all(), policy
    table = result.table("count")
    assert set(table["policy"]) == {"frozen", "nightly", "monitor"}
    assert table["outcomes"].sum() + _abstained(result) == 3 * 30
    # What a stopped replay leaves on disk is the same table.
    out = tmp_path / "replay"
    assert (out / "table-count.md").read_text() == markdown(table)
    assert json.loads((out / "retrains.json").read_text())["nightly"][0][0] == "2018-12-03"
    assert not list(out.glob("*.part"))
    from deployments.replay import stopped_tables

    assert stopped_tables(out)["count"] == markdown(table)  # what a stopped replay's tables are rebuilt from
    with pytest.raises(ValueError, match="not empty"):
        run_replay(dt.date(2018, 12, 3), dt.date(2018, 12, 4), tmp_path / "replay")


def _abstained(result) -> int:
    return sum(
        int(((f["role"] == "served") & (f["target"] == "count") & (f["state"] != "model")).sum())
        for f in result.outcomes.values()
    )
