"""The ``technic-ml`` console script: the library's commands plus the orchestration ones.

``run`` is the main job (the ``main-job`` flow: ephemeral Prefect unless ``PREFECT_API_URL`` is
set), ``serve`` serves every deployment, ``trigger`` starts a deployment's run ad hoc on a server.
They live here, not in ``technic_ml.cli``, because the library never imports Prefect. Each sets
Prefect's environment defaults (``deployments.prefect_env``: a startup timeout that fits a cold
start on 2 cores) before Prefect is imported. Errors and exit codes: ``technic_ml.cli``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from deployments import prefect_env
from technic_ml.backfill import BACKFILL_SCANS
from technic_ml.cli.common import app, err, handled, load_settings, out, parse_time

FLOWS = (
    "market-snapshot",
    "collect-history",
    "backfill-history",
    "train-predictors",
    "daily-presets",
    "model-monitor",
)


def _ui_hint() -> str:
    api = os.environ.get("PREFECT_API_URL")
    if api:
        return f"Prefect UI: {api.removesuffix('/api')}/runs"
    return (
        "Ran on an ephemeral Prefect server (gone now). To watch runs in the UI: make server"
        " (http://127.0.0.1:4200), then PREFECT_API_URL=http://127.0.0.1:4200/api make run"
    )


@app.command()
@handled
def run(
    as_of: Annotated[
        str | None, typer.Option(help="Snapshot moment (default: end of a historical dataset, or now).")
    ] = None,
    scans: Annotated[int, typer.Option(min=0, help="Scans to backfill before training.")] = BACKFILL_SCANS,
) -> None:
    """The main job: snapshot, backfill, train, validate and publish (the main-job flow)."""
    # A malformed --as-of is a usage error found before Prefect starts (the flow reads the string).
    parse_time(as_of)
    settings = load_settings()
    os.environ["TECHNIC_DATA_ROOT"] = str(settings.data_root)  # the flows read settings from the env
    prefect_env.set_defaults()  # before Prefect is imported: it reads its settings then
    if prefect_env.uses_ephemeral_server():
        err.print(
            "starting Prefect's ephemeral server (the first start on a machine creates its database:"
            " about 20 s on 2 cores, up to a minute when they are busy)",
            highlight=False,
            soft_wrap=True,
        )
        prefect_env.start_ephemeral_server()
    from flows.main_job import main_job

    err.print(
        f"main job: market snapshot, backfill {scans} scans, collect, validate, train, publish,"
        " daily presets"
        " (about 2 minutes on 2 cores; run logs in the Prefect UI)",
        highlight=False,
    )
    summary = main_job(n_scans=scans, as_of=as_of)
    _print_summary(summary)


def _print_summary(summary: dict) -> None:
    if summary["sample_data"]:
        out.print(
            "[bold yellow]Running on the EMBEDDED SAMPLE[/] (real S&P 500 / VIX backbone, synthetic stocks)."
        )
    c = summary["market_conditions"]
    out.print(
        f"Market {summary['market_source']} as of {summary['as_of']} ({escape(summary['as_of_reason'])}):"
        f" SPY {c['spy_trend']}, 20-day {c['spy_return_20d']:+.2%}, VIX {c['vix_level']}"
        + (" [bold red]DEGRADED[/]" if c["degraded"] else ""),
        highlight=False,
    )
    b = summary.get("backfill")
    if b:
        out.print(
            f"Backfill: {b['planned']} planned, {b['already_stored']} already stored, {b['ran']} ran,"
            f" {b['added']} added in {b['seconds']:.1f} s; history holds {summary['history_records']} scans",
            highlight=False,
        )
    table = Table(title="Predictors (validated on rolling-origin folds: train on the past, test on the next)")
    for col in ("target", "champion", "model", "MAE (gate)", "R² (gate)", "coverage, worst fold (floor)"):
        table.add_column(col, overflow="fold")
    for target, p in summary["predictors"].items():
        if not p.get("champion"):
            table.add_row(target, "[bold red]none[/]", "-", "-", "-", "-")
            continue
        gates = p.get("gates") or {}
        floor = (p.get("stated_coverage") or 0) - gates.get("coverage_tolerance", 0)
        table.add_row(
            target,
            escape(p["champion"]),
            escape(str(p.get("chosen"))),
            f"{p['mae']:.4g} (< {gates.get(f'{target}_mae_max')})",
            f"{p['r2']:.3f} (> {gates.get(f'{target}_r2_min')})",
            f"{p['min_fold_coverage']:.1%} (>= {floor:.0%} of {p['stated_coverage']:.0%},"
            " less on a small fold)",
        )
    out.print(table)
    t = summary["train_predictors"]
    if t["state"] != "Completed":
        err.print(f"[bold red]train-predictors {t['state']}:[/] {escape(t['message'])}", soft_wrap=True)
        if not summary["predictors"]["duration"].get("champion"):
            err.print("duration predictions fall back to the flagged heuristic (max_symbols x 0.1 s)")
    presets = summary.get("presets")
    if presets:
        table = Table(title=f"Daily presets for {presets['for_session']} ({presets['source']})")
        for col in ("goal", "max symbols", "min rating", "min dollar vol", "lookback"):
            table.add_column(col)
        for goal, c in presets["presets"].items():
            table.add_row(
                goal, str(c["max_symbols"]), f"{c['min_tech_rating']:g}", f"{c['min_dollar_vol']:,.0f}",
                str(c["lookback_days"]),
            )  # fmt: skip
        out.print(table)
        for flag in presets["flags"]:
            err.print(f"[bold yellow]presets flagged:[/] {escape(flag)}", soft_wrap=True)
    outputs = Table(title="Outputs", show_header=False)
    outputs.add_column("output")
    outputs.add_column("path", overflow="fold")
    for name, path in summary["outputs"].items():
        outputs.add_row(name, escape(str(path)))
    out.print(outputs)
    out.print(
        "Next: technic-ml suggest | technic-ml analyze --max-symbols 100 --min-tech-rating 50"
        " | technic-ml presets history | technic-ml models list",
        markup=False,
        highlight=False,
    )
    out.print(_ui_hint(), markup=False, highlight=False, soft_wrap=True)


@app.command()
def serve() -> None:
    """Serve every deployment with its schedule (needs a server: make server)."""
    prefect_env.set_defaults()
    from deployments.serve import main

    main()


@app.command()
@handled
def automations() -> None:
    """Create the retrain automation on the server, or leave it unchanged (needs the
    train-predictors deployment: make serve, or prefect deploy --all)."""
    prefect_env.set_defaults()
    from deployments.automations import RETRAIN_AUTOMATION, ensure_retrain_automation

    cooldown = load_settings().retrain_cooldown_minutes
    automation, how = ensure_retrain_automation(cooldown)
    out.print(
        f"automation {RETRAIN_AUTOMATION!r} ({automation.id}): {how}; cooldown {cooldown} minutes",
        highlight=False,
        markup=False,
    )


@app.command()
@handled
def replay(
    start: Annotated[str, typer.Option(help="First session replayed (YYYY-MM-DD).")],
    end: Annotated[str, typer.Option(help="Last session replayed (YYYY-MM-DD).")],
    out_dir: Annotated[Path, typer.Option("--out", help="A new directory for each policy's data root.")],
    per_day: Annotated[int, typer.Option(min=1, help="Scans per session, on average.")] = 20,
    initial_scans: Annotated[int, typer.Option(min=1, help="Scans backfilled before the start.")] = 6000,
    cooldown_days: Annotated[int, typer.Option(min=0, help="Sessions between monitor retrains.")] = 5,
    market_dir: Annotated[
        Path | None, typer.Option(help="Market-data directory (env TECHNIC_MARKET_DIR).")
    ] = None,
    policies: Annotated[
        str, typer.Option(help="Comma-separated subset of frozen,nightly,monitor (one per process).")
    ] = "frozen,nightly,monitor",
    retrain_targets: Annotated[
        str, typer.Option(help="What a retrain trains: count,duration or one of them.")
    ] = "count,duration",
) -> None:
    """Replay real days through the API code and the flows under three retraining policies (frozen,
    nightly, monitor-triggered) and print realized coverage, MAE, abstention and retrains per month."""
    import datetime as dt

    from technic_ml.replay import markdown

    try:
        first, last = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
    except ValueError as exc:
        raise typer.BadParameter(f"{exc}; expected YYYY-MM-DD", param_hint="--start/--end") from None
    from technic_ml.replay import POLICIES

    chosen = _csv(policies, "--policies", POLICIES)
    from technic_ml.predictors.features import TARGETS

    targets = _csv(retrain_targets, "--retrain-targets", TARGETS)
    settings = load_settings(market_dir=market_dir)  # a bad market setting: a usage error, before any work
    from deployments.replay import run_replay

    result = run_replay(
        first, last, out_dir, market_dir=settings.market_dir, per_day=per_day,
        initial_scans=initial_scans, cooldown_days=cooldown_days, policies=chosen, retrain_targets=targets,
        log=lambda line: err.print(line, markup=False, highlight=False, soft_wrap=True),
    )  # fmt: skip
    for target in ("count", "duration"):
        text = markdown(result.table(target))
        out.print(f"{target}, per month:\n\n{text}", markup=False, highlight=False)


def _csv(text: str, option: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
    items = tuple(x.strip() for x in text.split(",") if x.strip())
    if not items or any(x not in allowed for x in items):
        raise typer.BadParameter(
            f"received {text!r}; expected comma-separated names from {', '.join(allowed)}", param_hint=option
        )
    return items


@app.command()
@handled
def trigger(
    flow: Annotated[str, typer.Argument(help=f"One of: {', '.join(FLOWS)}.")],
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="key=value (value as JSON when it parses).")
    ] = None,
    wait: Annotated[
        bool, typer.Option(help="Wait for the run to finish and exit 1 unless Completed.")
    ] = False,
) -> None:
    """Start a deployment's run ad hoc: the same as prefect deployment run '<flow>/<flow>'."""
    if flow not in FLOWS:
        raise typer.BadParameter(f"received {flow!r}; expected one of {', '.join(FLOWS)}", param_hint="FLOW")
    parameters = {}
    for item in param or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"received {item!r}; expected key=value", param_hint="--param")
        try:
            parameters[key] = json.loads(raw)
        except json.JSONDecodeError:
            parameters[key] = raw
    prefect_env.set_defaults()
    from prefect.deployments import run_deployment

    run = run_deployment(f"{flow}/{flow}", parameters=parameters, timeout=None if wait else 0)
    state = run.state.name if run.state else "Scheduled"
    message = f": {run.state.message}" if run.state and run.state.message else ""
    out.print(f"{flow}: flow run {run.name} ({run.id}) {state}{message}", highlight=False, soft_wrap=True)
    if wait and not (run.state and run.state.is_completed()):
        raise typer.Exit(1)


def main() -> None:  # the console script
    prefect_env.set_defaults()  # before any command imports Prefect (python -m deployments.cli too)
    app()


if __name__ == "__main__":
    main()
