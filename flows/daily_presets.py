"""daily-presets: snapshot -> champions -> suggest each goal -> hot sectors -> save -> show.

Runs on weekdays before the open (``deployments/serve.py``). The presets carry their provenance
(snapshot id, model versions and verified coverage, generation time) and are appended to the
presets history, which the prediction API serves. With no count champion the seed's static
presets are saved instead, flagged in the document, the artifact and a WARNING; a degraded
snapshot is flagged the same way. Re-running with the same inputs saves nothing new.
"""

from __future__ import annotations

from typing import Annotated

from prefect import flow, get_run_logger
from pydantic import BaseModel, ConfigDict, Field

from flows import scheduled_day_check
from tasks import artifacts, market, presets
from technic_ml.settings import TechnicSettings


class PresetsParams(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt --param fails instead of being ignored

    as_of: str | None = None  # the snapshot's moment (default: now live, the data's last close offline)
    hot_sector_window_days: Annotated[int, Field(ge=1, le=365)] = 30
    skip_non_trading_days: bool = True  # scheduled runs only; ad-hoc runs always run


@flow(name="daily-presets")
def daily_presets(params: PresetsParams | None = None) -> dict | None:
    logger = get_run_logger()
    params = params or PresetsParams()
    if params.skip_non_trading_days and (reason := scheduled_day_check()):
        logger.info("%s: no presets today", reason)
        return None
    settings = TechnicSettings()

    snapshot = market.take_snapshot(settings, params.as_of)
    artifacts.snapshot_artifact(snapshot)
    predictors = presets.load_predictors(settings, snapshot.as_of)
    suggestions, searched, elapsed = presets.suggest_presets(predictors, snapshot.conditions)
    hot = presets.rank_hot_sectors(settings, snapshot.as_of, params.hot_sector_window_days)
    models = {"count": predictors.count, "duration": predictors.duration}
    document = presets.daily_presets(
        suggestions, hot, snapshot.conditions, snapshot.path.stem, models, searched, elapsed
    )
    saved = presets.save_presets(settings, document)
    artifacts.presets_artifacts(document, saved)

    for flag in document["flags"]:
        logger.warning("presets flagged: %s", flag)
    logger.info(
        "presets %s for %s (%s): %s",
        document["presets_id"],
        document["for_session"],
        document["source"],
        "saved" if saved else "already saved with the same inputs",
    )
    return {
        "presets_id": document["presets_id"],
        "for_session": document["for_session"],
        "source": document["source"],
        "saved": saved,
        "flags": document["flags"],
        "presets": {goal: s["config"] for goal, s in document["presets"].items()},
    }
