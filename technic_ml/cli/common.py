"""What every ``technic-ml`` command shares: the app and its sub-apps, the consoles, settings from
the environment and the options, one-line errors, and the option groups several commands take.

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

``_OneLineErrors`` (the root command's class) renders the usage errors; :func:`handled` the others.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import inspect
import logging
import os
from pathlib import Path
from typing import Annotated

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
from typer._click.globals import get_current_context
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


@app.callback()
def _main(
    ctx: typer.Context,
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
    # Options of the root command that settings read (load_settings), kept on the invocation's
    # context rather than in module state: each run of the app starts from its own.
    ctx.obj = {"data_root": data_root} if data_root is not None else {}


#: Settings the command line can set, and the option that sets each.
_OPTIONS = {"data_root": "--data-root", "market_source": "--source", "market_dir": "--market-dir"}


def load_settings(**more) -> TechnicSettings:
    """Settings from the environment, overridden by the options given (``None``: not given).

    A value refused because of an option is a usage error naming the option (exit 2); one refused
    because of the environment names the variable (exit 1).
    """
    ctx = get_current_context(silent=True)
    given = dict(ctx.find_root().obj or {}) if ctx is not None else {}
    values = {**given, **{k: v for k, v in more.items() if v is not None}}

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


def handled(fn):
    """Turn deliberate errors into one line on stderr and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (TechnicError, ValueError) as exc:  # ValueError: input the library refused, with a message
            err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper


def parse_time(value: str | None, name: str = "--as-of") -> dt.datetime | None:
    if value is None:
        return None
    from technic_ml.nyse import to_ny

    try:
        return to_ny(value)
    except (ValueError, TypeError) as exc:
        raise typer.BadParameter(
            f"received {value!r}; expected an ISO date or time, e.g. 2019-11-29T13:30", param_hint=name
        ) from exc


def progress_bar(*, in_bytes: bool = True) -> Progress:
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


def conditions_table(c) -> Table:
    t = Table(title=f"Market conditions as of {c.as_of.isoformat() if c.as_of else '?'}", show_header=False)
    for key, value in c.model_dump().items():
        if key == "degraded_reasons" and value:
            value = "\n".join(value)
        style = "bold red" if key == "degraded" and value else None
        t.add_row(key, fmt(value), style=style)
    return t


# -- options several commands take -------------------------------------------------------------

SOURCE = Annotated[str | None, typer.Option(help="sample | parquet | yfinance.")]
MARKET_DIR = Annotated[Path | None, typer.Option(help="Market-data directory for --source parquet.")]

AS_OF = Annotated[
    str | None, typer.Option(help="Moment of the scan (default: now, or the end of a historical dataset).")
]

# The scan configuration options, shared by `scan`, `predict` and `analyze` (see scan_config_options).
_MAX_SYMBOLS = Annotated[int, typer.Option(help="Scan at most this many of the most liquid symbols.")]
_MIN_TECH_RATING = Annotated[float, typer.Option(help="Keep symbols rated at least this (0-100).")]
_MIN_DOLLAR_VOL = Annotated[float, typer.Option(help="Minimum 20-day average dollar volume (USD).")]
SECTOR = Annotated[list[str] | None, typer.Option(help="Sector to scan (repeatable; default all).")]
INDUSTRY = Annotated[list[str] | None, typer.Option(help="Industry to scan (repeatable; default all).")]
_LOOKBACK_DAYS = Annotated[int, typer.Option(help="Trading days the indicators look at (20-500).")]


CONFIG_OPTIONS = (
    ("max_symbols", _MAX_SYMBOLS, 100),
    ("min_tech_rating", _MIN_TECH_RATING, 50.0),
    ("min_dollar_vol", _MIN_DOLLAR_VOL, 0.0),
    ("sector", SECTOR, None),
    ("industry", INDUSTRY, None),
    ("lookback_days", _LOOKBACK_DAYS, 120),
)


def option_group(name: str, options: tuple, build):
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


def build_config(max_symbols, min_tech_rating, min_dollar_vol, sector, industry, lookback_days) -> ScanConfig:
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


scan_config_options = option_group("config", CONFIG_OPTIONS, build_config)


# -- stores and predictors from the settings -------------------------------------------------------


def history_store():
    settings = load_settings()
    return stores.history_store(settings)


def model_registry():
    return stores.model_registry(load_settings())


def predictors_at(as_of, source, market_dir):
    from technic_ml.market_conditions import default_as_of
    from technic_ml.market_data import open_market_data
    from technic_ml.predictors.serving import open_predictors

    when = parse_time(as_of)
    settings = load_settings(market_source=source, market_dir=market_dir)
    market = open_market_data(settings)
    when = when or default_as_of(market)[0]
    predictors, conditions = open_predictors(model_registry(), market, when)
    return predictors, conditions, when


# -- rendering ---------------------------------------------------------------------------------


def frame_table(frame, title: str) -> Table:
    table = Table(title=title)
    for col in frame.columns:
        # Spaced headers wrap in a narrow terminal instead of being cut to "mean_res…".
        table.add_column(str(col).replace("_", " "), overflow="fold")
    for row in frame.itertuples(index=False):
        table.add_row(*[fmt(v) for v in row])
    return table


def fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
