"""``technic-ml history``: import, export, statistics, retention and compaction of the scan history."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from technic_ml.cli.common import (
    frame_table,
    handled,
    history_app,
    history_store,
    out,
    parse_time,
    progress_bar,
)


@history_app.command("import")
@handled
def history_import(
    files: Annotated[list[Path], typer.Argument(help="JSONL files in the original scan-log format.")],
    source: Annotated[
        str, typer.Option(help="Provenance for lines without one: scanner_log | backfill.")
    ] = "scanner_log",
    data_source: Annotated[str | None, typer.Option(help="Market data the scans ran on, if known.")] = None,
) -> None:
    """Import scan records; malformed lines are quarantined with their line number and reason."""
    if source not in ("scanner_log", "backfill"):
        raise typer.BadParameter(
            f"received {source!r}; expected scanner_log or backfill", param_hint="--source"
        )
    store = history_store()
    failed = False
    for path in files:
        with progress_bar() as bar:
            task = bar.add_task(f"importing {escape(path.name)}", total=None)
            summary = store.import_jsonl(
                path,
                source=source,
                data_source=data_source,
                progress=lambda done, total, task=task: bar.update(task, completed=done, total=total),
            )
        out.print(str(summary), markup=False, highlight=False, soft_wrap=True)
        failed = failed or summary.quarantined > 0
    if failed:
        # Good lines are kept; the exit code still tells scripts that something needs attention.
        raise typer.Exit(3)


@history_app.command("export")
@handled
def history_export(
    file: Annotated[Path, typer.Argument(help="Destination JSONL file.")],
    with_provenance: Annotated[bool, typer.Option(help="Add each record's provenance key.")] = False,
    start: Annotated[
        str | None, typer.Option(help="Only records at or after this time (a date = its midnight, New York).")
    ] = None,
    end: Annotated[str | None, typer.Option(help="Only records before this time.")] = None,
) -> None:
    """Export records in the original scan-log format (naive New York timestamps)."""
    for value, name in ((start, "--start"), (end, "--end")):
        parse_time(value, name)  # only the form is checked here: the store reads the string itself
    n = history_store().export_jsonl(file, include_provenance=with_provenance, start=start, end=end)
    out.print(f"exported {n} records to {file}", markup=False, highlight=False, soft_wrap=True)


@history_app.command("stats")
@handled
def history_stats(
    by: Annotated[list[str] | None, typer.Option(help="Group by a config field (repeatable).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON records.")] = False,
) -> None:
    """Count, mean and median results and duration, empty-scan rate; optionally grouped."""
    frame = history_store().statistics(by=by or [])
    if as_json:
        out.print_json(frame.to_json(orient="records"))
    else:
        out.print(frame_table(frame, "Scan history statistics"))


@history_app.command("recent")
@handled
def history_recent(n: Annotated[int, typer.Option("-n", min=1, help="How many records.")] = 10) -> None:
    """Print the n most recent records (newest first) as JSON lines."""
    for record in history_store().recent(n):
        typer.echo(record.to_original_json(include_provenance=True))


@history_app.command("retention")
@handled
def history_retention(
    older_than_days: Annotated[int, typer.Option(min=0, help="Records whose scan date is older than this.")],
    mode: Annotated[str, typer.Option(help="archive (move aside) or drop (delete).")],
    dry_run: Annotated[bool, typer.Option(help="Report what would happen; change nothing.")] = False,
) -> None:
    """Archive or drop old records. Explicit: --mode is required, and the report says what moved."""
    if mode not in ("archive", "drop"):
        raise typer.BadParameter(f"received {mode!r}; expected archive or drop", param_hint="--mode")
    report = history_store().retention(older_than_days, mode=mode, dry_run=dry_run)
    out.print(str(report), markup=False, highlight=False, soft_wrap=True)


@history_app.command("compact")
@handled
def history_compact() -> None:
    """Merge small files of each date partition into one."""
    out.print(str(history_store().compact()), markup=False, highlight=False, soft_wrap=True)
