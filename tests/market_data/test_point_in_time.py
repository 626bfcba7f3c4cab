"""Point-in-time, for every implementation: data after the as-of cannot change what is returned.

Each case builds the same source twice, once on the original data and once on a copy where every
row dated after the as-of's last completed session is perturbed (prices x10, volumes x3). Frames
returned as of that moment must be identical; a later as-of must see the difference (so the
perturbation is real and the test cannot pass vacuously).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from technic_ml.market_data import ParquetMarketData, SampleMarketData, YFinanceMarketData, write_market_dir
from technic_ml.market_data import sample as sample_module
from technic_ml.market_data.sample import sample_frames
from technic_ml.market_data.yfinance_source import COVERAGE_FILE
from technic_ml.nyse import last_completed_session
from tests.market_data.test_parquet_dir import tiny_frames

PRICE_COLUMNS = ["open", "high", "low", "close", "dollar_volume"]


def perturb_after(frames: dict[str, pd.DataFrame], cutoff: dt.date) -> dict[str, pd.DataFrame]:
    out = {}
    for kind, frame in frames.items():
        if "date" not in frame.columns:
            out[kind] = frame
            continue
        frame = frame.copy()
        later = frame["date"] > pd.Timestamp(cutoff)
        for col in PRICE_COLUMNS:
            if col in frame.columns:
                frame.loc[later, col] = frame.loc[later, col] * 10
        if "volume" in frame.columns:
            frame.loc[later, "volume"] = frame.loc[later, "volume"] * 3
        out[kind] = frame
    return out


def parquet_source(frames, root: Path, monkeypatch):
    return ParquetMarketData(write_market_dir(root, **frames))


def yfinance_source(frames, root: Path, monkeypatch):
    """A yfinance cache covering the whole tiny span; the network must not be called."""
    write_market_dir(root, **frames)
    end = pd.Timestamp("2019-12-04")
    rows = [("prices", s) for s in frames["symbols"]["symbol"]] + [("spy", "SPY"), ("vix", "^VIX")]
    coverage = pd.DataFrame(
        {
            "kind": [k for k, _ in rows],
            "ticker": [t for _, t in rows],
            "start": pd.Timestamp("2019-11-20"),
            "end": end,
            "fetched_at": pd.Timestamp("2019-12-05", tz="UTC"),
        }
    )
    coverage.to_parquet(root / COVERAGE_FILE)

    def offline(*args, **kwargs):
        raise AssertionError("network call")

    return YFinanceMarketData(root, download=offline)


def sample_source(frames, root: Path, monkeypatch):
    original = sample_frames()
    replaced = dataclasses.replace(original, prices=frames["prices"], spy=frames["spy"], vix=frames["vix"])
    monkeypatch.setattr(sample_module, "sample_frames", lambda: replaced)
    return SampleMarketData()


def sample_as_frames() -> dict[str, pd.DataFrame]:
    built = sample_frames()
    return {"prices": built.prices, "symbols": built.universe, "spy": built.spy, "vix": built.vix}


TINY_AS_OF = [
    "2019-11-22 10:00",
    "2019-11-27 12:00",
    "2019-11-27 16:30",
    "2019-11-29 13:30",
    dt.date(2019, 12, 2),
]
SAMPLE_AS_OF = ["2008-10-10 12:00", "2018-11-21 16:30", "2018-11-23 13:30", dt.date(2018, 12, 24)]


@pytest.mark.parametrize(
    ("build", "frames", "as_of", "symbols", "start"),
    [
        *[(parquet_source, tiny_frames, a, None, None) for a in TINY_AS_OF],
        *[(yfinance_source, tiny_frames, a, ["AAA", "CCC"], dt.date(2019, 11, 20)) for a in TINY_AS_OF],
        *[
            (sample_source, sample_as_frames, a, ["S001", "S150", "S300"], dt.date(2008, 1, 2))
            for a in SAMPLE_AS_OF
        ],
    ],
    ids=lambda v: getattr(v, "__name__", str(v)),
)
def test_later_rows_cannot_change_the_answer(tmp_path, monkeypatch, build, frames, as_of, symbols, start):
    cutoff = last_completed_session(as_of)
    original = frames()
    perturbed = perturb_after(original, cutoff)
    with monkeypatch.context() as patch:
        honest = build(original, tmp_path / "original", patch)
        got = (
            honest.bars(symbols, as_of, start=start),
            honest.spy(as_of, start=start),
            honest.vix(as_of, start=start),
        )
    with monkeypatch.context() as patch:
        future = build(perturbed, tmp_path / "perturbed", patch)
        seen = (
            future.bars(symbols, as_of, start=start),
            future.spy(as_of, start=start),
            future.vix(as_of, start=start),
        )
        last_stored = original["prices"]["date"].max().date()
        later = future.bars(symbols, min(cutoff + dt.timedelta(days=10), last_stored), start=start)
        assert getattr(future, "warnings", []) == []
    for a, b in zip(got, seen, strict=True):
        assert not a.empty
        pd.testing.assert_frame_equal(a, b)
        assert a["date"].max() == pd.Timestamp(cutoff)
    assert later["date"].max() > pd.Timestamp(cutoff)
    assert not later.tail(1)["close"].equals(got[0].tail(1)["close"]), (
        "the perturbation must be visible later"
    )


@pytest.mark.parametrize(
    ("build", "frames", "day", "early_close_day", "symbols"),
    [
        (parquet_source, tiny_frames, dt.date(2019, 11, 27), dt.date(2019, 11, 29), ["AAA"]),
        (yfinance_source, tiny_frames, dt.date(2019, 11, 27), dt.date(2019, 11, 29), ["AAA"]),
        (sample_source, sample_as_frames, dt.date(2018, 11, 21), dt.date(2018, 11, 23), ["S001"]),
    ],
    ids=lambda v: getattr(v, "__name__", str(v)),
)
def test_market_hours_and_early_close(tmp_path, monkeypatch, build, frames, day, early_close_day, symbols):
    source = build(frames(), tmp_path / "market", monkeypatch)
    start = day - dt.timedelta(days=7)

    def last(as_of: str) -> dt.date:
        return source.bars(symbols, as_of, start=start)["date"].max().date()

    previous = last(f"{day} 09:00")
    assert previous < day
    assert last(f"{day} 11:00") == previous  # during market hours: the day's bar is not complete
    assert last(f"{day} 16:01") == day  # after the close
    assert last(f"{early_close_day} 13:30") == early_close_day  # early close at 13:00
    assert last(f"{early_close_day} 12:30") < early_close_day
    # An aware as-of is converted: 21:30 UTC is 16:30 in New York (EST).
    assert source.spy(pd.Timestamp(f"{day} 21:30", tz="UTC"), start=start)["date"].max().date() == day
