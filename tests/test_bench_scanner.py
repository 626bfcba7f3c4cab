"""bench/bench_scanner.py end to end on the embedded sample at tiny sizes: it runs, prints every
section's figures and leaves nothing behind. Correctness of the script, not timing."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench" / "bench_scanner.py"


def run_bench(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(BENCH), *args], capture_output=True, text=True, cwd=REPO, timeout=timeout
    )


def test_missing_market_dir_exits_cleanly_with_a_message(tmp_path: Path) -> None:
    out = run_bench(str(tmp_path / "no-such-dir"), "--quick", timeout=60)
    assert out.returncode == 0, out.stderr
    assert "no market-data directory at" in out.stdout
    assert "## 1." not in out.stdout


def test_bad_sizes_are_refused_with_the_parameter_named() -> None:
    out = run_bench("--sample", "--scans", "0", timeout=60)
    assert out.returncode != 0
    assert "--scans: received 0; expected >= 1" in out.stderr


@pytest.mark.slow
def test_every_section_runs_on_the_sample_at_tiny_sizes() -> None:
    # The 2-worker replica backfill and the 1 GiB bandwidth copy are skipped to stay well under 20 s;
    # the first runs the same backfill_with_settings path as section 3.
    out = run_bench(
        "--sample",
        "--quick",
        "--scans", "60",
        "--single-scans", "20",
        "--repeat", "1",
        "--replicas", "2",
        "--replica-scans", "20",
        "--replica-worst-scans", "4",
        "--replica-backfill-scans", "0",
        "--skip", "bandwidth",
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    text = out.stdout
    assert "EMBEDDED SAMPLE" in text
    for rate in re.findall(r"worst-case: median ([\d,.]+) scans/s", text) + re.findall(
        r"plan mix: median ([\d,.]+) scans/s", text
    ):
        assert float(rate.replace(",", "")) > 0
    assert "where the fixed cost goes" in text
    assert re.search(r"wall time [\d.]+ s for 60 scans = [\d.]+ scans/s on 2 worker processes", text)
    assert re.search(r"store\.frame\(\): 60 rows", text)
    years = re.findall(r"^\s+(\d{4})\s+\d+\s+[\d.]+", text, re.M)
    assert years and all(2005 <= int(y) <= 2018 for y in years)
    assert "2008-Q4 vs 2013" in text
    assert (
        "SYNTHETIC REPLICA OF THE REAL PANEL (embedded sample): 2 copies x 300 symbols = 600 symbols" in text
    )
    assert "RSS along the scans" in text
    workdir = re.search(r"; (\S+bench-scanner-\S+) removed", text)
    assert workdir and not Path(workdir.group(1)).exists()
