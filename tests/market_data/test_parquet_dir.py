"""ParquetMarketData and write_market_dir on a tiny hand-checked directory, and on the real data."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from technic_ml.errors import MarketDataError
from technic_ml.market_data import ParquetMarketData, write_market_dir
from technic_ml.market_data import parquet_dir as parquet_dir_module
from technic_ml.market_data.base import BAR_COLUMNS, SPY_COLUMNS, UNIVERSE_COLUMNS, VIX_COLUMNS

# Ten NYSE sessions around Thanksgiving 2019: 11-28 is a holiday, 11-29 closes early (13:00).
SESSIONS = pd.DatetimeIndex(
    ["2019-11-20", "2019-11-21", "2019-11-22", "2019-11-25", "2019-11-26", "2019-11-27", "2019-11-29",
     "2019-12-02", "2019-12-03", "2019-12-04"]
)  # fmt: skip
CCC_LISTED = 4  # CCC lists on 2019-11-26


def tiny_frames() -> dict[str, pd.DataFrame]:
    """3 symbols x 10 sessions; values are simple functions of the session index k."""
    k = np.arange(len(SESSIONS), dtype=float)
    parts = []
    for symbol, close in (("AAA", 10 + k), ("BBB", 20 + 2 * k), ("CCC", 5 + 0.1 * k)):
        volume = (1000 * (k + 1)).astype("int64")
        part = pd.DataFrame(
            {
                "date": SESSIONS,
                "symbol": symbol,
                "open": close - 0.5,
                "high": close + 1.0,
                "low": close - 1.5,
                "close": close,
                "volume": volume,
                "dollar_volume": close * volume,
            }
        )
        parts.append(part.iloc[CCC_LISTED:] if symbol == "CCC" else part)
    prices = pd.concat(parts, ignore_index=True)
    symbols = pd.DataFrame(
        {
            "symbol": ["AAA", "BBB", "CCC"],
            "name": ["Aaa Inc", "Bbb Corp", "Ccc Ltd"],
            "sector": ["Information Technology", "Utilities", "Energy"],
            "industry": ["Software", "Electric Utilities", None],
            "yf_sector": ["Technology", "Utilities", "Energy"],  # extra column: kept, not returned
        }
    )
    spy = pd.DataFrame(
        {
            "date": SESSIONS,
            "open": 299 + k,
            "high": 301 + k,
            "low": 298 + k,
            "close": 300 + k,
            "volume": 1_000_000,
        }
    )
    vix = pd.DataFrame(
        {"date": SESSIONS, "open": 15 + k / 10, "high": 16 + k / 10, "low": 14 + k / 10, "close": 15 + k / 10}
    )
    return {"prices": prices, "symbols": symbols, "spy": spy, "vix": vix}


def write_tiny(root: Path) -> Path:
    return write_market_dir(root, **tiny_frames())


@pytest.fixture
def tiny_dir(tmp_path) -> Path:
    return write_tiny(tmp_path / "market")


# -- reading ---------------------------------------------------------------------------------------


def test_full_read_round_trips_the_written_frames(tiny_dir):
    market = ParquetMarketData(tiny_dir)
    frames = tiny_frames()
    bars = market.bars(None, as_of=dt.date(2019, 12, 4))
    expected = frames["prices"].sort_values(["symbol", "date"], ignore_index=True)
    pd.testing.assert_frame_equal(bars, expected[BAR_COLUMNS], check_dtype=False)
    assert bars["volume"].dtype == "int64"
    assert bars["date"].dtype.kind == "M"
    assert market.source == f"parquet:{tiny_dir}"
    assert market.is_sample is False
    assert market.warnings == []


@pytest.mark.parametrize(
    ("symbols", "start", "as_of", "rows", "first", "last"),
    [
        (["AAA"], None, dt.date(2019, 12, 4), 10, "2019-11-20", "2019-12-04"),
        (["CCC"], None, dt.date(2019, 12, 4), 6, "2019-11-26", "2019-12-04"),  # listed later
        (["AAA", "CCC"], dt.date(2019, 12, 2), dt.date(2019, 12, 4), 6, "2019-12-02", "2019-12-04"),
        (None, None, "2019-11-27 12:00", 11, "2019-11-20", "2019-11-26"),  # mid-session: day before
        (None, None, "2019-11-27 16:00", 14, "2019-11-20", "2019-11-27"),  # at the close: that day
        (["BBB"], dt.date(2019, 11, 29), "2019-11-29 13:30", 1, "2019-11-29", "2019-11-29"),  # early close
        (["BBB"], dt.date(2019, 11, 29), "2019-11-29 12:59", 0, None, None),
        (["AAA"], dt.date(2019, 11, 28), dt.date(2019, 11, 28), 0, None, None),  # Thanksgiving
    ],
)
def test_bars_select_symbols_dates_and_completed_sessions(tiny_dir, symbols, start, as_of, rows, first, last):
    bars = ParquetMarketData(tiny_dir).bars(symbols, as_of, start=start)
    assert len(bars) == rows
    if rows:
        assert bars["date"].min() == pd.Timestamp(first)
        assert bars["date"].max() == pd.Timestamp(last)
        assert list(bars.columns) == BAR_COLUMNS
        assert bars.equals(bars.sort_values(["symbol", "date"], ignore_index=True))


def test_bar_values_are_the_stored_values(tiny_dir):
    bars = ParquetMarketData(tiny_dir).bars(["BBB"], "2019-11-29 13:30", start=dt.date(2019, 11, 29))
    row = bars.iloc[0]
    # 2019-11-29 is session k=6: close 20 + 2*6 = 32, volume 7000.
    assert (row["open"], row["high"], row["low"], row["close"]) == (31.5, 33.0, 30.5, 32.0)
    assert row["volume"] == 7000
    assert row["dollar_volume"] == 32.0 * 7000


def test_universe_spy_and_vix(tiny_dir):
    market = ParquetMarketData(tiny_dir)
    universe = market.universe()
    assert list(universe.columns) == UNIVERSE_COLUMNS
    assert universe["symbol"].tolist() == ["AAA", "BBB", "CCC"]
    assert pd.isna(universe.loc[2, "industry"])
    spy = market.spy("2019-12-03 10:00", start=dt.date(2019, 11, 27))
    assert list(spy.columns) == SPY_COLUMNS
    assert spy["date"].dt.strftime("%m-%d").tolist() == ["11-27", "11-29", "12-02"]
    assert spy["close"].tolist() == [305.0, 306.0, 307.0]
    vix = market.vix(dt.date(2019, 11, 21))
    assert list(vix.columns) == VIX_COLUMNS
    assert vix["close"].tolist() == [15.0, 15.1]


def test_bars_push_symbol_and_date_filters_down_to_pyarrow(tiny_dir, monkeypatch):
    seen = []
    real_dataset = ds.dataset

    class Recording:
        def __init__(self, path, **kwargs):
            self.inner = real_dataset(path, **kwargs)
            self.path = path

        def to_table(self, *, columns, filter):
            seen.append((Path(self.path).name, list(columns), filter))
            return self.inner.to_table(columns=columns, filter=filter)

    monkeypatch.setattr(parquet_dir_module.ds, "dataset", Recording)
    market = ParquetMarketData(tiny_dir)
    market.bars(["AAA"], dt.date(2019, 12, 3), start=dt.date(2019, 11, 25))
    _, columns, expression = next(s for s in seen if s[0] == "prices.parquet")
    assert columns == BAR_COLUMNS
    text = str(expression)
    assert "is_in" in text and "AAA" in text
    assert ">=" in text and "<=" in text and "2019-11-25" in text and "2019-12-03" in text
    # symbols, spy and vix are read once per instance and kept
    market.spy(dt.date(2019, 12, 3))
    market.spy(dt.date(2019, 12, 4))
    assert sum(1 for s in seen if s[0] == "spy.parquet") == 1


def test_unknown_symbol_is_an_error_not_an_empty_frame(tiny_dir):
    with pytest.raises(MarketDataError, match=r"\['ZZZ'\] are not in .*symbols.parquet"):
        ParquetMarketData(tiny_dir).bars(["AAA", "ZZZ"], dt.date(2019, 12, 4))


def test_empty_symbol_list_gives_an_empty_frame(tiny_dir):
    assert ParquetMarketData(tiny_dir).bars([], dt.date(2019, 12, 4)).empty


# -- errors naming what, value and expected --------------------------------------------------------


def test_missing_directory(tmp_path):
    with pytest.raises(
        MarketDataError, match=r"nowhere: not found .*prices.parquet, symbols.parquet, spy.parquet"
    ):
        ParquetMarketData(tmp_path / "nowhere")


def test_missing_file_is_named(tiny_dir):
    (tiny_dir / "vix.parquet").unlink()
    with pytest.raises(MarketDataError, match=r"files \['vix.parquet'\] missing"):
        ParquetMarketData(tiny_dir)


def test_missing_column_is_named(tiny_dir):
    spy = pq.read_table(tiny_dir / "spy.parquet").drop_columns(["volume"])
    pq.write_table(spy, tiny_dir / "spy.parquet")
    with pytest.raises(MarketDataError, match=r"spy.parquet: columns \['volume'\] missing; expected columns"):
        ParquetMarketData(tiny_dir)


def test_non_timestamp_date_column_is_rejected(tiny_dir):
    vix = tiny_frames()["vix"].assign(date=lambda f: f["date"].dt.strftime("%Y-%m-%d"))
    pq.write_table(__import__("pyarrow").Table.from_pandas(vix), tiny_dir / "vix.parquet")
    with pytest.raises(
        MarketDataError, match=r"vix.parquet: column 'date' has type .*string.*expected a naive timestamp"
    ):
        ParquetMarketData(tiny_dir)


def test_corrupt_file_is_reported(tiny_dir):
    (tiny_dir / "symbols.parquet").write_bytes(b"not parquet")
    with pytest.raises(MarketDataError, match=r"symbols.parquet: not a readable parquet file"):
        ParquetMarketData(tiny_dir)


# -- writing -----------------------------------------------------------------------------------------


def test_write_merges_new_rows_over_old_and_keeps_the_rest(tiny_dir):
    update = tiny_frames()["prices"].query("symbol == 'AAA' and date >= '2019-12-03'").copy()
    update["close"] = [99.0, 100.0]
    extra = update.assign(date=pd.Timestamp("2019-12-05"), close=101.0).iloc[:1]
    write_market_dir(tiny_dir, prices=pd.concat([update, extra]))
    stored = pd.read_parquet(tiny_dir / "prices.parquet")
    aaa = stored[stored["symbol"] == "AAA"]
    assert len(aaa) == 11
    assert aaa["close"].tail(3).tolist() == [99.0, 100.0, 101.0]
    assert len(stored) == len(tiny_frames()["prices"]) + 1
    assert stored[["symbol", "date"]].equals(stored[["symbol", "date"]].sort_values(["symbol", "date"]))
    assert not list(tiny_dir.glob(".*tmp")), "temporary files must not be left behind"


def test_write_keeps_extra_columns(tiny_dir):
    stored = pd.read_parquet(tiny_dir / "symbols.parquet")
    assert stored["yf_sector"].tolist() == ["Technology", "Utilities", "Energy"]


@pytest.mark.parametrize(
    ("kind", "mutate", "message"),
    [
        ("prices", lambda f: f.drop(columns="dollar_volume"), r"prices: columns \['dollar_volume'\] missing"),
        ("prices", lambda f: pd.concat([f, f.iloc[:1]]), r"prices: 2 rows share a key \['symbol', 'date'\]"),
        ("spy", lambda f: f.assign(date=f["date"].dt.tz_localize("UTC")),
         r"spy: column 'date' is timezone-aware"),
        ("prices", lambda f: f.assign(volume=np.where(f.index == 0, np.nan, f["volume"])),
         r"prices: column 'volume' has 1 missing values"),
        ("vix", lambda f: f.assign(date=pd.NaT), r"vix: column 'date' has 10 missing values"),
    ],
)  # fmt: skip
def test_write_rejects_bad_frames_and_writes_nothing(tiny_dir, kind, mutate, message):
    path = tiny_dir / f"{kind}.parquet"
    before = path.read_bytes()
    with pytest.raises(MarketDataError, match=message):
        write_market_dir(tiny_dir, **{kind: mutate(tiny_frames()[kind])})
    assert path.read_bytes() == before


def test_write_leaves_no_partial_file_when_the_write_fails(tiny_dir, monkeypatch):
    before = (tiny_dir / "vix.parquet").read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(parquet_dir_module.pq, "write_table", boom)
    with pytest.raises(OSError, match="disk full"):
        write_market_dir(tiny_dir, vix=tiny_frames()["vix"])
    assert (tiny_dir / "vix.parquet").read_bytes() == before
    assert not list(tiny_dir.glob(".*tmp"))


def test_written_prices_are_sorted_in_row_groups_that_prune_on_symbol(tmp_path):
    # 3000 symbols x 100 days = 300k rows: two row groups split by symbol range.
    symbols = [f"T{i:04d}" for i in range(3000)]
    dates = pd.bdate_range("2019-01-01", periods=100)
    prices = pd.DataFrame(
        {
            "date": np.tile(dates, len(symbols)),
            "symbol": np.repeat(symbols, len(dates)),
            "open": 1.0,
            "high": 1.0,
            "low": 1.0,
            "close": 1.0,
            "volume": 1,
            "dollar_volume": 1.0,
        }
    ).sample(frac=1.0, random_state=0)  # shuffled on purpose
    write_market_dir(tmp_path, prices=prices)
    meta = pq.ParquetFile(tmp_path / "prices.parquet").metadata
    assert meta.num_row_groups == 2
    fragment = next(iter(ds.dataset(tmp_path / "prices.parquet").get_fragments()))
    groups = fragment.split_by_row_group(ds.field("symbol").isin(["T0001"]))
    assert len(groups) == 1, "a one-symbol filter must touch one row group"


# -- the real data (skips when ../shared/data is absent) ---------------------------------------------


@pytest.mark.shared_data
def test_real_directory_reads_point_in_time(shared_market_dir):
    market = ParquetMarketData(shared_market_dir)
    universe = market.universe()
    assert len(universe) == 501
    assert list(universe.columns) == UNIVERSE_COLUMNS
    bars = market.bars(["AAPL", "MSFT"], "2019-11-29 13:30", start=dt.date(2019, 11, 1))
    assert set(bars["symbol"]) == {"AAPL", "MSFT"}
    assert bars["date"].max() == pd.Timestamp("2019-11-29")  # early close at 13:00
    assert bars["date"].min() == pd.Timestamp("2019-11-01")
    assert market.spy("2019-11-29 12:00")["date"].max() == pd.Timestamp("2019-11-27")
    assert market.vix("2019-11-29 13:30")["date"].max() == pd.Timestamp("2019-11-29")


@pytest.mark.shared_data
def test_real_directory_full_panel_and_known_quirks(shared_market_dir):
    market = ParquetMarketData(shared_market_dir)
    panel = market.bars(None, dt.date(2019, 12, 31))
    assert len(panel) == 2_237_909
    assert panel["symbol"].nunique() == 501
    assert int((panel["volume"] == 0).sum()) == 185
    assert (panel["low"] <= panel[["open", "close"]].min(axis=1)).all()
    # WELL misses 12 sessions (a known quirk): fewer rows than NYSE sessions over its span.
    well = panel[panel["symbol"] == "WELL"]
    from technic_ml.nyse import sessions_between

    span = sessions_between(well["date"].min().date(), well["date"].max().date())
    assert len(span) - len(well) == 12
