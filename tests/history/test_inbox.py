"""collect_inbox: inbox -> store, processed folder, ledger, duplicates, quarantine, compaction."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest

from technic_ml.errors import StoreError
from technic_ml.history import CollectReport, ScanHistoryStore, collect_inbox
from technic_ml.history import inbox as inbox_module
from technic_ml.history.inbox import LEDGER, part_files_per_partition
from tests.history.test_schema import record_line

TODAY = dt.datetime(2026, 3, 2, 21, 15, tzinfo=dt.UTC)
DAY = TODAY.date().isoformat()


@pytest.fixture(autouse=True)
def _fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    # processed/<UTC date>/ must not depend on when the test runs (a run across midnight would flake).
    monkeypatch.setattr(inbox_module, "_utcnow", lambda: TODAY)


@pytest.fixture
def store(tmp_path: Path) -> ScanHistoryStore:
    return ScanHistoryStore(tmp_path / "history")


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    path = tmp_path / "inbox"
    path.mkdir()
    return path


@pytest.fixture
def processed(tmp_path: Path) -> Path:
    return tmp_path / "processed"


def lines(*ids: str, day: str = "2025-09-17") -> list[str]:
    return [record_line(scan_id=i, timestamp=f"{day}T14:{n:02d}:00") for n, i in enumerate(ids)]


def drop(directory: Path, name: str, content: list[str], *, end: str = "\n") -> Path:
    path = directory / name
    path.write_text("".join(line + end for line in content), encoding="utf-8")
    return path


def ledger(processed: Path) -> list[dict]:
    return [json.loads(line) for line in (processed / LEDGER).read_text().splitlines()]


def test_imports_moves_and_writes_the_ledger(store, inbox, processed):
    source = drop(inbox, "scanner-a.jsonl", lines("a1", "a2", "a3"))
    content = source.read_bytes()

    report = collect_inbox(store, inbox, processed)

    assert isinstance(report, CollectReport)
    assert (report.files_imported, report.files_duplicate, report.added, report.invalid) == (1, 0, 3, 0)
    [f] = report.files
    target = processed / DAY / "scanner-a.jsonl"
    assert (f.name, f.status, f.added, f.duplicates, f.processed_path) == (
        "scanner-a.jsonl",
        "imported",
        3,
        0,
        target,
    )
    assert not source.exists() and target.read_bytes() == content
    assert store.count() == 3
    [entry] = ledger(processed)
    assert entry == {
        "name": "scanner-a.jsonl",
        "sha256": f.sha256,
        "bytes": len(content),
        "imported_at": TODAY.isoformat(),
        "status": "imported",
        "added": 3,
        "duplicates": 0,
        "invalid": 0,
        "quarantined": 0,
        "conflicts": 0,
        "retired": 0,
        "quarantine_file": None,
        "processed_path": f"{DAY}/scanner-a.jsonl",
    }
    assert report.as_rows()[0]["file"] == "scanner-a.jsonl"
    assert "1 imported" in str(report) and "records added 3" in str(report)


def test_the_same_bytes_again_are_a_duplicate_and_still_leave_the_inbox(store, inbox, processed):
    drop(inbox, "scanner-a.jsonl", lines("a1", "a2"))
    first = collect_inbox(store, inbox, processed)
    shutil.copy(first.files[0].processed_path, inbox / "scanner-a.jsonl")

    again = collect_inbox(store, inbox, processed)

    assert (again.files_imported, again.files_duplicate, again.added) == (0, 1, 0)
    [f] = again.files
    assert f.status == "duplicate" and f.duplicate_of == first.files[0].processed_path
    # Same name on the same day: the second copy gets the hash before its suffix, nothing is overwritten.
    assert f.processed_path == processed / DAY / f"scanner-a.{f.sha256[:12]}.jsonl"
    assert not list(inbox.iterdir())
    assert store.count() == 2
    assert ledger(processed)[1]["duplicate_of"] == f"{DAY}/scanner-a.jsonl"
    assert "1 already collected" in str(again)


@pytest.mark.parametrize(
    ("name", "end"),
    [
        ("scanner-a.jsonl", "\r\n"),  # same name, other bytes: imported again, clashes in processed
        ("scanner-a-copy.jsonl", "\n\n"),  # renamed copy with an extra blank line per record
    ],
)
def test_other_bytes_with_the_same_records_add_nothing(store, inbox, processed, name, end):
    drop(inbox, "scanner-a.jsonl", lines("a1", "a2"))
    first = collect_inbox(store, inbox, processed)
    drop(inbox, name, lines("a1", "a2"), end=end)

    again = collect_inbox(store, inbox, processed)

    [f] = again.files
    assert (f.status, f.added, f.duplicates, f.invalid) == ("imported", 0, 2, 0)
    assert f.sha256 != first.files[0].sha256
    assert (again.files_imported, again.added, again.duplicates) == (1, 0, 2)
    expected_name = name if name != "scanner-a.jsonl" else f"scanner-a.{f.sha256[:12]}.jsonl"
    assert f.processed_path == processed / DAY / expected_name and f.processed_path.exists()
    assert store.count() == 2


def test_malformed_lines_are_quarantined_and_the_file_still_moves(store, inbox, processed):
    good = lines("g1", "g2")
    drop(inbox, "mixed.jsonl", [good[0], "{not json", record_line(scan_id=""), good[1]])

    report = collect_inbox(store, inbox, processed)

    [f] = report.files
    assert (f.added, f.invalid, f.quarantined, report.invalid) == (2, 2, 2, 2)
    assert store.count() == 2
    assert f.processed_path.exists() and not (inbox / "mixed.jsonl").exists()
    assert f.quarantine_file is not None and f.quarantine_file.parent == store.quarantine_dir
    entries = [json.loads(line) for line in f.quarantine_file.read_text().splitlines()]
    assert [(e["line_number"], e["raw"]) for e in entries] == [(2, "{not json"), (3, record_line(scan_id=""))]
    assert all(e["reason"] and e["source_file"].endswith("mixed.jsonl") for e in entries)
    assert ledger(processed)[0]["invalid"] == 2
    assert "2 invalid" in str(report)


def test_hidden_and_unfinished_files_are_left_alone(store, inbox, processed):
    waiting = [
        drop(inbox, ".hidden.jsonl", lines("h")),
        drop(inbox, "upload.jsonl.part", lines("p")),
        drop(inbox, "upload.jsonl.tmp", lines("t")),
        drop(inbox, "notes.txt", lines("n")),
    ]
    (inbox / "sub.jsonl").mkdir()
    drop(inbox, "b.jsonl", lines("b"))
    drop(inbox, "a.jsonl", lines("a"))

    report = collect_inbox(store, inbox, processed)

    assert [f.name for f in report.files] == ["a.jsonl", "b.jsonl"]  # name order
    assert all(p.exists() for p in waiting)
    # A wider pattern still skips names that are being written.
    assert [f.name for f in collect_inbox(store, inbox, processed, pattern="*").files] == ["notes.txt"]


def test_an_empty_inbox_is_not_an_error(store, inbox, processed):
    report = collect_inbox(store, inbox, processed)
    assert report.files == [] and report.compaction is None and report.as_rows() == []
    assert (report.files_imported, report.added, report.invalid) == (0, 0, 0)
    assert "inbox empty" in str(report)


def test_a_missing_inbox_names_the_path(store, tmp_path, processed):
    missing = tmp_path / "nowhere"
    with pytest.raises(StoreError, match=rf"inbox: {missing} does not exist; expected a directory"):
        collect_inbox(store, missing, processed)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"compact_min_files": 1}, "compact_min_files: received 1; expected an integer >= 2"),
        ({"pattern": ""}, "pattern: received ''; expected a file-name glob"),
    ],
)
def test_bad_arguments_name_the_parameter(store, inbox, processed, kwargs, message):
    with pytest.raises(ValueError, match=message):
        collect_inbox(store, inbox, processed, **kwargs)


def test_processed_must_not_be_the_inbox(store, inbox):
    with pytest.raises(ValueError, match="processed: received the inbox itself"):
        collect_inbox(store, inbox, inbox)


@pytest.mark.parametrize(("files", "compacts"), [(3, True), (2, False)])
def test_compaction_runs_when_a_partition_reaches_the_threshold(store, inbox, processed, files, compacts):
    # One small file per import: each adds one data file to the same scan_date partition.
    for i in range(files):
        drop(inbox, f"hour-{i}.jsonl", lines(f"s{i}"))
        collect_inbox(store, inbox, processed, compact_min_files=10)
    assert part_files_per_partition(store) == {dt.date(2025, 9, 17): files}

    report = collect_inbox(store, inbox, processed, compact_min_files=3)

    if compacts:
        assert report.compaction is not None
        assert (report.compaction.files_before, report.compaction.files_after) == (3, 1)
        assert "compaction:" in str(report)
        assert part_files_per_partition(store) == {dt.date(2025, 9, 17): 1}
    else:
        assert report.compaction is None
        assert part_files_per_partition(store) == {dt.date(2025, 9, 17): 2}
    assert store.count() == files


def test_a_file_left_in_the_inbox_after_its_ledger_entry_is_moved_where_the_ledger_says(
    store, inbox, processed, monkeypatch
):
    def killed(source: Path, target: Path) -> None:
        raise KeyboardInterrupt  # a collector killed between the ledger append and the move

    drop(inbox, "scanner-a.jsonl", lines("a1"))
    with monkeypatch.context() as m:
        m.setattr(inbox_module, "_move", killed)
        with pytest.raises(KeyboardInterrupt):
            collect_inbox(store, inbox, processed)
    assert (inbox / "scanner-a.jsonl").exists() and store.count() == 1

    report = collect_inbox(store, inbox, processed)

    [f] = report.files
    assert f.status == "duplicate" and f.processed_path == processed / DAY / "scanner-a.jsonl"
    assert f.processed_path.exists() and store.count() == 1


def test_a_torn_last_ledger_line_is_ignored_and_not_continued(store, inbox, processed):
    torn = '{"sha256": "abc", "processed_pa'  # a collector killed mid-append
    processed.mkdir()
    (processed / LEDGER).write_text(torn)
    drop(inbox, "scanner-a.jsonl", lines("a1"))

    report = collect_inbox(store, inbox, processed)

    assert report.files_imported == 1
    first, second = (processed / LEDGER).read_text().splitlines()
    assert first == torn and json.loads(second)["name"] == "scanner-a.jsonl"


def test_a_damaged_ledger_line_names_the_file_and_line(store, inbox, processed):
    processed.mkdir()
    (processed / LEDGER).write_text("not json\n")
    drop(inbox, "scanner-a.jsonl", lines("a1"))
    with pytest.raises(StoreError, match=r"ledger .*ledger.jsonl: line 1 is b'not json'; expected a JSON"):
        collect_inbox(store, inbox, processed)
    assert (inbox / "scanner-a.jsonl").exists() and store.count() == 0
