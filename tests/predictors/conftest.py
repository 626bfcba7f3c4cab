"""A real (embedded-sample) scan history shared by the feature and training tests."""

from __future__ import annotations

import datetime as dt

import pytest

from technic_ml.backfill import plan_backfill, run_plan
from technic_ml.history import ScanHistoryStore
from technic_ml.market_data import open_market_data
from technic_ml.settings import TechnicSettings


@pytest.fixture(scope="session")
def sample_market(tmp_path_factory):
    return open_market_data(TechnicSettings(data_root=tmp_path_factory.mktemp("sample-root")))


@pytest.fixture(scope="session")
def sample_history(sample_market, tmp_path_factory):
    """1,500 backfilled scans on the sample, 2014-2018 (about 5 s to build, once per session)."""
    store = ScanHistoryStore(tmp_path_factory.mktemp("sample-history") / "history")
    plan = plan_backfill(dt.date(2014, 1, 1), dt.date(2018, 12, 31), 1500, 11, sample_market.universe())
    run_plan(plan, sample_market, store)
    return store
