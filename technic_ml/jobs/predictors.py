"""The training data as a pipeline step (flow ``train-predictors`` through ``tasks/predictors.py``):
the configured scan history and market data, joined point in time."""

from __future__ import annotations

from technic_ml import stores
from technic_ml.market_data import open_market_data
from technic_ml.predictors.features import Dataset
from technic_ml.predictors.training import load_training_data
from technic_ml.settings import TechnicSettings


def training_data(settings: TechnicSettings) -> tuple[Dataset, str]:
    """(dataset, note): the scan history joined with point-in-time features from the market data."""
    return load_training_data(stores.history_store(settings), open_market_data(settings))
