"""Request and response bodies of the prediction API (pydantic, documented in its OpenAPI schema).

The document is the behaviour: every status an operation answers has its body here (the 422 of
:class:`InvalidRequest` replaces FastAPI's default validation-error schema everywhere), and every
limit the server enforces is a constraint of these models, so a client generated from
``/openapi.json`` and schemathesis' default checks agree with the server (tests/api/test_schema.py).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from technic_ml.contracts import Real, ScanConfig, integral
from technic_ml.optimizer.goals import Constraints

Goal = Literal["quick", "balanced", "deep"]


def _given(name: str, kind: str) -> dict[str, Any]:
    """JSON Schema for "``name`` is present and not null"."""
    return {"required": [name], "properties": {name: {"type": kind}}}


#: The years a scan's moment may be written in: the NYSE calendar starts 1990-01-02, so the first
#: full year with a completed session before any moment of it is 1991. The schema says the same
#: with YEARS_PATTERN on the text (tests/api/test_contract.py checks the two agree at the edges).
FIRST_YEAR, LAST_YEAR = 1991, 2099
YEARS_PATTERN = r"^(199[1-9]|20[0-9][0-9])-"


def _in_years(value: dt.datetime | None) -> dt.datetime | None:
    if value is not None and not (FIRST_YEAR <= value.year <= LAST_YEAR):
        raise ValueError(f"expected a time in the years {FIRST_YEAR}-{LAST_YEAR} (the NYSE calendar's)")
    return value


AsOf = Annotated[
    dt.datetime | None,
    AfterValidator(_in_years),
    Field(
        default=None,
        description="Moment of the scan, ISO 8601 with its offset, years 1991-2099 (default: now live,"
        " the data's last close offline). It must also lie within what the configured market data"
        " covers and not in the future: otherwise a 422 on as_of names why.",
        json_schema_extra={"pattern": YEARS_PATTERN},
    ),
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


DurationSource = Literal["sample", "parquet", "yfinance", "scanner_log"]
_DURATION_SOURCE = (
    "Whose durations to predict: the reference scanner on that market data, or scanner_log"
    " (the production scanner's logged durations). Default: the configured market data."
)
#: Configs one POST /scan/predict/batch may score.
MAX_BATCH = 500


class PredictRequest(_Body):
    config: ScanConfig
    as_of: AsOf
    scan_id: str | None = Field(
        default=None,
        max_length=200,
        description="The scanner's id for the scan, matched when its log is imported.",
    )
    duration_source: DurationSource | None = Field(default=None, description=_DURATION_SOURCE)


class BatchRequest(_Body):
    configs: list[ScanConfig] = Field(min_length=1, max_length=MAX_BATCH)
    as_of: AsOf
    duration_source: DurationSource | None = Field(default=None, description=_DURATION_SOURCE)
    record: bool = Field(
        default=False,
        strict=True,  # 0 and "yes" are not booleans to a client generated from the schema
        description="Record each prediction in the ledger, with a prediction_id an outcome can be"
        " reported by, as /scan/predict does. Off by default: a screen scoring candidates is not"
        " a scan, and unrun predictions would weigh in the monitor's abstention share.",
    )


class PredictionOut(BaseModel):
    state: Literal["model", "heuristic", "abstain"]
    value: float | None
    lower: float | None = None
    upper: float | None = None
    coverage: float | None = Field(default=None, description="The interval's stated coverage.")
    coverage_verified: float | None = Field(
        default=None, description="The lowest coverage the interval reached on a held-out future fold."
    )
    p_empty: float | None = None
    version: str | None = None
    reasons: list[str] = Field(default_factory=list)
    source: str | None = Field(default=None, description="The duration source a duration is for.")
    extrapolated: bool = Field(
        default=False,
        description="An input lies modestly outside its training range: the interval was widened.",
    )


class RiskOut(BaseModel):
    label: str
    severity: Literal["high", "medium"]
    reason: str


class PredictResponse(BaseModel):
    prediction_id: str
    as_of: dt.datetime
    count: PredictionOut
    duration: PredictionOut
    risks: list[RiskOut]
    market_degraded: bool


class BatchItem(BaseModel):
    prediction_id: str | None = Field(description="Null unless the request asked to record.")
    count: PredictionOut
    duration: PredictionOut
    risks: list[RiskOut]


class BatchResponse(BaseModel):
    as_of: dt.datetime
    market_degraded: bool
    predictions: list[BatchItem] = Field(description="One per config, in the request's order.")


class BatchUnavailable(BatchResponse):
    """503 from /scan/predict/batch: no result-count model; the reason, and the flagged durations."""

    detail: str


class SuggestRequest(_Body):
    goal: Goal
    constraints: Constraints | None = None
    as_of: AsOf


class AnalyzeRequest(_Body):
    config: ScanConfig
    as_of: AsOf


MAX_COUNT = 1_000_000  # symbols a scan returned: all US listings are about 10,000
MAX_DURATION_S = 1_000_000.0  # seconds a scan took: 11.6 days


class OutcomeRequest(_Body):
    """Exactly one of ``prediction_id`` and ``scan_id``; at least one of the actuals (null is
    absent)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "allOf": [
                {"oneOf": [_given("prediction_id", "string"), _given("scan_id", "string")]},
                {"anyOf": [_given("actual_count", "integer"), _given("actual_duration_s", "number")]},
            ]
        },
    )

    prediction_id: str | None = Field(default=None, min_length=1, max_length=64)
    scan_id: str | None = Field(default=None, min_length=1, max_length=200)
    # Bounds a real scan cannot reach, so the ledger's sums stay finite and its integers fit SQLite.
    actual_count: integral(ge=0, le=MAX_COUNT) | None = None
    actual_duration_s: Real | None = Field(default=None, ge=0, le=MAX_DURATION_S, allow_inf_nan=False)


class OutcomeResponse(BaseModel):
    matched: list[str]
    stored: bool = Field(description="False when an outcome was already stored for it (the first is kept).")


class FieldError(BaseModel):
    field: str = Field(
        description="Where: a dotted path into the body (config.max_symbols), query.<name>, or body."
    )
    message: str = Field(description="What was expected.")
    received: Any = Field(default=None, description="The value received (shortened), null when none.")


class InvalidRequest(BaseModel):
    """422: every bad field, the value received and what was expected."""

    detail: list[FieldError]


class Problem(BaseModel):
    """401, 404, 413: what is missing or refused, in a sentence."""

    detail: str


class ServerError(Problem):
    """500: never a traceback; ``error_id`` finds it in the server's log."""

    error_id: str


class PredictUnavailable(PredictResponse):
    """503 from /scan/predict: no result-count model; the reason, and the flagged duration."""

    detail: str


class Health(BaseModel):
    """/health: ready only when the result-count model is loaded (else 503, same body)."""

    ready: bool
    models: dict[str, str | None]
    loaded_at: dt.datetime
    degraded: list[str]
    market_source: str
