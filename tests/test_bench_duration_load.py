"""bench/bench_duration_load.py end to end on the embedded sample at a tiny size: it runs, prints its
tables and leaves no busy-loop process or temporary history behind. Correctness of the script, not
its figures."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench" / "bench_duration_load.py"


def run_bench(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(BENCH), *args], capture_output=True, text=True, cwd=REPO, timeout=timeout
    )


def test_bad_arguments_are_refused_with_the_parameter_named() -> None:
    out = run_bench("--scans", "0", timeout=60)
    assert out.returncode == 2
    assert "--scans: received 0; expected >= 1" in out.stderr
    out = run_bench("--conditions", "0,x", timeout=60)
    assert out.returncode == 2
    assert "--conditions" in out.stderr


@pytest.mark.slow
def test_one_idle_condition_runs_and_prints_its_tables() -> None:
    before = set(Path(tempfile.gettempdir()).glob("technic-bench-duration-load-*"))
    out = run_bench("--scans", "800", "--conditions", "0")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    text = out.stdout
    assert text.startswith("machine: ")
    assert "command: " in text
    assert "## 0 busy processes" in text
    assert "### duration: stated coverage 90%" in text
    assert "| model | fold | test window | n | R² | coverage | MAE (ms) |" in text
    assert "| model | R² > 0.7 on every fold | coverage >= 87% on every fold | validation gates |" in text
    assert "rated/enriched" in text
    assert "Transfer: needs at least two conditions; skipped." in text
    assert "## Summary" in text
    assert "| busy | backfill wall (s) | validation wall (s) | chosen |" in text
    assert "total wall time: " in text
    assert set(Path(tempfile.gettempdir()).glob("technic-bench-duration-load-*")) == before


@pytest.mark.slow
def test_two_conditions_transfer_with_and_without_recalibration() -> None:
    # Too few scans to validate (said so, exit 0); the transfer step still runs in both directions.
    out = run_bench("--scans", "200", "--conditions", "0,1", "--recalibration-scans", "20")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    text = out.stdout
    assert "| busy processes alive after backfill / validation | 1 / 1 of 1 |" in text
    assert "**Too few records to validate**" in text
    assert "recalibrated on B's first 20 (time order)" in text
    assert "| 0 | 1 | 180 |" in text and "| 1 | 0 | 180 |" in text
    assert "| 0 -> 1 |" in text and "| 1 -> 0 |" in text
