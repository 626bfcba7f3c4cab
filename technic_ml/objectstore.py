"""A shared data root on object storage: ``TECHNIC_DATA_ROOT=s3://bucket/prefix``.

Several workers (a Prefect work pool on several machines) and an API host elsewhere share one
bucket. Object stores have no ``flock`` and no rename, so the stores that live there are built on
the two primitives every S3-compatible store now offers:

* **whole-object writes**: a reader sees the old object or the new one, never half of one;
* **conditional create** (``If-None-Match: *``): of two writers creating the same key, exactly one
  succeeds. :func:`create` exposes it; :func:`lease` builds a lock on it (a lock object that names
  its holder and an expiry, so a worker killed while holding it blocks others only until the lease
  runs out).

The scan history does not need the lock: it is a Delta table (:mod:`technic_ml.history.delta`),
whose commits are themselves conditional creates. Which store uses what is in docs/storage.md.

Credentials and the endpoint come from the usual AWS variables (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``, ``AWS_ENDPOINT_URL`` for MinIO, Ceph or a test server).
Listings are never cached: another machine may have written since the last look.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from technic_ml.errors import StoreError

log = logging.getLogger(__name__)

LEASE_SECONDS = 300.0
"""A lock's lease: longer than any critical section here (publishing a model, appending presets)."""
WAIT_SECONDS = 600.0


def is_url(text: object) -> bool:
    """True for ``scheme://...`` other than ``file://`` (a local path stays a path)."""
    if not isinstance(text, str) or "://" not in text:
        return False
    return urlparse(text).scheme not in ("", "file")


def _fsspec_options(scheme: str) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if scheme in ("s3", "s3a"):
        options["use_listings_cache"] = False
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint:
            options["endpoint_url"] = endpoint
    return options


def open_filesystem(url: str) -> tuple[Any, str]:
    """(fsspec filesystem, path inside it) for ``url``; a clear error when its driver is missing."""
    import fsspec

    scheme = urlparse(url).scheme
    try:
        fs, path = fsspec.core.url_to_fs(url, **_fsspec_options(scheme))
    except ImportError as exc:
        raise StoreError(
            f"data root {url}: the {scheme}:// driver is not installed ({exc}); expected"
            " `pip install 'technic-ml[cloud]'` (s3fs and deltalake)"
        ) from None
    return fs, path.rstrip("/")


def create(fs: Any, path: str, data: bytes) -> bool:
    """Write ``data`` to ``path`` only if nothing is there; False when another writer was first."""
    try:
        fs.pipe_file(path, data, mode="create")
    except FileExistsError:
        return False
    return True


def read(fs: Any, path: str) -> bytes | None:
    """The object's bytes, or None when it does not exist."""
    try:
        return fs.cat_file(path)
    except FileNotFoundError:
        return None


def _holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@contextlib.contextmanager
def lease(
    fs: Any, path: str, *, lease_seconds: float = LEASE_SECONDS, wait_seconds: float = WAIT_SECONDS
) -> Iterator[None]:
    """Hold the lock object ``path`` (one holder at a time across machines) for the ``with`` body.

    Taken by conditional create; released by deleting it if it is still ours. A lock whose lease has
    run out (its holder died) is broken with a warning. Waiting longer than ``wait_seconds`` raises
    :class:`StoreError` naming the holder. The lease is wall-clock time of the holder's machine:
    machines sharing a bucket need clocks within a small fraction of ``lease_seconds``.
    """
    token = uuid.uuid4().hex
    deadline = time.monotonic() + wait_seconds
    delay = 0.02
    while True:
        body = {"holder": _holder(), "token": token, "expires_at": time.time() + lease_seconds}
        if create(fs, path, json.dumps(body).encode()):
            break
        raw = read(fs, path)
        held = _parse_lock(raw)
        if raw is not None and (held is None or held["expires_at"] < time.time()):
            what = "unreadable" if held is None else f"held by {held['holder']}, lease expired"
            log.warning("lock %s: %s; breaking it", path, what)
            # Delete only what we judged: another breaker may have replaced it meanwhile.
            if read(fs, path) == raw:
                with contextlib.suppress(FileNotFoundError):
                    fs.rm_file(path)
            continue
        if time.monotonic() > deadline:
            who = held["holder"] if held else "a holder that just released it"
            raise StoreError(f"lock {path}: still held by {who} after {wait_seconds:.0f} s; expected it free")
        time.sleep(delay * (1 + random.random()))
        delay = min(delay * 2, 1.0)
    try:
        yield
    finally:
        held = _parse_lock(read(fs, path))
        if held is not None and held.get("token") == token:
            with contextlib.suppress(FileNotFoundError):
                fs.rm_file(path)
        else:
            log.warning("lock %s: no longer ours when released (lease expired and broken?)", path)


def _parse_lock(raw: bytes | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        held = json.loads(raw)
        float(held["expires_at"])
        str(held["holder"])
    except (ValueError, TypeError, KeyError):
        return None
    return held


@dataclass
class ObjectRoot:
    """A directory-like prefix in object storage: the object-storage twin of a local store root."""

    url: str
    fs: Any = field(init=False, repr=False)
    path: str = field(init=False)

    def __post_init__(self) -> None:
        self.url = self.url.rstrip("/")
        self.fs, self.path = open_filesystem(self.url)

    def key(self, *parts: str) -> str:
        return "/".join([self.path, *parts])

    def read(self, *parts: str) -> bytes | None:
        return read(self.fs, self.key(*parts))

    def write(self, *parts: str, data: bytes) -> None:
        """Replace the object (whole-object put: readers see the old one or the new one)."""
        self.fs.pipe_file(self.key(*parts), data)

    def create(self, *parts: str, data: bytes) -> bool:
        return create(self.fs, self.key(*parts), data)

    def names(self, *parts: str) -> list[str]:
        """Object names directly under ``parts`` (sorted; empty when there is none)."""
        try:
            entries = self.fs.ls(self.key(*parts), detail=False, refresh=True)
        except FileNotFoundError:
            return []
        return sorted(e.rstrip("/").rsplit("/", 1)[-1] for e in entries)

    def lock(self, *parts: str, **kwargs: Any):
        return lease(self.fs, self.key(*parts), **kwargs)


def delta_storage_options(url: str) -> dict[str, str]:
    """deltalake ``storage_options`` for ``url`` (delta-rs reads its own, not fsspec's)."""
    scheme = urlparse(url).scheme
    options: dict[str, str] = {}
    if scheme in ("s3", "s3a"):
        # Commits by conditional put: correct with several writers, no DynamoDB lock table needed.
        options["conditional_put"] = "etag"
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint:
            options["AWS_ENDPOINT_URL"] = endpoint
            if endpoint.startswith("http://"):
                options["AWS_ALLOW_HTTP"] = "true"
        if not (os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")):
            options["AWS_REGION"] = "us-east-1"
    return options
