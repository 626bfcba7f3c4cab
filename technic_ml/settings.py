"""Settings: one pydantic-settings class, read from ``TECHNIC_*`` environment variables.

Everything the program writes lives under ``data_root`` (a user-writable directory, never inside
the installed package) unless a path is configured explicitly. The layout under the data root:

    <data_root>/history/            scan history store (parquet dataset, partitioned by scan date)
    <data_root>/history-quarantine/ rejected import lines, one JSONL file per import
    <data_root>/snapshots/          market-condition snapshots (parquet dataset)
    <data_root>/market-cache/       yfinance write-through cache (market-data directory format)
    <data_root>/models/             model registry (later issues)
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MarketSource = Literal["sample", "parquet", "yfinance"]


def _default_data_root() -> Path:
    return Path(platformdirs.user_data_dir("technic-ml", appauthor=False))


class TechnicSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TECHNIC_", extra="ignore")

    data_root: Path = Field(default_factory=_default_data_root, description="Where everything is written.")
    market_source: MarketSource = Field(
        default="sample",
        description="sample: embedded offline sample; parquet: a market-data directory; yfinance: Yahoo.",
    )
    market_dir: Path | None = Field(
        default=None, description="Market-data directory (required when market_source is 'parquet')."
    )
    yfinance_timeout_seconds: float = Field(
        default=30.0, gt=0, description="Upper bound on each yfinance call."
    )
    yfinance_cache_dir: Path | None = Field(default=None, description="Defaults to <data_root>/market-cache.")
    universe_file: Path | None = Field(
        default=None,
        description="Symbols file (parquet or CSV: symbol, sector, industry) for the yfinance source.",
    )
    history_dir: Path | None = Field(default=None, description="Defaults to <data_root>/history.")
    snapshot_dir: Path | None = Field(default=None, description="Defaults to <data_root>/snapshots.")
    model_registry_dir: Path | None = Field(default=None, description="Defaults to <data_root>/models.")
    inbox_dir: Path | None = Field(
        default=None, description="Scanner logs (JSONL) to import; defaults to <data_root>/inbox."
    )
    processed_dir: Path | None = Field(
        default=None, description="Where imported logs are moved; defaults to <data_root>/inbox-processed."
    )
    presets_dir: Path | None = Field(
        default=None, description="Daily presets and their history; defaults to <data_root>/presets."
    )

    @field_validator(
        "data_root",
        "market_dir",
        "yfinance_cache_dir",
        "universe_file",
        "history_dir",
        "snapshot_dir",
        "model_registry_dir",
        "inbox_dir",
        "processed_dir",
        "presets_dir",
    )
    @classmethod
    def _expand(cls, v: Path | None) -> Path | None:
        return None if v is None else Path(v).expanduser()

    @field_validator("data_root")
    @classmethod
    def _outside_package(cls, v: Path) -> Path:
        package_dir = Path(__file__).resolve().parent
        resolved = v.resolve()
        if resolved == package_dir or package_dir in resolved.parents:
            raise ValueError(
                f"data_root: received {v}; expected a user-writable directory outside the installed package"
                f" ({package_dir})"
            )
        return v

    @property
    def history_path(self) -> Path:
        return self.history_dir or self.data_root / "history"

    @property
    def quarantine_path(self) -> Path:
        return self.history_path.parent / (self.history_path.name + "-quarantine")

    @property
    def snapshot_path(self) -> Path:
        return self.snapshot_dir or self.data_root / "snapshots"

    @property
    def market_cache_path(self) -> Path:
        return self.yfinance_cache_dir or self.data_root / "market-cache"

    @property
    def model_registry_path(self) -> Path:
        return self.model_registry_dir or self.data_root / "models"

    @property
    def inbox_path(self) -> Path:
        return self.inbox_dir or self.data_root / "inbox"

    @property
    def processed_path(self) -> Path:
        return self.processed_dir or self.data_root / "inbox-processed"

    @property
    def presets_path(self) -> Path:
        return self.presets_dir or self.data_root / "presets"
