"""ScanRecord <-> row conversion and the content hash (technic_ml.history.schema).

Also home of the tiny record builders the other history test modules import.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from technic_ml.contracts import ScanRecord, parse_record
from technic_ml.errors import ContractError
from technic_ml.history.schema import (
    CONFIG_FIELDS,
    DATASET_SCHEMA,
    FILE_SCHEMA,
    record_row,
    records_to_table,
    rows_to_table,
    set_key,
    set_label,
    table_to_records,
)
from technic_ml.nyse import NY

DROP = object()
"""Override value that removes a key from the built record."""

BASE: dict[str, Any] = {
    "scan_id": "scan-0001",
    "timestamp": "2025-09-17T14:23:47.663439",
    "config": {
        "max_symbols": 200,
        "min_tech_rating": 10,
        "min_dollar_vol": 3000000.0,
        "sectors": ["Technology"],
        "lookback_days": 120,
        "use_alpha_blend": False,
        "profile": "balanced",
    },
    "results": {"count": 48, "signals": 6},
    "performance": {
        "total_seconds": 17.19297362954234,
        "symbols_per_second": 11.632659033242744,
        "symbols_scanned": 200,
        "symbols_returned": 48,
    },
    "market_conditions": {
        "spy_trend": "bearish",
        "spy_volatility": 0.28,
        "spy_momentum": -0.5,
        "spy_return_5d": -0.012637046417031228,
        "spy_return_20d": -0.014364371402054571,
        "vix_level": 14.756138371784456,
        "time_of_day": 14,
        "day_of_week": 2,
        "is_market_hours": True,
    },
}


def record_dict(**overrides: Any) -> dict[str, Any]:
    """A valid record in the original line format. Dict overrides of a section are merged into it;
    ``DROP`` removes a key."""
    d = copy.deepcopy(BASE)
    for key, value in overrides.items():
        if value is DROP:
            d.pop(key, None)
        elif isinstance(value, dict) and isinstance(d.get(key), dict):
            for k, v in value.items():
                if v is DROP:
                    d[key].pop(k, None)
                else:
                    d[key][k] = v
        else:
            d[key] = value
    return d


def record_line(**overrides: Any) -> str:
    return json.dumps(record_dict(**overrides))


def make_record(**overrides: Any) -> ScanRecord:
    return parse_record(record_line(**overrides))


FULL = make_record(
    scan_id="full",
    timestamp="2025-11-02T01:30:00-04:00",
    config={
        "industries": ["Software", "Banks, Regional"],
        "sectors": ["Technology", "Financial"],
        "nested": {"a": [1]},
    },
    performance={"stage_seconds": {"universe": 1.5, "indicators": 9.25}, "cache_hits": 12},
    market_conditions={
        "as_of": "2025-11-02T01:29:00-04:00",
        "data_source": "yfinance",
        "degraded": True,
        "degraded_reasons": ["vix: no VIX close on or before 2025-10-31"],
        "vix_level": None,
        "spy_bar_date": "2025-10-31",
        "vix_bar_date": "2025-10-30",
        "regime": "calm",
    },
    provenance={
        "source": "backfill",
        "data_source": "parquet",
        "bar_date": "2025-10-31",
        "scanner_version": "1.0.0",
    },
)


@pytest.mark.parametrize(
    "record",
    [
        make_record(),
        FULL,
        make_record(config={"sectors": None}),
        make_record(config={"sectors": []}),
        make_record(config={"sectors": [""]}),
        make_record(performance={"symbols_per_second": DROP, "symbols_returned": DROP}),
        make_record(results={"count": 0, "signals": 0}),
        make_record(scan_id="uni\u00e9\u6f22\u5b57 \\ \x1e", config={"sectors": ["a\x1fb", "\x00"]}),
    ],
    ids=[
        "plain",
        "all-fields",
        "sectors-null",
        "sectors-empty",
        "sector-empty-name",
        "optional-missing",
        "empty-scan",
        "odd-strings",
    ],
)
def test_table_round_trip_reproduces_the_record(record: ScanRecord) -> None:
    back = table_to_records(records_to_table([record]))
    assert back == [record]
    assert back[0].to_original_dict(include_provenance=True) == record.to_original_dict(
        include_provenance=True
    )


def test_stored_types_are_flat_and_typed() -> None:
    table = records_to_table([FULL])
    assert table.schema == DATASET_SCHEMA
    assert FILE_SCHEMA.field("timestamp").type == pa.timestamp("us", tz="UTC")
    assert FILE_SCHEMA.field("sectors").type == pa.list_(pa.string())
    assert table.column("timestamp")[0].as_py() == dt.datetime(2025, 11, 2, 5, 30, tzinfo=dt.UTC)
    assert table.column("scan_date")[0].as_py() == dt.date(2025, 11, 2)
    assert json.loads(table.column("performance_extra")[0].as_py()) == {
        "cache_hits": 12,
        "stage_seconds": {"indicators": 9.25, "universe": 1.5},
    }
    assert json.loads(table.column("config_extra")[0].as_py()) == {
        "nested": {"a": [1]},
        "profile": "balanced",
        "use_alpha_blend": False,
    }
    assert table.column("sectors_key")[0].as_py() == '["Financial","Technology"]'
    assert table.column("provenance_source")[0].as_py() == "backfill"
    for name in CONFIG_FIELDS:
        assert name in table.column_names


def test_scan_date_is_the_new_york_date() -> None:
    # 23:30 in New York on Sep 17 is 03:30 UTC on Sep 18: the partition is the New York date.
    record = make_record(timestamp="2025-09-17T23:30:00")
    table = records_to_table([record])
    assert table.column("scan_date")[0].as_py() == dt.date(2025, 9, 17)
    assert table.column("timestamp")[0].as_py() == dt.datetime(2025, 9, 18, 3, 30, tzinfo=dt.UTC)


def test_default_provenance_applies_only_when_missing() -> None:
    plain, with_prov = make_record(), FULL
    table = records_to_table([plain, with_prov], default_provenance=("scanner_log", "sample"))
    assert table.column("provenance_source").to_pylist() == ["scanner_log", "backfill"]
    assert table.column("provenance_data_source").to_pylist() == ["sample", "parquet"]


def _digest(record: ScanRecord) -> str:
    return records_to_table([record]).column("content_hash")[0].as_py()


@pytest.mark.parametrize(
    "change",
    [
        {"scan_id": "scan-0002"},
        {"timestamp": "2025-09-17T14:23:47.663440"},
        {"config": {"sectors": ["Financial"]}},
        {"config": {"sectors": None}},
        {"config": {"sectors": []}},
        {"config": {"use_alpha_blend": True}},
        {"config": {"use_alpha_blend": 0}},
        {"config": {"extra_int": 1}},
        {"results": {"count": 49}},
        {"performance": {"total_seconds": 17.192973629542341 + 1e-12}},
        {"performance": {"stage_seconds": {"a": 1.0}}},
        {"market_conditions": {"spy_momentum": 0.0}},
        {"market_conditions": {"spy_momentum": -0.0}},
        {"market_conditions": {"degraded": False}},
        {"market_conditions": {"spy_bar_date": "2025-09-16"}},
    ],
)
def test_content_hash_changes_with_any_content(change: dict[str, Any]) -> None:
    assert _digest(make_record(**change)) != _digest(make_record())


def test_content_hash_separates_sector_order_and_int_vs_float_extras() -> None:
    a = make_record(config={"sectors": ["A", "B"], "x": 1})
    b = make_record(config={"sectors": ["B", "A"], "x": 1})
    c = make_record(config={"sectors": ["A", "B"], "x": 1.0})
    d = make_record(config={"sectors": ["A", "B"], "x": True})
    assert len({_digest(r) for r in (a, b, c, d)}) == 4
    # ... and the cached extras text keeps the types apart too.
    assert [json.loads(records_to_table([r]).column("config_extra")[0].as_py())["x"] for r in (a, c, d)] == [
        1,
        1.0,
        True,
    ]
    assert [
        type(json.loads(records_to_table([r]).column("config_extra")[0].as_py())["x"]) for r in (a, c, d)
    ] == [
        int,
        float,
        bool,
    ]


def test_content_hash_ignores_provenance_and_extra_key_order() -> None:
    base = _digest(make_record())
    assert _digest(make_record(provenance={"source": "backfill"})) == base
    reordered = record_dict()
    reordered["config"] = {"profile": "balanced", "use_alpha_blend": False, **reordered["config"]}
    assert _digest(parse_record(json.dumps(reordered))) == base


def test_lists_cannot_be_confused_by_separators() -> None:
    a = make_record(config={"sectors": ["a\x1fb"]})
    b = make_record(config={"sectors": ["a", "b"]})
    assert _digest(a) != _digest(b)


def test_integer_beyond_int64_is_a_contract_error_naming_the_field() -> None:
    record = make_record(results={"count": 2**63, "signals": 0})
    with pytest.raises(
        ContractError, match=r"results\.count: received 9223372036854775808; expected at most"
    ):
        record_row(record)


def test_empty_rows_give_an_empty_table() -> None:
    table = rows_to_table([])
    assert table.num_rows == 0 and table.schema == DATASET_SCHEMA


@pytest.mark.parametrize(
    ("values", "key", "label"),
    [
        (None, None, "all"),
        ([], None, "all"),
        (["Technology"], '["Technology"]', "Technology"),
        (["Technology", "Financial", "Technology"], '["Financial","Technology"]', "Financial, Technology"),
    ],
)
def test_set_key_and_label(values, key, label) -> None:
    assert set_key(values) == key
    assert set_label(key) == label


# -- property: any valid record survives the round trip ------------------------------------------

_names = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _names
)
_finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


def _exists_in_new_york(naive: dt.datetime) -> bool:
    return naive.replace(tzinfo=NY).astimezone(dt.UTC).astimezone(NY).replace(tzinfo=None) == naive


@st.composite
def records(draw) -> ScanRecord:
    count = draw(st.integers(0, 2**63 - 1))
    extras = draw(
        st.dictionaries(st.sampled_from(["profile", "flag", "weird key \u00e9"]), _json_scalars, max_size=3)
    )
    # Wall times inside a spring-forward gap do not exist; see test_nonexistent_new_york_time_*.
    stamp = draw(st.datetimes(dt.datetime(2000, 1, 1), dt.datetime(2035, 12, 31)).filter(_exists_in_new_york))
    data = {
        "scan_id": draw(st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=40)),
        "timestamp": stamp.isoformat(),
        "config": {
            "max_symbols": draw(st.integers(1, 10_000)),
            "min_tech_rating": draw(st.floats(0, 100)),
            "min_dollar_vol": draw(st.floats(0, 1e12)),
            "sectors": draw(st.none() | st.lists(_names, max_size=4)),
            "industries": draw(st.none() | st.lists(_names, max_size=3)),
            "lookback_days": draw(st.integers(20, 500)),
            **extras,
        },
        "results": {"count": count, "signals": draw(st.integers(0, count))},
        "performance": {
            "total_seconds": draw(st.floats(0, 1e6)),
            "symbols_scanned": draw(st.integers(0, 10**6)),
            "stage_seconds": draw(st.none() | st.dictionaries(_names, st.floats(0, 1e4), max_size=3)),
        },
        "market_conditions": {
            "spy_trend": draw(st.sampled_from(["bullish", "neutral", "bearish"])),
            "spy_volatility": draw(st.floats(0, 5)),
            "spy_momentum": draw(st.floats(-1, 1)),
            "spy_return_5d": draw(_finite),
            "spy_return_20d": draw(_finite),
            "vix_level": draw(st.floats(0.01, 200)),
            "time_of_day": draw(st.integers(0, 23)),
            "day_of_week": draw(st.integers(0, 6)),
            "is_market_hours": draw(st.booleans()),
            "degraded_reasons": draw(st.none() | st.lists(_names, min_size=1, max_size=2)),
        },
    }
    if draw(st.booleans()):
        data["provenance"] = {
            "source": draw(st.sampled_from(["scanner_log", "backfill"])),
            "data_source": None,
        }
    return parse_record(json.dumps(data))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(records(), min_size=1, max_size=4))
def test_any_valid_records_round_trip(rs: list[ScanRecord]) -> None:
    table = records_to_table(rs)
    assert table_to_records(table) == rs
    again = records_to_table(table_to_records(table))
    assert again.column("content_hash").equals(table.column("content_hash"))
    assert table.column("scan_date").to_pylist() == [r.timestamp.date() for r in rs]


def test_nonexistent_new_york_time_is_refused_not_shifted() -> None:
    # 02:30 on 2025-03-09 does not exist in New York (clocks jump 02:00 -> 03:00). It used to be read
    # with the pre-transition offset and came back as 03:30: placing it on the timeline is a guess.
    with pytest.raises(ContractError, match=r"timestamp: received 2025-03-09T02:30:00 .*does not exist"):
        make_record(timestamp="2025-03-09T02:30:00")
    # With an offset the instant is explicit, and kept.
    record = make_record(timestamp="2025-03-09T02:30:00-05:00")
    (back,) = table_to_records(records_to_table([record]))
    assert back.timestamp.astimezone(dt.UTC) == dt.datetime(2025, 3, 9, 7, 30, tzinfo=dt.UTC)
    assert back.to_original_dict()["timestamp"] == "2025-03-09T03:30:00"
