"""The deployments: names, schedules (America/New_York), parameters, and prefect.yaml in step."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from deployments.serve import deployments

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def served() -> dict:
    return {d.name: d for d in deployments()}


def _crons(deployment) -> list[tuple[str, str]]:
    return [(s.schedule.cron, s.schedule.timezone) for s in deployment.schedules]


def test_every_flow_is_deployed_under_its_own_name(served):
    assert set(served) == {
        "market-snapshot",
        "collect-history",
        "train-predictors",
        "daily-presets",
        "backfill-history",
        "model-monitor",
    }
    for name, deployment in served.items():
        assert deployment.flow_name == name


def test_schedules_are_new_york_trading_hours_hourly_nightly_and_ad_hoc(served):
    ny = "America/New_York"
    assert _crons(served["market-snapshot"]) == [
        ("30 9 * * 1-5", ny),
        ("0,30 10-15 * * 1-5", ny),
        ("0 16 * * 1-5", ny),
    ]
    assert _crons(served["collect-history"]) == [("5 * * * *", ny)]
    assert _crons(served["train-predictors"]) == [("30 17 * * 1-5", ny)]
    assert _crons(served["daily-presets"]) == [("30 8 * * 1-5", ny)]  # weekdays, before the open
    assert _crons(served["model-monitor"]) == [("45 9-15 * * 1-5", ny), ("30 16 * * 1-5", ny)]
    assert served["backfill-history"].schedules in (None, [])
    # One run at a time per deployment (an overlapping run waits).
    assert all(d.concurrency_limit == 1 for d in served.values())


def test_the_snapshot_schedule_covers_the_trading_day_every_30_minutes():
    """Prefect's own schedule arithmetic (the server's), over one New York Tuesday."""
    import asyncio
    import datetime as dt
    from zoneinfo import ZoneInfo

    from prefect.server.schemas.schedules import CronSchedule

    from deployments.serve import SNAPSHOT_SCHEDULES

    ny = ZoneInfo("America/New_York")
    start, end = dt.datetime(2026, 12, 1, tzinfo=ny), dt.datetime(2026, 12, 2, tzinfo=ny)
    fired = set()
    for cron in SNAPSHOT_SCHEDULES:
        dates = asyncio.run(
            CronSchedule(cron=cron.cron, timezone=cron.timezone).get_dates(n=100, start=start, end=end)
        )
        fired |= {d.strftime("%H:%M") for d in dates}
    expected = {f"{h:02d}:{m:02d}" for h in range(9, 17) for m in (0, 30)} - {"09:00", "16:30"}
    assert fired == expected  # 09:30, 10:00, ..., 15:30, 16:00: 14 snapshots a day


def test_prefect_yaml_describes_the_same_deployments(served):
    spec = yaml.safe_load((REPO / "prefect.yaml").read_text())
    by_name = {d["name"]: d for d in spec["deployments"]}
    assert set(by_name) == set(served)
    for name, d in by_name.items():
        module, func = d["entrypoint"].split(":")
        assert Path(REPO / module).exists()
        assert served[name].entrypoint.endswith(f"{Path(module).name}:{func}")
        assert [(s["cron"], s["timezone"]) for s in d.get("schedules", [])] == _crons(served[name])
        assert (d.get("parameters") or {}) == (served[name].parameters or {})
        assert d["concurrency_limit"] == served[name].concurrency_limit


def test_the_cli_can_trigger_every_served_deployment(served):
    from deployments.cli import FLOWS

    assert set(FLOWS) == set(served)
