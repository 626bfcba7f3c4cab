"""Serving's universe statistics cover the moments they are asked to serve (the replay serves
scans years before the data's last close)."""

from __future__ import annotations

import datetime as dt

import numpy as np

from technic_ml.nyse import NY
from technic_ml.predictors.serving import universe_at


def test_universe_since_reaches_back_to_the_first_session_served(sample_market):
    when = dt.datetime(2018, 6, 12, 16, 0, tzinfo=NY)
    old_day = np.datetime64("2016-03-01")
    recent = universe_at(sample_market, when)
    assert recent.feature_row_for_day(np.datetime64("2018-06-11")) >= 0
    assert recent.feature_row_for_day(old_day) == -1  # 800 days before `when` only: n_universe missing
    wide = universe_at(sample_market, when, since=dt.date(2016, 3, 1))
    assert wide.feature_row_for_day(old_day) >= 0
    # The same point-in-time row either way: a longer panel adds history, not other values.
    day = np.datetime64("2018-06-11")
    assert (
        recent.panel.dates[recent.feature_row_for_day(day)] == wide.panel.dates[wide.feature_row_for_day(day)]
    )
