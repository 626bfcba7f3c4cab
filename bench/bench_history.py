"""Benchmark the scan history store at production scale and print the figures.

    .venv/bin/python bench/bench_history.py                  # 1,000,000 records (773 MB JSONL, ~4 min)
    .venv/bin/python bench/bench_history.py --records 50000  # quick run

Generates N valid records in the original scanner JSONL format spread over one year (deterministic:
same N and seed, same bytes), imports them into an empty store and measures: import throughput
(records/s, median of 3 imports into fresh stores; target >= 50,000; once on the machine as it is and
once more with one competing busy-loop process, ``--busy``), recent(100) latency (median of
repeated calls; target < 50 ms), by_config, statistics and between timings, the first write into the
full store from a fresh store object (cold id index), file counts before/after compaction, and
auto-compaction under 24 hourly imports into one day.
Everything runs under a temporary directory that is deleted at the end (``--keep`` keeps it).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench._machine import Busy, busy_counts, cpu_model  # noqa: E402
from technic_ml.contracts import parse_record  # noqa: E402
from technic_ml.history import ScanHistoryStore  # noqa: E402
from technic_ml.nyse import NY  # noqa: E402

SECTORS = [
    "Technology",
    "Financial",
    "Healthcare",
    "Energy",
    "Consumer Cyclical",
    "Industrials",
    "Utilities",
    "Real Estate",
    "Communication Services",
    "Basic Materials",
]
PROFILES = ["balanced", "aggressive", "conservative"]
START = dt.datetime(2024, 12, 2, 9, 0)


def generate_lines(n: int, *, seed: int = 20251117, days: int = 365) -> Iterator[str]:
    """``n`` valid records in the original line format, in time order over ``days`` days (NY time).

    The values follow the shape of the real 150-line log (config grid, counts, timings, market fields).
    """
    rng = random.Random(seed)
    step = days * 86400 / max(n, 1)
    for i in range(n):
        ts = START + dt.timedelta(seconds=i * step + rng.uniform(0, step * 0.9))
        if ts.replace(tzinfo=NY).astimezone(dt.UTC).astimezone(NY).replace(tzinfo=None) != ts:
            # The scanner logs New York wall-clock time, which skips 02:00-03:00 when DST starts.
            ts = ts.replace(hour=3, minute=0, second=0, microsecond=0)
        max_symbols = rng.choice((50, 100, 150, 200, 300, 500))
        rating = rng.choice((10, 20, 30, 40, 50))
        dollar = rng.choice((1000000.0, 3000000.0, 5000000.0, 10000000.0))
        sectors = (
            "null" if rng.random() < 0.22 else str(rng.sample(SECTORS, rng.randint(1, 3))).replace("'", '"')
        )
        lookback = rng.choice((30, 60, 90, 120, 180))
        count = 0 if rng.random() < 0.01 else rng.randint(1, max_symbols // 2)
        signals = rng.randint(0, count // 4)
        seconds = max_symbols * rng.uniform(0.06, 0.11)
        trend = rng.choice(("bullish", "neutral", "bearish"))
        hour = ts.hour
        dow = ts.weekday()
        market_hours = "true" if dow < 5 and (9, 30) <= (hour, ts.minute) < (16, 0) else "false"
        yield (
            f'{{"scan_id": "bench_{i:08d}", "timestamp": "{ts.isoformat()}", '
            f'"config": {{"max_symbols": {max_symbols}, "min_tech_rating": {rating}, '
            f'"min_dollar_vol": {dollar}, '
            f'"sectors": {sectors}, "lookback_days": {lookback}, '
            f'"use_alpha_blend": {"true" if rng.random() < 0.5 else "false"}, "enable_options": false, '
            f'"profile": "{rng.choice(PROFILES)}"}}, '
            f'"results": {{"count": {count}, "signals": {signals}}}, '
            f'"performance": {{"total_seconds": {seconds!r}, '
            f'"symbols_per_second": {max_symbols / seconds!r}, '
            f'"symbols_scanned": {max_symbols}, "symbols_returned": {count}}}, '
            f'"market_conditions": {{"spy_trend": "{trend}", "spy_volatility": {rng.uniform(0.1, 0.35)!r}, '
            f'"spy_momentum": {rng.uniform(-1, 1)!r}, "spy_return_5d": {rng.gauss(0, 0.02)!r}, '
            f'"spy_return_20d": {rng.gauss(0, 0.04)!r}, "vix_level": {rng.uniform(10, 35)!r}, '
            f'"time_of_day": {hour}, "day_of_week": {dow}, "is_market_hours": {market_hours}}}}}'
        )


def write_file(path: Path, n: int, seed: int = 20251117) -> None:
    with path.open("w", encoding="utf-8") as f:
        batch: list[str] = []
        for line in generate_lines(n, seed=seed):
            batch.append(line)
            if len(batch) >= 10_000:
                f.write("\n".join(batch) + "\n")
                batch = []
        if batch:
            f.write("\n".join(batch) + "\n")


def machine() -> str:
    model = cpu_model()
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (
        f"machine: nproc={cpus}, cpu={model}, python {platform.python_version()}, pyarrow {pa.__version__},"
        f" {platform.system()} {platform.release()}"
    )


def timed(fn, repeat: int = 1) -> tuple[float, object]:
    times = []
    result = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def count_files(root: Path) -> int:
    """Data files on disk (the Delta store's are under scan_month=..., and its compaction leaves
    the replaced files for time travel, so its own report is the figure to read there)."""
    return sum(1 for p in root.glob("scan_*=*/*.parquet"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--records", type=int, default=1_000_000, help="records to generate (default 1,000,000)"
    )
    parser.add_argument("--workers", type=int, default=None, help="parser processes (default: automatic)")
    parser.add_argument("--workdir", type=Path, default=None, help="where to write (default: a temp dir)")
    parser.add_argument("--import-runs", type=int, default=3, help="imports into fresh stores (median)")
    parser.add_argument("--keep", action="store_true", help="keep the generated file and store")
    parser.add_argument(
        "--busy",
        type=busy_counts,
        default=[0, 1],
        help="competing busy-loop processes during the imports, one set of runs per count (default 0,1)",
    )
    parser.add_argument(
        "--store",
        choices=("local", "delta"),
        default="local",
        help="local: ScanHistoryStore (parquet + flock); delta: DeltaHistoryStore (the object-storage"
        " store, here on local disk)",
    )
    args = parser.parse_args(argv)
    _STORE["kind"] = args.store
    n = args.records
    print(machine())
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"store: {args.store}")
    work = Path(tempfile.mkdtemp(prefix="bench-history-", dir=args.workdir))
    try:
        return run(work, n, args.workers, args.import_runs, args.busy)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work)


_STORE = {"kind": "local"}


def open_store(root: Path):
    if _STORE["kind"] == "delta":
        from technic_ml.history.delta import DeltaHistoryStore

        return DeltaHistoryStore(root, quarantine_dir=root.parent / "quarantine")
    return ScanHistoryStore(root)


def run(work: Path, n: int, workers: int | None, import_runs: int, busy_counts: list[int]) -> int:
    src = work / "scan_history.jsonl"
    t, _ = timed(lambda: write_file(src, n))
    print(f"generate: {n:,} records, {src.stat().st_size / 1e6:,.0f} MB in {t:.1f} s ({work})")

    # Reference point: validation alone, single process, on the first 20,000 lines.
    with src.open() as f:
        sample = [next(f) for _ in range(min(n, 20_000))]

    def parse_all() -> None:
        for line in sample:
            parse_record(line)

    t, _ = timed(parse_all, repeat=3)
    print(
        f"parse_record alone: {t / len(sample) * 1e6:.1f} us/line"
        f" (one process, {len(sample):,} lines, median of 3)"
    )

    # A figure measured only on an idle machine is not a property of the importer: the imports run
    # again with competing busy-loop processes (--busy), and each condition gets its own median.
    store = None
    for busy in busy_counts:
        runs = []
        with Busy(busy) as load:
            for run_index in range(import_runs):
                root = work / "history"
                if root.exists():
                    shutil.rmtree(root)
                store = open_store(root)
                t, summary = timed(lambda s=store: s.import_jsonl(src, workers=workers))
                if summary.added != n or summary.quarantined:
                    print(f"ERROR: expected {n} added and none quarantined:\n{summary}")
                    return 1
                runs.append(t)
                print(
                    f"import run {run_index + 1} ({busy} busy): {summary.added:,} added in {t:.2f} s"
                    f" = {n / t:,.0f} records/s"
                )
            alive = load.alive()
        t = statistics.median(runs)
        print(
            f"import with {busy} competing busy process{'es' if busy != 1 else ''}"
            f" ({alive} still running at the end): median of {len(runs)} runs {t:.2f} s"
            f" = {n / t:,.0f} records/s (target >= 50,000)"
        )
    assert store is not None
    t, count = timed(store.count)
    print(f"count(): {count:,} in {t * 1e3:.1f} ms")

    cold, _ = timed(lambda: open_store(work / "history").recent(100))
    t, recent = timed(lambda: store.recent(100), repeat=15)
    print(f"recent(100): median {t * 1e3:.1f} ms over 15 calls (first call {cold * 1e3:.1f} ms)")
    assert len(recent) == 100 and recent[0].timestamp >= recent[-1].timestamp

    t, matched = timed(lambda: store.by_config(max_symbols=200, sectors=["Technology"]), repeat=3)
    print(f"by_config(max_symbols=200, sectors=['Technology']): {len(matched):,} records in {t:.2f} s")
    t, stats = timed(lambda: store.statistics(by=["max_symbols", "lookback_days"]), repeat=3)
    print(f"statistics(by=['max_symbols', 'lookback_days']): {len(stats)} groups in {t:.2f} s (median of 3)")
    t, _ = timed(lambda: store.statistics(), repeat=3)
    print(f"statistics(): {t:.2f} s (median of 3)")
    week_start = dt.datetime(2025, 6, 2, tzinfo=NY)
    t, week = timed(lambda: store.between(week_start, week_start + dt.timedelta(days=7)), repeat=3)
    print(f"between(one week): {len(week):,} records in {t:.2f} s (median of 3)")
    t, df = timed(store.frame)
    print(f"frame(): {len(df):,} rows x {df.shape[1]} columns in {t:.2f} s")
    del df, week, matched

    template = json.loads(next(generate_lines(1, seed=7)))

    def record(scan_id: str, timestamp: dt.datetime):
        return parse_record(json.dumps({**template, "scan_id": scan_id, "timestamp": timestamp.isoformat()}))

    late = [record("bench_late_0", dt.datetime(2025, 6, 9, 12, 0))]
    t, added = timed(lambda: open_store(work / "history").add(late))
    print(f"add(1 record) from a fresh store object (cold id index over {n:,} records): {t:.2f} s ({added})")

    before = count_files(work / "history")
    t, report = timed(store.compact)
    after = count_files(work / "history")
    print(f"compact(): data files {before:,} -> {after:,} in {t:.2f} s ({report})")
    t, _ = timed(lambda: store.recent(100), repeat=15)
    print(f"recent(100) after compaction: median {t * 1e3:.1f} ms")

    # 24 hourly imports into one day: auto-compaction keeps the partition small.
    day = dt.datetime(2025, 6, 10, 0, 5)
    directory = "scan_month=2025-06" if _STORE["kind"] == "delta" else "scan_date=2025-06-10"
    partition = work / "history" / directory
    hourly, most_files = [], 0
    for hour in range(24):
        batch = [
            record(f"hourly_{hour:02d}_{k:03d}", day + dt.timedelta(hours=hour, seconds=k))
            for k in range(100)
        ]
        hourly.append(timed(lambda b=batch: store.add(b))[0])
        most_files = max(most_files, len(list(partition.glob("*.parquet"))))
    print(
        f"24 hourly add(100) into one day: median {statistics.median(hourly) * 1e3:.0f} ms,"
        f" max {max(hourly) * 1e3:.0f} ms; at most {most_files} files in that partition"
        f" (auto-compaction above {store.auto_compact_files or 'off'})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
