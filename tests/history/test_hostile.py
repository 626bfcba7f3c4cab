"""Inputs a hostile user tried, one test each: none may block or poison the store.

Each of these failed before the fix it names: an uncaught OverflowError that aborted a whole import
(and every later collect-history run), a far-future timestamp that made the store unreadable, a
nonexistent New York time silently shifted by an hour, a key given twice, sub-microsecond digits
dropped without a word, a retention window beyond the calendar, and files nobody can read.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from technic_ml.contracts import EARLIEST, LATEST, parse_record
from technic_ml.errors import ContractError, StoreError
from technic_ml.history import ScanHistoryStore
from technic_ml.history.inbox import collect_inbox
from technic_ml.history.schema import FILE_SCHEMA, records_to_table
from technic_ml.predictors.training import load_training_data
from tests.history.test_schema import make_record, record_dict, record_line

UTC = dt.UTC


@pytest.fixture
def store(tmp_path: Path) -> ScanHistoryStore:
    return ScanHistoryStore(tmp_path / "history")


def _log(tmp_path: Path, *lines: str | bytes, name: str = "log.jsonl") -> Path:
    path = tmp_path / name
    path.write_bytes(b"".join((line.encode() if isinstance(line, str) else line) + b"\n" for line in lines))
    return path


def _reads_everything(store: ScanHistoryStore, tmp_path: Path) -> int:
    """Every read path answers; returns the record count they agree on."""
    n = store.count()
    assert len(store.between(None, None)) == n
    assert len(store.recent(10**6)) == n
    assert int(store.statistics()["count"].sum()) == n
    assert len(store.frame()) == n
    assert store.export_jsonl(tmp_path / "export.jsonl") == n
    store.retention(30, mode="drop", dry_run=True)
    assert len(store.by_config(max_symbols=200)) == n
    return n


# -- 1 and 2: timestamps beyond what pandas and pyarrow hold --------------------------------------
OUT_OF_RANGE = [
    ("timestamp", "0001-01-01T00:00:00+05:00"),
    ("timestamp", "0001-01-01T00:00:00"),
    ("timestamp", "9999-12-31T23:59:59"),
    ("timestamp", "1899-12-31T23:59:59.999999"),
    ("timestamp", "2200-01-01T00:00:00"),
    ("timestamp", "2199-12-31T23:59:59.999999-10:00"),  # 2200-01-01 in New York
    ("as_of", "0001-01-01T00:00:00+05:00"),
    ("as_of", "9999-12-31T23:59:59"),
    ("spy_bar_date", "9999-12-31"),
    ("bar_date", "0001-01-01"),
]


def _with(field: str, value: str, scan_id: str) -> str:
    if field == "timestamp":
        return record_line(scan_id=scan_id, timestamp=value)
    if field == "bar_date":
        return record_line(scan_id=scan_id, provenance={"source": "backfill", "bar_date": value})
    return record_line(scan_id=scan_id, market_conditions={field: value})


@pytest.mark.parametrize(("field", "value"), OUT_OF_RANGE)
def test_a_value_outside_the_supported_range_is_quarantined_and_the_rest_kept(
    store: ScanHistoryStore, tmp_path: Path, field: str, value: str
) -> None:
    src = _log(
        tmp_path, record_line(scan_id="before"), _with(field, value, "bad"), record_line(scan_id="after")
    )
    summary = store.import_jsonl(src)
    assert (summary.added, summary.quarantined) == (2, 1)
    ((number, reason),) = summary.errors
    assert number == 2 and "supported range" in reason and field in reason
    entry = json.loads(summary.quarantine_file.read_text())
    assert entry["raw"] == _with(field, value, "bad")
    assert _reads_everything(store, tmp_path) == 2


@pytest.mark.parametrize(
    "value", ["1900-01-01T00:00:00", "2199-12-31T23:59:59.999999", "1900-01-01T00:00:00-05:00"]
)
def test_the_limits_of_the_range_are_stored_and_read_back(
    store: ScanHistoryStore, tmp_path: Path, value
) -> None:
    summary = store.import_jsonl(_log(tmp_path, record_line(timestamp=value)))
    assert summary.added == 1
    (back,) = store.between(None, None)
    assert EARLIEST <= back.timestamp <= LATEST
    assert back == parse_record(record_line(timestamp=value)).model_copy(
        update={"provenance": back.provenance}
    )
    assert _reads_everything(store, tmp_path) == 1
    data, _ = load_training_data(store, None)
    assert len(data) + len(data.dropped) == 1


def test_one_bad_inbox_file_does_not_block_collect_history(store: ScanHistoryStore, tmp_path: Path) -> None:
    inbox, processed = tmp_path / "inbox", tmp_path / "processed"
    inbox.mkdir()
    _log(
        inbox,
        record_line(scan_id="a1"),
        _with("timestamp", "0001-01-01T00:00:00+05:00", "a2"),
        name="a.jsonl",
    )
    _log(inbox, record_line(scan_id="b1"), name="b.jsonl")
    report = collect_inbox(store, inbox, processed)
    assert [(f.name, f.status, f.added, f.invalid) for f in report.files] == [
        ("a.jsonl", "imported", 1, 1),
        ("b.jsonl", "imported", 1, 0),
    ]
    assert not list(inbox.iterdir())
    assert {r.scan_id for r in store.between(None, None)} == {"a1", "b1"}


def test_an_inbox_entry_that_cannot_be_read_is_moved_aside(
    store: ScanHistoryStore, tmp_path: Path, monkeypatch, caplog
) -> None:
    inbox, processed = tmp_path / "inbox", tmp_path / "processed"
    inbox.mkdir()
    (inbox / "a.jsonl").symlink_to(tmp_path / "gone.jsonl")
    _log(inbox, record_line(scan_id="b1"), name="b.jsonl")
    _log(inbox, record_line(scan_id="c1"), name="c.jsonl")
    # Root reads any file whatever its mode, so a read error is simulated for b.jsonl.
    real_open = Path.open

    def failing_open(self, *args, **kwargs):
        if self.name == "b.jsonl":
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", failing_open)
    with caplog.at_level(logging.WARNING):
        report = collect_inbox(store, inbox, processed)
    monkeypatch.undo()
    statuses = {f.name: (f.status, f.reason) for f in report.files}
    assert statuses["a.jsonl"][0] == "unreadable" and "does not exist" in statuses["a.jsonl"][1]
    assert statuses["b.jsonl"][0] == "unreadable" and "Permission denied" in statuses["b.jsonl"][1]
    assert statuses["c.jsonl"] == ("imported", None)
    assert report.files_unreadable == 2 and "2 unreadable, moved aside" in str(report)
    assert not list(inbox.iterdir())
    assert sorted(p.name for p in (processed / "unreadable").rglob("*.jsonl")) == ["a.jsonl", "b.jsonl"]
    ledger = [json.loads(line) for line in (processed / "ledger.jsonl").read_text().splitlines()]
    assert [e["status"] for e in ledger] == ["unreadable", "unreadable", "imported"]
    assert all("moved to" in r.getMessage() for r in caplog.records if "collect-history" in r.getMessage())
    assert [r.scan_id for r in store.between(None, None)] == ["c1"]
    # The next run has nothing left to trip over, and the ledger still reads.
    assert collect_inbox(store, inbox, processed).files == []


# -- readers meet rows and files this version would never write ---------------------------------
def _write_by_hand(store: ScanHistoryStore, day: str, **row_overrides) -> Path:
    """A data file as an older version (or a hand edit) could have left it."""
    store.add(make_record(scan_id="good"))
    table = records_to_table([make_record(scan_id="hand")]).drop_columns(["scan_date"])
    for name, value in row_overrides.items():
        index = FILE_SCHEMA.get_field_index(name)
        table = table.set_column(
            index, FILE_SCHEMA.field(name), pa.array([value], FILE_SCHEMA.field(name).type)
        )
    directory = store.root / f"scan_date={day}"
    directory.mkdir(exist_ok=True)
    path = directory / "part-handmade.parquet"
    pq.write_table(table, path)
    return path


@pytest.mark.parametrize(
    "overrides",
    [
        {"timestamp": dt.datetime(9999, 12, 31, 23, 59, tzinfo=UTC)},
        {"timestamp": dt.datetime(1, 1, 1, tzinfo=UTC)},
        {"market_as_of": dt.datetime(9999, 12, 31, tzinfo=UTC)},
        {"spy_bar_date": dt.date(9999, 12, 31)},
    ],
    ids=["far-future", "year-1", "as_of", "bar-date"],
)
def test_a_row_outside_the_range_is_skipped_with_a_warning_naming_its_file(
    store: ScanHistoryStore, tmp_path: Path, caplog, overrides
) -> None:
    path = _write_by_hand(store, "2025-09-17", **overrides)
    with caplog.at_level(logging.WARNING):
        assert [r.scan_id for r in store.recent(10)] == ["good"]
        assert [r.scan_id for r in store.between(None, None)] == ["good"]
        assert list(store.frame()["scan_id"]) == ["good"]
        assert int(store.statistics()["count"].sum()) == 1
        assert store.export_jsonl(tmp_path / "out.jsonl") == 1
        load_training_data(store, None)
    assert any(str(path) in r.getMessage() and "outside" in r.getMessage() for r in caplog.records)
    # Writers carry on, and compaction keeps the row as it is rather than dropping it.
    store.add(make_record(scan_id="later"))
    store.compact()
    (merged,) = (store.root / "scan_date=2025-09-17").glob("part-*.parquet")
    assert sorted(pq.read_table(merged).column("scan_id").to_pylist()) == ["good", "hand", "later"]


def test_a_row_the_contract_rejects_is_skipped_with_a_warning(store: ScanHistoryStore, caplog) -> None:
    _write_by_hand(store, "2025-09-17", result_count=-5)
    with caplog.at_level(logging.WARNING):
        assert [r.scan_id for r in store.between(None, None)] == ["good"]
    assert any("scan_id='hand' skipped" in r.getMessage() for r in caplog.records)


def test_an_unreadable_data_file_is_skipped_by_readers_and_moved_aside_by_writers(
    store: ScanHistoryStore, tmp_path: Path, caplog
) -> None:
    store.add(make_record(scan_id="good"))
    bad = store.root / "scan_date=2025-09-18" / "part-garbage.parquet"
    bad.parent.mkdir()
    bad.write_bytes(b"PAR1 this is not parquet")
    with caplog.at_level(logging.WARNING):
        assert _reads_everything(store, tmp_path) == 1
    assert any(str(bad) in r.getMessage() for r in caplog.records)
    # A writer meets it when it checks the stored ids, and sets it aside with the reason.
    store.add(make_record(scan_id="next", timestamp="2025-09-18T10:00:00"))
    assert not bad.exists()
    moved = store.root / "_unreadable" / "scan_date=2025-09-18--part-garbage.parquet"
    assert moved.read_bytes() == b"PAR1 this is not parquet"
    (reason,) = [
        json.loads(line) for line in (store.root / "_unreadable" / "reasons.jsonl").read_text().splitlines()
    ]
    assert reason["file"] == str(bad) and "unreadable parquet" in reason["reason"]
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert _reads_everything(ScanHistoryStore(store.root), tmp_path) == 2
    assert not caplog.records


def test_writes_refuse_a_row_outside_the_range_even_past_the_contract(store: ScanHistoryStore) -> None:
    record = make_record().model_construct(
        **{**make_record().__dict__, "timestamp": dt.datetime(2300, 1, 1, tzinfo=UTC)}
    )
    with pytest.raises(StoreError, match="outside 1900-01-01T00:00 to 2199-12-31"):
        store.add(record)
    assert store.count() == 0


# -- 3: daylight-saving changes ----------------------------------------------------------------------
def test_a_wall_clock_time_inside_the_spring_forward_gap_is_quarantined(store, tmp_path) -> None:
    summary = store.import_jsonl(_log(tmp_path, record_line(timestamp="2025-03-09T02:30:00")))
    assert summary.added == 0 and summary.quarantined == 1
    assert "does not exist in New York" in summary.errors[0][1]
    with pytest.raises(ContractError, match=r"market_conditions\.as_of: received 2025-03-09T02:59:59"):
        parse_record(record_line(market_conditions={"as_of": "2025-03-09T02:59:59"}))
    # Either side of the gap is fine.
    for ok in ("2025-03-09T01:59:59.999999", "2025-03-09T03:00:00"):
        parse_record(record_line(timestamp=ok))


def test_the_fall_back_hour_round_trips_exactly_through_export(store, tmp_path) -> None:
    lines = [
        record_line(scan_id="first", timestamp="2025-11-02T01:30:00"),  # naive: the first (EDT)
        record_line(scan_id="second", timestamp="2025-11-02T01:30:00-05:00"),  # the second (EST)
    ]
    store.import_jsonl(_log(tmp_path, *lines))
    first, second = store.between(None, None)
    assert first.timestamp.astimezone(UTC) == dt.datetime(2025, 11, 2, 5, 30, tzinfo=UTC)
    assert second.timestamp.astimezone(UTC) == dt.datetime(2025, 11, 2, 6, 30, tzinfo=UTC)
    exported = tmp_path / "export.jsonl"
    store.export_jsonl(exported)
    texts = [json.loads(line)["timestamp"] for line in exported.read_text().splitlines()]
    assert texts == ["2025-11-02T01:30:00", "2025-11-02T01:30:00-05:00"]
    again = ScanHistoryStore(tmp_path / "again")
    again.import_jsonl(exported)
    assert again.between(None, None) == [first, second]


# -- 5: keys given twice, sub-microsecond digits, retention beyond the calendar ------------------------
@pytest.mark.parametrize(
    ("line", "where"),
    [
        (record_line(scan_id="a")[:-1] + ', "scan_id": "b"}', "scan_id"),
        (
            record_line(scan_id="a").replace('"max_symbols": 200', '"max_symbols": 200, "max_symbols": 5'),
            "config.max_symbols",
        ),
        (record_line(scan_id="a").replace('"profile"', '"profile": "x", "profile"'), "config.profile"),
        (record_line(scan_id="a").replace('"count": 48', '"count" : 47, "count":48'), "results.count"),
    ],
    ids=["scan_id", "declared-field", "unknown-field", "spaced-colon"],
)
def test_a_key_given_twice_is_refused_naming_it(line: str, where: str) -> None:
    with pytest.raises(ContractError, match=rf"^{where}: given twice in one object"):
        parse_record(line)


@pytest.mark.parametrize(
    "line",
    [
        record_line(scan_id='say \\":" twice'),  # '":' inside a string is not a key
        record_line(scan_id="a").replace('"scan_id":', '"scan_id" :'),  # whitespace before a colon
        json.dumps(record_dict(scan_id="a"), indent=2).replace("\n", " "),
        record_line(
            scan_id="a", config={"nested": {"count": 1, "x": {"count": 2}}}
        ),  # same key, other objects
    ],
    ids=["in-a-string", "spaced-colon", "indented", "nested-objects"],
)
def test_lines_without_a_repeated_key_are_accepted(line: str) -> None:
    assert parse_record(line).scan_id


def test_sub_microsecond_digits_are_truncated_and_counted(store: ScanHistoryStore, tmp_path: Path) -> None:
    src = _log(
        tmp_path,
        record_line(scan_id="ns", timestamp="2025-09-17T14:23:47.6634399999"),
        record_line(scan_id="asof", market_conditions={"as_of": "2025-09-17T14:20:00.1234567-04:00"}),
        record_line(scan_id="us", timestamp="2025-09-17T14:23:47.663439"),
    )
    summary = store.import_jsonl(src)
    assert summary.added == 3 and summary.truncated == 2
    assert "2 valid lines had date-times with digits beyond the microsecond" in str(summary)
    stored = {r.scan_id: r for r in store.between(None, None)}
    assert stored["ns"].timestamp.microsecond == 663439  # truncated, not rounded up to ...440
    assert stored["asof"].market_conditions.as_of.microsecond == 123456


@pytest.mark.parametrize("days", [73_000, 10**6, 10**9, 10**12])
def test_retention_beyond_the_supported_range_removes_nothing_and_says_so(
    store: ScanHistoryStore, days: int
) -> None:
    store.add(make_record(timestamp="1900-01-01T00:00:00"))
    for dry_run in (True, False):
        report = store.retention(days, mode="drop", dry_run=dry_run)
        assert report.cutoff == dt.date(1900, 1, 1) and report.records == 0
        assert "no stored scan is older" in str(report)
    assert store.count() == 1


def test_a_store_file_left_by_a_killed_writer_does_not_count(store: ScanHistoryStore) -> None:
    # A hidden temp file is a dead writer's (never readable data): readers ignore it silently.
    store.add(make_record())
    (store.root / "scan_date=2025-09-17" / ".part-x.parquet.tmp").write_bytes(b"half")
    assert store.count() == 1 and len(store.recent(5)) == 1
    assert os.listdir(store.root / "scan_date=2025-09-17")


def test_a_partition_damaged_by_hand_does_not_fail_later_writes(tmp_path: Path, caplog) -> None:
    store = ScanHistoryStore(tmp_path / "history", auto_compact_files=2)
    store.add(make_record(scan_id="a"))
    # A copy of the partition's file under another name: scan_id "a" twice, which no writer makes.
    (original,) = (store.root / "scan_date=2025-09-17").glob("part-*.parquet")
    (original.parent / "part-copy.parquet").write_bytes(original.read_bytes())
    with caplog.at_level(logging.WARNING):
        summary = store.add(make_record(scan_id="b"))  # a third file: auto-compaction meets the damage
    assert summary.added == 1
    assert any("auto-compaction of 2025-09-17 skipped" in r.getMessage() for r in caplog.records)
    with pytest.raises(StoreError, match="appears twice"):
        store.compact()  # asked for explicitly, it still says so
