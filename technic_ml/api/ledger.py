"""The prediction ledger: every prediction served, and the outcome the scanner reported for it.

A prediction is recorded with its ``prediction_id`` (and the scanner's ``scan_id`` when the
request named one), the model versions and both intervals. An outcome arrives later, either by
``prediction_id`` (``POST /scan/outcome``) or by ``scan_id`` when the scan history import brings
the record in (:meth:`PredictionLedger.match_frame`). From the pairs, :meth:`performance`
computes online accuracy: MAE and interval coverage over the last N outcomes, per target, only
for predictions a model made (an abstention or the heuristic has no interval to cover).

A challenger, when the registry names one, is *shadowed*: the API predicts with it too and the
``shadows`` table keeps its prediction next to the champion's, never shown to the client. The
monitor (``technic_ml.monitor``) reads both from :meth:`PredictionLedger.outcomes_frame` and
compares them on the same outcomes before a challenger may be promoted.

SQLite (standard library) in WAL mode: one writer at a time, readers never blocked; the file is
under ``<data_root>/api/``. Reporting an outcome twice keeps the first (idempotent).

Predictions are buffered and written in one transaction per flush (every ``flush_seconds`` by a
background thread, and before any read), because one transaction per served prediction cost more
than the prediction itself. A crash loses at most the last ``flush_seconds`` of the ledger, never
a prediction's answer.

Several processes (``technic-ml api --workers N``) share the file: writes wait for each other
(SQLite's lock, up to ``busy_seconds``), and an outcome for a prediction another worker made
moments ago and still holds in its buffer waits for that worker's next flush: the prediction id
carries its creation time (:mod:`.prediction_ids`), so only such ids wait, never unknown ones.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from technic_ml import stores
from technic_ml.api import prediction_ids
from technic_ml.nyse import now_ny
from technic_ml.settings import TechnicSettings

_SCHEMA = """
CREATE TABLE IF NOT EXISTS predictions (
    prediction_id TEXT PRIMARY KEY,
    scan_id TEXT,
    created_at TEXT NOT NULL,
    config TEXT NOT NULL,
    count_state TEXT NOT NULL, count_value REAL, count_lower REAL, count_upper REAL, count_version TEXT,
    duration_state TEXT NOT NULL, duration_value REAL, duration_lower REAL, duration_upper REAL,
    duration_version TEXT
);
-- Partial: most predictions name no scan, and the index was a large part of a flush's cost.
DROP INDEX IF EXISTS predictions_scan_id;
CREATE INDEX IF NOT EXISTS predictions_by_scan ON predictions (scan_id) WHERE scan_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS outcomes (
    prediction_id TEXT PRIMARY KEY REFERENCES predictions (prediction_id),
    reported_at TEXT NOT NULL,
    actual_count INTEGER,
    actual_duration REAL,
    source TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS shadows (
    prediction_id TEXT NOT NULL,
    target TEXT NOT NULL,
    version TEXT NOT NULL,
    state TEXT NOT NULL, value REAL, lower REAL, upper REAL,
    PRIMARY KEY (prediction_id, target, version)
);
"""

#: Columns of :meth:`PredictionLedger.outcomes_frame`, one row per (prediction, target, model).
OUTCOME_COLUMNS = (
    "prediction_id", "scan_id", "created_at", "reported_at", "config", "target", "role", "version",
    "state", "value", "lower", "upper", "actual",
)  # fmt: skip


@dataclass(frozen=True)
class Performance:
    target: str
    n: int
    mae: float | None
    coverage: float | None
    mean_width: float | None

    def to_dict(self) -> dict[str, Any]:
        return vars(self).copy()


def _config_json(config: dict) -> str:
    """Compact JSON with sorted keys. orjson refuses integers beyond 64 bits, which a config's free
    extra fields may hold (schemathesis sent one): the standard library writes those, same format."""
    try:
        return orjson.dumps(config, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:
        return json.dumps(config, sort_keys=True, separators=(",", ":"))


log = logging.getLogger(__name__)


class UnknownPrediction(LookupError):
    pass


class PredictionLedger:
    def __init__(self, path: Path, *, flush_seconds: float = 0.5, busy_seconds: float = 30.0):
        self.path = Path(path)
        # How long another worker may hold a new prediction before it is on disk: its flush
        # interval, twice (a flush just missed), and a second for a busy machine.
        self.visible_within = 2 * flush_seconds + 1.0
        self._pending: list[tuple] = []
        self._pending_shadows: list[tuple] = []
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()  # the connection (one, shared by the server's threads)
        # The buffer has its own lock: a request appending its row must never wait for a flush
        # writing the previous half second's rows (that wait was the p99 of a loaded server).
        self._pending_lock = threading.Lock()
        self._db = sqlite3.connect(
            self.path, check_same_thread=False, isolation_level=None, timeout=busy_seconds
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL: a power cut may lose the last transactions, never corrupt the file; a FULL fsync
        # per served prediction would cost more than the prediction.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._closed = threading.Event()
        self._flusher = threading.Thread(
            target=self._flush_loop, args=(flush_seconds,), name="technic-ledger-flush", daemon=True
        )
        self._flusher.start()

    def _flush_loop(self, every: float) -> None:
        while not self._closed.wait(every):
            try:
                self.flush()
            except sqlite3.Error as exc:  # kept for the next flush (see flush); the loop goes on
                log.warning("prediction ledger %s: flush failed, %s; again in %.1f s", self.path, exc, every)

    def flush(self) -> None:
        """Write the buffered predictions (one transaction)."""
        with self._lock:
            with self._pending_lock:
                if not self._pending and not self._pending_shadows:
                    return
                rows, self._pending = self._pending, []
                shadows, self._pending_shadows = self._pending_shadows, []
            try:
                # IMMEDIATE: take the write lock now (waiting for another worker's flush) rather
                # than at the first insert, where a conflict is an error instead of a wait.
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany("INSERT INTO predictions VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
                # OR IGNORE: a shadow is a pure function of its prediction; the first one is kept.
                self._db.executemany("INSERT OR IGNORE INTO shadows VALUES (?,?,?,?,?,?,?)", shadows)
                self._db.execute("COMMIT")
            except sqlite3.Error:
                # Nothing half-written stays, and nothing is lost: the rows go back in front of
                # what arrived meanwhile, for the next flush (the lock held too long, a full disk).
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                with self._pending_lock:
                    self._pending[:0] = rows
                    self._pending_shadows[:0] = shadows
                raise

    def close(self) -> None:
        if self._closed.is_set():
            return
        self.flush()
        self._closed.set()
        self._flusher.join(timeout=5)
        with self._lock:
            self._db.close()

    def record(
        self,
        prediction_id: str,
        config: dict,
        count,
        duration,
        scan_id: str | None = None,
        shadows: tuple = (),
    ) -> None:
        """Buffer one served prediction; ``shadows`` are challengers' predictions for the same
        request (``Prediction`` objects with a version), kept for the monitor, never served."""
        # orjson (compact, sorted keys): this runs on every /scan/predict, where json.dumps cost
        # more than the rest of the row.
        row = (
            prediction_id,
            scan_id,
            now_ny().isoformat(),
            _config_json(config),
            count.state, _num(count.value), _num(count.lower), _num(count.upper), count.version,
            duration.state, _num(duration.value), _num(duration.lower), _num(duration.upper),
            duration.version,
        )  # fmt: skip
        shadow_rows = [
            (prediction_id, p.target, p.version, p.state, _num(p.value), _num(p.lower), _num(p.upper))
            for p in shadows
            if p.version is not None
        ]
        with self._pending_lock:
            self._pending.append(row)
            if shadow_rows:
                self._pending_shadows.extend(shadow_rows)

    def report(
        self,
        prediction_id: str,
        actual_count: int | None,
        actual_duration: float | None,
        source: str = "api",
    ) -> bool:
        """Store an outcome; False when one was already stored (the first is kept)."""
        self.flush()
        if not self._known(prediction_id):
            made = prediction_ids.created_at(prediction_id)
            deadline = (made or 0) + self.visible_within
            # Made moments ago: another worker may still hold it in its buffer.
            while made is not None and made - 5 <= time.time() < deadline:
                time.sleep(0.02)
                if self._known(prediction_id):
                    break
            else:
                raise UnknownPrediction(prediction_id)
        with self._lock:
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO outcomes VALUES (?,?,?,?,?)",
                (prediction_id, now_ny().isoformat(), _int(actual_count), _num(actual_duration), source),
            )
            return cursor.rowcount == 1

    def _known(self, prediction_id: str) -> bool:
        with self._lock:
            return (
                self._db.execute(
                    "SELECT 1 FROM predictions WHERE prediction_id = ?", (prediction_id,)
                ).fetchone()
                is not None
            )

    def report_scan(self, scan_id: str, actual_count: int | None, actual_duration: float | None) -> list[str]:
        """Outcome for every prediction made for ``scan_id``; returns their ids (empty: none known)."""
        self.flush()
        with self._lock:
            ids = [
                r[0]
                for r in self._db.execute(
                    "SELECT prediction_id FROM predictions WHERE scan_id = ?", (scan_id,)
                )
            ]
        for pid in ids:
            self.report(pid, actual_count, actual_duration, source="scan_id")
        return ids

    def pending_scan_ids(self) -> set[str]:
        """Scan ids named by predictions that have no outcome yet."""
        self.flush()
        with self._lock:
            rows = self._db.execute(
                "SELECT DISTINCT p.scan_id FROM predictions p LEFT JOIN outcomes o USING (prediction_id)"
                " WHERE p.scan_id IS NOT NULL AND o.prediction_id IS NULL"
            ).fetchall()
        return {r[0] for r in rows}

    def match_frame(self, frame) -> int:
        """Outcomes from history-store rows (``ScanHistoryStore.frame()``) for pending scan ids."""
        pending = self.pending_scan_ids()
        if not pending or not len(frame):
            return 0
        found = frame[frame["scan_id"].isin(pending)]
        matched = 0
        for row in found.itertuples(index=False):
            matched += len(self.report_scan(row.scan_id, int(row.result_count), float(row.total_seconds)))
        return matched

    def performance(self, last: int = 100) -> dict[str, Performance]:
        """MAE, coverage and mean interval width over the last ``last`` outcomes, per target."""
        if last < 1:
            raise ValueError(f"last: received {last!r}; expected at least 1")
        self.flush()
        out = {}
        for target, actual in (("count", "actual_count"), ("duration", "actual_duration")):
            query = f"""
                SELECT p.{target}_value, p.{target}_lower, p.{target}_upper, o.{actual}
                FROM outcomes o JOIN predictions p USING (prediction_id)
                WHERE p.{target}_state = 'model' AND o.{actual} IS NOT NULL
                ORDER BY o.reported_at DESC, o.rowid DESC LIMIT ?
            """  # target and actual come from the fixed tuple above, never from a request
            with self._lock:
                rows = self._db.execute(query, (last,)).fetchall()
            if not rows:
                out[target] = Performance(target, 0, None, None, None)
                continue
            n = len(rows)
            mae = sum(abs(v - a) for v, _, _, a in rows) / n
            covered = sum(1 for _, lo, hi, a in rows if lo is not None and lo <= a <= hi) / n
            width = sum(hi - lo for _, lo, hi, _ in rows) / n
            out[target] = Performance(target, n, mae, covered, width)
        return out

    def outcomes_frame(self, since: str | None = None):
        """Every prediction (champion and shadowed challengers) with its outcome, if any, as a
        DataFrame of :data:`OUTCOME_COLUMNS`: one row per prediction, target and model version.

        ``role`` is ``served`` for what the client got and ``shadow`` for a challenger's. ``actual``
        is NaN until an outcome arrives. ``since`` (ISO time) keeps predictions created at or after
        it. Predictions without an outcome are kept: the abstention share counts them too.
        """
        import pandas as pd

        self.flush()
        where = "WHERE p.created_at >= ?" if since is not None else ""
        args = (since,) if since is not None else ()
        served = []
        for target, actual in (("count", "actual_count"), ("duration", "actual_duration")):
            served.append(f"""
                SELECT p.prediction_id, p.scan_id, p.created_at, o.reported_at, p.config,
                       '{target}', 'served', p.{target}_version, p.{target}_state, p.{target}_value,
                       p.{target}_lower, p.{target}_upper, o.{actual}
                FROM predictions p LEFT JOIN outcomes o USING (prediction_id) {where}""")
        shadow = f"""
            SELECT p.prediction_id, p.scan_id, p.created_at, o.reported_at, p.config,
                   s.target, 'shadow', s.version, s.state, s.value, s.lower, s.upper,
                   CASE s.target WHEN 'count' THEN o.actual_count ELSE o.actual_duration END
            FROM shadows s JOIN predictions p USING (prediction_id)
            LEFT JOIN outcomes o USING (prediction_id) {where}"""
        # target/actual come from the fixed tuple above, never from a request
        query = " UNION ALL ".join([*served, shadow]) + " ORDER BY 3, 1"
        with self._lock:
            rows = self._db.execute(query, args * 3).fetchall()
        frame = pd.DataFrame(rows, columns=list(OUTCOME_COLUMNS))
        for column in ("value", "lower", "upper", "actual"):
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
        return frame

    def counts(self) -> dict[str, int]:
        self.flush()
        with self._lock:
            predictions = self._db.execute("SELECT COUNT(*) FROM predictions").fetchone()[0]
            outcomes = self._db.execute("SELECT COUNT(*) FROM outcomes").fetchone()[0]
        return {"predictions": predictions, "outcomes": outcomes}


def _num(value) -> float | None:
    # sqlite3 stores a numpy scalar as a blob: plain floats only.
    return None if value is None else float(value)


def _int(value) -> int | None:
    return None if value is None else int(value)


def match_outcomes(settings: TechnicSettings) -> int | None:
    """Give the prediction ledger the outcomes of scans the history import brought in.

    A prediction made with a ``scan_id`` is matched when a record with that id reaches the scan
    history store (imported from the scanner's log). None when there is no ledger (no API ran).
    """
    path = settings.ledger_path
    if not path.exists():
        return None
    ledger = PredictionLedger(path)
    try:
        if not ledger.pending_scan_ids():
            return 0
        return ledger.match_frame(stores.history_store(settings).frame())
    finally:
        ledger.close()
