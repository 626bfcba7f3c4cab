"""backfill-history: chunks mapped on threads (and on Dask), cached on re-run, progress artifact."""

from __future__ import annotations

import datetime as dt

import pytest

from flows.backfill_history import BackfillParams, backfill_history, task_runner
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
