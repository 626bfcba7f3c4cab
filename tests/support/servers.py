"""``technic-ml api`` in a subprocess on a free loopback port, for tests that need a real server."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_api(
    root: Path, *options: str, log: Path, wait: float = 120
) -> Iterator[tuple[str, subprocess.Popen]]:
    """(url, process) of ``technic-ml api`` on ``root`` once ``/health`` answers 200; stopped after."""
    port = free_port()
    env = {**os.environ, "TECHNIC_DATA_ROOT": str(root), "NO_PROXY": "127.0.0.1,localhost"}
    with log.open("w") as out:
        server = subprocess.Popen(
            [str(BIN / "technic-ml"), "api", "--port", str(port), *options],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            alive = server.poll() is None and time.monotonic() < deadline
            assert alive, log.read_text()
            time.sleep(0.3)
        yield url, server
    finally:
        server.terminate()
        server.wait(timeout=60)
