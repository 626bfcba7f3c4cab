"""Benchmark: the reference scanner and the point-in-time backfill (issue 3, Performance and Acceptance).

Usage:
    .venv/bin/python bench/bench_scanner.py [MARKET_DIR]            # full run, ~4 min on 2 cores
    .venv/bin/python bench/bench_scanner.py --quick                 # small sizes, < 1 min
    .venv/bin/python bench/bench_scanner.py --scans 20000           # acceptance backfill size
    .venv/bin/python bench/bench_scanner.py --sample --quick        # embedded sample, no real data

MARKET_DIR defaults to ../shared/data/market next to the repository; without it the script says so
and exits 0 (``--sample`` runs everything on the embedded, partly synthetic sample instead). Each
section runs in a fresh Python subprocess, so every peak-memory figure (``ru_maxrss``, ``VmHWM``)
belongs to that section alone:

1. **single core**: ``Scanner(panel).scan`` on the whole real panel in one process: a fixed
   worst-case config (500 symbols, min_tech_rating 50, min_dollar_vol 0, lookback 250) at the
   as-of times of a backfill plan, the plan's own config mix, and a tiny config (10 symbols,
   lookback 20: the fixed cost every scan pays). Scans/s per repeat and their median, per-stage
   medians from ``record.performance.stage_seconds`` and the time spent outside the stages.
2. **memory bandwidth**: the bytes a scan must move (the window slices and the float64 copy the
   scanner makes) against a copy bandwidth measured here (``np.copyto`` of a 1 GiB array).
3. **acceptance**: ``backfill_with_settings(..., workers=2)`` of ``--scans`` scans (10,000) over
   2005-2019 into a temporary data root: wall time, scans/s on 2 cores, peak memory of the parent
   and of the worker processes, then a per-year table from the store's ``frame()`` and the 2008-Q4
   vs 2013 mean result count (all scans, and per fixed preset config).
4. **5,000 symbols**: a *synthetic replica of the real panel* (10 copies; copies 1-9 get a random
   smooth price-factor path and a volume scale per symbol, renamed ``AAPL_r3``; copy 0 is the real
   data) over 2015-2019, built in memory with ``Panel.from_frames``: build time, ``Panel.nbytes()``,
   peak RSS, scans/s for configs of up to 5,000 symbols, RSS sampled along the scans; then the
   same universe written as a market-data directory and backfilled with 2 workers.

Everything is written under one temporary directory, deleted at the end. The VM this was written on
is noisy (another tenant's load shows in the load average printed at the start and the end), which
is why repeated figures print every run next to the median.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gc
import json
import os
import platform
import re
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DIR = REPO.parent / "shared/data/market"
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench._machine import cpu_model, library_versions  # noqa: E402

RESULT_PREFIX = "@@result "
WORST = {"max_symbols": 500, "min_tech_rating": 50.0, "min_dollar_vol": 0.0, "lookback_days": 250}
WORST_5000 = {**WORST, "max_symbols": 5000}
TINY = {"max_symbols": 10, "min_tech_rating": 0.0, "min_dollar_vol": 0.0, "lookback_days": 20}
PRESET_NAMES = ("balanced", "deep", "original_log", "quick")


# -- small helpers ------------------------------------------------------------------------------


def _status_kib(field: str) -> int | None:
    try:
        match = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    except OSError:
        return None
    return int(match.group(1)) if match else None


def rss_mib() -> float | None:
    kib = _status_kib("VmRSS")
    return None if kib is None else kib / 1024


def hwm_mib() -> float | None:
    """Peak RSS since the process started or since the last :func:`reset_hwm`."""
    kib = _status_kib("VmHWM")
    return None if kib is None else kib / 1024


def reset_hwm() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0), so a later phase's peak is its own."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def release_freed_memory() -> None:
    """Give freed heap pages back to the OS (glibc and arrow pools keep them otherwise), so an RSS
    baseline taken afterwards holds live data only."""
    import ctypes

    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    # Not glibc: RSS may keep freed pages, which only makes the baseline higher.
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def maxrss_mib(who: int) -> float:
    peak = resource.getrusage(who).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # macOS bytes, Linux KiB


def fmt_mib(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f} MiB"


def runs(values: list[float], unit: str, digits: int = 1) -> str:
    shown = ", ".join(f"{v:,.{digits}f}" for v in values)
    return f"median {statistics.median(values):,.{digits}f} {unit} (runs: {shown})"


def result(payload: dict) -> None:
    """Hand a section's figures to the parent (the last stdout line of a child)."""
    print(RESULT_PREFIX + json.dumps(payload), flush=True)


def open_market(args: argparse.Namespace):
    from technic_ml.market_data import ParquetMarketData, SampleMarketData

    return SampleMarketData() if args.sample else ParquetMarketData(args.market_dir)


def market_settings(args: argparse.Namespace, data_root: Path, market_dir: Path | None = None):
    from technic_ml.settings import TechnicSettings

    if market_dir is None and args.sample:
        return TechnicSettings(data_root=data_root, market_source="sample")
    return TechnicSettings(
        data_root=data_root, market_source="parquet", market_dir=market_dir or args.market_dir
    )


def last_market_date(market) -> dt.date:
    spy = market.spy(dt.date.today())
    return spy["date"].max().date()


def scan_range(args: argparse.Namespace, market) -> tuple[dt.date, dt.date]:
    return args.start, min(args.end, last_market_date(market))


def nearest_as_ofs(plan, n: int) -> list[dt.datetime]:
    """``n`` as-of times spread evenly over a time-sorted plan (the plan's own times of day)."""
    step = max(1, len(plan) // n)
    return [p.as_of for p in plan[::step][:n]]


def stage_medians(records) -> dict[str, float]:
    from technic_ml.scanner import STAGES

    return {s: statistics.median(r.performance.stage_seconds[s] for r in records) for s in STAGES}


def print_stages(label: str, records, walls: list[float]) -> None:
    """Median per-stage ms, the in-scan total and what ``scan`` spends outside its stages."""
    med = stage_medians(records)
    total = statistics.median(r.performance.total_seconds for r in records)
    outside = statistics.median(w - r.performance.total_seconds for w, r in zip(walls, records, strict=True))
    parts = "  ".join(f"{k} {v * 1e3:.2f}" for k, v in med.items())
    print(f"  {label} stage medians (ms): {parts}")
    print(
        f"  {label} median in-scan total {total * 1e3:.2f} ms; median wall per scan "
        f"{statistics.median(walls) * 1e3:.2f} ms; outside the stages (ScanRecord build) "
        f"{outside * 1e3:.2f} ms"
    )


def slim(record) -> SimpleNamespace:
    """The few figures of a ScanRecord this script reports, without keeping the record alive."""
    perf = record.performance
    return SimpleNamespace(
        performance=SimpleNamespace(
            stage_seconds=dict(perf.stage_seconds),
            total_seconds=perf.total_seconds,
            symbols_scanned=perf.symbols_scanned,
        ),
        results=SimpleNamespace(count=record.results.count),
        config=SimpleNamespace(max_symbols=record.config.max_symbols),
    )


def timed_scans(scanner, items) -> tuple[float, list, list[float]]:
    """Scan ``items`` [(config, as_of, scan_id)] in order; wall seconds, records, per-scan walls."""
    clock = time.perf_counter
    records, walls = [], []
    t0 = clock()
    for config, as_of, scan_id in items:
        t = clock()
        records.append(scanner.scan(config, as_of, scan_id=scan_id).record)
        walls.append(clock() - t)
    return clock() - t0, records, walls


def bytes_touched(rows: int, k: int, n_vol: int, n_symbols: int) -> dict[str, int]:
    """Bytes a scan moves at least once (see compute_ratings/select_universe in technic_ml.scanner).

    rows = (lookback + 1) panel rows, k = symbols in the window, n_symbols = panel width.
    """
    return {
        "universe rows (has_bar, close, adv20 of one session)": n_symbols * (1 + 4 + 4),
        "close window read (float32)": rows * k * 4,
        "has_bar window read (bool)": rows * k,
        "close float64 copy written": rows * k * 8,
        "volume window read (float32) + float64 copy": n_vol * k * (4 + 8),
        "spy_close window (float64)": rows * 8,
    }


# -- section 1: single core on the real panel ---------------------------------------------------------


def child_single(args: argparse.Namespace) -> dict:
    import numpy as np

    from technic_ml.backfill import plan_backfill
    from technic_ml.contracts import ScanConfig
    from technic_ml.nyse import calendar
    from technic_ml.panel import Panel
    from technic_ml.scanner import Scanner, compute_ratings, select_universe

    calendar()
    market = open_market(args)
    start, end = scan_range(args, market)
    rss0 = rss_mib()
    t0 = time.perf_counter()
    panel = Panel.from_market(market, end)
    build = time.perf_counter() - t0
    print(
        f"panel: Panel.from_market(all bars to {end}): {panel.n_symbols} symbols x {len(panel.dates):,} "
        f"sessions ({panel.dates[0].date()}..{panel.dates[-1].date()}) in {build:.2f} s; "
        f"nbytes {panel.nbytes() / 2**20:.1f} MiB; RSS {fmt_mib(rss0)} -> {fmt_mib(rss_mib())}, "
        f"peak {fmt_mib(hwm_mib())}"
    )
    scanner = Scanner(panel)
    plan = plan_backfill(start, end, args.single_scans, args.seed, market.universe())
    as_ofs = nearest_as_ofs(plan, args.single_scans)
    worst, tiny = ScanConfig(**WORST, profile="bench_worst"), ScanConfig(**TINY, profile="bench_tiny")
    suites = {
        "worst-case": [(worst, a, f"w{i}") for i, a in enumerate(as_ofs)],
        "plan mix": [(p.config, p.as_of, p.scan_id) for p in plan],
        "tiny": [(tiny, a, f"t{i}") for i, a in enumerate(as_ofs)],
    }
    timed_scans(scanner, suites["worst-case"][:20])  # warm-up: first-call imports and caches
    print(
        f"scans: {len(as_ofs)} as-of times from a backfill plan over {start}..{end} (seed {args.seed}); "
        f"{args.repeat} pass(es) each, one process, one core"
    )
    print(f"  worst-case config: {WORST}")
    print(f"  plan mix: the plan's own {len(plan)} configs (presets, favourites, random; see backfill)")
    print(f"  tiny config: {TINY} (the fixed cost of any scan)")
    out: dict = {"n_symbols": panel.n_symbols, "sessions": len(panel.dates)}
    for name, items in suites.items():
        rates, last = [], None
        for _ in range(args.repeat):
            wall, records, walls = timed_scans(scanner, items)
            rates.append(len(items) / wall)
            last = (records, walls)
        print(f"{name:>10}: {runs(rates, 'scans/s')}")
        records, walls = last
        print_stages(name, records, walls)
        scanned = [r.performance.symbols_scanned for r in records]
        counts = [r.results.count for r in records]
        print(
            f"  {name} symbols scanned: median {statistics.median(scanned):.0f} (max {max(scanned)}); "
            f"results: median {statistics.median(counts):.0f}, empty {np.mean(np.array(counts) == 0):.1%}"
        )
        out[name] = {
            "rate": statistics.median(rates),
            "ms_per_scan": 1e3 / statistics.median(rates),
            "median_scanned": statistics.median(scanned),
        }
        if name == "worst-case":
            worst_records = records

    # The fixed worst-case config at many dates: the market, not the config, moves the count.
    by_when = {}
    for r in worst_records:
        by_when.setdefault((r.timestamp.year, (r.timestamp.month - 1) // 3 + 1), []).append(r.results.count)
    q4_2008 = by_when.get((2008, 4), [])
    y2013 = [c for (y, _), v in by_when.items() if y == 2013 for c in v]
    if q4_2008 and y2013:
        print(
            f"  worst-case config result count: 2008-Q4 mean {np.mean(q4_2008):.1f} (n={len(q4_2008)}) vs "
            f"2013 mean {np.mean(y2013):.1f} (n={len(y2013)})"
        )

    # What the data-touching part costs by itself: the slices and copies compute_ratings makes.
    lookback = WORST["lookback_days"]
    slice_s, ratings_s, sizes = [], [], []
    for _, as_of, _ in suites["worst-case"]:
        e = panel.end_index(as_of)
        idx = select_universe(panel, worst, e)
        s = max(0, e - lookback)
        n_vol = min(20, e - s)
        t = time.perf_counter()
        c = panel.close[s : e + 1, idx].astype(np.float64)
        h = panel.has_bar[s : e + 1, idx]
        v = panel.volume[e - n_vol + 1 : e + 1, idx].astype(np.float64)
        slice_s.append(time.perf_counter() - t)
        del c, h, v
        t = time.perf_counter()
        compute_ratings(panel, idx, e, lookback)
        ratings_s.append(time.perf_counter() - t)
        sizes.append(sum(bytes_touched(e - s + 1, len(idx), n_vol, panel.n_symbols).values()))
    out["slice_ms"] = statistics.median(slice_s) * 1e3
    out["compute_ratings_ms"] = statistics.median(ratings_s) * 1e3
    median_k = int(np.median([len(select_universe(panel, worst, panel.end_index(a))) for a in as_ofs]))
    out["worst_k"] = median_k
    out["worst_rows"] = lookback + 1
    out["worst_bytes"] = statistics.median(sizes)
    out["worst_breakdown"] = bytes_touched(lookback + 1, median_k, 20, panel.n_symbols)
    print(
        f"  worst-case window slices + float64 copies alone: median {out['slice_ms']:.3f} ms per scan; "
        f"compute_ratings (indicators + DataFrame): median {out['compute_ratings_ms']:.2f} ms"
    )
    fixed_cost_breakdown(panel, as_ofs, worst)
    print(f"  peak RSS of this process: {fmt_mib(maxrss_mib(resource.RUSAGE_SELF))}")
    return out


def _median_us(fn, inputs) -> float:
    times = []
    for x in inputs:
        t = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e6


def fixed_cost_breakdown(panel, as_ofs, worst) -> None:
    """Where a scan's fixed cost goes: the library calls a scan makes, timed one by one, next to the
    calls scanner 1.0.0 made in their place (exchange_calendars lookups, pandas sort and filter)."""
    import numpy as np
    import pandas as pd

    from technic_ml.market_conditions import ConditionTable, conditions_at
    from technic_ml.nyse import is_market_hours, last_completed_session, session_clock, to_ny
    from technic_ml.scanner import Scanner, _indicators, compute_ratings, select_universe, tech_ratings

    whens = [to_ny(a) for a in as_ofs]
    scanner = Scanner(panel)
    table = ConditionTable(panel.conditions)
    clock = session_clock()
    cases = []
    for w in whens:
        e = panel.end_index(w)
        idx = select_universe(panel, worst, e)
        kept, values = _indicators(panel, idx, e, worst.lookback_days, extras=True)
        order = np.lexsort((scanner._symbol_rank[kept], -values["tech_rating"]))
        passing = order[values["tech_rating"][order] >= worst.min_tech_rating]
        signal = values["breakout"][passing] | values["golden_cross"][passing]
        cases.append((e, idx, kept, values, order, passing, signal))
    frames = [compute_ratings(panel, idx, e, worst.lookback_days) for e, idx, *_ in cases]
    columns = [{c: f[c].to_numpy() for c in f.columns} for f in frames]
    rows = statistics.median(len(f) for f in frames)
    result_rows = statistics.median(len(c[5]) for c in cases)
    lookback = worst.lookback_days
    lines = [
        (
            "ConditionTable.at (the 'conditions' stage)",
            _median_us(lambda w: table.at(w, data_source="b"), whens),
        ),
        (
            "  SessionClock.last_completed (also the scan's panel row)",
            _median_us(clock.last_completed, whens),
        ),
        ("  SessionClock.is_open", _median_us(clock.is_open, whens)),
        (
            "  1.0.0: nyse.last_completed_session (exchange_calendars)",
            _median_us(last_completed_session, whens),
        ),
        ("  1.0.0: nyse.is_market_hours", _median_us(is_market_hours, whens)),
        (
            "  conditions_at (builds a ConditionTable per call)",
            _median_us(lambda w: conditions_at(panel.conditions, w, data_source="b"), whens),
        ),
        (
            f"_indicators, {rows:.0f} symbols x {lookback + 1} sessions (the 'indicators' stage)",
            _median_us(lambda c: _indicators(panel, c[1], c[0], lookback, extras=True), cases),
        ),
        (
            "  tech_ratings (the numeric core without the evidence columns)",
            _median_us(lambda c: tech_ratings(panel, c[1], c[0], lookback), cases),
        ),
        (
            "  compute_ratings (the same + a pd.DataFrame of its 20 columns)",
            _median_us(lambda c: compute_ratings(panel, c[1], c[0], lookback), cases),
        ),
        (
            f"np.lexsort by rating and symbol, {rows:.0f} rows (the 'rating' stage)",
            _median_us(lambda c: np.lexsort((scanner._symbol_rank[c[2]], -c[3]["tech_rating"])), cases),
        ),
        (
            "  1.0.0: DataFrame.sort_values by the same two keys",
            _median_us(
                lambda f: f.sort_values(
                    ["tech_rating", "symbol"], ascending=[False, True], ignore_index=True
                ),
                frames,
            ),
        ),
        (
            f"Scanner._results_frame, {result_rows:.0f} rows (most of the 'results' stage)",
            _median_us(lambda c: scanner._results_frame(c[2], c[3], c[5], c[6]), cases),
        ),
        (
            f"  for comparison: pd.DataFrame of the same 21 columns, {rows:.0f} rows",
            _median_us(pd.DataFrame, columns),
        ),
        (
            "  1.0.0: DataFrame boolean filter + reset_index",
            _median_us(lambda f: f[f["tech_rating"] >= worst.min_tech_rating].reset_index(drop=True), frames),
        ),
    ]
    print("  where the fixed cost goes (median us per call over the worst-case as-of times):")
    for label, us in lines:
        print(f"    {label:<72} {us:8.0f} us")


# -- section 2: memory bandwidth ----------------------------------------------------------------------


def child_bandwidth(args: argparse.Namespace) -> dict:
    import numpy as np

    n = args.bandwidth_mib * 2**20 // 8
    src = np.ones(n)
    dst = np.empty(n)
    np.copyto(dst, src)  # untimed: maps every page of dst (np.zeros/np.empty pages fault on first write)
    copies, sums = [], []
    for _ in range(args.bandwidth_repeat):
        t = time.perf_counter()
        np.copyto(dst, src)
        copies.append(2 * src.nbytes / (time.perf_counter() - t) / 1e9)  # read + write
        t = time.perf_counter()
        src.sum()
        sums.append(src.nbytes / (time.perf_counter() - t) / 1e9)
    print(
        f"np.copyto of {args.bandwidth_mib:,} MiB float64 (bytes read + written): {runs(copies, 'GB/s', 2)}; "
        f"best {max(copies):.2f}"
    )
    print(
        f"np.sum over {args.bandwidth_mib:,} MiB float64 (bytes read):             {runs(sums, 'GB/s', 2)}; "
        f"best {max(sums):.2f}"
    )
    print("  (the median is used below: a lower bandwidth makes the bandwidth-limited time longer, i.e. the")
    print(
        "   comparison more favourable to 'bandwidth-bound', so the conclusion does not rest on a lucky run)"
    )
    return {"copy_gbs": statistics.median(copies), "read_gbs": statistics.median(sums)}


def report_bandwidth(single: dict, bw: dict) -> None:
    k, rows = single["worst_k"], single["worst_rows"]
    print(f"bytes one worst-case scan moves (lookback 250 -> {rows} rows, median k = {k} symbols):")
    for name, size in single["worst_breakdown"].items():
        print(f"  {name:<55} {size / 1e3:9,.1f} kB")
    total = single["worst_bytes"]
    print(f"  {'total (median over the worst-case scans)':<55} {total / 1e3:9,.1f} kB")
    at_bw = total / (bw["copy_gbs"] * 1e9)
    measured = single["worst-case"]["ms_per_scan"] / 1e3
    limit = 1 / at_bw
    print(
        f"at the measured copy bandwidth ({bw['copy_gbs']:.2f} GB/s, one core) that is {at_bw * 1e6:.0f} us "
        f"per scan, a limit of {limit:,.0f} scans/s per core"
    )
    print(
        f"measured: {measured * 1e3:.2f} ms per worst-case scan ({1 / measured:,.0f} scans/s per core) = "
        f"{measured / at_bw:,.0f}x the bandwidth-limited time, i.e. {at_bw / measured:.1%} of the "
        f"bandwidth limit"
    )
    print(
        f"measured directly: the window slices + float64 copies take {single['slice_ms']:.3f} ms of the "
        f"{measured * 1e3:.2f} ms scan ({single['slice_ms'] / (measured * 1e3):.1%}); the rest is "
        "computation over the copy and fixed per-scan overhead (pandas frames, calendar lookups, "
        "pydantic records): the scanner is compute/overhead-bound, not bandwidth-bound"
    )
    caches = _cache_sizes()
    if caches:
        print(
            f"note: the working set of a scan (< {total / 2**20:.1f} MiB) fits this CPU's caches "
            f"({caches}), so most of it never reaches DRAM; DRAM bandwidth is the pessimistic limit"
        )


def _cache_sizes() -> str:
    out = []
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            level = (index / "level").read_text().strip()
            kind = (index / "type").read_text().strip()
            size = (index / "size").read_text().strip()
        except OSError:
            continue
        if kind != "Instruction":
            out.append(f"L{level} {size}")
    return ", ".join(out)


# -- section 3: acceptance backfill ------------------------------------------------------------------


def child_backfill(args: argparse.Namespace) -> dict:
    import numpy as np
    import pandas as pd

    from technic_ml.backfill import BATCH, backfill_with_settings, panel_start, plan_backfill, split_plan
    from technic_ml.history import ScanHistoryStore
    from technic_ml.panel import Panel

    settings = market_settings(args, args.workdir / "acceptance-root")
    market = open_market(args)
    start, end = scan_range(args, market)
    last = {"t": 0.0}
    t0 = time.perf_counter()

    def progress(done: int, total: int) -> None:
        now = time.perf_counter() - t0
        if done in (0, total) or now - last["t"] >= 10:
            last["t"] = now
            print(f"  progress: {done:,}/{total:,} scans at {now:.1f} s", flush=True)

    print(
        f"backfill_with_settings({start}..{end}, n_scans={args.scans:,}, seed={args.seed}, workers=2) "
        f"on {market.source}, data root {settings.data_root}"
    )
    t0 = time.perf_counter()
    summary = backfill_with_settings(
        settings, start, end, args.scans, args.seed, workers=2, progress=progress
    )
    wall = time.perf_counter() - t0
    peak_self = maxrss_mib(resource.RUSAGE_SELF)
    peak_children = maxrss_mib(resource.RUSAGE_CHILDREN)
    print(f"  summary: {summary}")
    rate = summary.ran / wall
    print(
        f"wall time {wall:.1f} s for {summary.ran:,} scans = {rate:,.1f} scans/s on 2 worker processes "
        f"(target >= 100 scans/s: {'met' if rate >= 100 else 'NOT met'})"
    )
    inside = summary.scan_seconds
    print(
        f"  time inside Scanner.scan, summed over both workers: {inside:.1f} s "
        f"({inside / max(summary.ran, 1) * 1e3:.2f} ms per scan; {2 * summary.ran / inside:,.0f} scans/s if "
        "both cores did nothing else)"
    )
    print(
        f"peak RSS: parent {peak_self:,.0f} MiB (ru_maxrss RUSAGE_SELF); largest worker "
        f"{peak_children:,.0f} MiB (RUSAGE_CHILDREN: the largest child, not a sum)"
    )

    # Where the rest of the wall time goes, measured again here (after the peaks were read).
    t = time.perf_counter()
    plan = plan_backfill(start, end, args.scans, args.seed, market.universe())
    plan_s = time.perf_counter() - t
    builds = []
    for chunk in split_plan(plan, 2):
        t = time.perf_counter()
        panel = Panel.from_market(market, max(p.as_of for p in chunk), start=panel_start(chunk))
        builds.append((time.perf_counter() - t, len(chunk), len(panel.dates), panel.nbytes()))
        del panel
    print(f"  plan_backfill alone: {plan_s:.2f} s (in the parent, before the workers start)")
    for i, (s, n, sessions, nbytes) in enumerate(builds, 1):
        print(
            f"  chunk {i}: {n:,} scans; its Panel.from_market: {s:.2f} s, {sessions:,} sessions, "
            f"{nbytes / 2**20:.1f} MiB"
        )

    store = ScanHistoryStore(settings.history_path, quarantine_dir=settings.quarantine_path)
    t = time.perf_counter()
    df = store.frame()
    print(f"store.frame(): {len(df):,} rows in {time.perf_counter() - t:.2f} s")
    root = settings.history_path
    files = list(root.glob("scan_date=*/*.parquet"))
    partitions = len(list(root.glob("scan_date=*")))
    print(
        f"  the store holds {len(files):,} parquet files in {partitions:,} scan_date partitions "
        f"({len(df) / max(len(files), 1):.1f} records per file)"
    )
    # What one backfill batch costs to store: the newest BATCH records (contiguous in time, as a
    # chunk's batch is) added to a fresh store.
    batch = store.recent(BATCH)
    fresh = ScanHistoryStore(args.workdir / "batch-timing" / "history")
    t = time.perf_counter()
    fresh.add(batch)
    add_s = time.perf_counter() - t
    days = len({r.timestamp.date() for r in batch})
    per_worker_batches = -(-args.scans // 2 // BATCH)
    print(
        f"  store.add of one {len(batch)}-record batch ({days} scan dates) into a fresh store: {add_s:.2f} s "
        f"({add_s / len(batch) * 1e3:.2f} ms per record); x{per_worker_batches} batches per worker "
        f"~ {add_s * per_worker_batches:.0f} s of each worker's {summary.seconds:.0f} s (derived)"
    )
    sources = sorted(df["provenance_source"].unique())
    if len(df) != args.scans or df["scan_id"].nunique() != len(df) or sources != ["backfill"]:
        print(f"ERROR: expected {args.scans} distinct backfill records, got {len(df)} ({sources})")
        return {"ok": False}
    df["year"] = df["timestamp"].dt.year
    df["quarter"] = df["timestamp"].dt.quarter
    df["empty"] = df["result_count"] == 0
    df["pass_share"] = df["result_count"] / df["symbols_scanned"].where(df["symbols_scanned"] > 0)
    df["profile"] = [json.loads(x).get("profile") if isinstance(x, str) else None for x in df["config_extra"]]

    print()
    print("per year (all backfilled scans; pass share = result_count / symbols_scanned):")
    print(
        f"  {'year':>4} {'scans':>6} {'mean count':>10} {'median':>6} {'empty':>6} "
        f"{'mean scanned':>12} {'pass share':>10} {'median ms':>9} {'SPY 20d':>8}"
    )
    for year, g in df.groupby("year"):
        print(
            f"  {year:>4} {len(g):>6,} {g['result_count'].mean():>10.1f} {g['result_count'].median():>6.0f} "
            f"{g['empty'].mean():>6.1%} {g['symbols_scanned'].mean():>12.1f} "
            f"{g['pass_share'].mean():>10.1%} {g['total_seconds'].median() * 1e3:>9.2f} "
            f"{g['spy_return_20d'].mean():>+8.2%}"
        )

    def compare(label: str, sub: pd.DataFrame) -> None:
        a = sub[(sub["year"] == 2008) & (sub["quarter"] == 4)]
        b = sub[sub["year"] == 2013]
        if len(a) < 2 or len(b) < 2:
            print(f"  {label:<26} too few scans (2008-Q4 n={len(a)}, 2013 n={len(b)})")
            return

        def cell(g: pd.DataFrame) -> str:
            sem = g["result_count"].std(ddof=1) / np.sqrt(len(g))
            return (
                f"{g['result_count'].mean():7.1f} +- {sem:5.1f} (n={len(g):>4}, "
                f"pass {g['pass_share'].mean():5.1%}, empty {g['empty'].mean():5.1%})"
            )

        print(f"  {label:<26} 2008-Q4 {cell(a)} | 2013 {cell(b)}")

    print()
    print("2008-Q4 vs 2013 mean result count (+- standard error):")
    compare("all scans", df)
    compare("all presets", df[df["profile"].isin(PRESET_NAMES)])
    for name in PRESET_NAMES:
        compare(f"preset {name!r}", df[df["profile"] == name])
    compare("favourites (40 fixed)", df[df["profile"] == "favourite"])
    return {"ok": True, "rate": rate, "wall": wall, "peak_self": peak_self, "peak_children": peak_children}


# -- section 4: the 5,000-symbol synthetic replica -----------------------------------------------------


def _smooth_paths(rng, sessions: int, n: int, daily_sd: float, window: int):
    """``n`` random smooth log-factor paths: a Gaussian random walk, then a trailing moving average."""
    import numpy as np

    walk = np.cumsum(rng.normal(0.0, daily_sd, (sessions + window, n)), axis=0)
    csum = np.cumsum(walk, axis=0)
    return (csum[window:] - csum[:-window]) / window


def build_replica(market, replicas: int, start: dt.date, end: dt.date, seed: int):
    """Long bars and universe of ``replicas`` copies of the market (copy 0 unchanged), in memory."""
    import numpy as np
    import pandas as pd

    bars = market.bars(None, end, start=start)
    universe = market.universe().drop_duplicates("symbol").sort_values("symbol", ignore_index=True)
    symbols = universe["symbol"].astype(str).to_numpy()
    dates = pd.DatetimeIndex(np.unique(bars["date"].to_numpy()))
    t_idx = dates.searchsorted(bars["date"].to_numpy())
    s_idx = np.searchsorted(symbols, bars["symbol"].astype(str).to_numpy())
    rng = np.random.default_rng(seed)
    price_cols = ["open", "high", "low", "close"]
    frames, universes = [bars], [universe]
    for r in range(1, replicas):
        level = rng.uniform(np.log(0.5), np.log(2.0), len(symbols))
        log_f = level + _smooth_paths(rng, len(dates), len(symbols), 0.01, 20)  # [session, symbol]
        f = np.exp(log_f[t_idx, s_idx])
        v = np.exp(rng.normal(0.0, 0.5, len(symbols)))[s_idx]
        names = np.char.add(symbols.astype(str), f"_r{r}").astype(object)
        copy = pd.DataFrame({"date": bars["date"].to_numpy(), "symbol": names[s_idx]})
        for c in price_cols:
            copy[c] = (bars[c].to_numpy(dtype=np.float64) * f).astype(bars[c].dtype)
        copy["volume"] = np.round(bars["volume"].to_numpy(dtype=np.float64) * v).astype(bars["volume"].dtype)
        copy["dollar_volume"] = (bars["dollar_volume"].to_numpy(dtype=np.float64) * f * v).astype(
            bars["dollar_volume"].dtype
        )
        frames.append(copy)
        u = universe.copy()
        u["symbol"] = np.char.add(symbols.astype(str), f"_r{r}")
        u["name"] = u["name"].astype(str) + f" (synthetic replica {r})"
        universes.append(u)
    long = pd.concat(frames, ignore_index=True)
    uni = pd.concat(universes, ignore_index=True).sort_values("symbol", ignore_index=True)
    return long, uni


def symbol_matching_cost(long, universe) -> None:
    """The part of Panel.from_frames that maps each bar to its symbol column, timed step by step as
    from_frames does it (``bars["symbol"].astype(str).to_numpy()`` twice, ``np.searchsorted`` over
    the resulting object array), next to the same mapping through pandas categorical codes."""
    import numpy as np

    symbols = np.sort(universe["symbol"].astype(str).to_numpy())
    gc.collect()
    release_freed_memory()
    reset_hwm()
    before = rss_mib()
    t = time.perf_counter()
    as_str = long["symbol"].astype(str).to_numpy()
    convert_s = time.perf_counter() - t
    grown = (hwm_mib() or 0) - (before or 0)
    t = time.perf_counter()
    n = np.clip(np.searchsorted(symbols, as_str), 0, len(symbols) - 1)
    search_s = time.perf_counter() - t
    t = time.perf_counter()
    known = symbols[n] == as_str
    compare_s = time.perf_counter() - t
    del as_str, n, known
    gc.collect()
    release_freed_memory()
    t = time.perf_counter()
    codes = long["symbol"].astype(pd_category(symbols)).cat.codes.to_numpy()
    codes_s = time.perf_counter() - t
    del codes
    print(
        f"  from_frames' symbol mapping re-timed on its own ({len(long):,} bars, the calls it makes): "
        f"astype(str).to_numpy() {convert_s:.2f} s (+{grown:,.0f} MiB of Python str objects; done twice), "
        f"np.searchsorted over that object array {search_s:.2f} s, element-wise compare {compare_s:.2f} s; "
        f"for comparison, categorical codes against the sorted universe: {codes_s:.2f} s"
    )


def pd_category(symbols):
    import pandas as pd

    return pd.CategoricalDtype(categories=symbols)


def child_replica(args: argparse.Namespace) -> dict:
    from technic_ml.backfill import plan_backfill
    from technic_ml.contracts import ScanConfig
    from technic_ml.market_data import write_market_dir
    from technic_ml.nyse import calendar
    from technic_ml.panel import Panel
    from technic_ml.scanner import Scanner

    calendar()
    market = open_market(args)
    end = min(args.end, last_market_date(market))
    start = args.replica_start
    # Scans start a year and a half into the replica so every lookback (<= 250 sessions) is covered.
    scan_start = start + dt.timedelta(days=550)
    gc.collect()
    rss0 = rss_mib()
    reset_hwm()
    t = time.perf_counter()
    long, universe = build_replica(market, args.replicas, start, end, args.seed)
    gen_s = time.perf_counter() - t
    rss_gen = rss_mib()
    spy, vix = market.spy(end), market.vix(end)
    print(
        f"SYNTHETIC REPLICA OF THE REAL PANEL ({'embedded sample' if args.sample else market.source}): "
        f"{args.replicas} copies x {market.universe()['symbol'].nunique()} symbols = "
        f"{len(universe):,} symbols, "
        f"bars {start}..{end}; copy 0 = the data as is, copies 1-{args.replicas - 1} = closes x a random "
        "smooth factor path per symbol (level 0.5-2x, 20-session moving average of a 1 %/day log random "
        "walk), volume x lognormal(0, 0.5) per symbol, renamed SYMBOL_rN"
    )
    print(
        f"  long bars: {len(long):,} rows, {long.memory_usage(deep=True).sum() / 2**20:,.0f} MiB (deep), "
        f"generated in {gen_s:.1f} s; RSS {fmt_mib(rss0)} -> {fmt_mib(rss_gen)}"
    )
    t = time.perf_counter()
    panel = Panel.from_frames(long, universe, spy, vix, source="synthetic-replica", is_sample=args.sample)
    build_s = time.perf_counter() - t
    build_peak = hwm_mib()
    print(
        f"  Panel.from_frames: {build_s:.1f} s; {panel.n_symbols:,} symbols x {len(panel.dates):,} sessions; "
        f"Panel.nbytes() {panel.nbytes() / 2**20:,.1f} MiB; peak RSS while generating + building "
        f"{fmt_mib(build_peak)} (VmHWM)"
    )
    symbol_matching_cost(long, universe)
    replica_dir = None
    if args.replica_backfill_scans:
        replica_dir = args.workdir / "replica-market"
        t = time.perf_counter()
        write_market_dir(replica_dir, prices=long, symbols=universe, spy=spy, vix=vix)
        size = sum(p.stat().st_size for p in replica_dir.iterdir()) / 2**20
        print(
            f"  written as a market-data directory for the 2-worker run below: "
            f"{time.perf_counter() - t:.1f} s, {size:,.0f} MiB on disk"
        )
    del long
    gc.collect()
    release_freed_memory()
    rss_panel = rss_mib()
    print(f"  RSS after dropping the long bars (panel + interpreter): {fmt_mib(rss_panel)}")

    scanner = Scanner(panel)
    plan = plan_backfill(scan_start, end, args.replica_scans, args.seed, universe)
    as_ofs = nearest_as_ofs(plan, args.replica_worst_scans)
    worst = ScanConfig(**WORST_5000, profile="bench_worst_5000")
    timed_scans(scanner, [(worst, a, f"w{i}") for i, a in enumerate(as_ofs[:3])])  # warm-up
    gc.collect()
    release_freed_memory()
    reset_hwm()
    rss_start = rss_mib()
    out: dict = {"symbols": panel.n_symbols, "nbytes_mib": panel.nbytes() / 2**20, "build_peak": build_peak}
    samples: list[tuple[int, float | None]] = [(0, rss_start)]
    done = 0
    for name, items in (
        ("worst-case 5000", [(worst, a, f"w{i}") for i, a in enumerate(as_ofs)]),
        ("plan mix", [(p.config, p.as_of, p.scan_id) for p in plan]),
    ):
        every = max(1, len(items) // 10)
        records, walls = [], []
        t0 = time.perf_counter()
        for i, (config, as_of, scan_id) in enumerate(items, 1):
            t = time.perf_counter()
            record = scanner.scan(config, as_of, scan_id=scan_id).record
            walls.append(time.perf_counter() - t)
            records.append(slim(record))  # not the record itself: the RSS samples are the scanner's
            del record
            if i % every == 0:
                samples.append((done + i, rss_mib()))
        wall = time.perf_counter() - t0
        done += len(items)
        scanned = [r.performance.symbols_scanned for r in records]
        biggest = max(r.config.max_symbols for r in records)
        print(
            f"{name:>16}: {len(items):,} scans in {wall:.1f} s = {len(items) / wall:,.1f} scans/s "
            "(one core); "
            f"symbols scanned median {statistics.median(scanned):,.0f}, max {max(scanned):,}; "
            f"largest max_symbols {biggest:,}"
        )
        print_stages(name, records, walls)
        out[name] = len(items) / wall
    rss_values = [v for _, v in samples if v is not None]
    print(
        "  RSS along the scans (scans done: MiB): "
        + ", ".join(f"{n:,}: {v:,.0f}" for n, v in samples if v is not None)
    )
    if len(rss_values) > 2:
        print(
            f"  RSS growth from the first sample after {samples[1][0]:,} scans to the end: "
            f"{rss_values[-1] - rss_values[1]:+,.1f} MiB (the first scans grow the allocator's free lists "
            "to the largest window once)"
        )
    if rss_values:
        print(
            f"  RSS growth over {done:,} scans: {rss_values[-1] - rss_values[0]:+,.1f} MiB "
            f"(min {min(rss_values):,.0f}, max {max(rss_values):,.0f}); peak RSS while scanning "
            f"{fmt_mib(hwm_mib())} (VmHWM reset before the scans) vs RSS {fmt_mib(rss_start)} at the start: "
            f"a scan's transient memory is {hwm_mib() - rss_start:,.0f} MiB vs the panel's "
            f"{panel.nbytes() / 2**20:,.0f} MiB"
        )
    full_copy = len(panel.dates) * panel.n_symbols * 8 / 2**20
    print(
        f"  (one float64 copy of the full close matrix would be {full_copy:,.0f} MiB; the worst-case "
        f"window copy is {(WORST['lookback_days'] + 1) * 5000 * 8 / 2**20:,.1f} MiB)"
    )
    print(
        "  peak RSS of this process (ru_maxrss, includes the build): "
        f"{maxrss_mib(resource.RUSAGE_SELF):,.0f} MiB"
    )
    out["replica_dir"] = str(replica_dir) if replica_dir else None
    out["scan_start"] = str(scan_start)
    out["end"] = str(end)
    return out


def child_replica_backfill(args: argparse.Namespace) -> dict:
    from technic_ml.backfill import backfill_with_settings

    market_dir = args.workdir / "replica-market"
    settings = market_settings(args, args.workdir / "replica-root", market_dir=market_dir)
    start = args.replica_start + dt.timedelta(days=550)
    end = args.replica_end
    print(
        f"backfill_with_settings({start}..{end}, n_scans={args.replica_backfill_scans:,}, workers=2) on the "
        f"synthetic replica directory ({market_dir.name})"
    )
    t0 = time.perf_counter()
    summary = backfill_with_settings(settings, start, end, args.replica_backfill_scans, args.seed, workers=2)
    wall = time.perf_counter() - t0
    print(f"  summary: {summary}")
    print(
        f"wall time {wall:.1f} s = {summary.ran / wall:,.1f} scans/s on 2 worker processes (each loads "
        f"its date range of every replica symbol); inside Scanner.scan "
        f"{summary.scan_seconds / max(summary.ran, 1) * 1e3:.2f} ms per scan"
    )
    print(
        f"peak RSS: parent {maxrss_mib(resource.RUSAGE_SELF):,.0f} MiB; largest worker "
        f"{maxrss_mib(resource.RUSAGE_CHILDREN):,.0f} MiB"
    )
    return {"rate": summary.ran / wall}


CHILDREN = {
    "single": child_single,
    "bandwidth": child_bandwidth,
    "backfill": child_backfill,
    "replica": child_replica,
    "replica_backfill": child_replica_backfill,
}


# -- parent --------------------------------------------------------------------------------------------


def run_child(kind: str, argv: list[str], workdir: Path) -> dict:
    """Run one section in a fresh interpreter, echo its output, return its result line."""
    cmd = [sys.executable, __file__, *argv, "--child", kind, "--workdir", str(workdir)]
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    payload = None
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env, cwd=REPO) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith(RESULT_PREFIX):
                payload = json.loads(line[len(RESULT_PREFIX) :])
            else:
                print(line, end="", flush=True)
    if proc.returncode != 0 or payload is None:
        raise SystemExit(f"benchmark section {kind!r} failed (exit {proc.returncode})")
    return payload


def _memory() -> str:
    try:
        kib = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        return f"{kib / 2**20:.1f} GiB RAM"
    except (OSError, AttributeError):
        return "RAM unknown"


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def _commit() -> str:
    """The checked-out commit, and whether tracked files differ from it (read-only git calls)."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (no git)"
    return (sha or "unknown") + (" with uncommitted changes" if dirty else "")


def _date(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("market_dir", nargs="?", type=Path, default=DEFAULT_DIR)
    p.add_argument("--quick", action="store_true", help="small sizes everywhere (a fast check)")
    p.add_argument("--sample", action="store_true", help="use the embedded sample instead of MARKET_DIR")
    p.add_argument("--scans", type=int, help="acceptance backfill scans (default 10,000; quick 1,000)")
    p.add_argument("--seed", type=int, default=2024)
    p.add_argument("--start", type=_date, default=dt.date(2005, 1, 1), help="backfill range start")
    p.add_argument("--end", type=_date, default=dt.date(2019, 12, 31), help="backfill range end")
    p.add_argument("--repeat", type=int, help="passes per single-core figure (default 3; quick 2)")
    p.add_argument("--single-scans", type=int, help="scans per single-core pass (default 1,000; quick 200)")
    p.add_argument("--bandwidth-mib", type=int, help="array size for the bandwidth copy (default 1024)")
    p.add_argument("--replicas", type=int, help="copies of the panel (default 10; quick 2)")
    p.add_argument("--replica-start", type=_date, default=dt.date(2015, 1, 1))
    p.add_argument("--replica-scans", type=int, help="plan-mix scans on the replica (default 1,000)")
    p.add_argument("--replica-worst-scans", type=int, help="worst-case scans on the replica (default 200)")
    p.add_argument(
        "--replica-backfill-scans",
        type=int,
        help="2-worker backfill scans on the replica (default 3,000; 0 skips)",
    )
    p.add_argument("--skip", action="append", default=[], choices=sorted(CHILDREN), help="skip a section")
    p.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    p.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--replica-end", type=_date, help=argparse.SUPPRESS)
    return p


def fill_defaults(args: argparse.Namespace) -> None:
    quick = args.quick
    defaults = {
        "scans": 1_000 if quick else 10_000,
        "repeat": 2 if quick else 3,
        "single_scans": 200 if quick else 1_000,
        "bandwidth_mib": 256 if quick else 1024,
        "replicas": 2 if quick else 10,
        "replica_scans": 200 if quick else 1_000,
        "replica_worst_scans": 40 if quick else 200,
        "replica_backfill_scans": 300 if quick else 3_000,
    }
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.bandwidth_repeat = 7
    for name in ("scans", "repeat", "single_scans", "bandwidth_mib", "replicas", "replica_scans"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name.replace('_', '-')}: received {getattr(args, name)}; expected >= 1")
    if args.replicas < 2 and "replica" not in args.skip:
        raise SystemExit(f"--replicas: received {args.replicas}; expected >= 2 (copy 0 is the data as is)")
    if args.start >= args.end:
        raise SystemExit(f"--start/--end: received {args.start}..{args.end}; expected start before end")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    fill_defaults(args)
    if args.child:
        result(CHILDREN[args.child](args))
        return 0

    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print("# bench_scanner")
    print(f"command : {shlex.join([sys.executable, *sys.argv])}")
    print(
        f"machine : {platform.node()} | nproc {affinity} (cpu_count {os.cpu_count()}) | {cpu_model()} | "
        f"{_memory()} | caches {_cache_sizes() or 'unknown'}"
    )
    print(f"python  : {platform.python_version()} ({platform.platform()}) | {library_versions()}")
    print(f"date    : {dt.datetime.now(dt.UTC).isoformat(timespec='seconds')} | load average {_load()}")
    print(f"code    : commit {_commit()}")
    if args.sample:
        print("data    : EMBEDDED SAMPLE (synthetic stocks on the real index; not the real 501-symbol data)")
    elif not (args.market_dir / "prices.parquet").is_file():
        print(f"data    : no market-data directory at {args.market_dir}: nothing to measure.")
        print("          Pass its path as the first argument, or --sample to run on the embedded sample.")
        return 0
    else:
        print(f"data    : {args.market_dir}")
    print(
        f"sizes   : acceptance {args.scans:,} scans; single core {args.single_scans:,} scans x "
        f"{args.repeat}; "
        f"replicas {args.replicas}; bandwidth array {args.bandwidth_mib:,} MiB"
    )
    workdir = Path(tempfile.mkdtemp(prefix="bench-scanner-"))
    child_argv = [a for a in argv if a != "--quick"] + (["--quick"] if args.quick else [])
    t_all = time.perf_counter()
    try:
        single = bw = None
        if "single" not in args.skip:
            print(
                "\n## 1. single core, whole " + ("sample" if args.sample else "real") + " panel", flush=True
            )
            single = run_child("single", child_argv, workdir)
        if "bandwidth" not in args.skip:
            print("\n## 2. memory bandwidth vs the bytes a scan touches", flush=True)
            bw = run_child("bandwidth", child_argv, workdir)
            if single:
                report_bandwidth(single, bw)
        if "backfill" not in args.skip:
            print(f"\n## 3. acceptance: {args.scans:,} backfilled scans, 2 workers", flush=True)
            accepted = run_child("backfill", child_argv, workdir)
            if not accepted.get("ok"):
                return 1
        if "replica" not in args.skip:
            which = "sample" if args.sample else "real"
            print(f"\n## 4. {args.replicas}x synthetic replica of the {which} panel", flush=True)
            rep = run_child("replica", child_argv, workdir)
            if args.replica_backfill_scans and "replica_backfill" not in args.skip:
                end_arg = ["--replica-end", rep["end"]]
                run_child("replica_backfill", child_argv + end_arg, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(
        f"\ntotal {time.perf_counter() - t_all:.0f} s; load average at the end {_load()}; {workdir} removed"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
