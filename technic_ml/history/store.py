"""The scan history store: every scan that happened, as an append-only parquet dataset.

This is where technic-ml keeps the scan history that the predictors train on and the optimizer
summarizes. Records come in from the scanner's JSONL log (:meth:`ScanHistoryStore.import_jsonl`,
see :mod:`technic_ml.history.jsonl`) or directly from code (:meth:`~ScanHistoryStore.add`); the
row layout is :mod:`technic_ml.history.schema`.

On disk (``root`` defaults to ``<data_root>/history``)::

    root/_manifest.json                  format name + schema version; anything else fails closed
    root/.lock                           fcntl.flock: exclusive for writers, shared for readers
    root/scan_date=2025-09-17/part-*.parquet   hive partition = New York date of the record timestamp
    root/_retired/retired-*.parquet      (scan_id, content_hash) of records removed by retention
    root/_compaction.json                only while a compaction is replacing files (see below)
    <root>-quarantine/                   rejected import lines, one JSONL file per import run
    <root>-archive/                      same layout, records moved out by retention(mode="archive")

``pyarrow.dataset.dataset(root, partitioning="hive")`` reads it as is: hidden (``.``) and ``_`` names
are skipped by pyarrow's discovery, which is why temp files, the lock and the bookkeeping use them.

Guarantees
----------
* **Idempotent by scan_id.** A record whose scan_id is stored with the same ``content_hash`` is a
  duplicate and changes nothing; with a different hash it is a *conflict*: reported (and quarantined
  by imports), never silently dropped or overwritten. The first record stored for a scan_id wins.
  Records removed by retention leave a tombstone, so re-importing an old log does not bring them back
  (they are counted as ``retired``).
* **Crash safety.** Every file is written under a hidden temp name, flushed and fsynced, then renamed
  into place (and the directory fsynced): a killed writer leaves whole files or nothing. Compaction
  writes the merged file under a temp name, then a journal naming the files it replaces, then renames
  the merged file in and deletes the old ones. Readers ignore files named in a journal whose merged
  file exists; the next writer finishes (or rolls back) the journal and deletes stray temp files.
* **Concurrency.** Writers hold an exclusive ``flock`` from reading the existing ids to renaming their
  files, so concurrent importers never store a scan_id twice; readers hold a shared lock. Imports parse
  outside the lock and take it once per batch.
* **Supported range.** Timestamps from 1900-01-01T00:00 to 2199-12-31T23:59:59.999999 New York time,
  dates from 1900-01-01 to 2199-12-31 (:data:`technic_ml.contracts.EARLIEST` / ``LATEST``): the
  contract refuses other values, so imports quarantine them and :meth:`ScanHistoryStore.add` raises,
  and a write is refused if an out-of-range row reaches it anyway.
* **Readers survive what they cannot read.** A row outside the supported range (written by an older
  version or by hand), a row the contract rejects, a data file that is not readable parquet, or an
  unexpected file or directory is skipped with a warning naming the file, and the rest of the store
  reads as usual. A writer that meets an unreadable data file moves it to ``root/_unreadable/``
  (with the reason in ``_unreadable/reasons.jsonl``), so it stops costing every later write.
* **Auto-compaction.** A write that leaves a partition with more than ``auto_compact_files`` files
  (default 8) compacts that partition under the same lock. Hourly imports therefore keep at most 8
  files per day, so reads stay fast without a scheduled job; :meth:`compact` merges everything.
"""

from __future__ import annotations

import datetime as dt
import errno
import fcntl
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from technic_ml.contracts import EARLIEST, LATEST, SUPPORTED_RANGE, ScanRecord
from technic_ml.errors import ContractError, StoreError
from technic_ml.fsio import fsync_dir, write_bytes_atomic
from technic_ml.history.jsonl import (
    BATCH_RECORDS,
    BOOKKEEPING_COLUMNS,
    LINE_COLUMN,
    CommitOutcome,
    ImportSummary,
    import_file,
    write_jsonl,
)
from technic_ml.history.schema import (
    CONFIG_FIELDS,
    DATASET_SCHEMA,
    FILE_SCHEMA,
    PARTITION_FIELD,
    SCHEMA_VERSION,
    SET_FIELDS,
    record_row,
    rows_to_table,
    set_key,
    set_label,
    table_to_records,
)
from technic_ml.nyse import NY

AUTO_COMPACT_FILES = 8
FORMAT_NAME = "technic-ml scan history"
MANIFEST = "_manifest.json"
LOCK = ".lock"
JOURNAL = "_compaction.json"
RETIRED_DIR = "_retired"
UNREADABLE_DIR = "_unreadable"
PARTITION_PREFIX = "scan_date="
_HIVE = ds.partitioning(pa.schema([PARTITION_FIELD]), flavor="hive")
_TS = pa.timestamp("us", tz="UTC")
log = logging.getLogger(__name__)

# A row is readable when these columns are null or inside the contract's supported range. The
# contract refuses anything else before it is written; rows written otherwise (an older version, a
# hand edit) would make pyarrow and pandas raise OverflowError for the whole read, so readers skip them.
_RANGE_CHECKS = (
    ("timestamp", pa.scalar(EARLIEST, _TS), pa.scalar(LATEST, _TS)),
    ("market_as_of", pa.scalar(EARLIEST, _TS), pa.scalar(LATEST, _TS)),
    *(
        (name, pa.scalar(EARLIEST.date(), pa.date32()), pa.scalar(LATEST.date(), pa.date32()))
        for name in ("spy_bar_date", "vix_bar_date", "provenance_bar_date")
    ),
)
RANGE_COLUMNS = tuple(name for name, _, _ in _RANGE_CHECKS)
RETIRED_SCHEMA = pa.schema(
    [
        pa.field("scan_id", pa.string(), nullable=False),
        pa.field("content_hash", pa.string(), nullable=False),
        pa.field("scan_date", pa.date32(), nullable=False),
        pa.field("retired_at", _TS, nullable=False),
        pa.field("mode", pa.string(), nullable=False),
    ]
)
# Columns `statistics(by=...)` accepts besides the ScanConfig fields.
STAT_COLUMNS = (
    "spy_trend",
    "time_of_day",
    "day_of_week",
    "is_market_hours",
    "provenance_source",
    "provenance_data_source",
    "provenance_scanner_version",
    "scan_date",
)
_LIST_COLUMNS = ("sectors", "industries", "market_degraded_reasons")
# Dictionary-encode only the low-cardinality text columns: it is most of the fixed cost of a file.
_PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "use_dictionary": [
        "spy_trend",
        "config_extra",
        "sectors_key",
        "industries_key",
        "provenance_source",
        "mode",
    ],
}


@dataclass(frozen=True)
class AddSummary:
    """What :meth:`ScanHistoryStore.add` did. ``conflicts`` lists scan_ids stored with other content."""

    added: int
    duplicates: int
    conflicts: list[str] = field(default_factory=list)
    retired: int = 0

    def __str__(self) -> str:
        text = f"added {self.added}, duplicates {self.duplicates}, conflicts {len(self.conflicts)}"
        if self.retired:
            text += f", retired {self.retired}"
        if self.conflicts:
            shown = ", ".join(self.conflicts[:10]) + (" ..." if len(self.conflicts) > 10 else "")
            text += f" (scan_id already stored with different content: {shown})"
        return text


@dataclass(frozen=True)
class RetentionReport:
    """What :meth:`ScanHistoryStore.retention` did (or, with ``dry_run``, would do)."""

    cutoff: dt.date
    mode: Literal["archive", "drop"]
    dry_run: bool
    partitions: list[dt.date]
    records: int
    archive_dir: Path | None

    def __str__(self) -> str:
        verb = {"archive": "archive", "drop": "drop"}[self.mode]
        done = f"would {verb}" if self.dry_run else f"{verb}d" if verb.endswith("e") else f"{verb}ped"
        span = f" ({self.partitions[0]} .. {self.partitions[-1]})" if self.partitions else ""
        text = (
            f"retention: scan dates before {self.cutoff}: {done} {self.records} records in"
            f" {len(self.partitions)} partitions{span}"
        )
        if self.cutoff <= EARLIEST.date():
            text += " (the cutoff is the start of the supported range: no stored scan is older)"
        if self.mode == "archive":
            text += f" -> {self.archive_dir}"
        return text


@dataclass(frozen=True)
class CompactionReport:
    """What :meth:`ScanHistoryStore.compact` did."""

    partitions_compacted: int
    files_before: int
    files_after: int
    records: int
    seconds: float

    def __str__(self) -> str:
        return (
            f"compaction: {self.partitions_compacted} partitions rewritten ({self.records} records),"
            f" data files {self.files_before} -> {self.files_after}, {self.seconds:.2f} s"
        )


class _Partitions:
    """scan date -> data files of that partition. A directory is listed on first access, so a reader
    that needs the newest day or two (``recent``) does not list the other 364."""

    def __init__(self, lister: Callable[[Path], list[Path]]) -> None:
        self._lister = lister
        self._dirs: dict[dt.date, Path] = {}
        self._files: dict[dt.date, list[Path]] = {}

    def add_directory(self, day: dt.date, directory: Path) -> None:
        self._dirs[day] = directory

    def directory(self, day: dt.date) -> Path:
        return self._dirs[day]

    def __iter__(self) -> Iterator[dt.date]:
        return iter(sorted(self._dirs))

    def __len__(self) -> int:
        return len(self._dirs)

    def __contains__(self, day: object) -> bool:
        return day in self._dirs

    def __getitem__(self, day: dt.date) -> list[Path]:
        files = self._files.get(day)
        if files is None:
            files = self._files[day] = self._lister(self._dirs[day])
        return files

    def __setitem__(self, day: dt.date, files: list[Path]) -> None:
        if day not in self._dirs:
            raise KeyError(f"scan history: no partition directory registered for {day}")
        self._files[day] = files

    def pop(self, day: dt.date) -> list[Path]:
        files = self[day]
        del self._dirs[day], self._files[day]
        return files


@dataclass
class _Layout:
    """The store's files as seen under a lock (journal already applied)."""

    partitions: _Partitions
    retired: list[Path] = field(default_factory=list)
    temp_files: list[Path] = field(default_factory=list)

    def files(self, dates: Iterable[dt.date] | None = None) -> list[Path]:
        keys = list(self.partitions) if dates is None else dates
        return [f for d in keys for f in self.partitions[d]]


def _new_name(prefix: str) -> str:
    return f"{prefix}-{time.time_ns():016x}-{uuid.uuid4().hex[:12]}.parquet"


def _write_temp(directory: Path, table: pa.Table, prefix: str = "part") -> tuple[Path, Path]:
    """Write ``table`` to a hidden temp file in ``directory`` (fsynced); return (temp, final) paths."""
    name = _new_name(prefix)
    tmp, final = directory / f".{name}.tmp", directory / name
    try:
        with tmp.open("xb") as f:
            pq.write_table(table, f, **_PARQUET_OPTIONS)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp, final


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    write_bytes_atomic(path, json.dumps(data, indent=2).encode())


def _versions() -> dict[str, str]:
    try:
        technic = metadata.version("technic-ml")
    except metadata.PackageNotFoundError:
        technic = "not installed (source tree)"
    return {"technic_ml": technic, "pyarrow": pa.__version__}


def _as_bound(value: Any, name: str) -> dt.datetime | None:
    """A query bound as an aware New York datetime. Naive = New York time; a date = its midnight."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{name}: received {value!r}; expected an ISO date or datetime") from None
    if isinstance(value, pd.Timestamp):
        if value is pd.NaT:
            raise ValueError(f"{name}: received NaT; expected a date or datetime")
        value = value.to_pydatetime()
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=NY) if value.tzinfo is None else value.astimezone(NY)
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time(), tzinfo=NY)
    raise TypeError(
        f"{name}: received {value!r} ({type(value).__name__}); expected a datetime, date or ISO string"
    )


def _in_range(table: pa.Table) -> pa.ChunkedArray | None:
    """Row mask of the rows whose range-checked columns are null or inside the supported range;
    None when every row is (the common case, so callers skip the filter)."""
    mask = None
    for name, lo, hi in _RANGE_CHECKS:
        if name not in table.column_names:
            continue
        column = table.column(name)
        if column.null_count == len(column):
            continue
        inside = pc.and_(pc.greater_equal(column, lo), pc.less_equal(column, hi))
        ok = pc.or_kleene(pc.is_null(column), inside)
        mask = ok if mask is None else pc.and_(mask, ok)
    if mask is None or pc.all(mask).as_py():
        return None
    return pc.fill_null(mask, False)


def _sorted(table: pa.Table, descending: bool = False) -> pa.Table:
    order = "descending" if descending else "ascending"
    return table.sort_by([("timestamp", order), ("scan_id", order)])


class ScanHistoryStore:
    """Append-only, idempotent store of :class:`~technic_ml.contracts.ScanRecord` (see module doc)."""

    def __init__(
        self,
        root: Path,
        *,
        quarantine_dir: Path | None = None,
        archive_dir: Path | None = None,
        auto_compact_files: int | None = AUTO_COMPACT_FILES,
    ) -> None:
        self.root = Path(root).expanduser().absolute()
        self.quarantine_dir = (
            Path(quarantine_dir).expanduser().absolute()
            if quarantine_dir is not None
            else self.root.parent / f"{self.root.name}-quarantine"
        )
        self.archive_dir = (
            Path(archive_dir).expanduser().absolute()
            if archive_dir is not None
            else self.root.parent / f"{self.root.name}-archive"
        )
        if auto_compact_files is not None and (
            isinstance(auto_compact_files, bool)
            or not isinstance(auto_compact_files, int)
            or auto_compact_files < 2
        ):
            raise ValueError(
                f"auto_compact_files: received {auto_compact_files!r}; expected an integer >= 2 or None (off)"
            )
        self.auto_compact_files = auto_compact_files
        # Data files are immutable (new names on every write), so their ids can be cached by path.
        self._index: dict[Path, tuple[pa.Array, pa.Array]] = {}
        self._warned: set[str] = set()
        self._manifest_ok = False
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(f"scan history root: {self.root} is a file; expected a directory")

    def __repr__(self) -> str:
        return f"ScanHistoryStore({str(self.root)!r})"

    # -- writing ---------------------------------------------------------------------------------

    def add(self, records: ScanRecord | Iterable[ScanRecord]) -> AddSummary:
        """Store records; duplicates change nothing, conflicts are reported (first record wins)."""
        if isinstance(records, ScanRecord):
            records = [records]
        rows = []
        for i, record in enumerate(records):
            if not isinstance(record, ScanRecord):
                raise TypeError(f"records[{i}]: received {type(record).__name__}; expected a ScanRecord")
            try:
                rows.append(record_row(record))
            except ContractError as exc:
                raise ContractError(f"records[{i}] (scan_id {record.scan_id!r}): {exc}") from None
        if not rows:
            return AddSummary(added=0, duplicates=0)
        table = self._rows_to_table(rows)
        with self._writing() as layout:
            outcome = self._commit(layout, table)
        ids = table.column("scan_id")
        return AddSummary(
            added=outcome.added,
            duplicates=outcome.duplicates,
            conflicts=[ids[i].as_py() for i, _ in outcome.conflicts],
            retired=outcome.retired,
        )

    @staticmethod
    def _rows_to_table(rows: list[tuple]) -> pa.Table:
        try:
            return rows_to_table(rows)
        except (pa.ArrowException, OverflowError, UnicodeEncodeError) as exc:
            for row in rows:
                try:
                    rows_to_table([row])
                except (pa.ArrowException, OverflowError, UnicodeEncodeError) as row_exc:
                    raise ContractError(
                        f"record scan_id {row[0]!r}: cannot be stored ({row_exc}); expected values that fit"
                        " the scan history columns (UTF-8 strings, int64 integers)"
                    ) from row_exc
            raise StoreError(f"scan history: cannot build the batch table ({exc})") from exc

    def import_jsonl(
        self,
        path: Path,
        *,
        source: Literal["scanner_log", "backfill"] = "scanner_log",
        data_source: str | None = None,
        progress: Callable[[int, int], None] | None = None,
        workers: int | None = None,
        batch_records: int = BATCH_RECORDS,
    ) -> ImportSummary:
        """Import a JSONL file of scan records (the original scanner format, or our exports).

        Every line is validated; bad lines and conflicts go to a quarantine file and the rest are
        kept. Lines without ``provenance`` get ``Provenance(source=source, data_source=data_source)``.
        Re-running the same import adds nothing. ``progress(bytes_done, bytes_total)`` is called after
        each committed batch. ``workers``: parser processes (default: 1 for files under 32 MB, else one
        per CPU). A missing file raises :class:`StoreError` naming the path.
        """

        def commit(table: pa.Table) -> CommitOutcome:
            with self._writing() as layout:
                return self._commit(layout, table)

        return import_file(
            Path(path),
            commit=commit,
            quarantine_dir=self.quarantine_dir,
            source=source,
            data_source=data_source,
            progress=progress,
            workers=workers,
            batch_records=batch_records,
        )

    def export_jsonl(
        self, path: Path, *, include_provenance: bool = False, start: Any = None, end: Any = None
    ) -> int:
        """Write records (optionally only ``start <= timestamp < end``) in the original line format,
        ordered by timestamp, atomically. Returns the number of records written."""
        lo, hi = self._bounds(start, end)
        with self._reading() as layout:
            dates = self._dates_between(layout, lo, hi)

            def batches() -> Iterator[list[ScanRecord]]:
                for d in dates:
                    table = self._read(layout.partitions[d], filter=self._time_filter(lo, hi))
                    yield table_to_records(_sorted(table), on_invalid=self._skip_row)

            return write_jsonl(Path(path), batches(), include_provenance=include_provenance)

    def retention(
        self,
        older_than_days: int,
        *,
        mode: Literal["archive", "drop"],
        now: dt.datetime | None = None,
        dry_run: bool = False,
    ) -> RetentionReport:
        """Archive or drop whole scan-date partitions older than ``now - older_than_days`` days.

        Retention works on New York calendar days: ``cutoff = now.date() - older_than_days`` (``now`` in
        New York time; naive = New York) and the partitions whose scan date is strictly before
        ``cutoff`` go. The partition *on* the cutoff date stays, so nothing younger than
        ``older_than_days`` x 24 h is removed and up to one extra day is kept. E.g. now = 2025-12-16
        10:00, 30 days: cutoff 2025-11-16; 2025-11-15 and earlier go, 2025-11-16 stays.

        A cutoff before the start of the supported range (1900-01-01; e.g. ``older_than_days=10**6``)
        is that start: no stored scan is older, so nothing is removed, and the report says so.

        ``mode="archive"`` moves the partition files to ``archive_dir`` (same layout, readable with
        ``ScanHistoryStore(archive_dir)``; must be on the same filesystem); ``mode="drop"`` deletes
        them. Either way the removed (scan_id, content_hash) pairs are kept as tombstones so later
        imports do not re-add them. ``dry_run`` reports without changing anything.
        """
        if isinstance(older_than_days, bool) or not isinstance(older_than_days, int) or older_than_days < 0:
            raise ValueError(f"older_than_days: received {older_than_days!r}; expected an integer >= 0")
        if mode not in ("archive", "drop"):
            raise ValueError(f"mode: received {mode!r}; expected 'archive' or 'drop'")
        if now is not None and not isinstance(now, dt.datetime):
            raise TypeError(f"now: received {now!r} ({type(now).__name__}); expected a datetime or None")
        now_ny = dt.datetime.now(NY) if now is None else _as_bound(now, "now")
        assert now_ny is not None
        try:
            cutoff = max(now_ny.date() - dt.timedelta(days=older_than_days), EARLIEST.date())
        except OverflowError:
            # Further back than Python's dates go: further back than the supported range too.
            cutoff = EARLIEST.date()
        with self._reading() if dry_run else self._writing() as layout:
            dates = sorted(d for d in layout.partitions if d < cutoff)
            files = layout.files(dates)
            records = self._count_rows(files)
            if not dry_run and dates:
                ids = self._read(files, columns=["scan_id", "content_hash", "scan_date"], raw=True)
                self._write_retired(layout, ids, mode)
                if mode == "archive":
                    self._move_to_archive(layout, dates)
                else:
                    self._drop_partitions(layout, dates)
        return RetentionReport(
            cutoff=cutoff,
            mode=mode,
            dry_run=dry_run,
            partitions=dates,
            records=records,
            archive_dir=self.archive_dir if mode == "archive" else None,
        )

    def compact(self, *, min_files: int = 2) -> CompactionReport:
        """Merge each partition that has at least ``min_files`` files into one, sorted by timestamp."""
        if isinstance(min_files, bool) or not isinstance(min_files, int) or min_files < 2:
            raise ValueError(f"min_files: received {min_files!r}; expected an integer >= 2")
        started = time.perf_counter()
        compacted = before = after = records = 0
        with self._writing() as layout:
            for d in sorted(layout.partitions):
                files = layout.partitions[d]
                before += len(files)
                if len(files) >= min_files:
                    records += self._compact_partition(layout, d)
                    compacted += 1
                after += len(layout.partitions[d])
            if len(layout.retired) >= min_files:
                self._compact_retired(layout)
        return CompactionReport(
            partitions_compacted=compacted,
            files_before=before,
            files_after=after,
            records=records,
            seconds=time.perf_counter() - started,
        )

    # -- reading ---------------------------------------------------------------------------------

    def stored_ids(self, scan_ids: Iterable[str]) -> set[str]:
        """The subset of ``scan_ids`` already in the store (or retired by retention).

        A resumable job (the backfill) asks this before doing work, so a re-run skips what landed.
        """
        ids = pa.array(sorted(set(scan_ids)), pa.string())
        if len(ids) == 0:
            return set()
        with self._reading() as layout:
            return set(self._stored(layout, ids, writing=False))

    def identity(self) -> str:
        """This store's identity: its root and the moment it was created (made now if missing).

        A store wiped and created again gets a new identity, so work cached against the old one
        (a backfill chunk, ``tasks/backfill.py``) runs again instead of trusting the cache.
        """
        with self._writing():
            pass
        manifest = json.loads((self.root / MANIFEST).read_text())
        return f"{self.root}@{manifest.get('created_at')}"

    def count(self) -> int:
        """Number of stored records (from parquet footers; no data is read)."""
        with self._reading() as layout:
            return self._count_rows(layout.files())

    def recent(self, n: int = 100) -> list[ScanRecord]:
        """The ``n`` newest records, newest first. Reads only the newest partitions it needs."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"n: received {n!r}; expected an integer >= 0")
        if n == 0:
            return []
        tables = []
        total = 0
        with self._reading() as layout:
            for d in sorted(layout.partitions, reverse=True):
                table = self._read(layout.partitions[d])
                tables.append(table)
                total += table.num_rows
                if total >= n:
                    break
        if not tables:
            return []
        return table_to_records(
            _sorted(pa.concat_tables(tables), descending=True).slice(0, n), on_invalid=self._skip_row
        )

    def between(self, start: Any, end: Any) -> list[ScanRecord]:
        """Records with ``start <= timestamp < end``, oldest first.

        Bounds are datetimes (naive = New York time), dates (midnight New York at the start of that
        day, so ``between(date(2025, 9, 17), date(2025, 9, 18))`` is all of Sep 17) or ISO strings;
        ``None`` leaves that side open.
        """
        lo, hi = self._bounds(start, end)
        with self._reading() as layout:
            files = layout.files(self._dates_between(layout, lo, hi))
            table = self._read(files, filter=self._time_filter(lo, hi))
        return table_to_records(_sorted(table), on_invalid=self._skip_row)

    def by_config(self, **filters: Any) -> list[ScanRecord]:
        """Records whose config matches every filter, oldest first.

        Keys are :class:`ScanConfig` field names; scalars match by equality. ``sectors``/``industries``
        match as a set (order and repeats ignored) and ``None`` or ``[]`` means "all". An unknown key
        raises ValueError listing the valid ones.
        """
        expression = self._config_filter(filters)
        with self._reading() as layout:
            table = self._read(layout.files(), filter=expression)
        return table_to_records(_sorted(table), on_invalid=self._skip_row)

    def frame(self) -> pd.DataFrame:
        """One row per record, oldest first, with the flat stored columns plus ``scan_date``.

        ``timestamp``/``market_as_of`` are tz-aware New York times; ``sectors``, ``industries`` and
        ``market_degraded_reasons`` hold Python lists (or None); ``*_extra`` are JSON object texts.
        """
        with self._reading() as layout:
            table = _sorted(self._read(layout.files()))
        df = table.to_pandas()
        for name in _LIST_COLUMNS:
            df[name] = pd.Series(table.column(name).to_pylist(), index=df.index, dtype=object)
        for name in ("timestamp", "market_as_of"):
            df[name] = df[name].dt.tz_convert(NY)
        order = ["scan_id", "timestamp", "scan_date"]
        return df[order + [c for c in df.columns if c not in order]]

    def statistics(self, by: Sequence[str] = ()) -> pd.DataFrame:
        """Scan counts and outcome/timing summaries, overall or per group.

        Columns: the ``by`` fields, then ``count``, ``mean_result_count``, ``median_result_count``,
        ``mean_total_seconds``, ``median_total_seconds`` and ``empty_scan_rate`` (share of scans that
        returned no symbol). ``by`` takes ScanConfig field names (``sectors``/``industries`` group by
        the set, labelled as sorted comma-joined names or ``"all"``) and the market/provenance columns
        in :data:`STAT_COLUMNS`.
        """
        if isinstance(by, str) or not isinstance(by, Sequence):
            raise ValueError(
                f"by: received {by!r}; expected a sequence of field names such as ['max_symbols']"
            )
        valid = (*CONFIG_FIELDS, *STAT_COLUMNS)
        for name in by:
            if name not in valid:
                raise ValueError(f"by: unknown field {name!r}; expected one of {list(valid)}")
        if len(set(by)) != len(by):
            raise ValueError(f"by: received {list(by)!r}; expected each field once")
        read_cols = ["result_count", "total_seconds"]
        read_cols += [f"{n}_key" if n in SET_FIELDS else n for n in by]
        with self._reading() as layout:
            table = self._read(layout.files(), columns=read_cols)
        # Sets group by their exact key (unambiguous) and are labelled afterwards.
        df = table.to_pandas().rename(columns={f"{n}_key": n for n in SET_FIELDS})
        df["empty"] = df["result_count"].eq(0).astype(float)
        aggregations = {
            "count": ("result_count", "size"),
            "mean_result_count": ("result_count", "mean"),
            "median_result_count": ("result_count", "median"),
            "mean_total_seconds": ("total_seconds", "mean"),
            "median_total_seconds": ("total_seconds", "median"),
            "empty_scan_rate": ("empty", "mean"),
        }
        if not by:
            df["_all"] = 0
            out = df.groupby("_all").agg(**aggregations).reset_index(drop=True)
            if out.empty:
                out = pd.DataFrame([{"count": 0}], columns=list(aggregations)).astype({"count": int})
            return out
        out = df.groupby(list(by), dropna=False, sort=True).agg(**aggregations).reset_index()
        for name in by:
            if name in SET_FIELDS:
                out[name] = [set_label(None if pd.isna(k) else k) for k in out[name]]
        return out.sort_values(list(by), kind="stable", ignore_index=True)

    # -- internals: queries ----------------------------------------------------------------------

    @staticmethod
    def _bounds(start: Any, end: Any) -> tuple[dt.datetime | None, dt.datetime | None]:
        lo, hi = _as_bound(start, "start"), _as_bound(end, "end")
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(
                f"start: received {lo.isoformat()}; expected a time at or before end ({hi.isoformat()})"
            )
        return lo, hi

    @staticmethod
    def _dates_between(layout: _Layout, lo: dt.datetime | None, hi: dt.datetime | None) -> list[dt.date]:
        first = lo.date() if lo is not None else dt.date.min
        last = (hi - dt.timedelta(microseconds=1)).date() if hi is not None else dt.date.max
        return [d for d in sorted(layout.partitions) if first <= d <= last]

    @staticmethod
    def _time_filter(lo: dt.datetime | None, hi: dt.datetime | None) -> ds.Expression | None:
        expression = None
        if lo is not None:
            expression = ds.field("timestamp") >= pa.scalar(lo, _TS)
        if hi is not None:
            upper = ds.field("timestamp") < pa.scalar(hi, _TS)
            expression = upper if expression is None else expression & upper
        return expression

    @staticmethod
    def _config_filter(filters: dict[str, Any]) -> ds.Expression | None:
        expression = None
        for key, value in filters.items():
            if key not in CONFIG_FIELDS:
                raise ValueError(f"by_config: unknown key {key!r}; expected one of {list(CONFIG_FIELDS)}")
            if key in SET_FIELDS:
                if value is not None and (
                    isinstance(value, str)
                    or not isinstance(value, list | tuple | set | frozenset)
                    or not all(isinstance(v, str) for v in value)
                ):
                    raise ValueError(
                        f"by_config: {key} received {value!r}; expected a list of names, or None/[] for all"
                    )
                k = set_key(sorted(value) if value else None)
                term = ds.field(f"{key}_key").is_null() if k is None else ds.field(f"{key}_key") == k
            else:
                arrow_type = FILE_SCHEMA.field(key).type
                if pa.types.is_integer(arrow_type):
                    ok = isinstance(value, int) and not isinstance(value, bool)
                    expected = "an integer"
                else:
                    ok = isinstance(value, int | float) and not isinstance(value, bool)
                    expected = "a number"
                if not ok:
                    raise ValueError(f"by_config: {key} received {value!r}; expected {expected}")
                term = ds.field(key) == pa.scalar(value, arrow_type)
            expression = term if expression is None else expression & term
        return expression

    # -- internals: layout, locks, manifest -----------------------------------------------------

    def _read_journal(self) -> dict[str, Any] | None:
        path = self.root / JOURNAL
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            journal = json.loads(text)
            directory = journal["directory"]
            new_file = journal["new_file"]
            replaces = journal["replaces"]
            valid = (
                isinstance(directory, str)
                and (directory == RETIRED_DIR or directory.startswith(PARTITION_PREFIX))
                and "/" not in directory
                and isinstance(new_file, str)
                and "/" not in new_file
                and isinstance(replaces, list)
                and all(isinstance(r, str) and "/" not in r for r in replaces)
            )
        except (ValueError, KeyError, TypeError):
            valid = False
        if not valid:
            raise StoreError(
                f"compaction journal {path}: unreadable content {text[:200]!r}; expected"
                ' {"directory", "new_file", "replaces"} as written by ScanHistoryStore.compact'
            )
        return journal

    def _scan_layout(self, *, full: bool = False) -> _Layout:
        """List the store (journal applied). Partition directories are listed lazily unless ``full``."""
        temp_files: list[Path] = []
        excluded: set[Path] = set()
        journal = self._read_journal() if self.root.is_dir() else None
        if journal is not None:
            directory = self.root / journal["directory"]
            if (directory / journal["new_file"]).exists():
                excluded = {directory / name for name in journal["replaces"]}

        def list_part_files(directory: Path) -> list[Path]:
            return self._data_files(directory, "part-", excluded, temp_files)

        layout = _Layout(partitions=_Partitions(list_part_files), temp_files=temp_files)
        if not self.root.is_dir():
            return layout
        for entry in os.scandir(self.root):
            name = entry.name
            if name.startswith(PARTITION_PREFIX) and entry.is_dir():
                try:
                    day = dt.date.fromisoformat(name[len(PARTITION_PREFIX) :])
                except ValueError:
                    self._warn(
                        f"scan history {self.root}: directory {name!r} skipped; expected partitions named"
                        " scan_date=YYYY-MM-DD"
                    )
                    continue
                layout.partitions.add_directory(day, Path(entry.path))
            elif name == RETIRED_DIR and entry.is_dir():
                layout.retired = self._data_files(Path(entry.path), "retired-", excluded, temp_files)
            elif name.startswith(".") and name.endswith(".tmp"):
                temp_files.append(Path(entry.path))
            elif name in (MANIFEST, JOURNAL, UNREADABLE_DIR) or name.startswith("."):
                continue
            else:
                self._warn(
                    f"scan history {self.root}: unexpected entry {name!r} skipped; expected only"
                    f" scan_date=YYYY-MM-DD partitions, {RETIRED_DIR}/, {UNREADABLE_DIR}/ and {MANIFEST}"
                )
        if full:
            for day in list(layout.partitions):
                layout.partitions[day]
        return layout

    def _data_files(
        self, directory: Path, prefix: str, excluded: set[Path], temp_files: list[Path]
    ) -> list[Path]:
        files = []
        for entry in os.scandir(directory):
            name = entry.name
            path = Path(entry.path)
            if name.startswith(prefix) and name.endswith(".parquet"):
                if path not in excluded:
                    files.append(path)
            elif name.startswith(".") and name.endswith(".tmp"):
                temp_files.append(path)
            elif not name.startswith("."):
                self._warn(
                    f"scan history {directory}: unexpected file {name!r} skipped;"
                    f" expected {prefix}*.parquet data files"
                )
        return sorted(files)

    def _check_manifest(self) -> bool:
        """True when the store exists (valid manifest), False when root is missing or empty."""
        if self._manifest_ok:
            return True
        path = self.root / MANIFEST
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            if not self.root.exists():
                return False
            leftovers = [p.name for p in self.root.iterdir() if not p.name.startswith(".")]
            if leftovers:
                raise StoreError(
                    f"scan history root {self.root}: has {sorted(leftovers)[:5]} but no {MANIFEST};"
                    " expected an empty or missing directory, or a store created by ScanHistoryStore"
                ) from None
            return False
        try:
            manifest = json.loads(text)
            fmt, version = manifest.get("format"), manifest.get("schema_version")
        except (ValueError, AttributeError):
            fmt = version = None
        if fmt != FORMAT_NAME or version != SCHEMA_VERSION:
            raise StoreError(
                f"scan history manifest {path}: format {fmt!r}, schema_version {version!r}; expected"
                f" {FORMAT_NAME!r}, schema_version {SCHEMA_VERSION}"
                " (this technic-ml cannot read other versions)"
            )
        self._manifest_ok = True
        return True

    @contextmanager
    def _reading(self) -> Iterator[_Layout]:
        if not self._check_manifest():
            yield self._scan_layout()
            return
        try:
            fd = os.open(self.root / LOCK, os.O_RDONLY)
        except FileNotFoundError:
            fd = os.open(self.root / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            yield self._scan_layout()
        finally:
            os.close(fd)

    @contextmanager
    def _writing(self) -> Iterator[_Layout]:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.root / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreError(f"scan history root {self.root}: cannot create or lock it ({exc})") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if not self._check_manifest():
                _write_json_atomic(
                    self.root / MANIFEST,
                    {
                        "format": FORMAT_NAME,
                        "schema_version": SCHEMA_VERSION,
                        "partitioning": "hive scan_date = America/New_York date of the record timestamp",
                        "created_at": dt.datetime.now(dt.UTC).isoformat(),
                        "created_with": _versions(),
                    },
                )
                self._check_manifest()
            yield self._recover()
        finally:
            os.close(fd)

    def _recover(self) -> _Layout:
        """Finish or roll back an interrupted compaction and delete temp files (exclusive lock held)."""
        journal = self._read_journal()
        if journal is not None:
            directory = self.root / journal["directory"]
            if (directory / journal["new_file"]).exists():
                for name in journal["replaces"]:
                    (directory / name).unlink(missing_ok=True)
                fsync_dir(directory)
            (self.root / JOURNAL).unlink()
            fsync_dir(self.root)
        layout = self._scan_layout(full=True)
        for tmp in layout.temp_files:
            tmp.unlink(missing_ok=True)
        layout.temp_files.clear()
        # A partition directory left empty (crash during retention or a first write) is not a partition.
        for day in [d for d in layout.partitions if not layout.partitions[d]]:
            directory = layout.partitions.directory(day)
            layout.partitions.pop(day)
            if not any(directory.iterdir()):
                directory.rmdir()
        return layout

    # -- internals: files ------------------------------------------------------------------------

    def _read(
        self,
        files: list[Path],
        columns: list[str] | None = None,
        filter: ds.Expression | None = None,
        *,
        raw: bool = False,
        skipped: list[Path] | None = None,
    ) -> pa.Table:
        """The rows of ``files`` (``filter`` applied, ``columns`` or all). A file that cannot be read
        is left out with a warning (and appended to ``skipped``); rows outside the supported range
        are left out with a warning unless ``raw`` (compaction and retention move rows as they are).
        """
        if not files:
            table = DATASET_SCHEMA.empty_table()
            return table.select(columns) if columns is not None else table
        read_columns = columns if columns is None or raw else list(dict.fromkeys([*columns, *RANGE_COLUMNS]))
        try:
            table = self._dataset(files).to_table(columns=read_columns, filter=filter)
        except (pa.ArrowException, OSError):
            # One bad file fails the whole scan: read file by file to find it and keep the rest.
            table = self._read_each(files, read_columns, filter, skipped)
        if not raw:
            table = self._readable_rows(table, files)
        return table.select(columns) if columns is not None else table

    def _dataset(self, files: list[Path]) -> ds.Dataset:
        return ds.dataset(
            [str(f) for f in files],
            schema=DATASET_SCHEMA,
            format="parquet",
            partitioning=_HIVE,
            partition_base_dir=str(self.root),
        )

    def _read_each(
        self,
        files: list[Path],
        columns: list[str] | None,
        filter: ds.Expression | None,
        skipped: list[Path] | None,
    ) -> pa.Table:
        tables = []
        for path in files:
            try:
                tables.append(self._dataset([path]).to_table(columns=columns, filter=filter))
            except (pa.ArrowException, OSError) as exc:
                self._warn(f"scan history file {path}: unreadable, skipped ({exc})")
                if skipped is not None:
                    skipped.append(path)
        if not tables:
            empty = DATASET_SCHEMA.empty_table()
            return empty.select(columns) if columns is not None else empty
        return pa.concat_tables(tables)

    def _readable_rows(self, table: pa.Table, files: list[Path]) -> pa.Table:
        mask = _in_range(table)
        if mask is None:
            return table
        # Rare (never written by this version): name the files holding such rows.
        bad = []
        for path in files:
            try:
                part = self._dataset([path]).to_table(columns=list(RANGE_COLUMNS))
            except (pa.ArrowException, OSError):
                continue
            part_mask = _in_range(part)
            if part_mask is not None:
                bad.append(f"{path} ({part.num_rows - pc.sum(part_mask).as_py()} rows)")
        self._warn(
            f"scan history: {len(mask) - pc.sum(mask).as_py()} rows with a timestamp or date outside"
            f" {SUPPORTED_RANGE} skipped, in {', '.join(bad) or 'files being replaced'}; expected rows"
            " written by this version (move those files aside to silence this warning)"
        )
        return table.filter(mask)

    def _warn(self, message: str) -> None:
        # Once per store object: a service reading every minute would otherwise repeat it forever.
        if message not in self._warned:
            self._warned.add(message)
            log.warning("%s", message)

    def _skip_row(self, scan_id: object, reason: str) -> None:
        self._warn(f"scan history {self.root}: row scan_id={scan_id!r} skipped: {reason}")

    def _count_rows(self, files: list[Path]) -> int:
        if not files:
            return 0
        try:
            return ds.dataset([str(f) for f in files], schema=FILE_SCHEMA, format="parquet").count_rows()
        except (pa.ArrowException, OSError):
            total = 0
            for path in files:
                try:
                    total += ds.dataset([str(path)], schema=FILE_SCHEMA, format="parquet").count_rows()
                except (pa.ArrowException, OSError) as exc:
                    self._warn(f"scan history file {path}: unreadable, not counted ({exc})")
            return total

    def _ids_of(self, path: Path) -> tuple[pa.Array, pa.Array]:
        cached = self._index.get(path)
        if cached is None:
            table = pq.read_table(path, columns=["scan_id", "content_hash"])
            cached = self._index[path] = (
                table.column("scan_id").combine_chunks(),
                table.column("content_hash").combine_chunks(),
            )
        return cached

    def _stored(self, layout: _Layout, ids: pa.Array, *, writing: bool) -> dict[str, tuple[str, bool]]:
        """scan_id -> (content_hash, retired) for those of ``ids`` already in the store or retired.

        An unreadable file is skipped with a warning; a writer (``writing``, exclusive lock) also
        moves it aside so that it is not met again.
        """
        live = layout.files()
        current = set(live) | set(layout.retired)
        for path in [p for p in self._index if p not in current]:
            del self._index[path]
        found: dict[str, tuple[str, bool]] = {}
        for retired, files in ((False, live), (True, layout.retired)):
            pairs = []
            for path in files:
                try:
                    pairs.append(self._ids_of(path))
                except (pa.ArrowException, OSError) as exc:
                    if writing:
                        self._set_aside(layout, path, f"unreadable parquet ({exc})")
                    else:
                        self._warn(f"scan history file {path}: unreadable, skipped ({exc})")
            if not pairs:
                continue
            all_ids = pa.chunked_array([p[0] for p in pairs], pa.string())
            all_hashes = pa.chunked_array([p[1] for p in pairs], pa.string())
            mask = pc.is_in(all_ids, value_set=ids)
            hits = zip(all_ids.filter(mask).to_pylist(), all_hashes.filter(mask).to_pylist(), strict=True)
            for scan_id, digest in hits:
                found.setdefault(scan_id, (digest, retired))
        return found

    def _set_aside(self, layout: _Layout, path: Path, reason: str) -> Path:
        """Move an unreadable data file to ``root/_unreadable/`` with its reason (exclusive lock held)."""
        directory = self.root / UNREADABLE_DIR
        if not directory.exists():
            directory.mkdir()
            fsync_dir(self.root)
        target = directory / f"{path.parent.name}--{path.name}"
        os.rename(path, target)
        fsync_dir(directory)
        fsync_dir(path.parent)
        entry = {
            "file": str(path),
            "moved_to": target.name,
            "reason": reason,
            "at": dt.datetime.now(dt.UTC).isoformat(),
        }
        with (directory / "reasons.jsonl").open("a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self._index.pop(path, None)
        if path in layout.retired:
            layout.retired.remove(path)
        else:
            day = dt.date.fromisoformat(path.parent.name.removeprefix(PARTITION_PREFIX))
            layout.partitions[day] = [f for f in layout.partitions[day] if f != path]
        self._warn(f"scan history file {path}: {reason}; moved to {target}")
        return target

    def _commit(self, layout: _Layout, table: pa.Table) -> CommitOutcome:
        """De-duplicate ``table`` (rows in priority order) against the store and itself, then write
        the new rows, one file per partition. Exclusive lock held."""
        ids = table.column("scan_id").combine_chunks()
        stored = self._stored(layout, ids, writing=True)
        if not stored and pc.count_distinct(ids).as_py() == table.num_rows:
            # The common case (new scans only): no per-row work.
            new = table
            outcome = CommitOutcome(added=table.num_rows, duplicates=0, retired=0, conflicts=[])
        else:
            keep, outcome = self._classify(table, ids, stored)
            new = table.take(pa.array(keep, pa.int64())) if len(keep) < table.num_rows else table
        if new.num_rows:
            new = new.drop_columns([c for c in BOOKKEEPING_COLUMNS if c in new.column_names])
            self._write_partitions(layout, new)
        return outcome

    @staticmethod
    def _classify(
        table: pa.Table, ids: pa.Array, stored: dict[str, tuple[str, bool]]
    ) -> tuple[list[int], CommitOutcome]:
        hashes = table.column("content_hash").to_pylist()
        lines = table.column(LINE_COLUMN).to_pylist() if LINE_COLUMN in table.column_names else None
        seen: dict[str, tuple[str, int]] = {}
        keep: list[int] = []
        conflicts: list[tuple[int, str]] = []
        duplicates = retired = 0
        for i, (scan_id, digest) in enumerate(zip(ids.to_pylist(), hashes, strict=True)):
            hit = stored.get(scan_id)
            if hit is not None:
                stored_digest, was_retired = hit
                if stored_digest != digest:
                    where = " (since retired by retention)" if was_retired else ""
                    conflicts.append(
                        (
                            i,
                            f"scan_id {scan_id!r} already stored with different content{where}"
                            f" (stored content_hash {stored_digest}, this record {digest})",
                        )
                    )
                elif was_retired:
                    retired += 1
                else:
                    duplicates += 1
                continue
            first = seen.get(scan_id)
            if first is None:
                seen[scan_id] = (digest, i)
                keep.append(i)
            elif first[0] == digest:
                duplicates += 1
            else:
                earlier = f"line {lines[first[1]]} of this file" if lines else f"records[{first[1]}]"
                conflicts.append((i, f"scan_id {scan_id!r} already seen at {earlier} with different content"))
        outcome = CommitOutcome(added=len(keep), duplicates=duplicates, retired=retired, conflicts=conflicts)
        return keep, outcome

    def _write_partitions(self, layout: _Layout, table: pa.Table) -> None:
        if _in_range(table) is not None:
            # The contract refuses such values before they get here; reaching this is a bug upstream.
            raise StoreError(
                f"scan history: refusing to write rows with a timestamp or date outside {SUPPORTED_RANGE}"
            )
        dates = table.column("scan_date").combine_chunks().view(pa.int32()).to_numpy()
        if len(dates) > 1 and (dates[1:] < dates[:-1]).any():
            table = table.sort_by([("scan_date", "ascending")])  # stable: keeps the batch order per day
        runs = [
            (item["values"].as_py(), item["counts"].as_py())
            for item in pc.value_counts(table.column("scan_date"))
        ]
        directories = {day: self.root / f"{PARTITION_PREFIX}{day.isoformat()}" for day, _ in runs}
        created = False
        for directory in directories.values():
            if not directory.exists():
                directory.mkdir()
                created = True
        if created:
            fsync_dir(self.root)
        written: list[tuple[Path, Path, pa.Table, dt.date]] = []
        start = 0
        try:
            for day, n in runs:
                part = table.slice(start, n).drop_columns(["scan_date"])
                start += n
                tmp, final = _write_temp(directories[day], part)
                written.append((tmp, final, part, day))
            for tmp, final, _, _ in written:
                os.rename(tmp, final)
        finally:
            for tmp, _, _, _ in written:
                tmp.unlink(missing_ok=True)
        for directory in directories.values():
            fsync_dir(directory)
        for _, final, part, day in written:
            self._index[final] = (
                part.column("scan_id").combine_chunks(),
                part.column("content_hash").combine_chunks(),
            )
            if day not in layout.partitions:
                layout.partitions.add_directory(day, final.parent)
                layout.partitions[day] = []
            layout.partitions[day].append(final)
        if self.auto_compact_files is not None:
            for day, _ in runs:
                if len(layout.partitions[day]) > self.auto_compact_files:
                    try:
                        self._compact_partition(layout, day)
                    except StoreError as exc:
                        # The rows are written; a damaged partition (only a hand edit makes one) must
                        # not fail every later write. compact() still raises on it.
                        self._warn(f"auto-compaction of {day} skipped: {exc}")

    def _compact_partition(self, layout: _Layout, day: dt.date) -> int:
        skipped: list[Path] = []
        table = self._read(layout.partitions[day], raw=True, skipped=skipped).drop_columns(["scan_date"])
        for path in skipped:
            self._set_aside(layout, path, "unreadable parquet (found by compaction)")
        files = layout.partitions[day]
        if not files:
            return 0
        if pc.count_distinct(table.column("scan_id")).as_py() != table.num_rows:
            raise StoreError(
                f"scan history partition {files[0].parent}: a scan_id appears twice across"
                f" {len(files)} files; expected unique scan_ids (the store is damaged; compaction"
                " stopped before changing it)"
            )
        new = self._replace_files(files[0].parent, files, _sorted(table), prefix="part")
        layout.partitions[day] = [new]
        for old in files:
            self._index.pop(old, None)
        self._index[new] = (
            table.column("scan_id").combine_chunks(),
            table.column("content_hash").combine_chunks(),
        )
        return table.num_rows

    def _compact_retired(self, layout: _Layout) -> None:
        try:
            table = pa.concat_tables([pq.read_table(f, schema=RETIRED_SCHEMA) for f in layout.retired])
        except (pa.ArrowException, OSError) as exc:
            raise StoreError(
                f"scan history {self.root / RETIRED_DIR}: unreadable tombstones ({exc})"
            ) from exc
        new = self._replace_files(self.root / RETIRED_DIR, layout.retired, table, prefix="retired")
        for old in layout.retired:
            self._index.pop(old, None)
        layout.retired = [new]

    def _replace_files(self, directory: Path, old: list[Path], table: pa.Table, prefix: str) -> Path:
        """Crash-safe swap of ``old`` files for one file holding ``table`` (see the module doc)."""
        tmp, final = _write_temp(directory, table, prefix=prefix)
        try:
            _write_json_atomic(
                self.root / JOURNAL,
                {"directory": directory.name, "new_file": final.name, "replaces": [p.name for p in old]},
            )
            os.rename(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
        fsync_dir(directory)
        for path in old:
            path.unlink()
        fsync_dir(directory)
        (self.root / JOURNAL).unlink()
        fsync_dir(self.root)
        return final

    def _write_retired(self, layout: _Layout, ids: pa.Table, mode: str) -> None:
        directory = self.root / RETIRED_DIR
        if not directory.exists():
            directory.mkdir()
            fsync_dir(self.root)
        n = ids.num_rows
        table = pa.Table.from_arrays(
            [
                ids.column("scan_id"),
                ids.column("content_hash"),
                ids.column("scan_date"),
                pa.array([dt.datetime.now(dt.UTC)] * n, _TS),
                pa.array([mode] * n, pa.string()),
            ],
            schema=RETIRED_SCHEMA,
        )
        tmp, final = _write_temp(directory, table, prefix="retired")
        os.rename(tmp, final)
        fsync_dir(directory)
        self._index[final] = (
            table.column("scan_id").combine_chunks(),
            table.column("content_hash").combine_chunks(),
        )
        layout.retired.append(final)

    def _move_to_archive(self, layout: _Layout, dates: list[dt.date]) -> None:
        archive = ScanHistoryStore(self.archive_dir, auto_compact_files=None)
        with archive._writing():
            for day in dates:
                name = f"{PARTITION_PREFIX}{day.isoformat()}"
                source, target = self.root / name, archive.root / name
                try:
                    if not target.exists():
                        os.rename(source, target)
                    else:
                        for path in layout.partitions[day]:
                            os.rename(path, target / path.name)
                        source.rmdir()
                except OSError as exc:
                    if exc.errno == errno.EXDEV:
                        raise StoreError(
                            f"retention: cannot move {source} to {target} across filesystems; expected the"
                            f" archive directory {archive.root} on the same filesystem as the store"
                        ) from exc
                    raise
                fsync_dir(target)
                layout.partitions.pop(day)
            fsync_dir(archive.root)
        fsync_dir(self.root)

    def _drop_partitions(self, layout: _Layout, dates: list[dt.date]) -> None:
        for day in dates:
            for path in layout.partitions.pop(day):
                path.unlink()
                self._index.pop(path, None)
            directory = self.root / f"{PARTITION_PREFIX}{day.isoformat()}"
            directory.rmdir()
        fsync_dir(self.root)
