"""Two workers and an API on one bucket: a real S3-compatible server (moto) on 127.0.0.1.

Each worker is its own process with its own local working directory and inbox, as on two
machines; they share only ``TECHNIC_DATA_ROOT=s3://...`` and a Prefect server. Both import the
same scanner log (each scan once in the history), train (one champion per model: the second
worker finds the first one's champion trained on the same data) and emit presets that an API
process, on a third working directory, serves from the bucket.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from technic_ml.errors import StoreError
from technic_ml.history import ScanHistoryStore
from technic_ml.history.delta import DeltaHistoryStore
from technic_ml.objectstore import ObjectRoot, lease
from technic_ml.optimizer.presets import SharedPresetsHistory
from technic_ml.predictors.registry import ModelRegistry
from tests.history.test_delta import assert_a_changed_record_is_quarantined

REPO = Path(__file__).resolve().parents[1]
BUCKET = "technic-shared-test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_env(tmp_path_factory):
    """A moto S3 server on 127.0.0.1 with one bucket; the AWS variables that point at it."""
    boto3 = pytest.importorskip("boto3")
    port = _free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
    }
    try:
        client = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], **_credentials(env))
        deadline = time.monotonic() + 60
        while True:
            try:
                client.create_bucket(Bucket=BUCKET)
                break
            except Exception:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError(f"moto server did not start: {log.read_text()[-2000:]}") from None
                time.sleep(0.2)
        yield env
    finally:
        server.terminate()
        server.wait(timeout=30)


def _credentials(env):
    return {
        "aws_access_key_id": env["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"],
        "region_name": env["AWS_REGION"],
    }


@pytest.fixture
def aws(s3_env, monkeypatch):
    for key, value in s3_env.items():
        monkeypatch.setenv(key, value)
    return s3_env


def test_a_lease_lock_admits_one_holder_and_breaks_an_expired_one(aws, caplog):
    root = ObjectRoot(f"s3://{BUCKET}/locks")
    with (
        root.lock("a.lock", wait_seconds=5),
        pytest.raises(StoreError, match="still held by"),
        lease(root.fs, root.key("a.lock"), wait_seconds=0.3),
    ):
        pass
    # Released: free again at once.
    with root.lock("a.lock", wait_seconds=1):
        pass
    # A holder that died: its lease runs out and the next taker breaks it, saying so.
    assert root.create("b.lock", data=json.dumps({"holder": "dead:1", "expires_at": 0}).encode())
    with root.lock("b.lock", wait_seconds=2):
        assert "lease expired" in caplog.text


def _presets(presets_id: str, generated_at: str) -> dict:
    from technic_ml.optimizer.presets import SCHEMA_VERSION

    return {
        "schema_version": SCHEMA_VERSION,
        "presets_id": presets_id,
        "generated_at": generated_at,
        "presets": {},
        "provenance": {},
    }


def test_shared_presets_are_saved_once_and_latest_is_the_newest_even_after_a_killed_save(aws, tmp_path):
    root = ObjectRoot(f"s3://{BUCKET}/presets-{tmp_path.name}")
    history = SharedPresetsHistory(root)
    older, newer = _presets("a", "2019-01-02T08:30:00"), _presets("b", "2019-01-03T08:30:00")
    assert history.save(newer) is True and history.save(newer) is False
    assert history.save(older) is True  # finished last, but older: latest stays the newer one
    assert history.latest()["presets_id"] == "b"
    assert [d["presets_id"] for d in history.history()] == ["b", "a"]
    # A save killed between its two writes: the document is stored, latest.json still the old one.
    newest = _presets("c", "2019-01-04T08:30:00")
    assert root.create("history", "c.json", data=json.dumps(newest).encode())
    assert history.latest()["presets_id"] == "b"
    assert history.save(newest) is False  # already stored ...
    assert history.latest()["presets_id"] == "c"  # ... and the re-run brought latest forward


def test_delta_history_on_s3_is_idempotent_and_conflicts_are_quarantined(aws, tmp_path, history_template):
    log = tmp_path / "scans.jsonl"
    ScanHistoryStore(history_template).export_jsonl(log)
    store = DeltaHistoryStore(f"s3://{BUCKET}/delta-{tmp_path.name}", quarantine_dir=tmp_path / "q")
    first = store.import_jsonl(log)
    again = store.import_jsonl(log)
    assert (first.added, again.added, again.duplicates) == (1200, 0, 1200)
    summary = assert_a_changed_record_is_quarantined(store, log, tmp_path)
    # The rejected line is also kept in the bucket, under the importing machine's name.
    quarantine = ObjectRoot(f"s3://{BUCKET}/history-quarantine/{socket.gethostname()}")
    name = Path(summary.quarantine_file).name
    assert quarantine.read(name) == Path(summary.quarantine_file).read_bytes()
    assert [r.scan_id for r in store.recent(5)] == [
        r.scan_id for r in ScanHistoryStore(history_template).recent(5)
    ]
    # Every commit is a version: 0 created the table, 1 is the first import, read back as they were.
    for version, expected in ((0, 0), (1, 1200)):
        pinned = DeltaHistoryStore(store.url, quarantine_dir=tmp_path / "q", version=version)
        assert pinned.count() == expected


@pytest.mark.slow
def test_two_workers_and_an_api_share_one_bucket(aws, tmp_path, history_template, prefect_harness_url):
    shared = f"s3://{BUCKET}/deploy-{tmp_path.name}"
    log = tmp_path / "scans.jsonl"
    ScanHistoryStore(history_template).export_jsonl(log)
    base = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TECHNIC_")},
        **aws,
        "TECHNIC_DATA_ROOT": shared,
        "PREFECT_API_URL": prefect_harness_url,
        "PYTHONPATH": str(REPO),
    }
    # A scanner uploaded its log to the shared inbox; worker-b's own scanner also dropped the same
    # log in its local inbox: the history must hold each scan once all the same.
    inbox = ObjectRoot(f"{shared}/inbox")
    inbox.write("scans.jsonl", data=log.read_bytes())
    workers = []
    for name in ("worker-a", "worker-b"):
        local = tmp_path / name
        (local / "inbox").mkdir(parents=True)
        if name == "worker-b":
            (local / "inbox" / "scans.jsonl").write_bytes(log.read_bytes())
        env = {**base, "TECHNIC_LOCAL_ROOT": str(local)}
        workers.append(
            subprocess.Popen(
                [sys.executable, str(REPO / "tests" / "support" / "shared_worker.py")],
                env=env,
                cwd=local,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    results = []
    for proc in workers:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-4000:]
        results.append(json.loads(out.strip().splitlines()[-1]))

    # Exactly one collector took the shared log; it is kept in the bucket under that machine's name.
    assert inbox.names() == []
    fetched = ObjectRoot(f"{shared}/inbox-fetched")
    assert sum(len(fetched.names(host)) for host in fetched.names()) == 1
    assert sorted(r["collected"]["shared_logs_fetched"] for r in results) == [0, 1]
    added = sorted(r["collected"]["added"] for r in results)
    assert sum(added) == 1200, added
    history = DeltaHistoryStore(f"{shared}/history", quarantine_dir=tmp_path / "q")
    frame = history.frame()
    assert len(frame) == 1200 and frame["scan_id"].is_unique

    models = ObjectRoot(f"{shared}/models")
    registry = ModelRegistry(models.path, filesystem=models.fs)
    for model in ("result-count", "duration"):
        promotions = [e for e in registry.alias_history(model) if e["action"] == "promote"]
        assert len(promotions) == 1, promotions
        assert registry.aliases(model)["champion"] == promotions[0]["version"]
    versions = {r["trained"]["count"]["version"] for r in results}
    assert versions == {registry.aliases("result-count")["champion"]}

    latest = SharedPresetsHistory(ObjectRoot(f"{shared}/presets")).latest()
    assert latest is not None
    assert latest["presets_id"] in {r["presets"]["presets_id"] for r in results}

    port = _free_port()
    api_env = {**base, "TECHNIC_LOCAL_ROOT": str(tmp_path / "api-host")}
    technic_ml = Path(sys.executable).with_name("technic-ml")
    api = subprocess.Popen(
        [str(technic_ml), "api", "--host", "127.0.0.1", "--port", str(port)],
        env=api_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                reply = httpx.get(f"http://127.0.0.1:{port}/scan/suggest", timeout=5)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or api.poll() is not None:
                    api.kill()
                    raise AssertionError(f"API did not start: {api.communicate()[1][-3000:]}") from None
                time.sleep(0.5)
        assert reply.status_code == 200, reply.text
        assert reply.json()["presets_id"] == latest["presets_id"]
        models_reply = httpx.get(f"http://127.0.0.1:{port}/models", timeout=5).json()
        assert registry.aliases("result-count")["champion"] in json.dumps(models_reply)
    finally:
        api.terminate()
        api.wait(timeout=30)


@pytest.mark.slow
def test_a_process_work_pool_with_two_workers_runs_the_deployments_on_one_bucket(
    aws, tmp_path, history_template, prefect_harness_url
):
    """The README's "Running on several machines" commands: a process work pool, the deployments
    of prefect.yaml (`prefect deploy --all`) and two `prefect worker` processes, each with its own
    local root, sharing one bucket; runs triggered ad hoc as a user would."""
    from prefect.deployments import run_deployment

    shared = f"s3://{BUCKET}/pool-{tmp_path.name}"
    log = tmp_path / "scans.jsonl"
    ScanHistoryStore(history_template).export_jsonl(log)
    ObjectRoot(f"{shared}/inbox").write("scans.jsonl", data=log.read_bytes())
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TECHNIC_")},
        **aws,
        "TECHNIC_DATA_ROOT": shared,
        "TECHNIC_ML_HOME": str(REPO),
        "PREFECT_API_URL": prefect_harness_url,
        "PREFECT_WORKER_QUERY_SECONDS": "1",
    }
    prefect = str(Path(sys.executable).with_name("prefect"))

    def run(*args: str) -> None:
        done = subprocess.run(
            [prefect, *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]

    run("work-pool", "create", "technic-ml", "--type", "process", "--overwrite")
    run("--no-prompt", "deploy", "--all")
    workers = []
    for name in ("worker-a", "worker-b"):
        local = tmp_path / name
        (local / "inbox").mkdir(parents=True)
        workers.append(
            subprocess.Popen(
                [prefect, "worker", "start", "--pool", "technic-ml", "--name", name, "--limit", "1"],
                env={**env, "TECHNIC_LOCAL_ROOT": str(local)},
                cwd=local,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    lenient = {"duration_r2_min": -1e9, "duration_mae_max": 1e9, "coverage_tolerance": 0.5}
    train = {"candidates": ["hgb/enriched"], "n_folds": 2, "collect": False, "gates": lenient}
    runs = [
        ("collect-history/collect-history", {}),
        ("train-predictors/train-predictors", {"params": train}),
        ("train-predictors/train-predictors", {"params": train}),
        ("daily-presets/daily-presets", {"params": {"skip_non_trading_days": False}}),
    ]
    try:
        for name, parameters in runs:
            flow_run = run_deployment(name, parameters=parameters, timeout=600)
            assert flow_run.state.is_completed(), (name, flow_run.state)
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=60)

    assert ObjectRoot(f"{shared}/inbox").names() == []
    frame = DeltaHistoryStore(f"{shared}/history", quarantine_dir=tmp_path / "q").frame()
    assert len(frame) == 1200 and frame["scan_id"].is_unique
    models = ObjectRoot(f"{shared}/models")
    registry = ModelRegistry(models.path, filesystem=models.fs)
    for model in ("result-count", "duration"):
        assert len([e for e in registry.alias_history(model) if e["action"] == "promote"]) == 1
    assert SharedPresetsHistory(ObjectRoot(f"{shared}/presets")).latest() is not None
