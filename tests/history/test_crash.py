"""Crash safety and concurrency with real processes: SIGKILL mid-import and mid-compaction, and two
importers racing on the same file."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from technic_ml.contracts import parse_record
from technic_ml.history import ScanHistoryStore
from tests.history.test_schema import record_line

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow

# Imports a file in small batches and prints progress. HOOK optionally blocks the child at a chosen
# point (announcing "BLOCKED" first) so the parent can kill it exactly there.
CHILD = r"""
import json, os, sys, time
from pathlib import Path
from technic_ml.history import ScanHistoryStore, jsonl

root, action, arg = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
hook = json.loads(sys.argv[4]) if len(sys.argv) > 4 else None

def block():
    print("BLOCKED", flush=True)
    time.sleep(600)

if hook:
    seen = {"n": 0}
    real = getattr(os, hook["function"])
    def hooked(*args, **kwargs):
        name = os.path.basename(str(args[0]))
        if name.startswith(hook["prefix"]) and name.endswith(hook["suffix"]):
            seen["n"] += 1
            if seen["n"] > hook.get("after", 0):
                block()
        return real(*args, **kwargs)
    setattr(os, hook["function"], hooked)

store = ScanHistoryStore(root, auto_compact_files=None)
if action == "import":
    print("ready", flush=True)
    go = root.parent / "go"
    while len(sys.argv) > 5 and not go.exists():
        time.sleep(0.005)
    def commit(table):
        with store._writing() as layout:
            return store._commit(layout, table)
    summary = jsonl.import_file(
        Path(arg), commit=commit, quarantine_dir=store.quarantine_dir, workers=1,
        chunk_bytes=int(os.environ.get("CHILD_CHUNK_BYTES", "60000")),
        batch_records=50, progress=lambda done, total: print("progress", done, total, flush=True),
    )
    counts = {k: getattr(summary, k) for k in ("added", "duplicates", "conflicts", "quarantined")}
    print("summary", json.dumps(counts), flush=True)
elif action == "compact":
    print("compacted", store.compact(), flush=True)
"""


def spawn(*args: str, chunk_bytes: int = 60_000) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "CHILD_CHUNK_BYTES": str(chunk_bytes)}
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def wait_for(proc: subprocess.Popen, word: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"child exited before {word!r}: {proc.stderr.read()}")
        if line.startswith(word):
            return line
    raise AssertionError(f"child did not print {word!r} within {timeout} s")


def kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def write_log(path: Path, n: int, days: int = 40) -> dict[str, object]:
    """n records spread over ``days`` New York days; returns scan_id -> expected record."""
    first_day = dt.datetime(2025, 8, 1, 9, 0)
    lines = [
        record_line(
            scan_id=f"s{i:05d}",
            timestamp=(first_day + dt.timedelta(days=i % days, hours=i % 7, minutes=i % 60)).isoformat(),
            results={"count": i % 50, "signals": 0},
        )
        for i in range(n)
    ]
    path.write_text("\n".join(lines) + "\n")
    return {r.scan_id: r for r in map(parse_record, lines)}


def assert_consistent(root: Path, expected: dict[str, object], *, journal_pending: bool = False) -> int:
    """The store reads, holds only whole records that match the source, and plain pyarrow discovery
    agrees (except while a compaction journal is pending: pyarrow does not know about journals)."""
    store = ScanHistoryStore(root)
    stored = store.between(None, None)
    ids = [r.scan_id for r in stored]
    assert len(ids) == len(set(ids)) == store.count()
    for record in stored:
        assert record.model_copy(update={"provenance": None}) == expected[record.scan_id]
    if not journal_pending:
        discovered = ds.dataset(root, format="parquet", partitioning="hive").to_table(columns=["scan_id"])
        assert sorted(discovered.column("scan_id").to_pylist()) == sorted(ids)
    return len(ids)


def temp_files(root: Path) -> list[Path]:
    return list(root.rglob(".*.tmp"))


def test_kill_between_temp_write_and_rename_then_rerun_completes(tmp_path: Path) -> None:
    src = tmp_path / "log.jsonl"
    expected = write_log(src, 600)
    root = tmp_path / "history"
    # Block on the 3rd data-file rename of the run: two files of a batch are in place, the rest are
    # complete temp files that never got renamed.
    hook = {"function": "rename", "prefix": ".part-", "suffix": ".parquet.tmp", "after": 2}
    child = spawn(str(root), "import", str(src), json.dumps(hook))
    wait_for(child, "BLOCKED")
    kill(child)
    assert temp_files(root), "the kill should leave unrenamed temp files behind"
    partial = assert_consistent(root, expected)
    assert 0 < partial < 600

    summary = ScanHistoryStore(root).import_jsonl(src)
    assert (summary.added, summary.duplicates, summary.quarantined) == (600 - partial, partial, 0)
    assert not temp_files(root), "the next writer removes the dead writer's temp files"
    assert assert_consistent(root, expected) == 600


def test_sigkill_at_an_arbitrary_moment_of_a_big_import(tmp_path: Path) -> None:
    src = tmp_path / "log.jsonl"
    expected = write_log(src, 4000, days=120)
    root = tmp_path / "history"
    child = spawn(str(root), "import", str(src), chunk_bytes=400_000)
    wait_for(child, "progress")
    wait_for(child, "progress")
    # Kill as soon as a writer's temp file shows up in the first partition (mid-commit), or after a
    # few more progress lines: either way the child is somewhere in the middle of its work.
    first_partition = root / "scan_date=2025-08-01"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not list(first_partition.glob(".*.tmp")):
        time.sleep(0.0005)
    kill(child)
    partial = assert_consistent(root, expected)
    assert partial < 4000
    summary = ScanHistoryStore(root).import_jsonl(src)
    assert summary.added == 4000 - partial and summary.duplicates == partial
    assert assert_consistent(root, expected) == 4000
    assert not temp_files(root)


@pytest.mark.parametrize(
    "hook",
    [
        # Merged file written and journal recorded, killed before the merged file is renamed in.
        {"function": "rename", "prefix": ".part-", "suffix": ".parquet.tmp"},
        # Merged file renamed in, killed while deleting the files it replaces.
        {"function": "unlink", "prefix": "part-", "suffix": ".parquet", "after": 1},
    ],
    ids=["before-rename", "while-deleting-old-files"],
)
def test_kill_during_compaction(tmp_path: Path, hook: dict) -> None:
    src = tmp_path / "log.jsonl"
    expected = write_log(src, 300, days=2)
    root = tmp_path / "history"
    store = ScanHistoryStore(root, auto_compact_files=None)
    lines = src.read_text().splitlines()
    for start in range(0, 300, 30):  # ten small imports: ten files per partition
        part = tmp_path / f"part-{start}.jsonl"
        part.write_text("\n".join(lines[start : start + 30]) + "\n")
        store.import_jsonl(part)
    files_before = len(list(root.glob("scan_date=*/part-*.parquet")))
    assert files_before == 20

    child = spawn(str(root), "compact", "-", json.dumps(hook))
    wait_for(child, "BLOCKED")
    kill(child)
    assert (root / "_compaction.json").exists()
    # Store readers see every record exactly once although old and merged files may both exist.
    assert assert_consistent(root, expected, journal_pending=True) == 300

    report = ScanHistoryStore(root).compact()  # the next writer finishes or rolls back, then compacts
    assert not (root / "_compaction.json").exists()
    assert not temp_files(root)
    assert len(list(root.glob("scan_date=*/part-*.parquet"))) == 2
    assert report.files_after == 2
    assert assert_consistent(root, expected) == 300


def test_two_processes_importing_the_same_file_store_each_record_once(tmp_path: Path) -> None:
    src = tmp_path / "log.jsonl"
    expected = write_log(src, 2000, days=30)
    root = tmp_path / "history"
    children = [
        spawn(str(root), "import", str(src), "null", "wait-for-go", chunk_bytes=200_000) for _ in range(2)
    ]
    for child in children:
        wait_for(child, "ready")
    (tmp_path / "go").touch()
    summaries = [json.loads(wait_for(child, "summary").split(" ", 1)[1]) for child in children]
    for child in children:
        assert child.wait(timeout=60) == 0, child.stderr.read()
    assert sum(s["added"] for s in summaries) == 2000
    assert sum(s["duplicates"] for s in summaries) == 2000
    assert all(s["conflicts"] == 0 and s["quarantined"] == 0 for s in summaries)
    assert assert_consistent(root, expected) == 2000


def _session_processes(sid: int) -> list[tuple[int, str]]:
    """(pid, command line) of every live process in session ``sid`` (zombies excluded)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        state, session = fields[0], int(fields[3])
        if session == sid and state != "Z":
            found.append((int(entry.name), cmdline[:120]))
    return found


POOL_CHILD = r"""
import sys
from pathlib import Path
from technic_ml.history import ScanHistoryStore
store = ScanHistoryStore(Path(sys.argv[1]))
print("start", flush=True)
store.import_jsonl(Path(sys.argv[2]), workers=2, batch_records=10**9,
                   progress=lambda done, total: print("progress", done, total, flush=True))
"""


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table from /proc")
def test_sigkill_of_an_import_leaves_no_parser_process_behind(tmp_path: Path) -> None:
    # Parser workers blocked writing their results to a pipe nobody reads any more used to live on
    # for minutes (about 175 MB each), with a multiprocessing resource tracker.
    src = tmp_path / "log.jsonl"
    line = record_line(scan_id="x", timestamp="2025-08-01T10:00:00")
    with src.open("w") as f:  # ~30 MB: parsing takes the two workers several seconds
        for i in range(50_000):
            f.write(line.replace('"x"', f'"s{i:06d}"', 1) + "\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [sys.executable, "-c", POOL_CHILD, str(tmp_path / "history"), str(src)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True,
    )  # fmt: skip
    try:
        wait_for(child, "start")
        # Kill once both parser processes are running (spawned, so their command line says so).
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            parsers = [
                p for p in _session_processes(child.pid) if "multiprocessing" in p[1] and p[0] != child.pid
            ]
            if len([p for p in parsers if "resource_tracker" not in p[1]]) >= 2:
                break
            time.sleep(0.05)
        else:
            raise AssertionError(f"no parser processes appeared: {_session_processes(child.pid)}")
        time.sleep(1.0)  # mid-parse: the workers have started on their chunks
        assert child.poll() is None, "the import finished before it could be killed; make the file bigger"
        kill(child)
        deadline = time.monotonic() + 10
        while (left := _session_processes(child.pid)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not left, f"processes of the killed import still alive after 10 s: {left}"
    finally:
        for pid, _ in _session_processes(child.pid):
            os.kill(pid, signal.SIGKILL)
