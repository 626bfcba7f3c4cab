"""Daily presets: the optimizer's suggestions for every goal, with provenance, and their history.

:func:`daily_presets` assembles one document: the suggestion per goal, the hot sectors, and where
it all came from (snapshot id and whether it was degraded, the model versions and their verified
coverage, when it was generated). Its ``presets_id`` hashes the inputs (session, snapshot, model
versions, goals), not the clock, so generating the same presets twice is recognised.

:class:`PresetsHistory` keeps them under ``<data_root>/presets``:

* ``history.jsonl``: append-only, one document per line; a ``presets_id`` already there is not
  appended again (re-running a day is idempotent);
* ``latest.json``: the newest document, replaced atomically, which the prediction API serves.

Writers hold a lock file. Reading fails closed: an unknown schema version or a malformed line is
a ``StoreError`` naming the file and line, except a torn last line (a writer killed mid-append),
which is skipped with a warning; the next append moves it to ``history.jsonl.torn``.
:class:`SharedPresetsHistory` is the same history on an object-storage data root.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from technic_ml import __version__
from technic_ml.contracts import MarketConditions
from technic_ml.errors import StoreError
from technic_ml.fsio import exclusive_lock, write_bytes_atomic
from technic_ml.nyse import NY, current_or_next_session, now_ny
from technic_ml.objectstore import ObjectRoot
from technic_ml.optimizer.hot_sectors import HotSectors
from technic_ml.optimizer.optimizer import Suggestion

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1


def _model_provenance(loaded) -> dict[str, Any] | None:
    if loaded is None:
        return None
    return {
        "version": loaded.version,
        "chosen": (loaded.manifest.get("validation") or {}).get("chosen"),
        "coverage": loaded.predictor.coverage,
        "coverage_verified": loaded.verified_coverage,
        "trained_until": (loaded.manifest.get("training_window") or {}).get("last"),
    }


def daily_presets(
    suggestions: dict[str, Suggestion],
    hot: HotSectors | None,
    conditions: MarketConditions,
    *,
    snapshot_id: str,
    models: dict[str, Any],
    searched: int,
    elapsed_seconds: float,
    generated_at: dt.datetime | None = None,
) -> dict[str, Any]:
    """The presets document (see the module docstring). ``models``: target -> ``Loaded`` or None."""
    sources = {s.source for s in suggestions.values()}
    source = sources.pop() if len(sources) == 1 else "mixed"
    session = current_or_next_session(conditions.as_of) if conditions.as_of is not None else None
    model_info = {target: _model_provenance(loaded) for target, loaded in models.items()}
    goals = {name: s.spec for name, s in suggestions.items()}
    key = json.dumps(
        {
            "session": str(session),
            "snapshot": snapshot_id,
            "models": {t: (m or {}).get("version") for t, m in model_info.items()},
            "goals": goals,
            "searched": searched,
        },
        sort_keys=True,
    )
    flags = sorted({f for s in suggestions.values() for f in s.flags})
    if conditions.degraded:
        flags.insert(0, "market snapshot degraded: " + "; ".join(conditions.degraded_reasons or []))
    return {
        "schema_version": SCHEMA_VERSION,
        "presets_id": hashlib.sha256(key.encode()).hexdigest()[:16],
        "for_session": None if session is None else session.isoformat(),
        "generated_at": (generated_at or now_ny()).isoformat(),
        "source": source,
        "flags": flags,
        "provenance": {
            "snapshot_id": snapshot_id,
            "snapshot_as_of": None if conditions.as_of is None else conditions.as_of.isoformat(),
            "snapshot_degraded": bool(conditions.degraded),
            "market_data_source": conditions.data_source,
            "models": model_info,
            "technic_ml": __version__,
            "searched_configs": searched,
            "elapsed_seconds": round(elapsed_seconds, 4),
        },
        "presets": {name: s.to_dict() for name, s in suggestions.items()},
        "hot_sectors": None if hot is None else hot.to_dict(),
    }


class PresetsHistory:
    """Append-only presets history plus the latest document (see the module docstring)."""

    def __init__(self, root: Path):
        self.root = Path(root)

    @property
    def history_file(self) -> Path:
        return self.root / "history.jsonl"

    @property
    def latest_file(self) -> Path:
        return self.root / "latest.json"

    def save(self, document: dict[str, Any]) -> bool:
        """Append ``document`` and make it the latest; False when its ``presets_id`` was already saved."""
        _check(document, "document")
        line = json.dumps(document, sort_keys=True, allow_nan=False)
        with exclusive_lock(self.root / ".lock"):
            stored = document["presets_id"] in {d["presets_id"] for d in self._read_history()}
            if not stored:
                self._append(line)
            # Also when it was already stored: a save killed between the two writes left latest.json
            # behind, and the re-run is what brings it forward.
            if _moves_latest(_replaceable_latest(self), document, stored=stored):
                write_bytes_atomic(self.latest_file, line.encode())
        return not stored

    def latest(self) -> dict[str, Any] | None:
        if not self.latest_file.exists():
            return None
        try:
            document = json.loads(self.latest_file.read_text())
        except (OSError, ValueError) as exc:
            raise StoreError(
                f"{self.latest_file}: unreadable presets ({exc}); expected one JSON document"
            ) from None
        return _check(document, str(self.latest_file))

    def history(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Saved documents, newest first."""
        documents = self._read_history()[::-1]
        return documents if limit is None else documents[:limit]

    # -- internals -------------------------------------------------------------------------------

    def _read_history(self) -> list[dict[str, Any]]:
        if not self.history_file.exists():
            return []
        raw = self.history_file.read_bytes()
        lines = raw.split(b"\n")
        torn = not raw.endswith(b"\n") and raw
        documents = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                documents.append(_check(json.loads(line), f"{self.history_file}:{number}"))
            except (ValueError, StoreError) as exc:
                if torn and number == len(lines):
                    log.warning(
                        "%s:%d: skipping a torn last line (a writer was interrupted)",
                        self.history_file,
                        number,
                    )
                    continue
                raise StoreError(f"{self.history_file}:{number}: {exc}") from None
        return documents

    def _append(self, line: str) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self._set_aside_torn_tail()
        with open(self.history_file, "ab") as fh:
            fh.write(line.encode() + b"\n")
            fh.flush()
            os.fsync(fh.fileno())

    def _set_aside_torn_tail(self) -> None:
        """Move a torn last line (a writer killed mid-append) to ``history.jsonl.torn``, then cut it.

        Its save never completed (``latest.json`` is written after the append), so nothing is
        lost; the bytes are kept for inspection rather than deleted.
        """
        if not self.history_file.exists():
            return
        raw = self.history_file.read_bytes()
        if not raw or raw.endswith(b"\n"):
            return
        cut = raw.rfind(b"\n") + 1
        with open(self.history_file.with_suffix(".jsonl.torn"), "ab") as torn:
            torn.write(raw[cut:] + b"\n")
            torn.flush()
            os.fsync(torn.fileno())
        with open(self.history_file, "r+b") as fh:
            fh.truncate(cut)
            fh.flush()
            os.fsync(fh.fileno())
        log.warning(
            "%s: a torn last line was moved to %s", self.history_file, self.history_file.name + ".torn"
        )


class SharedPresetsHistory(PresetsHistory):
    """The presets history under an object-storage root: one object per document.

    ``history/<presets_id>.json`` is created only if absent (a conditional create), so two workers
    saving the same presets store it once; ``latest.json`` is replaced under a lease lock and only by
    a document generated no earlier than the one it holds, so the newest presets win whoever finishes
    last, and re-saving a document whose first save was killed halfway brings ``latest.json`` forward.
    """

    def __init__(self, root: ObjectRoot):
        self.store = root
        self.root = Path(root.path)

    @property
    def latest_file(self) -> Path:
        return Path(self.store.key("latest.json"))

    def save(self, document: dict[str, Any]) -> bool:
        _check(document, "document")
        line = json.dumps(document, sort_keys=True, allow_nan=False).encode()
        created = self.store.create("history", f"{document['presets_id']}.json", data=line)
        # Also when it was already stored: a save killed between the two writes left latest.json
        # behind, and the re-run is what brings it forward.
        with self.store.lock(".lock"):
            if _moves_latest(_replaceable_latest(self), document, stored=not created):
                self.store.write("latest.json", data=line)
        return created

    def latest(self) -> dict[str, Any] | None:
        raw = self.store.read("latest.json")
        if raw is None:
            return None
        try:
            document = json.loads(raw)
        except ValueError as exc:
            raise StoreError(
                f"{self.latest_file}: unreadable presets ({exc}); expected one JSON document"
            ) from None
        return _check(document, str(self.latest_file))

    def _read_history(self) -> list[dict[str, Any]]:
        documents = []
        for name in self.store.names("history"):
            raw = self.store.read("history", name)
            if raw is None:
                continue
            try:
                documents.append(_check(json.loads(raw), self.store.key("history", name)))
            except ValueError as exc:
                raise StoreError(f"{self.store.key('history', name)}: {exc}") from None
        return sorted(documents, key=_generated)


def _replaceable_latest(history) -> dict[str, Any] | None:
    """The latest presets, or None when the file cannot be read (only a hand edit makes that):
    a save then replaces it rather than failing, and says so."""
    try:
        return history.latest()
    except StoreError as exc:
        log.warning("%s; the presets being saved replace it", exc)
        return None


def _moves_latest(current: dict[str, Any] | None, document: dict[str, Any], *, stored: bool) -> bool:
    """Whether ``document`` becomes the latest presets: there are none yet, or it was generated
    later than the current ones; at the same moment a newly saved document wins, and a re-saved one
    (already in the history) does not move the latest back."""
    if current is None:
        return True
    new, held = _generated(document), _generated(current)
    return new > held or (new == held and not stored)


def _generated(document: dict[str, Any]) -> dt.datetime:
    # Compared as instants: New York ISO texts carry -05:00 or -04:00, so their text order is not
    # time order across a daylight-saving change.
    when = dt.datetime.fromisoformat(str(document["generated_at"]))
    return when if when.tzinfo is not None else when.replace(tzinfo=NY)


def _check(document: Any, where: str) -> dict[str, Any]:
    if not isinstance(document, dict):
        raise StoreError(f"{where}: received {type(document).__name__}; expected a presets document (object)")
    version = document.get("schema_version")
    if version != SCHEMA_VERSION:
        raise StoreError(
            f"{where}: schema_version {version!r}; expected {SCHEMA_VERSION} (refusing to guess)"
        )
    missing = [k for k in ("presets_id", "generated_at", "presets", "provenance") if k not in document]
    if missing:
        raise StoreError(f"{where}: missing {missing}; expected a complete presets document")
    try:
        _generated(document)  # which presets are the latest is decided on this instant
    except (TypeError, ValueError):
        raise StoreError(
            f"{where}: generated_at {document['generated_at']!r}; expected an ISO 8601 date-time"
        ) from None
    return document
