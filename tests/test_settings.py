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
