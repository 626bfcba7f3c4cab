"""Line-level JSONL import and export for the scan history store.

The original scanner appends one JSON object per line to ``scan_history.jsonl``. This module reads
such a file, validates every line with :func:`technic_ml.contracts.parse_record`, turns the good
ones into arrow tables (:mod:`technic_ml.history.schema`) and hands them in batches to a ``commit``
callback; :class:`~technic_ml.history.store.ScanHistoryStore` supplies that callback (de-duplication
and durable writes happen there, under the store's lock). Bad lines never stop an import: each one
goes to a quarantine JSONL file with its line number, the reason and the raw text, and the valid
lines are kept.

Throughput: validation costs ~10-20 microseconds per line, so large files are parsed by a pool of
``spawn`` processes that each read a byte range of the file themselves (only arrow tables travel
back); the parent keeps line order, quarantines, commits and reports progress. Small files are
parsed in-process through the same code path.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import datetime as dt
import gc
import json
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from importlib import resources
from multiprocessing import get_context
from pathlib import Path
from typing import IO, Literal

import pyarrow as pa
import pyarrow.compute as pc

from technic_ml.contracts import SUB_MICROSECOND, ScanRecord, parse_record
from technic_ml.errors import ContractError, StoreError
from technic_ml.fsio import write_atomic
from technic_ml.history.schema import record_row, rows_to_table

RecordSource = Literal["scanner_log", "backfill"]
SOURCES: tuple[str, ...] = ("scanner_log", "backfill")

MAX_ERRORS_KEPT = 20
"""How many (line_number, reason) pairs an ImportSummary keeps; ``error_count`` has the total."""
CHUNK_BYTES = 4 << 20
"""Bytes of the file one parse task reads (about 4,500 lines of the original format)."""
BATCH_RECORDS = 100_000
"""Parsed records accumulated before one commit (one lock, one file per touched partition)."""
POOL_MIN_BYTES = 32 << 20
"""Files smaller than this (about 40,000 lines) are parsed in-process: spawned workers take one to two
seconds to start, which only pays off on larger files (measured crossover 15-45 MB on 2 cores)."""
_BOM = b"\xef\xbb\xbf"
LINE_COLUMN, OFFSET_COLUMN, LENGTH_COLUMN = "_line", "_offset", "_length"
BOOKKEEPING_COLUMNS = (LINE_COLUMN, OFFSET_COLUMN, LENGTH_COLUMN)


@dataclass(frozen=True)
class ImportSummary:
    """What one ``import_jsonl`` run did. ``lines_read`` = ``blank_lines`` + ``added`` + ``duplicates``
    + ``retired`` + ``quarantined``; ``quarantined`` counts invalid lines and conflicts."""

    file: Path
    lines_read: int
    blank_lines: int
    added: int
    duplicates: int
    conflicts: int
    quarantined: int
    quarantine_file: Path | None
    errors: list[tuple[int, str]] = field(default_factory=list)
    error_count: int = 0
    retired: int = 0
    seconds: float = 0.0
    truncated: int = 0
    """Valid lines whose date-times had digits beyond the microsecond (kept, truncated to the store's
    resolution of one microsecond)."""

    @property
    def invalid(self) -> int:
        """Lines rejected by validation (broken JSON, contract violations, non-UTF-8 bytes)."""
        return self.quarantined - self.conflicts

    def __str__(self) -> str:
        counts = f"added {self.added}, duplicates {self.duplicates}"
        if self.retired:
            counts += f", retired {self.retired} (removed by retention earlier; not re-added)"
        counts += (
            f", blank {self.blank_lines}, quarantined {self.quarantined}"
            f" ({self.invalid} invalid, {self.conflicts} conflicts)"
        )
        lines = [f"import {self.file}: {self.lines_read} lines in {self.seconds:.2f} s: {counts}"]
        if self.truncated:
            lines.append(
                f"  {self.truncated} valid lines had date-times with digits beyond the microsecond;"
                " kept, truncated to microseconds (the store's resolution)"
            )
        if self.quarantine_file is not None:
            lines.append(f"  quarantine file: {self.quarantine_file}")
        lines += [f"    line {number}: {reason}" for number, reason in self.errors]
        if self.error_count > len(self.errors):
            lines.append(f"    ... and {self.error_count - len(self.errors)} more (see the quarantine file)")
        return "\n".join(lines)


@dataclass(frozen=True)
class CommitOutcome:
    """What the store did with one batch: counts plus (row index, reason) for each conflict."""

    added: int
    duplicates: int
    retired: int
    conflicts: list[tuple[int, str]]


@dataclass
class ParsedChunk:
    """One byte range of the input, parsed. Line indexes are relative to the chunk's first line."""

    table: pa.Table
    rejects: list[tuple[int, str, bytes]]
    lines: int
    blank: int
    end: int
    truncated: int = 0


def chunk_ranges(path: Path, size: int, chunk_bytes: int = CHUNK_BYTES) -> Iterator[tuple[int, int]]:
    """Byte ranges of about ``chunk_bytes`` that start at a line start and end after a newline."""
    with path.open("rb") as f:
        start = 0
        while start < size:
            end = min(start + chunk_bytes, size)
            if end < size:
                f.seek(end)
                end = min(end + len(f.readline()), size)
            yield start, end
            start = end


def parse_chunk(path: str, start: int, end: int, source: str, data_source: str | None) -> ParsedChunk:
    """Parse the lines in ``[start, end)`` of ``path`` (runs in pool processes; keep it top-level)."""
    with open(path, "rb") as f:
        f.seek(start)
        data = f.read(end - start)
    if len(data) != end - start:
        raise StoreError(
            f"import_jsonl: {path} shrank while being read (expected {end - start} bytes at offset {start},"
            f" got {len(data)}); expected a file that is only appended to"
        )
    offset = start
    if start == 0 and data.startswith(_BOM):
        data, offset = data[len(_BOM) :], len(_BOM)
    raw_lines = data.split(b"\n")
    if data.endswith(b"\n") or not data:
        raw_lines.pop()
    default = (source, data_source)
    rows: list[tuple] = []
    line_idx: list[int] = []
    offsets: list[int] = []
    lengths: list[int] = []
    rejects: list[tuple[int, str, bytes]] = []
    blank = truncated = 0
    context = {SUB_MICROSECOND: 0}
    # Parsing allocates millions of short-lived objects and no cycles; the cyclic collector would
    # only rescan the growing row list over and over.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for i, raw in enumerate(raw_lines):
            n = len(raw)
            if not raw or raw.isspace():
                blank += 1
            else:
                try:
                    before = context[SUB_MICROSECOND]
                    rows.append(record_row(parse_record(raw, context), default))
                except ContractError as exc:
                    rejects.append((i, _reason(raw, exc), raw))
                except Exception as exc:
                    rejects.append((i, _unexpected(exc), raw))
                else:
                    line_idx.append(i)
                    offsets.append(offset)
                    lengths.append(n)
                    if context[SUB_MICROSECOND] > before:
                        truncated += 1
            offset += n + 1
    finally:
        if gc_was_enabled:
            gc.enable()
    try:
        table = rows_to_table(
            rows, extra_columns={LINE_COLUMN: line_idx, OFFSET_COLUMN: offsets, LENGTH_COLUMN: lengths}
        )
    except Exception:
        rows, line_idx, offsets, lengths = _storable(rows, line_idx, offsets, lengths, raw_lines, rejects)
        table = rows_to_table(
            rows, extra_columns={LINE_COLUMN: line_idx, OFFSET_COLUMN: offsets, LENGTH_COLUMN: lengths}
        )
    rejects.sort(key=lambda reject: reject[0])
    return ParsedChunk(
        table=table, rejects=rejects, lines=len(raw_lines), blank=blank, end=end, truncated=truncated
    )


def _unexpected(exc: Exception) -> str:
    # Validation raises ContractError for everything it knows; anything else is a gap in it, and the
    # line is quarantined with what happened rather than aborting the file (and every later file).
    return f"line cannot be read: {type(exc).__name__}: {exc}"


def _storable(
    rows: list[tuple],
    line_idx: list[int],
    offsets: list[int],
    lengths: list[int],
    raw_lines: list[bytes],
    rejects: list[tuple[int, str, bytes]],
) -> tuple[list[tuple], list[int], list[int], list[int]]:
    """The rows arrow can hold; a row it cannot moves to ``rejects`` (row by row: only called when
    the whole batch failed)."""
    kept: tuple[list, list, list, list] = ([], [], [], [])
    for row, i, offset, length in zip(rows, line_idx, offsets, lengths, strict=True):
        try:
            rows_to_table([row])
        except Exception as exc:
            rejects.append((i, f"line cannot be stored: {type(exc).__name__}: {exc}", raw_lines[i]))
            continue
        for column, value in zip(kept, (row, i, offset, length), strict=True):
            column.append(value)
    return kept


def _reason(raw: bytes, exc: ContractError) -> str:
    # The JSON parser rejects bytes that are not UTF-8 with a terse message; say what it is.
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as bad:
        return f"line is not valid UTF-8: byte 0x{raw[bad.start]:02x} at column {bad.start + 1}"
    return str(exc)


def read_span(path: Path, offset: int, length: int) -> bytes:
    with path.open("rb") as f:
        f.seek(offset)
        return f.read(length)


# Characters that str.splitlines() and many JSONL tools treat as line ends although JSON does not
# escape them: escaped, so that each entry stays one line for every reader.
_LINE_BREAKS = {0x85: "\\u0085", 0x2028: "\\u2028", 0x2029: "\\u2029"}


class QuarantineWriter:
    """Appends rejected lines to one JSONL file per import run, created on the first entry.

    Each entry: ``source_file``, ``line_number``, ``reason``, ``raw`` (the line's text; bytes that
    are not UTF-8 appear as ``\\xNN`` escapes and the exact bytes are also in ``raw_base64``) and
    ``quarantined_at``.
    """

    def __init__(self, directory: Path, source_file: Path) -> None:
        self.directory = directory
        self.source_file = source_file
        self.path: Path | None = None
        self._file: IO[str] | None = None
        self.count = 0

    def add(self, line_number: int, reason: str, raw: bytes) -> None:
        if self._file is None:
            self._open()
        assert self._file is not None
        entry = {
            "source_file": str(self.source_file),
            "line_number": line_number,
            "reason": reason,
            "raw": raw.decode("utf-8", errors="backslashreplace"),
            "quarantined_at": dt.datetime.now(dt.UTC).isoformat(),
        }
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            entry["raw_base64"] = base64.b64encode(raw).decode("ascii")
        self._file.write(json.dumps(entry, ensure_ascii=False).translate(_LINE_BREAKS) + "\n")
        self.count += 1

    def _open(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"quarantine_dir: cannot create {self.directory} ({exc}); expected a writable directory"
            ) from exc
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
        self.path = self.directory / f"{self.source_file.stem}-{stamp}-{os.getpid()}.jsonl"
        self._file = self.path.open("x", encoding="utf-8")

    def sync(self) -> None:
        """Make the entries so far durable (called before each commit, so nothing is lost on a crash)."""
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file is not None:
            self.sync()
            self._file.close()
            self._file = None


def _resolve_workers(workers: int | None, size: int) -> int:
    if workers is None:
        return 1 if size < POOL_MIN_BYTES else max(1, min(os.cpu_count() or 1, 8))
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers: received {workers!r}; expected a positive integer or None (automatic)")
    return workers


def import_file(
    path: Path,
    *,
    commit: Callable[[pa.Table], CommitOutcome],
    quarantine_dir: Path,
    source: str = "scanner_log",
    data_source: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    workers: int | None = None,
    batch_records: int = BATCH_RECORDS,
    chunk_bytes: int = CHUNK_BYTES,
) -> ImportSummary:
    """Validate every line of ``path``, commit the good ones in batches, quarantine the rest.

    ``progress(bytes_done, bytes_total)`` is called after each commit with the bytes of the file whose
    lines are handled (stored, skipped or quarantined); the last call is ``(size, size)``.
    """
    started = time.perf_counter()
    if source not in SOURCES:
        raise ValueError(f"source: received {source!r}; expected one of {list(SOURCES)}")
    if data_source is not None and not isinstance(data_source, str):
        raise ValueError(f"data_source: received {data_source!r}; expected a string or None")
    if not isinstance(batch_records, int) or batch_records < 1:
        raise ValueError(f"batch_records: received {batch_records!r}; expected a positive integer")
    path = Path(path)
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise StoreError(f"import_jsonl: {path} is not a regular file; expected a JSONL file")
    except FileNotFoundError:
        raise StoreError(
            f"import_jsonl: {path} does not exist; expected a JSONL file of scan records"
        ) from None
    n_workers = _resolve_workers(workers, size)
    quarantine = QuarantineWriter(quarantine_dir, path)
    totals = {
        "lines": 0,
        "blank": 0,
        "added": 0,
        "duplicates": 0,
        "retired": 0,
        "conflicts": 0,
        "truncated": 0,
    }
    errors: list[tuple[int, str]] = []
    pending: list[pa.Table] = []
    pending_rows = 0
    pending_end = 0
    reported = -1 if size == 0 else 0

    def note(line_number: int, reason: str, raw: bytes) -> None:
        quarantine.add(line_number, reason, raw)
        if len(errors) < MAX_ERRORS_KEPT:
            errors.append((line_number, reason))

    def flush() -> None:
        nonlocal pending, pending_rows, reported
        quarantine.sync()
        if pending_rows:
            batch = pa.concat_tables(pending)
            outcome = commit(batch)
            totals["added"] += outcome.added
            totals["duplicates"] += outcome.duplicates
            totals["retired"] += outcome.retired
            totals["conflicts"] += len(outcome.conflicts)
            if outcome.conflicts:
                line_col = batch.column(LINE_COLUMN)
                offset_col, length_col = batch.column(OFFSET_COLUMN), batch.column(LENGTH_COLUMN)
                for row, reason in outcome.conflicts:
                    raw = read_span(path, offset_col[row].as_py(), length_col[row].as_py())
                    note(line_col[row].as_py(), reason, raw)
                quarantine.sync()
        pending, pending_rows = [], 0
        if progress is not None and pending_end > reported:
            progress(pending_end, size)
            reported = pending_end

    def handle(chunk: ParsedChunk) -> None:
        nonlocal pending_rows, pending_end
        base = totals["lines"]
        for rel, reason, raw in chunk.rejects:
            note(base + rel + 1, reason, raw)
        totals["lines"] += chunk.lines
        totals["blank"] += chunk.blank
        totals["truncated"] += chunk.truncated
        table = chunk.table
        if table.num_rows:
            line_numbers = pc.add(table.column(LINE_COLUMN), base + 1)
            table = table.set_column(table.schema.get_field_index(LINE_COLUMN), LINE_COLUMN, line_numbers)
            pending.append(table)
            pending_rows += table.num_rows
        pending_end = chunk.end
        if pending_rows >= batch_records:
            flush()

    ranges = chunk_ranges(path, size, chunk_bytes)
    args = (str(path), source, data_source)
    try:
        if n_workers == 1:
            for start, end in ranges:
                handle(parse_chunk(args[0], start, end, source, data_source))
        else:
            _run_pool(n_workers, ranges, args, handle)
        flush()
    finally:
        quarantine.close()
    return ImportSummary(
        file=path,
        lines_read=totals["lines"],
        blank_lines=totals["blank"],
        added=totals["added"],
        duplicates=totals["duplicates"],
        conflicts=totals["conflicts"],
        quarantined=quarantine.count,
        quarantine_file=quarantine.path,
        errors=errors,
        error_count=quarantine.count,
        retired=totals["retired"],
        seconds=time.perf_counter() - started,
        truncated=totals["truncated"],
    )


def _run_pool(
    n_workers: int,
    ranges: Iterable[tuple[int, int]],
    args: tuple[str, str, str | None],
    handle: Callable[[ParsedChunk], None],
) -> None:
    """Parse ``ranges`` in a process pool, handing results to ``handle`` in file order."""
    path, source, data_source = args
    pending_ranges = iter(ranges)
    slots: deque[Future[ParsedChunk] | ParsedChunk] = deque()
    submitted = 0
    depth = 4 * n_workers
    # Spawned workers need a second or two to import their modules; until the first result arrives the
    # parent parses the next ranges itself instead of waiting idle.
    warming_up = True
    # spawn, not fork: the parent may hold arrow thread pools and locks that a fork would copy mid-use.
    with ProcessPoolExecutor(
        max_workers=n_workers,
        mp_context=get_context("spawn"),
        initializer=_end_with_parent,
        initargs=(os.getpid(),),
    ) as pool:
        try:
            while True:
                while submitted < depth and (span := next(pending_ranges, None)) is not None:
                    slots.append(pool.submit(parse_chunk, path, *span, source, data_source))
                    submitted += 1
                if not slots:
                    break
                head = slots[0]
                if isinstance(head, Future) and not head.done():
                    if warming_up and (span := next(pending_ranges, None)) is not None:
                        slots.append(parse_chunk(path, *span, source, data_source))
                        continue
                    head.result()
                slots.popleft()
                if isinstance(head, Future):
                    submitted -= 1
                    warming_up = False
                    handle(head.result())
                else:
                    handle(head)
        except BrokenProcessPool as exc:
            raise StoreError(
                f"import_jsonl: a parser process died while reading {path} ({exc}); records committed"
                " so far are kept, re-run the import to finish"
            ) from exc
        finally:
            for slot in slots:
                if isinstance(slot, Future):
                    slot.cancel()


def _end_with_parent(parent: int) -> None:
    """Pool initializer: a parser process ends when the importer that started it is gone.

    A killed importer (SIGKILL, OOM) cannot shut its pool down, and each parser holds the read end
    of the result pipe too, so a parser blocked writing its result would wait forever (about 175 MB
    each). On Linux the kernel sends SIGKILL when the parent dies (``PR_SET_PDEATHSIG``); a thread
    polling the parent id covers other systems and a parent that died before the call.
    """
    if sys.platform == "linux":
        # Without it (an unusual libc) the thread below still ends the process, a second later.
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent,), name="watch-parent", daemon=True).start()


_PR_SET_PDEATHSIG = 1
PARENT_POLL_SECONDS = 1.0


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(PARENT_POLL_SECONDS)
        if os.getppid() != parent:
            os._exit(1)


def write_jsonl(path: Path, batches: Iterable[list[ScanRecord]], *, include_provenance: bool) -> int:
    """Write records in the original line format to ``path`` atomically (temp file, fsync, rename)."""
    path = Path(path)
    if not path.parent.is_dir():
        raise StoreError(
            f"export_jsonl: directory {path.parent} does not exist; expected an existing directory"
        )
    written = 0

    def write(fh) -> None:
        nonlocal written
        for records in batches:
            fh.write(
                "".join(
                    r.to_original_json(include_provenance=include_provenance) + "\n" for r in records
                ).encode()
            )
            written += len(records)

    write_atomic(path, write)
    return written


def sample_scan_log() -> Path:
    """The bundled copy of the original prototype's 150-line scan log (synthetic records, this
    module's format): what the tests and benchmarks import."""
    return Path(str(resources.files("technic_ml").joinpath("sample/scan_history_sample.jsonl")))
