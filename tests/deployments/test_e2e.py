"""End to end: a real Prefect server, the served deployments, an ad-hoc run, the UI in Chromium.

The same scripts as ``make server`` / ``make serve`` / ``make stop`` start and stop everything;
the run is triggered with the CLI shortcut (``technic-ml trigger``). Selected with ``-m e2e``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("TECHNIC_VENV_BIN", REPO / ".venv" / "bin"))

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(600)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _services(env, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(REPO / "scripts" / "services.sh"), *args], env=env, capture_output=True, text=True, timeout=180
    )


def _wait_for(predicate, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}")


def _dom(url: str, tmp_path: Path) -> str:
    """What a page says once its scripts ran (headless chromium's DOM dump)."""
    return subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'chromium-profile'}",
         "--virtual-time-budget=15000", "--dump-dom", url],
        capture_output=True, text=True, timeout=120,
    ).stdout  # fmt: skip


def test_served_deployments_run_ad_hoc_and_show_in_the_ui(tmp_path, history_template):
    if shutil.which("chromium") is None:
        pytest.fail("Debian's chromium is needed for the UI screenshot: apt-get install -y chromium")
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    data_root = tmp_path / "root"
    shutil.copytree(history_template, data_root / "history")
    env = {
        **os.environ,
        "BIN": str(BIN),
        "RUN_DIR": str(tmp_path / "run"),
        "PREFECT_PORT": str(port),
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_RUNNER_POLL_FREQUENCY": "2",
        "TECHNIC_DATA_ROOT": str(data_root),
    }
    env.pop("PREFECT_API_URL", None)
    try:
        started = _services(env, "server")
        assert started.returncode == 0, started.stdout + started.stderr
        served = _services(env, "serve")
        assert served.returncode == 0, served.stdout + served.stderr
        client = httpx.Client(base_url=api, timeout=10)

        def deployments():
            found = client.post("/deployments/filter", json={}).json()
            return found if len(found) >= 5 else None

        names = {d["name"]: d for d in _wait_for(deployments, 90, "the served deployments")}
        assert {
            "market-snapshot", "collect-history", "train-predictors", "daily-presets", "backfill-history"
        } <= set(names)  # fmt: skip
        assert names["daily-presets"]["schedules"][0]["schedule"]["cron"] == "30 8 * * 1-5"
        assert names["train-predictors"]["schedules"][0]["schedule"]["cron"] == "30 17 * * 1-5"
        assert names["train-predictors"]["schedules"][0]["schedule"]["timezone"] == "America/New_York"
        assert names["backfill-history"]["schedules"] == []

        # The ad-hoc trigger, through the CLI shortcut. Count only: on the sample the duration
        # predictor fails its R² gate (millisecond scans are mostly machine noise), which would
        # rightly end the run Failed.
        params = {"targets": ["count"], "candidates": ["hgb/enriched"], "n_folds": 2}
        trigger = subprocess.run(
            [str(BIN / "technic-ml"), "trigger", "train-predictors",
             "--param", f"params={json.dumps(params)}", "--wait"],
            env={**env, "PREFECT_API_URL": api}, capture_output=True, text=True, timeout=400,
        )  # fmt: skip
        serve_log = (tmp_path / "run" / "serve.log").read_text()[-3000:]
        assert trigger.returncode == 0, trigger.stdout + trigger.stderr + serve_log
        assert "Completed" in trigger.stdout

        runs = client.post(
            "/flow_runs/filter", json={"deployments": {"id": {"any_": [names["train-predictors"]["id"]]}}}
        ).json()
        completed = [r for r in runs if r["state_type"] == "COMPLETED"]
        assert completed, [r["state_type"] for r in runs]
        artifacts = client.post(
            "/artifacts/filter", json={"artifacts": {"flow_run_id": {"any_": [completed[0]["id"]]}}}
        ).json()
        keys = {a["key"] for a in artifacts}
        assert {"train-predictors", "validation-count", "model-registry", "validation-count-figure"} <= keys

        # The daily presets from the champion just published (no duration champion: the seed
        # heuristic, flagged), through the served deployment.
        presets = subprocess.run(
            [str(BIN / "technic-ml"), "trigger", "daily-presets", "--wait"],
            env={**env, "PREFECT_API_URL": api}, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert presets.returncode == 0, presets.stdout + presets.stderr
        assert "Completed" in presets.stdout
        presets_runs = client.post(
            "/flow_runs/filter", json={"deployments": {"id": {"any_": [names["daily-presets"]["id"]]}}}
        ).json()
        presets_done = [r for r in presets_runs if r["state_type"] == "COMPLETED"]
        # The rest are the schedule's next runs (08:30 on weekdays), not yet due.
        assert len(presets_done) == 1
        assert {r["state_type"] for r in presets_runs} <= {"COMPLETED", "SCHEDULED"}
        presets_artifacts = client.post(
            "/artifacts/filter", json={"artifacts": {"flow_run_id": {"any_": [presets_done[0]["id"]]}}}
        ).json()
        by_key = {a["key"]: a for a in presets_artifacts}
        assert {"daily-presets", "daily-presets-table", "hot-sectors"} <= set(by_key)
        from technic_ml.predictors.registry import ModelRegistry

        champion = ModelRegistry(data_root / "models").aliases("result-count")
        assert champion["champion"] in by_key["daily-presets"]["data"]  # provenance: the model version
        listed = subprocess.run(
            [str(BIN / "technic-ml"), "presets", "history", "--json"],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        saved = json.loads(listed.stdout)[0]
        assert saved["provenance"]["models"]["count"]["version"] == champion["champion"]
        assert saved["provenance"]["snapshot_id"] and saved["generated_at"]

        # The main job against this server (PREFECT_API_URL set) instead of an ephemeral one.
        main = subprocess.run(
            [str(BIN / "technic-ml"), "run", "--scans", "0"],
            env={**env, "PREFECT_API_URL": api}, capture_output=True, text=True, timeout=400,
        )  # fmt: skip
        assert main.returncode == 0, main.stdout + main.stderr
        assert f"Prefect UI: http://127.0.0.1:{port}/runs" in main.stdout
        main_runs = client.post("/flow_runs/filter", json={"flows": {"name": {"any_": ["main-job"]}}}).json()
        assert [r["state_type"] for r in main_runs] == ["COMPLETED"]

        png = tmp_path / "runs.png"
        shot = subprocess.run(
            [str(REPO / "scripts" / "ui-screenshot.sh"), f"http://127.0.0.1:{port}/v2/runs", str(png)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert shot.returncode == 0, shot.stdout + shot.stderr
        # What the page says once its scripts ran: the run list, not "Unable to connect".
        dom = _dom(f"http://127.0.0.1:{port}/v2/runs", tmp_path)
        assert "Unable to connect" not in dom
        assert "train-predictors" in dom, dom[-2000:]
        data = png.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        # A rendered page of runs (about 95 kB here); the "Unable to connect" page is about 36 kB.
        assert len(data) > 50_000, len(data)
        if keep := os.environ.get("E2E_SCREENSHOT"):  # to look at what a user sees
            shutil.copy(png, keep)
        # The presets artifact as the UI renders it.
        artifact_dom = _dom(
            f"http://127.0.0.1:{port}/artifacts/artifact/{by_key['daily-presets']['id']}", tmp_path
        )
        assert "Daily presets for" in artifact_dom, artifact_dom[-2000:]
        if keep := os.environ.get("E2E_SCREENSHOT"):
            subprocess.run(
                [str(REPO / "scripts" / "ui-screenshot.sh"),
                 f"http://127.0.0.1:{port}/artifacts/artifact/{by_key['daily-presets']['id']}",
                 str(Path(keep).with_name("presets-" + Path(keep).name))],
                capture_output=True, text=True, timeout=120,
            )  # fmt: skip
    finally:
        stopped = _services(env, "stop")
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    for name in ("server", "serve"):
        assert not (tmp_path / "run" / f"{name}.pid").exists()
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0, "the server still answers after stop"
