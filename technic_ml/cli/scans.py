"""``technic-ml scan`` and ``technic-ml backfill``: the reference scanner, once or over history."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from technic_ml import stores
from technic_ml.cli.common import (
    MARKET_DIR,
    SOURCE,
    app,
    handled,
    history_store,
    load_settings,
    out,
    parse_time,
    progress_bar,
    scan_config_options,
)
from technic_ml.contracts import ScanConfig


@app.command()
@handled
@scan_config_options
def scan(
    config: ScanConfig,
    as_of: Annotated[
        str, typer.Option(help="Scan moment (ISO; a date = after its close; naive = New York).")
    ],
    source: SOURCE = None,
    market_dir: MARKET_DIR = None,
    save: Annotated[bool, typer.Option(help="Add the scan record to the history store.")] = False,
    limit: Annotated[int, typer.Option(help="Rows of results to print.")] = 50,
) -> None:
    """Run one scan as of a moment and print its results and record."""
    from technic_ml.market_data import open_market_data
    from technic_ml.scanner import run_scan

    moment = parse_time(as_of)
    settings = load_settings(market_source=source, market_dir=market_dir)
    market = open_market_data(settings)
    result = run_scan(config, market, moment)
    if market.is_sample:
        out.print("[bold yellow]EMBEDDED SAMPLE data[/] (synthetic stocks on the real S&P 500 / VIX)")
    when = result.record.timestamp.isoformat()
    table = Table(title=f"{len(result.results)} results as of {when} (bars to {result.bar_date})")
    for col in ("symbol", "sector", "tech_rating", "signal"):
        table.add_column(col)
    for row in result.results.head(limit).itertuples(index=False):
        table.add_row(
            escape(row.symbol), escape(row.sector), f"{row.tech_rating:.1f}", "yes" if row.signal else ""
        )
    out.print(table)
    if len(result.results) > limit:
        out.print(f"... {len(result.results) - limit} more (--limit)")
    out.print_json(result.record.model_dump_json())
    if save:
        added = history_store().add(result.record).added
        out.print(f"saved to the history store: {added} added", markup=False, highlight=False)


@app.command()
@handled
def backfill(
    start: Annotated[str, typer.Option(help="First date scans may fall on (YYYY-MM-DD).")],
    end: Annotated[str, typer.Option(help="Last date scans may fall on (YYYY-MM-DD).")],
    n_scans: Annotated[int, typer.Option(min=1, help="How many scans to plan.")] = 1000,
    seed: Annotated[int, typer.Option(help="Same seed, same scans (durations aside).")] = 0,
    workers: Annotated[int, typer.Option(min=1, help="Processes (date-range chunks run in parallel).")] = 1,
    source: SOURCE = None,
    market_dir: MARKET_DIR = None,
) -> None:
    """Run planned scans over history, point in time, into the history store (resumable)."""
    from technic_ml.backfill import backfill_with_settings

    first, last = _parse_date(start, "--start"), _parse_date(end, "--end")
    settings = load_settings(market_source=source, market_dir=market_dir)
    with progress_bar(in_bytes=False) as bar:
        task = bar.add_task("backfilling", total=n_scans)
        summary = backfill_with_settings(
            settings,
            first,
            last,
            n_scans,
            seed,
            workers=workers,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    out.print(str(summary), markup=False, highlight=False, soft_wrap=True)
    where = stores.describe(settings)["history"]
    out.print(f"history store: {where}", markup=False, highlight=False, soft_wrap=True)


def _parse_date(value: str, name: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(f"received {value!r}; expected a date YYYY-MM-DD", param_hint=name) from exc
