"""Request and response bodies of the prediction API (pydantic, documented in its OpenAPI schema)."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from technic_ml.contracts import ScanConfig
from technic_ml.optimizer.goals import Constraints

Goal = Literal["quick", "balanced", "deep"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PredictRequest(_Body):
    config: ScanConfig
    as_of: dt.datetime | None = Field(
        default=None, description="Moment of the scan (default: now live, the data's last close offline)."
    )
    scan_id: str | None = Field(
        default=None,
        max_length=200,
        description="The scanner's id for the scan, matched when its log is imported.",
    )
    duration_source: Literal["sample", "parquet", "yfinance", "scanner_log"] | None = Field(
        default=None,
        description=(
            "Whose durations to predict: the reference scanner on that market data, or scanner_log"
            " (the production scanner's logged durations). Default: the configured market data."
        ),
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


class SuggestRequest(_Body):
    goal: Goal
    constraints: Constraints | None = None
    as_of: dt.datetime | None = None


class AnalyzeRequest(_Body):
    config: ScanConfig
    as_of: dt.datetime | None = None


class OutcomeRequest(_Body):
    prediction_id: str | None = Field(default=None, max_length=64)
    scan_id: str | None = Field(default=None, max_length=200)
    actual_count: int | None = Field(default=None, ge=0)
    actual_duration_s: float | None = Field(default=None, ge=0)


class OutcomeResponse(BaseModel):
    matched: list[str]
    stored: bool = Field(description="False when an outcome was already stored for it (the first is kept).")
