"""``technic-ml train``, ``validate``, ``predict`` and ``models``: the predictors and their registry."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from technic_ml.cli.common import (
    MARKET_DIR,
    SOURCE,
    app,
    err,
    fmt,
    handled,
    history_store,
    load_settings,
    model_registry,
    models_app,
    option_group,
    out,
    parse_time,
    predictors_at,
    scan_config_options,
)
from technic_ml.contracts import ScanConfig


@dataclass(frozen=True)
class _Training:
    """What train and validate work on: the data, its note, the fold plan and the stated coverage."""

    data: Any
    note: str
    plan: Any
    coverage: float


def _build_training(coverage, folds, test_start, test_end, source, market_dir) -> _Training:
    data, note, plan = _training_data(source, market_dir, folds, test_start, test_end)
    return _Training(data, note, plan, coverage)


def _training_data(source, market_dir, folds, test_start, test_end):
    """(dataset, note, fold plan) for train and validate, with what was left out printed."""
    from technic_ml.market_data import open_market_data
    from technic_ml.predictors.training import FoldPlan, load_training_data

    test_period = parse_time(test_start, "--test-start"), parse_time(test_end, "--test-end")
    settings = load_settings(market_source=source, market_dir=market_dir)
    store = history_store()
    market = open_market_data(settings)
    data, note = load_training_data(store, market)
    out.print(
        f"training data: {len(data)} records ({note}); {len(data.dropped)} left out",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    for reason, n in data.dropped["reason"].value_counts().items() if len(data.dropped) else []:
        out.print(f"  left out: {n} x {reason}", markup=False, highlight=False, soft_wrap=True)
    for reason, n in data.no_duration["reason"].value_counts().items() if len(data.no_duration) else []:
        out.print(f"  count only, no duration: {n} x {reason}", markup=False, highlight=False, soft_wrap=True)
    return data, note, FoldPlan(n_folds=folds, test_start=test_period[0], test_end=test_period[1])


_COVERAGE = Annotated[float, typer.Option(help="Stated interval coverage (0-1).")]
_FOLDS = Annotated[int, typer.Option(min=1, help="Rolling-origin test folds.")]
_TEST_START = Annotated[
    str | None, typer.Option(help="Start of the test period (default: last 30% of the history).")
]
_TEST_END = Annotated[str | None, typer.Option(help="End of the test period (default: the last scan).")]
_training_options = option_group(
    "training",
    (
        ("coverage", _COVERAGE, 0.9),
        ("folds", _FOLDS, 3),
        ("test_start", _TEST_START, None),
        ("test_end", _TEST_END, None),
        ("source", SOURCE, None),
        ("market_dir", MARKET_DIR, None),
    ),
    _build_training,
)


@app.command()
@handled
@_training_options
def train(training: _Training) -> None:
    """Validate every candidate on the scan history, refit the winner, publish what passed its gates.

    Exit code 0 when both predictors were published, 3 when one or both were not (reasons printed).
    """
    from technic_ml.predictors.training import publish_predictors, train_predictors
    from technic_ml.predictors.validation import markdown

    registry = model_registry()
    # The same plan and steps as the train-predictors flow (technic_ml.predictors.training).
    with err.status("validating candidates on rolling-origin folds..."):
        run = train_predictors(
            training.data,
            coverage=training.coverage,
            folds=training.plan,
            registry=registry,
            data_note=training.note,
        )
    for trained in run.targets.values():
        out.print(markdown(trained.report, run.gates), markup=False, highlight=False, soft_wrap=True)
        out.print()
    outcomes = publish_predictors(registry, run)
    for outcome in outcomes.values():
        if outcome.serving:
            out.print(
                f"{outcome.target}: {'published' if outcome.published else 'kept'} {outcome.version}"
                f" as {outcome.alias} ({outcome.reason})",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
        else:
            err.print(
                f"{outcome.target}: NOT published: {outcome.reason}",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
    if not all(o.serving for o in outcomes.values()):
        raise typer.Exit(3)


@app.command()
@handled
@_training_options
def validate(training: _Training) -> None:
    """The validation report of every candidate, baseline and the champion; publishes nothing."""
    from technic_ml.predictors.features import TARGETS
    from technic_ml.predictors.training import validate_predictor
    from technic_ml.predictors.validation import Gates, markdown

    registry = model_registry()
    with err.status("validating candidates on rolling-origin folds..."):
        reports = [
            validate_predictor(
                training.data, t, coverage=training.coverage, folds=training.plan, registry=registry
            )
            for t in TARGETS
        ]
    for report in reports:
        out.print(markdown(report, Gates()), markup=False, highlight=False, soft_wrap=True)
        out.print()


MODEL = Annotated[str, typer.Argument(help="result-count | duration")]
_REASON_HELP = "Recorded in the alias history."


@models_app.command("list")
@handled
def models_list() -> None:
    """Every published version, with the aliases it holds."""
    from technic_ml.predictors.registry import MODEL_NAMES

    registry = model_registry()
    table = Table(title=f"Model registry: {registry.root}")
    for col in ("model", "version", "aliases", "features", "MAE", "R²", "coverage", "records"):
        # The model name is what users grep for and pass back to `models show`: never wrapped.
        table.add_column(col, overflow="fold", no_wrap=col == "model")
    for model in MODEL_NAMES.values():
        aliases = registry.aliases(model)
        for v in registry.versions(model):
            pooled = (v.manifest.get("validation") or {}).get("pooled") or {}
            held = ", ".join(a for a, version in aliases.items() if version == v.version)
            table.add_row(
                model,
                v.version,
                held,
                v.manifest.get("feature_set", ""),
                fmt(pooled.get("mae")),
                fmt(pooled.get("r2")),
                fmt(pooled.get("coverage")),
                fmt((v.manifest.get("training_window") or {}).get("records")),
            )
    out.print(table)


@models_app.command("show")
@handled
def models_show(
    model: MODEL,
    version: Annotated[str, typer.Argument(help="A version id, champion or challenger.")] = "champion",
) -> None:
    """A version's manifest, and the alias history of the model."""

    registry = model_registry()
    out.print_json(json.dumps(registry.manifest(model, version), default=str))
    for event in registry.alias_history(model):
        out.print(
            f"{event['at']}  {event['alias']:<10} {event['action']:<8} {event['version']}  {event['reason']}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


@models_app.command("promote")
@handled
def models_promote(
    model: MODEL,
    version: Annotated[str, typer.Argument(help="The version to make champion.")],
    reason: Annotated[str, typer.Option(help=_REASON_HELP)] = "promoted by hand",
) -> None:
    """Make a published version the champion."""
    model_registry().promote(model, version, reason)
    out.print(f"{model}: champion is now {version}", markup=False, highlight=False)


@models_app.command("rollback")
@handled
def models_rollback(
    model: MODEL,
    reason: Annotated[str, typer.Option(help=_REASON_HELP)] = "rolled back by hand",
) -> None:
    """Return champion to the version that held it before the current one."""
    previous = model_registry().rollback(model, reason)
    out.print(f"{model}: champion rolled back to {previous}", markup=False, highlight=False)


@app.command()
@handled
@scan_config_options
def predict(
    config: ScanConfig,
    as_of: Annotated[
        str | None,
        typer.Option(help="Moment of the scan (default: now, or the end of a historical dataset)."),
    ] = None,
    source: SOURCE = None,
    market_dir: MARKET_DIR = None,
    duration_source: Annotated[
        str | None,
        typer.Option(
            help="Whose durations to predict: sample, parquet or yfinance (the reference scanner on that"
            " market data) or scanner_log (a production scanner's logged durations)."
            " Default: the configured market data."
        ),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Predict a scan's result count and duration with the champion models."""

    from technic_ml.predictors.serving import check_source

    try:
        check_source(duration_source)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--duration-source") from None
    predictors, conditions, when = predictors_at(as_of, source, market_dir)
    result = predictors.predict(config, conditions, duration_source)
    if json_output:
        out.print_json(json.dumps({k: p.to_dict() for k, p in result.items()} | {"as_of": when.isoformat()}))
        return
    table = Table(title=f"Prediction as of {when.isoformat()}")
    for col in ("target", "state", "value", "interval", "coverage", "P(empty)", "version", "notes"):
        table.add_column(col, overflow="fold")
    for target, p in result.items():
        interval = "-" if p.lower is None else f"{fmt(p.lower)} .. {fmt(p.upper)}"
        table.add_row(
            target,
            p.state,
            fmt(p.value),
            interval,
            "-" if p.coverage is None else f"{p.coverage:.0%}",
            "-" if p.p_empty is None else f"{p.p_empty:.1%}",
            p.version or "-",
            escape("; ".join((*((f"for source {p.source}",) if p.source else ()), *p.reasons))),
        )
    out.print(table)
