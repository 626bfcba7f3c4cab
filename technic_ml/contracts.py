"""Data contracts: the nouns every other module speaks.

``ScanConfig`` is what a user asks the scanner for, ``ScanRecord`` is one scan that happened
(config, outcome, timing, market conditions at that moment, provenance) and ``MarketConditions``
is a snapshot of the market at a moment. They are pydantic models so that the scan-history
importer, the market snapshotter, the predictors and the API share one definition of "valid".

Conventions
-----------
* Timestamps are timezone-aware and held in America/New_York. A naive timestamp (the original
  scanner logged naive local times) is interpreted as New York wall-clock time, by these rules:

  - a wall-clock time that does not exist in New York (inside the spring-forward gap, e.g.
    ``2025-03-09T02:30:00``) is **rejected**: placing it on the timeline would mean guessing;
  - a wall-clock time that exists twice (the fall-back hour, e.g. ``2025-11-02T01:30:00``) is its
    **first** occurrence (daylight time, ``fold=0``), as everywhere in technic-ml
    (:mod:`technic_ml.nyse`); an explicit offset (``-05:00``) selects the second one, and exports
    write that offset back for the second occurrence, so a round trip is exact;
  - digits beyond the microsecond (``.6634391234``) are truncated to microseconds, the resolution
    of the store (truncated, not rounded, so a scan never moves to the next second or day); the
    importer counts such lines (``parse_record``'s ``context``).

* **Supported range.** Timestamps must lie from :data:`EARLIEST` (1900-01-01T00:00) to
  :data:`LATEST` (2199-12-31T23:59:59.999999), New York time, and dates from 1900-01-01 to
  2199-12-31. A value outside it (``0001-01-01``, ``9999-12-31``: typically a zero or
  sentinel clock) is rejected with the field's name, so it is quarantined at import instead of
  reaching the store, where pandas and pyarrow could not convert it back.
* A JSON object that gives the same key twice (``"scan_id"`` twice in one line) is rejected: JSON
  parsers silently keep one of the two values, and which one was meant cannot be known.
* Models are strict: ``"12"`` is not an integer and ``1`` is not a boolean. A record that does
  not match is rejected with an error that names the field, the value received and what was
  expected (see :func:`describe_validation_error`); it is never coerced into shape.
* Unknown keys of ``config``, ``performance`` and ``market_conditions`` are preserved (the
  original logs carry ``use_alpha_blend``, ``enable_options``, ``profile``...), so importing then
  exporting a record gives back semantically equal JSON.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from typing import Annotated, Any, Literal

import annotated_types
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from technic_ml.errors import ContractError
from technic_ml.nyse import NY

EARLIEST = dt.datetime(1900, 1, 1, tzinfo=NY)
"""First moment a stored timestamp may hold (New York time)."""
LATEST = dt.datetime(2199, 12, 31, 23, 59, 59, 999999, tzinfo=NY)
"""Last moment a stored timestamp may hold (New York time)."""
SUPPORTED_RANGE = "1900-01-01T00:00 to 2199-12-31T23:59:59.999999 New York time"
_UTC = dt.UTC


def _out_of_range(value: object) -> ValueError:
    return ValueError(
        f"received {value}; expected a time from {SUPPORTED_RANGE} (the supported range of the history store)"
    )


def _as_new_york(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        ny = value.replace(tzinfo=NY)
        # Only 01:xx and 02:xx wall-clock times can fall in a daylight-saving change.
        if value.hour in (1, 2) and ny.astimezone(_UTC).astimezone(NY).replace(tzinfo=None) != value:
            raise ValueError(
                f"received {value.isoformat()} (no UTC offset, so New York wall-clock time), a time that"
                f" does not exist in New York: clocks skipped that hour on {value.date().isoformat()};"
                " expected an existing New York time or an explicit UTC offset"
                f" (e.g. {value.isoformat()}-05:00)"
            )
    else:
        try:
            ny = value.astimezone(NY)
        except OverflowError:
            raise _out_of_range(value.isoformat()) from None
    if not EARLIEST <= ny <= LATEST:
        raise _out_of_range(value.isoformat())
    return ny


def _supported_date(value: dt.date) -> dt.date:
    if not EARLIEST.date() <= value <= LATEST.date():
        raise ValueError(
            f"received {value.isoformat()}; expected a date from {EARLIEST.date()} to {LATEST.date()}"
            " (the supported range of the history store)"
        )
    return value


SUB_MICROSECOND = "sub_microsecond"
"""Key of the validation context that counts date-times given with more than six fractional digits
(see :func:`parse_record`)."""


def _not_a_number(value: object, info: ValidationInfo) -> object:
    # Lax datetime parsing would read 0 or "20250917" as Unix time; a scan log never means that.
    if isinstance(value, int | float) or (isinstance(value, str) and value.strip().lstrip("-").isdigit()):
        raise ValueError(f"received {value!r}; expected an ISO 8601 date-time such as 2025-09-17T14:23:47")
    # "2025-09-17T14:23:47.663439" is 26 characters: only a longer text can hold a seventh digit.
    if (
        info.context is not None
        and isinstance(value, str)
        and len(value) > 26
        and _fraction_digits(value) > 6
    ):
        info.context[SUB_MICROSECOND] += 1
    return value


def _fraction_digits(text: str) -> int:
    dot = max(text.rfind("."), text.rfind(","))
    if dot < 0:
        return 0
    n = 0
    for char in text[dot + 1 :]:
        if not char.isdigit():
            break
        n += 1
    return n


NYDatetime = Annotated[
    dt.datetime, Field(strict=False), BeforeValidator(_not_a_number), AfterValidator(_as_new_york)
]
"""A datetime held in New York time; naive input is New York wall-clock time."""
HistoryDate = Annotated[dt.date, Field(strict=False), AfterValidator(_supported_date)]
"""A calendar date within the supported range."""

Trend = Literal["bullish", "neutral", "bearish"]
RecordSource = Literal["scanner_log", "backfill"]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", validate_assignment=True, allow_inf_nan=False)


class _Open(BaseModel):
    # Unknown keys are kept (and exported again) rather than rejected.
    model_config = ConfigDict(strict=True, extra="allow", validate_assignment=True, allow_inf_nan=False)

    @model_validator(mode="after")
    def _finite_extras(self):
        # JSON has no Infinity or NaN: an unknown key holding one could not be exported faithfully.
        extra = self.__pydantic_extra__
        if not extra:
            return self
        for key, value in extra.items():
            # Unknown keys mostly hold flags and labels (every imported line has some): only floats
            # and containers need the walk.
            if value.__class__ not in _PLAIN_VALUES and not _all_finite(value):
                raise ValueError(
                    f"{key}: received {value!r}; expected finite numbers only (JSON has no NaN/Infinity)"
                )
        return self


# Values that are neither floats nor containers: finite, and holding no keys.
_PLAIN_VALUES = frozenset({str, int, bool, type(None)})


def _all_finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_all_finite(v) for v in value.values())
    if isinstance(value, list | tuple):
        return all(_all_finite(v) for v in value)
    return True


def _integral(value: Any) -> Any:
    # JSON has one number type: to JSON Schema (and to every generated client) 81.0 is the integer
    # 81, so a whole float is taken as one; 81.5 still fails the strict integer check.
    if value.__class__ is float and value.is_integer():
        return int(value)
    return value


def integral(ge: int | None = None, le: int | None = None) -> Any:
    """A strict integer that takes a whole float (81.0) as one, within [ge, le]. The bounds come
    before the converter so the JSON schema says ``minimum``/``maximum`` (after it, pydantic
    writes a raw ``ge`` that no JSON Schema validator reads)."""
    return Annotated[int, annotated_types.Interval(ge=ge, le=le), BeforeValidator(_integral), Strict()]


Integral = integral()
#: A number that is not a bool: JSON's true is not 1.0 to a client generated from the schema.
Real = Annotated[float, Strict()]


class ScanConfig(_Open):
    """What the user asks the scanner for. Unknown keys are preserved."""

    max_symbols: Integral = Field(
        ge=1, le=10_000, description="Scan at most this many of the most liquid symbols."
    )
    min_tech_rating: float = Field(
        ge=0, le=100, description="Keep symbols whose tech rating is at least this."
    )
    min_dollar_vol: float = Field(
        ge=0, description="Minimum 20-day average daily dollar volume (USD) for a symbol to be scanned."
    )
    sectors: list[str] | None = Field(default=None, description="Sectors to scan; null or empty means all.")
    industries: list[str] | None = Field(
        default=None, description="Industries to scan; null or empty means all."
    )
    lookback_days: Integral = Field(
        ge=20, le=500, description="Trading days of history the indicators look at."
    )

    @property
    def extra(self) -> dict[str, Any]:
        """Keys the contract does not know (kept verbatim)."""
        return dict(self.__pydantic_extra__ or {})


class ScanResults(_Strict):
    count: int = Field(ge=0, description="Symbols that passed the scan.")
    signals: int = Field(ge=0, description="Passing symbols with a fresh trigger on the last bar.")

    @model_validator(mode="after")
    def _signals_within_count(self) -> ScanResults:
        if self.signals > self.count:
            raise ValueError(
                f"results.signals: received {self.signals}; expected at most results.count ({self.count}),"
                " since signals are a subset of the results"
            )
        return self


class ScanPerformance(_Open):
    total_seconds: float = Field(ge=0, description="Wall-clock duration of the scan.")
    symbols_scanned: int = Field(ge=0)
    symbols_per_second: float | None = Field(default=None, ge=0)
    symbols_returned: int | None = Field(default=None, ge=0)
    stage_seconds: dict[str, float] | None = Field(
        default=None, description="Per-stage timings, when measured."
    )

    @property
    def extra(self) -> dict[str, Any]:
        return dict(self.__pydantic_extra__ or {})


class MarketConditions(_Open):
    """The market as of a moment. Snapshots made by technic-ml always fill the provenance fields
    (``as_of``, ``data_source``, ``degraded``); records imported from the original scanner log
    do not have them, and they stay ``None`` (unknown) rather than being invented."""

    spy_trend: Trend
    spy_volatility: float = Field(
        ge=0, description="Annualized volatility of SPY daily returns (~30 sessions)."
    )
    spy_momentum: float = Field(ge=-1, le=1)
    spy_return_5d: float
    spy_return_20d: float
    vix_level: float | None = Field(gt=0, description="VIX close; null only in a degraded snapshot.")
    time_of_day: int = Field(ge=0, le=23, description="Hour of the day, New York time.")
    day_of_week: int = Field(ge=0, le=6, description="Monday=0 ... Sunday=6, New York time.")
    is_market_hours: bool
    as_of: NYDatetime | None = None
    data_source: str | None = None
    degraded: bool | None = None
    degraded_reasons: list[str] | None = None
    spy_bar_date: HistoryDate | None = None
    vix_bar_date: HistoryDate | None = None

    @model_validator(mode="after")
    def _reasons_when_degraded(self) -> MarketConditions:
        if self.degraded and not self.degraded_reasons:
            raise ValueError(
                "degraded_reasons: received none; expected at least one reason when degraded is true"
            )
        if self.vix_level is None and not self.degraded:
            raise ValueError("vix_level: received null; expected a positive number (null only when degraded)")
        return self

    @property
    def extra(self) -> dict[str, Any]:
        return dict(self.__pydantic_extra__ or {})


MARKET_SIGNALS: tuple[str, ...] = (
    "spy_trend",
    "spy_volatility",
    "spy_momentum",
    "spy_return_5d",
    "spy_return_20d",
    "vix_level",
)
"""The fields of :class:`MarketConditions` computed from the market (the others say when and from
what), in one order for the store's columns and the monitor's drift checks."""


class Provenance(_Strict):
    source: RecordSource = Field(
        description="Where the record came from: the scanner's own log or a backfill."
    )
    data_source: str | None = Field(default=None, description="Market data the scan ran on, when known.")
    bar_date: HistoryDate | None = Field(
        default=None, description="Last daily bar the scan saw (backfills record it)."
    )
    scanner_version: str | None = Field(default=None, description="Version of the scanner that ran the scan.")


class ScanRecord(_Strict):
    """One scan that happened."""

    scan_id: str = Field(min_length=1, max_length=200)
    timestamp: NYDatetime
    config: ScanConfig
    results: ScanResults
    performance: ScanPerformance
    market_conditions: MarketConditions
    provenance: Provenance | None = None

    def to_original_json(self, *, include_provenance: bool = False) -> str:
        """Serialize in the original scanner's line format (naive New York timestamps)."""
        return json.dumps(self.to_original_dict(include_provenance=include_provenance))

    def to_original_dict(self, *, include_provenance: bool = False) -> dict[str, Any]:
        d: dict[str, Any] = {
            "scan_id": self.scan_id,
            "timestamp": _original_timestamp(self.timestamp),
            "config": _config_dict(self.config),
            "results": self.results.model_dump(),
            "performance": _drop_none(self.performance.model_dump(mode="json")),
            "market_conditions": _conditions_dict(self.market_conditions),
        }
        if include_provenance and self.provenance is not None:
            d["provenance"] = _drop_none(self.provenance.model_dump(mode="json"))
        return d


def _original_timestamp(ts: dt.datetime) -> str:
    """The original format's naive New York time; with its offset only for the second occurrence of
    the fall-back hour, which a naive time would read back as the first (see the module doc)."""
    ny = ts.astimezone(NY)
    naive = ny.replace(tzinfo=None)
    if ny.fold and naive.replace(tzinfo=NY, fold=0).utcoffset() != ny.utcoffset():
        return ny.isoformat()
    return naive.isoformat()


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def _config_dict(config: ScanConfig) -> dict[str, Any]:
    d = config.model_dump(mode="json")
    # The original format always carries `sectors` (null = all) but has no `industries` key.
    if d.get("industries") is None:
        d.pop("industries", None)
    return d


def _conditions_dict(mc: MarketConditions) -> dict[str, Any]:
    d = mc.model_dump(mode="json")
    if d.get("as_of") is not None:
        d["as_of"] = mc.as_of.isoformat()
    return _drop_none(d)


def describe_validation_error(exc: ValidationError, *, max_errors: int = 5) -> str:
    """One line per problem: the field path, the value received and what was expected."""
    parts = []
    for err in exc.errors()[:max_errors]:
        loc = ".".join(str(p) for p in err["loc"]) or "<record>"
        received = err.get("input")
        received_text = _short(received)
        expected = err["msg"]
        if err["type"] == "missing":
            parts.append(f"{loc}: missing; expected a value")
        elif err["type"] == "extra_forbidden":
            parts.append(f"{loc}: received {received_text}; expected no such field")
        elif err["type"] == "value_error":
            message = expected.removeprefix("Value error, ")
            # Field validators know the field from loc; model validators name it in the message.
            parts.append(f"{loc}: {message}" if err["loc"] else message)
        else:
            expected = expected.removeprefix("Input should be ").removeprefix("Input ")
            parts.append(f"{loc}: received {received_text}; expected {expected}")
    more = len(exc.errors()) - max_errors
    if more > 0:
        parts.append(f"(+{more} more)")
    return "; ".join(parts)


def _short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else json.dumps(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_record(line: str | bytes, context: dict[str, int] | None = None) -> ScanRecord:
    """Validate one JSON line into a ScanRecord or raise ContractError with a readable message.

    ``context``, when given, is a dict whose :data:`SUB_MICROSECOND` count goes up by one for each
    date-time of the line whose digits beyond the microsecond were truncated.
    """
    try:
        record = ScanRecord.model_validate_json(line, context=context)
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            raise ContractError(f"broken JSON: {exc.errors()[0]['msg']}") from None
        raise ContractError(describe_validation_error(exc)) from None
    raw = line.encode("utf-8", "surrogatepass") if isinstance(line, str) else line
    if _key_tokens_may_exceed(raw, _key_count(record)):
        _refuse_duplicate_keys(raw)
    return record


# -- duplicate keys -------------------------------------------------------------------------------
# The JSON parser keeps the last of two equal keys without a word. Checking every object of every
# line in Python would cost more than the parse itself (~30 µs a line), so a line is checked in full
# only when a count in C says it might hold a duplicate: every key is a string token followed by
# ":" (no whitespace in between, or the line takes the full check), so the number of '":' in the
# line is at least the number of key tokens, which equals the number of keys the parsed record holds
# exactly when no key is repeated. A string value containing '":' only sends the line to the full
# check.
_QUOTE_SPACE = re.compile(rb'"[ \t\r\n]+:')


def _nested_keys(values: Any) -> int:
    n = 0
    for value in values:
        if isinstance(value, dict):
            n += len(value) + _nested_keys(value.values())
        elif isinstance(value, list):
            n += _nested_keys(value)
    return n


def _key_count(record: ScanRecord) -> int:
    """Keys of the JSON object ``record`` was parsed from, counting each distinct key once."""
    # Written out flat, with the dunder attributes rather than properties: it runs for every imported
    # line, and the helper calls it replaced were a tenth of the parse.
    config, performance, market = record.config, record.performance, record.market_conditions
    n = (
        len(record.__pydantic_fields_set__)
        + len(record.results.__pydantic_fields_set__)
        + len(config.__pydantic_fields_set__)
        + len(performance.__pydantic_fields_set__)
        + len(market.__pydantic_fields_set__)
    )
    for extra in (config.__pydantic_extra__, performance.__pydantic_extra__, market.__pydantic_extra__):
        if extra:
            n += _nested_keys(extra.values())
    if performance.stage_seconds:
        n += len(performance.stage_seconds)
    if record.provenance is not None:
        n += len(record.provenance.__pydantic_fields_set__)
    return n


def _key_tokens_may_exceed(raw: bytes, keys: int) -> bool:
    return raw.count(b'":') != keys or _QUOTE_SPACE.search(raw) is not None


def _refuse_duplicate_keys(raw: bytes) -> None:
    def check(pairs: list[tuple[str, Any]], path: list[str]) -> None:
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                where = ".".join([*path, key])
                raise ContractError(
                    f"{where}: given twice in one object; expected each key once (a JSON parser keeps"
                    " only one of the two values, and which one was meant cannot be known)"
                )
            seen.add(key)

    def walk(value: Any, path: list[str]) -> None:
        if isinstance(value, _Pairs):
            check(value, path)
            for key, item in value:
                walk(item, [*path, key])
        elif isinstance(value, list):
            for i, item in enumerate(value):
                walk(item, [*path, str(i)])

    walk(json.loads(raw, object_pairs_hook=_Pairs), [])


class _Pairs(list):
    """A JSON object as the list of its (key, value) pairs, repeats kept."""


def parse_config(data: dict[str, Any]) -> ScanConfig:
    """Validate a scan configuration from Python data; raises ContractError naming the field."""
    try:
        return ScanConfig.model_validate(data)
    except ValidationError as exc:
        raise ContractError(describe_validation_error(exc)) from None
