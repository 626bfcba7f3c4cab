import datetime as dt
import json
from pathlib import Path

import pytest

from technic_ml.backfill import plan_for_settings, run_chunk
from technic_ml.history import ScanHistoryStore
from technic_ml.jobs import main_backfill_window, sample_scan_log, take_snapshot, write_reports
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
    start, end = main_backfill_window(settings, snapshot)
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
    snapshot = type("S", (), {"conditions": None, "as_of": None})()
    assert main_backfill_window(settings, snapshot) is None
