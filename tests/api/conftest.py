"""A fresh service (and client) per test, on a copy of the session's champions root (tests/conftest.py)."""

from __future__ import annotations

import shutil

import pytest
from fastapi.testclient import TestClient

from technic_ml.api.app import create_app
from technic_ml.api.service import PredictionService
from technic_ml.settings import TechnicSettings


@pytest.fixture
def settings(tmp_path, champions_root) -> TechnicSettings:
    root = tmp_path / "root"
    shutil.copytree(champions_root, root)
    return TechnicSettings(data_root=root)


@pytest.fixture
def service(settings):
    s = PredictionService(settings, reload_seconds=0.2)
    yield s
    s.stop()


@pytest.fixture
def client(service):
    with TestClient(create_app(service, reload=False)) as c:
        yield c
