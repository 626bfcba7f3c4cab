"""``technic-ml api --workers 2``: two processes, one ledger. 2,000 predictions and their outcomes
from 8 concurrent clients land exactly once each (an outcome may reach the worker that did not
make the prediction before that one wrote it), and both workers pick up a new champion within
the reload interval."""

from __future__ import annotations

import shutil
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from technic_ml.client import TechnicClient
from tests.support.servers import running_api

CLIENTS, PER_CLIENT = 8, 250


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


@pytest.fixture
def two_workers(champions_root, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(champions_root, root)
    options = ("--workers", "2", "--reload-seconds", "1")
    with running_api(root, *options, log=tmp_path / "api.log") as (url, server):
        yield url, root, server


@pytest.mark.slow
def test_two_workers_share_the_ledger_without_loss(two_workers):
    url, root, server = two_workers
    # Wait for both workers to be up (uvicorn starts them one after the other).
    deadline = time.monotonic() + 60
    while len(_children(server.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    workers = _children(server.pid)
    assert len(workers) >= 2, workers

    def client(k: int) -> list[str]:
        ids = []
        with TechnicClient(url, timeout=30) as api:
            for i in range(PER_CLIENT):
                config = {"max_symbols": 20 + (k * PER_CLIENT + i) % 480, "min_tech_rating": 10 * (i % 9),
                          "min_dollar_vol": 1e6, "lookback_days": 20 + i % 200}  # fmt: skip
                p = api.predict(config)
                done = api.report_outcome(prediction_id=p.prediction_id, actual_count=i % 50)
                assert done.matched == [p.prediction_id] and done.stored, done
                ids.append(p.prediction_id)
        return ids

    with ThreadPoolExecutor(CLIENTS) as pool:
        ids = [pid for batch in pool.map(client, range(CLIENTS)) for pid in batch]
    assert len(ids) == len(set(ids)) == CLIENTS * PER_CLIENT
    time.sleep(2.5)  # each worker's buffer flushes every 0.5 s
    with sqlite3.connect(root / "api" / "ledger.sqlite") as db:
        predictions = db.execute("SELECT COUNT(*), COUNT(DISTINCT prediction_id) FROM predictions").fetchone()
        outcomes = db.execute("SELECT COUNT(*) FROM outcomes").fetchone()[0]
    assert predictions == (CLIENTS * PER_CLIENT, CLIENTS * PER_CLIENT)
    assert outcomes == CLIENTS * PER_CLIENT


@pytest.mark.slow
def test_every_worker_serves_a_new_champion_within_the_reload_interval(two_workers):
    from technic_ml.predictors.registry import ModelRegistry

    url, root, _ = two_workers
    registry = ModelRegistry(root / "models")
    old = registry.aliases("result-count")["champion"]
    # Publish again what is there (a new version id), then make it the champion.
    predictor, manifest = registry.load("result-count", old, fitted=True)
    new = registry.publish(
        "result-count", predictor, {**manifest, "note": "re-published by the test"}
    ).version
    assert new != old
    registry.promote("result-count", new, reason="test: every worker picks it up")
    time.sleep(1 + 1.5)  # the reload interval, and a margin for a busy machine
    seen = set()
    with httpx.Client(base_url=url, timeout=10) as http:
        for _ in range(60):  # fresh connections: the kernel spreads them over both workers
            seen.add(http.get("/health", headers={"connection": "close"}).json()["models"]["count"])
    assert seen == {new}
