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
