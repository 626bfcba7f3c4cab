import collections
import datetime as dt
import itertools

import pytest

from technic_ml.backfill import (
    PRESETS,
    ConfigSpace,
    backfill,
    backfill_with_settings,
    plan_backfill,
    run_plan,
    split_plan,
)
from technic_ml.history import ScanHistoryStore
from technic_ml.market_data import SampleMarketData
from technic_ml.nyse import NY, calendar, sessions_between
from technic_ml.settings import TechnicSettings

START, END = dt.date(2016, 1, 4), dt.date(2016, 6, 30)


@pytest.fixture(scope="module")
def market():
    return SampleMarketData()


@pytest.fixture(scope="module")
def plan(market):
    return plan_backfill(START, END, 400, 11, market.universe())


def test_same_seed_same_plan_other_seed_other_plan(market, plan):
    assert plan_backfill(START, END, 400, 11, market.universe()) == plan
    other = plan_backfill(START, END, 400, 12, market.universe())
    assert [p.as_of for p in other] != [p.as_of for p in plan]
    assert {p.scan_id for p in other}.isdisjoint({p.scan_id for p in plan})


def test_plan_is_time_sorted_on_trading_days_with_realistic_times(plan):
    sessions = {d.date() for d in sessions_between(START, END)}
    assert [p.as_of for p in plan] == sorted(p.as_of for p in plan)
    assert all(p.as_of.date() in sessions for p in plan)
    cal = calendar()
    inside = sum(
        cal.session_open(p.as_of.date()) <= p.as_of < cal.session_close(p.as_of.date()) for p in plan
    )
    assert 0.7 < inside / len(plan) < 0.9  # 80 % during regular hours, the rest before/after
    assert all(7 <= p.as_of.hour < 20 for p in plan)


def test_configs_cover_presets_favourites_and_the_documented_ranges(plan, market):
    profiles = collections.Counter(p.config.extra["profile"] for p in plan)
    assert set(profiles) == set(PRESETS) | {"favourite", "random"}
    favourites = collections.Counter(
        p.config.model_dump_json() for p in plan if p.config.extra["profile"] == "favourite"
    )
    assert max(favourites.values()) >= 2  # favourites are rerun on different days
    n_universe = len(market.universe())
    for p in plan:
        c = p.config
        assert 10 <= c.max_symbols <= max(n_universe, PRESETS["deep"]["max_symbols"])
        assert 0 <= c.min_tech_rating <= 90
        assert 0 <= c.min_dollar_vol <= 1e8
        assert c.sectors is None or 1 <= len(c.sectors) <= 3
        assert c.industries is None or 1 <= len(c.industries) <= 3
        assert 20 <= c.lookback_days <= 250


def test_bad_ranges_are_refused(market):
    with pytest.raises(ValueError, match="n_scans: received 0"):
        plan_backfill(START, END, 0, 1, market.universe())
    with pytest.raises(ValueError, match="at least one NYSE session"):
        plan_backfill(dt.date(2016, 7, 4), dt.date(2016, 7, 4), 5, 1, market.universe())


def test_split_plan_gives_contiguous_covering_chunks(plan):
    chunks = split_plan(plan, 3)
    assert len(chunks) == 3 and sum(len(c) for c in chunks) == len(plan)
    assert [p for c in chunks for p in c] == plan
    assert all(a[-1].as_of <= b[0].as_of for a, b in itertools.pairwise(chunks))


def test_backfill_stores_real_scans_with_provenance_and_is_resumable(tmp_path, market):
    store = ScanHistoryStore(tmp_path / "history")
    first = backfill(START, END, 60, 5, market=market, store=store)
    assert (first.ran, first.added, first.skipped_existing) == (60, 60, 0)
    records = store.between(None, None)
    assert len(records) == 60
    for r in records:
        assert r.provenance.source == "backfill" and r.provenance.data_source == "sample"
        assert r.provenance.scanner_version
        assert r.provenance.bar_date <= r.timestamp.date()
        assert r.performance.total_seconds > 0 and set(r.performance.stage_seconds) >= {"universe", "signals"}
        assert r.market_conditions.data_source == "sample"
    again = backfill(START, END, 60, 5, market=market, store=store)
    assert (again.ran, again.added, again.skipped_existing) == (0, 0, 60)


def test_chunks_run_separately_give_the_same_scans_as_one_run(tmp_path, market):
    plan = plan_backfill(START, END, 40, 9, market.universe())
    whole = ScanHistoryStore(tmp_path / "whole")
    run_plan(plan, market, whole)
    split = ScanHistoryStore(tmp_path / "split")
    for chunk in split_plan(plan, 4):
        run_plan(chunk, market, split)  # each chunk loads only its own date range of bars

    def outcome(store):
        return {
            r.scan_id: (r.results, r.performance.symbols_scanned, r.provenance.bar_date)
            for r in store.between(None, None)
        }

    assert outcome(whole) == outcome(split)


@pytest.mark.slow
def test_backfill_in_two_processes(tmp_path):
    settings = TechnicSettings(data_root=tmp_path, market_source="sample")
    summary = backfill_with_settings(settings, START, END, 80, 3, workers=2, config_space=ConfigSpace())
    assert (summary.ran, summary.added) == (80, 80)
    assert ScanHistoryStore(settings.history_path).count() == 80


def test_each_batch_is_timed_in_interleaved_rounds_and_records_carry_the_measurement(
    tmp_path, market, monkeypatch
):
    # Every scan runs timing_runs times, in rounds over its batch (technic_ml.timing); the record's
    # total_seconds is the measured duration, work x rate, and the record says how it was measured.
    import json

    import technic_ml.backfill as backfill_module
    from technic_ml.scanner import Scanner
    from technic_ml.timing import TIMING_METHOD

    monkeypatch.setattr(backfill_module, "BATCH", 4)
    calls = []
    scan = Scanner.scan

    def spy(self, config, as_of, **kwargs):
        calls.append(kwargs["scan_id"])
        return scan(self, config, as_of, **kwargs)

    monkeypatch.setattr(Scanner, "scan", spy)
    small = plan_backfill(START, END, 10, 3, market.universe())
    store = ScanHistoryStore(tmp_path / "history")
    summary = run_plan(small, market, store, timing_runs=2)
    assert summary.ran == summary.added == store.count() == 10
    # Batches of 4, 4 and 2 scans, each run twice in a row over the batch.
    assert len(calls) == 20
    assert calls[0:4] == calls[4:8] and calls[8:12] == calls[12:16] and calls[16:18] == calls[18:20]
    assert len(set(calls)) == 10
    frame = store.frame()
    for total, text in zip(frame["total_seconds"], frame["performance_extra"], strict=True):
        extra = json.loads(text)
        assert extra["timing"] == TIMING_METHOD and extra["timing_runs"] == 2
        assert total == pytest.approx(extra["work_units"] * extra["probe_seconds"])
        assert extra["wall_seconds"] > 0


def test_a_backfill_leaves_one_file_per_day(tmp_path, market, monkeypatch):
    """Shuffled batches write a file per batch into each day they touch; the backfill merges them,
    so reading the history opens one file per day, not one per batch per day."""
    from technic_ml import backfill as backfill_module
    from technic_ml.history.inbox import part_files_per_partition

    monkeypatch.setattr(backfill_module, "BATCH", 5)
    store = ScanHistoryStore(tmp_path / "history")
    plan = plan_backfill(dt.date(2016, 6, 1), dt.date(2016, 6, 10), 40, 3, market.universe())
    assert run_plan(plan, market, store, timing_runs=1).added == 40
    files = part_files_per_partition(store)
    assert len(files) == len({p.as_of.astimezone(NY).date() for p in plan}) and set(files.values()) == {1}
    assert len(store.frame()) == 40
