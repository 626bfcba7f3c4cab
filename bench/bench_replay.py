"""Replay real days through the real system under three retraining policies; per-month figures.

    .venv/bin/python bench/bench_replay.py --start 2018-09-04 --end 2018-11-30 \
        --market-dir ../shared/data/market --out /tmp/replay --retrain-targets count

The same as ``technic-ml replay`` (deployments/replay.py explains the loop). Prints, per month and
policy (frozen champion, nightly retraining, monitor-triggered retraining): realized coverage of
the 90 % intervals, MAE, abstention share and retrains, for the count and the duration, then each
policy's retrains with their reasons. Goal (issue 16): the monitor policy keeps coverage within
87-93 % every month with at least 50 % fewer retrains than nightly.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._machine import print_header


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    shared = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "market"
    parser.add_argument("--start", type=dt.date.fromisoformat, default=dt.date(2018, 9, 4))
    parser.add_argument("--end", type=dt.date.fromisoformat, default=dt.date(2018, 11, 30))
    parser.add_argument(
        "--market-dir",
        type=Path,
        default=shared if shared.is_dir() else None,
        help="default: ../shared/data/market when present, else the configured market data",
    )
    parser.add_argument("--out", type=Path, default=None, help="a new directory (default: a temporary one)")
    parser.add_argument("--per-day", type=int, default=20)
    parser.add_argument("--initial-scans", type=int, default=6000)
    parser.add_argument("--cooldown-days", type=int, default=5)
    parser.add_argument("--candidates", default="hgb/enriched")
    parser.add_argument(
        "--policies", default="frozen,nightly,monitor", help="a subset runs alone (e.g. one per process)"
    )
    parser.add_argument(
        "--retrain-targets", default="count,duration", help="what a retrain trains (both start trained)"
    )
    parser.add_argument(
        "--tables-of",
        type=Path,
        default=None,
        help="print the tables of a replay directory (one stopped early too)",
    )
    args = parser.parse_args(argv)
    if args.tables_of is not None:
        from deployments.replay import stopped_tables

        for target, text in stopped_tables(args.tables_of).items():
            print(f"\n{target}, per month (coverage outside 87-93 % in bold):\n\n{text}")
        return 0
    if args.out is None:
        import tempfile

        args.out = Path(tempfile.mkdtemp(prefix="technic-replay-"))
    print_header()
    from deployments.replay import run_replay
    from technic_ml.replay import markdown

    t0 = time.perf_counter()
    result = run_replay(
        args.start, args.end, args.out, market_dir=args.market_dir, per_day=args.per_day,
        initial_scans=args.initial_scans, cooldown_days=args.cooldown_days,
        candidates=tuple(args.candidates.split(",")), policies=tuple(args.policies.split(",")),
        retrain_targets=tuple(args.retrain_targets.split(",")),
    )  # fmt: skip
    for target in ("count", "duration"):
        text = markdown(result.table(target))
        print(f"\n{target}, per month (coverage outside 87-93 % in bold):\n\n{text}")
    for policy, done in result.retrains.items():
        print(f"\n{policy}: {len(done)} retrains")
        for day, why in done[:50]:
            print(f"  {day}: {why[:160]}")
    flows = ", ".join(f"{k} {v:.0f} s" for k, v in result.flow_seconds.items())
    print(f"\n{result.days} sessions, {result.scans} scans in {time.perf_counter() - t0:.0f} s ({flows})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
