"""What every benchmark prints about the machine it ran on (imported as ``bench._machine``)."""

from __future__ import annotations

import argparse
import contextlib
import platform
import subprocess
import sys
import time
from pathlib import Path


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def library_versions() -> str:
    import numpy
    import pandas
    import pyarrow

    return f"numpy {numpy.__version__}, pandas {pandas.__version__}, pyarrow {pyarrow.__version__}"


def print_header() -> None:
    """The machine, its load and the command: the first two lines every benchmark prints."""
    import os
    import sys

    print(
        f"machine: {cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()},"
        f" {library_versions()}; load average at start {os.getloadavg()[0]:.2f}"
    )
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")


class Busy:
    """Competing load: ``n`` busy-loop processes for the duration of a ``with`` block (killed on the
    way out)."""

    def __init__(self, n: int):
        self.n = n
        self.procs: list[subprocess.Popen] = []

    def __enter__(self) -> Busy:
        try:
            for _ in range(self.n):
                self.procs.append(subprocess.Popen([sys.executable, "-c", "while True: pass"]))
        except BaseException:
            self.stop()
            raise
        if self.n:
            time.sleep(1.0)  # let them start spinning before anything is measured
        return self

    def alive(self) -> int:
        return sum(p.poll() is None for p in self.procs)

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
        for p in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=10)
        self.procs = []

    def __exit__(self, *exc) -> None:
        self.stop()


def busy_counts(text: str) -> list[int]:
    """argparse type for ``--busy``-style options: distinct counts of competing processes, ``0,1,2``."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"received {text!r}; expected comma-separated counts like 0,1,2"
        ) from None
    if not values or any(v < 0 for v in values) or len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"received {text!r}; expected distinct counts >= 0 like 0,1,2")
    return values
