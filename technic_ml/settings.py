"""Settings: one pydantic-settings class, read from ``TECHNIC_*`` environment variables.

Everything the program writes lives under ``data_root`` (a user-writable directory, never inside
the installed package) unless a path is configured explicitly. The layout under the data root:

    <data_root>/history/            scan history store (parquet dataset, partitioned by scan date)
    <data_root>/history-quarantine/ rejected import lines, one JSONL file per import
    <data_root>/snapshots/          market-condition snapshots (parquet dataset)
    <data_root>/market-cache/       yfinance write-through cache (market-data directory format)
    <data_root>/models/             model registry
    <data_root>/presets/            daily presets and their history
    <data_root>/api/                the prediction API's ledger (always local: one per API host)

``TECHNIC_DATA_ROOT=s3://bucket/prefix`` (any URL) puts the shared stores on object storage
instead: ``shared_root`` takes the URL, and ``data_root`` stays the local working directory (the
platform default, or ``TECHNIC_LOCAL_ROOT``) for what is per machine: the local inbox the bucket's
logs are fetched into, quarantine files (copied to the bucket), the market cache and the API
ledger. ``technic_ml.stores`` opens each store where it lives; docs/storage.md says what each
guarantees there.

The market source and directory follow one rule, here, so that every entry point (the CLI's
options, the flows reading the environment, the API) applies it the same way: a market directory
given with no source chosen means the parquet source on that directory; a market directory with
another source chosen explicitly is an error naming both. A directory is never silently ignored.
An empty ``TECHNIC_MARKET_DIR`` counts as unset.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from technic_ml.errors import SettingsError
from technic_ml.objectstore import is_url

MarketSource = Literal["sample", "parquet", "yfinance"]


class MarketDirConflict(SettingsError):
    """A market directory with a source explicitly chosen as something other than parquet.

    ``describe`` names the two values with the names the user typed (the CLI's options or the
    environment variables, which the message uses by default).
    """

    def __init__(self, market_source: str, market_dir: Path):
        self.market_source, self.market_dir = market_source, market_dir
        super().__init__(self.describe())

    def describe(
        self, source_name: str = "TECHNIC_MARKET_SOURCE", dir_name: str = "TECHNIC_MARKET_DIR"
    ) -> str:
        return (
            f"{dir_name}: received {self.market_dir} with {source_name} {self.market_source!r}; expected"
            f" {source_name} 'parquet' or unset (a market directory implies the parquet source),"
            f" or no {dir_name} for the {self.market_source!r} source"
        )


def _default_data_root() -> Path:
    return Path(platformdirs.user_data_dir("technic-ml", appauthor=False))


class TechnicSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TECHNIC_", extra="ignore")

    data_root: Path = Field(default_factory=_default_data_root, description="Where everything is written.")
    shared_root: str | None = Field(
        default=None,
        description="Object storage for the shared stores (s3://bucket/prefix); TECHNIC_DATA_ROOT=<URL>"
        " sets it. History, models, snapshots, presets and the inbox live there; data_root stays local.",
    )
    local_root: Path | None = Field(
        default=None,
        description="The local working directory when TECHNIC_DATA_ROOT is a URL (default: the platform's).",
    )
    market_source: MarketSource = Field(
        default="sample",
        description="sample: embedded offline sample; parquet: a market-data directory; yfinance: Yahoo.",
    )
    market_dir: Path | None = Field(
        default=None,
        description="Market-data directory for the parquet source (implies it when no source is chosen).",
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
    # The model monitor (technic_ml.monitor, the model-monitor flow): when a model is degraded.
    monitor_window: int = Field(default=200, ge=1, description="Outcomes per model the monitor judges.")
    monitor_min_outcomes: int = Field(
        default=50, ge=1, description="Fewer outcomes than this: figures shown, no verdict."
    )
    monitor_mae_ratio_max: float = Field(
        default=1.5, gt=0, description="Live MAE above this multiple of the validated MAE is degraded."
    )
    monitor_abstain_max: float = Field(
        default=0.25,
        gt=0,
        le=1,
        description="A larger share of abstentions among recent predictions is degraded.",
    )
    monitor_psi_max: float = Field(
        default=0.25, gt=0, description="Input drift: PSI beyond sampling noise above this is degraded."
    )
    monitor_support_max: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="Market-condition drift: a larger share of recent scans outside the training support.",
    )
    monitor_drift_min_rows: int = Field(
        default=200, ge=1, description="Recent scans needed before input drift is judged."
    )
    monitor_promote_min_outcomes: int = Field(
        default=100, ge=1, description="Shared outcomes before a challenger may be promoted."
    )
    retrain_cooldown_minutes: int = Field(
        default=360,
        ge=0,
        description="The retrain automation runs train-predictors at most once per this many minutes.",
    )
    backfill_task_runner: Literal["threads", "dask"] = Field(
        default="threads",
        description="Where backfill-history runs its chunks: threads of the flow's process, or Dask.",
    )
    dask_address: str | None = Field(
        default=None,
        description="A Dask scheduler (tcp://host:8786) for backfill-history's chunks; without it,"
        " the dask runner starts a LocalCluster.",
    )
    api_key: SecretStr | None = Field(
        default=None,
        description="The key the prediction API requires in X-API-Key; needed to bind beyond loopback."
        " Empty = unset.",
    )
    serve_limit: int = Field(
        default=4, ge=1, description="Flow runs the served deployments (make serve) run at once."
    )
    api_reload_seconds: float = Field(
        default=5.0, ge=0.5, description="How often each API worker looks for a newly published champion."
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

    @field_validator("market_dir", "api_key", mode="before")
    @classmethod
    def _empty_is_unset(cls, v):
        return None if isinstance(v, str) and not v.strip() else v

    @model_validator(mode="before")
    @classmethod
    def _url_data_root_is_shared(cls, data):
        if isinstance(data, dict):
            root = data.get("data_root")
            if is_url(root):
                data = dict(data)
                data["shared_root"] = str(root).rstrip("/")
                local = data.get("local_root")
                data["data_root"] = Path(local) if local else _default_data_root()
        return data

    @field_validator("shared_root")
    @classmethod
    def _shared_root_is_url(cls, v: str | None) -> str | None:
        if v in (None, ""):
            return None
        if not is_url(v):
            raise ValueError(
                f"shared_root: received {v!r}; expected an object-storage URL such as s3://bucket/prefix"
            )
        return v.rstrip("/")

    @model_validator(mode="after")
    def _market_dir_means_parquet(self) -> TechnicSettings:
        if self.market_dir is None:
            return self
        if "market_source" not in self.model_fields_set:
            self.market_source = "parquet"
        elif self.market_source != "parquet":
            raise MarketDirConflict(self.market_source, self.market_dir)
        return self

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

    @property
    def ledger_path(self) -> Path:
        """The API's prediction ledger (SQLite): per machine, under the local data root."""
        return self.data_root / "api" / "ledger.sqlite"
