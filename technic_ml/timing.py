"""How long a reference scan takes, measured so that the rest of the machine does not decide it.

The duration predictor learns, per data source, the time a user waits for a scan of that source.
For scans imported from a production scanner's log that is the ``performance.total_seconds`` the
scanner logged. For the reference scanner (``technic_ml.scanner``, run by ``technic_ml.backfill``)
a scan is an in-memory computation of about a millisecond, and one wall-clock reading of it is
mostly the machine: on a 2-core machine with two busy-loop processes a model of one wall-clock
reading scored a held-out R² of -0.04 (issue 15). Nothing about the scan can predict that noise,
so the label is measured differently (:func:`measure`):

* **CPU time of the scanning thread** (``time.thread_time``), not wall time: time the thread was
  not running (preempted by another process) does not count.
* **Relative to a probe**: CPU time still grows when another process shares the core (caches,
  memory bandwidth, a hypervisor's other guests). Right before every timed scan, a fixed probe
  (:func:`probe`: the reference scanner's own indicator code over a fixed synthetic window of 200
  symbols x 120 sessions) is timed the same way. The ratio scan / probe is the scan's **work** in
  probe units, which a momentary slowdown changes for both alike.
* **Repeated, interleaved**: every scan is timed ``runs`` times, in rounds over a whole batch (scan
  1..n, then 1..n again), so its runs lie seconds apart instead of inside one noisy millisecond;
  the label takes the median of its ratios.
* **In seconds**: the record's ``total_seconds`` is work x the batch's **rate**, the median CPU
  seconds of all its probes: a duration in seconds on this machine at its typical speed during the
  batch. The record keeps the parts (``work_units``, ``probe_seconds``) and one ``wall_seconds``
  reading. The rate still moves between batches with the machine (30 % between two batches of one
  idle run), so the predictors learn work x one rate per source
  (:func:`technic_ml.predictors.features.duration_labels`).

How the choice was made (issue 15, 800 sample scans, a gradient-boosting model of the scan's
symbols, lookback and result count, 5-fold R² of the label; the probe then was a fixed scan rather
than the synthetic window): one wall-clock reading 0.86 idle and -0.11 with two busy processes; the
thread's CPU time, minimum of 3 back-to-back runs, 0.91 idle and 0.50 busy; minimum of 5
interleaved runs 0.65-0.92, varying from run to run; CPU time relative to the probe, median of 7
interleaved runs, 0.98 idle and 0.95-0.96 busy (the first 3 of them: 0.96 and 0.87-0.91).
``tests/test_timing.py`` checks a scan's measured work under a busy loop against the same scan
without it; ``bench/bench_duration_load.py`` measures the predictors trained on these labels
with 0, 1 and 2 busy processes.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import TypeVar

import numpy as np

__all__ = ["PROBE_SESSIONS", "PROBE_SYMBOLS", "TIMING_METHOD", "TIMING_RUNS", "Timing", "measure", "probe"]

#: Timed runs of every backfilled scan (see the module docstring).
TIMING_RUNS = 5
PROBE_SYMBOLS = 200
PROBE_SESSIONS = 120
#: Recorded with every label measured here (``performance.timing``); a label without it is one
#: wall-clock reading (scanner 1.2.0 and earlier), which the duration predictor does not learn from.
TIMING_METHOD = "thread-cpu/probe, median of interleaved runs"

T = TypeVar("T")


@dataclass(frozen=True)
class Timing:
    """One scan's measured duration (see the module docstring)."""

    seconds: float  # the label: work_units x probe_seconds
    work_units: float  # median over runs of (scan CPU time / probe CPU time right before it)
    probe_seconds: float  # the batch's rate: median CPU seconds of its probes
    wall_seconds: float  # the first run's wall-clock time, for reference
    runs: int

    def performance_extra(self) -> dict[str, float | int | str]:
        """The keys a backfilled record carries in ``performance`` besides ``total_seconds``."""
        return {
            "timing": TIMING_METHOD,
            "timing_runs": self.runs,
            "work_units": self.work_units,
            "probe_seconds": self.probe_seconds,
            "wall_seconds": self.wall_seconds,
        }


_probe_window: SimpleNamespace | None = None


def _window() -> SimpleNamespace:
    """A fixed synthetic panel for the probe (the same numbers on every machine and every run)."""
    global _probe_window
    if _probe_window is None:
        rng = np.random.default_rng(20261203)
        rows, k = PROBE_SESSIONS + 1, PROBE_SYMBOLS
        returns = rng.normal(0.0003, 0.02, size=(rows, k))
        close = (50 * np.exp(np.cumsum(returns, axis=0))).astype(np.float32)
        _probe_window = SimpleNamespace(
            dates=np.arange(rows),
            has_bar=np.ones((rows, k), dtype=bool),
            close=close,
            volume=rng.integers(10_000, 1_000_000, size=(rows, k)).astype(np.float32),
            spy_close=np.exp(np.cumsum(rng.normal(0.0003, 0.01, size=rows))).astype(np.float64),
            symbols=np.array([f"P{i:03d}" for i in range(k)], dtype=object),
            idx=np.arange(k),
        )
    return _probe_window


def probe() -> float:
    """CPU seconds of this thread for one fixed unit of scan-like work (about a millisecond)."""
    from technic_ml.scanner import _indicators  # the scanner's own code: the same mix of work

    window = _window()
    start = time.thread_time()
    _indicators(window, window.idx, PROBE_SESSIONS, PROBE_SESSIONS, extras=True)
    return time.thread_time() - start


def measure(
    run: Callable[[T], object], items: Sequence[T], runs: int = TIMING_RUNS
) -> tuple[list, list[Timing]]:
    """Run every item ``runs`` times in interleaved rounds; (first run's outputs, their timings).

    ``run(item)`` must return the same result every time (a scan as of a fixed moment does). The
    garbage collector is kept out of the timed region (its pauses belong to earlier work).
    """
    if runs < 1:
        raise ValueError(f"runs: received {runs}; expected at least 1")
    n = len(items)
    ratios = np.empty((n, runs))
    probes = np.empty((n, runs))
    walls = np.empty(n)
    outputs: list = [None] * n
    collecting = gc.isenabled()
    gc.disable()
    try:
        for r in range(runs):
            for i, item in enumerate(items):
                p = probe()
                wall = time.perf_counter()
                cpu = time.thread_time()
                out = run(item)
                cpu = time.thread_time() - cpu
                wall = time.perf_counter() - wall
                probes[i, r] = p
                ratios[i, r] = cpu / p if p > 0 else np.nan
                if r == 0:
                    outputs[i], walls[i] = out, wall
            if collecting:
                gc.collect()  # between rounds, outside any timed region
    finally:
        if collecting:
            gc.enable()
    rate = float(np.median(probes)) if n else 0.0
    timings = []
    for i in range(n):
        known = ratios[i][np.isfinite(ratios[i])]
        if len(known) == 0:  # a thread clock that never advanced: no measurement, never a guess
            raise RuntimeError(
                "time.thread_time() did not advance over a probe; cannot measure scan durations"
            )
        work = float(np.median(known))
        timings.append(Timing(work * rate, work, rate, float(walls[i]), runs))
    return outputs, timings
