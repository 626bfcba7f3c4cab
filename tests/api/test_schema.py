"""The API contract as a client generated from /openapi.json sees it: schemathesis' own command with
its default checks (server errors, status codes and response bodies as documented, schema-valid
requests accepted, schema-violating ones rejected, content types, the Allow header) and every
phase (coverage, fuzzing, and a stateful run that reports an outcome by the prediction_id a
prediction returned) against a running ``technic-ml api``. Zero failures is the bar (issue 19)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.support.servers import BIN, running_api


@pytest.fixture(scope="module")
def api_url(champions_root, tmp_path_factory):
    root = tmp_path_factory.mktemp("schema") / "root"
    shutil.copytree(champions_root, root)
    with running_api(root, log=root.parent / "api.log", wait=60) as (url, _):
        yield url


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
