"""model-monitor: ledger outcomes + scan history -> judge every model -> promote -> events.

Runs during the trading day and after the close (``deployments/serve.py``). For each champion (and
shadowed challenger) it reports realized coverage, MAE, q-error and abstention over its recent
outcomes, and input drift of the scans collected since its training window (``technic_ml.monitor``),
as an artifact with plots. A challenger the promotion rule favours becomes champion, with the
reason in the alias history. Every model with a champion gets an event: ``technic-ml.model.healthy``
or ``technic-ml.model.degraded``; a degraded one asks the retrain automation
(``deployments/automations.py``) to run ``train-predictors`` on its target unless it already did
within the cooldown. A degraded model is an outcome, not an error: the run ends Completed, with WARNINGs.
"""

from __future__ import annotations

from typing import Annotated

from prefect import flow, get_run_logger
from pydantic import BaseModel, ConfigDict, Field

from flows import scheduled_day_check
from tasks import artifacts, monitor
from technic_ml import stores
from technic_ml.monitor.live import Thresholds
from technic_ml.settings import TechnicSettings


class MonitorParams(BaseModel):
    """Overrides of the settings' thresholds (``TECHNIC_MONITOR_*``) for one run."""

    model_config = ConfigDict(extra="forbid")  # a misspelt --param fails instead of being ignored

    window: Annotated[int, Field(ge=1)] | None = None
    min_outcomes: Annotated[int, Field(ge=1)] | None = None
    promote: bool = True  # promote a challenger the rule favours
    skip_non_trading_days: bool = True  # scheduled runs only; ad-hoc runs always run


@flow(name="model-monitor")
def model_monitor(params: MonitorParams | None = None) -> dict | None:
    logger = get_run_logger()
    params = params or MonitorParams()
    if params.skip_non_trading_days and (reason := scheduled_day_check()):
        logger.info("%s: no monitoring today", reason)
        return None
    settings = TechnicSettings()
    registry = stores.model_registry(settings)
    overrides = {k: v for k, v in (("window", params.window), ("min_outcomes", params.min_outcomes)) if v}
    thresholds = Thresholds(**{**vars(Thresholds.from_settings(settings)), **overrides})

    outcomes = monitor.ledger_outcomes(settings)
    history = monitor.scan_history(settings)
    report = monitor.monitor_models(outcomes, registry, history, thresholds)
    artifacts.monitor_artifacts(report, outcomes)
    promoted = monitor.promote_challengers(registry, report) if params.promote else []
    retrained = monitor.recent_retrains(settings.retrain_cooldown_minutes) if report.degraded else {}
    monitor.emit_events(report.events(suppressed=retrained) + promoted)

    for m in report.degraded:
        logger.warning("%s degraded: %s", m.model, "; ".join(m.findings))
        if runs := retrained.get(m.target):
            logger.warning(
                "%s: retrain not requested: the automation ran train-predictors for it within %d"
                " minutes (%s)",
                m.model,
                settings.retrain_cooldown_minutes,
                ", ".join(runs),
            )
    for e in promoted:
        logger.info("%s: promoted %s (%s)", e["resource"]["prefect.resource.name"],
                    e["resource"]["technic-ml.version"], e["payload"]["reason"])  # fmt: skip
    return report.to_dict()
