"""How long Prefect's ephemeral server takes to start: cold (a new PREFECT_HOME) and warm, idle and loaded.

`technic-ml run` without ``PREFECT_API_URL`` starts Prefect's ephemeral server (a uvicorn
subprocess) and waits for its health endpoint at most ``PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS``
(Prefect's default: 20). On a new machine the server first creates and migrates its SQLite
database: that cold start is what this measures, next to a warm start on the same home, with the
machine idle and with one busy-loop process per core fighting for the CPU (``--busy``).

Each start runs in a fresh child process (like the console script), with a fresh PREFECT_HOME for
the cold one; "cold s" and "warm s" are the wall time of ``SubprocessASGIServer.start()`` (the
timeout's scope), not counting the import of Prefect before it. "flow s" is what a one-task flow
costs from a new PREFECT_HOME: the whole child process (import, cold server start, run, stop).

    .venv/bin/python bench/bench_prefect_cold_start.py [--repeats 3] [--busy 0 2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._machine import print_header

CHILD = """
import time
from prefect.server.api.server import SubprocessASGIServer
from prefect.settings.models.server.ephemeral import ServerEphemeralSettings
server = SubprocessASGIServer()
t0 = time.perf_counter()
server.start(timeout=900)
seconds = time.perf_counter() - t0
server.stop()
print(seconds, ServerEphemeralSettings.model_fields["startup_timeout_seconds"].default)
"""


FLOW = """
from prefect import flow, task

@task
def one():
    return 1

@flow
def tiny():
    return one()

assert tiny() == 1
"""


def _child(code: str, home: Path) -> str:
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "900",
    }
    env.pop("PREFECT_API_URL", None)
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=1200)
    if proc.returncode != 0:
        raise SystemExit(f"child failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return proc.stdout


def start_seconds(home: Path) -> tuple[float, int]:
    seconds, default = _child(CHILD, home).split()
    return float(seconds), int(default)


def flow_seconds(home: Path) -> float:
    started = time.perf_counter()
    _child(FLOW, home)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--busy", type=int, nargs="+", default=[0, os.cpu_count() or 1],
        help="Busy-loop processes running during the starts (one figure set per value).",
    )  # fmt: skip
    args, _ = parser.parse_known_args()  # run_all.py passes every benchmark the same extra arguments
    print_header()
    default = None
    print(f"{'busy loops':>10} {'repeat':>6} {'cold s':>7} {'warm s':>7} {'flow s':>7}")
    for busy in args.busy:
        loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
        try:
            figures = []
            for k in range(args.repeats):
                with tempfile.TemporaryDirectory() as home, tempfile.TemporaryDirectory() as flow_home:
                    cold, default = start_seconds(Path(home))
                    warm, _ = start_seconds(Path(home))
                    figures.append((cold, warm, flow_seconds(Path(flow_home))))
                print(f"{busy:>10} {k + 1:>6}" + "".join(f" {v:>7.1f}" for v in figures[-1]), flush=True)
            ranges = [f"{min(column):.1f}-{max(column):.1f}" for column in zip(*figures, strict=True)]
            print(f"{busy:>10} {'range':>6} " + " ".join(ranges))
        finally:
            for loop in loops:
                loop.kill()
                loop.wait()
    print(
        f"Prefect's default startup timeout: {default} s (its wait loop counts only its 0.1 s sleeps);"
        f" technic-ml's entry points default it to {_project_default()} s"
    )


def _project_default() -> str:
    from deployments.prefect_env import EPHEMERAL_STARTUP_TIMEOUT_SECONDS

    return str(EPHEMERAL_STARTUP_TIMEOUT_SECONDS)


if __name__ == "__main__":
    main()
