"""The point-in-time clip and ordering that every MarketData implementation inherits."""

import datetime as dt

import pandas as pd
import pytest

from technic_ml.errors import MarketDataError
from tests.support.frames import FrameMarketData


def bars(rows):
    frame = pd.DataFrame(rows, columns=["date", "symbol", "close"])
    frame["date"] = pd.to_datetime(frame["date"])
    for col in ("open", "high", "low"):
        frame[col] = frame["close"]
    frame["volume"] = 100
    frame["dollar_volume"] = frame["close"] * 100
    return frame


def test_unsorted_source_rows_come_back_sorted_and_clipped():
    source = bars(
        [
            ("2019-07-05", "B", 2.0),
            ("2019-07-03", "A", 1.0),
            ("2019-07-08", "A", 9.0),  # after the as-of: must not appear
            ("2019-07-05", "A", 1.5),
            ("2019-07-03", "B", 1.8),
        ]
    )
    got = FrameMarketData(bars=source).bars(None, dt.datetime(2019, 7, 8, 12, 0))
    assert list(zip(got["symbol"], got["date"].dt.date.astype(str), strict=True)) == [
        ("A", "2019-07-03"),
        ("A", "2019-07-05"),
        ("B", "2019-07-03"),
        ("B", "2019-07-05"),
    ]


def test_missing_columns_name_the_source_and_the_expectation():
    broken = bars([("2019-07-05", "A", 1.0)]).drop(columns=["dollar_volume"])
    with pytest.raises(MarketDataError, match=r"frames: columns \['dollar_volume'\] missing"):
        FrameMarketData(bars=broken).bars(None, "2019-07-08")


def test_empty_symbol_list_returns_an_empty_frame():
    got = FrameMarketData(bars=bars([("2019-07-05", "A", 1.0)])).bars([], "2019-07-08")
    assert got.empty and "close" in got.columns
