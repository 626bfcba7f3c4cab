"""ScanHistoryStore: add, idempotency, queries, statistics, compaction, retention, layout."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from technic_ml.errors import ContractError, StoreError
from technic_ml.history import (
    AddSummary,
    CompactionReport,
    RetentionReport,
    ScanHistoryStore,
)
from technic_ml.history.schema import CONFIG_FIELDS
from technic_ml.nyse import NY
from tests.history.test_schema import make_record

UTC = dt.UTC


def at(stamp: str, scan_id: str, **overrides):
    return make_record(scan_id=scan_id, timestamp=stamp, **overrides)


def data_files(root: Path) -> list[Path]:
    return sorted(root.glob("scan_date=*/*.parquet"))


@pytest.fixture
def store(tmp_path: Path) -> ScanHistoryStore:
    return ScanHistoryStore(tmp_path / "history")


# -- empty / layout ------------------------------------------------------------------------------


def test_missing_store_reads_as_empty_and_creates_nothing(tmp_path: Path) -> None:
    store = ScanHistoryStore(tmp_path / "nowhere")
    assert store.count() == 0
    assert store.recent() == []
    assert store.between(None, None) == []
    assert store.by_config(max_symbols=200) == []
    assert store.frame().empty and "scan_id" in store.frame().columns
    stats = store.statistics()
    assert stats["count"].tolist() == [0]
    assert store.statistics(by=["max_symbols"]).empty
    assert not (tmp_path / "nowhere").exists()


def test_default_sibling_directories(tmp_path: Path) -> None:
    store = ScanHistoryStore(tmp_path / "history")
    assert store.quarantine_dir == tmp_path / "history-quarantine"
    assert store.archive_dir == tmp_path / "history-archive"
    other = ScanHistoryStore(tmp_path / "h", quarantine_dir=tmp_path / "q")
    assert other.quarantine_dir == tmp_path / "q"


def test_layout_is_hive_by_new_york_date_and_readable_by_pyarrow(store: ScanHistoryStore) -> None:
    store.add([at("2025-09-17T23:30:00", "late-evening"), at("2025-09-18T09:00:00", "morning")])
    assert sorted(p.name for p in store.root.iterdir()) == [
        ".lock",
        "_manifest.json",
        "scan_date=2025-09-17",
        "scan_date=2025-09-18",
    ]
    assert all(p.name.startswith("part-") for p in data_files(store.root))
    manifest = json.loads((store.root / "_manifest.json").read_text())
    assert manifest["format"] == "technic-ml scan history" and manifest["schema_version"] == 1
    # Plain pyarrow discovery sees the same records (hidden and _ entries are skipped).
    (store.root / "scan_date=2025-09-17" / ".part-leftover.parquet.tmp").write_bytes(b"partial")
    table = ds.dataset(store.root, format="parquet", partitioning="hive").to_table()
    assert sorted(table.column("scan_id").to_pylist()) == ["late-evening", "morning"]


def test_foreign_directory_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "not-a-store"
    root.mkdir()
    (root / "notes.txt").write_text("hello")
    with pytest.raises(StoreError, match=r"notes\.txt.*no _manifest\.json"):
        ScanHistoryStore(root).count()


def test_other_schema_version_fails_closed(store: ScanHistoryStore) -> None:
    store.add(make_record())
    manifest = store.root / "_manifest.json"
    manifest.write_text(json.dumps({"format": "technic-ml scan history", "schema_version": 99}))
    with pytest.raises(
        StoreError, match="schema_version 99; expected 'technic-ml scan history', schema_version 1"
    ):
        ScanHistoryStore(store.root).recent()


def test_unexpected_entry_in_root_is_named_and_skipped(store: ScanHistoryStore, caplog) -> None:
    store.add(make_record())
    (store.root / "stray.parquet").write_bytes(b"x")
    (store.root / "scan_date=garbage").mkdir()
    assert store.count() == 1
    assert len(store.recent(5)) == 1
    store.add(make_record(scan_id="second"))  # a writer is not blocked either
    assert store.count() == 2
    messages = [r.getMessage() for r in caplog.records]
    assert any("unexpected entry 'stray.parquet' skipped" in m for m in messages)
    assert any("'scan_date=garbage' skipped" in m for m in messages)


def test_root_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="is a file; expected a directory"):
        ScanHistoryStore(tmp_path / "file")


# -- add / idempotency -----------------------------------------------------------------------------


def test_add_is_idempotent(store: ScanHistoryStore) -> None:
    records = [at("2025-09-17T10:00:00", "a"), at("2025-09-18T10:00:00", "b")]
    assert store.add(records) == AddSummary(added=2, duplicates=0, conflicts=[])
    files = data_files(store.root)
    assert store.add(records) == AddSummary(added=0, duplicates=2, conflicts=[])
    assert store.add(records[0]) == AddSummary(added=0, duplicates=1, conflicts=[])
    assert data_files(store.root) == files
    assert store.count() == 2


def test_conflict_is_reported_and_first_record_wins(store: ScanHistoryStore) -> None:
    original = at("2025-09-17T10:00:00", "a", results={"count": 5, "signals": 1})
    store.add(original)
    changed = at("2025-09-17T10:00:00", "a", results={"count": 6, "signals": 1})
    summary = store.add([changed, at("2025-09-17T11:00:00", "b")])
    assert summary == AddSummary(added=1, duplicates=0, conflicts=["a"])
    assert "already stored with different content: a" in str(summary)
    assert store.between("2025-09-17", "2025-09-18")[0] == original


def test_conflict_inside_one_batch(store: ScanHistoryStore) -> None:
    first = at("2025-09-17T10:00:00", "a")
    second = at("2025-09-17T10:00:00", "a", results={"count": 1, "signals": 0})
    summary = store.add([first, first, second])
    assert summary == AddSummary(added=1, duplicates=1, conflicts=["a"])
    assert store.recent() == [first]


def test_provenance_is_not_content(store: ScanHistoryStore) -> None:
    store.add(make_record(provenance={"source": "scanner_log"}))
    assert store.add(make_record(provenance={"source": "backfill"})).duplicates == 1
    assert store.recent()[0].provenance.source == "scanner_log"


def test_add_rejects_non_records(store: ScanHistoryStore) -> None:
    with pytest.raises(TypeError, match=r"records\[1\]: received dict; expected a ScanRecord"):
        store.add([make_record(), {"scan_id": "x"}])
    assert store.count() == 0


def test_add_names_a_record_that_cannot_be_stored(store: ScanHistoryStore) -> None:
    too_big = make_record(scan_id="huge", results={"count": 2**64, "signals": 0})
    with pytest.raises(ContractError, match=r"records\[0\] \(scan_id 'huge'\): results\.count: received"):
        store.add(too_big)


def test_add_nothing(store: ScanHistoryStore) -> None:
    assert store.add([]) == AddSummary(added=0, duplicates=0, conflicts=[])
    assert not store.root.exists()


# -- queries ---------------------------------------------------------------------------------------


@pytest.fixture
def week(store: ScanHistoryStore) -> ScanHistoryStore:
    """Seven records over three New York days, added in shuffled order and several batches."""
    store.add([at("2025-09-18T09:30:00", "d"), at("2025-09-17T00:00:00", "a")])
    store.add([at("2025-09-17T23:59:59.999999", "c"), at("2025-09-19T16:00:00", "g")])
    store.add(
        [at("2025-09-17T12:00:00", "b"), at("2025-09-18T20:00:00-04:00", "e"), at("2025-09-19T01:00:00", "f")]
    )
    return store


def ids(records) -> list[str]:
    return [r.scan_id for r in records]


@pytest.mark.parametrize(
    ("n", "expected"),
    [(0, []), (1, ["g"]), (3, ["g", "f", "e"]), (4, ["g", "f", "e", "d"]), (100, list("gfedcba"))],
)
def test_recent_is_newest_first(week: ScanHistoryStore, n: int, expected: list[str]) -> None:
    assert ids(week.recent(n)) == expected


@pytest.mark.parametrize("n", [-1, 1.5, True, "3"])
def test_recent_rejects_bad_n(week: ScanHistoryStore, n) -> None:
    with pytest.raises(ValueError, match=r"n: received .*; expected an integer >= 0"):
        week.recent(n)


def test_recent_reads_only_the_partitions_it_needs(week: ScanHistoryStore, caplog) -> None:
    # Damage the oldest partition: recent(2) never opens it; a read that needs it skips the damaged
    # file with a warning naming it, and returns what is readable.
    for path in (week.root / "scan_date=2025-09-17").iterdir():
        path.write_bytes(b"not parquet")
    assert ids(week.recent(2)) == ["g", "f"]
    assert ids(week.recent(4)) == ["g", "f", "e", "d"]
    assert not caplog.records
    assert ids(week.recent(5)) == ["g", "f", "e", "d"]
    assert any(
        "scan_date=2025-09-17" in r.getMessage() and "unreadable" in r.getMessage() for r in caplog.records
    )


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (dt.date(2025, 9, 17), dt.date(2025, 9, 18), ["a", "b", "c"]),
        ("2025-09-17", "2025-09-18", ["a", "b", "c"]),
        (dt.datetime(2025, 9, 17, 12), dt.datetime(2025, 9, 18, 9, 30), ["b", "c"]),  # end exclusive
        (dt.datetime(2025, 9, 17, 12), dt.datetime(2025, 9, 18, 9, 30, 0, 1), ["b", "c", "d"]),
        # Aware bounds: 04:00 UTC on Sep 18 is 00:00 in New York.
        (dt.datetime(2025, 9, 18, 4, tzinfo=UTC), None, ["d", "e", "f", "g"]),
        # c is at exactly 03:59:59.999999 UTC, and the end is exclusive.
        (None, dt.datetime(2025, 9, 18, 3, 59, 59, 999999, tzinfo=UTC), ["a", "b"]),
        (None, dt.datetime(2025, 9, 18, 4, tzinfo=UTC), ["a", "b", "c"]),
        (None, None, list("abcdefg")),
        ("2025-09-19T01:00:00", "2025-09-19T01:00:00", []),
    ],
)
def test_between(week: ScanHistoryStore, start, end, expected) -> None:
    assert ids(week.between(start, end)) == expected


def test_between_rejects_reversed_and_unknown_bounds(week: ScanHistoryStore) -> None:
    with pytest.raises(ValueError, match=r"start: received 2025-09-19.*expected a time at or before end"):
        week.between("2025-09-19", "2025-09-18")
    with pytest.raises(
        TypeError, match=r"start: received 5 \(int\); expected a datetime, date or ISO string"
    ):
        week.between(5, None)
    with pytest.raises(ValueError, match="end: received 'next tuesday'; expected an ISO date or datetime"):
        week.between(None, "next tuesday")


@pytest.fixture
def configs(store: ScanHistoryStore) -> ScanHistoryStore:
    store.add(
        [
            at("2025-09-17T10:00:00", "tech", config={"sectors": ["Technology"]}),
            at("2025-09-17T11:00:00", "tech-fin", config={"sectors": ["Technology", "Financial"]}),
            at(
                "2025-09-17T12:00:00",
                "fin-tech",
                config={"sectors": ["Financial", "Technology", "Financial"]},
            ),
            at("2025-09-18T10:00:00", "all-null", config={"sectors": None, "max_symbols": 100}),
            at("2025-09-18T11:00:00", "all-empty", config={"sectors": [], "lookback_days": 60}),
            at("2025-09-18T12:00:00", "rating", config={"min_tech_rating": 12.5, "industries": ["Banks"]}),
        ]
    )
    return store


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"max_symbols": 100}, ["all-null"]),
        ({"max_symbols": 200, "lookback_days": 120}, ["tech", "tech-fin", "fin-tech", "rating"]),
        ({"sectors": ["Technology"]}, ["tech", "rating"]),
        ({"sectors": ["Financial", "Technology"]}, ["tech-fin", "fin-tech"]),
        ({"sectors": ("Technology", "Financial", "Technology")}, ["tech-fin", "fin-tech"]),
        ({"sectors": None}, ["all-null", "all-empty"]),
        ({"sectors": []}, ["all-null", "all-empty"]),
        ({"min_tech_rating": 12.5}, ["rating"]),
        ({"min_tech_rating": 10}, ["tech", "tech-fin", "fin-tech", "all-null", "all-empty"]),
        ({"industries": ["Banks"]}, ["rating"]),
        ({"industries": None, "sectors": ["Technology"]}, ["tech"]),
        ({"max_symbols": 9999}, []),
        ({}, ["tech", "tech-fin", "fin-tech", "all-null", "all-empty", "rating"]),
    ],
)
def test_by_config(configs: ScanHistoryStore, filters, expected) -> None:
    assert ids(configs.by_config(**filters)) == expected


def test_by_config_unknown_key_lists_the_valid_ones(configs: ScanHistoryStore) -> None:
    with pytest.raises(ValueError, match="unknown key 'profile'") as info:
        configs.by_config(profile="balanced")
    for name in CONFIG_FIELDS:
        assert name in str(info.value)


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"max_symbols": "200"}, "max_symbols received '200'; expected an integer"),
        ({"max_symbols": 200.0}, "max_symbols received 200.0; expected an integer"),
        ({"min_tech_rating": True}, "min_tech_rating received True; expected a number"),
        ({"sectors": "Technology"}, "sectors received 'Technology'; expected a list of names"),
    ],
)
def test_by_config_rejects_wrong_types(configs: ScanHistoryStore, filters, message) -> None:
    with pytest.raises(ValueError, match=message):
        configs.by_config(**filters)


def test_frame_is_flat_and_new_york_aware(week: ScanHistoryStore) -> None:
    df = week.frame()
    assert list(df["scan_id"]) == list("abcdefg")
    assert str(df["timestamp"].dt.tz) == "America/New_York"
    assert df["timestamp"].iloc[0] == pd.Timestamp("2025-09-17 00:00:00", tz=NY)
    assert df["scan_date"].iloc[2] == dt.date(2025, 9, 17)
    assert df["sectors"].iloc[0] == ["Technology"]
    assert df["result_count"].dtype == "int64"
    assert list(df.columns[:3]) == ["scan_id", "timestamp", "scan_date"]


# -- statistics ------------------------------------------------------------------------------------


@pytest.fixture
def stats_store(store: ScanHistoryStore) -> ScanHistoryStore:
    def rec(i, count, seconds, **config):
        return at(
            f"2025-09-17T1{i}:00:00",
            f"s{i}",
            config=config,
            results={"count": count, "signals": 0},
            performance={"total_seconds": seconds},
        )

    store.add(
        [
            rec(0, 0, 1.0, max_symbols=100, sectors=None),
            rec(1, 10, 2.0, max_symbols=100, sectors=[]),
            rec(2, 20, 6.0, max_symbols=100, sectors=["Technology", "Financial"]),
            rec(3, 30, 4.0, max_symbols=200, sectors=["Financial", "Technology"]),
        ]
    )
    return store


def test_statistics_overall_hand_checked(stats_store: ScanHistoryStore) -> None:
    row = stats_store.statistics().iloc[0]
    assert row["count"] == 4
    assert row["mean_result_count"] == 15.0  # (0 + 10 + 20 + 30) / 4
    assert row["median_result_count"] == 15.0
    assert row["mean_total_seconds"] == 3.25  # (1 + 2 + 6 + 4) / 4
    assert row["median_total_seconds"] == 3.0
    assert row["empty_scan_rate"] == 0.25


def test_statistics_grouped_by_config(stats_store: ScanHistoryStore) -> None:
    df = stats_store.statistics(by=["max_symbols", "sectors"])
    assert df[
        ["max_symbols", "sectors", "count", "mean_result_count", "empty_scan_rate"]
    ].values.tolist() == [
        [100, "Financial, Technology", 1, 20.0, 0.0],
        [100, "all", 2, 5.0, 0.5],
        [200, "Financial, Technology", 1, 30.0, 0.0],
    ]
    by_trend = stats_store.statistics(by=["spy_trend"])
    assert by_trend["count"].tolist() == [4]


@pytest.mark.parametrize(
    ("by", "message"),
    [
        ("max_symbols", "by: received 'max_symbols'; expected a sequence of field names"),
        (["profile"], "by: unknown field 'profile'; expected one of"),
        (["max_symbols", "max_symbols"], "expected each field once"),
    ],
)
def test_statistics_rejects_bad_by(stats_store: ScanHistoryStore, by, message) -> None:
    with pytest.raises(ValueError, match=message):
        stats_store.statistics(by=by)


# -- compaction ------------------------------------------------------------------------------------


def test_compaction_preserves_records_and_reduces_files(tmp_path: Path) -> None:
    store = ScanHistoryStore(tmp_path / "h", auto_compact_files=None)
    for hour in range(10, 16):
        store.add([at(f"2025-09-17T{hour}:00:00", f"a{hour}"), at(f"2025-09-18T{hour}:30:00", f"b{hour}")])
    store.add(at("2025-09-19T10:00:00", "single"))
    before = store.frame()
    assert len(data_files(store.root)) == 13
    report = store.compact()
    assert isinstance(report, CompactionReport)
    assert (report.partitions_compacted, report.files_before, report.files_after, report.records) == (
        2,
        13,
        3,
        12,
    )
    assert "data files 13 -> 3" in str(report)
    assert len(data_files(store.root)) == 3
    pd.testing.assert_frame_equal(store.frame(), before)
    assert store.count() == 13
    assert not (store.root / "_compaction.json").exists()
    assert store.compact().partitions_compacted == 0
    # Compacted files are sorted by time and still de-duplicate.
    assert store.add(at("2025-09-17T12:00:00", "a12")).duplicates == 1


def test_compaction_rejects_bad_min_files(store: ScanHistoryStore) -> None:
    with pytest.raises(ValueError, match="min_files: received 1; expected an integer >= 2"):
        store.compact(min_files=1)


def test_auto_compaction_bounds_files_per_partition(tmp_path: Path) -> None:
    store = ScanHistoryStore(tmp_path / "h", auto_compact_files=3)
    for minute in range(10):
        store.add(at(f"2025-09-17T10:{minute:02d}:00", f"m{minute}"))
        assert len(data_files(store.root)) <= 3
    assert ids(store.between(None, None)) == [f"m{m}" for m in range(10)]


@pytest.mark.parametrize("value", [1, 0, True, 2.5])
def test_auto_compact_files_is_validated(tmp_path: Path, value) -> None:
    with pytest.raises(ValueError, match="auto_compact_files: received"):
        ScanHistoryStore(tmp_path / "h", auto_compact_files=value)


def test_readers_ignore_files_replaced_by_an_interrupted_compaction(store: ScanHistoryStore) -> None:
    # State after a crash between "merged file renamed in" and "old files deleted".
    store.add(at("2025-09-17T10:00:00", "a"))
    store.add(at("2025-09-17T11:00:00", "b"))
    partition = store.root / "scan_date=2025-09-17"
    old = sorted(p.name for p in partition.glob("part-*.parquet"))
    merged_table = pa.concat_tables(
        [ds.dataset(partition / name, format="parquet").to_table() for name in old]
    )
    import pyarrow.parquet as pq

    pq.write_table(merged_table, partition / "part-ffffffffffffffff-merged.parquet")
    (store.root / "_compaction.json").write_text(
        json.dumps(
            {"directory": partition.name, "new_file": "part-ffffffffffffffff-merged.parquet", "replaces": old}
        )
    )
    assert store.count() == 2 and ids(store.recent()) == ["b", "a"]
    store.add(at("2025-09-18T10:00:00", "c"))  # the next writer finishes the journal
    assert not (store.root / "_compaction.json").exists()
    assert sorted(p.name for p in partition.glob("*.parquet")) == ["part-ffffffffffffffff-merged.parquet"]
    assert store.count() == 3


def test_journal_whose_merged_file_never_appeared_is_rolled_back(store: ScanHistoryStore) -> None:
    store.add(at("2025-09-17T10:00:00", "a"))
    partition = store.root / "scan_date=2025-09-17"
    (partition / ".part-zzz.parquet.tmp").write_bytes(b"half a file")
    (store.root / "_compaction.json").write_text(
        json.dumps(
            {"directory": partition.name, "new_file": "part-zzz.parquet", "replaces": ["part-x.parquet"]}
        )
    )
    assert store.count() == 1
    store.add(at("2025-09-17T11:00:00", "b"))
    assert not (store.root / "_compaction.json").exists()
    assert not list(partition.glob(".*.tmp"))
    assert store.count() == 2


def test_garbled_journal_fails_closed(store: ScanHistoryStore) -> None:
    store.add(make_record())
    (store.root / "_compaction.json").write_text("{not json")
    with pytest.raises(StoreError, match=r"compaction journal .* unreadable content"):
        store.count()


# -- retention -------------------------------------------------------------------------------------


@pytest.fixture
def november(store: ScanHistoryStore) -> ScanHistoryStore:
    store.add(
        [
            at("2025-11-14T10:00:00", "n14"),
            at("2025-11-15T23:59:59", "n15"),
            at("2025-11-16T00:00:00", "n16"),
            at("2025-11-17T12:00:00", "n17"),
        ]
    )
    return store


# now = 2025-12-16 10:00 New York, 30 days: cutoff 2025-11-16; the 14th and 15th go, the 16th stays.
NOW = dt.datetime(2025, 12, 16, 10, 0)


@pytest.mark.parametrize(
    ("now", "days", "cutoff", "gone"),
    [
        (NOW, 30, dt.date(2025, 11, 16), ["n14", "n15"]),
        (NOW, 31, dt.date(2025, 11, 15), ["n14"]),
        (NOW, 32, dt.date(2025, 11, 14), []),
        (NOW, 0, dt.date(2025, 12, 16), ["n14", "n15", "n16", "n17"]),
        # 22:30 New York on Dec 16 is already Dec 17 in UTC: the cutoff uses the New York date.
        (dt.datetime(2025, 12, 17, 3, 30, tzinfo=UTC), 30, dt.date(2025, 11, 16), ["n14", "n15"]),
        (dt.datetime(2025, 12, 16, 23, 59, 59, tzinfo=NY), 30, dt.date(2025, 11, 16), ["n14", "n15"]),
        (dt.datetime(2025, 12, 17, 0, 0), 30, dt.date(2025, 11, 17), ["n14", "n15", "n16"]),
    ],
)
def test_retention_dry_run_boundaries(november: ScanHistoryStore, now, days, cutoff, gone) -> None:
    report = november.retention(days, mode="drop", now=now, dry_run=True)
    assert report.cutoff == cutoff
    assert report.records == len(gone)
    assert report.partitions == sorted({dt.date(2025, 11, int(g[1:])) for g in gone})
    assert report.dry_run and "would drop" in str(report)
    assert november.count() == 4


def test_retention_archive_moves_partitions(november: ScanHistoryStore) -> None:
    report = november.retention(30, mode="archive", now=NOW)
    assert isinstance(report, RetentionReport)
    assert (report.records, report.partitions) == (2, [dt.date(2025, 11, 14), dt.date(2025, 11, 15)])
    assert report.archive_dir == november.archive_dir
    assert "archived 2 records in 2 partitions" in str(report)
    assert ids(november.between(None, None)) == ["n16", "n17"]
    archive = ScanHistoryStore(november.archive_dir)
    assert ids(archive.between(None, None)) == ["n14", "n15"]
    assert sorted(p.name for p in archive.root.glob("scan_date=*")) == [
        "scan_date=2025-11-14",
        "scan_date=2025-11-15",
    ]


def test_retention_archive_merges_into_an_existing_archive_partition(november: ScanHistoryStore) -> None:
    november.retention(30, mode="archive", now=NOW)
    november.add(at("2025-11-14T11:00:00", "n14-late"))
    report = november.retention(30, mode="archive", now=NOW)
    assert report.records == 1
    archive = ScanHistoryStore(november.archive_dir)
    assert ids(archive.between(None, None)) == ["n14", "n14-late", "n15"]


def test_retention_drop_deletes_and_leaves_tombstones(november: ScanHistoryStore) -> None:
    report = november.retention(30, mode="drop", now=NOW)
    assert report.archive_dir is None and "dropped 2 records" in str(report)
    assert ids(november.between(None, None)) == ["n16", "n17"]
    assert not (november.root / "scan_date=2025-11-14").exists()
    assert not november.archive_dir.exists()
    # Re-adding retired records is reported, not silently re-stored.
    again = november.add([at("2025-11-14T10:00:00", "n14"), at("2025-11-15T23:59:59", "n15")])
    assert again == AddSummary(added=0, duplicates=0, conflicts=[], retired=2)
    changed = november.add(at("2025-11-14T10:00:00", "n14", results={"count": 1, "signals": 0}))
    assert changed.conflicts == ["n14"]
    assert november.count() == 2


def test_retention_nothing_to_do(november: ScanHistoryStore) -> None:
    report = november.retention(365, mode="archive", now=NOW)
    assert (report.records, report.partitions) == (0, [])
    assert november.count() == 4


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (
            {"older_than_days": -1, "mode": "drop"},
            ValueError,
            "older_than_days: received -1; expected an integer >= 0",
        ),
        ({"older_than_days": 1.5, "mode": "drop"}, ValueError, "older_than_days: received 1.5"),
        (
            {"older_than_days": 30, "mode": "delete"},
            ValueError,
            "mode: received 'delete'; expected 'archive' or 'drop'",
        ),
        (
            {"older_than_days": 30, "mode": "drop", "now": "2025-12-16"},
            TypeError,
            "now: received '2025-12-16'",
        ),
    ],
)
def test_retention_validates_arguments(november: ScanHistoryStore, kwargs, error, message) -> None:
    with pytest.raises(error, match=message):
        november.retention(**kwargs)


def test_degraded_record_with_full_provenance_round_trips_through_the_store(store: ScanHistoryStore) -> None:
    from tests.history.test_schema import FULL

    assert store.add(FULL).added == 1
    (back,) = store.recent(1)
    assert back == FULL
    assert back.market_conditions.vix_level is None
    assert back.provenance.bar_date == dt.date(2025, 10, 31)
    assert back.provenance.scanner_version == "1.0.0"


def test_stored_ids_reports_live_and_retired_ids(tmp_path: Path) -> None:
    store = ScanHistoryStore(tmp_path / "history")
    assert store.stored_ids(["a"]) == set()
    store.add([at("2025-01-02T10:00:00", "old"), at("2025-06-02T10:00:00", "new")])
    assert store.stored_ids(["old", "new", "other"]) == {"old", "new"}
    store.retention(30, mode="drop", now=dt.datetime(2025, 6, 3, tzinfo=NY))
    assert store.stored_ids(["old", "new"]) == {"old", "new"}  # "old" is retired, not forgotten
    assert store.stored_ids([]) == set()
