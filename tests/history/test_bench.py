"""The benchmark's import path on 20,000 generated records: correctness, not timing."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from technic_ml.contracts import parse_record
from technic_ml.history import ScanHistoryStore

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_history.py"
N = 20_000


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_history", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generator_is_deterministic_and_valid() -> None:
    bench = load_bench()
    first = list(bench.generate_lines(500))
    assert first == list(bench.generate_lines(500))
    records = [parse_record(line) for line in first]
    assert len({r.scan_id for r in records}) == 500
    assert records[0].timestamp < records[-1].timestamp
    assert {r.market_conditions.day_of_week for r in records} == set(range(7))


@pytest.mark.slow
def test_bench_import_path_on_20k_records(tmp_path: Path) -> None:
    bench = load_bench()
    src = tmp_path / "scan_history.jsonl"
    bench.write_file(src, N)
    store = ScanHistoryStore(tmp_path / "history")
    summary = store.import_jsonl(src, workers=2)  # the process-pool path the 1M-record bench takes
    assert (summary.lines_read, summary.added, summary.quarantined) == (N, N, 0)
    assert store.count() == N

    recent = store.recent(100)
    assert [r.scan_id for r in recent] == [f"bench_{i:08d}" for i in range(N - 1, N - 101, -1)]

    frame = store.frame()
    assert len(frame) == N and frame["scan_id"].is_unique
    matched = store.by_config(max_symbols=200, sectors=["Technology"])
    expected = frame[(frame["max_symbols"] == 200) & (frame["sectors_key"] == '["Technology"]')]
    assert [r.scan_id for r in matched] == expected["scan_id"].tolist()
    stats = store.statistics(by=["max_symbols", "lookback_days"])
    assert stats["count"].sum() == N and len(stats) == 6 * 5

    files = len(list(store.root.glob("scan_date=*/*.parquet")))
    report = store.compact()
    assert report.files_after == len(list(store.root.glob("scan_date=*/*.parquet"))) <= files
    assert store.count() == N

    out = tmp_path / "export.jsonl"
    assert store.export_jsonl(out) == N
    with src.open() as original, out.open() as exported:
        for a, b in zip(original, exported, strict=True):
            assert json.loads(a) == json.loads(b)
