"""``technic-ml suggest``, ``analyze`` and ``presets``: the parameter optimizer and the daily presets."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.markup import escape
from rich.table import Table

from technic_ml import stores
from technic_ml.cli.common import (
    AS_OF,
    INDUSTRY,
    MARKET_DIR,
    SECTOR,
    SOURCE,
    app,
    fmt,
    handled,
    load_settings,
    out,
    predictors_at,
    presets_app,
    scan_config_options,
)
from technic_ml.contracts import ScanConfig
from technic_ml.errors import TechnicError


def _suggestion_table(suggestions: dict, title: str) -> Table:
    table = Table(title=title)
    for col in ("goal", "source", "config", "count (interval)", "P(empty)", "duration (upper)"):
        table.add_column(col, overflow="fold")
    from technic_ml.optimizer.optimizer import describe_config

    for goal, s in suggestions.items():
        c, d = s.count, s.duration
        count = "-" if c.value is None else f"{c.value:.0f} ({c.lower:.0f}-{c.upper:.0f})"
        duration = (
            "-"
            if d.value is None
            else f"{fmt(d.value)} s" + (f" ({fmt(d.upper)} s)" if d.upper is not None else f" [{d.state}]")
        )
        p_empty = "-" if c.p_empty is None else f"{c.p_empty:.1%}"
        table.add_row(goal, s.source, escape(describe_config(s.config)), count, p_empty, duration)
    return table


@app.command()
@handled
def suggest(
    goal: Annotated[str | None, typer.Option(help="quick, balanced or deep (default: all three).")] = None,
    as_of: AS_OF = None,
    sector: SECTOR = None,
    industry: INDUSTRY = None,
    lookback_days: Annotated[int | None, typer.Option(help="Fix the lookback.")] = None,
    max_symbols_max: Annotated[int | None, typer.Option(help="Scan at most this many symbols.")] = None,
    min_tech_rating_min: Annotated[float | None, typer.Option(help="Rating floor.")] = None,
    min_dollar_vol_min: Annotated[float | None, typer.Option(help="Liquidity floor (USD).")] = None,
    duration_budget: Annotated[float | None, typer.Option(help="Duration budget in seconds.")] = None,
    source: SOURCE = None,
    market_dir: MARKET_DIR = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Suggest a scan config per goal from the champion models, with the reasoning."""

    from technic_ml.optimizer import Constraints, Optimizer
    from technic_ml.optimizer.goals import resolve_goal

    if goal is not None:
        try:
            resolve_goal(goal)
        except ValueError as exc:  # "goal: received 'x'; expected one of [...]"
            raise typer.BadParameter(str(exc).partition(": ")[2], param_hint="--goal") from None
    try:
        constraints = Constraints(
            sectors=sector or None,
            industries=industry or None,
            lookback_days=lookback_days,
            max_symbols_max=max_symbols_max,
            min_tech_rating_min=min_tech_rating_min,
            min_dollar_vol_min=min_dollar_vol_min,
            duration_budget_s=duration_budget,
        )
    except ValidationError as exc:
        from technic_ml.contracts import describe_validation_error

        raise TechnicError(describe_validation_error(exc)) from None
    predictors, conditions, when = predictors_at(as_of, source, market_dir)
    optimizer = Optimizer(predictors)
    if goal is None:
        suggestions = optimizer.suggest_all(conditions, constraints)
    else:
        suggestions = {goal: optimizer.suggest(goal, conditions, constraints)}
    if json_output:
        payload = {"as_of": when.isoformat(), "suggestions": {g: s.to_dict() for g, s in suggestions.items()}}
        out.print_json(json.dumps(payload, allow_nan=False))
        return
    out.print(_suggestion_table(suggestions, f"Suggested presets as of {when.isoformat()}"))
    for name, s in suggestions.items():
        out.print(f"[bold]{name}[/]" + (f" [red]{escape('; '.join(s.flags))}[/]" if s.flags else ""))
        for line in s.reasoning:
            out.print(f"  {escape(line)}", highlight=False, soft_wrap=True)


@app.command()
@handled
@scan_config_options
def analyze(
    config: ScanConfig,
    as_of: AS_OF = None,
    source: SOURCE = None,
    market_dir: MARKET_DIR = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Predict a config's outcome, label its risks and suggest concrete fixes."""

    from technic_ml.optimizer import analyze as analyze_config

    predictors, conditions, when = predictors_at(as_of, source, market_dir)
    analysis = analyze_config(predictors, config, conditions)
    if json_output:
        out.print_json(json.dumps({"as_of": when.isoformat(), **analysis.to_dict()}, allow_nan=False))
        return
    out.print(f"As of {when.isoformat()}: {escape(analysis.summary)}", highlight=False, soft_wrap=True)
    for risk in analysis.risks:
        out.print(f"  [red]{risk.severity}[/] {escape(risk.label)}: {escape(risk.reason)}", soft_wrap=True)
    for fix in analysis.fixes:
        out.print(f"  fix: {escape(fix.text)}", highlight=False, soft_wrap=True)
    if not analysis.risks:
        out.print("  no risks found")


@presets_app.command("history")
@handled
def presets_history(
    limit: Annotated[int, typer.Option("-n", "--limit", min=1, help="How many, newest first.")] = 10,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Saved daily presets, newest first, with their provenance."""

    documents = stores.presets_history(load_settings()).history(limit)
    if json_output:
        out.print_json(json.dumps(documents, allow_nan=False))
        return
    if not documents:
        out.print("no presets saved yet (run the daily-presets flow: technic-ml trigger daily-presets)")
        return
    table = Table(title=f"Daily presets (newest {len(documents)})")
    for col in (
        "session",
        "generated",
        "source",
        "quick",
        "balanced",
        "deep",
        "count model",
        "snapshot",
        "flags",
    ):
        table.add_column(col, overflow="fold")
    for d in documents:
        cells = []
        for goal in ("quick", "balanced", "deep"):
            c = (d["presets"].get(goal) or {}).get("config")
            cells.append(
                "-"
                if c is None
                else f"{c['max_symbols']}/{c['min_tech_rating']:g}/{fmt(c['min_dollar_vol'])}"
                f"/{c['lookback_days']}"
            )
        model = (d["provenance"]["models"].get("count") or {}).get("version", "none")
        table.add_row(
            d["for_session"],
            d["generated_at"][:19],
            d["source"],
            *cells,
            model,
            d["provenance"]["snapshot_id"],
            escape("; ".join(d["flags"])) or "-",
        )
    out.print(table)
    out.print("configs: max_symbols/min_tech_rating/min_dollar_vol/lookback_days")
