"""Train, validate and publish both predictors: the steps the CLI and the Prefect flow call.

1. :func:`load_training_data`: the scan history joined with point-in-time features. Enriched
   features need market data covering the scans; history outside it is dropped with the reason.
2. :func:`plan_training`: which targets to train (a target whose champion was trained on exactly
   this data is kept as is) and which champion each is validated against.
3. :func:`validate_predictor` and :func:`train_predictor` per target: a rolling-origin validation of
   every candidate (:mod:`.validation`), then the chosen candidate refitted on all rows.
4. :func:`publish_predictor` per target: only a model that passed its gates is written to the
   registry; one no worse than the champion on the same folds becomes champion, otherwise
   challenger, and challenger too when the champion changed while it was validated. A target with
   too few records, or whose gates fail, publishes nothing and says why.

This is the one training path: :func:`train_predictors` then :func:`publish_predictors` run these
steps in this process (``technic-ml train``), and the ``train-predictors`` flow runs the same steps
as tasks (flows/train_predictors.py), with the same plan.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from technic_ml.errors import MarketDataError, StoreError
from technic_ml.history import ScanHistoryStore
from technic_ml.market_data.base import MarketData
from technic_ml.panel import Panel
from technic_ml.predictors.features import SOURCE_CODES, TARGETS, Dataset, dataset_from_history, feature_set
from technic_ml.predictors.registry import MODEL_NAMES, ModelRegistry
from technic_ml.predictors.universe import UniverseStats
from technic_ml.predictors.validation import (
    DEFAULT_CANDIDATES,
    Candidate,
    Gates,
    TargetReport,
    rolling_origin_folds,
    validate_target,
)

log = logging.getLogger(__name__)

# Calendar days of bars before the first scan: the longest lookback (500 sessions) plus the averages.
PANEL_LEAD_DAYS = 800
#: Candidate fitted on data too small to validate (the only one that needs no market data).
FALLBACK = Candidate("hgb", "seed")


@dataclass(frozen=True)
class FoldPlan:
    n_folds: int = 3
    test_start: dt.datetime | None = None
    test_end: dt.datetime | None = None
    test_share: float = 0.3


def load_training_data(store: ScanHistoryStore, market: MarketData | None) -> tuple[Dataset, str]:
    """(dataset, note on the market data used for the enriched features)."""
    frame = store.frame()
    if frame.empty:
        raise StoreError(f"scan history at {store.root} is empty; backfill or import scans first")
    universe, note = None, "no market data given: seed features only"
    if market is not None:
        first, last = frame["timestamp"].min(), frame["timestamp"].max()
        start = (first - pd.Timedelta(days=PANEL_LEAD_DAYS)).date()
        try:
            panel = Panel.from_market(market, last, start=start)
            universe = UniverseStats(panel)
            span = f"{panel.dates[0].date()}..{panel.dates[-1].date()}"
            note = f"{market.source}: {panel.n_symbols} symbols, {span}"
        except MarketDataError as exc:
            note = f"{market.source} cannot serve the history's dates ({exc}): seed features only"
            log.warning("enriched features unavailable: %s", note)
    data = dataset_from_history(frame, universe)
    if len(data.no_duration):
        log.warning(
            "%d of %d history records have no duration label and train only the count predictor: %s",
            len(data.no_duration),
            len(frame),
            "; ".join(f"{n} x {r}" for r, n in data.no_duration["reason"].value_counts().items()),
        )
    if len(data.dropped):
        log.warning(
            "%d of %d history records left out of training: %s",
            len(data.dropped),
            len(frame),
            "; ".join(f"{n} x {r}" for r, n in data.dropped["reason"].value_counts().items()),
        )
    return data, note


@dataclass
class TrainedTarget:
    target: str
    report: TargetReport
    predictor: Any | None  # the chosen candidate refitted on all rows (None: too few rows to fit)
    candidate: Candidate | None
    manifest: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainingRun:
    dataset: Dataset
    gates: Gates
    targets: dict[str, TrainedTarget]  # the targets trained (not the unchanged ones)
    data_note: str = ""
    # The champion each target was validated against (None: none; a target missing here was
    # validated without a registry), and the targets kept because their champion was trained on
    # exactly this data (target -> version).
    held: dict[str, str | None] = field(default_factory=dict)
    unchanged: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainingPlan:
    """What a training run does, decided before any fitting (see :func:`plan_training`)."""

    held: dict[str, str | None]  # target -> the champion validation compares against
    unchanged: dict[str, str]  # target -> its champion, trained on exactly this data: kept
    todo: list[str]  # the targets to validate, train and publish


def plan_training(registry: ModelRegistry | None, data: Dataset, targets=TARGETS) -> TrainingPlan:
    """Which of ``targets`` to train and against which champions; without a registry, all of them."""
    if registry is None:
        return TrainingPlan({}, {}, list(targets))
    held = champions(registry)
    current = current_champions(registry, data)
    return TrainingPlan(
        held={t: held[t] for t in targets},
        unchanged={t: v for t, v in current.items() if t in targets},
        todo=[t for t in targets if t not in current],
    )


def champion_candidate(registry: ModelRegistry | None, target: str) -> Candidate | None:
    """The champion's spec (model, feature set, parameters), to refit on the same folds."""
    if registry is None:
        return None
    model = MODEL_NAMES[target]
    champion = registry.aliases(model).get("champion")
    if champion is None:
        return None
    params = dict(registry.manifest(model, champion).get("params", {}))
    base = {k: params.pop(k) for k in ("model", "feature_set") if k in params}
    params.pop("coverage", None)
    params.pop("n_jobs", None)
    return Candidate(base.get("model", "hgb"), base.get("feature_set", "seed"), params)


def fold_list(data: Dataset, folds: FoldPlan | None = None) -> list:
    """The rolling-origin folds of ``data`` under ``folds`` (the default plan when None)."""
    plan = folds or FoldPlan()
    return rolling_origin_folds(
        data.timestamp,
        n_folds=plan.n_folds,
        test_start=plan.test_start,
        test_end=plan.test_end,
        test_share=plan.test_share,
    )


def validate_predictor(
    data: Dataset,
    target: str,
    *,
    candidates=DEFAULT_CANDIDATES,
    gates: Gates | None = None,
    coverage: float = 0.9,
    folds: FoldPlan | None = None,
    registry: ModelRegistry | None = None,
) -> TargetReport:
    """Backtest every candidate (and the champion's spec) on rolling-origin folds; pick the winner."""
    data = data.for_target(target)
    return validate_target(
        data,
        target,
        candidates=candidates,
        folds=fold_list(data, folds),
        coverage=coverage,
        gates=gates or Gates(),
        champion=champion_candidate(registry, target),
    )


def train_predictor(
    data: Dataset,
    report: TargetReport,
    *,
    candidates=DEFAULT_CANDIDATES,
    gates: Gates | None = None,
    data_note: str = "",
) -> TrainedTarget:
    """Refit the candidate validation chose on all rows (the seed-feature fallback when none was)."""
    gates = gates or Gates()
    target = report.target
    data = data.for_target(target)
    # Nothing validated (too few records): the seed-feature fallback, which needs no market data.
    chosen = next((c for c in candidates if c.name == report.chosen), FALLBACK)
    predictor = chosen.build(target, report.coverage)
    try:
        predictor.fit(data.X(predictor.features), data.y(target), timestamps=data.timestamp)
    except ValueError as exc:
        log.warning("%s: could not fit %s on all %d rows: %s", target, chosen.name, len(data), exc)
        predictor = None
    trained = TrainedTarget(target, report, predictor, chosen)
    if predictor is not None:
        trained.manifest = _manifest(data, trained, gates, data_note)
    return trained


def train_predictors(
    data: Dataset,
    *,
    candidates=DEFAULT_CANDIDATES,
    gates: Gates | None = None,
    coverage: float = 0.9,
    folds: FoldPlan | None = None,
    registry: ModelRegistry | None = None,
    data_note: str = "",
    targets: tuple[str, ...] = TARGETS,
) -> TrainingRun:
    """Plan, then validate and train each target to train, in this process (``technic-ml train``;
    the flow runs the same steps as tasks). Publish the result with :func:`publish_predictors`."""
    gates = gates or Gates()
    plan = plan_training(registry, data, targets)
    out: dict[str, TrainedTarget] = {}
    for target in plan.todo:
        report = validate_predictor(
            data,
            target,
            candidates=candidates,
            gates=gates,
            coverage=coverage,
            folds=folds,
            registry=registry,
        )
        out[target] = train_predictor(data, report, candidates=candidates, gates=gates, data_note=data_note)
    return TrainingRun(data, gates, out, data_note, held=plan.held, unchanged=plan.unchanged)


def _manifest(data: Dataset, trained: TrainedTarget, gates: Gates, data_note: str) -> dict[str, Any]:
    predictor, report = trained.predictor, trained.report
    fs = predictor.features
    chosen = report.result(report.chosen) if report.chosen else None
    return {
        "target": trained.target,
        "features": list(fs.columns),
        "feature_set": fs.name,
        "params": predictor.get_params(),
        "coverage": predictor.coverage,
        "training_window": {
            "first": data.timestamp.iloc[0].isoformat(),
            "last": data.timestamp.iloc[-1].isoformat(),
            "records": len(data),
            "train_rows": predictor.n_train_,
            "calibration_rows": predictor.n_calibration_,
        },
        "training_data_sha256": data.fingerprint(fs, trained.target),
        "data_source": data.data_source,
        # Seconds per probe unit of each reference source's labels, and the rated model's own rates
        # by source (technic_ml.timing, predictors.rated).
        "label_rates": data.rates if trained.target == "duration" else {},
        "rates": {
            name: rates[code]
            for name, code in SOURCE_CODES.items()
            if code in (rates := getattr(predictor, "rates", {}))
        }
        if trained.target == "duration"
        else {},
        "data_note": data_note,
        "interval": {"method": "split conformal, log scale", "factor": predictor.conformal_.factor},
        "validation": {
            "folds": [f.label for f in report.folds],
            "chosen": report.chosen,
            "too_few": report.too_few,
            "pooled": None if chosen is None else chosen.pooled,
            "per_fold": None if chosen is None else chosen.per_fold,
            "per_source": None if chosen is None else chosen.per_source,
            "gate_failures": None if chosen is None else chosen.gate_failures,
            "vs_champion": None if chosen is None else chosen.vs_champion,
            "gates": dataclasses.asdict(gates),
        },
    }


def champions(registry: ModelRegistry) -> dict[str, str | None]:
    """target -> the champion version now (None: no champion)."""
    return {target: registry.aliases(model).get("champion") for target, model in MODEL_NAMES.items()}


def current_champions(registry: ModelRegistry, data: Dataset) -> dict[str, str]:
    """Targets whose champion was trained on exactly ``data`` (target -> version): nothing to redo."""
    current = {}
    for target, model in MODEL_NAMES.items():
        version = registry.aliases(model).get("champion")
        if version is None:
            continue
        manifest = registry.manifest(model, version)
        try:
            fs = feature_set(manifest.get("feature_set", ""), target)
            if data.for_target(target).fingerprint(fs, target) == manifest.get("training_data_sha256"):
                current[target] = version
        except ValueError:  # a feature set this data cannot provide
            continue
    return current


@dataclass
class PublishOutcome:
    target: str
    published: bool
    version: str | None
    alias: str | None  # champion | challenger | None
    reason: str

    @property
    def serving(self) -> bool:
        """A validated model of this target is in the registry (new, or the unchanged champion)."""
        return self.alias is not None


def publish_predictor(
    registry: ModelRegistry, trained: TrainedTarget, expected_champion: str | None
) -> PublishOutcome:
    """Publish one target if it passed validation; never touch an alias for one that did not.

    ``expected_champion`` is the champion version validation compared against (``None``: there was
    none). If another run changed the champion meanwhile, this model was never compared with the
    new one, so it is published as challenger, not promoted. Publishers of a model are serialized.
    """
    with registry.publishing(MODEL_NAMES[trained.target]):
        return _publish_locked(registry, trained, expected_champion)


def _publish_locked(
    registry: ModelRegistry, trained: TrainedTarget, expected_champion: str | None
) -> PublishOutcome:
    target, report = trained.target, trained.report
    model = MODEL_NAMES[target]
    if report.too_few:
        return PublishOutcome(target, False, None, None, f"too few records to validate: {report.too_few}")
    result = report.result(report.chosen) if report.chosen else None
    if result is None or not result.passed or trained.predictor is None:
        why = "; ".join(result.gate_failures) if result is not None else "no candidate could be evaluated"
        return PublishOutcome(target, False, None, None, f"{report.chosen}: gates failed: {why}")
    champion = registry.aliases(model).get("champion")
    if champion is not None:
        held = registry.manifest(model, champion)
        same = ("training_data_sha256", "features")
        if all(held.get(k) == trained.manifest.get(k) for k in same) and _same_params(
            trained.predictor, held.get("params") or {}, trained.manifest.get("params") or {}
        ):
            # A re-run on the same history: the champion is this very model; publish nothing new.
            return PublishOutcome(
                target, False, champion, "champion", "unchanged: the champion was trained on the same data"
            )
    version = registry.publish(model, trained.predictor, trained.manifest).version
    if champion != expected_champion:
        why = (
            f"the champion changed from {expected_champion} to {champion} while this run validated;"
            " not compared with it, so challenger (re-run to compare)"
        )
        registry.set_challenger(model, version, why)
        return PublishOutcome(target, True, version, "challenger", why)
    if result.vs_champion:
        registry.set_challenger(model, version, f"passed its gates but {result.vs_champion}")
        return PublishOutcome(target, True, version, "challenger", result.vs_champion)
    registry.promote(model, version, f"{report.chosen} passed validation on {len(report.folds)} folds")
    return PublishOutcome(target, True, version, "champion", "passed its gates")


def unchanged_outcome(target: str, version: str) -> PublishOutcome:
    """The outcome of a target not trained because its champion was trained on this very data."""
    return PublishOutcome(target, False, version, "champion", "unchanged: trained on this history")


def _same_params(predictor, a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Equal estimator parameters, a parameter a manifest does not record counting as its default
    (a champion published before a parameter existed was fitted with that default)."""
    defaults = type(predictor)().get_params()
    return {**defaults, **a} == {**defaults, **b}


def publish_predictors(registry: ModelRegistry, run: TrainingRun) -> dict[str, PublishOutcome]:
    """Publish what passed validation; never touch an alias for what did not.

    Each model is compared with the champion it was validated against (``run.held``; none when the
    run had no registry): if the registry's champion is another one now, the model was never
    compared with it and becomes challenger, not champion.
    """
    outcomes = {
        target: publish_predictor(registry, trained, run.held.get(target))
        for target, trained in run.targets.items()
    }
    return outcomes | {t: unchanged_outcome(t, v) for t, v in run.unchanged.items()}
