"""Market data: one point-in-time interface over three sources, chosen by settings.

* ``MarketData`` (``base``): the interface and the point-in-time rule every consumer relies on.
* ``SampleMarketData`` (``sample``): the embedded offline sample, the default source.
* ``ParquetMarketData`` (``parquet_dir``): a market-data directory such as ``../shared/data/market``;
  ``write_market_dir`` writes that format (``docs/market-data-format.md``).
* ``YFinanceMarketData`` (``yfinance_source``): Yahoo Finance, time-bounded, with a write-through cache.

``open_market_data(settings)`` is the one place that maps ``TECHNIC_MARKET_SOURCE`` to a source;
flows and the CLI call it instead of constructing sources themselves.
"""

from __future__ import annotations

from technic_ml.errors import SettingsError
from technic_ml.market_data.base import MarketData
from technic_ml.market_data.parquet_dir import ParquetMarketData, write_market_dir
from technic_ml.market_data.sample import SampleMarketData
from technic_ml.market_data.yfinance_source import YFinanceMarketData
from technic_ml.settings import TechnicSettings

__all__ = [
    "MarketData",
    "ParquetMarketData",
    "SampleMarketData",
    "YFinanceMarketData",
    "open_market_data",
    "write_market_dir",
]


def open_market_data(settings: TechnicSettings) -> MarketData:
    """The market-data source ``settings.market_source`` names (sample, parquet or yfinance)."""
    source = settings.market_source
    if source == "sample":
        return SampleMarketData()
    if source == "parquet":
        if settings.market_dir is None:
            raise SettingsError(
                "market_dir: received None with market_source='parquet'; expected a market-data directory: "
                "set TECHNIC_MARKET_DIR (e.g. ../shared/data/market)"
            )
        return ParquetMarketData(settings.market_dir)
    if source == "yfinance":
        return YFinanceMarketData(
            settings.market_cache_path,
            universe_file=settings.universe_file,
            timeout=settings.yfinance_timeout_seconds,
        )
    raise SettingsError(f"market_source: received {source!r}; expected 'sample', 'parquet' or 'yfinance'")
