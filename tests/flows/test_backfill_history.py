"""backfill-history: chunks mapped on threads (and on Dask), cached on re-run, progress artifact."""

from __future__ import annotations

import datetime as dt

import pytest

from flows.backfill_history import BackfillParams, backfill_history, configured_task_runner, task_runner
from technic_ml.history import ScanHistoryStore
from tests.flows.conftest import artifacts_of, run_id

pytestmark = pytest.mark.usefixtures("prefect_harness")

PARAMS = BackfillParams(start=dt.date(2018, 6, 1), end=dt.date(2018, 12, 31), n_scans=60, chunks=3)


def test_chunks_run_in_parallel_and_a_rerun_is_cached(settings):
    state = backfill_history(PARAMS, return_state=True)
    assert state.is_completed(), state.message
    first = state.result()
    assert first["planned"] == first["added"] == 60 and first["chunks"] == 3
    assert ScanHistoryStore(settings.history_path).count() == 60
    found = artifacts_of(run_id(state))
    assert {"backfill-progress", "backfill-history"} <= set(found)
    assert found["backfill-progress"].data == 100.0

    again = backfill_history(PARAMS, return_state=True).result()
    assert again["added"] == 0 and again["already_stored"] == 60 and again["ran"] == 0
    assert ScanHistoryStore(settings.history_path).count() == 60


def test_a_wiped_history_is_backfilled_again_not_trusted_to_the_cache(settings):
    import shutil

    backfill_history(PARAMS)
    shutil.rmtree(settings.history_path)
    again = backfill_history(PARAMS)
    assert again["added"] == 60
    assert ScanHistoryStore(settings.history_path).count() == 60


def test_parameters_are_validated():
    with pytest.raises(ValueError, match="start/end"):
        BackfillParams(start=dt.date(2019, 1, 2), end=dt.date(2018, 1, 2))
    with pytest.raises(ValueError, match="task runner"):
        task_runner("celery")


@pytest.mark.slow
def test_the_dask_task_runner_runs_the_same_backfill_on_a_local_cluster(settings):
    pytest.importorskip("prefect_dask")
    flow = backfill_history.with_options(task_runner=task_runner("dask", workers=2))
    state = flow(BackfillParams(start=dt.date(2018, 9, 1), end=dt.date(2018, 12, 31), n_scans=20, chunks=2),
                 return_state=True)  # fmt: skip
    assert state.is_completed(), state.message
    assert state.result()["added"] == 20
    assert ScanHistoryStore(settings.history_path).count() == 20


@pytest.mark.slow
def test_chunks_go_to_a_dask_scheduler_at_its_address(settings):
    """A real scheduler and two worker processes (started here, as a user starts ``dask scheduler``
    and ``dask worker``): the flow sends its chunks there and the workers write the shared store."""
    pytest.importorskip("prefect_dask")
    from distributed import Client, LocalCluster, get_task_stream

    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        Client(cluster.scheduler_address) as client,
    ):
        runner = configured_task_runner(
            settings.model_copy(update={"dask_address": cluster.scheduler_address})
        )
        assert runner.address == cluster.scheduler_address
        params = BackfillParams(start=dt.date(2018, 9, 1), end=dt.date(2018, 12, 31), n_scans=24, chunks=4)
        with get_task_stream(client) as stream:
            state = backfill_history.with_options(task_runner=runner)(params, return_state=True)
        assert state.is_completed(), state.message
        assert state.result()["added"] == 24
        # The scheduler saw the four chunks run on its workers, not in the flow's process.
        chunks = [t for t in stream.data if "backfill_chunk" in t["key"] or "backfill-chunk" in t["key"]]
        assert len(chunks) == 4, [t["key"] for t in stream.data]
        assert {t["worker"] for t in chunks} <= set(cluster.scheduler_info["workers"])
    assert ScanHistoryStore(settings.history_path).count() == 24


def test_the_settings_choose_the_runner(settings):
    from prefect.task_runners import ThreadPoolTaskRunner

    assert isinstance(configured_task_runner(settings), ThreadPoolTaskRunner)
    pytest.importorskip("prefect_dask")
    assert configured_task_runner(
        settings.model_copy(update={"dask_address": "tcp://10.0.0.7:8786"})
    ).address == ("tcp://10.0.0.7:8786")
    local = configured_task_runner(settings.model_copy(update={"backfill_task_runner": "dask"}))
    assert local.address is None and local.cluster_kwargs["n_workers"] == 2
