"""Benchmark: market-data loading (real 501-symbol panel) and embedded-sample generation.

Usage:
    .venv/bin/python bench/bench_market_data.py [MARKET_DIR] [--repeat N]

MARKET_DIR defaults to ../shared/data/market next to the repository. Every measurement runs in a
fresh Python subprocess (cold caches inside the interpreter; the OS page cache stays warm after
the first run, which is why the first repeat is usually the slowest) and reports:

* full panel: ``ParquetMarketData(dir).bars(None, as_of=date(2019, 12, 31))`` wall time, split into
  the pyarrow read (``read_market_file``) and the rest (point-in-time clip and sort in
  ``MarketData.bars``), rows, frame size (``memory_usage(deep=True)``), process RSS before and
  after (``/proc/self/status`` VmRSS) and peak RSS (``getrusage(RUSAGE_SELF).ru_maxrss``);
* a 1-year window of 100 symbols (``bars(first 100 symbols, as_of=2019-12-31, start=2019-01-01)``);
* sample generation (``SampleMarketData()``: the first build in the process, RSS before/after and
  peak), a second ``build_sample()`` in the same process, and a full-panel read of the sample.

Without the market directory the real-data measurements are skipped with a message; the sample
is still measured. No tracemalloc: it slows allocation-heavy code severalfold, so RSS is reported.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DIR = REPO.parent / "shared/data/market"
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench._machine import cpu_model, library_versions  # noqa: E402


def _rss_mib() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _peak_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


# -- children: one measurement per fresh interpreter ------------------------------------------------


def child_full(market_dir: str) -> dict:
    import pandas as pd  # noqa: F401  (imported before the RSS baseline)

    from technic_ml.market_data import ParquetMarketData
    from technic_ml.market_data.parquet_dir import read_market_file
    from technic_ml.nyse import calendar

    calendar()  # the XNYS calendar (about 0.3 s) is a one-off, not part of loading
    rss_before = _rss_mib()
    t0 = time.perf_counter()
    market = ParquetMarketData(market_dir)
    panel = market.bars(None, as_of=dt.date(2019, 12, 31))
    seconds = time.perf_counter() - t0
    rss_after = _rss_mib()
    peak = _peak_mib()
    frame_mib = panel.memory_usage(deep=True).sum() / 2**20
    t1 = time.perf_counter()
    raw = read_market_file(Path(market_dir), "prices", end=dt.date(2019, 12, 31))
    read_seconds = time.perf_counter() - t1
    return {
        "seconds": seconds,
        "read_seconds_warm": read_seconds,
        "rows": len(panel),
        "raw_rows": len(raw),
        "symbols": int(panel["symbol"].nunique()),
        "last_date": str(panel["date"].max().date()),
        "frame_mib": frame_mib,
        "rss_before_mib": rss_before,
        "rss_after_mib": rss_after,
        "peak_rss_mib": peak,
    }


def child_window(market_dir: str) -> dict:
    from technic_ml.market_data import ParquetMarketData
    from technic_ml.nyse import calendar

    calendar()
    market = ParquetMarketData(market_dir)
    symbols = market.universe()["symbol"].head(100).tolist()
    t0 = time.perf_counter()
    bars = market.bars(symbols, as_of=dt.date(2019, 12, 31), start=dt.date(2019, 1, 1))
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "rows": len(bars), "symbols": int(bars["symbol"].nunique())}


def child_sample(_: str) -> dict:
    t_import = time.perf_counter()
    from technic_ml.market_data.sample import SampleMarketData, build_sample
    from technic_ml.nyse import calendar

    import_seconds = time.perf_counter() - t_import
    calendar()
    rss_before = _rss_mib()
    t0 = time.perf_counter()
    market = SampleMarketData()  # the production path: first build in the process, then cached
    build_seconds = time.perf_counter() - t0
    rss_after = _rss_mib()
    peak = _peak_mib()
    t1 = time.perf_counter()
    panel = market.bars(None, as_of=dt.date(2018, 12, 31))
    panel_seconds = time.perf_counter() - t1
    second = build_sample().build_seconds
    return {
        "import_seconds": import_seconds,
        "build_seconds": build_seconds,
        "second_build_seconds": second,
        "panel_seconds": panel_seconds,
        "rows": len(panel),
        "symbols": len(market.universe()),
        "rss_before_mib": rss_before,
        "rss_after_mib": rss_after,
        "peak_rss_mib": peak,
    }


CHILDREN = {"full": child_full, "window": child_window, "sample": child_sample}


def run_child(kind: str, market_dir: Path) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, str(market_dir)]
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    if out.returncode != 0:
        raise SystemExit(f"benchmark child {kind!r} failed (exit {out.returncode}):\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- parent: machine, command, figures --------------------------------------------------------------


def _fmt(values: list[float], unit: str = "s", digits: int = 3) -> str:
    shown = ", ".join(f"{v:.{digits}f}" for v in values)
    return f"median {statistics.median(values):.{digits}f} {unit} (runs: {shown})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("market_dir", nargs="?", type=Path, default=DEFAULT_DIR)
    parser.add_argument(
        "--repeat", type=int, default=3, help="fresh-process repeats per measurement (default 3)"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(CHILDREN[args.child](str(args.market_dir))))
        return 0
    if args.repeat < 1:
        parser.error(f"--repeat: received {args.repeat}; expected >= 1")

    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print("# bench_market_data")
    print(f"command : {shlex.join([sys.executable, *sys.argv])}")
    print(f"machine : {platform.node()} | nproc {affinity} (cpu_count {os.cpu_count()}) | {cpu_model()}")
    print(f"python  : {platform.python_version()} ({platform.platform()}) | {library_versions()}")
    print(f"date    : {dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}")
    print(f"repeats : {args.repeat} fresh subprocesses per figure")
    print()

    samples = [run_child("sample", args.market_dir) for _ in range(args.repeat)]
    s0 = samples[0]
    print(f"## embedded sample ({s0['symbols']} symbols, {s0['rows']:,} bars)")
    print(f"SampleMarketData() (first build)  : {_fmt([s['build_seconds'] for s in samples])}")
    print(f"build_sample() again, same process: {_fmt([s['second_build_seconds'] for s in samples])}")
    print(f"bars(None) on the sample          : {_fmt([s['panel_seconds'] for s in samples])}")
    print(f"import technic_ml.market_data     : {_fmt([s['import_seconds'] for s in samples])}")
    print(f"RSS before -> after first build   : {s0['rss_before_mib']:.0f} -> {s0['rss_after_mib']:.0f} MiB")
    print(f"peak RSS after first build        : {_fmt([s['peak_rss_mib'] for s in samples], 'MiB', 0)}")
    print()

    if not (args.market_dir / "prices.parquet").is_file():
        print(f"## real panel: SKIPPED, no market-data directory at {args.market_dir}")
        print("   (pass its path as the first argument; see docs/market-data-format.md)")
        return 0

    fulls = [run_child("full", args.market_dir) for _ in range(args.repeat)]
    f0 = fulls[0]
    print(f"## real panel: {args.market_dir}")
    print(
        f"full panel bars(None, as_of=2019-12-31): {f0['rows']:,} rows, {f0['symbols']} symbols, "
        f"last {f0['last_date']}"
    )
    print(f"  wall time                     : {_fmt([f['seconds'] for f in fulls])}")
    print(f"  pyarrow read alone, 2nd time  : {_fmt([f['read_seconds_warm'] for f in fulls])}")
    print(f"  frame size (deep)             : {f0['frame_mib']:.0f} MiB")
    print(f"  RSS before -> after           : {f0['rss_before_mib']:.0f} -> {f0['rss_after_mib']:.0f} MiB")
    print(f"  peak RSS (ru_maxrss)          : {_fmt([f['peak_rss_mib'] for f in fulls], 'MiB', 0)}")
    windows = [run_child("window", args.market_dir) for _ in range(args.repeat)]
    w0 = windows[0]
    print(f"1-year window, 100 symbols: {w0['rows']:,} rows, {w0['symbols']} symbols")
    print(f"  wall time                     : {_fmt([w['seconds'] for w in windows])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
