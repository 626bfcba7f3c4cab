"""The automation that closes the live loop: a degraded model triggers ``train-predictors``.

The ``model-monitor`` flow emits ``technic-ml.model.degraded`` (the model as its resource, the
figures and its target as payload) whenever a champion crosses a threshold
(``technic_ml.monitor``); every such event shows in the UI's event feed. It labels the event
``technic-ml.retrain: requested`` unless this automation already started a ``train-predictors``
run for that target within the cooldown (``TECHNIC_RETRAIN_COOLDOWN_MINUTES``), and this
automation runs ``train-predictors`` only on requested ones, for the degraded model's target
alone: retraining a healthy model too would replace it on the noise of one training run.
Prefect's own trigger window (``within`` = the cooldown, one window per model) is a second guard:
its windows are fixed, laid end to end, so alone it could let two runs through seconds apart
across a window boundary; the monitor's check of the actual runs is the exact one.

:func:`ensure_retrain_automation` is idempotent: it compares the automation on the server with the
one defined here and changes it only when they differ (an update gives the trigger a new id,
which resets Prefect's window, so an unchanged automation must be left alone). ``make serve``
(``deployments.serve``) calls it; ``technic-ml automations`` does the same for ``prefect deploy``
users.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal
from uuid import UUID

from prefect import get_client
from prefect.automations import Automation, AutomationCore, EventTrigger, Posture, RunDeployment

from tasks.monitor import TRAIN_DEPLOYMENT
from technic_ml.monitor.report import DEGRADED_EVENT, RETRAIN_LABEL

RETRAIN_AUTOMATION = "technic-ml: retrain a degraded model"
#: The degraded event's target (``technic_ml.monitor.report``), as a Prefect template.
TARGET_TEMPLATE = "{{ event.payload.target }}"


def retrain_automation(deployment_id: UUID, cooldown_minutes: int) -> Automation:
    """The automation as defined here (compared field by field with the server's)."""
    return Automation(
        name=RETRAIN_AUTOMATION,
        description=(
            "Runs train-predictors when the model-monitor flow reports a degraded model"
            f" (at most once per {cooldown_minutes} minutes)."
        ),
        enabled=True,
        tags=["technic-ml"],
        trigger=EventTrigger(
            expect={DEGRADED_EVENT},
            match={"prefect.resource.id": "technic-ml.model.*", RETRAIN_LABEL: "requested"},
            for_each={"prefect.resource.id"},  # one window per model: each degrades on its own
            posture=Posture.Reactive,
            threshold=1,
            within=dt.timedelta(minutes=cooldown_minutes),
        ),
        actions=[
            RunDeployment(
                source="selected",
                deployment_id=deployment_id,
                # Rendered by the server from the triggering event: ["count"] or ["duration"].
                parameters={"params": {"skip_non_trading_days": False, "targets": [TARGET_TEMPLATE]}},
            )
        ],
    )


def _core(automation: Automation) -> dict:
    return AutomationCore(**automation.model_dump(exclude={"id"})).model_dump(mode="json")


def ensure_retrain_automation(
    cooldown_minutes: int, deployment_id: UUID | None = None
) -> tuple[Automation, Literal["created", "unchanged", "updated"]]:
    """Create or update the retrain automation so it matches :func:`retrain_automation`."""
    if deployment_id is None:
        with get_client(sync_client=True) as client:
            deployment_id = client.read_deployment_by_name(TRAIN_DEPLOYMENT).id
    want = retrain_automation(deployment_id, cooldown_minutes)
    try:
        existing = Automation.read(name=RETRAIN_AUTOMATION)
    except ValueError:  # Prefect's "not found"
        return want.create(), "created"
    if _core(existing) == _core(want):
        return existing, "unchanged"
    want.id = existing.id
    want.update()
    return want, "updated"
