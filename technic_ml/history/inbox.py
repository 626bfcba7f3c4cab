"""Collect scanner logs from an inbox folder into the scan history store.

The scanner (or whoever ships its logs) drops JSONL files in the original scan-log format into an
inbox; the ``collect-history`` flow calls :func:`collect_inbox`, which imports each file with
:meth:`ScanHistoryStore.import_jsonl <technic_ml.history.store.ScanHistoryStore.import_jsonl>` (bad
lines go to the store's quarantine with their reasons, valid lines are kept) and moves it out of the
inbox, so the inbox only ever holds work still to do::

    inbox/scanner-a.jsonl                      new logs; ".*", "*.part" and "*.tmp" are ignored
    processed/2026-03-02/scanner-a.jsonl       imported on that UTC day (".<sha12>" added on a clash)
    processed/unreadable/2026-03-02/x.jsonl    an entry that could not be read at all (see below)
    processed/ledger.jsonl                     one JSON object per file handled, append-only
    processed/.collect.lock                    fcntl.flock: one collector at a time

One file never blocks the others
--------------------------------
A file is imported line by line: a bad line, however bad, is quarantined with its reason and the
rest of the file is kept (:mod:`technic_ml.history.jsonl`). An inbox entry that cannot be read at
all (a symlink to nothing, a pipe or device, a read error) is moved to ``processed/unreadable/``
with status ``unreadable`` and the reason in the ledger and the report, and the next files are
imported. Errors of the store itself (disk full, a broken store) still fail the run: no file is
to blame for them, and each later file would fail the same way.

Idempotency
-----------
A file whose sha256 is already in the ledger is not imported again; it is moved to processed and
reported as ``duplicate``. A file with other bytes but the same records (a renamed copy, a changed
trailing newline) is imported, and the store, idempotent by scan_id, adds nothing: the report shows
``added=0`` and the lines as ``duplicates``.

Crash safety
------------
Each file is imported, then its ledger entry is appended (flushed and fsynced), then it is moved
(``os.replace``, same filesystem, directory fsynced). A collector killed between the import and the
ledger append leaves the file in the inbox; the next run imports it again and the store adds 0. A
collector killed between the ledger append and the move leaves it too; the next run finds its
sha256 in the ledger and moves it as a duplicate. Nothing is lost and nothing is stored twice. A
torn last ledger line (killed mid-append) is ignored, which again only costs a re-import.

Writers must create files under a ``.part``/``.tmp`` or hidden name and rename them into the inbox
when complete: a file is hashed before it is imported, and a file still growing would be imported
half.

With an object-storage data root the inbox is ``<bucket>/inbox/``: :func:`fetch_shared_inbox`
moves its logs into the collecting machine's local inbox first, one collector at a time.
"""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from technic_ml.errors import StoreError
from technic_ml.fsio import exclusive_lock, fsync_dir, write_bytes_atomic
from technic_ml.history.store import CompactionReport, ScanHistoryStore
from technic_ml.objectstore import ObjectRoot

log = logging.getLogger(__name__)

LEDGER = "ledger.jsonl"
LOCK = ".collect.lock"
IGNORED_SUFFIXES = (".part", ".tmp")
"""Names still being written by the sender; they are picked up once renamed."""
_HASH_CHUNK = 1 << 20

Status = Literal["imported", "duplicate", "unreadable"]
UNREADABLE_DIR = "unreadable"


@dataclass(frozen=True)
class CollectedFile:
    """One inbox file that :func:`collect_inbox` handled.

    ``duplicates`` counts lines whose scan_id the store already held with the same content;
    ``invalid`` counts lines rejected by validation, ``quarantined`` those plus conflicts (same
    scan_id, other content), all quarantined with their reasons in ``quarantine_file``. A
    ``duplicate`` file (its sha256 was in the ledger) is not read, so its counts are 0 and
    ``duplicate_of`` is where the earlier copy went.
    """

    name: str
    sha256: str
    bytes: int
    status: Status
    added: int
    duplicates: int
    invalid: int
    quarantined: int
    processed_path: Path
    quarantine_file: Path | None = None
    duplicate_of: Path | None = None
    reason: str | None = None
    """Why an ``unreadable`` entry could not be read."""


@dataclass(frozen=True)
class CollectReport:
    """What one :func:`collect_inbox` run did: the files (in inbox order) and any compaction."""

    inbox: Path
    processed: Path
    files: list[CollectedFile] = field(default_factory=list)
    compaction: CompactionReport | None = None

    @property
    def files_imported(self) -> int:
        return sum(f.status == "imported" for f in self.files)

    @property
    def files_duplicate(self) -> int:
        return sum(f.status == "duplicate" for f in self.files)

    @property
    def files_unreadable(self) -> int:
        return sum(f.status == "unreadable" for f in self.files)

    @property
    def added(self) -> int:
        return sum(f.added for f in self.files)

    @property
    def duplicates(self) -> int:
        return sum(f.duplicates for f in self.files)

    @property
    def invalid(self) -> int:
        return sum(f.invalid for f in self.files)

    @property
    def quarantined(self) -> int:
        return sum(f.quarantined for f in self.files)

    def __str__(self) -> str:
        if not self.files:
            text = f"collect {self.inbox}: inbox empty, nothing imported"
        else:
            text = (
                f"collect {self.inbox}: {len(self.files)} files ({self.files_imported} imported,"
                f" {self.files_duplicate} already collected); records added {self.added}, duplicates"
                f" {self.duplicates}, quarantined {self.quarantined} ({self.invalid} invalid);"
                f" moved to {self.processed}"
            )
            if self.files_unreadable:
                names = ", ".join(f"{f.name} ({f.reason})" for f in self.files if f.status == "unreadable")
                text += f"; {self.files_unreadable} unreadable, moved aside: {names}"
        if self.compaction is not None:
            text += f"; {self.compaction}"
        return text + "."

    def as_rows(self) -> list[dict[str, Any]]:
        """One row per file, for a table (plain values: strings and integers)."""
        return [
            {
                "file": f.name,
                "status": f.status,
                "added": f.added,
                "duplicates": f.duplicates,
                "invalid": f.invalid,
                "quarantined": f.quarantined,
                "bytes": f.bytes,
                "sha256": f.sha256[:12],
                "processed_path": str(f.processed_path),
                "duplicate_of": "" if f.duplicate_of is None else str(f.duplicate_of),
                "reason": f.reason or "",
            }
            for f in self.files
        ]


def collect_inbox(
    store: ScanHistoryStore,
    inbox: Path,
    processed: Path,
    *,
    compact_min_files: int = 8,
    pattern: str = "*.jsonl",
) -> CollectReport:
    """Import every ``pattern`` file of ``inbox`` into ``store`` and move it to ``processed``.

    Files are handled in name order; see the module doc for the ledger, duplicates and crash
    safety. Afterwards, if a history partition has at least ``compact_min_files`` data files, the
    store is compacted (``store.compact(min_files=compact_min_files)``). A missing inbox raises
    :class:`StoreError`; an empty one returns a report without files.
    """
    if isinstance(compact_min_files, bool) or not isinstance(compact_min_files, int) or compact_min_files < 2:
        raise ValueError(f"compact_min_files: received {compact_min_files!r}; expected an integer >= 2")
    if not isinstance(pattern, str) or not pattern or "/" in pattern:
        raise ValueError(f"pattern: received {pattern!r}; expected a file-name glob such as '*.jsonl'")
    inbox = Path(inbox).expanduser().absolute()
    processed = Path(processed).expanduser().absolute()
    if not inbox.is_dir():
        what = "is not a directory" if inbox.exists() else "does not exist"
        raise StoreError(f"inbox: {inbox} {what}; expected a directory of scanner logs (JSONL) to import")
    if processed == inbox:
        raise ValueError(f"processed: received the inbox itself ({inbox}); expected a separate directory")
    try:
        processed.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(
            f"processed: cannot create {processed} ({exc}); expected a writable directory"
        ) from exc
    # Moves must be renames: checked before anything is imported, not discovered after the first file.
    if os.stat(inbox).st_dev != os.stat(processed).st_dev:
        raise StoreError(
            f"processed: {processed} is on another filesystem than the inbox {inbox}; expected both on"
            " the same filesystem (files are moved with an atomic rename)"
        )
    files: list[CollectedFile] = []
    with _collector_lock(processed):
        # Listed under the lock: a collector that waited must not handle files the other one moved.
        known = _read_ledger(processed / LEDGER)
        for path, problem in _inbox_files(inbox, pattern, processed):
            try:
                digest, size = (None, 0) if problem else _sha256(path)
            except OSError as exc:
                problem = f"cannot be read ({exc})"
            if problem is not None or digest is None:
                files.append(_set_aside(path, processed, problem or "cannot be read"))
                continue
            result = _collect_one(store, path, processed, known, digest, size)
            known.setdefault(result.sha256, result.processed_path)
            files.append(result)
        compaction = _compact_if_needed(store, compact_min_files)
    return CollectReport(inbox=inbox, processed=processed, files=files, compaction=compaction)


def _inbox_files(inbox: Path, pattern: str, processed: Path) -> list[tuple[Path, str | None]]:
    """(path, None) for each file to collect, (path, why) for entries that cannot be read at all."""
    found: list[tuple[Path, str | None]] = []
    for path in inbox.glob(pattern):
        name = path.name
        if name.startswith(".") or name.endswith(IGNORED_SUFFIXES) or path.is_relative_to(processed):
            continue
        if path.is_dir():  # a sender's own folder, not a log
            continue
        found.append((path, None if path.is_file() else _not_a_file(path)))
    return sorted(found, key=lambda item: item[0].name)


def _not_a_file(path: Path) -> str:
    if path.is_symlink() and not path.exists():
        return f"a symbolic link to {os.readlink(path)}, which does not exist"
    return "not a regular file (a pipe, socket or device)"


def _set_aside(path: Path, processed: Path, reason: str) -> CollectedFile:
    """Move an entry that cannot be read out of the inbox, with its reason in the ledger."""
    now = _utcnow()
    target = _target(processed / UNREADABLE_DIR, now, path.name, "unreadable")
    record = {
        "name": path.name,
        "sha256": "",
        "bytes": 0,
        "imported_at": now.isoformat(),
        "status": "unreadable",
        "reason": reason,
        "processed_path": _ledger_path(target, processed),
    }
    _append_ledger(processed / LEDGER, record)
    _move(path, target)
    log.warning("collect-history: %s %s; moved to %s", path, reason, target)
    return CollectedFile(
        name=path.name,
        sha256="",
        bytes=0,
        status="unreadable",
        added=0,
        duplicates=0,
        invalid=0,
        quarantined=0,
        processed_path=target,
        reason=reason,
    )


def _collect_one(
    store: ScanHistoryStore, path: Path, processed: Path, known: dict[str, Path], digest: str, size: int
) -> CollectedFile:
    now = _utcnow()
    earlier = known.get(digest)
    counts = {"added": 0, "duplicates": 0, "invalid": 0, "quarantined": 0}
    extra: dict[str, Any] = {}
    quarantine_file = None
    if earlier is None:
        summary = store.import_jsonl(path)
        counts = {
            "added": summary.added,
            "duplicates": summary.duplicates,
            "invalid": summary.invalid,
            "quarantined": summary.quarantined,
        }
        quarantine_file = summary.quarantine_file
        extra = {
            "conflicts": summary.conflicts,
            "retired": summary.retired,
            "quarantine_file": None if quarantine_file is None else str(quarantine_file),
        }
        target = _target(processed, now, path.name, digest)
    elif not earlier.exists() and earlier.is_relative_to(processed):
        # The ledger has this file but the move never happened (killed in between): finish that move.
        target = earlier
    else:
        target = _target(processed, now, path.name, digest)
    status: Status = "imported" if earlier is None else "duplicate"
    record: dict[str, Any] = {
        "name": path.name,
        "sha256": digest,
        "bytes": size,
        "imported_at": now.isoformat(),
        "status": status,
        **counts,
        **extra,
        "processed_path": _ledger_path(target, processed),
    }
    if earlier is not None:
        record["duplicate_of"] = _ledger_path(earlier, processed)
    _append_ledger(processed / LEDGER, record)
    _move(path, target)
    return CollectedFile(
        name=path.name,
        sha256=digest,
        bytes=size,
        status=status,
        **counts,
        processed_path=target,
        quarantine_file=quarantine_file,
        duplicate_of=earlier,
    )


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _sha256(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def _target(processed: Path, now: dt.datetime, name: str, digest: str) -> Path:
    """``processed/<UTC date>/<name>``; on a clash the name gets ``.<sha12>`` before its suffix."""
    directory = processed / now.date().isoformat()
    target = directory / name
    if not target.exists():
        return target
    stem, suffix = (name[: -len(s)], s) if (s := Path(name).suffix) else (name, "")
    target = directory / f"{stem}.{digest[:12]}{suffix}"
    n = 2
    # Same name and same bytes twice in one day (a duplicate): keep both copies rather than overwrite.
    while target.exists():
        target = directory / f"{stem}.{digest[:12]}-{n}{suffix}"
        n += 1
    return target


def _move(source: Path, target: Path) -> None:
    created = not target.parent.exists()
    target.parent.mkdir(parents=True, exist_ok=True)
    if created:
        fsync_dir(target.parent.parent)
    try:
        os.replace(source, target)
    except OSError as exc:
        if exc.errno == errno.EXDEV:
            raise StoreError(
                f"processed: cannot move {source} to {target} across filesystems; expected the"
                " processed directory on the inbox's filesystem"
            ) from exc
        raise StoreError(f"processed: cannot move {source} to {target} ({exc})") from exc
    fsync_dir(target.parent)
    fsync_dir(source.parent)


def _ledger_path(path: Path, processed: Path) -> str:
    # Relative to the processed directory, so the ledger stays valid when the folder is moved.
    try:
        return path.relative_to(processed).as_posix()
    except ValueError:
        return str(path)


def _read_ledger(path: Path) -> dict[str, Path]:
    """sha256 -> processed path of the first file collected with those bytes."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}
    lines = data.split(b"\n")
    # The last element is b"" after a complete final line, or a line torn by a crash mid-append.
    lines.pop()
    known: dict[str, Path] = {}
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            entry = json.loads(raw)
            digest, where = entry["sha256"], entry["processed_path"]
            if not isinstance(digest, str) or not isinstance(where, str):
                raise TypeError
            if entry.get("status") == "unreadable":
                continue
        except (ValueError, KeyError, TypeError):
            raise StoreError(
                f"ledger {path}: line {number} is {raw[:200]!r}; expected a JSON object with"
                ' "sha256" and "processed_path" as written by collect_inbox'
            ) from None
        known.setdefault(digest, path.parent / where)
    return known


def _append_ledger(path: Path, record: dict[str, Any]) -> None:
    line = json.dumps(record, ensure_ascii=False) + "\n"
    with path.open("ab") as f:
        # After a torn last line, start a fresh one so this entry stays readable.
        if f.tell() and _last_byte(path) != b"\n":
            f.write(b"\n")
        f.write(line.encode("utf-8"))
        f.flush()
        os.fsync(f.fileno())


def _last_byte(path: Path) -> bytes:
    with path.open("rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1)


def _collector_lock(processed: Path):
    return exclusive_lock(processed / LOCK)


def part_files_per_partition(store: ScanHistoryStore) -> dict[dt.date, int]:
    """scan date -> number of data files, as the store sees them (journal applied, shared lock).

    Lists directories only (no parquet footers), so it costs milliseconds even for years of history.
    """
    if not store.root.is_dir():
        return {}
    # The store has no public listing; its reader's layout is the one the store itself trusts.
    with store._reading() as layout:
        return {day: len(layout.partitions[day]) for day in layout.partitions}


def _compact_if_needed(store: ScanHistoryStore, min_files: int) -> CompactionReport | None:
    counts = part_files_per_partition(store)
    if not counts or max(counts.values()) < min_files:
        return None
    return store.compact(min_files=min_files)


def fetch_shared_inbox(root: ObjectRoot, inbox: Path, *, pattern: str = "*.jsonl") -> list[Path]:
    """Move the logs waiting in a shared inbox (``<bucket>/inbox``) into this machine's ``inbox``.

    With an object-storage data root, scanners anywhere upload logs to ``<bucket>/inbox/`` (an
    upload is one whole object: never seen half). Each collector takes what is there under a lease
    lock, so two machines never take the same log: it downloads each one into its local inbox
    (under a hidden name, then renamed in) and then moves the object to
    ``<bucket>/inbox-fetched/<host>/``, which keeps the original in the bucket and says which machine
    took it. :func:`collect_inbox` then imports the local files as usual. A collector killed after a
    download and before the move leaves the object to be fetched again; the import of the second
    copy adds nothing (the history is idempotent by ``scan_id``). Returns the local files written.
    """
    import fnmatch
    import socket

    inbox = Path(inbox).expanduser().absolute()
    inbox.mkdir(parents=True, exist_ok=True)
    fetched: list[Path] = []
    host = socket.gethostname()
    with root.lock(".collect.lock"):
        for name in root.names():
            if name.startswith(".") or not fnmatch.fnmatch(name, pattern):
                continue
            data = root.read(name)
            if data is None:  # taken by a collector that did not hold the lock (an older version)
                continue
            target = inbox / name
            if target.exists():
                digest = hashlib.sha256(data).hexdigest()[:12]
                target = inbox / f"{target.stem}.{digest}{target.suffix}"
            write_bytes_atomic(target, data)
            fetched.append(target)
            root.fs.mv(root.key(name), f"{root.path.rsplit('/', 1)[0]}/inbox-fetched/{host}/{name}")
    return fetched
