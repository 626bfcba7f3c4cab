from pathlib import Path

import pytest
from pydantic import ValidationError

import technic_ml
from technic_ml.settings import TechnicSettings


def test_env_prefix_and_derived_paths(monkeypatch, tmp_path):
    monkeypatch.setenv("TECHNIC_DATA_ROOT", str(tmp_path / "root"))
    monkeypatch.setenv("TECHNIC_MARKET_SOURCE", "parquet")
    monkeypatch.setenv("TECHNIC_MARKET_DIR", str(tmp_path / "market"))
    s = TechnicSettings()
    assert s.market_source == "parquet"
    assert s.market_dir == tmp_path / "market"
    assert s.history_path == tmp_path / "root" / "history"
    assert s.quarantine_path == tmp_path / "root" / "history-quarantine"
    assert s.snapshot_path == tmp_path / "root" / "snapshots"
    assert s.market_cache_path == tmp_path / "root" / "market-cache"
    assert s.model_registry_path == tmp_path / "root" / "models"


def test_unknown_source_is_rejected_with_the_value(monkeypatch):
    monkeypatch.setenv("TECHNIC_MARKET_SOURCE", "bloomberg")
    with pytest.raises(ValidationError, match="bloomberg"):
        TechnicSettings()


def test_data_root_inside_the_package_is_refused(monkeypatch):
    inside = Path(technic_ml.__file__).resolve().parent / "data"
    monkeypatch.setenv("TECHNIC_DATA_ROOT", str(inside))
    with pytest.raises(ValidationError, match="outside the installed package"):
        TechnicSettings()


def test_default_data_root_is_a_user_directory(monkeypatch):
    monkeypatch.delenv("TECHNIC_DATA_ROOT")
    root = TechnicSettings().data_root
    assert "technic-ml" in str(root)
    assert Path(technic_ml.__file__).resolve().parent not in root.resolve().parents


# -- the market directory rule: a directory given is used, or refused with both values named ----------


@pytest.mark.parametrize("via_env", [True, False], ids=["env", "argument"])
def test_a_market_dir_without_a_source_means_parquet(monkeypatch, tmp_path, via_env):
    if via_env:
        monkeypatch.setenv("TECHNIC_MARKET_DIR", str(tmp_path / "market"))
        s = TechnicSettings()
    else:
        s = TechnicSettings(market_dir=tmp_path / "market")
    assert (s.market_source, s.market_dir) == ("parquet", tmp_path / "market")


@pytest.mark.parametrize("source", ["sample", "yfinance"])
def test_a_market_dir_with_another_source_is_refused_naming_both(monkeypatch, tmp_path, source):
    monkeypatch.setenv("TECHNIC_MARKET_SOURCE", source)
    monkeypatch.setenv("TECHNIC_MARKET_DIR", str(tmp_path / "market"))
    with pytest.raises(ValidationError) as info:
        TechnicSettings()
    message = str(info.value)
    assert (
        f"TECHNIC_MARKET_DIR: received {tmp_path / 'market'} with TECHNIC_MARKET_SOURCE {source!r}" in message
    )
    assert "expected TECHNIC_MARKET_SOURCE 'parquet' or unset" in message
    with pytest.raises(ValidationError, match="a market directory implies the parquet source"):
        TechnicSettings(market_source=source, market_dir=tmp_path / "elsewhere")


def test_a_market_dir_with_the_parquet_source_and_no_dir_keep_their_meaning(monkeypatch, tmp_path):
    monkeypatch.setenv("TECHNIC_MARKET_SOURCE", "parquet")
    monkeypatch.setenv("TECHNIC_MARKET_DIR", str(tmp_path))
    assert TechnicSettings().market_source == "parquet"
    assert TechnicSettings(market_source="yfinance", market_dir=None).market_source == "yfinance"
    monkeypatch.delenv("TECHNIC_MARKET_DIR")
    monkeypatch.delenv("TECHNIC_MARKET_SOURCE")
    assert (TechnicSettings().market_source, TechnicSettings().market_dir) == ("sample", None)


def test_an_empty_market_dir_variable_counts_as_unset(monkeypatch):
    monkeypatch.setenv("TECHNIC_MARKET_DIR", "")
    s = TechnicSettings()
    assert (s.market_source, s.market_dir) == ("sample", None)


def test_a_url_data_root_is_the_shared_root_and_the_local_root_stays_a_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("TECHNIC_DATA_ROOT", "s3://bucket/prefix/")
    monkeypatch.setenv("TECHNIC_LOCAL_ROOT", str(tmp_path / "work"))
    settings = TechnicSettings()
    assert settings.shared_root == "s3://bucket/prefix"
    assert settings.data_root == tmp_path / "work"
    assert settings.inbox_path == tmp_path / "work" / "inbox"


def test_a_shared_root_that_is_not_a_url_is_refused_naming_it(monkeypatch):
    monkeypatch.setenv("TECHNIC_SHARED_ROOT", "/just/a/path")
    expected = r"shared_root: received '/just/a/path'; expected an object-storage URL"
    with pytest.raises(ValueError, match=expected):
        TechnicSettings()


def test_the_api_key_is_a_secret_and_empty_means_unset(monkeypatch):
    monkeypatch.setenv("TECHNIC_API_KEY", "s3cret")
    settings = TechnicSettings()
    assert settings.api_key is not None and settings.api_key.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings) and "s3cret" not in str(settings.model_dump())
    monkeypatch.setenv("TECHNIC_API_KEY", "")
    assert TechnicSettings().api_key is None


def test_the_serve_limit_is_a_positive_count(monkeypatch):
    assert TechnicSettings().serve_limit == 4
    monkeypatch.setenv("TECHNIC_SERVE_LIMIT", "2")
    assert TechnicSettings().serve_limit == 2
    monkeypatch.setenv("TECHNIC_SERVE_LIMIT", "0")
    with pytest.raises(ValueError, match="serve_limit"):
        TechnicSettings()


def test_no_library_layer_reads_technic_variables_outside_the_settings_class():
    # Every TECHNIC_* setting is a field of TechnicSettings (one place for names, defaults and
    # validation); a stray os.environ["TECHNIC_..."] read is a second, unvalidated path.
    import re
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    # Reads only: the CLI and the replay harness set variables for the flows they start.
    reads = re.compile(
        r"""(?:environ\.get|getenv)\(\s*["']TECHNIC_|environ\[["']TECHNIC_\w*["']\](?!\s*=[^=])"""
    )
    offenders = [
        f"{path.relative_to(repo)}:{number}"
        for folder in ("technic_ml", "tasks", "flows", "deployments")
        for path in sorted((repo / folder).rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if reads.search(line)
    ]
    assert offenders == []


def test_every_setting_is_in_the_readme_table():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    table = "\n".join(line for line in readme.splitlines() if line.startswith("| `TECHNIC_"))
    missing = [name for name in TechnicSettings.model_fields if f"`TECHNIC_{name.upper()}" not in table]
    assert missing == []
