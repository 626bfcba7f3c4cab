"""Shared fixtures. Tests never touch the network; the real data in ../shared/data is optional."""

from __future__ import annotations

import datetime as dt
import os
import socket
import tempfile
from pathlib import Path

import pytest

# The Prefect test environment (DEVELOPERS.md), also when pytest runs outside .ci/run.
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="technic-prefect-"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "60")
os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("TECHNIC_SHARED_DATA", REPO.parent / "shared" / "data"))
SHARED_MARKET = SHARED_DATA / "market"
SHARED_SCAN_LOG = SHARED_DATA / "technic_v4" / "scan_history.jsonl"


@pytest.fixture(scope="session")
def shared_market_dir() -> Path:
    if not (SHARED_MARKET / "prices.parquet").exists():
        pytest.skip(f"real market data not found at {SHARED_MARKET} (set TECHNIC_SHARED_DATA)")
    return SHARED_MARKET


@pytest.fixture(scope="session")
def shared_scan_log() -> Path:
    if not SHARED_SCAN_LOG.exists():
        pytest.skip(f"original scan log not found at {SHARED_SCAN_LOG} (set TECHNIC_SHARED_DATA)")
    return SHARED_SCAN_LOG


@pytest.fixture(autouse=True)
def _isolated_settings(tmp_path, monkeypatch):
    """Every test writes under its own data root and never reads the developer's TECHNIC_* env."""
    for key in list(os.environ):
        if key.startswith("TECHNIC_") and key != "TECHNIC_SHARED_DATA":
            monkeypatch.delenv(key)
    monkeypatch.setenv("TECHNIC_DATA_ROOT", str(tmp_path / "data-root"))


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Refuse any connection that is not to loopback, so a test cannot reach the internet by accident."""
    real_connect = socket.socket.connect

    def guarded(sock, address):
        host = address[0] if isinstance(address, tuple) else address
        if (
            isinstance(host, str)
            and host not in ("127.0.0.1", "localhost", "::1")
            and not host.startswith("/")
        ):
            raise OSError(f"network access blocked in tests: {address!r}")
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)


@pytest.fixture(scope="session")
def history_template(tmp_path_factory):
    """1,200 backfilled sample scans 2014-2018, built once (a few seconds); copy it, never write it."""
    from technic_ml.backfill import plan_backfill, run_plan
    from technic_ml.history import ScanHistoryStore
    from technic_ml.market_data import open_market_data
    from technic_ml.settings import TechnicSettings

    root = tmp_path_factory.mktemp("flow-history")
    market = open_market_data(TechnicSettings(data_root=root))
    store = ScanHistoryStore(root / "history")
    run_plan(
        plan_backfill(dt.date(2014, 1, 1), dt.date(2018, 12, 31), 1200, 5, market.universe()), market, store
    )
    return root / "history"


@pytest.fixture(scope="session")
def champions_root(tmp_path_factory, history_template):
    """A data root with both champions published from the sample history (copy it, never write it)."""
    from tests.support.champions import publish_sample_champions

    root = tmp_path_factory.mktemp("api-champions")
    publish_sample_champions(root, history_template)
    return root


@pytest.fixture(scope="session")
def prefect_harness():
    """One Prefect test server for the session (flow tests, and workers started by tests)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield


@pytest.fixture
def prefect_harness_url(prefect_harness) -> str:
    """The harness server's API URL, for processes a test starts (they talk to the same server)."""
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value()
