"""The main job's steps without Prefect: snapshot, backfill window, backfill, reports."""

import datetime as dt
import json
from pathlib import Path

import pytest

from technic_ml.backfill import main_backfill_window, plan_for_settings, run_chunk
from technic_ml.history import ScanHistoryStore, sample_scan_log
from technic_ml.jobs.market import take_snapshot
from technic_ml.jobs.reports import write_reports
from technic_ml.market_conditions import default_as_of
from technic_ml.market_data import ParquetMarketData
from technic_ml.nyse import NY
from technic_ml.settings import TechnicSettings


def test_bundled_sample_log_ships_with_the_package():
    lines = [line for line in sample_scan_log().read_text().splitlines() if line.strip()]
    assert len(lines) == 150


def test_default_as_of_is_the_last_close_of_a_historical_dataset(shared_market_dir):
    when, reason = default_as_of(ParquetMarketData(shared_market_dir))
    assert when == dt.datetime(2019, 12, 31, 16, 0, tzinfo=NY)
    assert "2019-12-31" in reason


@pytest.mark.slow
def test_main_job_steps_on_real_data_are_point_in_time(shared_market_dir, tmp_path):
    settings = TechnicSettings(data_root=tmp_path, market_source="parquet", market_dir=shared_market_dir)
    snapshot = take_snapshot(settings, "2008-10-10T17:00")
    assert snapshot.is_sample is False and snapshot.market_source.startswith("parquet:")
    assert snapshot.conditions.spy_trend == "bearish"
    assert snapshot.path.exists() and tmp_path in snapshot.path.parents
    assert snapshot.last_bar == dt.date(2008, 10, 10)
    summary = snapshot.to_dict()
    assert summary["as_of_reason"] == "given" and summary["snapshot_file"] == str(snapshot.path)
    assert summary["market_conditions"]["spy_trend"] == "bearish" and summary["sample_data"] is False
    start, end = main_backfill_window(settings, snapshot.last_bar)
    assert end == dt.date(2008, 10, 10) and start == end - dt.timedelta(days=365 * 5)
    plan = plan_for_settings(settings, start, end, 50, 0)
    assert len(plan) == 50 and max(p.as_of for p in plan).date() <= dt.date(2008, 10, 10)
    summary = run_chunk(settings, plan)
    assert summary.added == 50 and summary.data_source.startswith("parquet:")
    records = ScanHistoryStore(settings.history_path).recent(50)
    assert all(r.provenance.source == "backfill" for r in records)
    assert max(r.provenance.bar_date for r in records) <= dt.date(2008, 10, 10)
    document = write_reports(settings, {"note": "test"})
    assert document == json.loads(Path(document["outputs"]["summary"]).read_text())
    assert document["history_records"] == 50 and document["note"] == "test"
    assert document["statistics"]["count"] == 50


def test_a_live_source_is_not_backfilled(tmp_path):
    settings = TechnicSettings(data_root=tmp_path, market_source="yfinance")
    assert main_backfill_window(settings, dt.date(2026, 12, 3)) is None
    offline = TechnicSettings(data_root=tmp_path, market_source="sample")
    window = main_backfill_window(offline, dt.date(2026, 12, 3), years=2)
    assert window == (dt.date(2024, 12, 3), dt.date(2026, 12, 3))
