"""Small synthetic feature tables for estimator and validation tests (no market data needed)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from technic_ml.nyse import NY
from technic_ml.predictors.features import feature_set


def table(
    target: str, name: str = "seed", n: int = 1500, seed: int = 0
) -> tuple[pd.DataFrame, np.ndarray, pd.Series]:
    """(X, y, timestamps): a count or duration that depends on the config like a real scan does."""
    rng = np.random.default_rng(seed)
    fs = feature_set(name, target)
    X = pd.DataFrame(
        {
            "max_symbols": np.exp(rng.uniform(np.log(10), np.log(500), n)).round(),
            "min_tech_rating": rng.integers(0, 91, n).astype(float),
            "min_dollar_vol": rng.uniform(0, 50, n),
            "num_sectors": rng.integers(0, 4, n).astype(float),
            "num_industries": rng.integers(0, 3, n).astype(float),
            "lookback_days": rng.choice([20, 60, 120, 250], n).astype(float),
            "trend_encoded": rng.choice([-1.0, 0.0, 1.0], n),
            "volatility": rng.uniform(0.05, 0.5, n),
            "momentum": rng.uniform(-1, 1, n),
            "return_5d": rng.normal(0, 0.02, n),
            "return_20d": rng.normal(0, 0.05, n),
            "vix_level": rng.uniform(10, 40, n),
            "time_of_day": rng.integers(7, 20, n).astype(float),
            "day_of_week": rng.integers(0, 5, n).astype(float),
            "is_market_hours": rng.integers(0, 2, n).astype(float),
        }
    )
    share = np.clip(1 - X["min_tech_rating"] / 90, 0, 1) ** 2
    expected = X["max_symbols"] * share * (1 + 0.3 * X["trend_encoded"])
    X["n_universe"] = X["max_symbols"]
    X["n_rated"] = X["max_symbols"]
    X["prev_count"] = np.round(expected)
    X["prev_share"] = share
    X["n_near"] = np.round(X["max_symbols"] * 0.1)
    X["work"] = X["n_rated"] * X["lookback_days"]
    X["data_source"] = 1.0
    if target == "count":
        y = rng.poisson(expected).astype(float)
    else:
        y = (0.001 + 2e-7 * X["work"].to_numpy()) * np.exp(rng.normal(0, 0.1, n))
    timestamps = pd.Series(pd.date_range("2015-01-02 10:00", periods=n, freq="4h", tz=NY))
    return X.loc[:, list(fs.columns)], np.asarray(y, dtype=float), timestamps
