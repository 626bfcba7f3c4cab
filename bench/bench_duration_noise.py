"""Benchmark: how much of a scan's measured duration is predictable at all (issue 4, duration R² aim).

Usage:
    .venv/bin/python bench/bench_duration_noise.py [MARKET_DIR] [--data-root DIR] [--sample 3000] [--repeats 5]

The duration predictor learns the reference scanner's wall time, a few milliseconds. Part of any one
measurement is the machine (preemption, caches, frequency), which no feature of the scan can know.
This script measures that part on the test years of the predictors bench: it takes a random sample
of the 2017-2019 scans stored under ``--data-root`` (the history ``bench_predictors.py`` backfilled)
and re-runs each ``--repeats`` times, in a shuffled order, on the same one core the backfill used.

It prints two ceilings, both upper bounds on the R² of *any* predictor of one measured duration:

* **repeatability**: 1 - (mean within-scan variance of the re-runs) / (variance of all re-runs);
  what an oracle that knows each scan's true expected time would score on one fresh re-run.
* **stored target**: the R² of the stored duration (the label the models are scored on) against
  the re-runs' mean, after the best linear fit (the machine's speed differs between the two runs).
  The re-run mean still holds 1/repeats of the noise; the printed figure is corrected for it, and
  the uncorrected one is printed too.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
DEFAULT_DIR = REPO.parent / "shared/data/market"

from bench._machine import cpu_model, library_versions  # noqa: E402


def r2(y: np.ndarray, pred: np.ndarray) -> float:
    return float(1 - ((y - pred) ** 2).sum() / ((y - y.mean()) ** 2).sum())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("market_dir", nargs="?", type=Path, default=DEFAULT_DIR)
    parser.add_argument(
        "--data-root", type=Path, default=Path(tempfile.gettempdir()) / "technic-bench-predictors"
    )
    parser.add_argument("--sample", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    if not (args.market_dir / "prices.parquet").exists():
        print(f"real market data not found at {args.market_dir}; nothing to measure")
        return 0

    from technic_ml.history import ScanHistoryStore
    from technic_ml.market_data import open_market_data
    from technic_ml.nyse import NY
    from technic_ml.panel import Panel
    from technic_ml.scanner import SCANNER_VERSION, Scanner
    from technic_ml.settings import TechnicSettings

    print(
        f"machine: {cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()},"
        f" {library_versions()}; load average at start {os.getloadavg()[0]:.2f}"
    )
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    settings = TechnicSettings(data_root=args.data_root, market_source="parquet", market_dir=args.market_dir)
    store = ScanHistoryStore(settings.history_path)
    records = store.between(dt.datetime(2017, 1, 1, tzinfo=NY), dt.datetime(2020, 1, 1, tzinfo=NY))
    records = [r for r in records if r.provenance.scanner_version == SCANNER_VERSION]
    if len(records) < 100:
        print(
            f"{len(records)} scans of 2017-2019 by scanner {SCANNER_VERSION} under {settings.history_path};"
            " run bench/bench_predictors.py first (it backfills them)"
        )
        return 1
    rng = np.random.default_rng(args.seed)
    picked = [records[i] for i in rng.choice(len(records), min(args.sample, len(records)), replace=False)]
    print(f"sample: {len(picked)} of the {len(records)} stored 2017-2019 scans, {args.repeats} re-runs each")

    market = open_market_data(settings)
    scanner = Scanner(Panel.from_market(market, max(r.timestamp for r in picked), start=dt.date(2015, 1, 1)))
    for r in picked[:200]:  # warm caches and the allocator, untimed
        scanner.scan(r.config, r.timestamp)
    order = np.repeat(np.arange(len(picked)), args.repeats)
    rng.shuffle(order)
    reruns = [[] for _ in picked]
    t = time.perf_counter()
    for i in order:
        r = picked[i]
        result = scanner.scan(r.config, r.timestamp)
        if result.record.results.count != r.results.count:
            raise SystemExit(f"{r.scan_id}: re-run returned {result.record.results.count}, stored {r.results.count}")
        reruns[i].append(result.record.performance.total_seconds)
    print(f"re-runs: {len(order)} scans in {time.perf_counter() - t:.1f} s (results identical to the stored ones)")

    runs = np.array(reruns)  # (n, repeats)
    stored = np.array([r.performance.total_seconds for r in picked])
    within = runs.var(axis=1, ddof=1).mean()
    total = runs.reshape(-1).var(ddof=1)
    repeatability = 1 - within / total
    mean = runs.mean(axis=1)
    fit = np.polyfit(mean, stored, 1)
    raw = r2(stored, np.polyval(fit, mean))
    # The re-run mean carries within/repeats of noise variance: attenuation of the fit's R² by the
    # reliability of the predictor, var(true) / var(mean).
    reliability = 1 - (within / args.repeats) / mean.var(ddof=1)
    corrected = min(raw / reliability, 1.0)
    log_spread = np.exp(np.median(np.abs(np.log(runs / np.median(runs, axis=1, keepdims=True)))))
    print()
    print("| figure | result |\n|---|---|")
    print(f"| stored duration, mean / median | {stored.mean() * 1e3:.2f} ms / {np.median(stored) * 1e3:.2f} ms |")
    print(f"| re-runs, mean / median | {runs.mean() * 1e3:.2f} ms / {np.median(runs) * 1e3:.2f} ms |")
    print(f"| median re-run spread around its scan's median | x/÷ {log_spread:.3f} |")
    print(f"| repeatability ceiling (oracle R² on one fresh re-run) | {repeatability:.3f} |")
    print(f"| stored-target ceiling, uncorrected / corrected for the re-run mean's own noise | {raw:.3f} / {corrected:.3f} |")
    print(
        "\nEither ceiling bounds what any predictor can score on one measured duration; the chosen"
        " duration model's pooled R² on the same years is in bench_predictors.py's report."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
