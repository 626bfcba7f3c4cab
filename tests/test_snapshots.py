import datetime as dt

import pytest

from technic_ml.contracts import MarketConditions
from technic_ml.errors import StoreError
from technic_ml.nyse import NY
from technic_ml.snapshots import SnapshotStore


def snap(when: dt.datetime, source="sample", trend="bullish", **kw) -> MarketConditions:
    fields = dict(
        spy_trend=trend,
        spy_volatility=0.12,
        spy_momentum=0.4,
        spy_return_5d=0.01,
        spy_return_20d=0.03,
        vix_level=14.5,
        time_of_day=when.hour,
        day_of_week=when.weekday(),
        is_market_hours=False,
        as_of=when,
        data_source=source,
        degraded=False,
        spy_bar_date=when.date(),
        vix_bar_date=when.date(),
    )
    fields.update(kw)
    return MarketConditions(**fields)


T1 = dt.datetime(2019, 11, 27, 17, 0, tzinfo=NY)
T2 = dt.datetime(2019, 11, 29, 13, 30, tzinfo=NY)
T3 = dt.datetime(2019, 12, 2, 9, 0, tzinfo=NY)


def test_empty_store(tmp_path):
    store = SnapshotStore(tmp_path / "snaps")
    assert store.latest() is None
    assert store.as_of(T3) is None
    assert store.frame().empty


def test_round_trip_latest_and_as_of(tmp_path):
    store = SnapshotStore(tmp_path / "snaps")
    a, b = snap(T1), snap(T2, trend="neutral")
    c = snap(T3, vix_level=None, degraded=True, degraded_reasons=["vix: feed down"])
    for s in (b, c, a):  # saved out of order on purpose
        store.save(s)
    assert store.latest() == c
    assert store.as_of(T2) == b
    assert store.as_of(T2 - dt.timedelta(microseconds=1)) == a
    assert store.as_of("2019-11-28 12:00") == a  # naive = New York
    assert store.as_of(T1 - dt.timedelta(seconds=1)) is None
    frame = store.frame()
    assert list(frame["spy_trend"]) == ["bullish", "neutral", "bullish"]
    assert frame["degraded"].tolist() == [False, False, True]


def test_same_moment_same_source_replaces_instead_of_duplicating(tmp_path):
    store = SnapshotStore(tmp_path / "snaps")
    store.save(snap(T1))
    store.save(snap(T1, trend="bearish"))
    store.save(snap(T1, source="parquet:/x"))
    assert len(store.frame()) == 2
    assert {s for s in store.frame()["data_source"]} == {"sample", "parquet:/x"}


def test_leftover_temp_files_are_invisible(tmp_path):
    store = SnapshotStore(tmp_path / "snaps")
    path = store.save(snap(T1))
    (path.parent / ".tmp-deadbeef.parquet").write_bytes(b"partial")
    assert store.latest() == snap(T1)
    assert len(store.frame()) == 1


def test_imported_conditions_without_provenance_are_refused(tmp_path):
    with pytest.raises(StoreError, match="as_of/data_source"):
        SnapshotStore(tmp_path).save(snap(T1, as_of=None))
