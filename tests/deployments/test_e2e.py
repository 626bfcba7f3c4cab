"""End to end: a real Prefect server, the served deployments, an ad-hoc run, the UI in Chromium.

The same scripts as ``make server`` / ``make serve`` / ``make stop`` start and stop everything;
the run is triggered with the CLI shortcut (``technic-ml trigger``). Selected with ``-m e2e``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("TECHNIC_VENV_BIN", REPO / ".venv" / "bin"))

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(900)]


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


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _dom(url: str, tmp_path: Path) -> str:
    """What a page says once its scripts ran (headless chromium's DOM dump)."""
    return subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'chromium-profile'}",
         "--virtual-time-budget=15000", "--dump-dom", url],
        capture_output=True, text=True, timeout=120,
    ).stdout  # fmt: skip


AS_OF = "2018-12-20T10:00:00-05:00"


def _degraded_outcomes_retrain_by_automation(env, api, client, names, data_root, tmp_path, port):
    """The live loop on the served deployments: predictions through the real API code, outcomes far
    outside their intervals, model-monitor run ad hoc, its degraded event, the automation's
    train-predictors run with its artifacts, and the automation and event feed as the UI shows them."""
    from fastapi.testclient import TestClient

    from technic_ml.api.app import create_app
    from technic_ml.api.service import PredictionService
    from technic_ml.settings import TechnicSettings

    # make serve created the automation; serving again (stop, serve) leaves it unchanged.
    automations = client.post("/automations/filter", json={}).json()
    ours = [a for a in automations if a["name"] == "technic-ml: retrain a degraded model"]
    assert len(ours) == 1, automations
    serve_log = tmp_path / "run" / "serve.log"
    assert "automation 'technic-ml: retrain a degraded model': created" in serve_log.read_text()
    pid = int((tmp_path / "run" / "serve.pid").read_text())
    os.killpg(pid, signal.SIGTERM)  # the serve process only; the server keeps running
    _wait_for(lambda: not _group_alive(pid), 30, "serve to stop")
    serve_log.unlink()
    again = _services(env, "serve")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "technic-ml: retrain a degraded model': unchanged" in _wait_for(
        lambda: serve_log.exists() and "unchanged" in (log := serve_log.read_text()) and log,
        60,
        "serve again",
    )
    again = [a for a in client.post("/automations/filter", json={}).json() if a["name"] == ours[0]["name"]]
    assert again == ours  # same id, same trigger id: Prefect's window is not reset

    service = PredictionService(TechnicSettings(data_root=data_root))
    with TestClient(create_app(service, reload=False)) as api_client:
        for i in range(80):
            config = {
                "max_symbols": 100 + i,
                "min_tech_rating": 50,
                "min_dollar_vol": 1e6,
                "lookback_days": 60,
            }
            body = api_client.post("/scan/predict", json={"config": config, "as_of": AS_OF}).json()
            assert body["count"]["state"] == "model", body
            way_off = int(body["count"]["upper"] * 3 + 50)
            r = api_client.post(
                "/scan/outcome", json={"prediction_id": body["prediction_id"], "actual_count": way_off}
            )
            assert r.status_code == 200, r.text

    monitored = subprocess.run(
        [str(BIN / "technic-ml"), "trigger", "model-monitor", "--wait"],
        env={**env, "PREFECT_API_URL": api}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert monitored.returncode == 0, monitored.stdout + monitored.stderr
    events = _wait_for(
        lambda: client.post(
            "/events/filter",
            json={"filter": {"event": {"name": ["technic-ml.model.degraded"]}}, "limit": 50},
        ).json()["events"],
        60,
        "the degraded event",
    )
    assert events[0]["resource"]["prefect.resource.id"] == "technic-ml.model.result-count"
    assert events[0]["resource"]["technic-ml.retrain"] == "requested"
    assert events[0]["payload"]["n_outcomes"] == 80 and events[0]["payload"]["coverage"] == 0

    def automated_runs():
        runs = client.post(
            "/flow_runs/filter",
            json={"deployments": {"id": {"any_": [names["train-predictors"]["id"]]}},
                  "flow_runs": {"created_by": {"type_": ["AUTOMATION"]}}},
        ).json()  # fmt: skip
        return runs or None

    [run] = _wait_for(automated_runs, 60, "the automation's train-predictors run")
    # Only the degraded model's target is retrained: the server rendered it from the event.
    assert run["parameters"]["params"]["targets"] == ["count"], run["parameters"]
    final = {"COMPLETED", "FAILED"}

    def finished():
        got = client.get(f"/flow_runs/{run['id']}").json()
        return got if got["state_type"] in final else None

    done = _wait_for(finished, 400, "the automated train-predictors run to finish")
    artifacts = client.post(
        "/artifacts/filter", json={"artifacts": {"flow_run_id": {"any_": [done["id"]]}}}
    ).json()
    decision = [a for a in artifacts if a["key"] == "train-predictors"]
    # The outcomes came through the API, not as new scans in the history: the champions were
    # trained on exactly this history, so the retrain keeps them (and says so), Completed.
    assert done["state_type"] == "COMPLETED", done["state"]
    assert decision and decision[0]["data"].startswith("# Predictor training run"), artifacts
    assert {"model-registry", "model-aliases"} <= {a["key"] for a in artifacts}

    # What a user sees: the automation (its name, on the automations page) and the event feed.
    page = _dom(f"http://127.0.0.1:{port}/v2/automations", tmp_path)
    assert "technic-ml: retrain a degraded model" in page, page[-2000:]
    # The degraded event's own page in the event feed (the feed's first page holds the newest
    # events, the automated run's by now): its name, its model and its figures.
    event = events[0]
    event_url = f"http://127.0.0.1:{port}/v2/events/event/{event['occurred'][:10]}/{event['id']}"
    shown = _dom(event_url, tmp_path)
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", shown))
    assert "technic-ml.model.degraded" in shown, text[-3000:]
    assert "result-count" in shown, text[-3000:]
    png = tmp_path / "event.png"
    shot = subprocess.run(
        [str(REPO / "scripts" / "ui-screenshot.sh"), event_url, str(png)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    data = png.read_bytes() if png.exists() else b""
    assert shot.returncode == 0 and data[:8] == b"\x89PNG\r\n\x1a\n", shot.stdout + shot.stderr
    assert len(data) > 30_000, len(data)  # a rendered page, not a blank or an error screen
    if keep := os.environ.get("E2E_SCREENSHOT"):
        shutil.copy(png, Path(keep).with_name("events-" + Path(keep).name))


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
            return found if len(found) >= 6 else None

        names = {d["name"]: d for d in _wait_for(deployments, 90, "the served deployments")}
        assert {
            "market-snapshot", "collect-history", "train-predictors", "daily-presets", "backfill-history",
            "model-monitor",
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

        _degraded_outcomes_retrain_by_automation(env, api, client, names, data_root, tmp_path, port)

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
