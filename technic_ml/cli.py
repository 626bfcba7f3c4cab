"""The ``technic-ml`` command's library commands: market, scans, history, models, predictions.

The orchestration commands (``run``, ``serve``, ``trigger``) are added by ``deployments.cli``, the
console script's entry point, so that this package never imports Prefect.

Thin by design: each command parses options into settings, calls one library function and renders
its result. Warnings (a degraded snapshot, a failed refresh) go to stderr through logging, so they
are visible even when stdout is piped.

Errors and exit codes (README, "The ``technic-ml`` command"): every error is ONE line on stderr,
``error: <what>: received <value>; expected <what was expected>``, never a usage box or a traceback.

* exit 2, usage error: the command line itself is wrong, found before any work is done: an unknown
  command or option, a missing required option, a value of the wrong form (not a number, not an
  ISO time, below an option's minimum, not one of its choices, including ``--source``). The line
  names the option (``--as-of``), the value received and what was expected.
* exit 1, refused: technic-ml refused something on purpose while running (TechnicError, or a
  ValueError with a message from the library): a setting read from the environment, a scan config
  that breaks the data contract, a missing file, an empty store.
* exit 3: done, but something needs attention (lines quarantined, a predictor not published).

``_OneLineErrors`` (the root command's class) renders the usage errors; ``_handled`` the others.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import gc
import inspect
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from typer._click import exceptions as click_exceptions  # typer 0.29 vendors click: these are what it raises
from typer.core import TyperGroup

from technic_ml import stores
from technic_ml.contracts import ScanConfig
from technic_ml.errors import TechnicError
from technic_ml.settings import MarketDirConflict, TechnicSettings


def _param_name(exc: click_exceptions.BadParameter) -> str | None:
    """The option as the user types it (``--as-of``), or an argument's name (``FLOW``)."""
    if exc.param_hint is not None:
        hint = exc.param_hint if isinstance(exc.param_hint, str) else " / ".join(exc.param_hint)
        return hint.strip("'")
    param = exc.param
    if param is None:
        return None
    if param.param_type_name == "argument":
        return (param.metavar or param.name or "argument").upper()
    long = [o for o in param.opts if o.startswith("--")]
    return " / ".join(long or param.opts)


def describe_usage_error(exc: click_exceptions.ClickException) -> str:
    """One line: what was wrong, the value received and what was expected."""
    ctx = getattr(exc, "ctx", None)
    see = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
    if isinstance(exc, click_exceptions.MissingParameter):
        kind = exc.param.param_type_name if exc.param is not None else "parameter"
        return f"{_param_name(exc) or kind}: missing; this {kind} is required{see}"
    if isinstance(exc, click_exceptions.BadParameter):
        cause = exc.__cause__
        if isinstance(cause, ValidationError) and cause.errors():
            # Typer checks types and ranges (min=, max=) with pydantic: its message lacks the value.
            first = cause.errors()[0]
            expected = first["msg"].removeprefix("Input should be ")
            message = f"received {first.get('input')!r}; expected {expected}"
        else:
            message = exc.message
        name = _param_name(exc)
        return f"{name}: {message}" if name else message
    if isinstance(exc, click_exceptions.NoSuchOption):
        maybe = f"; did you mean {' or '.join(sorted(exc.possibilities))}?" if exc.possibilities else ""
        return f"{exc.option_name}: no such option{maybe}{see}"
    message = exc.format_message().rstrip(".")
    if message[1:2].islower():  # "No such command 'x'" -> "no such command 'x'", not "FLOW ..."
        message = message[:1].lower() + message[1:]
    return f"{message}{see}" if isinstance(exc, click_exceptions.UsageError) else message


class _OneLineErrors(TyperGroup):
    """The root command: a usage error anywhere below it is one line on stderr and exit 2.

    Typer would print a usage line, a hint and a boxed message (several lines); scripts and people
    reading logs get one line in the project's format instead. Help (``--help``, or a command
    group run without a command) is untouched.
    """

    def make_context(self, info_name, args, parent=None, **extra):
        with _usage_errors_in_one_line():
            return super().make_context(info_name, args, parent=parent, **extra)

    def invoke(self, ctx):
        with _usage_errors_in_one_line():
            return super().invoke(ctx)


@contextlib.contextmanager
def _usage_errors_in_one_line():
    try:
        yield
    except click_exceptions.NoArgsIsHelpError:
        raise  # typer prints the help
    except click_exceptions.ClickException as exc:
        line = " ".join(describe_usage_error(exc).split())
        typer.echo(f"error: {line}", err=True)
        raise typer.Exit(exc.exit_code) from None


app = typer.Typer(
    cls=_OneLineErrors,
    help="technic-ml: scan history, market conditions and predictors for the Technic scanner.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
market_app = typer.Typer(help="Market-condition snapshots.", no_args_is_help=True)
history_app = typer.Typer(help="The scan history store.", no_args_is_help=True)
models_app = typer.Typer(help="The model registry: versions, champion and challenger.", no_args_is_help=True)
app.add_typer(market_app, name="market")
app.add_typer(history_app, name="history")
presets_app = typer.Typer(help="Daily presets saved by the daily-presets flow.", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(presets_app, name="presets")

out = Console()
err = Console(stderr=True)

_overrides: dict[str, object] = {}


@app.callback()
def _main(
    data_root: Annotated[
        Path | None,
        typer.Option(help="Where outputs are written (env TECHNIC_DATA_ROOT).", show_default=False),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log at INFO level.")] = False,
) -> None:
    level = logging.INFO if verbose else logging.WARNING
    # The level is the handler's too: a library logger set to INFO for the Prefect run logs
    # (tasks/__init__.py) must not make the console chatty.
    logging.basicConfig(
        level=level,
        format="%(message)s",
        handlers=[RichHandler(console=err, show_path=False, show_time=False, level=level)],
        force=True,
    )
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit():  # read per invocation (e.g. `COLUMNS=200 technic-ml models list | less`)
        out.width = err.width = int(columns)
    _overrides.clear()
    if data_root is not None:
        _overrides["data_root"] = data_root


#: Settings the command line can set, and the option that sets each.
_OPTIONS = {"data_root": "--data-root", "market_source": "--source", "market_dir": "--market-dir"}


def _settings(**more) -> TechnicSettings:
    """Settings from the environment, overridden by the options given (``None``: not given).

    A value refused because of an option is a usage error naming the option (exit 2); one refused
    because of the environment names the variable (exit 1).
    """
    values = {**_overrides, **{k: v for k, v in more.items() if v is not None}}

    def name(field: str) -> str:
        return _OPTIONS[field] if field in values and field in _OPTIONS else f"TECHNIC_{field.upper()}"

    try:
        return TechnicSettings(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        error = (first.get("ctx") or {}).get("error")
        if isinstance(error, MarketDirConflict):
            names = name("market_source"), name("market_dir")
            message, from_options = error.describe(*names), any(n.startswith("--") for n in names)
        else:
            field = str(first["loc"][0]) if first["loc"] else "settings"
            if isinstance(error, ValueError):
                # A validator's own message, "<field>: received ...; expected ...": keep what follows.
                detail = str(error).split(": ", 1)[-1]
            else:
                expected = first["msg"].removeprefix("Input should be ")
                detail = f"received {first.get('input')!r}; expected {expected}"
            message, from_options = f"{name(field)}: {detail}", name(field).startswith("--")
        if from_options:
            where, _, detail = message.partition(": ")  # every message starts with the name we gave it
            raise typer.BadParameter(detail, param_hint=where) from None
        raise TechnicError(message) from None


def _handled(fn):
    """Turn deliberate errors into one line on stderr and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (TechnicError, ValueError) as exc:  # ValueError: input the library refused, with a message
            err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper


def _parse_time(value: str | None, name: str = "--as-of") -> dt.datetime | None:
    if value is None:
        return None
    from technic_ml.nyse import to_ny

    try:
        return to_ny(value)
    except (ValueError, TypeError) as exc:
        raise typer.BadParameter(
            f"received {value!r}; expected an ISO date or time, e.g. 2019-11-29T13:30", param_hint=name
        ) from exc


def _progress(*, in_bytes: bool = True) -> Progress:
    # Imports report progress in bytes read (no extra pass over the file to count lines).
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        DownloadColumn() if in_bytes else MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        # Not on a terminal (a log, a pipe) a transient bar draws nothing but leaves an empty line
        # before what follows, e.g. an error that must be one line.
        disable=not err.is_terminal,
    )


def _conditions_table(c) -> Table:
    t = Table(title=f"Market conditions as of {c.as_of.isoformat() if c.as_of else '?'}", show_header=False)
    for key, value in c.model_dump().items():
        if key == "degraded_reasons" and value:
            value = "\n".join(value)
        style = "bold red" if key == "degraded" and value else None
        t.add_row(key, _fmt(value), style=style)
    return t


# ------------------------------------------------------------------------------------- market
@market_app.command("snapshot")
@_handled
def market_snapshot(
    as_of: Annotated[
        str | None, typer.Option(help="Moment (ISO; naive = New York time). Default: now.")
    ] = None,
    source: Annotated[
        str | None, typer.Option(help="sample | parquet | yfinance (env TECHNIC_MARKET_SOURCE).")
    ] = None,
    market_dir: Annotated[
        Path | None, typer.Option(help="Market-data directory for --source parquet.")
    ] = None,
    save: Annotated[bool, typer.Option(help="Persist the snapshot in the snapshot store.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Snapshot market conditions as of now or a given time."""
    from technic_ml.market_conditions import snapshot_market
    from technic_ml.market_data import open_market_data

    when = _parse_time(as_of)  # the options first: a usage error is found before any work
    settings = _settings(market_source=source, market_dir=market_dir)
    market = open_market_data(settings)
    conditions = snapshot_market(market, when)
    path = stores.snapshot_store(settings).save(conditions) if save else None
    if as_json:
        out.print_json(conditions.model_dump_json())
    else:
        if market.is_sample:
            out.print("[bold yellow]EMBEDDED SAMPLE data[/]")
        out.print(_conditions_table(conditions))
        if path:
            out.print(f"saved: {path}", markup=False, highlight=False, soft_wrap=True)


@market_app.command("show")
@_handled
def market_show(
    as_of: Annotated[str | None, typer.Option(help="Latest snapshot taken at or before this moment.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Show the latest persisted snapshot, or the one in force at --as-of."""

    store = stores.snapshot_store(_settings())
    when = _parse_time(as_of)
    conditions = store.latest() if when is None else store.as_of(when)
    if conditions is None:
        raise TechnicError(
            f"no snapshot {'saved' if when is None else f'at or before {when.isoformat()}'} in {store.root}"
        )
    if as_json:
        out.print_json(conditions.model_dump_json())
    else:
        out.print(_conditions_table(conditions))


# --------------------------------------------------------------------------------- scan/backfill
# The scan configuration options, shared by `scan`, `predict` and `analyze` (see _scan_config).
_MAX_SYMBOLS = Annotated[int, typer.Option(help="Scan at most this many of the most liquid symbols.")]
_MIN_TECH_RATING = Annotated[float, typer.Option(help="Keep symbols rated at least this (0-100).")]
_MIN_DOLLAR_VOL = Annotated[float, typer.Option(help="Minimum 20-day average dollar volume (USD).")]
_SECTOR = Annotated[list[str] | None, typer.Option(help="Sector to scan (repeatable; default all).")]
_INDUSTRY = Annotated[list[str] | None, typer.Option(help="Industry to scan (repeatable; default all).")]
_LOOKBACK_DAYS = Annotated[int, typer.Option(help="Trading days the indicators look at (20-500).")]


_CONFIG_OPTIONS = (
    ("max_symbols", _MAX_SYMBOLS, 100),
    ("min_tech_rating", _MIN_TECH_RATING, 50.0),
    ("min_dollar_vol", _MIN_DOLLAR_VOL, 0.0),
    ("sector", _SECTOR, None),
    ("industry", _INDUSTRY, None),
    ("lookback_days", _LOOKBACK_DAYS, 120),
)


def _option_group(name: str, options: tuple, build):
    """A decorator giving a command the ``options`` ((name, annotated type, default), ...), one
    definition for every command that takes them; the command receives ``build(**values)`` as its
    parameter ``name`` instead (a validated object, not six loose values)."""

    def decorate(command):
        own = [p for p in inspect.signature(command, eval_str=True).parameters.values() if p.name != name]
        group = [
            inspect.Parameter(option, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
            for option, annotation, default in options
        ]
        # Required options first (typer orders the help by the signature), then the group, then the rest.
        required = [p for p in own if p.default is inspect.Parameter.empty]
        rest = [p for p in own if p.default is not inspect.Parameter.empty]
        parameters = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in (*required, *group, *rest)]

        @functools.wraps(command)
        def with_group(**kwargs):
            values = {option: kwargs.pop(option) for option, _, _ in options}
            return command(**{name: build(**values)}, **kwargs)

        with_group.__signature__ = inspect.Signature(parameters)
        with_group.__annotations__ = {p.name: p.annotation for p in parameters}
        del with_group.__wrapped__  # typer must read the signature above, not the command's own
        return with_group

    return decorate


def _build_config(
    max_symbols, min_tech_rating, min_dollar_vol, sector, industry, lookback_days
) -> ScanConfig:
    from technic_ml.contracts import parse_config

    return parse_config(
        {
            "max_symbols": max_symbols,
            "min_tech_rating": min_tech_rating,
            "min_dollar_vol": min_dollar_vol,
            "sectors": sector or None,
            "industries": industry or None,
            "lookback_days": lookback_days,
        }
    )


_scan_config = _option_group("config", _CONFIG_OPTIONS, _build_config)


@app.command()
@_handled
@_scan_config
def scan(
    config: ScanConfig,
    as_of: Annotated[
        str, typer.Option(help="Scan moment (ISO; a date = after its close; naive = New York).")
    ],
    source: Annotated[str | None, typer.Option(help="sample | parquet | yfinance.")] = None,
    market_dir: Annotated[
        Path | None, typer.Option(help="Market-data directory for --source parquet.")
    ] = None,
    save: Annotated[bool, typer.Option(help="Add the scan record to the history store.")] = False,
    limit: Annotated[int, typer.Option(help="Rows of results to print.")] = 50,
) -> None:
    """Run one scan as of a moment and print its results and record."""
    from technic_ml.market_data import open_market_data
    from technic_ml.scanner import run_scan

    moment = _parse_time(as_of)
    settings = _settings(market_source=source, market_dir=market_dir)
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
        added = _store().add(result.record).added
        out.print(f"saved to the history store: {added} added", markup=False, highlight=False)


@app.command()
@_handled
def backfill(
    start: Annotated[str, typer.Option(help="First date scans may fall on (YYYY-MM-DD).")],
    end: Annotated[str, typer.Option(help="Last date scans may fall on (YYYY-MM-DD).")],
    n_scans: Annotated[int, typer.Option(min=1, help="How many scans to plan.")] = 1000,
    seed: Annotated[int, typer.Option(help="Same seed, same scans (durations aside).")] = 0,
    workers: Annotated[int, typer.Option(min=1, help="Processes (date-range chunks run in parallel).")] = 1,
    source: Annotated[str | None, typer.Option(help="sample | parquet | yfinance.")] = None,
    market_dir: Annotated[
        Path | None, typer.Option(help="Market-data directory for --source parquet.")
    ] = None,
) -> None:
    """Run planned scans over history, point in time, into the history store (resumable)."""
    from technic_ml.backfill import backfill_with_settings

    first, last = _parse_date(start, "--start"), _parse_date(end, "--end")
    settings = _settings(market_source=source, market_dir=market_dir)
    with _progress(in_bytes=False) as bar:
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


# ------------------------------------------------------------------------------------ history
def _store():

    settings = _settings()
    return stores.history_store(settings)


@history_app.command("import")
@_handled
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
    store = _store()
    failed = False
    for path in files:
        with _progress() as bar:
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
@_handled
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
        _parse_time(value, name)  # only the form is checked here: the store reads the string itself
    n = _store().export_jsonl(file, include_provenance=with_provenance, start=start, end=end)
    out.print(f"exported {n} records to {file}", markup=False, highlight=False, soft_wrap=True)


@history_app.command("stats")
@_handled
def history_stats(
    by: Annotated[list[str] | None, typer.Option(help="Group by a config field (repeatable).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON records.")] = False,
) -> None:
    """Count, mean and median results and duration, empty-scan rate; optionally grouped."""
    frame = _store().statistics(by=by or [])
    if as_json:
        out.print_json(frame.to_json(orient="records"))
    else:
        out.print(_frame_table(frame, "Scan history statistics"))


@history_app.command("recent")
@_handled
def history_recent(n: Annotated[int, typer.Option("-n", min=1, help="How many records.")] = 10) -> None:
    """Print the n most recent records (newest first) as JSON lines."""
    for record in _store().recent(n):
        typer.echo(record.to_original_json(include_provenance=True))


@history_app.command("retention")
@_handled
def history_retention(
    older_than_days: Annotated[int, typer.Option(min=0, help="Records whose scan date is older than this.")],
    mode: Annotated[str, typer.Option(help="archive (move aside) or drop (delete).")],
    dry_run: Annotated[bool, typer.Option(help="Report what would happen; change nothing.")] = False,
) -> None:
    """Archive or drop old records. Explicit: --mode is required, and the report says what moved."""
    if mode not in ("archive", "drop"):
        raise typer.BadParameter(f"received {mode!r}; expected archive or drop", param_hint="--mode")
    report = _store().retention(older_than_days, mode=mode, dry_run=dry_run)
    out.print(str(report), markup=False, highlight=False, soft_wrap=True)


@history_app.command("compact")
@_handled
def history_compact() -> None:
    """Merge small files of each date partition into one."""
    out.print(str(_store().compact()), markup=False, highlight=False, soft_wrap=True)


# --------------------------------------------------------------------------------- predictors
def _registry():

    return stores.model_registry(_settings())


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

    test_period = _parse_time(test_start, "--test-start"), _parse_time(test_end, "--test-end")
    settings = _settings(market_source=source, market_dir=market_dir)
    store = _store()
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
_SOURCE = Annotated[str | None, typer.Option(help="sample | parquet | yfinance.")]
_MARKET_DIR = Annotated[Path | None, typer.Option(help="Market-data directory for --source parquet.")]
_training_options = _option_group(
    "training",
    (
        ("coverage", _COVERAGE, 0.9),
        ("folds", _FOLDS, 3),
        ("test_start", _TEST_START, None),
        ("test_end", _TEST_END, None),
        ("source", _SOURCE, None),
        ("market_dir", _MARKET_DIR, None),
    ),
    _build_training,
)


@app.command()
@_handled
@_training_options
def train(training: _Training) -> None:
    """Validate every candidate on the scan history, refit the winner, publish what passed its gates.

    Exit code 0 when both predictors were published, 3 when one or both were not (reasons printed).
    """
    from technic_ml.predictors.training import publish_predictors, train_predictors
    from technic_ml.predictors.validation import markdown

    registry = _registry()
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
@_handled
@_training_options
def validate(training: _Training) -> None:
    """The validation report of every candidate, baseline and the champion; publishes nothing."""
    from technic_ml.predictors.features import TARGETS
    from technic_ml.predictors.training import validate_predictor
    from technic_ml.predictors.validation import Gates, markdown

    registry = _registry()
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


@models_app.command("list")
@_handled
def models_list() -> None:
    """Every published version, with the aliases it holds."""
    from technic_ml.predictors.registry import MODEL_NAMES

    registry = _registry()
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
                _fmt(pooled.get("mae")),
                _fmt(pooled.get("r2")),
                _fmt(pooled.get("coverage")),
                _fmt((v.manifest.get("training_window") or {}).get("records")),
            )
    out.print(table)


@models_app.command("show")
@_handled
def models_show(
    model: Annotated[str, typer.Argument(help="result-count | duration")],
    version: Annotated[str, typer.Argument(help="A version id, champion or challenger.")] = "champion",
) -> None:
    """A version's manifest, and the alias history of the model."""
    import json

    registry = _registry()
    out.print_json(json.dumps(registry.manifest(model, version), default=str))
    for event in registry.alias_history(model):
        out.print(
            f"{event['at']}  {event['alias']:<10} {event['action']:<8} {event['version']}  {event['reason']}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


@models_app.command("promote")
@_handled
def models_promote(
    model: Annotated[str, typer.Argument(help="result-count | duration")],
    version: Annotated[str, typer.Argument(help="The version to make champion.")],
    reason: Annotated[str, typer.Option(help="Recorded in the alias history.")] = "promoted by hand",
) -> None:
    """Make a published version the champion."""
    _registry().promote(model, version, reason)
    out.print(f"{model}: champion is now {version}", markup=False, highlight=False)


@models_app.command("rollback")
@_handled
def models_rollback(
    model: Annotated[str, typer.Argument(help="result-count | duration")],
    reason: Annotated[str, typer.Option(help="Recorded in the alias history.")] = "rolled back by hand",
) -> None:
    """Return champion to the version that held it before the current one."""
    previous = _registry().rollback(model, reason)
    out.print(f"{model}: champion rolled back to {previous}", markup=False, highlight=False)


@app.command()
@_handled
@_scan_config
def predict(
    config: ScanConfig,
    as_of: Annotated[
        str | None,
        typer.Option(help="Moment of the scan (default: now, or the end of a historical dataset)."),
    ] = None,
    source: _SOURCE = None,
    market_dir: _MARKET_DIR = None,
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
    import json

    from technic_ml.predictors.serving import check_source

    try:
        check_source(duration_source)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--duration-source") from None
    predictors, conditions, when = _champions_at(as_of, source, market_dir)
    result = predictors.predict(config, conditions, duration_source)
    if json_output:
        out.print_json(json.dumps({k: p.to_dict() for k, p in result.items()} | {"as_of": when.isoformat()}))
        return
    table = Table(title=f"Prediction as of {when.isoformat()}")
    for col in ("target", "state", "value", "interval", "coverage", "P(empty)", "version", "notes"):
        table.add_column(col, overflow="fold")
    for target, p in result.items():
        interval = "-" if p.lower is None else f"{_fmt(p.lower)} .. {_fmt(p.upper)}"
        table.add_row(
            target,
            p.state,
            _fmt(p.value),
            interval,
            "-" if p.coverage is None else f"{p.coverage:.0%}",
            "-" if p.p_empty is None else f"{p.p_empty:.1%}",
            p.version or "-",
            escape("; ".join((*((f"for source {p.source}",) if p.source else ()), *p.reasons))),
        )
    out.print(table)


# --------------------------------------------------------------------------------- optimizer
_AS_OF = Annotated[
    str | None, typer.Option(help="Moment of the scan (default: now, or the end of a historical dataset).")
]


def _champions_at(as_of, source, market_dir):
    from technic_ml.market_conditions import default_as_of
    from technic_ml.market_data import open_market_data
    from technic_ml.predictors.serving import open_predictors

    when = _parse_time(as_of)
    settings = _settings(market_source=source, market_dir=market_dir)
    market = open_market_data(settings)
    when = when or default_as_of(market)[0]
    predictors, conditions = open_predictors(_registry(), market, when)
    return predictors, conditions, when


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
            else f"{_fmt(d.value)} s" + (f" ({_fmt(d.upper)} s)" if d.upper is not None else f" [{d.state}]")
        )
        p_empty = "-" if c.p_empty is None else f"{c.p_empty:.1%}"
        table.add_row(goal, s.source, escape(describe_config(s.config)), count, p_empty, duration)
    return table


@app.command()
@_handled
def suggest(
    goal: Annotated[str | None, typer.Option(help="quick, balanced or deep (default: all three).")] = None,
    as_of: _AS_OF = None,
    sector: _SECTOR = None,
    industry: _INDUSTRY = None,
    lookback_days: Annotated[int | None, typer.Option(help="Fix the lookback.")] = None,
    max_symbols_max: Annotated[int | None, typer.Option(help="Scan at most this many symbols.")] = None,
    min_tech_rating_min: Annotated[float | None, typer.Option(help="Rating floor.")] = None,
    min_dollar_vol_min: Annotated[float | None, typer.Option(help="Liquidity floor (USD).")] = None,
    duration_budget: Annotated[float | None, typer.Option(help="Duration budget in seconds.")] = None,
    source: _SOURCE = None,
    market_dir: _MARKET_DIR = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Suggest a scan config per goal from the champion models, with the reasoning."""
    import json

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
    predictors, conditions, when = _champions_at(as_of, source, market_dir)
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
@_handled
@_scan_config
def analyze(
    config: ScanConfig,
    as_of: _AS_OF = None,
    source: _SOURCE = None,
    market_dir: _MARKET_DIR = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Predict a config's outcome, label its risks and suggest concrete fixes."""
    import json

    from technic_ml.optimizer import analyze as analyze_config

    predictors, conditions, when = _champions_at(as_of, source, market_dir)
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
@_handled
def presets_history(
    limit: Annotated[int, typer.Option("-n", "--limit", min=1, help="How many, newest first.")] = 10,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Saved daily presets, newest first, with their provenance."""
    import json

    documents = stores.presets_history(_settings()).history(limit)
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
                else f"{c['max_symbols']}/{c['min_tech_rating']:g}/{_fmt(c['min_dollar_vol'])}"
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


# --------------------------------------------------------------------------------- api
LOOPBACK = ("127.0.0.1", "localhost", "::1")


@app.command()
@_handled
def api(
    host: Annotated[
        str, typer.Option(help="Address to bind (another than loopback needs TECHNIC_API_KEY).")
    ] = ("127.0.0.1"),
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port.")] = 8000,
    reload_seconds: Annotated[
        float, typer.Option(min=0.5, help="How often to look for a newly published champion.")
    ] = 5.0,
    source: _SOURCE = None,
    market_dir: _MARKET_DIR = None,
) -> None:
    """Serve the prediction API (/scan/predict, /scan/suggest, ...) with uvicorn."""
    import uvicorn

    from technic_ml.api.app import create_app
    from technic_ml.api.service import PredictionService

    settings = _settings(market_source=source, market_dir=market_dir)
    api_key = settings.api_key.get_secret_value() if settings.api_key else None
    if host not in LOOPBACK and api_key is None:
        raise TechnicError(
            f"--host: received {host!r}; binding beyond loopback needs an API key: set TECHNIC_API_KEY"
        )
    service = PredictionService(settings, reload_seconds=reload_seconds)
    health = service.health()
    err.print(
        f"prediction API on http://{host}:{port} (docs at /docs); models {health['models']};"
        f" {'ready' if health['ready'] else 'NOT ready'}"
        + ("".join(f"\n  degraded: {d}" for d in health["degraded"])),
        highlight=False,
    )
    app = create_app(service, api_key=api_key)
    # The loaded service (market panel, models, libraries: millions of objects) lives as long as the
    # process; frozen, the collector's full passes stop walking it. They were the 20-50 ms stalls
    # behind the p99 of computed predictions under load (bench/bench_api.py).
    gc.collect()
    gc.freeze()
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


def _frame_table(frame, title: str) -> Table:
    table = Table(title=title)
    for col in frame.columns:
        # Spaced headers wrap in a narrow terminal instead of being cut to "mean_res…".
        table.add_column(str(col).replace("_", " "), overflow="fold")
    for row in frame.itertuples(index=False):
        table.add_row(*[_fmt(v) for v in row])
    return table


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def main() -> None:  # pragma: no cover - console entry point alias
    app()


if __name__ == "__main__":  # pragma: no cover
    app()
