"""Benchmark: abstain only where it matters, on a later period with a larger universe (issue 15, item 6).

Usage:
    .venv/bin/python bench/bench_abstention.py [--train-scans 2500] [--test-scans 800]
        [--hidden 20] [--seed 11] [--model hgb] [--data-root DIR] [--keep]

The predictors used to abstain whenever any input lay outside the range it had in training (the
*old rule*: any feature outside ``predictor.feature_range_``, or missing). A later period whose
universe had a few more symbols than any training day then lost 5.8 % of the count champion's
predictions, mostly to ``n_universe`` / ``n_rated`` just above their training maxima. The *range
rule* (``technic_ml.predictors.estimators``) predicts a continuous feature up to 10 % of its
training span outside the range, with a widened interval, flagged ``extrapolated``; farther out,
missing, or a coded feature with an unseen value still abstains.

This script reproduces the situation on the embedded sample market (300 synthetic symbols):

1. ``--hidden`` symbols, drawn at random with ``--seed``, are hidden from a wrapper ``MarketData``
   (from its universe and its bars), so the training universe is smaller than the test's
   (280 of 300 by default, like 480 of 501 on the real panel);
2. a training history of ``--train-scans`` scans is backfilled on the shrunk market over
   2013-12-01..2017-05-31 (seed ``--seed``) and a test history of ``--test-scans`` scans on the
   full market over 2017-06-01..2018-11-30 (seed ``--seed`` + 1); each history's rows get the
   universe statistics of the market it ran on (``load_training_data``);
3. for each target, ``make_predictor(target, model=--model, feature_set="enriched")`` is fitted on
   every training row and the test rows are scored as serving would treat them
   (``predict_batch``, ``serving_shares``): old-rule and range-rule abstention, the extrapolated
   share, the coverage of the widened intervals (and of the same rows' unwidened intervals), the
   coverage on the in-range rows, and which features left the training range.

A test duration label is the test history's measured work x the training history's rate (seconds
per probe unit, ``features.duration_labels``): both histories are the reference scanner on the same
sample data and machine, so one source has one rate, as serving assumes; both rates are printed.
The two backfills still run a minute or more apart, and the machine's speed moves between them more
than the rates capture: the table prints the median test label / prediction on the in-range rows
(1.00 when nothing moved; counts are exact and sit at 1.00) and, for durations, the coverage with
that one factor divided out, so the range rule can be judged apart from the machine's drift.

Stdout is markdown; progress goes to stderr. With ``--data-root`` the two histories are kept under
``DIR/train`` and ``DIR/test`` and reused by a later run with the same arguments; without it they go
to a temporary directory, removed at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench._machine import print_header  # noqa: E402

TRAIN = (dt.date(2013, 12, 1), dt.date(2017, 5, 31))
TEST = (dt.date(2017, 6, 1), dt.date(2018, 11, 30))
TARGETS = ("count", "duration")
#: Feature families, for why the old rule abstained on a row (every feature of both enriched sets).
FAMILIES = {
    "universe size": ("max_symbols", "n_universe", "n_rated", "prev_count", "prev_share", "n_near", "work"),
    "market conditions": ("trend_encoded", "volatility", "momentum", "return_5d", "return_20d", "vix_level"),
    "other config": ("min_tech_rating", "min_dollar_vol", "num_sectors", "num_industries", "lookback_days"),
    "time or source": ("time_of_day", "day_of_week", "is_market_hours", "data_source"),
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def at_least(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"received {text!r}; expected an integer >= {minimum}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"received {value}; expected >= {minimum}")
        return value

    return parse


def pct(v: float) -> str:
    return "-" if v is None or not np.isfinite(v) else f"{100 * v:.1f} %"


def share(n: int, total: int) -> str:
    return f"{n} ({pct(n / total)})" if total else "0"


def fmt(v: float) -> str:
    return f"{v:.4g}"


def hiding_market(base, hidden: frozenset[str]):
    """``base`` without the ``hidden`` symbols: gone from the universe and from every bar query."""
    from technic_ml.market_data.base import MarketData

    class Hiding(MarketData):
        source = f"{base.source}:without-{len(hidden)}"  # source_name() is still "sample"
        is_sample = base.is_sample

        def _load_universe(self):
            universe = base._load_universe()
            return universe[~universe["symbol"].isin(hidden)]

        def _load_bars(self, symbols, start, end):
            if symbols is None:
                symbols = [s for s in base._load_universe()["symbol"] if s not in hidden]
            return base._load_bars([s for s in symbols if s not in hidden], start, end)

        def _load_spy(self, start, end):
            return base._load_spy(start, end)

        def _load_vix(self, start, end):
            return base._load_vix(start, end)

    return Hiding()


def old_rule_outside(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """(rows, features): outside the training range or missing, the old rule's abstention test."""
    return ~((x >= lo) & (x <= hi))


def within_margin(x: np.ndarray, lo: np.ndarray, hi: np.ndarray, names) -> np.ndarray:
    """(rows, features): outside the range but close enough for the range rule to extrapolate."""
    from technic_ml.predictors.estimators import EXTRAPOLATABLE, EXTRAPOLATION_MARGIN

    span = hi - lo
    with np.errstate(divide="ignore", invalid="ignore"):
        overshoot = np.where(x < lo, lo - x, x - hi) / np.where(span > 0, span, np.nan)
    allowed = np.array([n in EXTRAPOLATABLE for n in names])
    ok = np.isfinite(x) & np.isfinite(overshoot) & (overshoot <= EXTRAPOLATION_MARGIN) & allowed
    return old_rule_outside(x, lo, hi) & ok


def evaluate(predictor, X_frame, y: np.ndarray, offset: float) -> dict:
    """Every figure of one target's test rows (see the module docstring)."""
    from technic_ml.predictors.validation import serving_shares

    names = list(predictor.feature_names_in_)
    X = X_frame.loc[:, names].to_numpy(dtype=np.float64)
    lo, hi = predictor.feature_range_
    outside = old_rule_outside(X, lo, hi)
    near = within_margin(X, lo, hi, names)
    far = outside & ~near
    served = predictor.predict_batch(X)
    shares = serving_shares(predictor, X_frame.loc[:, names], y)
    in_range, extrapolated = served["in_range"], served["extrapolated"]
    inside = in_range & ~extrapolated
    covered = (y >= served["lower"]) & (y <= served["upper"])
    unwidened = float("nan")
    widening = []
    if extrapolated.any():
        rows = np.flatnonzero(extrapolated)
        _, lower, upper = predictor.predict_interval(X[rows])
        unwidened = float(((y[rows] >= lower) & (y[rows] <= upper)).mean())
        widening = [predictor.range_check(X[i])[0] for i in rows]
    # Where the test labels sit against the model on rows it knows: 1.00 when nothing moved
    # (counts +1 so that empty scans count); for durations, the machine's speed between backfills.
    drift = float("nan")
    if inside.any():
        drift = float(np.median((y[inside] + offset) / (served["point"][inside] + offset)))
    dedrifted = (float("nan"), float("nan"))
    if offset == 0 and np.isfinite(drift) and drift > 0:
        # Durations only (a count is exact, dividing it would break its integer interval): the test
        # labels moved by the machine's speed between the two backfills; take that one factor out.
        y_adj = y / drift
        hit = (y_adj >= served["lower"]) & (y_adj <= served["upper"])
        dedrifted = (
            float(hit[extrapolated].mean()) if extrapolated.any() else float("nan"),
            float(hit[inside].mean()) if inside.any() else float("nan"),
        )
    # The per-feature rule above must give serving's own verdict row for row.
    agrees = bool(
        (far.any(axis=1) == ~in_range).all() and ((outside.any(axis=1) & in_range) == extrapolated).all()
    )
    return {
        "n": len(y),
        "names": names,
        "X": X,
        "lo": lo,
        "hi": hi,
        "outside": outside,
        "near": near,
        "far": far,
        "old_abstain": float(outside.any(axis=1).mean()),
        "shares": shares,
        "n_extrapolated": int(extrapolated.sum()),
        "n_abstain": int((~in_range).sum()),
        "n_old": int(outside.any(axis=1).sum()),
        "extrapolated_coverage": float(covered[extrapolated].mean()) if extrapolated.any() else float("nan"),
        "unwidened_coverage": unwidened,
        "inside_coverage": float(covered[inside].mean()) if inside.any() else float("nan"),
        "n_inside": int(inside.sum()),
        "widening": np.array(widening, dtype=np.float64),
        "drift": drift,
        "dedrifted": dedrifted,
        "agrees": agrees,
    }


def figures_table(results: dict[str, dict], train_rows: dict[str, int], stated: float) -> None:
    targets = list(results)
    print("| figure | " + " | ".join(targets) + " |")
    print("|---|" + "---|" * len(targets))

    def line(label: str, cell) -> None:
        print(f"| {label} | " + " | ".join(cell(results[t], t) for t in targets) + " |")

    line("training rows / test rows", lambda r, t: f"{train_rows[t]} / {r['n']}")
    line(
        "old rule: abstain share (any feature outside the training range or missing)",
        lambda r, t: f"{pct(r['old_abstain'])} ({r['n_old']})",
    )
    line("range rule: abstain share", lambda r, t: f"{pct(r['shares']['abstain_share'])} ({r['n_abstain']})")
    line(
        "range rule: extrapolated share (predicted, interval widened)",
        lambda r, t: f"{pct(r['shares']['extrapolated_share'])} ({r['n_extrapolated']})",
    )
    line(
        f"coverage of the widened intervals, extrapolated rows (stated {stated:.0%})",
        lambda r, t: pct(r["extrapolated_coverage"]),
    )
    line("the same rows' intervals without the widening", lambda r, t: pct(r["unwidened_coverage"]))

    def widening(r: dict, t: str) -> str:
        w = r["widening"]
        return f"x{np.median(w):.2f} / x{w.max():.2f}" if len(w) else "-"

    line("widening factor on the extrapolated rows, median / max", widening)
    line("coverage, in-range rows", lambda r, t: f"{pct(r['inside_coverage'])} ({r['n_inside']} rows)")
    line("median test label / prediction, in-range rows (counts + 1)", lambda r, t: f"{r['drift']:.3f}")
    line(
        "coverage, extrapolated / in-range rows, test durations divided by that median",
        lambda r, t: " / ".join(pct(v) for v in r["dedrifted"]) if np.isfinite(r["dedrifted"][1]) else "-",
    )


def family_table(r: dict) -> None:
    """The old rule's abstentions by the family of the features that caused them."""
    family = {name: f for f, names in FAMILIES.items() for name in names}
    names = [family.get(n, "time or source") for n in r["names"]]
    outside, far = r["outside"], r["far"]
    print("| old rule abstained because of | rows | share of test rows | range rule abstains |")
    print("|---|---|---|---|")
    causes = [
        " + ".join(sorted({names[j] for j in np.flatnonzero(row)})) if row.any() else "" for row in outside
    ]
    abstains = far.any(axis=1)
    for cause in sorted({c for c in causes if c}, key=lambda c: (-causes.count(c), c)):
        rows = np.array([c == cause for c in causes])
        print(f"| {cause} | {int(rows.sum())} | {pct(rows.mean())} | {int((rows & abstains).sum())} |")
    total = outside.any(axis=1)
    print(f"| **any** | {int(total.sum())} | {pct(total.mean())} | {int((total & abstains).sum())} |")


def feature_table(r: dict) -> None:
    """One row per feature that left its training range on at least one test row."""
    outside, near, far, X = r["outside"], r["near"], r["far"], r["X"]
    n_out = outside.sum(axis=1)
    print(
        "| feature | training range | test range | outside (old rule) | only feature outside"
        " | within the 10 % margin | beyond it, coded or missing |"
    )
    print("|---|---|---|---|---|---|---|")
    order = np.argsort(-outside.sum(axis=0), kind="stable")
    shown = 0
    for j in order:
        if not outside[:, j].any():
            continue
        shown += 1
        col = X[:, j]
        finite = col[np.isfinite(col)]
        test_range = f"[{fmt(finite.min())}, {fmt(finite.max())}]" if len(finite) else "-"
        missing = int((~np.isfinite(col)).sum())
        beyond = f"{int(far[:, j].sum())}" + (f" ({missing} missing)" if missing else "")
        print(
            f"| {r['names'][j]} | [{fmt(r['lo'][j])}, {fmt(r['hi'][j])}] | {test_range}"
            f" | {share(int(outside[:, j].sum()), r['n'])} | {int((outside[:, j] & (n_out == 1)).sum())}"
            f" | {int(near[:, j].sum())} | {beyond} |"
        )
    if not shown:
        print("| (none) | | | 0 | 0 | 0 | 0 |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-scans", type=at_least(100), default=2500)
    parser.add_argument("--test-scans", type=at_least(10), default=800)
    parser.add_argument("--hidden", type=at_least(1), default=20, help="symbols hidden from training")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--model", choices=("hgb", "rf"), default="hgb")
    parser.add_argument("--data-root", type=Path, default=None, help="keep and reuse the histories here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary histories")
    args = parser.parse_args()

    from technic_ml.market_data.sample import N_SYMBOLS

    if args.hidden > N_SYMBOLS - 50:
        parser.error(f"--hidden: received {args.hidden}; expected at most {N_SYMBOLS - 50}")

    t_start = time.perf_counter()
    print_header()
    from technic_ml.backfill import backfill
    from technic_ml.history import ScanHistoryStore
    from technic_ml.market_data.sample import SampleMarketData
    from technic_ml.predictors.estimators import EXTRAPOLATION_MARGIN, make_predictor
    from technic_ml.predictors.training import load_training_data

    full = SampleMarketData()
    symbols = sorted(full.universe()["symbol"])
    rng = np.random.default_rng(args.seed)
    hidden = frozenset(rng.choice(symbols, size=args.hidden, replace=False).tolist())
    shrunk = hiding_market(full, hidden)
    print(
        f"\nuniverse: training {len(shrunk.universe())} of {len(symbols)} symbols; hidden (random, seed"
        f" {args.seed}): {', '.join(sorted(hidden))}"
    )

    if args.data_root is not None:
        root, temporary = args.data_root, False
    else:
        root, temporary = Path(tempfile.mkdtemp(prefix="technic-bench-abstention-")), True
    try:
        stores = {}
        periods = {
            "train": (TRAIN, args.train_scans, args.seed, shrunk),
            "test": (TEST, args.test_scans, args.seed + 1, full),
        }
        print("\n| history | market | period | scans | backfill wall (s) |\n|---|---|---|---|---|")
        for name, ((start, end), n, seed, market) in periods.items():
            log(f"backfilling {name}: {n} scans {start}..{end} on {market.source}")
            t = time.perf_counter()
            stores[name] = ScanHistoryStore(root / name)
            summary = backfill(start, end, n, seed, market=market, store=stores[name])
            wall = time.perf_counter() - t
            log(f"{name}: {summary}")
            print(
                f"| {name} | {market.source} ({len(market.universe())} symbols) | {start}..{end}"
                f" | {summary.planned} (ran {summary.ran}, empty {summary.empty_scans}) | {wall:.1f} |"
            )

        log("loading the datasets")
        t = time.perf_counter()
        train, train_note = load_training_data(stores["train"], shrunk)
        test, test_note = load_training_data(stores["test"], full)
        print(
            f"\ndatasets ({time.perf_counter() - t:.1f} s): training {len(train)} rows ({train_note});"
            f" test {len(test)} rows ({test_note})"
        )
        source = "sample"
        rate_train, rate_test = train.rates.get(source), test.rates.get(source)
        if rate_train and rate_test:
            print(
                f"duration rate (seconds per probe unit): training {rate_train:.4g}, test {rate_test:.4g};"
                f" test labels are rescaled by {rate_train / rate_test:.4f} to the training rate"
            )

        results, train_rows, fit_seconds, stated = {}, {}, {}, 0.9
        for target in TARGETS:
            tr, te = train.for_target(target), test.for_target(target)
            predictor = make_predictor(target, model=args.model, feature_set="enriched")
            stated = predictor.coverage
            log(f"fitting {args.model}/enriched for {target} on {len(tr)} rows")
            t = time.perf_counter()
            predictor.fit(tr.X(predictor.features), tr.y(target), timestamps=tr.timestamp)
            fit_seconds[target] = time.perf_counter() - t
            y = te.y(target).astype(np.float64)
            if target == "duration" and rate_train and rate_test:
                y = y * (rate_train / rate_test)
            offset = 1.0 if target == "count" else 0.0
            results[target] = evaluate(predictor, te.X(predictor.features), y, offset)
            train_rows[target] = len(tr)

        print(
            f"\n### {args.model}/enriched fitted on the training history, scored on the test rows"
            f" (fits: {', '.join(f'{t} {s:.1f} s' for t, s in fit_seconds.items())})\n"
        )
        figures_table(results, train_rows, stated)
        for target, r in results.items():
            if not r["agrees"]:
                print(f"\nWARNING: {target}: the per-feature rule disagrees with predict_batch's verdict")
        for target, r in results.items():
            print(
                f"\n### {target}: features outside their training range on the test rows"
                f" (margin {EXTRAPOLATION_MARGIN:.0%} of the training span)\n"
            )
            family_table(r)
            print()
            feature_table(r)
    finally:
        if temporary and not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        elif temporary:
            print(f"\nhistories kept under {root}")
    print(f"\ntotal wall time: {time.perf_counter() - t_start:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
