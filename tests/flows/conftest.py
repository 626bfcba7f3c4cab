"""Flow tests: one Prefect test harness for the session, a shared sample history copied per test."""

from __future__ import annotations

import shutil

import pytest

from technic_ml.settings import TechnicSettings


@pytest.fixture
def settings(tmp_path, monkeypatch) -> TechnicSettings:
    """The settings the flows read from the environment (a fresh data root per test)."""
    root = tmp_path / "flow-root"
    monkeypatch.setenv("TECHNIC_DATA_ROOT", str(root))
    return TechnicSettings()


@pytest.fixture
def with_history(settings, history_template) -> TechnicSettings:
    shutil.copytree(history_template, settings.history_path)
    return settings


def artifacts_of(flow_run_id) -> dict:
    """key -> artifact, for the artifacts a flow run (and its task runs) created."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return {a.key: a for a in found}


def run_id(state):
    return state.state_details.flow_run_id


def logs_of(flow_run_id) -> list:
    """The run's log lines as the UI shows them (after flushing the client's log worker)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()
    with get_client(sync_client=True) as client:
        return client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
