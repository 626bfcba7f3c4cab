"""main-job: the whole chain on a fresh machine (README command 1, ``technic-ml run``).

Snapshot the market -> backfill a training history -> train-predictors (collect, validate, train,
publish) -> daily-presets (suggest each goal from the champions) -> write the run summary. Offline
on the embedded sample by default; in Prefect's ephemeral mode unless ``PREFECT_API_URL`` points
at a server. A predictor that fails its gates makes the ``train-predictors`` subflow Failed
(visible in the UI, its reason in the summary), while the main job itself completes: the job's
product is the state of the pipeline, reported honestly.
"""

from __future__ import annotations

from typing import Annotated

from prefect import flow, get_run_logger
from pydantic import Field

from flows.backfill_history import BackfillParams, backfill_history
from flows.daily_presets import PresetsParams, daily_presets
from flows.train_predictors import TrainParams, train_predictors
from tasks import artifacts, market
from technic_ml import stores
from technic_ml.backfill import BACKFILL_SCANS, main_backfill_window
from technic_ml.jobs.reports import write_reports
from technic_ml.predictors.registry import registry_summary
from technic_ml.settings import TechnicSettings


@flow(name="main-job")
def main_job(
    n_scans: Annotated[int, Field(ge=0, le=2_000_000)] = BACKFILL_SCANS,
    as_of: str | None = None,
    train: bool = True,
) -> dict:
    logger = get_run_logger()
    settings = TechnicSettings()
    snapshot = market.take_snapshot(settings, as_of)
    artifacts.snapshot_artifact(snapshot)

    backfill = None
    window = main_backfill_window(settings, snapshot.last_bar)
    if n_scans and window:
        backfill = backfill_history(BackfillParams(start=window[0], end=window[1], n_scans=n_scans))
    elif n_scans:
        logger.info("live source: no backfill (it would download years of bars for the universe)")

    training = {"state": "skipped", "message": "train=False"}
    if train:
        state = train_predictors(TrainParams(as_of=as_of), return_state=True)
        training = {"state": state.name, "message": state.message or ""}
        if not state.is_completed():
            logger.warning("train-predictors ended %s: %s", state.name, state.message)

    presets = daily_presets(PresetsParams(as_of=as_of, skip_non_trading_days=False))

    registry = stores.model_registry(settings)
    where = stores.describe(settings)
    summary = {
        **snapshot.to_dict(),
        "backfill": backfill,
        "train_predictors": training,
        "predictors": registry_summary(registry),
        "presets": presets,
        "outputs": {
            "snapshot": snapshot.path,
            "history": where["history"],
            "models": where["models"],
            "presets": f"{where['presets']}/latest.json",
        },
    }
    return write_reports(settings, summary)
