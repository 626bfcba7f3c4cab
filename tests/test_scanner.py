"""The reference scanner: hand-checked tiny markets, monotonicity, point-in-time, quirks, real counts.

Tiny markets (``tests.support.panels``) sit on real 2019 NYSE sessions with a flat SPY unless a
test says otherwise, so every component of the rating can be worked out by hand. The embedded
sample and, when present, the real data in ``../shared/data/market`` back the properties the issue
asks to hold on real data: monotonicity, point-in-time, quirks and market-dependent counts.
"""

from __future__ import annotations

import datetime as dt
import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from technic_ml.contracts import ScanConfig, ScanRecord
from technic_ml.errors import MarketDataError
from technic_ml.market_conditions import conditions_at
from technic_ml.market_data import ParquetMarketData, SampleMarketData, write_market_dir
from technic_ml.market_data.sample import SECTORS as SAMPLE_LAYOUT
from technic_ml.market_data.sample import sample_frames
from technic_ml.nyse import NY, to_ny
from technic_ml.panel import Panel
from technic_ml.scanner import (
    MIN_BARS,
    RATING_COLUMNS,
    RESULT_COLUMNS,
    SCANNER_VERSION,
    STAGES,
    WEIGHTS,
    CompletedScan,
    Scanner,
    compute_ratings,
    run_scan,
    select_universe,
    tech_ratings,
)
from tests.support.frames import FrameMarketData
from tests.support.panels import (
    SESSIONS,
    TinyMarket,
    falling,
    flat_spy,
    perturb_after,
    rising,
    spy_with_return,
    tiny_market,
)

NAN = float("nan")
COMPONENTS = list(WEIGHTS)
VOLATILE = ("total_seconds", "symbols_per_second", "stage_seconds")  # measured wall time


def config(**kw) -> ScanConfig:
    values = {"max_symbols": 500, "min_tech_rating": 0.0, "min_dollar_vol": 0.0, "lookback_days": 50}
    return ScanConfig(**(values | kw))


def evening(i: int) -> dt.datetime:
    """17:00 New York on SESSIONS[i]: that session's bar is complete."""
    return dt.datetime.combine(SESSIONS[i].date(), dt.time(17, 0), tzinfo=NY)


def scan(market: TinyMarket | Panel, cfg: ScanConfig, as_of) -> CompletedScan:
    panel = market if isinstance(market, Panel) else market.panel()
    return Scanner(panel).scan(cfg, as_of)


def symbols(result: CompletedScan) -> list[str]:
    return result.results["symbol"].tolist()


def row(result: CompletedScan, symbol: str) -> pd.Series:
    rows = result.results[result.results["symbol"] == symbol]
    assert len(rows) == 1, f"{symbol} not in the results: {symbols(result)}"
    return rows.iloc[0]


def stable(record: ScanRecord, *, drop_source: bool = False) -> dict:
    """The record without what depends on wall time (scan_id, measured durations)."""
    d = record.model_dump()
    d.pop("scan_id")
    for key in VOLATILE:
        d["performance"].pop(key)
    if drop_source:
        d["provenance"].pop("source")
    return d


def assert_same_scan(
    a: CompletedScan, b: CompletedScan, *, drop_source: bool = False, exact: bool = True
) -> None:
    """Same results and record. ``exact=False`` compares the market conditions' floats to 1e-9: pandas'
    rolling std of SPY differs in the last bits with where the loaded SPY series starts (run_scan
    loads a shorter history than a backfill's panel)."""
    pd.testing.assert_frame_equal(a.results, b.results)
    assert a.bar_date == b.bar_date
    ra, rb = stable(a.record, drop_source=drop_source), stable(b.record, drop_source=drop_source)
    if not exact:
        ca, cb = ra.pop("market_conditions"), rb.pop("market_conditions")
        assert ca.keys() == cb.keys()
        for key, value in ca.items():
            if isinstance(value, float):
                assert value == pytest.approx(cb[key], rel=1e-9, abs=1e-12), key
            else:
                assert value == cb[key], key
    assert ra == rb


def assert_sane(result: CompletedScan) -> None:
    """No NaN anywhere in the results, ratings in [0, 100], components in [0, 1], record consistent."""
    res = result.results
    numeric = res.select_dtypes("number")
    bad = numeric.columns[~np.isfinite(numeric.to_numpy(dtype=float)).all(axis=0)].tolist()
    assert not bad, f"non-finite values in columns {bad}"
    assert res["tech_rating"].between(0, 100).all()
    if len(res):
        assert res[COMPONENTS].stack().between(0, 1).all()
        assert (res["bars"] >= MIN_BARS).all()
    assert result.record.results.count == len(res)
    assert result.record.results.signals == int(res["signal"].sum())


def subset(a: CompletedScan, b: CompletedScan) -> bool:
    return set(symbols(a)) <= set(symbols(b))


# -- 1. stage 1, the universe, on a hand-made market ---------------------------------------------

# symbol: (close, shares a day, sector, industry) -> 20-session average dollar volume close x shares
UNIVERSE = {
    "AAA": (10.0, 1_000_000, "Information Technology", "Software"),  # $10M
    "BBB": (0.99, 100_000_000, "Information Technology", "Software"),  # $99M but under $1
    "CCC": (1.00, 5_000_000, "Health Care", "Biotechnology"),  # $5M, exactly $1
    "DDD": (20.0, 1_000_000, "Energy", "Oil, Gas & Consumable Fuels"),  # no bar on the last session
    "EEE": (30.0, 1_000_000, "Energy", "Energy Equipment & Services"),  # $30M
    "FFF": (10.0, 1_000_000, "Information Technology", "Semiconductors"),  # $10M, ties with AAA
    "GGG": (5.0, 200_000, "Utilities", "Electric Utilities"),  # $1M
}
N = 60


@pytest.fixture(scope="module")
def universe_market() -> TinyMarket:
    closes = {s: np.full(N, c) for s, (c, _, _, _) in UNIVERSE.items()}
    closes["DDD"][-1] = NAN
    return tiny_market(
        closes,
        {s: v for s, (_, v, _, _) in UNIVERSE.items()},
        sectors={s: sec for s, (_, _, sec, _) in UNIVERSE.items()},
        industries={s: ind for s, (_, _, _, ind) in UNIVERSE.items()},
    )


@pytest.fixture(scope="module")
def universe_panel(universe_market) -> Panel:
    return universe_market.panel()


@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        ({}, ["EEE", "AAA", "FFF", "CCC", "GGG"]),  # most liquid first, AAA before FFF on the tie
        ({"min_dollar_vol": 1_000_000}, ["EEE", "AAA", "FFF", "CCC", "GGG"]),  # >= keeps GGG
        ({"min_dollar_vol": 1_000_001}, ["EEE", "AAA", "FFF", "CCC"]),
        ({"min_dollar_vol": 10_000_000}, ["EEE", "AAA", "FFF"]),
        ({"min_dollar_vol": 30_000_100}, []),
        ({"max_symbols": 2}, ["EEE", "AAA"]),
        ({"max_symbols": 1}, ["EEE"]),
        ({"max_symbols": 3, "min_dollar_vol": 5_000_000}, ["EEE", "AAA", "FFF"]),
        ({"sectors": ["Energy"]}, ["EEE"]),
        ({"sectors": ["Information Technology", "Health Care"]}, ["AAA", "FFF", "CCC"]),
        ({"sectors": []}, ["EEE", "AAA", "FFF", "CCC", "GGG"]),  # empty means all
        ({"industries": ["Software"]}, ["AAA"]),
        ({"industries": []}, ["EEE", "AAA", "FFF", "CCC", "GGG"]),
        ({"sectors": ["Information Technology"], "industries": ["Semiconductors"]}, ["FFF"]),
        ({"sectors": ["Energy"], "industries": ["Software"]}, []),  # both filters apply
        ({"sectors": ["No Such Sector"]}, []),
        ({"sectors": ["Information Technology"], "max_symbols": 1}, ["AAA"]),
    ],
)
def test_universe_filters_and_ranks_by_liquidity(universe_panel, kw, expected):
    end = universe_panel.end_index(evening(N - 1))
    idx = select_universe(universe_panel, config(**kw), end)
    assert universe_panel.symbols[idx].tolist() == expected


def test_min_dollar_vol_is_compared_exactly(universe_panel):
    end = universe_panel.end_index(evening(N - 1))
    assert universe_panel.adv20[end, universe_panel.symbols.tolist().index("EEE")] == 30_000_000
    idx = select_universe(universe_panel, config(min_dollar_vol=30_000_001), end)
    assert universe_panel.symbols[idx].tolist() == []


def test_universe_is_exactly_what_gets_scanned_when_every_symbol_has_the_history(universe_panel):
    result = scan(universe_panel, config(), evening(N - 1))
    assert sorted(symbols(result)) == ["AAA", "CCC", "EEE", "FFF", "GGG"]
    assert result.record.performance.symbols_scanned == 5


def test_a_symbol_is_scanned_again_once_it_has_a_bar_on_the_last_session(universe_panel):
    result = scan(universe_panel, config(sectors=["Energy"]), evening(N - 2))
    assert symbols(result) == ["DDD", "EEE"]  # equal ratings (both flat), then by symbol


def test_min_dollar_vol_compares_against_a_hand_computed_20_session_average():
    # Dollar volume on the last 20 sessions: $10 x 10,000 x (1..20) -> mean $1,050,000.
    volumes = np.r_[np.full(N - 20, 1e6), 10_000.0 * np.arange(1, 21)]
    market = tiny_market({"VAR": np.full(N, 10.0)}, {"VAR": volumes})
    panel = market.panel()
    assert panel.adv20[N - 1, 0] == pytest.approx(1_050_000.0)
    assert symbols(scan(panel, config(min_dollar_vol=1_050_000), evening(N - 1))) == ["VAR"]
    assert symbols(scan(panel, config(min_dollar_vol=1_050_001), evening(N - 1))) == []


# -- stages 2-3: components and tech_rating by hand ------------------------------------------------


@pytest.fixture(scope="module")
def shapes() -> CompletedScan:
    """A straight line up, one down and a flat line; flat SPY; lookback 50 (s = 20, m = 50)."""
    market = tiny_market({"UP": rising(N), "DN": falling(N), "FLAT": np.full(N, 50.0)})
    return scan(market, config(lookback_days=50), evening(N - 1))


def test_a_steady_rise_rates_100_a_steady_fall_0(shapes):
    assert symbols(shapes) == ["UP", "FLAT", "DN"]
    up, dn = row(shapes, "UP"), row(shapes, "DN")
    assert up["tech_rating"] == pytest.approx(100.0)
    assert dn["tech_rating"] == pytest.approx(0.0)
    assert up[COMPONENTS].tolist() == [1.0] * 5
    assert dn[COMPONENTS].tolist() == [0.0] * 5


def test_indicator_values_of_a_straight_line_up(shapes):
    up = row(shapes, "UP")  # closes 100..159; the window is the last 51 closes, 109..159
    assert up["close"] == 159.0
    assert up["sma_short"] == pytest.approx(np.mean(np.arange(140, 160)))
    assert up["sma_long"] == pytest.approx(np.mean(np.arange(110, 160)))
    assert up["rsi14"] == 100.0
    assert up["return_lookback"] == pytest.approx(159 / 109 - 1)
    assert up["relative_return_spy"] == pytest.approx(159 / 109 - 1)  # flat SPY
    assert up["up_volume_share"] == 1.0
    assert up["sharpe"] > 2  # a positive return with small volatility: far beyond the top of the range
    assert up["bars"] == 51


def test_a_flat_line_has_rsi_50_sharpe_0_and_rates_26_67(shapes):
    flat = row(shapes, "FLAT")
    assert (flat["rsi14"], flat["sharpe"], flat["return_lookback"], flat["up_volume_share"]) == (50, 0, 0, 0)
    assert flat[COMPONENTS].tolist() == pytest.approx([0.0, 0.5, 0.5, 1 / 3, 0.0])
    assert flat["tech_rating"] == pytest.approx(100 * (0.2 * 0.5 + 0.2 * 0.5 + 0.2 / 3))


def test_rsi_and_volume_confirmation_by_hand():
    # +2, -1, +2, -1, ...: any 14 changes hold 7 gains of 2 and 7 losses of 1 -> RSI 14 / 21;
    # up days trade 1.5M shares and down days 1M -> the last 20 sessions: u = 15 / 25.
    changes = np.where(np.arange(N - 1) % 2 == 0, 2.0, -1.0)
    closes = np.r_[100.0, 100.0 + np.cumsum(changes)]
    volumes = np.r_[1e6, np.where(changes > 0, 1.5e6, 1e6)]
    result = scan(tiny_market({"ALT": closes}, {"ALT": volumes}), config(lookback_days=50), evening(N - 1))
    alt = row(result, "ALT")
    assert alt["rsi14"] == pytest.approx(100 * 14 / 21)
    assert alt["momentum"] == pytest.approx((100 * 14 / 21 - 30) / 40)
    assert alt["up_volume_share"] == pytest.approx(0.6)
    assert alt["volume_confirmation"] == pytest.approx(0.75)


def test_relative_strength_against_spy_by_hand():
    # SPY +10 % over the 50-session window; R21 +21 % (1.21 / 1.10 = +10 % relative), R10 +10 %.
    spy = spy_with_return(0.10, last=N - 1, lookback=50)
    start = N - 1 - 50
    closes = {
        "R21": np.r_[np.full(start, 100.0), np.linspace(100, 121, 51)],
        "R10": np.r_[np.full(start, 100.0), np.linspace(100, 110, 51)],
    }
    result = scan(tiny_market(closes, spy=spy), config(lookback_days=50), evening(N - 1))
    assert row(result, "R21")["relative_return_spy"] == pytest.approx(0.10, abs=1e-6)
    assert row(result, "R21")["relative_strength"] == pytest.approx(0.75, abs=1e-5)
    assert row(result, "R10")["relative_return_spy"] == pytest.approx(0.0, abs=1e-6)
    assert row(result, "R10")["relative_strength"] == pytest.approx(0.5, abs=1e-5)


def test_zero_mean_returns_with_volatility_give_sharpe_0():
    # 100, 102, 100, 102, ...: the window of 50 log returns is +-log(1.02) in equal number.
    closes = np.where(np.arange(N) % 2 == 0, 100.0, 102.0)
    result = scan(tiny_market({"SAW": closes}), config(lookback_days=50), evening(N - 1))
    assert row(result, "SAW")["sharpe"] == 0.0
    assert row(result, "SAW")["risk_adjusted_return"] == pytest.approx(1 / 3)


def test_sharpe_is_the_annualized_mean_over_std_of_daily_log_returns():
    rng = np.random.default_rng(7)
    closes = 50 * np.exp(np.cumsum(rng.normal(0.002, 0.02, N)))
    result = scan(tiny_market({"RND": closes}), config(lookback_days=40), evening(N - 1))
    log_ret = np.diff(np.log(closes.astype(np.float32).astype(float)[-41:]))
    expected = log_ret.mean() / log_ret.std(ddof=1) * np.sqrt(252)
    rnd = row(result, "RND")
    assert rnd["sharpe"] == pytest.approx(expected, rel=1e-9)
    assert rnd["risk_adjusted_return"] == pytest.approx(np.clip((expected + 1) / 3, 0, 1), rel=1e-9)


def test_a_constant_compounding_rate_has_zero_volatility_so_sharpe_0():
    closes = 100 * 1.01 ** np.arange(N)
    result = scan(tiny_market({"GEO": closes}), config(lookback_days=50), evening(N - 1))
    assert row(result, "GEO")["sharpe"] == 0.0


def test_rating_is_the_documented_weighted_sum_of_components_on_random_walks():
    rng = np.random.default_rng(3)
    closes = {f"X{i:02d}": 20 * np.exp(np.cumsum(rng.normal(0, 0.03, 120))) for i in range(40)}
    volumes = {s: rng.integers(1, 10, 120) * 1e5 for s in closes}
    spy = spy_with_return(0.05, last=119, lookback=100)
    result = scan(tiny_market(closes, volumes, spy=spy), config(lookback_days=100), evening(119))
    res = result.results
    weighted = sum(WEIGHTS[c] * res[c] for c in COMPONENTS)
    np.testing.assert_allclose(res["tech_rating"], 100 * weighted, rtol=1e-12)
    assert sum(WEIGHTS.values()) == pytest.approx(1.0)
    assert res["tech_rating"].nunique() > 10  # not a degenerate sample
    # Sorted by rating (descending), ties by symbol.
    assert res.sort_values(["tech_rating", "symbol"], ascending=[False, True]).index.tolist() == list(
        range(len(res))
    )
    assert_sane(result)


def test_with_a_20_session_lookback_both_averages_coincide_so_a_perfect_rise_rates_91_67():
    # s = min(20, L) = m = min(50, L) = 20: [SMA(s) > SMA(m)] is never true (documented formula).
    result = scan(tiny_market({"UP": rising(N, step=5)}), config(lookback_days=20), evening(N - 1))
    up = row(result, "UP")
    assert (
        up[["momentum", "relative_strength", "risk_adjusted_return", "volume_confirmation"]].tolist()
        == [1] * 4
    )
    assert up["sma_short"] == up["sma_long"]
    assert up["trend"] == pytest.approx(2 / 3)
    assert up["tech_rating"] == pytest.approx(100 * (0.25 * 2 / 3 + 0.75))
    assert not up["golden_cross"]


def test_a_rising_symbol_rates_higher_than_a_falling_one_on_every_lookback():
    market = tiny_market({"UP": rising(N, start=20, step=0.1), "DN": falling(N, start=40, step=0.1)})
    panel = market.panel()
    for lookback in (20, 21, 35, 50, 59, 250):
        res = scan(panel, config(lookback_days=lookback), evening(N - 1))
        assert row(res, "UP")["tech_rating"] > row(res, "DN")["tech_rating"], lookback


# -- stage 5: signals -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def breakout_panel() -> Panel:
    flat = np.full(N, 100.0)
    closes = {
        "NEWHIGH": np.r_[flat[:-1], 100.5],  # a new high on the last bar only
        "EQUAL": np.r_[flat[:-10], 100.5, flat[:8], 100.5],  # equals its earlier high: not above it
        "OLDPEAK": np.r_[flat[:10], 150.0, flat[:48], 101.0],  # above every close of a 20-session window
        "FLAT": flat,
    }
    return tiny_market(closes).panel()


@pytest.mark.parametrize(
    ("symbol", "lookback", "breakout"),
    [
        ("NEWHIGH", 50, True),
        ("EQUAL", 50, False),
        ("OLDPEAK", 20, True),
        ("OLDPEAK", 50, False),  # the 150 peak is inside a 50-session window
        ("FLAT", 50, False),
    ],
)
def test_breakout_is_a_close_above_every_earlier_close_in_the_window(
    breakout_panel, symbol, lookback, breakout
):
    result = scan(breakout_panel, config(lookback_days=lookback), evening(N - 1))
    r = row(result, symbol)
    assert bool(r["breakout"]) is breakout
    assert bool(r["signal"]) is (breakout or bool(r["golden_cross"]))


def test_breakout_is_fresh_only_on_the_bar_that_makes_the_high(breakout_panel):
    before = scan(breakout_panel, config(), evening(N - 2))
    assert not row(before, "NEWHIGH")["breakout"]


# 40 sessions flat at 150, 40 down to 100, 40 up to 140: SMA20 crosses above SMA50 on session 103.
GOLDEN = np.r_[np.full(40, 150.0), np.linspace(150, 100, 41)[1:], 100 + np.arange(1, 41.0)]


def test_golden_cross_fires_on_the_exact_crossing_bar_only():
    closes = pd.Series(GOLDEN)
    sma20, sma50 = closes.rolling(20).mean(), closes.rolling(50).mean()
    crossing = np.flatnonzero((sma20 > sma50) & (sma20.shift() <= sma50.shift()))
    assert crossing.tolist() == [103]  # the series is what the comment says

    panel = tiny_market({"GC": GOLDEN}).panel()
    scanner = Scanner(panel)
    fired = []
    for i in range(60, len(GOLDEN)):
        if scanner.scan(config(lookback_days=60), evening(i)).results["golden_cross"].iloc[0]:
            fired.append(i)
    assert fired == [103]
    at = scanner.scan(config(lookback_days=60), evening(103))
    assert bool(at.results["signal"].iloc[0]) and at.record.results.signals == 1


def test_golden_cross_with_a_short_history_compares_the_previous_averages():
    # 40 sessions of history, lookback 60 (m = 50 > 39 earlier sessions): 20 x 100, 19 x 100.5, then 110.
    # One session earlier: SMA20 = 100.475 > SMA(39) = 100.244, so SMA20 was already above: no cross.
    closes = np.r_[np.full(20, 100.0), np.full(19, 100.5), 110.0]
    result = scan(tiny_market({"SHORT": closes}), config(lookback_days=60), evening(39))
    assert not row(result, "SHORT")["golden_cross"]


def test_signals_are_the_results_with_a_fresh_trigger(breakout_panel):
    signals = {}
    for min_rating in (0, 20, 30, 60, 80):
        result = scan(breakout_panel, config(min_tech_rating=min_rating), evening(N - 1))
        res = result.results
        assert res.columns[:5].tolist() == ["symbol", "sector", "industry", "tech_rating", "signal"]
        np.testing.assert_array_equal(res["signal"], res["breakout"] | res["golden_cross"])
        assert (res["tech_rating"] >= min_rating).all()
        assert result.record.results.signals == int(res["signal"].sum()) <= result.record.results.count
        signals[min_rating] = result.record.results.signals
    # NEWHIGH breaks out but rates 75.25 (no volume confirmation): a signal only while it is a result.
    newhigh = row(scan(breakout_panel, config(), evening(N - 1)), "NEWHIGH")
    assert newhigh["breakout"] and newhigh["tech_rating"] == pytest.approx(75.25, abs=0.01)
    assert signals == {0: 1, 20: 1, 30: 1, 60: 1, 80: 0}


# -- the record -----------------------------------------------------------------------------------


def test_record_counts_timings_and_provenance(universe_panel):
    as_of = dt.datetime(2019, 3, 29, 11, 15)  # a Friday, market hours: sees Thursday's bar
    result = Scanner(universe_panel).scan(config(min_tech_rating=20), as_of, scan_id="scan-1")
    record, res = result.record, result.results
    assert record.scan_id == "scan-1"
    assert record.timestamp == to_ny(as_of) and record.timestamp.tzinfo is not None
    assert record.config == config(min_tech_rating=20)
    assert record.results.count == len(res) == record.performance.symbols_returned
    assert record.results.signals == int(res["signal"].sum())
    assert record.performance.symbols_scanned == 5  # GGG..EEE; BBB (< $1) and DDD (no bar) not scanned

    perf = record.performance
    assert list(perf.stage_seconds) == list(STAGES)
    assert all(v >= 0 for v in perf.stage_seconds.values())
    # total is t_end - t_start, the stages are the consecutive differences: equal up to rounding.
    assert perf.total_seconds == pytest.approx(sum(perf.stage_seconds.values()), rel=1e-9, abs=1e-12)
    assert perf.total_seconds > 0
    assert perf.symbols_per_second == pytest.approx(perf.symbols_scanned / perf.total_seconds)

    assert result.bar_date == dt.date(2019, 3, 28)
    assert record.provenance.model_dump() == {
        "source": "backfill",
        "data_source": "tiny",
        "bar_date": dt.date(2019, 3, 28),
        "scanner_version": SCANNER_VERSION,
    }
    mc = record.market_conditions
    assert (mc.as_of, mc.spy_bar_date, mc.data_source) == (record.timestamp, dt.date(2019, 3, 28), "tiny")
    assert (mc.is_market_hours, mc.time_of_day, mc.day_of_week) == (True, 11, 4)
    assert ScanRecord.model_validate_json(record.model_dump_json()) == record


def test_record_source_and_default_scan_id(universe_panel):
    result = Scanner(universe_panel).scan(config(), dt.datetime(2019, 3, 29, 17, 5), source="scanner_log")
    assert result.record.provenance.source == "scanner_log"
    assert result.record.scan_id.startswith("scan_20190329_170500_")
    other = Scanner(universe_panel).scan(config(), dt.datetime(2019, 3, 29, 17, 5))
    assert other.record.scan_id != result.record.scan_id


def test_an_empty_universe_gives_an_empty_result_and_a_valid_record(universe_panel):
    result = Scanner(universe_panel).scan(config(min_dollar_vol=1e12), evening(N - 1))
    assert result.results.empty
    assert {"symbol", "tech_rating", "signal"} <= set(result.results.columns)
    assert (result.record.results.count, result.record.results.signals) == (0, 0)
    assert result.record.performance.symbols_scanned == 0


def test_empty_results_have_the_same_columns_whatever_made_them_empty(universe_panel):
    none_pass = Scanner(universe_panel).scan(config(min_tech_rating=99), evening(N - 1))
    no_universe = Scanner(universe_panel).scan(config(min_dollar_vol=1e12), evening(N - 1))
    assert none_pass.results.empty and no_universe.results.empty
    assert no_universe.results.columns.tolist() == none_pass.results.columns.tolist()


def test_a_scan_before_the_first_session_of_the_panel_fails_clearly(universe_panel):
    with pytest.raises(MarketDataError, match="no session completed by 2019-01-02T10:00"):
        Scanner(universe_panel).scan(config(), dt.datetime(2019, 1, 2, 10, 0))


# -- 2. monotonicity ------------------------------------------------------------------------------


def test_narrowing_sectors_can_add_results_when_max_symbols_binds():
    """Documented: with the cap binding, a narrower filter lets less liquid symbols of the sector in."""
    market = tiny_market(
        {"LIQ": falling(N), "ENR": rising(N)},
        {"LIQ": 1e7, "ENR": 1e4},
        sectors={"LIQ": "Information Technology", "ENR": "Energy"},
    )
    panel = market.panel()
    wide = scan(panel, config(max_symbols=1, min_tech_rating=50), evening(N - 1))
    narrow = scan(panel, config(max_symbols=1, min_tech_rating=50, sectors=["Energy"]), evening(N - 1))
    assert (symbols(wide), symbols(narrow)) == ([], ["ENR"])
    assert wide.record.performance.symbols_scanned == 1  # the cap kept LIQ, which rates 0
    uncapped = scan(panel, config(min_tech_rating=50), evening(N - 1))
    assert subset(narrow, uncapped)


@pytest.fixture(scope="module")
def sample_market() -> SampleMarketData:
    return SampleMarketData()


@pytest.fixture(scope="module")
def sample_scanner(sample_market) -> Scanner:
    return Scanner.from_market(sample_market, "2018-12-31", start=dt.date(2006, 6, 1))


@pytest.fixture(scope="module")
def real_market(shared_market_dir) -> ParquetMarketData:
    return ParquetMarketData(shared_market_dir)


@pytest.fixture(scope="module")
def real_early(real_market) -> Scanner:
    """The real data from its first session (1999-11-01) to April 2007."""
    return Scanner.from_market(real_market, "2007-04-30")


@pytest.fixture(scope="module")
def real_late(real_market) -> Scanner:
    return Scanner.from_market(real_market, "2013-12-31", start=dt.date(2007, 6, 1))


SAMPLE_DATES = [
    "2007-07-16",
    "2008-10-10",
    "2009-03-09",
    "2011-08-08",
    "2013-06-03",
    "2016-02-11",
    "2018-12-24",
]
LADDER_DATES = ["2008-10-10", "2009-03-09", "2013-06-03", "2018-12-24"]
SAMPLE_SECTORS = sorted(s[0] for s in SAMPLE_LAYOUT)
SAMPLE_INDUSTRIES = sorted(i for s in SAMPLE_LAYOUT for i in s[3])


def _ladder(scanner: Scanner, as_of, field: str, values, **kw) -> list[CompletedScan]:
    return [scanner.scan(config(**kw, **{field: v}), as_of) for v in values]


@pytest.mark.parametrize("as_of", LADDER_DATES)
@pytest.mark.parametrize("lookback", [20, 120, 250])
def test_monotone_ladders_on_the_sample(sample_scanner, as_of, lookback):
    by_rating = _ladder(
        sample_scanner,
        as_of,
        "min_tech_rating",
        [0, 20, 40, 50, 60, 70, 80, 90, 100],
        lookback_days=lookback,
        max_symbols=150,
    )
    by_dollars = _ladder(
        sample_scanner,
        as_of,
        "min_dollar_vol",
        [0, 1e5, 1e6, 1e7, 3e7, 1e8, 1e9, 1e10],
        lookback_days=lookback,
        min_tech_rating=50,
    )
    by_cap = _ladder(
        sample_scanner,
        as_of,
        "max_symbols",
        [1, 5, 20, 50, 100, 200, 300, 10_000],
        lookback_days=lookback,
        min_tech_rating=50,
    )
    for looser, stricter in itertools.pairwise(by_rating):
        assert subset(stricter, looser)
    for looser, stricter in itertools.pairwise(by_dollars):
        assert subset(stricter, looser)
    for smaller, larger in itertools.pairwise(by_cap):
        assert subset(smaller, larger)
    # Not vacuous: each ladder really moves the count.
    for ladder in (by_rating, by_dollars, by_cap):
        counts = [r.record.results.count for r in ladder]
        assert len(set(counts)) >= 3, counts
        assert all(r.record.results.signals <= r.record.results.count for r in ladder)


# Random configs over realistic ranges; most draws leave a non-empty universe (dollar volume is
# log-uniform, industries are often left open) so the inclusions below are rarely vacuous.
configs = st.builds(
    dict,
    max_symbols=st.integers(1, 320),
    min_tech_rating=st.floats(0, 95),
    min_dollar_vol=st.one_of(st.just(0.0), st.floats(4, 9).map(lambda e: 10.0**e)),
    lookback_days=st.integers(20, 250),
    sectors=st.one_of(
        st.none(), st.lists(st.sampled_from(SAMPLE_SECTORS), min_size=1, max_size=3, unique=True)
    ),
    industries=st.one_of(  # None twice: two in three draws leave industries open
        st.none(),
        st.none(),
        st.lists(st.sampled_from(SAMPLE_INDUSTRIES), min_size=1, max_size=3, unique=True),
    ),
)
PROPERTY = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@PROPERTY
@given(kw=configs, as_of=st.sampled_from(SAMPLE_DATES), more=st.floats(0, 100))
def test_raising_min_tech_rating_never_adds_results(sample_scanner, kw, as_of, more):
    base = sample_scanner.scan(ScanConfig(**kw), as_of)
    stricter = sample_scanner.scan(
        ScanConfig(**kw | {"min_tech_rating": min(100, kw["min_tech_rating"] + more)}), as_of
    )
    assert subset(stricter, base)
    assert_sane(base)


@PROPERTY
@given(kw=configs, as_of=st.sampled_from(SAMPLE_DATES), factor=st.floats(1, 1000), add=st.floats(0, 1e8))
def test_raising_min_dollar_vol_never_adds_results(sample_scanner, kw, as_of, factor, add):
    base = sample_scanner.scan(ScanConfig(**kw), as_of)
    stricter = sample_scanner.scan(
        ScanConfig(**kw | {"min_dollar_vol": kw["min_dollar_vol"] * factor + add}), as_of
    )
    assert subset(stricter, base)


@PROPERTY
@given(kw=configs, as_of=st.sampled_from(SAMPLE_DATES), more=st.integers(0, 400))
def test_raising_max_symbols_never_removes_results(sample_scanner, kw, as_of, more):
    base = sample_scanner.scan(ScanConfig(**kw), as_of)
    larger = sample_scanner.scan(ScanConfig(**kw | {"max_symbols": kw["max_symbols"] + more}), as_of)
    assert subset(base, larger)


@PROPERTY
@given(kw=configs, as_of=st.sampled_from(SAMPLE_DATES), data=st.data())
def test_narrowing_sectors_or_industries_never_adds_results_while_max_symbols_does_not_bind(
    sample_scanner, kw, as_of, data
):
    def narrower(chosen: list[str] | None, universe: list[str]) -> list[str]:
        pool = chosen or universe  # None = all
        return data.draw(st.lists(st.sampled_from(pool), min_size=1, max_size=len(pool), unique=True))

    narrow_kw = kw | {
        "sectors": narrower(kw["sectors"], SAMPLE_SECTORS) if data.draw(st.booleans()) else kw["sectors"],
        "industries": narrower(kw["industries"], SAMPLE_INDUSTRIES),
    }
    uncapped = {"max_symbols": 10_000}
    wide = sample_scanner.scan(ScanConfig(**kw | uncapped), as_of)
    narrow = sample_scanner.scan(ScanConfig(**narrow_kw | uncapped), as_of)
    assert subset(narrow, wide)
    # With the cap binding a narrower filter may admit other symbols, but never beyond the uncapped scan.
    narrow_capped = sample_scanner.scan(ScanConfig(**narrow_kw), as_of)
    assert subset(narrow_capped, wide)


# -- 3. point in time -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pit_market() -> TinyMarket:
    rng = np.random.default_rng(11)
    n = len(SESSIONS)
    closes = {f"P{i}": 30 * np.exp(np.cumsum(rng.normal(0.0005, 0.02, n))) for i in range(8)}
    closes["LATE"] = 10 * np.exp(np.cumsum(rng.normal(0.001, 0.02, n - 100)))
    volumes = {s: rng.integers(1, 20, len(c)) * 1e5 for s, c in closes.items()}
    spy = flat_spy()
    spy["close"] = 250 * np.exp(np.cumsum(rng.normal(0.0003, 0.01, len(spy))))
    return tiny_market(closes, volumes, first={"LATE": 100}, spy=spy)


PIT_CONFIGS = [
    config(lookback_days=20),
    config(lookback_days=60, min_tech_rating=40, max_symbols=5),
    config(lookback_days=250, min_dollar_vol=5e6),
]


def _pit_moments(cutoff: int) -> list:
    """Moments whose last completed session is SESSIONS[cutoff]."""
    nxt = SESSIONS[cutoff + 1].date()
    return [
        SESSIONS[cutoff].date(),
        evening(cutoff),
        dt.datetime.combine(nxt, dt.time(9, 0)),
        dt.datetime.combine(nxt, dt.time(12, 0)),
        dt.datetime.combine(nxt, dt.time(15, 59)),
    ]


@pytest.mark.parametrize("cutoff", [60, 120, 200])
def test_tiny_scan_ignores_everything_after_the_last_completed_session(pit_market, cutoff):
    original = Scanner(pit_market.panel())
    perturbed = Scanner(pit_market.perturbed_after(SESSIONS[cutoff].date()).panel())
    for as_of in _pit_moments(cutoff):
        for cfg in PIT_CONFIGS:
            a, b = original.scan(cfg, as_of), perturbed.scan(cfg, as_of)
            assert a.bar_date == SESSIONS[cutoff].date()
            assert_same_scan(a, b)
    # Not vacuous: once the next session completes, the perturbation shows.
    later = evening(cutoff + 1)
    a, b = original.scan(PIT_CONFIGS[0], later), perturbed.scan(PIT_CONFIGS[0], later)
    assert not a.results["close"].equals(b.results["close"])


def _scans_through(market, cutoff: int) -> list[CompletedScan]:
    # A panel loaded through the year-end holds the later sessions; run_scan loads up to as_of only.
    scanner = Scanner.from_market(market, "2019-12-31")
    out = []
    for as_of in _pit_moments(cutoff):
        for cfg in PIT_CONFIGS:
            out += [scanner.scan(cfg, as_of), run_scan(cfg, market, as_of)]
    return out


def test_tiny_point_in_time_through_market_data_and_a_written_market_dir(pit_market, tmp_path):
    cutoff = 150
    perturbed = pit_market.perturbed_after(SESSIONS[cutoff].date())
    for a, b in zip(
        _scans_through(pit_market.market(), cutoff), _scans_through(perturbed.market(), cutoff), strict=True
    ):
        assert_same_scan(a, b)

    # The same through a market-data directory (one path, so one data_source label), whose rows are
    # then replaced in place by the perturbed ones (write_market_dir merges on symbol + date).
    root = tmp_path / "market"
    write_market_dir(
        root, prices=pit_market.bars, symbols=pit_market.universe, spy=pit_market.spy, vix=pit_market.vix
    )
    before = _scans_through(ParquetMarketData(root), cutoff)
    write_market_dir(root, prices=perturbed.bars, spy=perturbed.spy, vix=perturbed.vix)
    reloaded = ParquetMarketData(root)
    last_close = reloaded.bars(["P0"], "2019-12-31")["close"].iloc[-1]
    assert last_close == pytest.approx(10 * pit_market.bars.query("symbol == 'P0'")["close"].iloc[-1])
    after = _scans_through(reloaded, cutoff)
    for a, b in zip(before, after, strict=True):
        assert_same_scan(a, b)


@pytest.mark.parametrize(
    ("as_of", "bar_date"),
    [
        (dt.datetime(2019, 11, 27, 12, 0), "2019-11-26"),  # market hours on d: bar d-1
        (dt.datetime(2019, 11, 27, 16, 30), "2019-11-27"),  # after the close: bar d
        (dt.datetime(2019, 11, 29, 12, 30), "2019-11-27"),  # early-close day, before 13:00 (11-28 closed)
        (dt.datetime(2019, 11, 29, 13, 30), "2019-11-29"),  # after the 13:00 early close
    ],
)
def test_intraday_scans_see_the_last_completed_session(pit_market, as_of, bar_date):
    scanner = Scanner(pit_market.panel())
    result = scanner.scan(config(lookback_days=60), as_of)
    assert result.bar_date == dt.date.fromisoformat(bar_date)
    assert result.record.provenance.bar_date == result.bar_date
    # Identical results to a scan as of the end of that session's day.
    end_of_day = scanner.scan(config(lookback_days=60), result.bar_date).results
    pd.testing.assert_frame_equal(result.results, end_of_day)
    assert result.record.market_conditions.is_market_hours is (as_of.hour == 12)


def _frames(market, end: str, start: dt.date) -> dict[str, pd.DataFrame]:
    return {
        "bars": market.bars(None, end, start=start),
        "universe": market.universe(),
        "spy": market.spy(end, start=start - dt.timedelta(days=120)),
        "vix": market.vix(end, start=start - dt.timedelta(days=120)),
    }


def _assert_point_in_time_on(frames, cutoff: str, source: str, configs: list[ScanConfig]) -> None:
    start = frames["bars"]["date"].min().date()
    end = frames["bars"]["date"].max().date()
    original = FrameMarketData(**frames, source=source)
    later = {k: perturb_after(v, dt.date.fromisoformat(cutoff)) for k, v in frames.items()}
    perturbed = FrameMarketData(**later, source=source)
    a_scanner = Scanner.from_market(original, end, start=start)
    b_scanner = Scanner.from_market(perturbed, end, start=start)
    nxt = a_scanner.panel.dates[a_scanner.panel.dates.searchsorted(pd.Timestamp(cutoff)) + 1].date()
    moments = [cutoff, dt.datetime.combine(nxt, dt.time(9, 45)), dt.datetime.combine(nxt, dt.time(15, 0))]
    counts = []
    for as_of in moments:
        for cfg in configs:
            a, b = a_scanner.scan(cfg, as_of), b_scanner.scan(cfg, as_of)
            assert a.bar_date == dt.date.fromisoformat(cutoff)
            assert_same_scan(a, b)
            counts.append(a.record.results.count)
    assert sum(counts) > 0
    a, b = a_scanner.scan(configs[0], nxt), b_scanner.scan(configs[0], nxt)
    assert not a.results.equals(b.results)


REAL_LIKE_CONFIGS = [
    config(max_symbols=500, min_tech_rating=60, min_dollar_vol=1e6, lookback_days=120),
    config(max_symbols=50, min_tech_rating=30, min_dollar_vol=5e7, lookback_days=20),
    config(max_symbols=200, min_tech_rating=0, lookback_days=250, sectors=["Financials", "Energy"]),
]


def test_sample_scan_ignores_everything_after_the_last_completed_session(sample_market):
    frames = _frames(sample_market, "2009-03-31", dt.date(2007, 6, 1))
    _assert_point_in_time_on(frames, "2008-10-10", "sample", REAL_LIKE_CONFIGS)


@pytest.mark.shared_data
def test_real_scan_ignores_everything_after_the_last_completed_session(real_market):
    frames = _frames(real_market, "2009-03-31", dt.date(2007, 6, 1))
    _assert_point_in_time_on(frames, "2008-09-12", real_market.source, REAL_LIKE_CONFIGS)


@pytest.mark.parametrize(
    ("as_of", "bar_date"),
    [
        (dt.datetime(2018, 11, 23, 12, 30), "2018-11-21"),  # early close at 13:00, Thanksgiving before
        (dt.datetime(2018, 11, 23, 13, 30), "2018-11-23"),
        (dt.datetime(2018, 12, 24, 13, 5), "2018-12-24"),  # Christmas Eve early close
        (dt.datetime(2018, 12, 26, 10, 0), "2018-12-24"),
    ],
)
def test_sample_early_closes(sample_scanner, as_of, bar_date):
    result = sample_scanner.scan(config(lookback_days=120), as_of)
    assert result.bar_date == dt.date.fromisoformat(bar_date)
    pd.testing.assert_frame_equal(
        result.results, sample_scanner.scan(config(lookback_days=120), bar_date).results
    )


@pytest.mark.shared_data
def test_real_early_close_2019_11_29(real_market):
    scanner = Scanner.from_market(real_market, "2019-12-31", start=dt.date(2018, 9, 4))
    cfg = config(max_symbols=500, min_tech_rating=60, min_dollar_vol=1e6, lookback_days=120)
    at_1330 = scanner.scan(cfg, dt.datetime(2019, 11, 29, 13, 30))
    assert at_1330.bar_date == dt.date(2019, 11, 29)
    pd.testing.assert_frame_equal(at_1330.results, scanner.scan(cfg, "2019-11-29").results)
    at_noon = scanner.scan(cfg, dt.datetime(2019, 11, 29, 12, 0))
    assert at_noon.bar_date == dt.date(2019, 11, 27)
    pd.testing.assert_frame_equal(at_noon.results, scanner.scan(cfg, "2019-11-27").results)
    assert not at_noon.results.equals(at_1330.results)
    assert_same_scan(
        run_scan(cfg, real_market, dt.datetime(2019, 11, 29, 13, 30)), at_1330, drop_source=True, exact=False
    )


# -- 4. quirks ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def quirky() -> TinyMarket:
    n = 120
    gaps = rising(n, 50, 0.2)
    gaps[list(GAP_SESSIONS)] = NAN
    glitch = rising(n, 30, 0.05)
    glitch[100] *= 2  # +100 %, then -50 % back the next session
    split = rising(n, 80, 0.1)
    split[70:] /= 2  # an unadjusted 2:1 split
    zero_days = np.full(n, 1e6)
    zero_days[[50, 51, 52, 119]] = 0
    closes = {
        "BASE": falling(n, 100, 0.1),
        "GAPS": gaps,
        "GLITCH": glitch,
        "SPLIT": split,
        "ZVOL": rising(n, 10, 0.01),
        "ZDAYS": rising(n, 20, 0.02),
        "IPO": rising(n - 90, 15, 0.1),  # lists on session 90
        "NEWBIE": rising(10, 15, 0.1),  # lists on session 110, 10 bars at the end
    }
    volumes = {"ZVOL": 0.0, "ZDAYS": zero_days}
    return tiny_market(closes, volumes, first={"IPO": 90, "NEWBIE": 110}, drop_nan=False)


@pytest.fixture(scope="module")
def quirky_scanner(quirky) -> Scanner:
    return Scanner(quirky.panel())


GAP_SESSIONS = (20, 30, 31, 45, 90, 118)


def scanned_by_the_documented_rule(i: int, lookback: int, first: int = 0, gaps=()) -> bool:
    """A bar on the last session and at least MIN_BARS real bars in the last lookback + 1 sessions."""
    bars = sum(1 for t in range(max(0, i - lookback), i + 1) if t >= first and t not in gaps)
    return i >= first and i not in gaps and bars >= MIN_BARS


@pytest.mark.parametrize("lookback", [20, 50, 119, 250, 500])
@pytest.mark.parametrize("i", [25, 45, 89, 90, 100, 101, 109, 110, 118, 119])
def test_quirks_never_crash_nor_give_nan_ratings(quirky_scanner, lookback, i):
    result = quirky_scanner.scan(config(lookback_days=lookback), evening(i))
    assert_sane(result)
    scanned = set(symbols(result))
    assert {"BASE", "GLITCH", "SPLIT", "ZVOL", "ZDAYS"} <= scanned
    assert ("IPO" in scanned) is scanned_by_the_documented_rule(i, lookback, first=90)
    assert "NEWBIE" not in scanned  # listed on session 110: never MIN_BARS bars
    assert not scanned_by_the_documented_rule(i, lookback, first=110)
    assert ("GAPS" in scanned) is scanned_by_the_documented_rule(i, lookback, gaps=GAP_SESSIONS)


def test_a_symbol_not_yet_listed_is_not_scanned_and_one_with_few_bars_is_dropped(quirky_scanner):
    before = quirky_scanner.scan(config(), evening(80))
    assert "IPO" not in symbols(before)
    just_listed = quirky_scanner.scan(config(), evening(100))  # 11 bars: in the universe, too short to rate
    assert "IPO" not in symbols(just_listed)
    panel = quirky_scanner.panel
    assert "IPO" in panel.symbols[select_universe(panel, config(), panel.end_index(evening(100)))]
    rated = quirky_scanner.scan(config(lookback_days=250), evening(119))
    assert row(rated, "IPO")["bars"] == 30  # a shorter history than the lookback is used as is


def test_a_missing_session_drops_the_symbol_that_day_only(quirky_scanner):
    assert "GAPS" not in symbols(quirky_scanner.scan(config(), evening(90)))
    gaps = row(quirky_scanner.scan(config(), evening(91)), "GAPS")
    assert gaps["bars"] == 49  # 51 sessions in the window (41..91), 45 and 90 missing
    assert gaps["close"] == pytest.approx(50 + 0.2 * 91)


def test_zero_volume_is_no_confirmation_and_no_liquidity(quirky_scanner):
    result = quirky_scanner.scan(config(), evening(119))
    zvol = row(result, "ZVOL")
    assert (zvol["up_volume_share"], zvol["volume_confirmation"]) == (0.0, 0.0)
    assert "ZVOL" not in symbols(quirky_scanner.scan(config(min_dollar_vol=1), evening(119)))
    # A zero-volume last session is still a bar (it has a close).
    assert "ZDAYS" in symbols(quirky_scanner.scan(config(min_dollar_vol=1), evening(119)))


def test_an_adjustment_glitch_is_a_one_day_breakout_and_nothing_breaks(quirky_scanner):
    on = row(quirky_scanner.scan(config(), evening(100)), "GLITCH")
    after = row(quirky_scanner.scan(config(), evening(101)), "GLITCH")
    assert on["breakout"] and not after["breakout"]
    assert on["return_lookback"] == pytest.approx(2 * (30 + 0.05 * 100) / (30 + 0.05 * 50) - 1, rel=1e-6)


def test_a_lookback_longer_than_the_history_uses_what_there_is():
    market = tiny_market({"UP": rising(40), "DN": falling(40)})
    as_of = evening(30)  # 31 sessions of data
    scanned = scan(market, config(lookback_days=250), as_of)
    assert symbols(scanned) == ["UP", "DN"]
    assert (scanned.results["bars"] == 31).all()
    assert_sane(scanned)
    through_market = run_scan(config(lookback_days=250), market.market(), as_of)
    assert_same_scan(through_market, scanned, drop_source=True, exact=False)
    # Fewer than 20 sessions: no 20-session average dollar volume yet, so nothing is scanned.
    early = scan(market, config(lookback_days=250), evening(15))
    assert early.record.results.count == 0 and early.record.performance.symbols_scanned == 0


def test_sample_quirks(sample_market, sample_scanner):
    quirks = sample_frames().quirks
    missing = [(s, d) for s, d in quirks["missing_sessions"] if d.year >= 2007]
    listings = [(s, d) for s, d in quirks["late_listings"].items() if 2007 <= d.year <= 2018]
    assert missing and listings
    for symbol, day in missing:
        result = sample_scanner.scan(config(lookback_days=250), day)
        assert_sane(result)
        assert symbol not in symbols(result)
        assert symbol in symbols(sample_scanner.scan(config(lookback_days=250), day + dt.timedelta(days=3)))
    for symbol, day in listings:
        for k, lookback in ((0, 250), (25, 250), (25, 20)):
            as_of = sample_scanner.panel.dates[sample_scanner.panel.dates.searchsorted(pd.Timestamp(day)) + k]
            result = sample_scanner.scan(config(lookback_days=lookback), as_of.date())
            assert_sane(result)
            assert (symbol in symbols(result)) is (k >= MIN_BARS), (symbol, day, k)


def test_sample_early_history_and_zero_volume_days(sample_market):
    frames = sample_frames()
    # SPY starts with the stocks: conditions need 31 sessions, so the 31st session is the first scannable.
    first = frames.spy["date"].iloc[30].date()
    with pytest.raises(MarketDataError, match="spy"):
        run_scan(config(lookback_days=250), sample_market, frames.spy["date"].iloc[29].date())
    early = run_scan(config(lookback_days=250), sample_market, first)
    assert_sane(early)
    assert early.record.results.count > 200 and early.results["bars"].max() == 31
    zero = frames.prices[frames.prices["volume"] == 0]
    for day in sorted(set(zero["date"][zero["date"] > pd.Timestamp(first)]))[::8]:
        assert_sane(run_scan(config(lookback_days=120), sample_market, day.date()))


@pytest.mark.shared_data
@pytest.mark.parametrize("lookback", [20, 120, 250])
@pytest.mark.parametrize("as_of", ["2000-01-03", "2000-01-04", dt.datetime(2000, 1, 4, 12, 0), "2000-03-01"])
def test_real_scans_at_the_start_of_the_data(real_early, as_of, lookback):
    result = real_early.scan(config(lookback_days=lookback), as_of)
    assert_sane(result)
    assert result.record.results.count > 300
    sessions = real_early.panel.end_index(as_of) + 1  # the data starts on 1999-11-01
    assert result.results["bars"].max() == min(sessions, lookback + 1)


@pytest.mark.shared_data
@pytest.mark.parametrize(
    ("symbol", "days"),
    [
        ("TRMB", ["2007-02-22", "2007-02-23", "2007-02-26", "2007-03-30"]),  # one-day x2 print on 02-23
        ("ANTM", ["2002-03-15", "2002-03-18", "2002-03-19", "2002-06-28"]),  # price doubles on 03-18
    ],
)
@pytest.mark.parametrize("lookback", [20, 250])
def test_real_adjustment_glitches(real_early, symbol, days, lookback):
    for day in days:
        result = real_early.scan(config(lookback_days=lookback), day)
        assert_sane(result)
        assert np.isfinite(row(result, symbol)["tech_rating"])
    if symbol == "TRMB":
        assert row(real_early.scan(config(lookback_days=lookback), "2007-02-23"), "TRMB")["breakout"]


# -- 5. the market moves the counts ---------------------------------------------------------------

COUNT_CONFIG = config(max_symbols=500, min_tech_rating=60, min_dollar_vol=1e6, lookback_days=120)
CRASH = ["2008-10-10", "2008-10-27", "2008-11-20", "2008-12-01", "2008-12-15"]
BULL = ["2013-01-18", "2013-03-15", "2013-05-17", "2013-07-15", "2013-09-16", "2013-11-15"]


def _mean_count(scanner: Scanner, days: list[str]) -> float:
    return float(np.mean([scanner.scan(COUNT_CONFIG, d).record.results.count for d in days]))


def test_the_market_moves_the_counts_on_the_sample(sample_scanner):
    crash, bull = _mean_count(sample_scanner, CRASH), _mean_count(sample_scanner, BULL)
    assert bull > 50
    assert crash / bull < 0.5, (crash, bull)


@pytest.mark.shared_data
def test_the_market_moves_the_counts_on_real_data(real_late):
    crash, bull = _mean_count(real_late, CRASH), _mean_count(real_late, BULL)
    assert bull > 150
    assert crash / bull < 0.5, (crash, bull)


# -- 6. run_scan, the one-shot entry point --------------------------------------------------------

RUN_SCAN_CONFIGS = [
    config(max_symbols=500, min_tech_rating=60, min_dollar_vol=1e6, lookback_days=120),
    config(max_symbols=25, min_tech_rating=0, min_dollar_vol=1e7, lookback_days=20),
    config(max_symbols=300, min_tech_rating=40, lookback_days=250, industries=["Banks", "Software"]),
    config(max_symbols=100, min_tech_rating=50, lookback_days=500),  # the longest lookback allowed
]


@pytest.mark.parametrize("cfg", RUN_SCAN_CONFIGS, ids=["wide", "liquid-short", "industries-long", "500"])
@pytest.mark.parametrize("as_of", ["2008-10-10", dt.datetime(2011, 8, 8, 11, 0), "2017-06-30"])
def test_run_scan_equals_scanner_scan_on_the_sample(sample_market, sample_scanner, cfg, as_of):
    once = run_scan(cfg, sample_market, as_of)
    assert once.record.provenance.source == "scanner_log"
    assert_same_scan(once, sample_scanner.scan(cfg, as_of), drop_source=True, exact=False)


@pytest.mark.shared_data
@pytest.mark.parametrize("cfg", RUN_SCAN_CONFIGS[:2], ids=["wide", "liquid-short"])
@pytest.mark.parametrize("as_of", ["2009-03-09", dt.datetime(2013, 6, 3, 10, 30)])
def test_run_scan_equals_scanner_scan_on_real_data(real_market, real_late, cfg, as_of):
    assert_same_scan(
        run_scan(cfg, real_market, as_of), real_late.scan(cfg, as_of), drop_source=True, exact=False
    )


def test_run_scan_equals_scanner_scan_on_a_tiny_market(pit_market):
    scanner = Scanner(pit_market.panel())
    for cfg in PIT_CONFIGS:
        for i in (30, 130, 251):
            assert_same_scan(
                run_scan(cfg, pit_market.market(), evening(i)),
                scanner.scan(cfg, evening(i)),
                drop_source=True,
                exact=False,
            )


def test_compute_ratings_on_no_columns_is_an_empty_frame(universe_panel):
    out = compute_ratings(universe_panel, np.array([], dtype=int), N - 1, 50)
    assert out.empty and {"symbol", "tech_rating", "breakout", "golden_cross"} <= set(out.columns)


def test_a_scan_needing_history_before_the_panel_start_is_not_silently_truncated(sample_market):
    scanner = Scanner.from_market(sample_market, "2010-12-31", start=dt.date(2010, 1, 4))
    cfg = config(max_symbols=500, min_tech_rating=60, min_dollar_vol=1e6, lookback_days=250)
    with pytest.raises(MarketDataError, match="build the panel with an earlier start"):
        scanner.scan(cfg, "2010-01-20")
    # Far enough from the panel's start, the same scanner agrees with a scan on the full history.
    assert_same_scan(
        scanner.scan(cfg, "2010-12-30"),
        run_scan(cfg, sample_market, "2010-12-30"),
        drop_source=True,
        exact=False,
    )


# -- 7. the optimized scan against straightforward references ----------------------------------------


def reference_volume_confirmation(close: np.ndarray, volume: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(up_volume_share, volume_confirmation) per symbol, one session at a time as the scanner's
    docstring states it: the share of the window's volume traded on sessions that closed higher
    than the one before (no volume at all: 0), then clip((u - 0.3) / 0.4, 0, 1).

    ``close`` holds one more session than ``volume`` (the change into the first one).
    """
    shares, confirmations = [], []
    for j in range(close.shape[1]):
        up_volume = total = 0.0
        for t in range(volume.shape[0]):
            traded = float(volume[t, j])
            total += traded
            if close[t + 1, j] > close[t, j]:
                up_volume += traded
        if total > 0:
            share = up_volume / total
            shares.append(share)
            confirmations.append(min(max((share - 0.3) / 0.4, 0.0), 1.0))
        else:
            shares.append(0.0)
            confirmations.append(0.0)
    return np.array(shares, dtype=np.float64), np.array(confirmations, dtype=np.float64)


def reference_ratings(panel: Panel, idx: np.ndarray, end: int, lookback: int) -> pd.DataFrame:
    """The documented formula written plainly with numpy's nan-functions, as scanner 1.0.0 computed it.

    An oracle: the scanner fuses np.nanmean / np.nanstd over one NaN mask and must give the same bits.
    """
    start = max(0, end - lookback)
    close = panel.close[start : end + 1, idx].astype(np.float64)
    real = panel.has_bar[start : end + 1, idx]
    enough = real.sum(axis=0) >= MIN_BARS
    close, real, idx = close[:, enough], real[:, enough], idx[enough]
    k, rows = len(idx), close.shape[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        last = close[-1]
        s, m = min(20, lookback), min(50, lookback)
        sma_s, sma_m = np.nanmean(close[-s:], axis=0), np.nanmean(close[-m:], axis=0)
        sma_s_prev = np.nanmean(close[max(0, rows - 1 - s) : -1], axis=0)
        sma_m_prev = np.nanmean(close[max(0, rows - 1 - m) : -1], axis=0)
        trend = ((last > sma_s).astype(float) + (last > sma_m) + (sma_s > sma_m)) / 3
        diffs = np.diff(close[-15:], axis=0)
        gains = np.nansum(np.clip(diffs, 0, None), axis=0)
        losses = np.nansum(np.clip(-diffs, 0, None), axis=0)
        total = gains + losses
        rsi = np.where(total > 0, 100 * gains / np.where(total > 0, total, 1), 50.0)
        momentum = np.clip((rsi - 30) / 40, 0, 1)
        first_row = np.argmax(~np.isnan(close), axis=0)
        ret = last / close[first_row, np.arange(k)] - 1
        spy = panel.spy_close[start : end + 1]
        rel = (1 + ret) / (1 + (spy[-1] / spy[first_row] - 1)) - 1
        relative_strength = np.clip(0.5 + np.nan_to_num(rel) / 0.4, 0, 1)
        log_ret = np.diff(np.log(close), axis=0)
        mu, sd = np.nanmean(log_ret, axis=0), np.nanstd(log_ret, axis=0, ddof=1)
        steady = ~(sd > 1e-6)
        sharpe = np.where(steady, 0.0, mu / np.where(steady, 1, sd) * np.sqrt(252))
        risk_adjusted = np.clip((np.nan_to_num(sharpe) + 1) / 3, 0, 1)
        n_vol = min(20, rows - 1)
        up_share, volume_conf = reference_volume_confirmation(
            close[-(n_vol + 1) :], panel.volume[end - n_vol + 1 : end + 1, idx]
        )
        components = (trend, momentum, relative_strength, risk_adjusted, volume_conf)
        rating = 100 * (
            0.25 * components[0] + 0.20 * components[1] + 0.20 * components[2] + 0.20 * components[3]
            + 0.15 * components[4]
        )  # fmt: skip
        breakout = last > np.nanmax(np.where(np.isnan(close[:-1]), -np.inf, close[:-1]), axis=0)
        golden_cross = (sma_s > sma_m) & (sma_s_prev <= sma_m_prev)
    columns = [rating, last, sma_s, sma_m, rsi, ret, rel, sharpe, up_share, *components]
    frame = pd.DataFrame(
        {
            "symbol": panel.symbols[idx],
            "sector": panel.sectors[idx],
            "industry": panel.industries[idx],
            **dict(zip(RATING_COLUMNS[3:17], columns, strict=True)),
            "breakout": breakout,
            "golden_cross": golden_cross,
            "bars": real.sum(axis=0),
        }
    )
    return frame, idx


def reference_results(panel: Panel, cfg: ScanConfig, as_of) -> tuple[pd.DataFrame, int]:
    """Stages 3-5 as scanner 1.0.0 ran them on pandas: sort the ratings frame, filter it, add the signal."""
    end = panel.end_index(as_of)
    ratings = compute_ratings(panel, select_universe(panel, cfg, end), end, cfg.lookback_days)
    ratings = ratings.sort_values(["tech_rating", "symbol"], ascending=[False, True], ignore_index=True)
    results = ratings[ratings["tech_rating"] >= cfg.min_tech_rating].reset_index(drop=True)
    results.insert(4, "signal", (results["breakout"] | results["golden_cross"]).astype(bool))
    return results, len(ratings)


def assert_identical_frames(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Same columns, dtypes, index type and values; float columns bit for bit (signed zeros too)."""
    pd.testing.assert_frame_equal(a, b, check_exact=True, check_index_type=True, check_column_type=True)
    assert type(a.index) is type(b.index)
    for name in a.columns:
        if a[name].dtype == np.float64:
            assert a[name].to_numpy().tobytes() == b[name].to_numpy().tobytes(), name


@pytest.fixture(scope="module")
def walk_panel() -> Panel:
    """Random walks with varied volumes, a SPY of its own, late listings and a missing session."""
    rng = np.random.default_rng(21)
    n = len(SESSIONS)
    closes = {f"W{i:02d}": 20 * np.exp(np.cumsum(rng.normal(0.0003, 0.025, n))) for i in range(30)}
    closes["W03"][[40, 41, 150]] = NAN
    first = {"W10": 120, "W11": 200, "W12": 235}
    for symbol, at in first.items():
        closes[symbol] = closes[symbol][: n - at]
    volumes = {s: rng.integers(0, 30, len(c)) * 1e5 for s, c in closes.items()}
    spy = flat_spy()
    spy["close"] = 250 * np.exp(np.cumsum(rng.normal(0.0004, 0.01, len(spy))))
    sectors = {s: ("Energy", "Financials", "Utilities")[i % 3] for i, s in enumerate(closes)}
    return tiny_market(closes, volumes, first=first, sectors=sectors, spy=spy).panel()


def _rating_cases(panel: Panel, ends, lookbacks, seed: int):
    rng = np.random.default_rng(seed)
    for end in ends:
        for lookback in lookbacks:
            everyone = np.arange(panel.n_symbols)
            yield end, lookback, select_universe(panel, config(lookback_days=lookback), end)
            yield end, lookback, rng.permutation(everyone)  # any order, symbols without a bar too
            yield end, lookback, rng.choice(everyone, size=max(1, panel.n_symbols // 3), replace=False)


@pytest.mark.parametrize("which", ["walk", "quirky", "pit", "sample"])
def test_tech_ratings_equal_compute_ratings_and_the_plain_formula_bit_for_bit(
    which, walk_panel, quirky, pit_market, sample_scanner
):
    if which == "sample":
        panel = sample_scanner.panel
        ends = [int(e) for e in panel.dates.searchsorted(pd.to_datetime(SAMPLE_DATES))]
    else:
        panel = {"walk": walk_panel, "quirky": quirky.panel(), "pit": pit_market.panel()}[which]
        ends = [15, 25, 45, 90, 101, 119, 160, len(panel.dates) - 1]
        ends = [e for e in ends if e < len(panel.dates)]
    rated = 0
    for end, lookback, idx in _rating_cases(panel, ends, (20, 21, 50, 120, 250, 500), seed=len(which)):
        kept, rating = tech_ratings(panel, idx, end, lookback)
        frame = compute_ratings(panel, idx, end, lookback)
        reference, reference_kept = reference_ratings(panel, idx, end, lookback)
        assert rating.dtype == np.float64
        np.testing.assert_array_equal(kept, reference_kept)  # idx order, the same symbols dropped
        assert panel.symbols[kept].tolist() == frame["symbol"].tolist()
        assert rating.tobytes() == frame["tech_rating"].to_numpy().tobytes()
        if len(kept):
            assert_identical_frames(frame, reference)
        rated += len(kept)
    assert rated > 200  # not vacuous


def test_tech_ratings_builds_no_pandas_object(walk_panel, monkeypatch):
    import technic_ml.scanner as scanner_module

    idx = select_universe(walk_panel, config(), 200)
    expected = tech_ratings(walk_panel, idx, 200, 60)
    monkeypatch.setattr(scanner_module, "pd", None)  # any pandas call in the core now fails
    kept, rating = tech_ratings(walk_panel, idx, 200, 60)
    np.testing.assert_array_equal(kept, expected[0])
    assert rating.tobytes() == expected[1].tobytes()


@pytest.mark.parametrize(
    ("kw", "error", "message"),
    [
        ({"end": 252}, ValueError, r"end: received 252; expected a panel row in 0\.\.251"),
        ({"end": -1}, ValueError, r"end: received -1; expected a panel row"),
        ({"lookback": 0}, ValueError, r"lookback: received 0; expected at least 1 session"),
        ({"idx": np.array([True, False])}, TypeError, r"idx: received an array of dtype bool"),
    ],
)
def test_tech_ratings_refuses_bad_arguments_by_name(walk_panel, kw, error, message):
    args = {"idx": np.arange(5), "end": 100, "lookback": 50} | kw
    with pytest.raises(error, match=message):
        tech_ratings(walk_panel, args["idx"], args["end"], args["lookback"])


EQUIVALENCE_CONFIGS = [
    config(),
    config(lookback_days=20, min_tech_rating=50),
    config(lookback_days=250, min_tech_rating=30, max_symbols=7),
    config(lookback_days=120, min_dollar_vol=2e6, sectors=["Energy", "Financials"]),
    config(lookback_days=60, min_tech_rating=100),  # rated symbols, none passing: str columns, no rows
    config(min_dollar_vol=1e15),  # nothing scanned: object columns, no rows
]


def _assert_scan_matches_reference(panel: Panel, cfg: ScanConfig, as_of) -> CompletedScan:
    result = Scanner(panel).scan(cfg, as_of)
    expected, scanned = reference_results(panel, cfg, as_of)
    assert_identical_frames(result.results, expected)
    assert result.results.columns.tolist() == list(RESULT_COLUMNS)
    record = result.record
    assert record.results.count == len(expected) == record.performance.symbols_returned
    assert record.results.signals == int(expected["signal"].sum())
    assert record.performance.symbols_scanned == scanned
    assert record.market_conditions == conditions_at(panel.conditions, as_of, data_source=panel.source)
    return result


@pytest.mark.parametrize("cfg", EQUIVALENCE_CONFIGS)
def test_scan_equals_a_pandas_sort_filter_of_the_ratings_frame(cfg, walk_panel, quirky, universe_panel):
    counts = []
    for panel, moments in (
        (walk_panel, [evening(30), evening(119), dt.datetime(2019, 7, 5, 11, 0), evening(251)]),
        (quirky.panel(), [evening(25), evening(100), evening(119)]),
        (universe_panel, [evening(N - 1), evening(N - 2)]),  # ties: equal ratings, ordered by symbol
    ):
        for as_of in moments:
            counts.append(_assert_scan_matches_reference(panel, cfg, as_of).record.results.count)
    if cfg.min_tech_rating < 100 and cfg.min_dollar_vol < 1e15:
        assert sum(counts) > 0


def test_scan_equals_the_pandas_reference_on_the_sample(sample_scanner):
    rng = np.random.default_rng(13)
    panel = sample_scanner.panel
    for i in range(40):
        cfg = ScanConfig(
            max_symbols=int(rng.integers(1, 400)),
            min_tech_rating=float(rng.integers(0, 95)),
            min_dollar_vol=float(rng.choice([0.0, 1e6, 1e7, 1e8])),
            sectors=sorted(rng.choice(SAMPLE_SECTORS, size=2, replace=False).tolist())
            if i % 3 == 0
            else None,
            lookback_days=int(rng.choice([20, 60, 120, 250, 500])),
        )
        later = SAMPLE_DATES[2:]  # from 2009: 500 sessions after the panel's 2006-06-01 start
        _assert_scan_matches_reference(panel, cfg, later[i % len(later)])


def test_empty_results_keep_the_column_dtypes_they_always_had(walk_panel):
    # Rated symbols but none passing: the text columns are pandas strings, as the filtered frame's were;
    # nothing rated at all: object, as compute_ratings' empty frame has them.
    none_pass = Scanner(walk_panel).scan(config(min_tech_rating=100), evening(200))
    nothing = Scanner(walk_panel).scan(config(min_dollar_vol=1e15), evening(200))
    assert none_pass.record.performance.symbols_scanned > 0 and none_pass.results.empty
    assert nothing.record.performance.symbols_scanned == 0 and nothing.results.empty
    assert none_pass.results["symbol"].dtype == pd.Series(["A"]).dtype
    assert nothing.results["symbol"].dtype == object
    for result in (none_pass, nothing):
        assert result.results.columns.tolist() == list(RESULT_COLUMNS)
        assert type(result.results.index) is pd.RangeIndex


@pytest.mark.filterwarnings("ignore:The 'future.infer_string' option is deprecated")
@pytest.mark.parametrize(
    ("option", "value", "storage"),
    [("mode.string_storage", "python", "python"), ("future.infer_string", False, None)],
)
def test_scan_equals_the_pandas_reference_with_other_string_settings(walk_panel, option, value, storage):
    with pd.option_context(option, value):
        # The Scanner built inside the context types its text columns under the option.
        result = _assert_scan_matches_reference(walk_panel, config(min_tech_rating=40), evening(200))
        assert result.record.results.count > 0
        dtype = result.results["symbol"].dtype
        assert dtype == np.dtype("O") if storage is None else dtype.storage == storage
