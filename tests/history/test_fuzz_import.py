"""Property-based fuzz of the importer: valid records mixed with arbitrary lines, bytes and JSON.

Invariants, whatever the input: the import never raises; every valid record is stored exactly once
with identical fields; every other non-blank line is quarantined with a reason and its exact bytes;
afterwards every read path (statistics, recent, export, by_config, between, retention dry run, the
frame the training loader, hot sectors and the prediction ledger read) works, and an export
re-imports to the same records. The values include timestamps and dates at and beyond the limits of
the store's supported range (1900-01-01 .. 2199-12-31, New York time).

The example budget is fixed so that CI sees the same examples on every run (``derandomize``);
``TECHNIC_FUZZ_EXAMPLES=2000`` runs a longer, random search locally.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from technic_ml.api.ledger import PredictionLedger
from technic_ml.contracts import EARLIEST, LATEST, parse_record
from technic_ml.history import ScanHistoryStore
from technic_ml.nyse import NY
from technic_ml.optimizer.hot_sectors import hot_sectors
from technic_ml.predictors.estimators import Prediction
from technic_ml.predictors.features import dataset_from_history
from technic_ml.predictors.training import load_training_data
from tests.history.test_schema import BASE

EXAMPLES = int(os.environ.get("TECHNIC_FUZZ_EXAMPLES", "50"))
RANDOM = "TECHNIC_FUZZ_EXAMPLES" in os.environ

# -- valid records ------------------------------------------------------------------------------
finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
json_scalar = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), finite, st.text(max_size=12))
json_value = st.recursive(
    json_scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
extras = st.dictionaries(
    st.text(min_size=1, max_size=10).filter(lambda k: k not in BASE["config"] and k not in ("industries",)),
    json_value,
    max_size=2,
)


def _exists_in_new_york(naive: dt.datetime) -> bool:
    return naive.replace(tzinfo=NY).astimezone(dt.UTC).astimezone(NY).replace(tzinfo=None) == naive


timestamps = st.one_of(
    # Naive New York wall-clock times inside the supported range (a gap time is not valid).
    st.datetimes(min_value=EARLIEST.replace(tzinfo=None), max_value=LATEST.replace(tzinfo=None))
    .filter(_exists_in_new_york)
    .map(dt.datetime.isoformat),
    # Aware times well inside it.
    st.datetimes(
        min_value=dt.datetime(1900, 1, 2),
        max_value=dt.datetime(2199, 12, 30),
        timezones=st.sampled_from(
            [dt.UTC, NY, dt.timezone(dt.timedelta(hours=-10)), dt.timezone(dt.timedelta(hours=14))]
        ),
    ).map(dt.datetime.isoformat),
    st.sampled_from(
        [
            "1900-01-01T00:00:00",
            "2199-12-31T23:59:59.999999",
            "1900-01-01T00:00:00-05:00",
            "2025-11-02T01:30:00",  # ambiguous: its first occurrence
            "2025-11-02T01:30:00-05:00",  # its second occurrence
            "2025-09-17T14:23:47.6634391234",  # truncated to microseconds
        ]
    ),
)
bar_dates = st.dates(min_value=EARLIEST.date(), max_value=LATEST.date()).map(dt.date.isoformat)


@st.composite
def valid_records(draw, scan_id: str) -> dict[str, Any]:
    d = copy.deepcopy(BASE)
    d["scan_id"] = scan_id
    d["timestamp"] = draw(timestamps)
    config = d["config"]
    config["max_symbols"] = draw(st.integers(1, 10_000))
    config["min_tech_rating"] = draw(st.floats(0, 100))
    config["min_dollar_vol"] = draw(st.floats(0, 1e12))
    config["sectors"] = draw(st.one_of(st.none(), st.lists(st.text(max_size=12), max_size=3)))
    if draw(st.booleans()):
        config["industries"] = draw(st.one_of(st.none(), st.lists(st.text(max_size=12), max_size=3)))
    config["lookback_days"] = draw(st.integers(20, 500))
    config.update(draw(extras))
    count = draw(st.integers(0, 2**40))
    d["results"] = {"count": count, "signals": draw(st.integers(0, count))}
    d["performance"]["total_seconds"] = draw(st.floats(0, 1e6))
    mc = d["market_conditions"]
    mc["spy_trend"] = draw(st.sampled_from(["bullish", "neutral", "bearish"]))
    mc["spy_momentum"] = draw(st.floats(-1, 1))
    mc["vix_level"] = draw(st.floats(0.01, 200))
    if draw(st.booleans()):
        mc["as_of"] = draw(timestamps)
        mc["spy_bar_date"] = draw(bar_dates)
    if draw(st.booleans()):
        d["provenance"] = {"source": "backfill", "data_source": "parquet", "bar_date": draw(bar_dates)}
    return d


# -- hostile lines --------------------------------------------------------------------------------
OUT_OF_RANGE_TIMES = [
    "0001-01-01T00:00:00+05:00",
    "0001-01-01T00:00:00",
    "9999-12-31T23:59:59",
    "9999-12-31T23:59:59-05:00",
    "1899-12-31T23:59:59.999999",
    "2200-01-01T00:00:00",
    "2199-12-31T23:59:59.999999-10:00",  # 2200-01-01 in New York
    "1900-01-01T00:00:00+14:00",  # 1899-12-31 in New York
    "2025-03-09T02:30:00",  # does not exist in New York
    "0000-01-01T00:00:00",
    "2025-13-01T00:00:00",
    "2025-02-30T00:00:00",
    "20250917",
    "",
]
OUT_OF_RANGE_DATES = ["0001-01-01", "9999-12-31", "1899-12-31", "2200-01-01", "2025-02-30"]
PATHS = [
    ("timestamp",),
    ("market_conditions", "as_of"),
    ("market_conditions", "spy_bar_date"),
    ("provenance", "bar_date"),
    ("scan_id",),
    ("config", "max_symbols"),
    ("config", "sectors"),
    ("results", "count"),
    ("performance", "total_seconds"),
    ("market_conditions", "vix_level"),
    ("market_conditions", "degraded"),
    ("config",),
    ("results",),
]


@st.composite
def mutated(draw, record: dict[str, Any]) -> bytes:
    """A record with one field replaced, a key given twice, or its text damaged."""
    d = copy.deepcopy(record)
    kind = draw(st.sampled_from(["field", "time", "date", "duplicate-key", "truncate", "append", "bytes"]))
    if kind in ("field", "time", "date"):
        path = draw(st.sampled_from(PATHS))
        value = {
            "field": json_value,
            "time": st.sampled_from(OUT_OF_RANGE_TIMES),
            "date": st.sampled_from(OUT_OF_RANGE_DATES),
        }[kind]
        target = d
        for key in path[:-1]:
            target = (
                target.setdefault(key, {})
                if isinstance(target.get(key), dict) or key not in target
                else target[key]
            )
        if isinstance(target, dict):
            target[path[-1]] = draw(value)
        return json.dumps(d).encode()
    text = json.dumps(d).encode()
    if kind == "duplicate-key":
        key = draw(st.sampled_from([b'"scan_id"', b'"max_symbols"', b'"count"', b'"spy_trend"']))
        value = draw(json_scalar)
        at = text.index(key)
        return text[:at] + key + b": " + json.dumps(value).encode() + b", " + text[at:]
    if kind == "truncate":
        return text[: draw(st.integers(1, len(text) - 1))]
    if kind == "append":
        return text + draw(st.binary(min_size=1, max_size=8)).replace(b"\n", b" ")
    at = draw(st.integers(0, len(text) - 1))
    return text[:at] + draw(st.binary(min_size=1, max_size=4)).replace(b"\n", b"") + text[at + 1 :]


junk = st.one_of(
    st.binary(max_size=60),
    st.text(max_size=60).map(lambda t: t.encode("utf-8", "surrogatepass")),
    json_value.map(lambda v: json.dumps(v).encode()),
    st.sampled_from([b"\xef\xbb\xbf{}", b"\x00", b"{", b"[]", b"null", b'{"scan_id": "\\ud800"}', b"\r"]),
).map(lambda b: b.replace(b"\n", b" "))


@st.composite
def logs(draw) -> list[tuple[bytes, dict[str, Any] | None]]:
    """Lines of a log: (bytes, the record when the line was built valid)."""
    n = draw(st.integers(1, 12))
    lines = []
    for i in range(n):
        scan_id = f"fuzz-{i}"
        kind = draw(st.sampled_from(["valid", "valid", "mutated", "junk"]))
        record = draw(valid_records(scan_id)) if kind != "junk" else None
        if kind == "valid":
            lines.append((json.dumps(record).encode(), record))
        elif kind == "mutated":
            lines.append((draw(mutated(record)), None))
        else:
            lines.append((draw(junk), None))
    return lines


def _quarantined(store: ScanHistoryStore) -> dict[int, tuple[str, bytes]]:
    entries = {}
    for path in store.quarantine_dir.glob("*.jsonl"):
        for text in path.read_text(encoding="utf-8").splitlines():
            entry = json.loads(text)
            raw = (
                base64.b64decode(entry["raw_base64"])
                if "raw_base64" in entry
                else entry["raw"].encode("utf-8", "surrogatepass")
            )
            assert entry["line_number"] not in entries, "a line was quarantined twice"
            entries[entry["line_number"]] = (entry["reason"], raw)
    return entries


@pytest.mark.slow
@settings(
    max_examples=EXAMPLES,
    derandomize=not RANDOM,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(lines=logs())
def test_import_never_raises_keeps_every_valid_record_and_quarantines_the_rest(lines) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        src = root / "log.jsonl"
        src.write_bytes(b"\n".join(raw for raw, _ in lines) + b"\n")
        store = ScanHistoryStore(root / "history")

        summary = store.import_jsonl(src)

        # A UTF-8 byte order mark at the start of the file is not part of its first line.
        lines = [(lines[0][0].removeprefix(b"\xef\xbb\xbf"), lines[0][1]), *lines[1:]]
        non_blank = {i for i, (raw, _) in enumerate(lines, start=1) if raw.strip()}
        quarantined = _quarantined(store)
        assert summary.lines_read == len(lines)
        assert summary.lines_read == (
            summary.blank_lines + summary.added + summary.duplicates + summary.retired + summary.quarantined
        )
        for number, (reason, raw) in quarantined.items():
            assert reason, f"line {number} quarantined without a reason"
            assert raw == lines[number - 1][0], f"line {number}: quarantined bytes differ from the input"
        stored = {r.scan_id: r for r in store.between(None, None)}
        assert len(stored) == store.count() == summary.added
        for number, (raw, built) in enumerate(lines, start=1):
            if built is not None:
                assert number not in quarantined, quarantined.get(number)
                assert stored[built["scan_id"]].model_copy(update={"provenance": None}) == parse_record(
                    raw
                ).model_copy(update={"provenance": None})
        # Every non-blank line is either stored (or a repeat of a stored id) or quarantined.
        assert set(quarantined) <= non_blank
        assert len(non_blank) - len(quarantined) == summary.added + summary.duplicates

        _every_read_path_works(store, root, stored)


def _every_read_path_works(store: ScanHistoryStore, root: Path, stored: dict) -> None:
    assert store.statistics()["count"].sum() == len(stored)
    store.statistics(by=["sectors", "spy_trend", "scan_date"])
    assert [r.scan_id for r in store.recent(3)] == [r.scan_id for r in sorted(
        # UTC: Python compares two New York times of the fall-back hour as equal (fold is ignored).
        stored.values(), key=lambda r: (r.timestamp.astimezone(dt.UTC), r.scan_id), reverse=True
    )][:3]  # fmt: skip
    for record in list(stored.values())[:2]:
        assert record.scan_id in {r.scan_id for r in store.by_config(max_symbols=record.config.max_symbols)}
    store.retention(30, mode="drop", dry_run=True)
    store.retention(10**9, mode="archive", dry_run=True)
    frame = store.frame()
    assert len(frame) == len(stored)
    if stored:
        dataset_from_history(frame)
        data, _ = load_training_data(store, None)
        assert len(data) + len(data.dropped) == len(stored)
        hot_sectors(frame, frame["timestamp"].max().to_pydatetime(), window_days=30)
        # The prediction API's ledger matches predictions to scans from the same frame.
        ledger = PredictionLedger(root / "ledger.sqlite3")
        count = Prediction("count", "model", 50.0, 40.0, 60.0, 0.9, p_empty=0.0, version="v")
        for scan_id in list(stored)[:2]:
            ledger.record(
                f"p-{scan_id}", {}, count, Prediction("duration", "heuristic", 2.0), scan_id=scan_id
            )
        try:
            assert ledger.match_frame(frame) == min(2, len(stored))
        finally:
            ledger.close()
    # The export re-imports to the same records: the round trip is exact.
    exported = root / "export.jsonl"
    assert store.export_jsonl(exported, include_provenance=True) == len(stored)
    again = ScanHistoryStore(root / "again")
    summary = again.import_jsonl(exported)
    assert summary.quarantined == 0 and summary.added == len(stored)
    assert {r.scan_id: r for r in again.between(None, None)} == stored
