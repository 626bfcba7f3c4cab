"""Persisted market-condition snapshots: a parquet dataset, one small file per snapshot.

Layout under the snapshot root (``<data_root>/snapshots`` by default)::

    as_of_date=2019-11-29/20191129T183000000000Z-<source hash>.parquet

The file name is the snapshot's as-of instant (UTC) plus a hash of its data source, so names sort
by time, ``as_of(ts)`` can pick its file without opening the others, and saving the same moment
from the same source twice replaces the earlier file instead of duplicating it (a re-snapshot
after a data refresh wins). Files are written under a hidden temporary name and renamed into
place, so a crash never leaves a half-written snapshot visible.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from technic_ml.contracts import MarketConditions
from technic_ml.errors import StoreError
from technic_ml.fsio import write_parquet_atomic
from technic_ml.market_data.base import AsOf
from technic_ml.nyse import NY, to_ny

_PARTITION = "as_of_date="
_STAMP = "%Y%m%dT%H%M%S%fZ"


class SnapshotStore:
    """Save and look up ``MarketConditions`` snapshots by time."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def save(self, conditions: MarketConditions) -> Path:
        """Persist a snapshot made by technic-ml (it must carry ``as_of`` and ``data_source``)."""
        if conditions.as_of is None or conditions.data_source is None:
            raise StoreError(
                "snapshot: received conditions without as_of/data_source; expected a snapshot made by "
                "technic_ml.market_conditions.snapshot_market"
            )
        as_of_utc = conditions.as_of.astimezone(dt.UTC)
        day_dir = self.root / f"{_PARTITION}{conditions.as_of.astimezone(NY).date().isoformat()}"
        day_dir.mkdir(parents=True, exist_ok=True)
        source_hash = hashlib.sha256(conditions.data_source.encode()).hexdigest()[:10]
        final = day_dir / f"{as_of_utc.strftime(_STAMP)}-{source_hash}.parquet"
        row = conditions.model_dump(mode="json")
        row["as_of"] = conditions.as_of.isoformat()
        write_parquet_atomic(final, pa.Table.from_pylist([row], schema=_SCHEMA))
        return final

    def latest(self) -> MarketConditions | None:
        """The most recent snapshot, or None when none was saved."""
        for path in self._files_newest_first():
            return self._read(path)
        return None

    def as_of(self, when: AsOf) -> MarketConditions | None:
        """The latest snapshot taken at or before ``when`` (naive = New York time)."""
        limit = to_ny(when).astimezone(dt.UTC)
        for path in self._files_newest_first(until=to_ny(when).date()):
            if _stamp(path) <= limit:
                return self._read(path)
        return None

    def frame(self) -> pd.DataFrame:
        """Every snapshot as one table (oldest first), for analysis."""
        if not self.root.exists() or next(self._files_newest_first(), None) is None:
            return pd.DataFrame(columns=_SCHEMA.names)
        dataset = ds.dataset(self.root, format="parquet", partitioning="hive", schema=_SCHEMA)
        return dataset.to_table().to_pandas().sort_values("as_of", ignore_index=True)

    def _files_newest_first(self, until: dt.date | None = None):
        if not self.root.exists():
            return
        days = sorted(
            (p for p in self.root.iterdir() if p.is_dir() and p.name.startswith(_PARTITION)),
            key=lambda p: p.name,
            reverse=True,
        )
        for day in days:
            if until is not None and day.name[len(_PARTITION) :] > until.isoformat():
                continue
            files = sorted(
                (f for f in day.iterdir() if f.suffix == ".parquet" and not f.name.startswith(".")),
                key=lambda f: f.name,
                reverse=True,
            )
            yield from files

    def _read(self, path: Path) -> MarketConditions:
        try:
            row = pq.read_table(path).to_pylist()[0]
        except (OSError, pa.ArrowInvalid, IndexError) as exc:
            raise StoreError(f"snapshot file {path} is unreadable: {exc}") from exc
        return MarketConditions.model_validate_json(json.dumps(row))


def _stamp(path: Path) -> dt.datetime:
    return dt.datetime.strptime(path.name.split("-")[0], _STAMP).replace(tzinfo=dt.UTC)


_SCHEMA = pa.schema(
    [
        ("spy_trend", pa.string()),
        ("spy_volatility", pa.float64()),
        ("spy_momentum", pa.float64()),
        ("spy_return_5d", pa.float64()),
        ("spy_return_20d", pa.float64()),
        ("vix_level", pa.float64()),
        ("time_of_day", pa.int8()),
        ("day_of_week", pa.int8()),
        ("is_market_hours", pa.bool_()),
        ("as_of", pa.string()),
        ("data_source", pa.string()),
        ("degraded", pa.bool_()),
        ("degraded_reasons", pa.list_(pa.string())),
        ("spy_bar_date", pa.string()),
        ("vix_bar_date", pa.string()),
    ]
)
