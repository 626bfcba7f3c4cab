"""Panel: the dense sessions x symbols view the scanner reads, on tiny hand-checked frames and the sample."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from technic_ml.errors import MarketDataError
from technic_ml.market_data import SampleMarketData
from technic_ml.nyse import NY
from technic_ml.panel import ADV_WINDOW, Panel
from tests.support.frames import FrameMarketData
from tests.support.panels import (
    SESSIONS,
    bars_frame,
    constant_vix,
    flat_spy,
    perturb_after,
    tiny_market,
    universe_frame,
)

NAN = float("nan")


def test_from_frames_pivots_long_bars_into_sorted_session_by_symbol_matrices():
    bars = bars_frame({"BBB": [20.0, 21.0, 22.0], "AAA": [10.0, 11.0, 12.0]}, {"BBB": 100.0, "AAA": 200.0})
    universe = universe_frame(["BBB", "AAA"], sectors={"AAA": "Energy"}, industries={"AAA": "Oil"})
    panel = Panel.from_frames(bars, universe, flat_spy(), constant_vix(), source="tiny", is_sample=True)

    assert panel.symbols.tolist() == ["AAA", "BBB"]
    assert panel.sectors.tolist() == ["Energy", "Information Technology"]
    assert panel.industries.tolist() == ["Oil", "Software"]
    assert list(panel.dates) == list(SESSIONS[:3])
    assert panel.close.dtype == np.float32 and panel.close.shape == (3, 2)
    np.testing.assert_array_equal(panel.close, [[10, 20], [11, 21], [12, 22]])
    np.testing.assert_array_equal(panel.volume, [[200, 100]] * 3)
    assert panel.has_bar.all()
    assert (panel.source, panel.is_sample, panel.n_symbols) == ("tiny", True, 2)
    np.testing.assert_array_equal(panel.spy_close, [100.0] * 3)


def test_close_is_carried_forward_after_listing_never_backward_and_missing_bars_trade_nothing():
    # LATE lists on the 3rd session; GAP misses session 2 (row left out) and session 4 (NaN row).
    market = tiny_market(
        {"GAP": [10.0, 11.0, NAN, 13.0, NAN, 15.0], "LATE": [5.0, 6.0, 7.0, 8.0]},
        first={"LATE": 2},
        drop_nan=False,
    )
    market.bars = market.bars[~((market.bars["symbol"] == "GAP") & (market.bars["date"] == SESSIONS[2]))]
    panel = market.panel()

    np.testing.assert_array_equal(panel.close[:, 0], [10, 11, 11, 13, 13, 15])
    np.testing.assert_array_equal(panel.has_bar[:, 0], [True, True, False, True, False, True])
    np.testing.assert_array_equal(panel.volume[:, 0], [1e6, 1e6, 0, 1e6, 0, 1e6])
    np.testing.assert_array_equal(panel.close[:, 1], [NAN, NAN, 5, 6, 7, 8])
    np.testing.assert_array_equal(panel.has_bar[:, 1], [False, False, True, True, True, True])
    np.testing.assert_array_equal(panel.volume[:, 1], [0, 0, 1e6, 1e6, 1e6, 1e6])


@pytest.mark.parametrize("bad_close", [0.0, -3.0, NAN])
def test_a_non_positive_or_missing_close_is_no_bar(bad_close):
    panel = tiny_market({"AAA": [10.0, bad_close, 12.0]}, drop_nan=False).panel()
    np.testing.assert_array_equal(panel.has_bar[:, 0], [True, False, True])
    np.testing.assert_array_equal(panel.close[:, 0], [10, 10, 12])
    np.testing.assert_array_equal(panel.volume[:, 0], [1e6, 0, 1e6])


def test_adv20_is_the_trailing_20_session_mean_dollar_volume_hand_computed():
    n = 30
    closes = np.full(n, 10.0)
    volumes = 1000.0 * np.arange(1, n + 1)  # dollar volume on session t (0-based): 10,000 x (t + 1)
    closes_gap = closes.copy()
    closes_gap[25] = NAN  # no bar on session 25: it counts as zero traded
    panel = tiny_market({"AAA": closes, "GAP": closes_gap}, {"AAA": volumes, "GAP": volumes}).panel()

    assert np.isnan(panel.adv20[: ADV_WINDOW - 1]).all()
    # Sessions 0..19: 10,000 x (1 + ... + 20) / 20 = 105,000; sessions 10..29: 10,000 x (11 + ... + 30) / 20.
    assert panel.adv20[19, 0] == pytest.approx(105_000.0)
    assert panel.adv20[29, 0] == pytest.approx(10_000 * sum(range(11, 31)) / 20)
    assert panel.adv20[29, 1] == pytest.approx(10_000 * (sum(range(11, 31)) - 26) / 20)
    assert panel.adv20.dtype == np.float64


def test_adv20_counts_sessions_before_listing_as_zero_traded():
    panel = tiny_market({"OLD": np.full(25, 10.0), "NEW": np.full(5, 10.0)}, first={"NEW": 20}).panel()
    assert panel.symbols.tolist() == ["NEW", "OLD"]
    assert panel.adv20[24, 1] == pytest.approx(1e7)
    assert panel.adv20[24, 0] == pytest.approx(5 * 1e7 / 20)


def test_adv20_is_nan_everywhere_with_fewer_than_20_sessions():
    panel = tiny_market({"AAA": np.full(ADV_WINDOW - 1, 10.0)}).panel()
    assert np.isnan(panel.adv20).all()


def test_bars_of_symbols_outside_the_universe_are_ignored_and_universe_symbols_without_bars_are_empty():
    bars = bars_frame({"AAA": [10.0, 11.0], "ZZZ": [99.0, 98.0]})
    universe = universe_frame(["AAA", "NOBARS"])
    universe.loc[1, ["sector", "industry"]] = None
    panel = Panel.from_frames(bars, universe, flat_spy(), None, source="tiny")
    assert panel.symbols.tolist() == ["AAA", "NOBARS"]
    assert panel.sectors.tolist() == ["Information Technology", ""]
    assert panel.industries.tolist() == ["Software", ""]
    assert not panel.has_bar[:, 1].any() and np.isnan(panel.close[:, 1]).all()
    np.testing.assert_array_equal(panel.close[:, 0], [10, 11])
    assert panel.conditions["vix_level"].isna().all()  # no VIX: NaN, reported as degraded by conditions_at


def test_spy_is_carried_forward_onto_sessions_it_lacks():
    spy = flat_spy()
    spy = spy[spy["date"] != SESSIONS[1]].copy()
    spy.loc[spy["date"] == SESSIONS[0], "close"] = 90.0
    panel = tiny_market({"AAA": [10.0, 11.0, 12.0]}, spy=spy).panel()
    np.testing.assert_array_equal(panel.spy_close, [90.0, 90.0, 100.0])


def test_nbytes_counts_the_four_matrices_a_scan_reads():
    panel = tiny_market({"AAA": np.full(30, 10.0), "BBB": np.full(30, 5.0)}).panel()
    # close and volume as float32, adv20 as float64 (exact min_dollar_vol cuts), has_bar as bool.
    assert panel.nbytes() == 17 * 30 * 2


# -- end_index: the last session completed by a moment ------------------------------------------


@pytest.fixture(scope="module")
def year_panel() -> Panel:
    """One symbol on every 2019 session."""
    return tiny_market({"AAA": np.linspace(10, 20, len(SESSIONS))}).panel()


@pytest.mark.parametrize(
    ("as_of", "expected"),
    [
        (dt.datetime(2019, 11, 27, 12, 0), "2019-11-26"),  # during market hours: yesterday's bar
        (dt.datetime(2019, 11, 27, 9, 29), "2019-11-26"),  # before the open
        (dt.datetime(2019, 11, 27, 15, 59, 59), "2019-11-26"),
        (dt.datetime(2019, 11, 27, 16, 0), "2019-11-27"),  # the close itself completes the bar
        (dt.datetime(2019, 11, 27, 17, 30), "2019-11-27"),
        (dt.datetime(2019, 11, 28, 12, 0), "2019-11-27"),  # Thanksgiving: no session
        (dt.datetime(2019, 11, 29, 12, 59), "2019-11-27"),
        (dt.datetime(2019, 11, 29, 13, 0), "2019-11-29"),  # early close at 13:00
        (dt.datetime(2019, 11, 29, 13, 30), "2019-11-29"),
        (dt.datetime(2019, 11, 30, 12, 0), "2019-11-29"),  # Saturday
        (dt.date(2019, 11, 27), "2019-11-27"),  # a date means the end of that day
        ("2019-11-27", "2019-11-27"),
        ("2019-11-27T10:00:00", "2019-11-26"),
        (dt.datetime(2019, 11, 27, 21, 0, tzinfo=dt.UTC), "2019-11-27"),  # 16:00 New York
        (dt.datetime(2019, 11, 27, 20, 59, tzinfo=dt.UTC), "2019-11-26"),
        (dt.datetime(2019, 11, 27, 16, 0, tzinfo=NY), "2019-11-27"),
        (dt.datetime(2020, 3, 2, 12, 0), "2019-12-31"),  # after the panel: its last session
    ],
)
def test_end_index_is_the_row_of_the_last_completed_session(year_panel, as_of, expected):
    end = year_panel.end_index(as_of)
    assert year_panel.dates[end] == pd.Timestamp(expected)


@pytest.mark.parametrize("as_of", [dt.datetime(2019, 1, 2, 15, 0), dt.date(2018, 12, 31)])
def test_end_index_is_minus_one_before_the_first_session_completes(year_panel, as_of):
    assert year_panel.end_index(as_of) == -1


# -- from_market --------------------------------------------------------------------------------


def _assert_panels_equal(a: Panel, b: Panel) -> None:
    assert list(a.dates) == list(b.dates)
    np.testing.assert_array_equal(a.symbols, b.symbols)
    for name in ("close", "volume", "has_bar", "adv20", "spy_close"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    pd.testing.assert_frame_equal(a.conditions, b.conditions)


@pytest.fixture(scope="module")
def small_market():
    n = 80
    closes = {"AAA": np.linspace(10, 30, n), "BBB": np.linspace(50, 20, n), "CCC": 5 + np.sin(np.arange(n))}
    return tiny_market(closes, {"AAA": 2e5, "BBB": np.arange(1, n + 1) * 1e4, "CCC": 3e5})


def test_from_market_loads_exactly_the_bars_completed_by_as_of(small_market):
    as_of = dt.datetime.combine(SESSIONS[59].date(), dt.time(11, 0))  # sees SESSIONS[58]
    panel = Panel.from_market(small_market.market("frames:tiny"), as_of)
    clipped = small_market.bars[small_market.bars["date"] <= SESSIONS[58]]
    expected = Panel.from_frames(
        clipped,
        small_market.universe,
        small_market.spy[small_market.spy["date"] <= SESSIONS[58]],
        small_market.vix[small_market.vix["date"] <= SESSIONS[58]],
        source="frames:tiny",
    )
    assert panel.dates[-1] == SESSIONS[58]
    _assert_panels_equal(panel, expected)
    assert panel.source == "frames:tiny" and panel.is_sample is False


def test_from_market_start_and_symbols_limit_the_panel(small_market):
    panel = Panel.from_market(small_market.market(), "2019-12-31", start=SESSIONS[30].date(), symbols=["CCC"])
    assert panel.dates[0] == SESSIONS[30] and len(panel.dates) == 50
    assert panel.symbols.tolist() == ["CCC"]
    # Trailing averages restart at the panel's first row: a panel from `start` is not a slice of the full one.
    assert np.isnan(panel.adv20[:19]).all()


def test_from_market_without_a_vix_feed_still_builds(small_market):
    market = FrameMarketData(
        spy=small_market.spy, vix=None, bars=small_market.bars, universe=small_market.universe
    )
    panel = Panel.from_market(market, "2019-12-31")
    assert panel.conditions["vix_level"].isna().all()
    assert panel.conditions["spy_volatility"].notna().any()


def test_from_market_with_no_bars_up_to_as_of_raises_naming_the_source(small_market):
    with pytest.raises(MarketDataError, match=r"frames:tiny: no bars up to 2018-06-01"):
        Panel.from_market(small_market.market("frames:tiny"), "2018-06-01")


# -- point in time: row t depends only on sessions up to t --------------------------------------


def _assert_rows_identical_up_to(a: Panel, b: Panel, cutoff: pd.Timestamp) -> None:
    k = int(a.dates.searchsorted(cutoff, side="right"))
    assert a.dates[k - 1] == cutoff and list(a.dates[:k]) == list(b.dates[:k])
    for name in ("close", "volume", "has_bar", "adv20", "spy_close"):
        np.testing.assert_array_equal(getattr(a, name)[:k], getattr(b, name)[:k], err_msg=name)
    pd.testing.assert_frame_equal(a.conditions.loc[:cutoff], b.conditions.loc[:cutoff])
    # The perturbation is real: the next row differs.
    assert not np.array_equal(a.close[k], b.close[k], equal_nan=True)
    assert not np.array_equal(a.adv20[k], b.adv20[k], equal_nan=True)


def test_tiny_panel_rows_up_to_a_session_ignore_every_later_bar(small_market):
    cutoff = SESSIONS[40]
    original = small_market.panel()
    perturbed = small_market.perturbed_after(cutoff.date()).panel()
    _assert_rows_identical_up_to(original, perturbed, cutoff)


def test_sample_panel_rows_up_to_a_session_ignore_every_later_bar():
    market = SampleMarketData()
    start, end, cutoff = dt.date(2008, 6, 2), "2009-06-30", pd.Timestamp("2008-10-10")
    frames = {
        "bars": market.bars(None, end, start=start),
        "universe": market.universe(),
        "spy": market.spy(end, start=start),
        "vix": market.vix(end, start=start),
    }
    original = Panel.from_frames(**frames, source="sample", is_sample=True)
    perturbed = Panel.from_frames(
        **{k: _perturb(v, cutoff) for k, v in frames.items()}, source="sample", is_sample=True
    )
    _assert_rows_identical_up_to(original, perturbed, cutoff)


def _perturb(frame: pd.DataFrame, cutoff: pd.Timestamp) -> pd.DataFrame:
    return perturb_after(frame, cutoff.date())
