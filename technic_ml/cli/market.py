"""``technic-ml market``: snapshot market conditions, show a stored snapshot."""

from __future__ import annotations

from typing import Annotated

import typer

from technic_ml import stores
from technic_ml.cli.common import (
    MARKET_DIR,
    conditions_table,
    handled,
    load_settings,
    market_app,
    out,
    parse_time,
)
from technic_ml.errors import TechnicError


@market_app.command("snapshot")
@handled
def market_snapshot(
    as_of: Annotated[
        str | None, typer.Option(help="Moment (ISO; naive = New York time). Default: now.")
    ] = None,
    source: Annotated[
        str | None, typer.Option(help="sample | parquet | yfinance (env TECHNIC_MARKET_SOURCE).")
    ] = None,
    market_dir: MARKET_DIR = None,
    save: Annotated[bool, typer.Option(help="Persist the snapshot in the snapshot store.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Snapshot market conditions as of now or a given time."""
    from technic_ml.market_conditions import snapshot_market
    from technic_ml.market_data import open_market_data

    when = parse_time(as_of)  # the options first: a usage error is found before any work
    settings = load_settings(market_source=source, market_dir=market_dir)
    market = open_market_data(settings)
    conditions = snapshot_market(market, when)
    path = stores.snapshot_store(settings).save(conditions) if save else None
    if as_json:
        out.print_json(conditions.model_dump_json())
    else:
        if market.is_sample:
            out.print("[bold yellow]EMBEDDED SAMPLE data[/]")
        out.print(conditions_table(conditions))
        if path:
            out.print(f"saved: {path}", markup=False, highlight=False, soft_wrap=True)


@market_app.command("show")
@handled
def market_show(
    as_of: Annotated[str | None, typer.Option(help="Latest snapshot taken at or before this moment.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Show the latest persisted snapshot, or the one in force at --as-of."""

    store = stores.snapshot_store(load_settings())
    when = parse_time(as_of)
    conditions = store.latest() if when is None else store.as_of(when)
    if conditions is None:
        raise TechnicError(
            f"no snapshot {'saved' if when is None else f'at or before {when.isoformat()}'} in {store.root}"
        )
    if as_json:
        out.print_json(conditions.model_dump_json())
    else:
        out.print(conditions_table(conditions))
