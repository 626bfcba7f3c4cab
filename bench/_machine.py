"""What every benchmark prints about the machine it ran on (imported as ``bench._machine``)."""

from __future__ import annotations

import platform
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
