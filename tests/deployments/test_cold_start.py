"""The main job on a new machine: Prefect's ephemeral server starts cold, under load, on the first try.

A cold start (a new PREFECT_HOME: the server creates and migrates its database) measured 15.6-53.0 s
on 2 cores, idle to both cores busy, around Prefect's default startup timeout of 20 s
(bench/bench_prefect_cold_start.py);
``deployments.prefect_env`` sets a generous default, and fails fast when the server dies instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from deployments import prefect_env
from technic_ml.errors import TechnicError


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_main_job_starts_prefect_cold_on_its_first_try_with_both_cores_busy(tmp_path):
    technic_ml = Path(sys.executable).with_name("technic-ml")  # the installed console script
    # A user's environment: none of the test suite's Prefect settings (its startup timeout above all),
    # no server, a new Prefect home and a new data root.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "TECHNIC_"))}
    env |= {
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "TECHNIC_DATA_ROOT": str(tmp_path / "data"),
        "COLUMNS": "200",
    }
    # With the other pytest worker, the busy loop leaves the job less than one core of two.
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        started = time.perf_counter()
        proc = subprocess.run(
            [str(technic_ml), "run", "--scans", "0"], env=env, capture_output=True, text=True, timeout=560
        )
        seconds = time.perf_counter() - started
    finally:
        busy.kill()
        busy.wait()
    assert proc.returncode == 0, f"after {seconds:.0f} s:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert "Timed out" not in proc.stderr
    assert "starting Prefect's ephemeral server" in proc.stderr
    assert "Ran on an ephemeral Prefect server" in proc.stdout and "Outputs" in proc.stdout
    assert (tmp_path / "prefect-home" / "prefect.db").exists()  # it was a cold start: a new database
    assert (tmp_path / "data" / "reports" / "last-run.json").exists()


def test_the_defaults_keep_a_value_the_user_set(monkeypatch):
    monkeypatch.setenv("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "42")
    monkeypatch.delenv("PREFECT_SERVER_ANALYTICS_ENABLED", raising=False)
    prefect_env.set_defaults()
    assert os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] == "42"
    assert os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
    monkeypatch.delenv("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS")
    prefect_env.set_defaults()
    assert os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] == "300"


@pytest.fixture
def dying_server(monkeypatch):
    """Prefect's own SubprocessASGIServer and wait loop, with a server process that exits at once."""
    from prefect.server.api.server import SubprocessASGIServer

    monkeypatch.setattr(SubprocessASGIServer, "_instances", {})
    monkeypatch.setattr(prefect_env, "uses_ephemeral_server", lambda: True)

    def with_exit_code(code: int) -> None:
        monkeypatch.setattr(
            SubprocessASGIServer,
            "_run_uvicorn_command",
            lambda self: subprocess.Popen([sys.executable, "-c", f"raise SystemExit({code})"]),
        )

    # Prefect sleeps while it looks for a free port before each restart: a wide window for a
    # restart to race with giving up (the race CI once lost).
    find_port = SubprocessASGIServer.find_available_port

    def slowly(self):
        time.sleep(0.3)
        return find_port(self)

    monkeypatch.setattr(SubprocessASGIServer, "find_available_port", slowly)
    return with_exit_code


@pytest.mark.parametrize("code", [1, 3], ids=["crash", "startup-failure"])
def test_a_server_that_dies_while_starting_fails_in_seconds_not_at_the_timeout(dying_server, code):
    # Prefect itself would wait out its timeout (60 s in the tests, 300 by default), restarting a
    # server that exits with 3 again and again.
    dying_server(code)
    started = time.perf_counter()
    with pytest.raises(TechnicError, match=f"exited with code {code} .* while starting") as info:
        prefect_env.start_ephemeral_server()
    assert time.perf_counter() - started < 20
    assert "\n" not in str(info.value)
    # Prefect's wait loop ends too: no thread left polling, or restarting, a dead server
    assert not [t for t in threading.enumerate() if t.name == "prefect-ephemeral-start"]
