"""The scan history's on-disk table: the arrow schema and ScanRecord <-> row conversion.

:mod:`technic_ml.history.store` keeps scan records as flat, typed parquet columns so analytics and
the predictors read plain columns (no nested structs, no per-row JSON parsing). This module is the
one place that knows how a :class:`~technic_ml.contracts.ScanRecord` maps onto those columns and
back; the mapping is lossless, so ``table_to_records(records_to_table(rs)) == rs``.

Layout of a row
---------------
* ``scan_id``, ``timestamp`` (``timestamp[us, tz=UTC]``); the New York ``scan_date`` is not stored in
  the files, it is the hive partition directory (``scan_date=2025-09-17/``) and comes back as a
  ``date32`` column when the dataset is read.
* Every declared :class:`ScanConfig` field as its own column (``sectors``/``industries`` as nullable
  ``list<string>``; ``null`` and ``[]`` stay distinct), plus ``sectors_key``/``industries_key``: the
  sorted, de-duplicated list as JSON text, ``null`` meaning "all" (``None`` or ``[]``), so filters and
  group-bys on "the same set of sectors" are plain string comparisons. Unknown config keys are kept
  in ``config_extra`` (JSON object text, ``null`` when there are none).
* ``result_count``/``result_signals``; the declared performance fields, with ``stage_seconds`` and
  unknown performance keys in ``performance_extra`` (JSON).
* Every declared :class:`MarketConditions` field (the snapshot provenance ones prefixed ``market_``)
  plus ``market_extra`` (JSON); ``provenance_source``/``provenance_data_source``.
* ``content_hash``: 128-bit BLAKE2b over a canonical serialization of everything except provenance
  (see :func:`content_hashes`). Two records with the same ``scan_id`` are the same scan when their hashes
  are equal; otherwise the store reports a conflict. Provenance is deliberately outside the hash: it
  says how a record reached the store, not what the scan was, so importing the same log once as
  ``scanner_log`` and again as ``backfill`` is a duplicate, not a conflict (the first import's
  provenance is kept).

Changing any of this (columns, types, the hash input) is a new ``SCHEMA_VERSION``.
"""

from __future__ import annotations

import hashlib
import json
import operator
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from technic_ml.contracts import MARKET_SIGNALS, ScanConfig, ScanRecord
from technic_ml.errors import ContractError, StoreError

SCHEMA_VERSION = 1

_INT64_MAX = 2**63 - 1
_TS = pa.timestamp("us", tz="UTC")
_STR_LIST = pa.list_(pa.string())

# Stored columns, in file order. The content hash covers the columns before PROVENANCE_START.
FILE_SCHEMA = pa.schema(
    [
        pa.field("scan_id", pa.string(), nullable=False),
        pa.field("timestamp", _TS, nullable=False),
        pa.field("max_symbols", pa.int64(), nullable=False),
        pa.field("min_tech_rating", pa.float64(), nullable=False),
        pa.field("min_dollar_vol", pa.float64(), nullable=False),
        pa.field("sectors", _STR_LIST),
        pa.field("industries", _STR_LIST),
        pa.field("lookback_days", pa.int64(), nullable=False),
        pa.field("config_extra", pa.string()),
        pa.field("result_count", pa.int64(), nullable=False),
        pa.field("result_signals", pa.int64(), nullable=False),
        pa.field("total_seconds", pa.float64(), nullable=False),
        pa.field("symbols_scanned", pa.int64(), nullable=False),
        pa.field("symbols_per_second", pa.float64()),
        pa.field("symbols_returned", pa.int64()),
        pa.field("performance_extra", pa.string()),
        pa.field("spy_trend", pa.string(), nullable=False),
        pa.field("spy_volatility", pa.float64(), nullable=False),
        pa.field("spy_momentum", pa.float64(), nullable=False),
        pa.field("spy_return_5d", pa.float64(), nullable=False),
        pa.field("spy_return_20d", pa.float64(), nullable=False),
        pa.field("vix_level", pa.float64()),  # null only in a degraded snapshot
        pa.field("time_of_day", pa.int64(), nullable=False),
        pa.field("day_of_week", pa.int64(), nullable=False),
        pa.field("is_market_hours", pa.bool_(), nullable=False),
        pa.field("market_as_of", _TS),
        pa.field("market_data_source", pa.string()),
        pa.field("market_degraded", pa.bool_()),
        pa.field("market_degraded_reasons", _STR_LIST),
        pa.field("spy_bar_date", pa.date32()),
        pa.field("vix_bar_date", pa.date32()),
        pa.field("market_extra", pa.string()),
        # -- not part of the content hash from here on --
        pa.field("provenance_source", pa.string()),
        pa.field("provenance_data_source", pa.string()),
        pa.field("provenance_bar_date", pa.date32()),
        pa.field("provenance_scanner_version", pa.string()),
        pa.field("sectors_key", pa.string()),
        pa.field("industries_key", pa.string()),
        pa.field("content_hash", pa.string(), nullable=False),
    ],
    metadata={b"technic_ml.history.schema_version": str(SCHEMA_VERSION).encode()},
)
PROVENANCE_START = FILE_SCHEMA.get_field_index("provenance_source")
COLUMNS: tuple[str, ...] = tuple(FILE_SCHEMA.names)
CONTENT_COLUMNS: tuple[str, ...] = COLUMNS[:PROVENANCE_START]

PARTITION_FIELD = pa.field("scan_date", pa.date32(), nullable=False)
DATASET_SCHEMA = FILE_SCHEMA.append(PARTITION_FIELD)
"""Schema of the dataset as read: the file columns plus the ``scan_date`` partition column."""
_ROW_FIELDS = [*list(FILE_SCHEMA)[:-1], PARTITION_FIELD]  # record_row order: no content_hash, + scan_date

CONFIG_FIELDS: tuple[str, ...] = tuple(ScanConfig.model_fields)
SET_FIELDS = ("sectors", "industries")

# Unbounded integers in the contract; parquet stores int64, so larger values are rejected per record.
_UNBOUNDED_INTS = (
    "results.count",
    "results.signals",
    "performance.symbols_scanned",
    "performance.symbols_returned",
)

# Extras are stored as JSON with sorted keys: one canonical text per object, so the content hash does
# not depend on key order. (An export therefore lists unknown keys alphabetically; JSON objects are
# unordered, and the exported line is json.loads-equal to the original.)
_CANONICAL_JSON = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"))
_memo: dict[Any, str] = {}
_MEMO_LIMIT = 4096
_CACHEABLE = frozenset({str, int, bool, type(None)})

_config_values = operator.itemgetter(
    "max_symbols", "min_tech_rating", "min_dollar_vol", "sectors", "industries", "lookback_days"
)
_performance_values = operator.itemgetter(
    "total_seconds", "symbols_scanned", "symbols_per_second", "symbols_returned"
)
_market_values = operator.itemgetter(
    *MARKET_SIGNALS,
    "time_of_day",
    "day_of_week",
    "is_market_hours",
    "as_of",
    "data_source",
    "degraded",
    "degraded_reasons",
    "spy_bar_date",
    "vix_bar_date",
)

# A few distinct extras and sector selections repeat across millions of records, and encoding each
# one again was most of the row-building time, hence the small caches below.


def _remember(key: Any, text: str) -> str:
    if len(_memo) >= _MEMO_LIMIT:
        _memo.clear()
    _memo[key] = text
    return text


def set_key(values: Sequence[str] | None) -> str | None:
    """Canonical text for a sectors/industries selection: ``None`` for "all", else sorted unique JSON."""
    if not values:
        return None
    key = tuple(values)
    text = _memo.get(key)
    if text is None:
        text = _remember(key, _CANONICAL_JSON.encode(sorted(set(values))))
    return text


def set_label(key: str | None) -> str:
    """Human label for a :func:`set_key` value: ``"all"`` or the sorted names joined by commas."""
    return "all" if key is None else ", ".join(json.loads(key))


def _encode_extra(where: str, extra: dict[str, Any]) -> str:
    try:
        return _CANONICAL_JSON.encode(extra)
    except (TypeError, ValueError) as exc:
        raise ContractError(
            f"{where}: received {extra!r}; expected JSON-serializable values for unknown keys ({exc})"
        ) from None


def _extra_json(where: str, extra: dict[str, Any] | None) -> str | None:
    if not extra:
        return None
    values = tuple(extra.values())
    types = tuple(map(type, values))
    # Only flat str/int/bool/None extras are cached, keyed with their types: 1 == 1.0 == True and
    # 0.0 == -0.0 would otherwise share one cached text.
    if not _CACHEABLE.issuperset(types):
        return _encode_extra(where, extra)
    key = (where, tuple(extra), values, types)
    text = _memo.get(key)
    if text is None:
        text = _remember(key, _encode_extra(where, extra))
    return text


def record_row(record: ScanRecord, default_provenance: tuple[str, str | None] | None = None) -> tuple:
    """One record as a tuple of stored values in :data:`COLUMNS` order, without ``content_hash``
    (computed in bulk by :func:`rows_to_table`).

    ``default_provenance`` (source, data_source) is used when the record has no provenance.
    Raises :class:`ContractError` when a value is valid for the contract but cannot be stored
    (an integer beyond int64, an unknown key holding a non-JSON value).
    """
    c, r, p, m = record.config, record.results, record.performance, record.market_conditions
    config = _config_values(c.__dict__)
    performance = _performance_values(p.__dict__)
    if r.count > _INT64_MAX or performance[1] > _INT64_MAX or (performance[3] or 0) > _INT64_MAX:
        values = (r.count, r.signals, performance[1], performance[3])
        name, value = next(
            (n, v) for n, v in zip(_UNBOUNDED_INTS, values, strict=True) if (v or 0) > _INT64_MAX
        )
        raise ContractError(f"{name}: received {value}; expected at most {_INT64_MAX} (stored as int64)")
    p_extra = p.__pydantic_extra__
    if p.stage_seconds is not None:
        p_extra = {"stage_seconds": p.stage_seconds, **(p_extra or {})}
    prov = record.provenance
    if prov is not None:
        provenance = (prov.source, prov.data_source, prov.bar_date, prov.scanner_version)
    elif default_provenance is not None:
        provenance = (*default_provenance, None, None)
    else:
        provenance = (None, None, None, None)
    return (
        record.scan_id,
        record.timestamp,
        *config,
        _extra_json("config", c.__pydantic_extra__),
        r.count,
        r.signals,
        *performance,
        _extra_json("performance", p_extra),
        *_market_values(m.__dict__),
        _extra_json("market_conditions", m.__pydantic_extra__),
        *provenance,
        set_key(config[3]),
        set_key(config[4]),
        record.timestamp.date(),  # the New York scan date (timestamps are held in New York time)
    )


def rows_to_table(rows: Sequence[tuple], extra_columns: dict[str, Sequence[int]] | None = None) -> pa.Table:
    """Build a :data:`DATASET_SCHEMA` table (file columns + ``scan_date``) from :func:`record_row`
    tuples, column-wise, computing ``content_hash`` in bulk. ``extra_columns`` (int64) are appended;
    the importer uses them for line bookkeeping and the store drops them before writing.
    """
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(_ROW_FIELDS)
    arrays = [pa.array(values, f.type) for f, values in zip(_ROW_FIELDS, columns, strict=True)]
    arrays.insert(len(arrays) - 1, content_hashes(arrays[:PROVENANCE_START]))
    table = pa.Table.from_arrays(arrays, schema=DATASET_SCHEMA)
    for name, values in (extra_columns or {}).items():
        table = table.append_column(name, pa.array(values, pa.int64()))
    return table


def records_to_table(
    records: Iterable[ScanRecord], default_provenance: tuple[str, str | None] | None = None
) -> pa.Table:
    return rows_to_table([record_row(r, default_provenance) for r in records])


# -- content hash -------------------------------------------------------------------------------
# Each content column is rendered as text, vectorized in arrow: integers, dates and timestamps in
# decimal (timestamps as UTC microseconds), floats as the decimal value of their IEEE-754 bits (exact,
# independent of any float formatting), booleans 1/0, strings with \\, \x1e, \x1f and \x00 escaped,
# lists as "<length>:" + elements joined by \x1f; null is \x00. Fields are joined by \x1e and the
# row text is hashed with BLAKE2b-128. The text is unambiguous, so equal hashes mean equal content.
_NULL = "\x00"


def _escape(strings: pa.Array) -> pa.Array:
    for raw, escaped in (("\\", "\\\\"), ("\x1e", "\\x1e"), ("\x1f", "\\x1f"), ("\x00", "\\x00")):
        strings = pc.replace_substring(strings, raw, escaped)
    return strings


def _as_text(array: pa.Array) -> pa.Array:
    t = array.type
    if pa.types.is_string(t):
        return _escape(array)
    if pa.types.is_float64(t):
        return pc.cast(array.view(pa.uint64()), pa.string())
    if pa.types.is_timestamp(t):
        return pc.cast(array.view(pa.int64()), pa.string())
    if pa.types.is_date32(t):
        return pc.cast(array.view(pa.int32()), pa.string())
    if pa.types.is_boolean(t):
        return pc.cast(pc.cast(array, pa.int8()), pa.string())
    if pa.types.is_integer(t):
        return pc.cast(array, pa.string())
    if pa.types.is_list(t):
        elements = pa.ListArray.from_arrays(array.offsets, _escape(array.values), mask=array.is_null())
        joined = pc.binary_join(elements, "\x1f")
        return pc.binary_join_element_wise(pc.cast(pc.list_value_length(array), pa.string()), joined, ":")
    raise TypeError(f"content hash: column type {t} has no canonical text form")


def content_hashes(content: Sequence[pa.Array]) -> pa.Array:
    """BLAKE2b-128 hex digest per row over the content columns (see the comment above)."""
    texts = [_as_text(a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a) for a in content]
    joined = pc.binary_join_element_wise(*texts, "\x1e", null_handling="replace", null_replacement=_NULL)
    blake = hashlib.blake2b
    return pa.array(
        [blake(b, digest_size=16).hexdigest() for b in pc.cast(joined, pa.binary()).to_pylist()], pa.string()
    )


_parsed: dict[str, dict[str, Any]] = {}


def _loads(text: str | None) -> dict[str, Any]:
    # Callers spread the result into a new dict, so a cached flat object is never shared mutably.
    if text is None:
        return {}
    value = _parsed.get(text)
    if value is None:
        value = json.loads(text)
        if _CACHEABLE.issuperset(map(type, value.values())):
            if len(_parsed) >= _MEMO_LIMIT:
                _parsed.clear()
            _parsed[text] = value
    return value


def table_to_records(
    table: pa.Table, on_invalid: Callable[[object, str], None] | None = None
) -> list[ScanRecord]:
    """Rebuild validated ScanRecords from rows of the stored table (any extra columns are ignored).

    Records go through full validation again, so a row edited by hand into something the contract
    rejects never becomes a record: without ``on_invalid`` it raises StoreError with the scan_id and
    the contract's message; with it, ``on_invalid(scan_id, reason)`` is called and the row skipped.
    """
    missing = [name for name in COLUMNS if name not in table.column_names]
    if missing:
        raise StoreError(
            f"scan history table: missing columns {missing}; expected the columns {list(COLUMNS)}"
        )
    records = []
    for row in table.select(list(COLUMNS)).to_pylist():
        data = {
            "scan_id": row["scan_id"],
            "timestamp": row["timestamp"],
            "config": {
                "max_symbols": row["max_symbols"],
                "min_tech_rating": row["min_tech_rating"],
                "min_dollar_vol": row["min_dollar_vol"],
                "sectors": row["sectors"],
                "industries": row["industries"],
                "lookback_days": row["lookback_days"],
                **_loads(row["config_extra"]),
            },
            "results": {"count": row["result_count"], "signals": row["result_signals"]},
            "performance": {
                "total_seconds": row["total_seconds"],
                "symbols_scanned": row["symbols_scanned"],
                "symbols_per_second": row["symbols_per_second"],
                "symbols_returned": row["symbols_returned"],
                **_loads(row["performance_extra"]),
            },
            "market_conditions": {
                "spy_trend": row["spy_trend"],
                "spy_volatility": row["spy_volatility"],
                "spy_momentum": row["spy_momentum"],
                "spy_return_5d": row["spy_return_5d"],
                "spy_return_20d": row["spy_return_20d"],
                "vix_level": row["vix_level"],
                "time_of_day": row["time_of_day"],
                "day_of_week": row["day_of_week"],
                "is_market_hours": row["is_market_hours"],
                "as_of": row["market_as_of"],
                "data_source": row["market_data_source"],
                "degraded": row["market_degraded"],
                "degraded_reasons": row["market_degraded_reasons"],
                "spy_bar_date": row["spy_bar_date"],
                "vix_bar_date": row["vix_bar_date"],
                **_loads(row["market_extra"]),
            },
            "provenance": None
            if row["provenance_source"] is None
            else {
                "source": row["provenance_source"],
                "data_source": row["provenance_data_source"],
                "bar_date": row["provenance_bar_date"],
                "scanner_version": row["provenance_scanner_version"],
            },
        }
        try:
            records.append(ScanRecord.model_validate(data))
        except ValueError as exc:
            if on_invalid is not None:
                on_invalid(row["scan_id"], f"stored values no longer satisfy the record contract ({exc})")
                continue
            raise StoreError(
                f"scan history row scan_id={row['scan_id']!r}: stored values no longer satisfy the record"
                f" contract ({exc}); expected rows written by ScanHistoryStore"
            ) from exc
    return records
