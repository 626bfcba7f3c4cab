"""Champions fitted once on the embedded sample, served the way the optimizer sees them."""

from __future__ import annotations

import datetime as dt

import pytest

from technic_ml.history import ScanHistoryStore
from technic_ml.market_conditions import snapshot_market
from technic_ml.market_data import open_market_data
from technic_ml.nyse import NY
from technic_ml.panel import Panel
from technic_ml.predictors.estimators import DurationPredictor, ResultCountPredictor
from technic_ml.predictors.serving import Loaded, Predictors
from technic_ml.predictors.training import load_training_data
from technic_ml.predictors.universe import UniverseStats
from technic_ml.settings import TechnicSettings

WHEN = dt.datetime(2018, 12, 20, 8, 30, tzinfo=NY)


@pytest.fixture(scope="session")
def market(tmp_path_factory):
    return open_market_data(TechnicSettings(data_root=tmp_path_factory.mktemp("optimizer-root")))


@pytest.fixture(scope="session")
def fitted(history_template, market):
    """(count, duration) predictors fitted on the 1,200 sample scans (a few seconds, once)."""
    data, _ = load_training_data(ScanHistoryStore(history_template), market)
    count = ResultCountPredictor(max_iter=80).fit(
        data.X(ResultCountPredictor().features), data.y("count"), timestamps=data.timestamp
    )
    duration = DurationPredictor(max_iter=80).fit(
        data.X(DurationPredictor().features), data.y("duration"), timestamps=data.timestamp
    )
    return count, duration


@pytest.fixture(scope="session")
def universe(market):
    return UniverseStats(Panel.from_market(market, WHEN, start=dt.date(2016, 6, 1)))


@pytest.fixture(scope="session")
def conditions(market):
    return snapshot_market(market, WHEN)


@pytest.fixture(scope="session")
def predictors(fitted, universe) -> Predictors:
    count, duration = fitted
    return Predictors(
        Loaded(count, {"version": "count-test"}), Loaded(duration, {"version": "duration-test"}), universe
    )
