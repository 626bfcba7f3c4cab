"""A typed Python client for the prediction API (httpx), speaking the API's own pydantic schemas.

::

    from technic_ml.client import TechnicClient

    config = {"max_symbols": 100, "min_tech_rating": 50, "min_dollar_vol": 1e6, "lookback_days": 60}
    with TechnicClient("http://127.0.0.1:8000") as api:
        p = api.predict(config)
        print(p.count.value, p.count.lower, p.count.upper, p.duration.value)
        api.report_outcome(prediction_id=p.prediction_id, actual_count=42, actual_duration_s=3.1)

Requests are built from the request models (:mod:`technic_ml.api.schemas`), so a bad argument is a
pydantic ``ValidationError`` before anything is sent; responses are parsed into the response
models. A refusal raises :class:`InvalidRequestError` (422, with each bad field),
:class:`NoCountModel` (503 from a prediction: the flagged duration is still in ``.response``) or
:class:`ApiError` (any other status, with the server's ``detail``). ``http=`` takes any
``httpx.Client``, e.g. FastAPI's ``TestClient`` around an app in the same process (the tests and
the replay harness do). The library itself never calls it: it is for the API's users.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from technic_ml.api import schemas
from technic_ml.contracts import MarketConditions, ScanConfig


class ApiError(Exception):
    """A status the operation answered instead of its result: ``status`` and the server's ``detail``."""

    def __init__(self, status: int, detail: Any, body: Any = None):
        super().__init__(f"{status}: {detail}")
        self.status, self.detail, self.body = status, detail, body


class InvalidRequestError(ApiError):
    """422: ``errors`` names each bad field, the value received and what was expected."""

    def __init__(self, body: dict[str, Any]):
        self.errors = schemas.InvalidRequest.model_validate(body).detail
        super().__init__(422, "; ".join(f"{e.field}: {e.message}" for e in self.errors), body)


class NoCountModel(ApiError):
    """503 from a prediction: no result-count model is published; ``response`` still carries the
    rest of the answer (the duration, flagged as the heuristic or a model's)."""

    def __init__(self, response: schemas.PredictUnavailable | schemas.BatchUnavailable):
        super().__init__(503, response.detail, response)
        self.response = response


Config = ScanConfig | dict[str, Any]
T = TypeVar("T", bound=BaseModel)


class TechnicClient:
    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        *,
        api_key: str | None = None,
        timeout: float = 10.0,
        http: httpx.Client | None = None,
    ):
        # Sent with each request rather than set on ``http``: a client passed in is not ours to change.
        self._key = {"X-API-Key": api_key} if api_key else {}
        self._own = http is None
        self.http = http if http is not None else httpx.Client(base_url=base_url, timeout=timeout)

    def __enter__(self) -> TechnicClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._own:
            self.http.close()

    # -- predictions -------------------------------------------------------------------------------

    def predict(
        self,
        config: Config,
        *,
        as_of: dt.datetime | None = None,
        scan_id: str | None = None,
        duration_source: str | None = None,
    ) -> schemas.PredictResponse:
        body = schemas.PredictRequest(
            config=config, as_of=as_of, scan_id=scan_id, duration_source=duration_source
        )
        return self._predicted("/scan/predict", body, schemas.PredictResponse, schemas.PredictUnavailable)

    def predict_batch(
        self,
        configs: list[Config],
        *,
        as_of: dt.datetime | None = None,
        duration_source: str | None = None,
        record: bool = False,
    ) -> schemas.BatchResponse:
        body = schemas.BatchRequest(
            configs=configs, as_of=as_of, duration_source=duration_source, record=record
        )
        return self._predicted("/scan/predict/batch", body, schemas.BatchResponse, schemas.BatchUnavailable)

    def report_outcome(
        self,
        *,
        prediction_id: str | None = None,
        scan_id: str | None = None,
        actual_count: int | None = None,
        actual_duration_s: float | None = None,
    ) -> schemas.OutcomeResponse:
        body = schemas.OutcomeRequest(
            prediction_id=prediction_id,
            scan_id=scan_id,
            actual_count=actual_count,
            actual_duration_s=actual_duration_s,
        )
        return schemas.OutcomeResponse.model_validate_json(
            self._ok(self._send("POST", "/scan/outcome", body)).content
        )

    # -- presets and analysis ----------------------------------------------------------------------

    def presets(self, goal: str | None = None) -> dict[str, Any]:
        """Today's presets (the daily-presets flow's latest document), one goal's or all."""
        params = {"goal": goal} if goal else None
        return self._ok(self._get("/scan/suggest", params)).json()

    def suggest(
        self, goal: str, *, constraints: dict[str, Any] | None = None, as_of: dt.datetime | None = None
    ) -> dict[str, Any]:
        """A preset for ``goal`` computed now under ``constraints``."""
        body = schemas.SuggestRequest(goal=goal, constraints=constraints, as_of=as_of)
        return self._ok(self._send("POST", "/scan/suggest", body)).json()

    def analyze(self, config: Config, *, as_of: dt.datetime | None = None) -> dict[str, Any]:
        body = schemas.AnalyzeRequest(config=config, as_of=as_of)
        return self._ok(self._send("POST", "/scan/analyze", body)).json()

    # -- models and operations ---------------------------------------------------------------------

    def models(self) -> dict[str, Any]:
        return self._ok(self._get("/models")).json()

    def performance(self, last: int = 100) -> dict[str, Any]:
        return self._ok(self._get("/models/performance", {"last": last})).json()

    def market_conditions(self) -> MarketConditions:
        return MarketConditions.model_validate_json(self._ok(self._get("/market/conditions")).content)

    def health(self) -> schemas.Health:
        """Ready or not (a 503 here is an answer, not an error: ``ready`` is False)."""
        r = self._get("/health")
        if r.status_code not in (200, 503):
            self._ok(r)
        return schemas.Health.model_validate_json(r.content)

    # -- plumbing ----------------------------------------------------------------------------------

    def _predicted(self, path: str, body: BaseModel, answer: type[T], unavailable: type[BaseModel]) -> T:
        """A prediction operation's answer; its 503 (no count model) as :class:`NoCountModel`."""
        r = self._send("POST", path, body)
        if r.status_code == 503:
            raise NoCountModel(unavailable.model_validate_json(r.content))
        return answer.model_validate_json(self._ok(r).content)

    def _get(self, path: str, params: dict[str, Any] | None = None) -> httpx.Response:
        return self.http.get(path, params=params, headers=self._key)

    def _send(self, method: str, path: str, body: BaseModel) -> httpx.Response:
        content = body.model_dump_json(exclude_none=True)
        headers = {**self._key, "content-type": "application/json"}
        return self.http.request(method, path, content=content, headers=headers)

    @staticmethod
    def _ok(r: httpx.Response) -> httpx.Response:
        if r.status_code == 200:
            return r
        try:
            body = r.json()
        except ValueError:
            raise ApiError(r.status_code, r.text[:500]) from None
        if not isinstance(body, dict):  # not this API's error body (a proxy's, say)
            raise ApiError(r.status_code, r.text[:500], body)
        if r.status_code == 422 and isinstance(body.get("detail"), list):
            raise InvalidRequestError(body)
        raise ApiError(r.status_code, body.get("detail"), body)
