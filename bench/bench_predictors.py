"""Benchmark: the result-count and duration predictors on real data (issue 4, Acceptance and Performance).

Usage:
    .venv/bin/python bench/bench_predictors.py [MARKET_DIR] [--data-root DIR] [--scans 60000]
    .venv/bin/python bench/bench_predictors.py --quick      # 12,000 scans, 3 folds: a few minutes

MARKET_DIR defaults to ../shared/data/market; without it the script says so and exits 0. Steps:

1. **history**: ``--scans`` planned scans over 2005-2019 backfilled point in time by the reference
   scanner into ``--data-root`` (default: a directory under the system temp dir, kept between runs:
   a re-run skips the scans already stored, so only the first run pays for them). One worker, so
   the other core absorbs the machine's own noise while durations are measured.
2. **features**: the history joined with the enriched features (exact previous-close statistics).
3. **accuracy report**: rolling-origin folds over 2017-2019 (six half-year test windows, each trained on
   everything before it, so the first is trained on 2005-2016): seed vs enriched features, Random
   Forest vs gradient boosting, the training-mean and seed-heuristic baselines, every metric, the
   gates, and the coverage of the chosen model on every fold.
4. **training time**: the chosen count and duration predictors fitted on 50,000 records.
5. **prediction latency**: one config through both fitted predictors in process: the compiled
   runtime (``predict_one``) and the whole serving path (features + both models), p50/p99 over
   10,000 calls, next to scikit-learn's own single-row ``predict``.
6. **the original's 150 records**: imported and trained on; the report must flag them as too few.
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


def _p(values) -> str:
    values = np.asarray(values) * 1e6
    return f"p50 {np.percentile(values, 50):.1f} µs, p99 {np.percentile(values, 99):.1f} µs"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("market_dir", nargs="?", type=Path, default=DEFAULT_DIR)
    parser.add_argument(
        "--data-root", type=Path, default=Path(tempfile.gettempdir()) / "technic-bench-predictors"
    )
    parser.add_argument("--scans", type=int, default=60_000)
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--folds", type=int, default=6)
    parser.add_argument("--quick", action="store_true", help="12,000 scans and 3 folds")
    args = parser.parse_args()
    if args.quick:
        args.scans, args.folds = 12_000, 3
        args.data_root = args.data_root.with_name(args.data_root.name + "-quick")
    if not (args.market_dir / "prices.parquet").exists():
        print(f"real market data not found at {args.market_dir}; nothing to measure")
        return 0

    import sklearn

    from technic_ml.backfill import backfill_with_settings
    from technic_ml.history import ScanHistoryStore
    from technic_ml.market_data import open_market_data
    from technic_ml.nyse import NY
    from technic_ml.predictors.features import feature_values, feature_vector, vector
    from technic_ml.predictors.training import (
        FoldPlan,
        load_training_data,
        publish_predictors,
        train_predictors,
    )
    from technic_ml.predictors.validation import DEFAULT_CANDIDATES, Gates, markdown
    from technic_ml.settings import TechnicSettings

    print(
        f"machine: {cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()},"
        f" {library_versions()},"
    )
    print(f"         scikit-learn {sklearn.__version__}; load average at start {os.getloadavg()[0]:.2f}")
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    settings = TechnicSettings(data_root=args.data_root, market_source="parquet", market_dir=args.market_dir)
    store = ScanHistoryStore(settings.history_path, quarantine_dir=settings.quarantine_path)

    # 1. history --------------------------------------------------------------------------------
    t = time.perf_counter()
    summary = backfill_with_settings(
        settings, dt.date(2005, 1, 1), dt.date(2019, 12, 31), args.scans, args.seed
    )
    print(f"\n1. history: {summary} [{time.perf_counter() - t:.1f} s]; store {settings.history_path}")

    # 2. features -------------------------------------------------------------------------------
    market = open_market_data(settings)
    t = time.perf_counter()
    data, note = load_training_data(store, market)
    print(
        f"2. features: {len(data)} records with enriched features ({note}) in {time.perf_counter() - t:.1f} s"
    )

    # 3. accuracy report ------------------------------------------------------------------------
    plan = FoldPlan(
        n_folds=args.folds,
        test_start=dt.datetime(2017, 1, 1, tzinfo=NY),
        test_end=dt.datetime(2020, 1, 1, tzinfo=NY),
    )
    gates = Gates()
    t = time.perf_counter()
    run = train_predictors(data, candidates=DEFAULT_CANDIDATES, gates=gates, folds=plan, data_note=note)
    print(
        f"3. accuracy report: {len(DEFAULT_CANDIDATES)} candidates x {args.folds} folds x 2 targets, refit,"
        f" in {time.perf_counter() - t:.0f} s"
    )
    first = run.targets["count"].report.folds[0]
    print(f"   first fold trains on {len(first.train)} scans before {first.test_start:%Y-%m-%d}")
    for target, trained in run.targets.items():
        print()
        print(markdown(trained.report, gates))
        chosen = trained.report.result(trained.report.chosen)
        print(f"\n{target}, chosen {chosen.name}, per fold:")
        print("| fold | n | MAE | R² | coverage | mean width |\n|---|---|---|---|---|---|")
        for fold, m in zip(trained.report.folds, chosen.per_fold, strict=True):
            print(
                f"| {fold.label} | {m['n']:.0f} | {m['mae']:.4g} | {m['r2']:.4f} | {m['coverage']:.1%}"
                f" | {m['mean_width']:.4g} |"
            )

    count = run.targets["count"].report
    duration = run.targets["duration"].report
    c, d = count.result(count.chosen), duration.result(duration.chosen)
    print("\nacceptance:")
    print(f"  count:    chosen {c.name}, passes gates: {c.passed} {c.gate_failures or ''}")
    print(
        f"            R² {c.pooled['r2']:.4f} (aim >= 0.95),"
        f" median q-error {c.pooled['q_error_median']:.3f} (aim <= 1.2),"
        f" fold coverage {min(m['coverage'] for m in c.per_fold):.1%}"
        f"..{max(m['coverage'] for m in c.per_fold):.1%}"
        f" (>= {count.coverage - gates.coverage_tolerance:.0%})"
    )
    print(f"  duration: chosen {d.name}, passes gates: {d.passed} {d.gate_failures or ''}")
    print(
        f"            R² {d.pooled['r2']:.4f} (aim >= 0.8), fold coverage"
        f" {min(m['coverage'] for m in d.per_fold):.1%}..{max(m['coverage'] for m in d.per_fold):.1%}"
    )

    # 4. training time on 50,000 records ----------------------------------------------------------
    rows = np.arange(min(50_000, len(data)))
    subset = data.subset(rows)
    for target in ("count", "duration"):
        candidate = run.targets[target].candidate
        predictor = candidate.build(target, 0.9)
        t = time.perf_counter()
        predictor.fit(subset.X(predictor.features), subset.y(target), timestamps=subset.timestamp)
        print(
            f"4. training {target} {candidate.name} on {len(rows)} records:"
            f" {time.perf_counter() - t:.1f} s wall (1 thread)"
        )

    # 5. prediction latency ---------------------------------------------------------------------
    from technic_ml.contracts import ScanConfig
    from technic_ml.panel import Panel
    from technic_ml.predictors.universe import UniverseStats

    when = dt.datetime(2019, 12, 31, 11, 0, tzinfo=NY)
    panel = Panel.from_market(market, when, start=dt.date(2017, 6, 1))
    universe = UniverseStats(panel)
    from technic_ml.market_conditions import snapshot_market

    conditions = snapshot_market(market, when)
    config = ScanConfig(
        max_symbols=200,
        min_tech_rating=55,
        min_dollar_vol=5e6,
        sectors=["Information Technology"],
        lookback_days=120,
    )
    models = {t: run.targets[t].predictor for t in ("count", "duration")}
    rows_x = {t: feature_vector(m.features, config, conditions, universe) for t, m in models.items()}
    for t, m in models.items():
        m.predict_one(rows_x[t])  # compile and warm
    runtime, serving, sk = [], [], []
    for _ in range(10_000):
        t0 = time.perf_counter()
        for t, m in models.items():
            m.predict_one(rows_x[t])
        runtime.append(time.perf_counter() - t0)
    for _ in range(10_000):
        t0 = time.perf_counter()
        values = feature_values(config, conditions, universe)  # once for both, as Predictors.predict does
        for m in models.values():
            m.predict_one(vector(m.features, values))
        serving.append(time.perf_counter() - t0)
    for _ in range(300):
        t0 = time.perf_counter()
        for t, m in models.items():
            m.predict(rows_x[t][None, :])
        sk.append(time.perf_counter() - t0)
    print(
        f"5. one config, both models: compiled runtime {_p(runtime)};"
        f" with features {_p(serving)}; scikit-learn predict {_p(sk)}"
    )
    print(f"   count {models['count'].predict_one(rows_x['count'])}")

    # 6. the original 150 records -----------------------------------------------------------------
    from technic_ml.history.jsonl import sample_scan_log
    from technic_ml.predictors.registry import ModelRegistry

    with tempfile.TemporaryDirectory() as tmp:
        original = ScanHistoryStore(Path(tmp) / "history")
        original.import_jsonl(sample_scan_log())
        odata, onote = load_training_data(original, market)
        orun = train_predictors(odata, folds=FoldPlan(n_folds=3), data_note=onote)
        outcomes = publish_predictors(ModelRegistry(Path(tmp) / "models"), orun)
        for target, trained in orun.targets.items():
            print(
                f"6. original log, {target}: trained {trained.candidate.name} on {len(odata)} records;"
                f" report: {trained.report.too_few}; published: {outcomes[target].published}"
            )
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
