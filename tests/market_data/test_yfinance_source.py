"""YFinanceMarketData against fakes that return what yfinance 1.7 returns. No test touches the network."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time

import numpy as np
import pandas as pd
import pytest

from technic_ml.errors import MarketDataError
from technic_ml.market_data import ParquetMarketData, YFinanceMarketData
from technic_ml.market_data.base import BAR_COLUMNS, SPY_COLUMNS, UNIVERSE_COLUMNS, VIX_COLUMNS
from technic_ml.market_data.yfinance_source import HISTORY_START
from technic_ml.nyse import sessions_between

ALL_SESSIONS = sessions_between(dt.date(2019, 10, 1), dt.date(2019, 12, 31))


def yahoo_history(level: float) -> pd.DataFrame:
    """One ticker as ``Ticker.history(auto_adjust=True)`` gives it: Date index, Open/High/Low/Close/Volume."""
    k = np.arange(len(ALL_SESSIONS), dtype=float)
    close = level + k
    return pd.DataFrame(
        {
            "Open": close - 0.25,
            "High": close + 1.0,
            "Low": close - 1.0,
            "Close": close,
            "Volume": 1000 + 100 * k,
        },
        index=pd.DatetimeIndex(ALL_SESSIONS, name="Date"),
    )


def yfinance_frame(per_ticker: dict[str, pd.DataFrame | None]) -> pd.DataFrame:
    """Assemble the frame exactly as yfinance 1.7 ``download(group_by='column')`` does (yfinance/multi.py).

    A failed ticker contributes ``utils.empty_df()`` (Open, High, Low, Close, Adj Close, Volume, no
    rows); every frame is reindexed to the union of dates; frames are concatenated with
    ``keys=tickers, names=['Ticker', 'Price']``, the levels swapped to (Price, Ticker) and sorted by
    Price. With every ticker failed (network down) the result has no rows.
    """
    dfs = {}
    for ticker, frame in per_ticker.items():
        if frame is None or frame.empty:
            frame = pd.DataFrame(
                index=pd.DatetimeIndex([], name="Date"),
                data={c: np.nan for c in ("Open", "High", "Low", "Close", "Adj Close", "Volume")},
            )
        dfs[ticker.upper()] = frame
    index = None
    for frame in dfs.values():
        if not frame.empty:
            index = frame.index if index is None else index.union(frame.index)
    if index is None:
        index = pd.DatetimeIndex([])
    dfs = {t: f.reindex(index) for t, f in dfs.items()}
    data = pd.concat(dfs.values(), axis=1, sort=True, keys=dfs.keys(), names=["Ticker", "Price"])
    data.columns = data.columns.swaplevel(0, 1)
    return data.sort_index(level=0, axis=1)


class FakeYahoo:
    """A stand-in for ``yfinance.download`` serving in-memory histories; records every call."""

    def __init__(
        self, histories: dict[str, pd.DataFrame], *, sleep: float = 0.0, error: Exception | None = None
    ):
        self.histories = histories
        self.sleep = sleep
        self.error = error
        self.calls: list[dict] = []
        self.ignore_end = False  # True: also return bars after ``end`` (an unfinished "today" bar)

    def __call__(self, tickers, **kwargs):
        self.calls.append({"tickers": list(tickers), **kwargs})
        if self.sleep:
            time.sleep(self.sleep)
        if self.error is not None:
            raise self.error
        start, end = pd.Timestamp(kwargs["start"]), pd.Timestamp(kwargs["end"])
        per = {}
        for t in tickers:
            h = self.histories.get(t.upper())
            if h is not None:
                h = h[(h.index >= start) & ((h.index < end) | self.ignore_end)]
            per[t] = h
        return yfinance_frame(per)


def offline(*args, **kwargs):
    raise AssertionError("the network (yfinance.download) must not be called")


@pytest.fixture
def yahoo() -> FakeYahoo:
    return FakeYahoo({"AAA": yahoo_history(10), "BBB": yahoo_history(50), "SPY": yahoo_history(300),
                      "^VIX": yahoo_history(15)})  # fmt: skip


@pytest.fixture
def cache(tmp_path):
    return tmp_path / "cache"


START = dt.date(2019, 11, 1)


# -- the fake is faithful to yfinance's shape ---------------------------------------------------------


def test_fake_frame_has_the_yfinance_shape(yahoo):
    frame = yahoo(["AAA", "ZZZ"], start="2019-11-01", end="2019-11-05")
    assert frame.columns.names == ["Price", "Ticker"]
    assert list(frame.columns.get_level_values(0).unique()) == [
        "Adj Close",
        "Close",
        "High",
        "Low",
        "Open",
        "Volume",
    ]
    assert frame.index.name == "Date" and frame.index.tz is None
    assert frame[("Close", "ZZZ")].isna().all()
    empty = yahoo(["ZZZ"], start="2019-11-01", end="2019-11-05")
    assert empty.empty


# -- fetching and the write-through cache --------------------------------------------------------------


def test_fetch_returns_bars_and_writes_the_cache(yahoo, cache):
    market = YFinanceMarketData(cache, download=yahoo, timeout=5)
    bars = market.bars(["AAA", "BBB"], dt.date(2019, 12, 4), start=START)
    assert list(bars.columns) == BAR_COLUMNS
    assert bars["date"].min() == pd.Timestamp(START) and bars["date"].max() == pd.Timestamp("2019-12-04")
    assert len(bars) == 2 * len(sessions_between(START, dt.date(2019, 12, 4)))
    aaa = bars[bars["symbol"] == "AAA"].iloc[0]
    k = ALL_SESSIONS.get_loc(pd.Timestamp(START))
    assert (aaa["open"], aaa["high"], aaa["low"], aaa["close"]) == (
        10 + k - 0.25,
        11.0 + k,
        9.0 + k,
        10.0 + k,
    )
    assert aaa["volume"] == 1000 + 100 * k
    assert aaa["dollar_volume"] == aaa["close"] * aaa["volume"]
    (call,) = yahoo.calls
    assert call["tickers"] == ["AAA", "BBB"]
    assert call["start"] == "2019-11-01" and call["end"] == "2019-12-05"  # yfinance's end is exclusive
    assert call["auto_adjust"] is True and call["threads"] is False and call["progress"] is False
    assert call["group_by"] == "column" and call["timeout"] == 5
    # The cache is a market-data directory (plus coverage.parquet).
    assert {p.name for p in cache.iterdir()} >= {"prices.parquet", "coverage.parquet"}
    assert market.warnings == []


def test_cached_requests_are_served_offline(yahoo, cache):
    first = YFinanceMarketData(cache, download=yahoo).bars(["AAA", "BBB"], dt.date(2019, 12, 4), start=START)
    again = YFinanceMarketData(cache, download=offline)
    pd.testing.assert_frame_equal(again.bars(["AAA", "BBB"], dt.date(2019, 12, 4), start=START), first)
    narrower = again.bars(["BBB"], "2019-11-29 13:30", start=dt.date(2019, 11, 20))
    assert narrower["date"].max() == pd.Timestamp("2019-11-29") and set(narrower["symbol"]) == {"BBB"}
    assert again.warnings == []


def test_newer_sessions_are_fetched_with_an_overlap(yahoo, cache):
    market = YFinanceMarketData(cache, download=yahoo)
    market.bars(["AAA"], dt.date(2019, 12, 2), start=START)
    bars = market.bars(["AAA"], dt.date(2019, 12, 4), start=START)
    assert bars["date"].max() == pd.Timestamp("2019-12-04")
    # 5 sessions ending at the cached end 12-02: 11-25 26 27 29, 12-02.
    assert (yahoo.calls[1]["start"], yahoo.calls[1]["end"]) == ("2019-11-25", "2019-12-05")
    assert len(yahoo.calls) == 2
    assert bars["date"].is_unique


def test_longer_history_refetches_from_the_new_start(yahoo, cache):
    market = YFinanceMarketData(cache, download=yahoo)
    market.bars(["AAA"], dt.date(2019, 12, 4), start=START)
    bars = market.bars(["AAA"], dt.date(2019, 12, 4), start=dt.date(2019, 10, 1))
    assert (yahoo.calls[1]["start"], yahoo.calls[1]["end"]) == ("2019-10-01", "2019-12-05")
    assert bars["date"].min() == pd.Timestamp("2019-10-01")
    # A start before the listing is remembered as fetched: no new call for history that does not exist.
    market.bars(["AAA"], dt.date(2019, 12, 4), start=dt.date(2019, 1, 2))
    market.bars(["AAA"], dt.date(2019, 12, 4), start=dt.date(2019, 6, 3))
    assert len(yahoo.calls) == 3


def test_no_start_means_the_whole_history(yahoo, cache):
    YFinanceMarketData(cache, download=yahoo).bars(["AAA"], dt.date(2019, 12, 4))
    assert yahoo.calls[0]["start"] == HISTORY_START.isoformat()


def test_readjusted_history_is_refetched_in_full(yahoo, cache):
    market = YFinanceMarketData(cache, download=yahoo)
    market.bars(["AAA", "BBB"], dt.date(2019, 12, 2), start=START)
    # A dividend: Yahoo scales all of AAA's earlier adjusted prices by 0.98.
    history = yahoo.histories["AAA"].copy()
    history[["Open", "High", "Low", "Close"]] *= 0.98
    yahoo.histories["AAA"] = history
    bars = market.bars(["AAA", "BBB"], dt.date(2019, 12, 4), start=START)
    assert [(c["tickers"], c["start"]) for c in yahoo.calls[1:]] == [
        (["AAA", "BBB"], "2019-11-25"),
        (["AAA"], "2019-11-01"),  # full refetch of the re-adjusted series only
    ]
    aaa = bars[bars["symbol"] == "AAA"].set_index("date")["close"]
    expected = history.loc["2019-11-01":"2019-12-04", "Close"]
    np.testing.assert_allclose(aaa.to_numpy(), expected.to_numpy())
    bbb = bars[bars["symbol"] == "BBB"]
    assert len(bbb) == len(aaa)


def test_spy_and_vix_use_their_yahoo_tickers(yahoo, cache):
    market = YFinanceMarketData(cache, download=yahoo)
    spy = market.spy(dt.date(2019, 12, 4), start=START)
    vix = market.vix(dt.date(2019, 12, 4), start=START)
    assert [c["tickers"] for c in yahoo.calls] == [["SPY"], ["^VIX"]]
    assert list(spy.columns) == SPY_COLUMNS and list(vix.columns) == VIX_COLUMNS
    assert spy["close"].iloc[0] == 300 + ALL_SESSIONS.get_loc(pd.Timestamp(START))
    assert vix["date"].max() == pd.Timestamp("2019-12-04")
    # The cache is a complete market-data directory once a universe is known too.
    assert {"spy.parquet", "vix.parquet"} <= {p.name for p in cache.iterdir()}


def test_lower_case_tickers_map_back_to_the_requested_spelling(yahoo, cache):
    bars = YFinanceMarketData(cache, download=yahoo).bars(["aaa"], dt.date(2019, 12, 4), start=START)
    assert set(bars["symbol"]) == {"aaa"}


def test_bars_after_the_as_of_are_neither_returned_nor_cached(yahoo, cache):
    yahoo.ignore_end = True  # Yahoo also returns the unfinished bar of "today"
    market = YFinanceMarketData(cache, download=yahoo)
    bars = market.bars(["AAA"], "2019-12-04 12:00", start=START)
    assert bars["date"].max() == pd.Timestamp("2019-12-03")
    stored = pd.read_parquet(cache / "prices.parquet")
    assert stored["date"].max() == pd.Timestamp("2019-12-03")


def test_a_session_yahoo_has_not_published_is_asked_again(yahoo, cache):
    yahoo.histories = {t: h.loc[:"2019-12-03"] for t, h in yahoo.histories.items()}
    market = YFinanceMarketData(cache, download=yahoo)
    assert market.bars(["AAA"], dt.date(2019, 12, 4), start=START)["date"].max() == pd.Timestamp("2019-12-03")
    market.bars(["AAA"], dt.date(2019, 12, 4), start=START)
    assert len(yahoo.calls) == 2, "coverage must stop at the last published date"


# -- failures: bounded, named, never silent -----------------------------------------------------------


def test_a_hanging_call_times_out_in_about_the_timeout(yahoo, cache):
    yahoo.sleep = 3.0
    market = YFinanceMarketData(cache, download=yahoo, timeout=0.3)
    started = time.monotonic()
    with pytest.raises(MarketDataError, match=r"yfinance timed out after 0.3s fetching \['AAA'\]"):
        market.bars(["AAA"], dt.date(2019, 12, 4), start=START)
    elapsed = time.monotonic() - started
    assert 0.3 <= elapsed < 1.5
    abandoned = [t for t in threading.enumerate() if t.name.startswith("yfinance-download")]
    assert abandoned and all(t.daemon for t in abandoned), "abandoned calls must not block interpreter exit"


def test_after_a_timeout_the_remaining_batches_are_not_attempted(yahoo, cache):
    yahoo.sleep = 3.0
    market = YFinanceMarketData(cache, download=yahoo, timeout=0.2, batch_size=1)
    started = time.monotonic()
    with pytest.raises(MarketDataError, match=r"\['AAA', 'BBB'\].*timed out after 0.2s"):
        market.bars(["AAA", "BBB"], dt.date(2019, 12, 4), start=START)
    assert time.monotonic() - started < 1.0
    assert len(yahoo.calls) == 1


def test_an_empty_frame_is_a_failure_naming_the_symbols(cache):
    network_down = FakeYahoo({})
    market = YFinanceMarketData(cache, download=network_down)
    with pytest.raises(
        MarketDataError, match=r"no data for prices \['AAA', 'BBB'\].*empty frame.*network may be down"
    ):
        market.bars(["AAA", "BBB"], dt.date(2019, 12, 4), start=START)
    assert not (cache / "prices.parquet").exists()


def test_none_from_yfinance_is_a_failure(cache):
    market = YFinanceMarketData(cache, download=lambda *a, **k: None)
    with pytest.raises(MarketDataError, match=r"empty frame fetching \['SPY'\]"):
        market.spy(dt.date(2019, 12, 4), start=START)


def test_symbols_missing_from_the_answer_are_named_and_the_rest_is_cached(yahoo, cache):
    market = YFinanceMarketData(cache, download=yahoo)
    with pytest.raises(
        MarketDataError, match=r"no data for prices \['ZZZ'\].*no rows for 'ZZZ'.*unknown or delisted"
    ):
        market.bars(["AAA", "ZZZ"], dt.date(2019, 12, 4), start=START)
    served = YFinanceMarketData(cache, download=offline).bars(["AAA"], dt.date(2019, 12, 4), start=START)
    assert len(served) == len(sessions_between(START, dt.date(2019, 12, 4)))


def test_an_exception_in_yfinance_is_reported_with_its_type(cache):
    market = YFinanceMarketData(cache, download=FakeYahoo({}, error=ConnectionError("DNS failure")))
    with pytest.raises(
        MarketDataError, match=r"yfinance failed fetching \['AAA'\]: ConnectionError: DNS failure"
    ):
        market.bars(["AAA"], dt.date(2019, 12, 4), start=START)


def test_rows_without_volume_are_a_failure_not_a_guess(yahoo, cache):
    yahoo.histories["BBB"] = yahoo.histories["BBB"].assign(Volume=np.nan)
    market = YFinanceMarketData(cache, download=yahoo)
    with pytest.raises(MarketDataError, match=r"\['BBB'\].*with a close but missing open/high/low/volume"):
        market.bars(["AAA", "BBB"], dt.date(2019, 12, 4), start=START)


def test_failed_refresh_serves_the_stale_cache_with_a_warning(yahoo, cache, caplog):
    YFinanceMarketData(cache, download=yahoo).bars(["AAA", "BBB"], dt.date(2019, 12, 2), start=START)
    market = YFinanceMarketData(cache, download=FakeYahoo({}))  # network down: empty frames
    with caplog.at_level(logging.WARNING, logger="technic_ml.market_data.yfinance_source"):
        bars = market.bars(["AAA", "BBB"], dt.date(2019, 12, 4), start=START)
    assert bars["date"].max() == pd.Timestamp("2019-12-02")
    assert len(bars) == 2 * len(sessions_between(START, dt.date(2019, 12, 2)))
    (warning,) = market.warnings
    assert "['AAA', 'BBB']" in warning and "empty frame" in warning and "through 2019-12-02" in warning
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [warning]


def test_timeout_with_a_stale_cache_degrades_instead_of_failing(yahoo, cache):
    YFinanceMarketData(cache, download=yahoo).spy(dt.date(2019, 12, 2), start=START)
    yahoo.sleep = 3.0
    market = YFinanceMarketData(cache, download=yahoo, timeout=0.2)
    spy = market.spy(dt.date(2019, 12, 4), start=START)
    assert spy["date"].max() == pd.Timestamp("2019-12-02")
    assert "timed out after 0.2s" in market.warnings[0] and "spy ['SPY']" in market.warnings[0]


# -- universe -------------------------------------------------------------------------------------------


def test_universe_from_the_shared_style_parquet_uses_gics_columns(tmp_path, cache):
    file = tmp_path / "symbols.parquet"
    pd.DataFrame(
        {
            "symbol": ["AAA", "BBB"],
            "name": ["Aaa Inc", "Bbb Corp"],
            "sector": ["Information Technology", "Utilities"],
            "industry": ["Software", None],
            "yf_sector": ["Technology", "Utilities"],
            "yf_industry": ["Software - Infrastructure", "Utilities - Regulated Electric"],
        }
    ).to_parquet(file)
    market = YFinanceMarketData(cache, universe_file=file, download=offline)
    universe = market.universe()
    assert list(universe.columns) == UNIVERSE_COLUMNS
    assert universe["sector"].tolist() == ["Information Technology", "Utilities"]
    # Copied into the cache: a later run without the file (or offline) has the same universe.
    pd.testing.assert_frame_equal(YFinanceMarketData(cache, download=offline).universe(), universe)


def test_universe_from_csv_without_names_and_bars_for_all_of_it(tmp_path, cache, yahoo):
    file = tmp_path / "universe.csv"
    file.write_text("symbol,sector,industry\nAAA,Energy,Oil & Gas\nBBB,Utilities,\n")
    market = YFinanceMarketData(cache, universe_file=file, download=yahoo)
    universe = market.universe()
    assert universe["name"].tolist() == ["AAA", "BBB"]
    assert pd.isna(universe.loc[1, "industry"])
    bars = market.bars(None, dt.date(2019, 12, 4), start=START)
    assert set(bars["symbol"]) == {"AAA", "BBB"}
    # With symbols, spy and vix cached, the cache is a complete market-data directory.
    market.spy(dt.date(2019, 12, 4), start=START)
    market.vix(dt.date(2019, 12, 4), start=START)
    pd.testing.assert_frame_equal(
        ParquetMarketData(cache).bars(None, dt.date(2019, 12, 4), start=START), bars
    )


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        ("symbol,sector\nAAA,Energy\n", "u.csv", r"columns \['industry'\] missing"),
        ("symbol,sector,industry\nAAA,Energy,x\nAAA,Energy,y\n", "u.csv", r"duplicated symbols \['AAA'\]"),
        ("symbol,sector,industry\n", "u.txt", r"suffix '.txt'; expected .parquet or .csv"),
    ],
)
def test_bad_universe_files(tmp_path, cache, content, name, message):
    file = tmp_path / name
    file.write_text(content)
    with pytest.raises(MarketDataError, match=message):
        YFinanceMarketData(cache, universe_file=file, download=offline).universe()


def test_no_universe_explains_how_to_configure_one(cache):
    with pytest.raises(MarketDataError, match=r"no symbol universe; set TECHNIC_UNIVERSE_FILE"):
        YFinanceMarketData(cache, download=offline).bars(None, dt.date(2019, 12, 4))


def test_missing_universe_file(tmp_path, cache):
    with pytest.raises(MarketDataError, match=r"nope.parquet: not found"):
        YFinanceMarketData(cache, universe_file=tmp_path / "nope.parquet", download=offline).universe()


@pytest.mark.parametrize("timeout", [0, -1, "30", True])
def test_timeout_must_be_positive(cache, timeout):
    with pytest.raises(MarketDataError, match=r"timeout: received .*; expected a positive number of seconds"):
        YFinanceMarketData(cache, timeout=timeout)


def test_an_empty_window_needs_no_download(cache):
    market = YFinanceMarketData(cache, download=offline)
    bars = market.bars(["AAA"], dt.date(2019, 12, 4), start=dt.date(2019, 12, 10))
    assert bars.empty and list(bars.columns) == BAR_COLUMNS
    assert market.warnings == []


def test_a_batch_of_unknown_symbols_does_not_stop_the_others(yahoo, cache):
    # Yahoo answers for OLD with rows after the window only: a non-empty frame with nothing usable.
    yahoo.ignore_end = True
    yahoo.histories["OLD"] = yahoo.histories["AAA"].loc["2019-12-20":]
    market = YFinanceMarketData(cache, download=yahoo, batch_size=1)
    with pytest.raises(MarketDataError, match=r"no data for prices \['OLD'\]"):
        market.bars(["OLD", "AAA"], "2019-12-04 17:00", start=START)
    assert [c["tickers"] for c in yahoo.calls] == [["OLD"], ["AAA"]]


def test_an_unreachable_yahoo_is_the_retryable_error_an_unknown_symbol_is_not(cache):
    from technic_ml.errors import MarketDataUnavailable

    down = YFinanceMarketData(
        cache, download=lambda tickers, **kw: yfinance_frame({t: None for t in tickers})
    )
    with pytest.raises(MarketDataUnavailable, match="network may be down"):
        down.bars(["AAA"], dt.date(2019, 12, 4), start=START)
    known = FakeYahoo({"AAA": yahoo_history(10)})
    with pytest.raises(MarketDataError, match="ZZZ") as refused:
        YFinanceMarketData(cache, download=known).bars(["AAA", "ZZZ"], dt.date(2019, 12, 4), start=START)
    assert not isinstance(refused.value, MarketDataUnavailable)
