"""The API contract as a client generated from /openapi.json sees it: schemathesis' own command with
its default checks (server errors, status codes and response bodies as documented, schema-valid
requests accepted, schema-violating ones rejected, content types, the Allow header) and every
phase (coverage, fuzzing, and a stateful run that reports an outcome by the prediction_id a
prediction returned) against a running ``technic-ml api``. Zero failures is the bar (issue 19)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def api_url(champions_root, tmp_path_factory):
    root = tmp_path_factory.mktemp("schema") / "root"
    shutil.copytree(champions_root, root)
    port = _free_port()
    env = {**os.environ, "TECHNIC_DATA_ROOT": str(root), "NO_PROXY": "127.0.0.1,localhost"}
    log = (root.parent / "api.log").open("w")
    server = subprocess.Popen(
        [str(BIN / "technic-ml"), "api", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, (
                root.parent / "api.log"
            ).read_text()
            time.sleep(0.3)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


@pytest.mark.slow
def test_schemathesis_default_checks_find_nothing(api_url, tmp_path):
    run = subprocess.run(
        [
            str(BIN / "schemathesis"), "run", f"{api_url}/openapi.json",
            "--max-examples", "30",
            "--seed", "1",  # CI reproducible; run it with other seeds (or none) to hunt
            "--generation-database", "none",
            "--report", "junit", "--report-dir", str(tmp_path),
        ],
        capture_output=True, text=True, timeout=600, env={**os.environ, "NO_PROXY": "127.0.0.1,localhost"},
    )  # fmt: skip
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-6000:]
    assert "Selected: 10/10" in out and "API Links:    1 covered" in out, out[-3000:]
    for phase in ("Coverage", "Fuzzing", "Stateful"):
        assert f"✅ {phase}" in out, out[-3000:]
