"""Prediction ids: 32 hex digits, the first 12 the creation time in milliseconds since the epoch
(as in a UUIDv7), the other 20 random.

Several API workers share one ledger, and each buffers its predictions for a moment before
writing them (:mod:`.ledger`). An outcome may reach a worker before the worker that made the
prediction has written it: the id's time tells the ledger whether to wait for that write (an id
made moments ago) or to answer at once that the id is unknown (any other id, a client's typo or a
fuzzer's). The random part keeps ids unguessable; clients treat ids as opaque text.
"""

from __future__ import annotations

import os
import threading
import time

# One getrandom call per 409 ids: under load on a virtual machine a call took up to 8 µs, as much
# as the rest of a cached prediction.
_POOL = 4096
_random = b""
_at = _POOL
_lock = threading.Lock()


def _forget() -> None:
    # A forked worker must not draw the parent's remaining bytes: two processes, the same ids.
    global _random, _at
    _random, _at = b"", _POOL


os.register_at_fork(after_in_child=_forget)


def new() -> str:
    global _random, _at
    with _lock:
        if _at + 10 > len(_random):
            _random, _at = os.urandom(_POOL), 0
        part = _random[_at : _at + 10]
        _at += 10
    return f"{time.time_ns() // 1_000_000:012x}{part.hex()}"


def created_at(prediction_id: str) -> float | None:
    """When the id was made (seconds since the epoch), or None for a text no worker made."""
    if len(prediction_id) != 32:
        return None
    try:
        int(prediction_id, 16)
        return int(prediction_id[:12], 16) / 1000
    except ValueError:
        return None
