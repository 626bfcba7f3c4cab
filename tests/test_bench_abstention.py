"""bench/bench_abstention.py end to end on the embedded sample at a tiny size: it runs, prints its
tables and leaves no temporary history behind. Correctness of the script, not its figures."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench" / "bench_abstention.py"


def run_bench(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(BENCH), *args], capture_output=True, text=True, cwd=REPO, timeout=timeout
    )


def test_bad_arguments_are_refused_with_the_parameter_named() -> None:
    out = run_bench("--train-scans", "5", timeout=60)
    assert out.returncode == 2
    assert "--train-scans: received 5; expected >= 100" in out.stderr
    out = run_bench("--hidden", "299", timeout=60)
    assert out.returncode == 2
    assert "--hidden: received 299" in out.stderr


@pytest.mark.slow
def test_tiny_run_prints_its_tables() -> None:
    before = set(Path(tempfile.gettempdir()).glob("technic-bench-abstention-*"))
    out = run_bench("--train-scans", "600", "--test-scans", "200")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    text = out.stdout
    assert text.startswith("machine: ")
    assert "command: " in text
    assert "universe: training 280 of 300 symbols" in text
    assert "| history | market | period | scans | backfill wall (s) |" in text
    assert "| figure | count | duration |" in text
    assert "| old rule: abstain share (any feature outside the training range or missing) |" in text
    assert "| range rule: abstain share |" in text
    assert "| coverage, in-range rows |" in text
    assert "### count: features outside their training range on the test rows" in text
    assert "### duration: features outside their training range on the test rows" in text
    assert "| old rule abstained because of | rows | share of test rows | range rule abstains |" in text
    assert "| feature | training range | test range | outside (old rule) |" in text
    assert "WARNING" not in text
    assert "total wall time: " in text
    assert set(Path(tempfile.gettempdir()).glob("technic-bench-abstention-*")) == before
