"""Benchmark: how much of a scan's measured duration is predictable at all (issue 4, duration R² aim).

Usage:
    .venv/bin/python bench/bench_duration_noise.py [MARKET_DIR] [--data-root DIR]
        [--sample 3000] [--repeats 5] [--plan-scans 60000 --plan-seed 4]

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

Then it looks at the stored labels themselves, against a model of the scan's own facts (symbols
scanned, lookback, symbols returned; 5-fold cross-validated gradient boosting on all 60,000): how
much of what is left follows the order the backfill ran the scans in (the machine's speed drifting
over minutes) and the position after each batch write (cold caches). The run order is rebuilt from
the plan (``plan_backfill`` with the bench's arguments, shuffled as ``run_plan`` does), which holds
for a history backfilled from scratch in one chunk, as ``bench_predictors.py`` does.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
DEFAULT_DIR = REPO.parent / "shared/data/market"

from bench._machine import print_header  # noqa: E402


def row(label: str, value: str) -> None:
    print(f"| {label} | {value} |")


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
    parser.add_argument("--plan-scans", type=int, default=60_000, help="bench_predictors.py --scans")
    parser.add_argument("--plan-seed", type=int, default=4, help="bench_predictors.py --seed")
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

    print_header()
    settings = TechnicSettings(data_root=args.data_root, market_source="parquet", market_dir=args.market_dir)
    store = ScanHistoryStore(settings.history_path)
    records = store.between(dt.datetime(2017, 1, 1, tzinfo=NY), dt.datetime(2020, 1, 1, tzinfo=NY))
    records = [r for r in records if r.provenance.scanner_version == SCANNER_VERSION]
    if len(records) < 100:
        print(
            f"{len(records)} scans of 2017-2019 by scanner {SCANNER_VERSION} under {settings.history_path};"
            " run bench/bench_predictors.py first (it backfills them); nothing to measure"
        )
        return 0
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
            raise SystemExit(
                f"{r.scan_id}: re-run returned {result.record.results.count}, stored {r.results.count}"
            )
        reruns[i].append(result.record.performance.total_seconds)
    seconds = time.perf_counter() - t
    print(f"re-runs: {len(order)} scans in {seconds:.1f} s (results identical to the stored ones)")

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
    row("stored duration, mean / median", f"{stored.mean() * 1e3:.2f} ms / {np.median(stored) * 1e3:.2f} ms")
    row("re-runs, mean / median", f"{runs.mean() * 1e3:.2f} ms / {np.median(runs) * 1e3:.2f} ms")
    row("median re-run spread around its scan's median", f"x/÷ {log_spread:.3f}")
    row("repeatability ceiling (oracle R² on one fresh re-run)", f"{repeatability:.3f}")
    row(
        "stored-target ceiling, uncorrected / corrected for the re-run mean's noise",
        f"{raw:.3f} / {corrected:.3f}",
    )
    diagnose(store, settings, market, args)
    print(
        "\nEither ceiling bounds what any predictor can score on one measured duration; the chosen"
        " duration model's pooled R² on the same years is in bench_predictors.py's report."
    )
    return 0


def diagnose(store, settings, market, args) -> None:
    """Where the stored labels' unexplained variance sits: run order and position after a write."""
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.model_selection import KFold, cross_val_predict

    from technic_ml.backfill import BATCH, RUN_ORDER_SEED, plan_backfill

    frame = store.frame()
    plan = plan_backfill(
        dt.date(2005, 1, 1), dt.date(2019, 12, 31), args.plan_scans, args.plan_seed, market.universe()
    )
    position = {p.scan_id: k for k, p in enumerate(plan)}
    if len(frame) != len(plan) or not frame.scan_id.isin(position).all():
        print(f"\nstored labels: {len(frame)} records are not the plan of {len(plan)} scans; no diagnosis")
        return
    run = np.empty(len(plan), dtype=np.int64)
    run[np.random.default_rng(RUN_ORDER_SEED).permutation(len(plan))] = np.arange(len(plan))
    order = run[frame.scan_id.map(position).to_numpy()]
    y = frame.total_seconds.to_numpy()
    facts = np.c_[frame.symbols_scanned, frame.lookback_days, frame.symbols_returned]
    model = HistGradientBoostingRegressor(loss="gamma", max_iter=300, random_state=0)
    expected = cross_val_predict(model, facts, y, cv=KFold(5, shuffle=True, random_state=0))
    log_res = np.log(y / expected)
    after_write = order % BATCH
    by_run = pd.Series(log_res[np.argsort(order)]).rolling(501, center=True, min_periods=50).median()
    drift_share = 1 - np.nanvar(log_res[np.argsort(order)] - by_run) / np.var(log_res)
    square = np.sort((y - expected) ** 2)[::-1]
    total = ((y - y.mean()) ** 2).sum()
    print(f"\nstored labels ({len(y)} scans, backfilled in one run of BATCH={BATCH}):")
    print("| figure | result |\n|---|---|")
    row("R² of the scan's own facts (cross-validated)", f"{1 - square.sum() / total:.3f}")
    top = square[: len(y) // 1000].sum() / total, square[: len(y) // 100].sum() / total
    row("share of all variance in the largest 0.1 % / 1 % of errors", f"{top[0]:.3f} / {top[1]:.3f}")
    first = [float(np.exp(np.median(log_res[after_write == k]))) for k in range(4)]
    row("median time / expected, 1st-4th scan after a batch write", " / ".join(f"{v:.2f}x" for v in first))
    row(
        "the same, every later scan of a batch", f"{float(np.exp(np.median(log_res[after_write >= 4]))):.2f}x"
    )
    blocks = [float(np.exp(np.median(log_res[order // 3000 == k]))) for k in range(len(y) // 3000)]
    row(
        "machine speed: median time / expected per 3,000 scans run", f"{min(blocks):.2f}x..{max(blocks):.2f}x"
    )
    row("share of the log errors that follows the run order (rolling median of 501)", f"{drift_share:.3f}")


if __name__ == "__main__":
    raise SystemExit(main())
