"""The scan history as a Delta table: the store for a data root on object storage.

:class:`ScanHistoryStore` keeps its guarantees on one machine with ``flock`` and renames, neither
of which exists on S3. :class:`DeltaHistoryStore` keeps the same public API and the same rules
(idempotent by ``scan_id``, first record wins, a different record under a stored id is a conflict
and quarantined by imports) on a Delta Lake table (``deltalake``, no JVM):

* **Writes are appends at an exact version.** A batch is classified against one snapshot of the
  table (version ``v``: which of its ids are stored, reading only the months it touches) and its
  new rows are committed as version ``v + 1`` with delta-rs's commit retries off. A commit is the
  conditional create of the next log entry, so if another worker committed ``v + 1`` first, ours
  fails instead of being rebased, and the batch is classified again against the new snapshot. Two
  workers importing the same log therefore store each scan once (``tests/test_shared_bucket.py``,
  ``tests/history/test_delta.py``).
* **Reads** go through the table's current snapshot, so a reader never sees half a commit.
* **Every commit is a table version**: :meth:`version` says which one a reader saw, and
  ``DeltaHistoryStore(url, version=n)`` reads the history exactly as a model was trained on it.

The query methods (``recent``, ``between``, ``by_config``, ``frame``, ``statistics``, ``count``,
``stored_ids``, ``export_jsonl``, ``import_jsonl``, ``add``) are the parent's, running over a
layout whose "files" are the data files of each month. Retention is not offered here (it raises,
naming the local store that has it). One object holds the snapshot it last read: open one per
thread (the backfill's chunks each open their own). The benchmark against the local store is in
bench/README.md.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import re
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs

from technic_ml.errors import StoreError
from technic_ml.history.jsonl import BOOKKEEPING_COLUMNS, CommitOutcome
from technic_ml.history.schema import DATASET_SCHEMA
from technic_ml.history.store import (
    RANGE_COLUMNS,
    CompactionReport,
    RetentionReport,
    ScanHistoryStore,
    _in_range,
    _Layout,
    _Partitions,
)
from technic_ml.objectstore import ObjectRoot, delta_storage_options, is_url, open_filesystem

log = logging.getLogger(__name__)

MONTH = "scan_month"
"""The partition column. Months, not days: a backfill spreads a few scans over each of thousands of
days, and one object per day made every read thousands of requests."""
COMMIT_ATTEMPTS = 20
"""A commit that loses the race to another writer is retried this many times before giving up."""


def _deltalake():
    try:
        import deltalake
    except ImportError as exc:
        raise StoreError(
            f"scan history on object storage needs deltalake ({exc}); expected"
            " `pip install 'technic-ml[cloud]'`"
        ) from None
    return deltalake


class DeltaHistoryStore(ScanHistoryStore):
    """The scan history as a Delta table at ``url`` (``s3://bucket/prefix/history`` or a local path)."""

    def __init__(
        self,
        url: str | Path,
        *,
        quarantine_dir: Path,
        storage_options: dict[str, str] | None = None,
        version: int | None = None,
    ) -> None:
        text = str(url).rstrip("/")
        self.url = text if is_url(text) else str(Path(text).expanduser().absolute())
        self.root = Path(self.url) if not is_url(text) else Path(text.split("://", 1)[1])
        self.quarantine_dir = Path(quarantine_dir).expanduser().absolute()
        self.archive_dir = None  # retention (the only user) is not offered here
        self.auto_compact_files = None
        self.storage_options = storage_options if storage_options is not None else delta_storage_options(text)
        self.pinned_version = version
        self._table: Any = None
        self._warned: set[str] = set()
        self._index = {}
        self._manifest_ok = True
        self._snapshot: Any = None
        self._counts: dict[str, int] = {}
        self._batch_dates: pa.Array | None = None

    def __repr__(self) -> str:
        pinned = f", version={self.pinned_version}" if self.pinned_version is not None else ""
        return f"DeltaHistoryStore({self.url!r}{pinned})"

    # -- the table -------------------------------------------------------------------------------

    def _open(self):
        """The table at its newest version (or the pinned one); None when nothing was written yet."""
        deltalake = _deltalake()
        if self._table is not None and self.pinned_version is None:
            self._table.update_incremental()
            return self._table
        try:
            table = deltalake.DeltaTable(
                self.url, version=self.pinned_version, storage_options=self.storage_options
            )
        except deltalake.exceptions.TableNotFoundError:
            if self.pinned_version is not None:
                raise StoreError(
                    f"scan history {self.url}: no table, so no version {self.pinned_version}"
                ) from None
            return None
        self._table = table
        return table

    def version(self) -> int | None:
        """The table version a read sees now (None before the first write)."""
        table = self._open()
        return None if table is None else table.version()

    def _layout(self, table) -> _Layout:
        """The snapshot's data files by month (keyed by its first day), from the Delta log (no data
        file is opened)."""
        self._counts = {}
        by_date: dict[dt.date, list[str]] = {}
        if table is not None:
            actions = pa.table(table.get_add_actions(flatten=True))
            for path, n, day in zip(
                actions.column("path").to_pylist(),
                actions.column("num_records").to_pylist(),
                actions.column(f"partition.{MONTH}").to_pylist(),
                strict=True,
            ):
                day = dt.date.fromisoformat(f"{day}-01")
                full = f"{self._base}/{path}"
                by_date.setdefault(day, []).append(full)
                self._counts[full] = n
        partitions = _Partitions(lambda day: by_date[day])
        for day in sorted(by_date):
            partitions.add_directory(day, day)
        return _Layout(partitions=partitions)

    @property
    def _base(self) -> str:
        return self._fs_base[1]

    @property
    def _filesystem(self) -> pafs.FileSystem:
        return self._fs_base[0]

    @functools.cached_property
    def _fs_base(self) -> tuple[pafs.FileSystem, str]:
        if not is_url(self.url):
            return pafs.LocalFileSystem(), self.url
        fs, path = open_filesystem(self.url)
        return pafs.PyFileSystem(pafs.FSSpecHandler(fs)), path

    @contextmanager
    def _reading(self) -> Iterator[_Layout]:
        self._batch_dates = None
        table = self._open()
        yield self._layout(table)

    @contextmanager
    def _writing(self) -> Iterator[_Layout]:
        if self.pinned_version is not None:
            raise StoreError(f"{self!r}: a pinned version is read-only; expected DeltaHistoryStore(url)")
        table = self._open()
        self._snapshot = table
        yield self._layout(table)

    def _dataset(self, files: list) -> ds.Dataset:
        # scan_date is stored in the files here; the month directories are only for pruning.
        return ds.dataset(list(files), schema=DATASET_SCHEMA, format="parquet", filesystem=self._filesystem)

    def _read(self, files: list, columns=None, filter=None, *, raw: bool = False, skipped=None) -> pa.Table:
        if not files:
            table = DATASET_SCHEMA.empty_table()
            return table.select(columns) if columns is not None else table
        read_columns = columns if columns is None or raw else list(dict.fromkeys([*columns, *RANGE_COLUMNS]))
        if filter is not None and read_columns is not None:
            read_columns = list(dict.fromkeys([*read_columns, *_referenced(filter)]))
        # The filter is applied after the scan, not pushed down: delta-rs may write string_view
        # statistics that pyarrow cannot compare with a string literal. ``files`` is already only
        # the months the query needs.
        table = self._dataset(files).to_table(columns=read_columns)
        if filter is not None:
            table = table.filter(filter)
        if not raw:
            table = self._readable_rows(table, files)
        return table.select(columns) if columns is not None else table

    @staticmethod
    def _dates_between(layout: _Layout, lo, hi) -> list[dt.date]:
        """The months (keyed by their first day) that overlap ``[lo, hi)``."""
        first = lo.date().replace(day=1) if lo is not None else dt.date.min
        last = (hi - dt.timedelta(microseconds=1)).date() if hi is not None else dt.date.max
        return [m for m in sorted(layout.partitions) if first <= m <= last]

    def _count_rows(self, files: list) -> int:
        return sum(self._counts.get(f, 0) for f in files)

    def _stored(self, layout: _Layout, ids: pa.Array, *, writing: bool) -> dict[str, tuple[str, bool]]:
        if len(ids) == 0:
            return {}
        # While committing, only the batch's months (a scan_id's month is fixed by its timestamp).
        if self._batch_dates is not None:
            months = {d.replace(day=1) for d in pc.unique(self._batch_dates).to_pylist()}
            files = layout.files([m for m in layout.partitions if m in months])
        else:
            files = layout.files()
        found = self._read(files, columns=["scan_id", "content_hash"], raw=True)
        found = found.filter(pc.is_in(found.column("scan_id"), value_set=ids.cast(pa.string())))
        return {
            scan_id: (digest, False)
            for scan_id, digest in zip(
                found.column("scan_id").to_pylist(), found.column("content_hash").to_pylist(), strict=True
            )
        }

    # -- writing ---------------------------------------------------------------------------------

    def _commit(self, layout: _Layout, table: pa.Table) -> CommitOutcome:
        """Classify ``table`` against the snapshot the layout came from, then append the new rows as
        the very next table version. If another writer committed since (the conditional create of
        that log entry fails, and retries are off so delta-rs does not rebase the append), look
        again and classify anew: the other writer may have stored some of the same ids."""
        ids = table.column("scan_id").combine_chunks()
        self._batch_dates = table.column("scan_date").combine_chunks()
        try:
            return self._append(layout, table, ids)
        finally:
            self._batch_dates = None

    def _append(self, layout: _Layout, table: pa.Table, ids: pa.Array) -> CommitOutcome:
        deltalake = _deltalake()
        exact = deltalake.CommitProperties(max_commit_retries=0)
        for attempt in range(1, COMMIT_ATTEMPTS + 1):
            if self._snapshot is None:
                self._create()
                self._snapshot = self._open()
                layout = self._layout(self._snapshot)
            stored = self._stored(layout, ids, writing=True)
            keep, outcome = self._classify(table, ids, stored)
            if not keep:
                return outcome
            new = table.take(pa.array(keep, pa.int64()))
            new = new.drop_columns([c for c in BOOKKEEPING_COLUMNS if c in new.column_names])
            if _in_range(new) is not None:
                raise StoreError(f"scan history {self.url}: refusing rows outside the supported range")
            new = _with_month(new.select(DATASET_SCHEMA.names).cast(DATASET_SCHEMA))
            try:
                deltalake.write_deltalake(self._snapshot, new, mode="append", commit_properties=exact)
                return outcome
            except deltalake.exceptions.CommitFailedError as exc:
                if attempt == COMMIT_ATTEMPTS:
                    raise StoreError(
                        f"scan history {self.url}: {attempt} commits lost to other writers ({exc});"
                        " expected fewer concurrent importers"
                    ) from exc
                log.info("scan history %s: another writer committed first; retrying (%d)", self.url, attempt)
                time.sleep(0.02 * attempt)
                self._snapshot = self._open()
                layout = self._layout(self._snapshot)
        raise AssertionError("unreachable")

    def _create(self) -> None:
        """Create the empty table; another writer creating it at the same moment is fine."""
        deltalake = _deltalake()
        try:
            deltalake.write_deltalake(
                self.url,
                _with_month(DATASET_SCHEMA.empty_table()),
                mode="error",
                partition_by=[MONTH],
                storage_options=self.storage_options,
                commit_properties=deltalake.CommitProperties(max_commit_retries=0),
            )
        except (deltalake.exceptions.DeltaError, deltalake.exceptions.CommitFailedError) as exc:
            if self._open() is None:
                raise StoreError(f"scan history {self.url}: cannot create the table ({exc})") from exc

    def import_jsonl(self, path: Path, **kwargs: Any):
        """The local store's import; on object storage the quarantine file is also copied to
        ``<root>/history-quarantine/<host>/``, so rejected lines outlive the machine that read them."""
        summary = super().import_jsonl(path, **kwargs)
        if summary.quarantine_file is not None and is_url(self.url):
            target = ObjectRoot(f"{self.url.rsplit('/', 1)[0]}/history-quarantine/{socket.gethostname()}")
            name = Path(summary.quarantine_file).name
            target.write(name, data=Path(summary.quarantine_file).read_bytes())
            log.info("scan history %s: quarantined lines copied to %s", self.url, target.key(name))
        return summary

    def compact(self, *, min_files: int = 2) -> CompactionReport:
        """Rewrite small files of each month into larger ones (Delta's optimize; old versions stay
        readable)."""
        if isinstance(min_files, bool) or not isinstance(min_files, int) or min_files < 2:
            raise ValueError(f"min_files: received {min_files!r}; expected an integer >= 2")
        started = time.perf_counter()
        table = self._open()
        if table is None:
            return CompactionReport(0, 0, 0, 0, 0.0)
        before = len(table.file_uris())
        metrics = table.optimize.compact()
        table.update_incremental()
        return CompactionReport(
            partitions_compacted=int(metrics.get("partitionsOptimized", 0)),
            files_before=before,
            files_after=len(table.file_uris()),
            records=self.count(),
            seconds=time.perf_counter() - started,
        )

    def identity(self) -> str:
        """The table's URL and creation time (created now, empty, if missing): a table deleted and
        made again gets a new identity, so work cached against the old one runs again."""
        table = self._open()
        if table is None:
            self._create()
            table = self._open()
        return f"{self.url}@{table.metadata().created_time}"

    def retention(self, *args: Any, **kwargs: Any) -> RetentionReport:
        raise StoreError(
            f"retention: not offered for the Delta scan history ({self.url}); expected a local data root"
            " (ScanHistoryStore) or Delta's own DELETE and VACUUM run by an operator"
        )


def _with_month(table: pa.Table) -> pa.Table:
    """Add the partition column: the scan's New York month ("2018-07")."""
    month = pc.strftime(table.column("scan_date").cast(pa.timestamp("s")), format="%Y-%m")
    return table.append_column(MONTH, month)


def _referenced(expression: ds.Expression) -> list[str]:
    """Columns an expression mentions (read with the rest, since it is applied after the scan)."""
    text = str(expression)
    return [name for name in DATASET_SCHEMA.names if re.search(rf"\b{name}\b", text)]


__all__ = ["DeltaHistoryStore"]
