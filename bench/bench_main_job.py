"""The main job's wall time (README command 1): `technic-ml run` from an installed environment.

Each repeat runs the console script in a fresh data root and a fresh PREFECT_HOME (ephemeral
Prefect: a temporary server with its migrations, as on a new machine), then a second time on the
same data root (the idempotent re-run: backfill cached, champions kept). Prints wall seconds.

    .venv/bin/python bench/bench_main_job.py [--repeats 1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._machine import cpu_model, library_versions

BIN = Path(sys.executable).parent


def run_once(root: Path, home: Path) -> tuple[float, dict]:
    env = {
        **os.environ,
        "TECHNIC_DATA_ROOT": str(root),
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "60",
        "NO_PROXY": "127.0.0.1,localhost",
    }
    env.pop("PREFECT_API_URL", None)
    t0 = time.perf_counter()
    proc = subprocess.run([str(BIN / "technic-ml"), "run"], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"technic-ml run exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return seconds, json.loads((root / "reports" / "last-run.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    args, _ = parser.parse_known_args()
    import platform

    print(
        f"machine: {cpu_model()}, {os.cpu_count()} cores,"
        f" Python {platform.python_version()}, {library_versions()}"
    )
    print("command: technic-ml run (embedded sample, 3,000 backfilled scans, ephemeral Prefect)")
    print(f"{'repeat':>6} {'fresh s':>9} {'re-run s':>9}  count R²  duration")
    for k in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            root, home = Path(tmp) / "root", Path(tmp) / "prefect-home"
            fresh, summary = run_once(root, home)
            again, _ = run_once(root, home)
            r2 = summary["predictors"]["count"].get("r2") or float("nan")
            state = summary["train_predictors"]["state"]
            print(f"{k + 1:>6} {fresh:>9.1f} {again:>9.1f}  {r2:.3f}    train-predictors {state}")
    print("target (issue 5): at most 180 s on 2 cores from an installed environment")


if __name__ == "__main__":
    main()
