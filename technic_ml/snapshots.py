"""Persisted market-condition snapshots: a parquet dataset, one small file per snapshot.

Layout under the snapshot root (``<data_root>/snapshots`` by default)::

    as_of_date=2019-11-29/20191129T183000000000Z-<source hash>.parquet

The file name is the snapshot's as-of instant (UTC) plus a hash of its data source, so names sort
by time, ``as_of(ts)`` can pick its file without opening the others, and saving the same moment
from the same source twice replaces the earlier file instead of duplicating it (a re-snapshot
after a data refresh wins). Files are written under a hidden temporary name and renamed into
place, so a crash never leaves a half-written snapshot visible. :class:`SharedSnapshotStore` keeps
the same layout under an object-storage data root (``TECHNIC_DATA_ROOT=s3://...``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
from pathlib import Path, PurePosixPath

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from technic_ml.contracts import MarketConditions
from technic_ml.errors import StoreError
from technic_ml.fsio import write_parquet_atomic
from technic_ml.market_data.base import AsOf
from technic_ml.nyse import NY, to_ny
from technic_ml.objectstore import ObjectRoot, read

_PARTITION = "as_of_date="
_STAMP = "%Y%m%dT%H%M%S%fZ"


class SnapshotStore:
    """Save and look up ``MarketConditions`` snapshots by time."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def save(self, conditions: MarketConditions) -> Path:
        """Persist a snapshot made by technic-ml (it must carry ``as_of`` and ``data_source``)."""
        self._require_made_here(conditions)
        day, name = self._key(conditions)
        final = self.root / day / name
        final.parent.mkdir(parents=True, exist_ok=True)
        write_parquet_atomic(final, self._row_table(conditions))
        return final

    @staticmethod
    def _require_made_here(conditions: MarketConditions) -> None:
        if conditions.as_of is None or conditions.data_source is None:
            raise StoreError(
                "snapshot: received conditions without as_of/data_source; expected a snapshot made by "
                "technic_ml.market_conditions.snapshot_market"
            )

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
            row = self._table(path).to_pylist()[0]
        except (OSError, pa.ArrowInvalid, IndexError) as exc:
            raise StoreError(f"snapshot file {path} is unreadable: {exc}") from exc
        return MarketConditions.model_validate_json(json.dumps(row))

    def _table(self, path: Path) -> pa.Table:
        return pq.read_table(path)

    @staticmethod
    def _key(conditions: MarketConditions) -> tuple[str, str]:
        """(day partition, file name): the same moment and source always map to the same file."""
        as_of_utc = conditions.as_of.astimezone(dt.UTC)
        source_hash = hashlib.sha256(conditions.data_source.encode()).hexdigest()[:10]
        day = f"{_PARTITION}{conditions.as_of.astimezone(NY).date().isoformat()}"
        return day, f"{as_of_utc.strftime(_STAMP)}-{source_hash}.parquet"

    @staticmethod
    def _row_table(conditions: MarketConditions) -> pa.Table:
        row = conditions.model_dump(mode="json")
        row["as_of"] = conditions.as_of.isoformat()
        return pa.Table.from_pylist([row], schema=_SCHEMA)


class SharedSnapshotStore(SnapshotStore):
    """The same snapshots under an object-storage root (``technic_ml.objectstore``).

    Each snapshot is one whole-object put under the same key as on disk, so a reader sees a
    snapshot whole or not at all, and two workers snapshotting the same moment write the same bytes.
    """

    def __init__(self, root: ObjectRoot):
        self.store = root
        self.root = PurePosixPath(root.path)

    def save(self, conditions: MarketConditions) -> PurePosixPath:
        self._require_made_here(conditions)
        day, name = self._key(conditions)
        buffer = io.BytesIO()
        pq.write_table(self._row_table(conditions), buffer)
        self.store.write(day, name, data=buffer.getvalue())
        return PurePosixPath(self.store.key(day, name))

    def frame(self) -> pd.DataFrame:
        tables = [self._table(path) for path in self._files_newest_first()]
        if not tables:
            return pd.DataFrame(columns=_SCHEMA.names)
        return pa.concat_tables(tables).to_pandas().sort_values("as_of", ignore_index=True)

    def _files_newest_first(self, until: dt.date | None = None):
        days = [d for d in self.store.names() if d.startswith(_PARTITION)]
        for day in sorted(days, reverse=True):
            if until is not None and day[len(_PARTITION) :] > until.isoformat():
                continue
            names = [n for n in self.store.names(day) if n.endswith(".parquet") and not n.startswith(".")]
            for name in sorted(names, reverse=True):
                yield PurePosixPath(self.store.key(day, name))

    def _table(self, path) -> pa.Table:
        data = read(self.store.fs, str(path))
        if data is None:
            raise StoreError(f"snapshot {path}: vanished while being read")
        return pq.read_table(io.BytesIO(data))


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
