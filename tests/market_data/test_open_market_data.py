"""open_market_data: TECHNIC_MARKET_SOURCE picks the source; misconfiguration fails with the fix."""

from __future__ import annotations

import pytest

from technic_ml.errors import SettingsError
from technic_ml.market_data import (
    ParquetMarketData,
    SampleMarketData,
    YFinanceMarketData,
    open_market_data,
    write_market_dir,
)
from technic_ml.settings import TechnicSettings
from tests.market_data.test_parquet_dir import tiny_frames


def test_default_is_the_embedded_sample():
    market = open_market_data(TechnicSettings())
    assert isinstance(market, SampleMarketData)
    assert market.is_sample and market.source == "sample"


def test_parquet_source_reads_the_configured_directory(tmp_path, monkeypatch):
    write_market_dir(tmp_path / "market", **tiny_frames())
    monkeypatch.setenv("TECHNIC_MARKET_SOURCE", "parquet")
    monkeypatch.setenv("TECHNIC_MARKET_DIR", str(tmp_path / "market"))
    market = open_market_data(TechnicSettings())
    assert isinstance(market, ParquetMarketData)
    assert market.source == f"parquet:{tmp_path / 'market'}"
    assert not market.is_sample


def test_parquet_source_without_a_directory_says_what_to_set(monkeypatch):
    monkeypatch.setenv("TECHNIC_MARKET_SOURCE", "parquet")
    with pytest.raises(SettingsError, match=r"market_dir: received None .*set TECHNIC_MARKET_DIR"):
        open_market_data(TechnicSettings())


def test_yfinance_source_uses_cache_universe_and_timeout_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("TECHNIC_MARKET_SOURCE", "yfinance")
    monkeypatch.setenv("TECHNIC_YFINANCE_TIMEOUT_SECONDS", "7.5")
    monkeypatch.setenv("TECHNIC_UNIVERSE_FILE", str(tmp_path / "symbols.parquet"))
    settings = TechnicSettings()
    market = open_market_data(settings)
    assert isinstance(market, YFinanceMarketData)
    assert market.cache_dir == settings.market_cache_path == settings.data_root / "market-cache"
    assert market.universe_file == tmp_path / "symbols.parquet"
    assert market.timeout == 7.5
    assert not any(market.cache_dir.parent.glob("market-cache")), "opening a source must not write anything"
