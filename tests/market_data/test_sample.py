"""The embedded sample: real backbone, labelled synthetic stocks, realistic regimes and quirks."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from technic_ml.errors import MarketDataError
from technic_ml.market_data import SampleMarketData
from technic_ml.market_data import sample as sample_module
from technic_ml.market_data.base import BAR_COLUMNS, UNIVERSE_COLUMNS
from technic_ml.market_data.sample import N_SYMBOLS, SECTORS, build_sample, sample_frames
from technic_ml.nyse import sessions_between

END = dt.date(2018, 12, 31)


@pytest.fixture(scope="module")
def market() -> SampleMarketData:
    return SampleMarketData()


@pytest.fixture(scope="module")
def panel(market) -> pd.DataFrame:
    return market.bars(None, END)


@pytest.fixture(scope="module")
def closes(panel) -> pd.DataFrame:
    return panel.pivot(index="date", columns="symbol", values="close")


def test_labelled_as_sample(market):
    assert market.source == "sample"
    assert market.is_sample is True
    universe = market.universe()
    assert list(universe.columns) == UNIVERSE_COLUMNS
    assert len(universe) == N_SYMBOLS == 300
    assert universe["symbol"].iloc[0] == "S001" and universe["symbol"].iloc[-1] == "S300"
    assert universe["name"].str.endswith("(synthetic)").all()
    assert universe["name"].iloc[0] == "Sample Co 001 (synthetic)"


def test_sectors_and_industries(market):
    universe = market.universe()
    assert set(universe["sector"]) == {s[0] for s in SECTORS}
    assert len(SECTORS) == 11
    per_sector = universe.groupby("sector")["industry"].nunique()
    assert per_sector.between(2, 4).all()
    assert universe["industry"].notna().all()


def test_dates_are_the_real_nyse_sessions(market):
    spy = market.spy(END)
    assert spy["date"].iloc[0] == pd.Timestamp("1999-01-04")
    assert spy["date"].iloc[-1] == pd.Timestamp("2018-12-31")
    assert pd.DatetimeIndex(spy["date"]).equals(sessions_between(dt.date(1999, 1, 4), END))
    assert (market.first_date, market.last_date) == (dt.date(1999, 1, 4), END)
    assert spy["date"].dtype == market.bars(["S001"], END)["date"].dtype == "datetime64[us]"


def test_spy_is_the_real_index_divided_by_ten(market):
    spy = market.spy(dt.date(1999, 1, 5))
    # arch/data/sp500/sp500.csv.gz, 1999-01-04: Close 1228.099976, Volume 877000000
    assert spy["close"].iloc[0] == pytest.approx(122.8099976)
    assert spy["volume"].iloc[0] == 877_000_000
    assert spy["close"].iloc[1] == pytest.approx(124.4780029)


def test_vix_is_real_from_2014_and_derived_before(market):
    vix = market.vix(END).set_index("date")
    # arch/data/vix/vix.csv.gz: 2014-01-03 13.76, 2018-12-31 25.42
    assert vix.loc["2014-01-03", "close"] == 13.76
    assert vix.loc["2018-12-31", "close"] == 25.42
    assert (vix["open"] == vix["close"]).all() and (vix["high"] == vix["close"]).all()
    assert vix.loc["2008-10", "close"].mean() > 40
    assert vix.loc["2017", "close"].mean() < 15
    _, slope, corr = sample_frames().vix_fit
    assert slope > 0 and corr > 0.7


def test_derived_vix_rises_when_the_market_falls(market):
    vix = market.vix(END).set_index("date")["close"]
    spy = market.spy(END).set_index("date")["close"]
    derived = slice("1999-02-01", "2013-12-31")
    ret20 = spy.pct_change(20)[derived]
    # Over 20 sessions the derived VIX moves against the market (real VIX 2014-2018: -0.78).
    assert ret20.corr(vix.diff(20)[derived]) < -0.3
    assert vix[derived][ret20 < -0.10].mean() > 1.4 * vix[derived][ret20 > 0.05].mean()


def test_ohlc_consistent_and_liquidity_spread(panel):
    assert list(panel.columns) == BAR_COLUMNS
    assert (panel["low"] <= panel[["open", "close"]].min(axis=1)).all()
    assert (panel["high"] >= panel[["open", "close"]].max(axis=1)).all()
    assert (panel["low"] > 0).all()
    assert (panel["volume"] >= 0).all()
    np.testing.assert_allclose(panel["dollar_volume"], panel["close"] * panel["volume"])
    typical = panel.groupby("symbol")["dollar_volume"].median()
    assert typical.min() < 1e6 and typical.max() > 1e9, "liquidity must span orders of magnitude"
    start_prices = panel.groupby("symbol")["close"].first()
    assert start_prices.min() >= 2.0 and start_prices.max() <= 500.0


def test_volatility_clusters_with_the_real_regimes(closes):
    log_returns = np.log(closes).diff()
    yearly = (log_returns.groupby(log_returns.index.year).std() * np.sqrt(252)).median(axis=1)
    assert yearly[2008] > 2 * yearly[2005]
    assert yearly[2008] > 2 * yearly[2017]
    assert yearly[2002] > yearly[2005]


def test_stocks_follow_the_market(market, closes):
    market_returns = np.log(market.spy(END).set_index("date")["close"]).diff()
    corr = np.log(closes).diff().corrwith(market_returns)
    assert corr.median() > 0.4
    yearly = closes.groupby(closes.index.year).last() / closes.groupby(closes.index.year).first() - 1
    assert yearly.median(axis=1)[2008] < -0.25  # the 2008 bear market shows up in the stocks


def test_real_data_quirks_are_present(market, panel):
    quirks = sample_frames().quirks
    first = panel.groupby("symbol")["date"].min()
    late = first[first > pd.Timestamp("1999-01-04")]
    assert len(late) >= 0.10 * N_SYMBOLS
    assert {s: d.date() for s, d in late.items()} == quirks["late_listings"]
    assert late.min() < pd.Timestamp("2004-01-01") and late.max() > pd.Timestamp("2014-01-01")
    zero = panel[panel["volume"] == 0]
    assert len(zero) == quirks["zero_volume_rows"] > 0
    assert (zero["dollar_volume"] == 0).all()
    missing = quirks["missing_sessions"]
    assert len(missing) >= 10
    for symbol, day in missing:
        assert not ((panel["symbol"] == symbol) & (panel["date"] == pd.Timestamp(day))).any()


def test_deterministic():
    again = build_sample()
    cached = sample_frames()
    pd.testing.assert_frame_equal(again.prices, cached.prices)
    pd.testing.assert_frame_equal(again.vix, cached.vix)
    pd.testing.assert_frame_equal(again.universe, cached.universe)


def test_built_once_per_process_and_fast():
    assert SampleMarketData()._frames is SampleMarketData()._frames
    # Measured 0.4-1.2 s on a 2-core VM (bench/bench_market_data.py); 5 s only catches regressions.
    assert sample_frames().build_seconds < 5.0


def test_symbol_subset_matches_the_full_panel(market, panel):
    subset = market.bars(["S007", "S123"], dt.date(2008, 12, 31), start=dt.date(2008, 1, 1))
    expected = panel[
        panel["symbol"].isin(["S007", "S123"]) & panel["date"].between("2008-01-01", "2008-12-31")
    ].reset_index(drop=True)
    pd.testing.assert_frame_equal(subset, expected)


def test_unknown_symbol_is_an_error(market):
    with pytest.raises(
        MarketDataError, match=r"\['AAPL'\] are not in the sample universe; expected symbols S001..S300"
    ):
        market.bars(["S001", "AAPL"], END)


def test_missing_arch_is_explained(monkeypatch):
    monkeypatch.setattr(sample_module.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MarketDataError, match=r"package 'arch' not found.*TECHNIC_MARKET_SOURCE=parquet"):
        build_sample()


def test_arch_is_not_imported():
    import subprocess
    import sys

    code = (
        "import sys; from technic_ml.market_data import SampleMarketData; SampleMarketData();"
        "print('arch' in sys.modules, 'statsmodels' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
