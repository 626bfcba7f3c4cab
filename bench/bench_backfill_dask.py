"""Backfill on a Dask cluster: scans/s of the backfill-history flow with 1 and 2 Dask workers.

    .venv/bin/python bench/bench_backfill_dask.py --scans 600

For each worker count, a fresh data root and a Dask cluster of that many single-threaded worker
processes (``distributed.LocalCluster``, reached by its scheduler address exactly as a remote
cluster is through ``TECHNIC_DASK_ADDRESS``); the flow sends the same plan in the same chunks
(``--chunks``, the flow's default 4) to the workers, which run the scans and write the same
history store. Each chunk loads the bars of its own date range, so more chunks than workers add
loading, not speed. Scans/s counts every scan added,
each timed ``timing_runs`` times as any backfill does (``technic_ml.timing``), over the flow's
wall time, Prefect and Dask overheads included. Market data: the embedded sample unless
``--market-dir`` names a directory.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._machine import print_header


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scans", type=int, default=600)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--chunks", type=int, default=4)
    parser.add_argument("--market-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    print_header()
    if args.market_dir is not None:
        os.environ["TECHNIC_MARKET_DIR"] = str(args.market_dir)
        os.environ["TECHNIC_MARKET_SOURCE"] = "parquet"
    from deployments import prefect_env

    prefect_env.set_defaults()
    prefect_env.start_ephemeral_server()
    from distributed import LocalCluster

    from flows.backfill_history import BackfillParams, backfill_history, task_runner
    from technic_ml.history import ScanHistoryStore
    from technic_ml.settings import TechnicSettings

    rows = []
    for workers in (int(w) for w in args.workers.split(",")):
        root = Path(tempfile.mkdtemp(prefix=f"technic-dask-{workers}-"))
        os.environ["TECHNIC_DATA_ROOT"] = str(root)  # the flow and the workers read it
        params = BackfillParams(
            start=dt.date(2017, 1, 3), end=dt.date(2018, 11, 30), n_scans=args.scans, chunks=args.chunks
        )
        with LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster:
            flow = backfill_history.with_options(
                task_runner=task_runner("dask", address=cluster.scheduler_address)
            )
            t0 = time.perf_counter()
            result = flow(params)
            seconds = time.perf_counter() - t0
        stored = ScanHistoryStore(TechnicSettings().history_path).count()
        rows.append((workers, result["added"], stored, seconds))
        print(f"{workers} worker(s): {result['added']} scans added ({stored} stored) in {seconds:.1f} s:"
              f" {result['added'] / seconds:.1f} scans/s", flush=True)  # fmt: skip
    if len(rows) > 1:
        base = rows[0][1] / rows[0][3]
        for workers, added, _, seconds in rows[1:]:
            print(f"{workers} workers vs {rows[0][0]}: x{added / seconds / base:.2f}")
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
