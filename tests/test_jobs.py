import datetime as dt

import pytest

from technic_ml.history import ScanHistoryStore
from technic_ml.jobs import default_as_of, run_main_job, sample_scan_log
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
def test_main_job_on_real_data_backfills_point_in_time(shared_market_dir, tmp_path):
    settings = TechnicSettings(data_root=tmp_path, market_source="parquet", market_dir=shared_market_dir)
    report = run_main_job(settings, as_of="2008-10-10T17:00", backfill_scans=50)
    assert report.is_sample is False
    assert report.backfill.added == 50
    assert report.backfill.data_source.startswith("parquet:")
    assert report.conditions.spy_trend == "bearish"
    assert report.snapshot_file.exists() and tmp_path in report.snapshot_file.parents
    assert report.statistics["count"].tolist() == [50]
    records = ScanHistoryStore(settings.history_path).recent(50)
    assert all(r.provenance.source == "backfill" for r in records)
    assert max(r.provenance.bar_date for r in records) <= dt.date(2008, 10, 10)
