"""DeltaHistoryStore: the object-storage history, tested here on local disk (the S3 run is
tests/test_shared_bucket.py). Same answers as the local store; each scan stored once under
concurrent writers; conflicts quarantined; versions readable as they were."""

from __future__ import annotations

import json
import multiprocessing
import time
from pathlib import Path

import pandas as pd
import pytest

from technic_ml.errors import StoreError
from technic_ml.history import ScanHistoryStore
from technic_ml.history.jsonl import sample_scan_log
from tests.history.test_crash import write_log

deltalake = pytest.importorskip("deltalake")
from technic_ml.history.delta import DeltaHistoryStore  # noqa: E402


def _delta(tmp_path: Path, name: str = "delta") -> DeltaHistoryStore:
    return DeltaHistoryStore(tmp_path / name, quarantine_dir=tmp_path / f"{name}-quarantine")


def test_answers_every_query_as_the_local_store_does(tmp_path):
    delta, local = _delta(tmp_path), ScanHistoryStore(tmp_path / "local")
    for store in (delta, local):
        summary = store.import_jsonl(sample_scan_log())
        assert (summary.added, summary.quarantined) == (150, 0)
    assert delta.count() == local.count() == 150
    pd.testing.assert_frame_equal(delta.frame(), local.frame())
    pd.testing.assert_frame_equal(delta.statistics(), local.statistics())
    by = ["max_symbols", "sectors"]
    pd.testing.assert_frame_equal(delta.statistics(by=by), local.statistics(by=by))
    assert [r.scan_id for r in delta.recent(7)] == [r.scan_id for r in local.recent(7)]
    first = local.frame()["timestamp"].iloc[40]
    assert delta.between(first, None) == local.between(first, None)
    assert delta.by_config(max_symbols=100) == local.by_config(max_symbols=100)
    ids = [r.scan_id for r in local.recent(3)] + ["never-stored"]
    assert delta.stored_ids(ids) == local.stored_ids(ids) == set(ids[:3])


def test_a_reimport_adds_nothing_and_a_changed_record_is_quarantined_with_the_reason(tmp_path):
    store = _delta(tmp_path)
    store.import_jsonl(sample_scan_log())
    version = store.version()
    again = store.import_jsonl(sample_scan_log())
    assert (again.added, again.duplicates) == (0, 150)
    assert store.version() == version  # nothing new: no commit at all
    assert_a_changed_record_is_quarantined(store, sample_scan_log(), tmp_path)


def assert_a_changed_record_is_quarantined(store, log: Path, tmp_path: Path):
    """The first record of ``log`` (already stored) again with another result count: kept out,
    quarantined with the reason, and the store's count unchanged."""
    before = store.count()
    line = json.loads(log.read_text().splitlines()[0])
    line["results"]["count"] += 1
    changed = tmp_path / "changed.jsonl"
    changed.write_text(json.dumps(line) + "\n")
    summary = store.import_jsonl(changed)
    assert (summary.added, summary.conflicts) == (0, 1)
    assert "different content" in Path(summary.quarantine_file).read_text()
    assert store.count() == before
    return summary


def test_every_commit_is_a_version_that_reads_back_as_it_was(tmp_path):
    store = _delta(tmp_path)
    identity = store.identity()  # creates the empty table: version 0
    records = ScanHistoryStore(tmp_path / "src")
    records.import_jsonl(sample_scan_log())
    first, rest = records.recent(150)[100:], records.recent(150)[:100]
    store.add(first)
    store.add(rest)
    assert store.version() == 2 and store.identity() == identity
    pinned = DeltaHistoryStore(store.url, quarantine_dir=tmp_path / "q", version=1)
    assert pinned.count() == 50 and store.count() == 150
    with pytest.raises(StoreError, match="read-only"):
        pinned.add(rest)


def test_retention_is_refused_naming_the_store_that_has_it(tmp_path):
    with pytest.raises(StoreError, match="retention: not offered for the Delta scan history"):
        _delta(tmp_path).retention(30, mode="drop")


def _import(url: str, quarantine: str, src: str, go, out) -> None:
    store = DeltaHistoryStore(url, quarantine_dir=Path(quarantine))
    go.wait(30)
    summary = store.import_jsonl(Path(src), batch_records=100)
    out.put((summary.added, summary.duplicates, summary.conflicts))


@pytest.mark.slow
def test_two_processes_importing_the_same_file_store_each_record_once(tmp_path):
    src = tmp_path / "log.jsonl"
    expected = write_log(src, 2000, days=30)
    url = str(tmp_path / "history")
    _delta(tmp_path, "history").identity()
    context = multiprocessing.get_context("spawn")
    go, out = context.Event(), context.Queue()
    children = [
        context.Process(target=_import, args=(url, str(tmp_path / f"q{i}"), str(src), go, out))
        for i in range(2)
    ]
    for child in children:
        child.start()
    go.set()
    results = [out.get(timeout=300) for _ in children]
    for child in children:
        child.join(timeout=60)
        assert child.exitcode == 0
    # 20 commits of 100 each per process, racing: every scan once, every other one a duplicate.
    assert sum(r[0] for r in results) == 2000, results
    assert sum(r[1] for r in results) == 2000, results
    assert all(r[2] == 0 for r in results)
    frame = DeltaHistoryStore(url, quarantine_dir=tmp_path / "q").frame()
    assert len(frame) == 2000 and frame["scan_id"].is_unique
    assert set(frame["scan_id"]) == set(expected)


@pytest.mark.slow
@pytest.mark.parametrize("commits_before_kill", [1, 4, 9])
def test_an_import_killed_mid_way_leaves_a_readable_table_and_a_rerun_completes_it(
    tmp_path, commits_before_kill
):
    src = tmp_path / "log.jsonl"
    expected = write_log(src, 2000, days=30)
    url = str(tmp_path / "history")
    store = _delta(tmp_path, "history")
    store.identity()  # version 0
    context = multiprocessing.get_context("spawn")
    go, out = context.Event(), context.Queue()
    child = context.Process(target=_import, args=(url, str(tmp_path / "q0"), str(src), go, out))
    child.start()
    go.set()
    deadline = time.monotonic() + 120
    while store.version() < commits_before_kill and child.is_alive() and time.monotonic() < deadline:
        time.sleep(0.005)
    child.kill()
    child.join(timeout=30)
    # Whatever was committed is whole: every stored row is one of the log's, each once.
    partial = store.frame()
    assert len(partial) > 0 and partial["scan_id"].is_unique and set(partial["scan_id"]) <= set(expected)
    rerun = store.import_jsonl(src, batch_records=100)
    assert (rerun.added, rerun.duplicates) == (2000 - len(partial), len(partial))
    assert store.count() == 2000 and store.frame()["scan_id"].is_unique


def test_collecting_the_inbox_compacts_a_month_of_small_files(tmp_path):
    # collect-history's compaction rule (history/inbox.py) reads the Delta table's month files too.
    from technic_ml.history.inbox import collect_inbox, part_files_per_partition

    store = DeltaHistoryStore(tmp_path / "history", quarantine_dir=tmp_path / "quarantine")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    lines = sample_scan_log().read_text().splitlines()[:9]
    compactions = []
    for i, line in enumerate(lines):  # one small log, and one commit, per hourly collect
        (inbox / f"log-{i}.jsonl").write_text(line + "\n")
        report = collect_inbox(store, inbox, tmp_path / "processed", compact_min_files=8)
        compactions.append(report.compaction)
    # The 8th file of the month triggers it (the sample's scans are all in September 2025).
    assert compactions[:7] == [None] * 7 and compactions[7] is not None
    assert compactions[7].files_before == 8 and compactions[7].files_after == 1
    assert max(part_files_per_partition(store).values()) == 2 and store.count() == len(lines)
