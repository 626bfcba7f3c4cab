"""import_jsonl / export_jsonl: line-level validation, quarantine, idempotency, the real log's round trip."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from technic_ml.contracts import Provenance, parse_record
from technic_ml.errors import StoreError
from technic_ml.history import ImportSummary, ScanHistoryStore
from technic_ml.history.jsonl import MAX_ERRORS_KEPT, import_file
from tests.history.test_schema import DROP, record_line, records


@pytest.fixture
def store(tmp_path: Path) -> ScanHistoryStore:
    return ScanHistoryStore(tmp_path / "history")


def write_lines(path: Path, lines: list[str | bytes], *, end: bytes = b"\n") -> Path:
    path.write_bytes(b"".join((x if isinstance(x, bytes) else x.encode()) + end for x in lines))
    return path


def quarantine_entries(summary: ImportSummary) -> list[dict]:
    assert summary.quarantine_file is not None
    return [json.loads(line) for line in summary.quarantine_file.read_text(encoding="utf-8").splitlines()]


def sort_key(d: dict) -> tuple[str, str]:
    return d["timestamp"], d["scan_id"]


# -- the real original log -------------------------------------------------------------------------


@pytest.mark.shared_data
def test_real_log_imports_exports_and_round_trips(shared_scan_log: Path, tmp_path: Path) -> None:
    original_lines = shared_scan_log.read_text(encoding="utf-8").splitlines()
    first = ScanHistoryStore(tmp_path / "first")
    summary = first.import_jsonl(shared_scan_log, data_source="technic_v4")
    assert (summary.lines_read, summary.added, summary.quarantined, summary.quarantine_file) == (
        150,
        150,
        0,
        None,
    )
    assert first.count() == 150

    export_1 = tmp_path / "export-1.jsonl"
    assert first.export_jsonl(export_1) == 150
    second = ScanHistoryStore(tmp_path / "second")
    assert second.import_jsonl(export_1, data_source="technic_v4").added == 150
    export_2 = tmp_path / "export-2.jsonl"
    assert second.export_jsonl(export_2) == 150

    # Exports are ordered by (timestamp, scan_id); line by line they equal the original's lines in that order.
    expected = sorted((json.loads(line) for line in original_lines), key=sort_key)
    for export in (export_1, export_2):
        assert [json.loads(line) for line in export.read_text().splitlines()] == expected
    stored_1, stored_2 = first.between(None, None), second.between(None, None)
    assert stored_1 == stored_2
    parsed = sorted((parse_record(line) for line in original_lines), key=lambda r: (r.timestamp, r.scan_id))
    provenance = Provenance(source="scanner_log", data_source="technic_v4")
    assert stored_1 == [r.model_copy(update={"provenance": provenance}) for r in parsed]


@pytest.mark.shared_data
def test_real_log_reimport_adds_nothing(shared_scan_log: Path, store: ScanHistoryStore) -> None:
    store.import_jsonl(shared_scan_log)
    files = sorted(store.root.rglob("*.parquet"))
    again = store.import_jsonl(shared_scan_log)
    assert (again.added, again.duplicates, again.quarantined, again.quarantine_file) == (0, 150, 0, None)
    assert sorted(store.root.rglob("*.parquet")) == files
    stats = store.statistics(by=["max_symbols"])
    assert stats["count"].sum() == 150


# -- bad lines -------------------------------------------------------------------------------------

BAD_LINES = {
    "broken-json": ('{"scan_id": "x", "timestamp": ', "broken JSON"),
    "missing-field": (record_line(scan_id="m", results=DROP), "results: missing; expected a value"),
    "negative-count": (
        record_line(scan_id="n", results={"count": -1, "signals": 0}),
        "results.count: received -1; expected greater than or equal to 0",
    ),
    "wrong-type": (
        record_line(scan_id="w", config={"max_symbols": "200"}),
        'config.max_symbols: received "200"',
    ),
    "signals-over-count": (
        record_line(scan_id="s", results={"count": 1, "signals": 2}),
        r"results.signals: received 2; expected at most results.count \(1\)",
    ),
    "beyond-int64": (
        record_line(scan_id="b", results={"count": 2**63, "signals": 0}),
        "results.count: received 9223372036854775808; expected at most 9223372036854775807",
    ),
    "not-an-object": ("[1, 2, 3]", "expected"),
    "non-utf8": (b'{"scan_id": "caf\xe9"}', "line is not valid UTF-8: byte 0xe9 at column 17"),
}


@pytest.mark.parametrize("case", sorted(BAD_LINES))
def test_bad_line_is_quarantined_and_the_rest_kept(
    store: ScanHistoryStore, tmp_path: Path, case: str
) -> None:
    bad, reason = BAD_LINES[case]
    src = write_lines(
        tmp_path / "log.jsonl", [record_line(scan_id="good-1"), bad, record_line(scan_id="good-2")]
    )
    summary = store.import_jsonl(src)
    assert (summary.lines_read, summary.added, summary.quarantined, summary.invalid) == (3, 2, 1, 1)
    assert summary.errors[0][0] == 2
    (entry,) = quarantine_entries(summary)
    assert entry["source_file"] == str(src) and entry["line_number"] == 2
    assert re.search(reason, entry["reason"]), entry["reason"]
    raw = bad if isinstance(bad, bytes) else bad.encode()
    if "raw_base64" in entry:
        assert base64.b64decode(entry["raw_base64"]) == raw
    else:
        assert entry["raw"].encode() == raw
    assert summary.quarantine_file.parent == store.quarantine_dir
    assert sorted(r.scan_id for r in store.recent()) == ["good-1", "good-2"]


def test_summary_accounts_for_every_line(store: ScanHistoryStore, tmp_path: Path) -> None:
    lines = [
        record_line(scan_id="a"),
        "",
        "   ",
        record_line(scan_id="a"),  # same content again: duplicate
        record_line(scan_id="a", results={"count": 1, "signals": 0}),  # same id, other content
        "{oops",
        record_line(scan_id="b"),
    ]
    summary = store.import_jsonl(write_lines(tmp_path / "log.jsonl", lines))
    assert summary.lines_read == 7
    assert (summary.blank_lines, summary.added, summary.duplicates, summary.conflicts) == (2, 2, 1, 1)
    assert (summary.quarantined, summary.invalid, summary.error_count) == (2, 1, 2)
    total = summary.blank_lines + summary.added + summary.duplicates + summary.retired + summary.quarantined
    assert total == summary.lines_read
    entries = {e["line_number"]: e["reason"] for e in quarantine_entries(summary)}
    assert entries[5] == "scan_id 'a' already seen at line 1 of this file with different content"
    assert entries[6].startswith("broken JSON")
    text = str(summary)
    assert text.startswith(f"import {summary.file}: 7 lines in ")
    assert "added 2, duplicates 1, blank 2, quarantined 2 (1 invalid, 1 conflicts)" in text
    assert "    line 5: scan_id 'a' already seen at line 1" in text


def test_conflict_with_the_store_is_quarantined(store: ScanHistoryStore, tmp_path: Path) -> None:
    store.import_jsonl(write_lines(tmp_path / "a.jsonl", [record_line(scan_id="x")]))
    changed = record_line(scan_id="x", performance={"total_seconds": 99.0})
    summary = store.import_jsonl(write_lines(tmp_path / "b.jsonl", [changed]))
    assert (summary.added, summary.conflicts, summary.quarantined) == (0, 1, 1)
    (entry,) = quarantine_entries(summary)
    assert entry["reason"].startswith(
        "scan_id 'x' already stored with different content (stored content_hash "
    )
    assert entry["raw"] == changed and entry["line_number"] == 1


def test_rerun_adds_nothing_and_only_reports_the_malformed_again(
    store: ScanHistoryStore, tmp_path: Path
) -> None:
    src = write_lines(tmp_path / "log.jsonl", [record_line(scan_id="a"), "{bad", record_line(scan_id="b")])
    first = store.import_jsonl(src)
    second = store.import_jsonl(src)
    assert (second.added, second.duplicates, second.quarantined) == (0, 2, 1)
    assert [e["line_number"] for e in quarantine_entries(second)] == [2]
    assert first.quarantine_file != second.quarantine_file
    assert store.count() == 2


def test_line_endings_bom_and_missing_final_newline(store: ScanHistoryStore, tmp_path: Path) -> None:
    src = tmp_path / "windows.jsonl"
    src.write_bytes(
        b"\xef\xbb\xbf" + record_line(scan_id="a").encode() + b"\r\n\r\n" + record_line(scan_id="b").encode()
    )
    summary = store.import_jsonl(src)
    assert (summary.lines_read, summary.blank_lines, summary.added, summary.quarantined) == (3, 1, 2, 0)


def test_empty_file(store: ScanHistoryStore, tmp_path: Path) -> None:
    src = tmp_path / "empty.jsonl"
    src.write_bytes(b"")
    summary = store.import_jsonl(src)
    assert (summary.lines_read, summary.added, summary.quarantine_file) == (0, 0, None)


def test_provenance_is_filled_only_when_missing(store: ScanHistoryStore, tmp_path: Path) -> None:
    lines = [
        record_line(scan_id="plain"),
        record_line(scan_id="tagged", provenance={"source": "backfill", "data_source": "parquet"}),
    ]
    store.import_jsonl(write_lines(tmp_path / "log.jsonl", lines), source="backfill", data_source="yfinance")
    by_id = {r.scan_id: r.provenance for r in store.recent()}
    assert by_id == {
        "plain": Provenance(source="backfill", data_source="yfinance"),
        "tagged": Provenance(source="backfill", data_source="parquet"),
    }
    exported = tmp_path / "out.jsonl"
    store.export_jsonl(exported, include_provenance=True)
    assert [json.loads(line)["provenance"] for line in exported.read_text().splitlines()] == [
        {"source": "backfill", "data_source": "yfinance"},
        {"source": "backfill", "data_source": "parquet"},
    ]


def test_errors_keep_the_first_few_and_count_all(store: ScanHistoryStore, tmp_path: Path) -> None:
    src = write_lines(tmp_path / "log.jsonl", ["{bad"] * (MAX_ERRORS_KEPT + 5))
    summary = store.import_jsonl(src)
    assert len(summary.errors) == MAX_ERRORS_KEPT and summary.error_count == MAX_ERRORS_KEPT + 5
    assert [n for n, _ in summary.errors] == list(range(1, MAX_ERRORS_KEPT + 1))
    assert "... and 5 more" in str(summary)
    assert len(quarantine_entries(summary)) == MAX_ERRORS_KEPT + 5


def test_missing_file_and_directory(store: ScanHistoryStore, tmp_path: Path) -> None:
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(StoreError, match=f"{missing} does not exist"):
        store.import_jsonl(missing)
    with pytest.raises(StoreError, match="is not a regular file"):
        store.import_jsonl(tmp_path)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"source": "manual"}, "source: received 'manual'; expected one of"),
        ({"data_source": 3}, "data_source: received 3; expected a string or None"),
        ({"workers": 0}, "workers: received 0; expected a positive integer"),
        ({"batch_records": 0}, "batch_records: received 0"),
    ],
)
def test_import_validates_arguments(store: ScanHistoryStore, tmp_path: Path, kwargs, message) -> None:
    src = write_lines(tmp_path / "log.jsonl", [record_line()])
    with pytest.raises(ValueError, match=message):
        store.import_jsonl(src, **kwargs)


def test_progress_reports_bytes(store: ScanHistoryStore, tmp_path: Path) -> None:
    lines = [
        record_line(scan_id=f"s{i}", timestamp=f"2025-09-{10 + i % 5}T10:{i % 60:02d}:00") for i in range(30)
    ]
    src = write_lines(tmp_path / "log.jsonl", lines)
    calls: list[tuple[int, int]] = []
    summary = import_file(
        src,
        commit=lambda table: _commit(store, table),
        quarantine_dir=store.quarantine_dir,
        progress=lambda done, total: calls.append((done, total)),
        chunk_bytes=3000,
        batch_records=10,
    )
    size = src.stat().st_size
    assert summary.added == 30
    assert calls[-1] == (size, size)
    done = [d for d, _ in calls]
    assert len(calls) >= 3 and done == sorted(set(done))
    one_call: list[tuple[int, int]] = []
    store.import_jsonl(src, progress=lambda d, t: one_call.append((d, t)))
    assert one_call == [(size, size)]


@pytest.mark.slow
def test_process_pool_gives_the_same_result(tmp_path: Path) -> None:
    lines = [
        record_line(scan_id=f"s{i:05d}", timestamp=f"2025-09-{10 + i % 20}T{i % 24:02d}:{i % 60:02d}:00")
        for i in range(3000)
    ]
    lines[1234] = "{broken"
    lines[2345] = lines[5]
    src = write_lines(tmp_path / "log.jsonl", lines)
    in_process = ScanHistoryStore(tmp_path / "one").import_jsonl(src, workers=1)
    pooled_store = ScanHistoryStore(tmp_path / "two")
    # Tiny chunks so both workers and the warm-up path in the parent take part.
    pooled = import_file(
        src,
        commit=lambda table: _commit(pooled_store, table),
        quarantine_dir=pooled_store.quarantine_dir,
        workers=2,
        chunk_bytes=20_000,
        batch_records=700,
    )
    fields = ("lines_read", "added", "duplicates", "quarantined", "errors")
    assert [getattr(pooled, f) for f in fields] == [getattr(in_process, f) for f in fields]
    assert ScanHistoryStore(tmp_path / "one").frame().equals(pooled_store.frame())


def _commit(store: ScanHistoryStore, table):
    with store._writing() as layout:
        return store._commit(layout, table)


def test_export_window_and_atomicity(store: ScanHistoryStore, tmp_path: Path) -> None:
    lines = [record_line(scan_id=f"s{d}", timestamp=f"2025-09-{d}T12:00:00") for d in (15, 16, 17, 18)]
    store.import_jsonl(write_lines(tmp_path / "log.jsonl", lines))
    out = tmp_path / "window.jsonl"
    assert store.export_jsonl(out, start="2025-09-16", end="2025-09-18") == 2
    assert [json.loads(line)["scan_id"] for line in out.read_text().splitlines()] == ["s16", "s17"]
    assert not list(tmp_path.glob(".window.jsonl*"))
    with pytest.raises(StoreError, match=r"directory .* does not exist"):
        store.export_jsonl(tmp_path / "missing" / "out.jsonl")
    assert store.export_jsonl(tmp_path / "none.jsonl", start="2030-01-01") == 0
    assert (tmp_path / "none.jsonl").read_text() == ""


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(records(), min_size=1, max_size=6, unique_by=lambda r: r.scan_id))
def test_import_export_round_trip_of_any_valid_records(rs) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        src = tmp_path / "log.jsonl"
        src.write_text("".join(r.to_original_json(include_provenance=True) + "\n" for r in rs))
        first = ScanHistoryStore(tmp_path / "first")
        assert first.import_jsonl(src).added == len(rs)
        first.export_jsonl(tmp_path / "one.jsonl", include_provenance=True)
        second = ScanHistoryStore(tmp_path / "second")
        assert second.import_jsonl(tmp_path / "one.jsonl").added == len(rs)
        second.export_jsonl(tmp_path / "two.jsonl", include_provenance=True)
        default = Provenance(source="scanner_log")
        expected = sorted(
            (r if r.provenance else r.model_copy(update={"provenance": default}) for r in rs),
            key=lambda r: (r.timestamp.astimezone(dt.UTC), r.scan_id),
        )
        for export in ("one.jsonl", "two.jsonl"):
            lines = (tmp_path / export).read_text().splitlines()
            assert [json.loads(line) for line in lines] == [
                json.loads(r.to_original_json(include_provenance=True)) for r in expected
            ]
        assert first.between(None, None) == second.between(None, None) == expected


def test_parser_processes_do_not_load_the_store() -> None:
    # Each spawned parser imports the jsonl module; pulling in the store (and its analytics stack)
    # there cost ~0.4 s of CPU per process on every large import.
    code = (
        "import sys, technic_ml.history.jsonl\n"
        "names = ('technic_ml.history.store', 'technic_ml.history.inbox')\n"
        "loaded = sorted(m for m in names if m in sys.modules)\n"
        "print(','.join(loaded))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
    # The package still offers its names, loaded on first use.
    from technic_ml import history

    assert history.ScanHistoryStore is ScanHistoryStore
    assert "collect_inbox" in dir(history)
    assert sorted(history.__all__) == sorted(history._HOME)
    assert all(getattr(history, name) is not None for name in history.__all__)
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = history.no_such_name
