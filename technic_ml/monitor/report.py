"""One look at every published model: live performance, input drift, the challenger's case.

:func:`monitor_models` is what the ``model-monitor`` flow runs. For each target's champion (and
challenger, if the registry names one) it computes :mod:`.live` figures from the ledger's
outcomes, input drift (:mod:`.drift`) of the scans collected since the champion's training window
against that window, and the promotion rule (:mod:`.promotion`). The result, :class:`MonitorReport`,
is plain data: :meth:`MonitorReport.events` lists the Prefect events the flow emits
(``technic-ml.model.degraded`` with the model as resource and the figures as payload; the
automation in ``deployments/automations.py`` retrains on it), and :mod:`.figures` draws it.

Drift is judged on the PSI *in excess of sampling noise*: two samples of one distribution in k
bins give a PSI of about (k - 1)(1/n_ref + 1/n_cur) by chance alone (0.09 for 10 bins and 200
rows against thousands), so a fixed 0.25 would flag small windows that did not move.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from technic_ml.errors import RegistryError
from technic_ml.monitor.drift import DEFAULT_INPUTS, MARKET_INPUTS, DriftResult, input_drift, outside_support
from technic_ml.monitor.live import LivePerformance, Thresholds, live_performance
from technic_ml.monitor.promotion import Comparison, compare
from technic_ml.predictors.features import TARGETS
from technic_ml.predictors.registry import MODEL_NAMES, ModelRegistry

DEGRADED_EVENT = "technic-ml.model.degraded"
HEALTHY_EVENT = "technic-ml.model.healthy"
PROMOTED_EVENT = "technic-ml.model.promoted"
GATE_FAILED_EVENT = "technic-ml.model.gate-failed"
#: Resource label on a degraded event: "requested" asks the retrain automation to run
#: train-predictors, "suppressed" says one already ran within the cooldown (deployments/automations.py).
RETRAIN_LABEL = "technic-ml.retrain"
BINS = 10


def resource(model: str, version: str | None) -> dict[str, str]:
    """The Prefect event resource naming one published model (the same for every event about it)."""
    return {
        "prefect.resource.id": f"technic-ml.model.{model}",
        "prefect.resource.name": model,
        "technic-ml.version": version or "none",
    }


def retrained_targets(parameters: Mapping[str, Any]) -> tuple[str, ...]:
    """The targets a train-predictors run retrains, from its run parameters (``{"params":
    {"targets": [...]}}``; a run without them trains every target, the flow's default)."""
    targets = (parameters.get("params") or {}).get("targets") or TARGETS
    return tuple(t for t in TARGETS if t in targets)


def gate_failed_event(model: str, version: str | None, target: str, reason: str) -> dict[str, Any]:
    """The event train-predictors emits when a target is not published (failed gates, too few
    records): the UI's event feed shows it next to the monitor's verdicts."""
    return {
        "event": GATE_FAILED_EVENT,
        "resource": resource(model, version),
        "payload": {"target": target, "reason": reason, "champion_untouched": version},
    }


def sampling_psi(n_reference: int, n_current: int, categories: int) -> float:
    """PSI two samples of one distribution show by chance (chi-square approximation)."""
    return (categories - 1) * (1 / n_reference + 1 / n_current)


@dataclass(frozen=True)
class ModelReport:
    target: str
    model: str
    champion: LivePerformance | None
    challenger: LivePerformance | None = None
    comparison: Comparison | None = None
    drift: tuple[DriftResult, ...] = ()
    drift_findings: tuple[str, ...] = ()
    note: str | None = None

    @property
    def findings(self) -> tuple[str, ...]:
        return (*(self.champion.findings if self.champion else ()), *self.drift_findings)

    @property
    def degraded(self) -> bool:
        return bool(self.findings)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "model": self.model,
            "degraded": self.degraded,
            "findings": list(self.findings),
            "champion": self.champion.to_dict() if self.champion else None,
            "challenger": self.challenger.to_dict() if self.challenger else None,
            "comparison": self.comparison.to_dict() if self.comparison else None,
            "drift": [d.to_dict() for d in self.drift],
            "note": self.note,
        }


@dataclass(frozen=True)
class MonitorReport:
    at: dt.datetime
    thresholds: Thresholds
    models: dict[str, ModelReport] = field(default_factory=dict)
    outcomes: int = 0
    predictions: int = 0

    @property
    def degraded(self) -> list[ModelReport]:
        return [m for m in self.models.values() if m.degraded]

    def events(self, suppressed: Collection[str] = ()) -> list[dict[str, Any]]:
        """The events to emit: degraded or healthy per model with a champion (a monitor that only
        speaks when something breaks cannot be told apart from one that stopped running).

        A degraded event is labelled (:data:`RETRAIN_LABEL`) ``requested``, or ``suppressed``
        when its target is in ``suppressed`` (a retrain of it already ran within the cooldown)."""
        out = []
        for m in self.models.values():
            if m.champion is None:
                continue
            c = m.champion
            payload = {
                "target": m.target,
                "findings": list(m.findings),
                "n_outcomes": c.n_outcomes,
                "coverage": c.coverage,
                "coverage_floor": c.coverage_floor,
                "stated_coverage": c.stated_coverage,
                "mae": c.mae,
                "validated_mae": c.validated_mae,
                "q_error": c.q_error,
                "abstain_share": c.abstain_share,
                "drifted": [d.column for d in m.drift if d.drifted],
            }
            retrain = "suppressed" if m.target in suppressed else "requested"
            labels = {RETRAIN_LABEL: retrain} if m.degraded else {}
            out.append(
                {
                    "event": DEGRADED_EVENT if m.degraded else HEALTHY_EVENT,
                    "resource": {**resource(m.model, c.version), **labels},
                    "payload": payload,
                }
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "outcomes": self.outcomes,
            "predictions": self.predictions,
            "degraded": [m.model for m in self.degraded],
            "models": {t: m.to_dict() for t, m in self.models.items()},
        }


def _drift(history: pd.DataFrame | None, manifest: dict[str, Any], thresholds: Thresholds):
    """Drift of the scans collected after the champion's training window against that window."""
    window = manifest.get("training_window") or {}
    if history is None or history.empty:
        return (), (), "no scan history to judge input drift on"
    if not window.get("last"):
        return (), (), "the manifest records no training window: input drift not judged"
    stamps = pd.to_datetime(history["timestamp"], utc=True)
    first = pd.Timestamp(window["first"]).tz_convert("UTC")
    last = pd.Timestamp(window["last"]).tz_convert("UTC")
    reference = history[(stamps >= first) & (stamps <= last)]
    current = history[stamps > last].tail(max(thresholds.window, thresholds.drift_min_rows))
    columns = {c: k for c, k in DEFAULT_INPUTS.items() if c in history.columns}
    results = input_drift(
        reference,
        current,
        columns,
        min_rows=thresholds.drift_min_rows,
        bins=BINS,
        threshold=thresholds.psi_max,
    )
    findings = []
    for r in results:
        if r.psi is None:
            continue
        if r.column in MARKET_INPUTS:
            share, support = outside_support(reference[r.column], current[r.column], r.kind)
            if share > thresholds.support_max:
                findings.append(
                    f"input {r.column} outside its training support: {share:.0%} of {r.n_current} recent"
                    f" scans beyond the training window's {support} (limit {thresholds.support_max:.0%})"
                )
            continue
        k = BINS if r.kind == "numeric" else max(2, reference[r.column].nunique() + 1)
        excess = r.psi - sampling_psi(r.n_reference, r.n_current, k)
        if excess >= thresholds.psi_max:
            findings.append(
                f"input {r.column} drifted: PSI {r.psi:.2f} over {r.n_current} recent scans against"
                f" {r.n_reference} in training ({excess:.2f} beyond sampling noise;"
                f" limit {thresholds.psi_max:g})"
            )
    return tuple(results), tuple(findings), None


def monitor_models(
    outcomes: pd.DataFrame,
    registry: ModelRegistry,
    history: pd.DataFrame | None = None,
    *,
    thresholds: Thresholds = Thresholds(),
    at: dt.datetime | None = None,
) -> MonitorReport:
    """Live figures, drift and the challenger's case for every target (module docstring)."""
    models = {}
    for target, model in MODEL_NAMES.items():
        aliases = registry.aliases(model)
        champion, challenger = aliases.get("champion"), aliases.get("challenger")
        if champion is None:
            models[target] = ModelReport(target, model, None, note="no champion")
            continue
        try:
            manifest = registry.manifest(model, champion)
        except RegistryError as exc:
            models[target] = ModelReport(target, model, None, note=f"champion {champion}: {exc}")
            continue
        mine = live_performance(outcomes, target, champion, manifest, thresholds=thresholds)
        drift, drift_findings, note = _drift(history, manifest, thresholds)
        theirs = comparison = None
        if challenger and challenger != champion:
            challenger_manifest = registry.manifest(model, challenger)
            theirs = live_performance(
                outcomes, target, challenger, challenger_manifest, role="challenger", thresholds=thresholds
            )
            comparison = compare(
                outcomes,
                target,
                champion,
                challenger,
                stated_coverage=challenger_manifest.get("coverage", 0.9),
                thresholds=thresholds,
            )
        models[target] = ModelReport(target, model, mine, theirs, comparison, drift, drift_findings, note)
    scored = outcomes[outcomes["role"] == "served"] if len(outcomes) else outcomes
    return MonitorReport(
        at or dt.datetime.now(dt.UTC),
        thresholds,
        models,
        outcomes=int(scored.loc[scored["actual"].notna(), "prediction_id"].nunique()) if len(scored) else 0,
        predictions=int(scored["prediction_id"].nunique()) if len(scored) else 0,
    )


def promote_challengers(registry: ModelRegistry, report: MonitorReport) -> list[dict[str, Any]]:
    """Promote each challenger the rule favours (the reason goes into the alias history); returns
    the promotion events to emit. A champion that changed since the report is left alone: the
    comparison was against the old one."""
    events = []
    for m in report.models.values():
        c = m.comparison
        if c is None or not c.promote:
            continue
        with registry.publishing(m.model):
            if registry.aliases(m.model).get("champion") != c.champion:
                continue
            registry.promote(m.model, c.challenger, c.reason)
        events.append(
            {
                "event": PROMOTED_EVENT,
                "resource": resource(m.model, c.challenger),
                "payload": {**c.to_dict(), "previous": c.champion},
            }
        )
    return events
