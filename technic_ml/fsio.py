"""Crash-safe file writes and inter-process locks, the one copy every local store uses.

A reader must never see half a file: data goes to a hidden temporary file in the same directory
(a leading "." keeps pyarrow's dataset discovery and the inbox away from it; the ".tmp" suffix
lets the history store recognise leftovers), is flushed and fsynced, then renamed over the
destination, and the directory entry is fsynced so the rename survives a power loss. The scan
history store splits write and rename around its compaction journal (``history.store``); everything
that writes a whole file at once uses :func:`write_atomic`. Locks are ``fcntl.flock`` on a lock
file: local filesystems only (docs/storage.md says what each store guarantees where).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


def fsync_dir(directory: Path) -> None:
    """Make a rename or a new entry in ``directory`` survive a power loss."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, write) -> None:
    """Call ``write(binary file)`` into a hidden temp file, then rename it to ``path`` (see above)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_parquet_atomic(path: Path, table: pa.Table, **write_options) -> None:
    """Write ``table`` to ``path`` atomically (temp file, fsync, rename, directory fsync)."""
    write_atomic(path, lambda fh: pq.write_table(table, fh, **write_options))


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """:func:`write_parquet_atomic` for bytes."""
    write_atomic(path, lambda fh: fh.write(data))


@contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock file between processes (local filesystems only)."""
    import fcntl

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
