import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from deployments.cli import app  # the console script: library commands + run/serve/trigger
from technic_ml.history.jsonl import sample_scan_log

runner = CliRunner()


def invoke(*args, env=None):
    return runner.invoke(
        app, list(args), env={"COLUMNS": "200", **(env or {})}, catch_exceptions=False, prog_name="technic-ml"
    )


def _commands(group=None, path=()):
    """Every command of the console script, read from the app itself (no hand-kept list)."""
    import typer.main

    group = group or typer.main.get_command(app)
    yield path, group
    if hasattr(group, "commands"):  # typer vendors click: a group is what has sub-commands
        for name, command in sorted(group.commands.items()):
            yield from _commands(command, (*path, name))


COMMANDS = list(_commands())
COMMAND_IDS = [" ".join(path) or "technic-ml" for path, _ in COMMANDS]


def test_the_command_list_is_complete():
    names = {" ".join(path) for path, _ in COMMANDS}
    # The sub-apps and commands the README documents; the list above must have found them.
    assert {"run", "serve", "trigger", "suggest", "analyze", "presets", "api", "history import"} <= names


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=COMMAND_IDS)
def test_help_everywhere(path, command):
    result = invoke(*path, "--help")
    assert result.exit_code == 0, result.output
    help_text = " ".join(result.output.split())
    assert f"Usage: technic-ml {' '.join(path)}".rstrip() in help_text
    # The command's own summary and every option it takes are on its help page.
    summary = " ".join((command.help or "").split("\n\n")[0].split())
    assert summary and summary[:40] in help_text, f"{path}: summary {summary!r} not in its help"
    for param in command.params:
        for opt in [o for o in param.opts if o.startswith("--")][:1]:
            assert opt in help_text, f"{path}: option {opt} missing from its help"


def test_parquet_source_without_directory_is_a_clear_error():
    result = invoke("market", "snapshot", "--source", "parquet")
    assert result.exit_code == 1
    assert "TECHNIC_MARKET_DIR" in result.output


def test_bad_time_is_a_usage_error():
    result = invoke("market", "snapshot", "--as-of", "yesterday-ish")
    assert result.exit_code == 2
    assert "expected an ISO date or time" in result.output


def test_show_without_snapshots_says_so():
    result = invoke("market", "show")
    assert result.exit_code == 1
    assert "no snapshot saved" in result.output


def test_retention_requires_an_explicit_mode():
    result = invoke("history", "retention", "--older-than-days", "30")
    assert result.exit_code == 2
    result = invoke("history", "retention", "--older-than-days", "30", "--mode", "shred")
    assert result.exit_code == 2 and "expected archive or drop" in result.output


def test_bundled_sample_log_is_the_original_file(shared_scan_log):
    assert sample_scan_log().read_bytes() == shared_scan_log.read_bytes()


def test_acceptance_import_twice_export_reimport_and_malformed(tmp_path):
    # The bundled copy is byte-identical to ../shared/data/technic_v4/scan_history.jsonl (checked
    # above when ../shared is present), so this acceptance test runs on every machine.
    shared_scan_log = sample_scan_log()
    first = invoke("history", "import", str(shared_scan_log))
    assert first.exit_code == 0, first.output
    assert "added 150" in first.output
    second = invoke("history", "import", str(shared_scan_log))
    assert second.exit_code == 0
    assert "added 0" in second.output

    exported = tmp_path / "export.jsonl"
    assert invoke("history", "export", str(exported)).exit_code == 0
    original = [json.loads(line) for line in shared_scan_log.read_text().splitlines() if line.strip()]
    again = [json.loads(line) for line in exported.read_text().splitlines()]
    assert sorted(again, key=lambda r: r["scan_id"]) == sorted(original, key=lambda r: r["scan_id"])

    fresh_root = tmp_path / "fresh"
    reimport = invoke("--data-root", str(fresh_root), "history", "import", str(exported))
    assert reimport.exit_code == 0 and "added 150" in reimport.output

    good = shared_scan_log.read_text().splitlines()
    bad_lines = {
        3: '{"scan_id": "broken", ',
        7: json.dumps(
            {k: v for k, v in json.loads(good[0]).items() if k != "results"} | {"scan_id": "nores"}
        ),
        11: json.dumps(json.loads(good[1]) | {"scan_id": "neg", "results": {"count": -3, "signals": 0}}),
        15: json.dumps(
            json.loads(good[2]) | {"scan_id": "types", "results": {"count": "many", "signals": 0}}
        ),
    }
    mixed = list(good)
    for line_no in sorted(bad_lines):
        mixed.insert(line_no - 1, bad_lines[line_no])
    mixed_file = tmp_path / "mixed.jsonl"
    mixed_file.write_text("\n".join(mixed) + "\n")
    result = invoke("--data-root", str(tmp_path / "mixed-root"), "history", "import", str(mixed_file))
    assert result.exit_code == 3, result.output
    assert "added 150" in result.output and "quarantined 4" in result.output
    for line_no in bad_lines:
        assert f"line {line_no}" in result.output


@pytest.mark.slow
def test_console_script_is_installed_and_reports_errors_with_exit_codes(tmp_path):
    exe = [sys.executable, "-m", "technic_ml.cli"]
    ok = subprocess.run([*exe, "--help"], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and "history" in ok.stdout
    missing = subprocess.run(
        [*exe, "--data-root", str(tmp_path), "history", "import", str(tmp_path / "nope.jsonl")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == 1
    assert "nope.jsonl" in missing.stderr


def test_paths_with_markup_characters_are_printed_verbatim(tmp_path):
    weird = tmp_path / "scan[b]log[bold].jsonl"
    weird.write_text(sample_scan_log().read_text().splitlines()[0] + "\n")
    result = invoke("--data-root", str(tmp_path / "root"), "history", "import", str(weird))
    assert result.exit_code == 0, result.output
    assert "scan[b]log[bold].jsonl" in result.output


def test_settings_errors_name_the_variable_and_value():
    result = invoke("market", "snapshot", env={"TECHNIC_MARKET_SOURCE": "Parquet"})
    assert result.exit_code == 1
    assert "TECHNIC_MARKET_SOURCE: received 'Parquet'" in result.output


def test_refused_input_is_one_line_not_a_traceback():
    result = invoke("history", "stats", "--by", "no_such_field")
    assert result.exit_code == 1
    assert result.output.startswith("error:") and "Traceback" not in result.output
    future = invoke("market", "snapshot", "--as-of", "2100-01-01T12:00")
    assert future.exit_code == 1 and "not in the future" in future.output


def test_scan_prints_results_and_the_record(tmp_path):
    result = invoke(
        "--data-root",
        str(tmp_path),
        "scan",
        "--as-of",
        "2016-06-01T17:00",
        "--max-symbols",
        "50",
        "--min-tech-rating",
        "40",
        "--lookback-days",
        "60",
        "--save",
    )
    assert result.exit_code == 0, result.output
    assert "EMBEDDED SAMPLE" in result.output and "tech_rating" in result.output
    assert '"bar_date": "2016-06-01"' in result.output
    assert "saved to the history store: 1 added" in result.output


def test_scan_refuses_an_invalid_config_naming_the_field():
    result = invoke("scan", "--as-of", "2016-06-01", "--lookback-days", "5")
    assert result.exit_code == 1
    assert "lookback_days: received 5" in result.output


def test_backfill_summarizes_and_resumes(tmp_path):
    args = ("--data-root", str(tmp_path), "backfill", "--start", "2016-01-04", "--end", "2016-03-31")
    first = invoke(*args, "--n-scans", "25", "--seed", "4")
    assert first.exit_code == 0, first.output
    assert "25 planned, 0 already stored, 25 ran" in first.output
    again = invoke(*args, "--n-scans", "25", "--seed", "4")
    assert "25 already stored, 0 ran" in again.output
    bad = invoke(*args[:2], "backfill", "--start", "2016-13-01", "--end", "2016-03-31")
    assert bad.exit_code == 2 and "expected a date YYYY-MM-DD" in bad.output


def test_no_command_prints_the_help_not_an_error():
    for command in ([], ["history"]):
        result = invoke(*command)
        assert "Usage" in result.stdout and "error:" not in result.output


# -- usage errors: one line on stderr naming the option, the value and what was expected; exit 2 -----
USAGE_ERRORS = [
    (
        ["market", "snapshot", "--as-of", "garbage"],
        "error: --as-of: received 'garbage'; expected an ISO date or time, e.g. 2019-11-29T13:30",
    ),
    (
        ["history", "retention", "--mode", "archve", "--older-than-days", "1"],
        "error: --mode: received 'archve'; expected archive or drop",
    ),
    (
        ["history", "retention", "--older-than-days", "-1", "--mode", "drop"],
        "error: --older-than-days: received '-1'; expected greater than or equal to 0",
    ),
    (
        ["history", "retention", "--older-than-days", "1"],
        "error: --mode: missing; this option is required (see 'technic-ml history retention --help')",
    ),
    (["history", "stats", "--nope"], "error: --nope: no such option (see 'technic-ml history stats --help')"),
    (["frobnicate"], "error: no such command 'frobnicate' (see 'technic-ml --help')"),
    (["run", "--scans", "-1"], "error: --scans: received '-1'; expected greater than or equal to 0"),
    (
        ["run", "--as-of", "garbage"],
        "error: --as-of: received 'garbage'; expected an ISO date or time, e.g. 2019-11-29T13:30",
    ),
    (
        ["scan", "--as-of", "2016-06-01", "--source", "bloomberg"],
        "error: --source: received 'bloomberg'; expected 'sample', 'parquet' or 'yfinance'",
    ),
    (
        ["history", "export", "out.jsonl", "--start", "garbage"],
        "error: --start: received 'garbage'; expected an ISO date or time, e.g. 2019-11-29T13:30",
    ),
    (
        ["train", "--test-start", "soon"],
        "error: --test-start: received 'soon'; expected an ISO date or time, e.g. 2019-11-29T13:30",
    ),
    (
        ["backfill", "--start", "2016-13-01", "--end", "2016-03-31"],
        "error: --start: received '2016-13-01'; expected a date YYYY-MM-DD",
    ),
    (
        ["replay", "--start", "2018-13-01", "--end", "2018-12-01", "--out", "/nonexistent/replay"],
        "error: --start/--end: month must be in 1..12; expected YYYY-MM-DD",
    ),
    (
        [
            "replay",
            "--start",
            "2018-12-03",
            "--end",
            "2018-12-04",
            "--out",
            "/nonexistent/r",
            "--policies",
            "weekly",
        ],
        "error: --policies: received 'weekly'; expected comma-separated names from frozen, nightly, monitor",
    ),
    (
        [
            "replay",
            "--start",
            "2018-12-03",
            "--end",
            "2018-12-04",
            "--out",
            "/nonexistent/r",
            "--retrain-targets",
            "",
        ],
        "error: --retrain-targets: received ''; expected comma-separated names from count, duration",
    ),
    (
        ["trigger", "nope"],
        "error: FLOW: received 'nope'; expected one of market-snapshot, collect-history, backfill-history,"
        " train-predictors, daily-presets, model-monitor",
    ),
    (
        ["trigger", "train-predictors", "--param", "n_folds"],
        "error: --param: received 'n_folds'; expected key=value",
    ),
    (
        ["predict", "--duration-source", "nasdaq"],
        "error: --duration-source: duration_source: received 'nasdaq';"
        " expected one of ['sample', 'parquet', 'yfinance', 'scanner_log']",
    ),
]


@pytest.mark.parametrize("args, line", USAGE_ERRORS, ids=[" ".join(args) for args, _ in USAGE_ERRORS])
def test_usage_errors_are_one_line_on_stderr_and_exit_2(args, line):
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr.splitlines() == [line]


@pytest.mark.slow
@pytest.mark.parametrize(
    "args, line",
    [
        USAGE_ERRORS[0],  # market snapshot --as-of garbage
        USAGE_ERRORS[1],  # history retention --mode archve
        USAGE_ERRORS[2],  # history retention --older-than-days -1 (typer's min=0)
    ],
    ids=["as-of", "mode", "min"],
)
def test_the_console_script_prints_usage_errors_on_one_line(tmp_path, args, line):
    technic_ml = Path(sys.executable).with_name("technic-ml")  # the installed console script
    env = {**os.environ, "TECHNIC_DATA_ROOT": str(tmp_path), "COLUMNS": "80"}
    proc = subprocess.run([str(technic_ml), *args], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [line]


# -- a market directory given is that directory, or a one-line error ----------------------------------
MARKET_DIR_COMMANDS = [
    ["market", "snapshot", "--as-of", "2016-06-01T17:00"],
    ["scan", "--as-of", "2016-06-01"],
    ["backfill", "--start", "2016-01-04", "--end", "2016-03-31", "--n-scans", "1"],
    ["train"],
    ["validate"],
    ["predict"],
    ["suggest"],
    ["analyze"],
    ["api"],
]


@pytest.fixture
def no_serving(monkeypatch):
    """`api` must stop at the market directory; on the sample it would serve forever."""
    import uvicorn

    def refuse(*args, **kwargs):
        raise AssertionError("the API was served: the market directory was ignored")

    monkeypatch.setattr(uvicorn, "run", refuse)


@pytest.mark.parametrize(
    "command", MARKET_DIR_COMMANDS, ids=lambda c: c[0] if c[0] != "market" else "market snapshot"
)
def test_every_market_dir_option_is_that_directory(tmp_path, no_serving, command):
    missing = tmp_path / "no-market"
    result = invoke("--data-root", str(tmp_path / "root"), *command, "--market-dir", str(missing))
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines() == [
        f"error: market-data directory {missing.resolve()}: not found or not a directory; a market-data"
        " directory holds prices.parquet, symbols.parquet, spy.parquet, vix.parquet"
        " (see docs/market-data-format.md)"
    ]


def test_the_market_dir_variable_alone_is_that_directory(tmp_path):
    missing = tmp_path / "no-market"
    result = invoke("scan", "--as-of", "2016-06-01", env={"TECHNIC_MARKET_DIR": str(missing)})
    assert result.exit_code == 1 and f"market-data directory {missing.resolve()}: not found" in result.stderr


@pytest.fixture
def sample_market_dir(tmp_path) -> Path:
    """A market-data directory cut from the embedded sample: 20 symbols, June 2015 to June 2016."""
    import pandas as pd

    from technic_ml.market_data import write_market_dir
    from technic_ml.market_data.sample import sample_frames

    frames = sample_frames()
    symbols = frames.universe.head(20)
    dates = pd.Timestamp("2015-06-01"), pd.Timestamp("2016-06-01")
    prices = frames.prices[frames.prices["symbol"].isin(symbols["symbol"])]
    return write_market_dir(
        tmp_path / "market",
        prices=prices[prices["date"].between(*dates)],
        symbols=symbols,
        spy=frames.spy[frames.spy["date"].between(*dates)],
        vix=frames.vix[frames.vix["date"].between(*dates)],
    )


@pytest.mark.parametrize("via", ["option", "env"])
def test_a_market_dir_is_read_as_the_parquet_source(sample_market_dir, via):
    args = ["market", "snapshot", "--as-of", "2016-06-01T17:00", "--no-save", "--json"]
    if via == "option":
        result = invoke(*args, "--market-dir", str(sample_market_dir))
    else:
        result = invoke(*args, env={"TECHNIC_MARKET_DIR": str(sample_market_dir)})
    assert result.exit_code == 0, result.output
    conditions = json.loads(result.stdout)
    assert conditions["data_source"] == f"parquet:{sample_market_dir.resolve()}"
    sample = json.loads(invoke(*args).stdout)
    assert sample["data_source"] == "sample"
    assert {k: v for k, v in conditions.items() if k != "data_source"} == {
        k: v for k, v in sample.items() if k != "data_source"
    }


@pytest.mark.parametrize(
    "args, env, code, line",
    [
        (
            ["--source", "sample", "--market-dir", "{dir}"],
            {},
            2,
            "error: --market-dir: received {dir} with --source 'sample'; expected --source 'parquet' or unset"
            " (a market directory implies the parquet source), or no --market-dir for the 'sample' source",
        ),
        (
            ["--market-dir", "{dir}"],
            {"TECHNIC_MARKET_SOURCE": "yfinance"},
            2,
            "error: --market-dir: received {dir} with TECHNIC_MARKET_SOURCE 'yfinance'; expected"
            " TECHNIC_MARKET_SOURCE 'parquet' or unset (a market directory implies the parquet source),"
            " or no --market-dir for the 'yfinance' source",
        ),
        (
            [],
            {"TECHNIC_MARKET_SOURCE": "sample", "TECHNIC_MARKET_DIR": "{dir}"},
            1,
            "error: TECHNIC_MARKET_DIR: received {dir} with TECHNIC_MARKET_SOURCE 'sample'; expected"
            " TECHNIC_MARKET_SOURCE 'parquet' or unset (a market directory implies the parquet source),"
            " or no TECHNIC_MARKET_DIR for the 'sample' source",
        ),
    ],
    ids=["options", "option-and-env", "env"],
)
def test_a_market_dir_with_another_source_names_both(tmp_path, args, env, code, line):
    market = str(tmp_path / "market")
    args = [a.replace("{dir}", market) for a in args]
    env = {k: v.replace("{dir}", market) for k, v in env.items()}
    result = invoke("market", "snapshot", *args, env=env)
    assert result.exit_code == code, result.output
    assert result.stderr.splitlines() == [line.replace("{dir}", market)]


@pytest.mark.parametrize("days", ["1000000", "99999999999999"])
def test_retention_beyond_the_calendar_removes_nothing_and_says_so(days):
    # It used to end in an OverflowError traceback (a date before year 1).
    assert invoke("history", "import", str(sample_scan_log())).exit_code == 0
    result = invoke("history", "retention", "--older-than-days", days, "--mode", "drop")
    assert result.exit_code == 0, result.output
    assert "scan dates before 1900-01-01: dropped 0 records" in result.output
    assert "no stored scan is older" in result.output
    assert "150" in invoke("history", "stats", "--json").output


def test_the_data_root_option_belongs_to_its_invocation(tmp_path):
    # --data-root travels on the command's context: a later invocation in the same process (tests,
    # a notebook) reads the environment again instead of the previous run's option.
    first, second = tmp_path / "first", tmp_path / "second"
    given = invoke("--data-root", str(first), "models", "list")
    assert given.exit_code == 0, given.output
    assert str(first / "models") in " ".join(given.output.split()).replace(" ", "")
    later = invoke("models", "list", env={"TECHNIC_DATA_ROOT": str(second)})
    flat = " ".join(later.output.split()).replace(" ", "")
    assert later.exit_code == 0 and str(second / "models") in flat and str(first) not in flat
