"""Benchmark: the duration predictor under machine load, and moving it between loads (issue 15).

Usage:
    .venv/bin/python bench/bench_duration_load.py [--scans 3000] [--conditions 0,1,2]
        [--data-root DIR] [--keep] [--recalibration-scans 50] [--max-minutes 60]

The reference scanner's scan durations are measured by :mod:`technic_ml.timing` (the scanning
thread's CPU time relative to a probe, median of interleaved runs) so that a busy machine does not
decide the label. This script checks that on this machine: for each load condition (0, 1 and 2
competing busy-loop processes, ``while True: pass``, running during both the backfill and the
validation) it

1. backfills a fresh history of ``--scans`` scans on the embedded sample market, 2013-12-01 ..
   2018-12-01, seed 0 (the same plan in every condition), into its own directory;
2. validates the duration target with the default candidates (rolling-origin folds, stated
   coverage 90 %) and prints, for the chosen model and for ``rated/enriched``, the held-out R² and
   interval coverage per fold and pooled, whether R² > 0.7 and coverage >= 87 % hold on every fold,
   and the validation's own gate verdict;
3. transfer: for each ordered pair of conditions (A, B), A != B, fits
   ``DurationPredictor(model="rated", feature_set="enriched")`` on all of A's rows, recalibrates
   its rate on the time-ordered first ``--recalibration-scans`` of B's rows (B's own history,
   measured under B's load) and scores the rest of B's rows, with and without the recalibration.
   A label is work x its history's rate (seconds per probe unit). The same scan's label differs
   between loads (the table prints the rates' ratio and the median same-scan ratio: the probe does
   not absorb all of a load), and recalibration is what carries a model to another load.

The transfer step runs without busy processes (it measures nothing). Stdout is markdown; progress
goes to stderr. ``--max-minutes`` bounds the run: a condition is not started when the time spent
plus the longest condition so far would pass it (the skip is printed). With ``--data-root`` each
condition's history is kept under ``DIR/busy-N`` and reused by a later run (its backfill then
only runs what is missing); without it, temporary directories are removed at the end unless
``--keep``.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench._machine import Busy, busy_counts, print_header  # noqa: E402

START, END, SEED = dt.date(2013, 12, 1), dt.date(2018, 12, 1), 0
R2_BAR = 0.7
RATED = "rated/enriched"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Condition:
    busy: int
    directory: Path
    backfill_wall: float = 0.0
    summary: object = None
    validation_wall: float = 0.0
    busy_alive: tuple[int, int] = (0, 0)  # busy processes still running after backfill / validation
    data: object = None  # Dataset of the duration rows, time-ordered
    report: object = None
    load: list[float] = field(
        default_factory=list
    )  # 1-min load average at start, after backfill, after validation

    @property
    def wall(self) -> float:
        return self.backfill_wall + self.validation_wall


def pct(v) -> str:
    return "-" if v is None or not np.isfinite(v) else f"{100 * v:.1f} %"


def fmt_r2(v) -> str:
    return "-" if v is None or not np.isfinite(v) else f"{v:.3f}"


def ms(v) -> str:
    return "-" if v is None or not np.isfinite(v) else f"{1e3 * v:.4f}"


def fold_checks(result, floor: float) -> tuple[bool, bool]:
    """(R² > 0.7 on every fold, coverage >= floor on every fold)."""
    r2_ok = all(m["r2"] > R2_BAR for m in result.per_fold)
    cov_ok = all(m.get("coverage", 0.0) >= floor for m in result.per_fold)
    return r2_ok, cov_ok


def run_condition(cond: Condition, market, scans: int, gates) -> None:
    from technic_ml.backfill import backfill
    from technic_ml.history import ScanHistoryStore
    from technic_ml.predictors.training import load_training_data, validate_predictor

    store = ScanHistoryStore(cond.directory / "history")
    step = max(1, scans // 4)

    def progress(done: int, total: int) -> None:
        if done == total or done % step < 50:
            log(f"busy={cond.busy}: backfill {done}/{total}")

    with Busy(cond.busy) as busy:
        cond.load.append(os.getloadavg()[0])
        log(f"busy={cond.busy}: {busy.alive()} busy processes running; backfill of {scans} scans")
        t = time.perf_counter()
        cond.summary = backfill(START, END, scans, SEED, market=market, store=store, progress=progress)
        cond.backfill_wall = time.perf_counter() - t
        alive_after_backfill = busy.alive()
        cond.load.append(os.getloadavg()[0])
        log(f"busy={cond.busy}: {cond.summary}")
        t = time.perf_counter()
        data, _note = load_training_data(store, market)
        cond.data = data.for_target("duration")
        cond.report = validate_predictor(cond.data, "duration", gates=gates)
        cond.validation_wall = time.perf_counter() - t
        cond.busy_alive = (alive_after_backfill, busy.alive())
        cond.load.append(os.getloadavg()[0])
    log(f"busy={cond.busy}: validated in {cond.validation_wall:.0f} s; chosen {cond.report.chosen}")


def print_condition(cond: Condition, gates) -> None:
    from technic_ml.predictors.validation import markdown

    s, report = cond.summary, cond.report
    print(f"\n## {cond.busy} busy process{'es' if cond.busy != 1 else ''}\n")
    print("| figure | result |\n|---|---|")
    print(
        f"| backfill | {s.ran} scans run ({s.skipped_existing} already stored), {s.added} added,"
        f" {s.empty_scans} empty; wall {cond.backfill_wall:.1f} s ({s.scans_per_second:.1f} scans/s) |"
    )
    print(f"| validation (all candidates, {len(report.folds)} folds) | wall {cond.validation_wall:.1f} s |")
    print(
        f"| busy processes alive after backfill / validation | {cond.busy_alive[0]} / {cond.busy_alive[1]}"
        f" of {cond.busy} |"
    )
    print(
        "| 1-min load average at start / after backfill / after validation | "
        + " / ".join(f"{v:.2f}" for v in cond.load)
        + " |"
    )
    rates = cond.data.rates
    print(
        f"| duration rows; label rate (seconds per probe unit) | {len(cond.data)};"
        f" {', '.join(f'{k} {v * 1e3:.4f} ms' for k, v in rates.items()) or '-'} |"
    )
    print()
    print(markdown(report, gates))
    if report.too_few:
        return
    floor = report.coverage - gates.coverage_tolerance
    names = [report.chosen] + ([RATED] if report.chosen != RATED else [])
    print(f"\nHeld-out R² and coverage (stated {report.coverage:.0%}) per fold:\n")
    print("| model | fold | test window | n | R² | coverage | MAE (ms) |")
    print("|---|---|---|---:|---:|---:|---:|")
    for name in names:
        r = report.result(name)
        mark = " (chosen)" if name == report.chosen else ""
        for fold, m in zip(report.folds, r.per_fold, strict=True):
            print(
                f"| {name}{mark} | {fold.index + 1} | {fold.label} | {int(m['n'])} | {fmt_r2(m['r2'])}"
                f" | {pct(m.get('coverage'))} | {ms(m['mae'])} |"
            )
        p = r.pooled
        print(
            f"| {name}{mark} | pooled | | {int(p['n'])} | **{fmt_r2(p['r2'])}**"
            f" | **{pct(p.get('coverage'))}** | {ms(p['mae'])} |"
        )
    print(
        f"\n| model | R² > {R2_BAR:g} on every fold | coverage >= {floor:.0%} on every fold"
        " | validation gates |"
    )
    print("|---|---|---|---|")
    for name in names:
        r = report.result(name)
        r2_ok, cov_ok = fold_checks(r, floor)
        verdict = "pass" if r.passed else "FAIL: " + "; ".join(r.gate_failures)
        print(f"| {name} | {'yes' if r2_ok else '**no**'} | {'yes' if cov_ok else '**no**'} | {verdict} |")


@dataclass
class Transfer:
    train: int
    target: int
    n_test: int
    label_rate_ratio: float  # B's label rate / A's
    same_scan_ratio: float  # median over the scans both histories hold of B's label / A's
    model_rate_ratio: float  # the model's rate after / before recalibration
    plain: dict
    recalibrated: dict


def transfers(conds: list[Condition], recal: int) -> list[Transfer]:
    from technic_ml.predictors.estimators import DurationPredictor
    from technic_ml.predictors.metrics import regression_report

    out = []
    usable = [c for c in conds if c.data is not None and len(c.data) > recal + 10]
    for a in usable:
        base = DurationPredictor(model="rated", feature_set="enriched")
        fs = base.features
        t = time.perf_counter()
        base.fit(a.data.X(fs), a.data.y("duration"), timestamps=a.data.timestamp)
        log(
            f"transfer: rated/enriched fitted on busy={a.busy} ({len(a.data)} rows)"
            f" in {time.perf_counter() - t:.1f} s"
        )
        before = base.rates
        for b in usable:
            if b is a:
                continue
            X, y = b.data.X(fs), b.data.y("duration")
            head, rest = slice(0, recal), slice(recal, None)
            point, lower, upper = base.predict_interval(X.iloc[rest])
            plain = regression_report(y[rest], point, lower, upper, count=False)
            model = copy.deepcopy(base)
            model.recalibrate(X.iloc[head], y[head])
            point, lower, upper = model.predict_interval(X.iloc[rest])
            recalibrated = regression_report(y[rest], point, lower, upper, count=False)
            after = model.rates
            code = next(iter(set(after) & set(before)), None)
            model_ratio = after[code] / before[code] if code is not None else float("nan")
            label_ratio = _label_rate(b) / _label_rate(a)
            out.append(
                Transfer(
                    a.busy,
                    b.busy,
                    len(y) - recal,
                    label_ratio,
                    _same_scan_ratio(a, b),
                    model_ratio,
                    plain,
                    recalibrated,
                )
            )
    return out


def _same_scan_ratio(a: Condition, b: Condition) -> float:
    """Median of B's label / A's over the scans both hold (the same plan: the same scan ids)."""
    ya = dict(zip(a.data.scan_id, a.data.y("duration"), strict=True))
    ratios = [yb / ya[i] for i, yb in zip(b.data.scan_id, b.data.y("duration"), strict=True) if i in ya]
    return float(np.median(ratios)) if ratios else float("nan")


def _label_rate(cond: Condition) -> float:
    rates = cond.data.rates
    return float(next(iter(rates.values()))) if len(rates) == 1 else float("nan")


def print_transfers(rows: list[Transfer], recal: int) -> None:
    print(
        f"\n## Transfer: rated/enriched trained on all of A's rows, recalibrated on B's first {recal}"
        " (time order), scored on the rest of B\n"
    )
    print(
        "| train A (busy) | score B (busy) | B rows scored | label rate B / A | same scans: label B / A"
        " | model rate after / before"
        " | R² without | coverage without | R² recalibrated | coverage recalibrated"
        " | MAE without / recalibrated (ms) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for t in rows:
        print(
            f"| {t.train} | {t.target} | {t.n_test} | {t.label_rate_ratio:.3f} | {t.same_scan_ratio:.3f}"
            f" | {t.model_rate_ratio:.3f}"
            f" | {fmt_r2(t.plain['r2'])} | {pct(t.plain.get('coverage'))}"
            f" | **{fmt_r2(t.recalibrated['r2'])}** | **{pct(t.recalibrated.get('coverage'))}**"
            f" | {ms(t.plain['mae'])} / {ms(t.recalibrated['mae'])} |"
        )


def print_summary(conds: list[Condition], rows: list[Transfer], gates, skipped: list[int]) -> None:
    print("\n## Summary\n")
    print(
        "| busy | backfill wall (s) | validation wall (s) | chosen | chosen R² pooled (min fold) |"
        " chosen coverage pooled (min fold) | chosen: R² > 0.7 and coverage >= 87 % every fold |"
        " rated R² pooled (min fold) | rated coverage pooled (min fold) |"
        " rated: R² > 0.7 and coverage >= 87 % every fold |"
    )
    print("|---:|---:|---:|---|---|---|---|---|---|---|")
    for c in conds:
        report = c.report
        if report is None or report.too_few:
            why = report.too_few if report is not None else "not run"
            print(f"| {c.busy} | {c.backfill_wall:.1f} | {c.validation_wall:.1f} | {why} | | | | | | |")
            continue
        floor = report.coverage - gates.coverage_tolerance
        cells = []
        for name in (report.chosen, RATED):
            r = report.result(name)
            r2s = [m["r2"] for m in r.per_fold]
            covs = [m.get("coverage", np.nan) for m in r.per_fold]
            ok = all(fold_checks(r, floor))
            cells += [
                f"{fmt_r2(r.pooled['r2'])} ({fmt_r2(min(r2s))})",
                f"{pct(r.pooled.get('coverage'))} ({pct(min(covs))})",
                "yes" if ok else "**NO**",
            ]
        print(
            f"| {c.busy} | {c.backfill_wall:.1f} | {c.validation_wall:.1f} | {report.chosen} | "
            + " | ".join(cells)
            + " |"
        )
    for b in skipped:
        print(f"| {b} | skipped: --max-minutes | | | | | | | | |")
    if rows:
        print(
            "\n| transfer A -> B (busy) | R² without recalibration | coverage without |"
            " R² recalibrated | coverage recalibrated |"
        )
        print("|---|---:|---:|---:|---:|")
        for t in rows:
            print(
                f"| {t.train} -> {t.target} | {fmt_r2(t.plain['r2'])} | {pct(t.plain.get('coverage'))}"
                f" | {fmt_r2(t.recalibrated['r2'])} | {pct(t.recalibrated.get('coverage'))} |"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scans", type=int, default=3000, help="scans backfilled per condition")
    parser.add_argument(
        "--conditions",
        type=busy_counts,
        default=[0, 1, 2],
        help="busy-loop process counts (default 0,1,2)",
    )
    parser.add_argument("--data-root", type=Path, default=None, help="keep each history under DIR/busy-N")
    parser.add_argument("--keep", action="store_true", help="keep the temporary histories")
    parser.add_argument("--recalibration-scans", type=int, default=50)
    parser.add_argument("--max-minutes", type=float, default=60.0, help="do not start a condition past this")
    args = parser.parse_args(argv)
    if args.scans < 1:
        parser.error(f"--scans: received {args.scans}; expected >= 1")
    if args.recalibration_scans < 1:
        parser.error(f"--recalibration-scans: received {args.recalibration_scans}; expected >= 1")

    # A SIGTERM (a timeout, a kill) must still run the finally blocks that stop the busy loops.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    from technic_ml.market_data.sample import SampleMarketData
    from technic_ml.predictors.validation import Gates

    t0 = time.perf_counter()
    print_header()
    print(
        f"\nplan: {args.scans} scans on the embedded sample, {START}..{END}, seed {SEED}, the same in every"
        f" condition; busy processes per condition: {', '.join(map(str, args.conditions))}"
        " (running during the backfill and the validation)"
    )
    gates = Gates()
    market = SampleMarketData()
    temp = None
    if args.data_root is None:
        temp = Path(tempfile.mkdtemp(prefix="technic-bench-duration-load-"))
    root = args.data_root or temp
    conds: list[Condition] = []
    skipped: list[int] = []
    try:
        for busy in args.conditions:
            spent = time.perf_counter() - t0
            longest = max((c.wall for c in conds), default=0.0)
            if conds and spent + longest > args.max_minutes * 60:
                log(
                    f"busy={busy}: skipped, {spent / 60:.1f} min spent"
                    f" + {longest / 60:.1f} min > --max-minutes"
                )
                skipped.append(busy)
                continue
            cond = Condition(busy, root / f"busy-{busy}")
            cond.directory.mkdir(parents=True, exist_ok=True)
            conds.append(cond)
            run_condition(cond, market, args.scans, gates)
            print_condition(cond, gates)
            sys.stdout.flush()
        rows: list[Transfer] = []
        if len([c for c in conds if c.data is not None]) >= 2:
            rows = transfers(conds, args.recalibration_scans)
            print_transfers(rows, args.recalibration_scans)
        else:
            print("\nTransfer: needs at least two conditions; skipped.")
        print_summary(conds, rows, gates, skipped)
    finally:
        if temp is not None and not args.keep:
            shutil.rmtree(temp, ignore_errors=True)
        elif temp is not None:
            print(f"\nhistories kept under {temp}")
    print(f"\ntotal wall time: {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
