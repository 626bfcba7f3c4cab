"""The prediction API (FastAPI): the scanner app asks here before it scans.

Endpoints: ``POST /scan/predict``, ``GET|POST /scan/suggest``, ``POST /scan/analyze``,
``POST /scan/outcome``, ``GET /models``, ``GET /models/performance``, ``GET /market/conditions``,
``GET /health``. Everything is computed by :class:`~technic_ml.api.service.PredictionService`
and the library; this module is HTTP only:

* invalid input is a 422 whose ``detail`` names each bad field, the value and what was expected;
* bodies over ``max_body_bytes`` are refused with 413 before they are read in full;
* an unexpected error is a 500 with an ``error_id`` to find the traceback in the server log,
  never the traceback itself;
* with an ``api_key``, every endpoint except ``/health`` requires the ``X-API-Key`` header.

No count model: ``/scan/predict`` answers 503 with the reason and the flagged duration heuristic.
Never a made-up number.
"""

from __future__ import annotations

import gc
import hmac
import logging
import math
import uuid
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from technic_ml.api import prediction_ids, schemas
from technic_ml.api.ledger import UnknownPrediction
from technic_ml.api.service import PredictionService
from technic_ml.errors import TechnicError
from technic_ml.nyse import current_or_next_session
from technic_ml.optimizer import Optimizer, analyze
from technic_ml.optimizer.analysis import Review, risks_of
from technic_ml.predictors.registry import registry_summary
from technic_ml.settings import TechnicSettings

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 16 * 1024
#: A batch of MAX_BATCH configs with a few sectors and industries each fits with room to spare.
BODY_LIMITS = {"/scan/predict/batch": schemas.MAX_BATCH * 1024}
OPEN_PATHS = {"/health", "/docs", "/openapi.json", "/docs/oauth2-redirect", "/redoc"}


class _BodyLimit:
    """Refuse request bodies over their path's limit in bytes (``limits``, else ``limit``), by header
    and while streaming for chunked ones."""

    def __init__(self, app, limit: int, limits: dict[str, int]):
        self.app, self.default, self.limits = app, limit, limits

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.limits.get(scope["path"], self.default)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            return await _too_large(send, limit)
        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLarge
            return message

        try:
            return await self.app(scope, limited, send)
        except _TooLarge:
            return await _too_large(send, limit)


class _ApiKey:
    """Require ``X-API-Key`` on every path but the open ones (pure ASGI: no per-request task)."""

    def __init__(self, app, key: str):
        self.app, self.key = app, key.encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"] not in OPEN_PATHS:
            given = dict(scope.get("headers") or []).get(b"x-api-key", b"")
            if not hmac.compare_digest(given, self.key):
                return await JSONResponse({"detail": "missing or wrong X-API-Key"}, status_code=401)(
                    scope, receive, send
                )
        return await self.app(scope, receive, send)


class _FastPath:
    """``POST path`` straight to ``handler(body) -> (status, json bytes)``, past the router.

    Routing, the Request object and FastAPI's endpoint machinery cost about a third of a
    prediction served from the cache. Errors the handler does not answer itself propagate to the
    server-error handler (a 500 with an ``error_id``), as they do from a route.
    """

    def __init__(self, app, path: str, handler):
        self.app, self.path, self.handler = app, path, handler

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        chunks = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        status, content = self.handler(b"".join(chunks))
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(content)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})
        return None


class _TooLarge(Exception):
    pass


async def _too_large(send, limit: int) -> None:
    body = JSONResponse({"detail": f"request body over {limit} bytes"}, status_code=413).body
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _invalid_response(errors) -> JSONResponse:
    detail = [
        {"field": _field(e["loc"]), "message": e["msg"], "received": _short(e.get("input"))} for e in errors
    ]
    return JSONResponse({"detail": detail}, status_code=422)


def _field(loc) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    return ".".join(parts) or "body"


def create_app(service: PredictionService, *, api_key: str | None = None, reload: bool = True) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app):
        if reload:
            service.start()
        try:
            yield
        finally:
            service.stop()

    app = FastAPI(
        title="technic-ml prediction API",
        version="1",
        description="Predicted result count and duration of a Technic scan, daily presets, analysis.",
        lifespan=lifespan,
    )
    app.state.service = service

    def openapi():
        if app.openapi_schema is None:
            from fastapi.openapi.utils import get_openapi

            doc = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            extra = schemas.PredictRequest.model_json_schema(ref_template="#/components/schemas/{model}")
            components = doc.setdefault("components", {}).setdefault("schemas", {})
            for name, definition in extra.pop("$defs", {}).items():
                components.setdefault(name, definition)
            components["PredictRequest"] = extra
            _document_errors(doc, api_key is not None)
            # A prediction's id is what its outcome is reported by: the link lets a client
            # generator (and schemathesis' stateful run) chain the two calls.
            doc["paths"]["/scan/predict"]["post"]["responses"]["200"]["links"] = {
                "ReportOutcome": {
                    "operationId": "outcome_scan_outcome_post",
                    "requestBody": {"prediction_id": "$response.body#/prediction_id", "actual_count": 0},
                    "description": "Report what the predicted scan returned.",
                }
            }
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request, exc: RequestValidationError):
        return _invalid_response(exc.errors())

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        if exc.status_code == 400:  # a body that is not JSON: a bad field like any other
            return JSONResponse(_refusal("body", f"{exc.detail}: expected a JSON object"), status_code=422)
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # Starlette names only the first route's methods; /scan/suggest has two routes.
            allowed = {m for r in app.routes if getattr(r, "path", None) == request.url.path
                       for m in getattr(r, "methods", ())}  # fmt: skip
            headers["Allow"] = ", ".join(sorted(allowed))
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)

    @app.exception_handler(TechnicError)
    async def _refused(_request, exc: TechnicError):
        return JSONResponse(_refusal("body", exc), status_code=422)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        error_id = uuid.uuid4().hex[:12]
        log.error("error %s on %s %s", error_id, request.method, request.url.path, exc_info=exc)
        return JSONResponse({"detail": "internal error", "error_id": error_id}, status_code=500)

    review = Review()

    def _prediction(p) -> dict[str, Any]:
        d = p.to_dict()
        d.pop("target", None)
        return d

    unavailable = "No result-count model: the reason and the flagged duration heuristic"
    no_model = {503: {"model": schemas.PredictUnavailable, "description": unavailable}}

    # The hot endpoint validates the raw bytes with pydantic's JSON parser and answers with orjson:
    # FastAPI's generic body handling (JSON parse, dependency solving, a second validation pass)
    # cost more than both models together. The schema it documents is the same PredictRequest.
    predict_body = {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PredictRequest"}}},
    }

    @app.post(
        "/scan/predict",
        response_model=schemas.PredictResponse,
        responses=no_model,
        openapi_extra={"requestBody": predict_body},
    )
    async def predict(request: Request):
        """Predicted count and duration of one scan, with intervals, P(empty), state and risks."""
        # Served by _FastPath in front of the router; this route documents it (and would serve it
        # the same way if the fast path were removed).
        status, content = predict_response(await request.body())
        return Response(content, status_code=status, media_type="application/json")

    def predict_response(raw: bytes) -> tuple[int, bytes]:
        """(status, JSON body) of POST /scan/predict for the raw request body."""
        try:
            body = schemas.PredictRequest.model_validate_json(raw)
        except ValidationError as exc:
            invalid = _invalid_response(exc.errors())
            return invalid.status_code, invalid.body
        serving = service.serving
        try:
            conditions = service.conditions(body.as_of)
        except TechnicError as exc:  # what the TechnicError handler answers for the other routes
            return 422, orjson.dumps(_refusal("as_of", exc, body.as_of and body.as_of.isoformat()))
        answer = served(body.config, conditions, serving, body.duration_source, body.scan_id, record=True)
        payload = {
            **answer,
            "as_of": conditions.as_of.isoformat(),
            "market_degraded": bool(conditions.degraded),
        }
        if serving.predictors.count is None:
            return 503, orjson.dumps({"detail": _no_count(answer), **payload})
        return 200, orjson.dumps(payload)

    def served(config, conditions, serving, duration_source, scan_id=None, *, record: bool) -> dict[str, Any]:
        """One config's answer (prediction_id, count, duration, risks), recorded in the ledger when
        ``record``: what /scan/predict and each row of /scan/predict/batch serve."""
        result = service.predict(config, conditions, serving, duration_source)
        count, duration = result["count"], result["duration"]
        prediction_id = None
        if record:
            prediction_id = prediction_ids.new()
            service.ledger.record(
                prediction_id,
                config.model_dump(mode="json"),
                count,
                duration,
                scan_id,
                result.get("shadows", ()),
            )
        return {
            "prediction_id": prediction_id,
            "count": _prediction(count),
            "duration": _prediction(duration),
            "risks": [vars(r) for r in risks_of(count, duration, review)],
        }

    @app.post(
        "/scan/predict/batch",
        response_model=schemas.BatchResponse,
        responses={503: {"model": schemas.BatchUnavailable, "description": unavailable}},
    )
    def predict_batch(body: schemas.BatchRequest):
        """Predicted count and duration of up to MAX_BATCH configs at once, in the request's order,
        by the same models and runtime as /scan/predict (a screen scoring candidate configs)."""
        # A plain def: FastAPI runs it in its thread pool, so a long batch does not hold up the
        # event loop (and with it every other request) while it computes.
        serving = service.serving
        conditions = service.conditions(body.as_of)
        answers = [
            served(c, conditions, serving, body.duration_source, record=body.record) for c in body.configs
        ]
        payload = {
            "as_of": conditions.as_of.isoformat(),
            "market_degraded": bool(conditions.degraded),
            "predictions": answers,
        }
        if serving.predictors.count is None:
            return Response(
                orjson.dumps({"detail": _no_count(answers[0]), **payload}),
                status_code=503,
                media_type="application/json",
            )
        return Response(orjson.dumps(payload), media_type="application/json")

    @app.get("/scan/suggest", responses=_not_found("No presets saved yet (run daily-presets)"))
    async def suggest_today(goal: schemas.Goal | None = Query(default=None)):
        """Today's presets from the daily-presets flow, with their provenance."""
        latest = service.presets.latest()
        if latest is None:
            return JSONResponse(
                {
                    "detail": "no presets saved yet: run the daily-presets flow"
                    " (technic-ml trigger daily-presets)"
                },
                status_code=404,
            )
        if goal is not None:
            latest = {**latest, "presets": {goal: latest["presets"][goal]}}
        # Yesterday's presets are still served (better than none), but say so.
        current = current_or_next_session(service.default_as_of()).isoformat()
        return {**latest, "current_session": current, "stale": latest.get("for_session") != current}

    @app.post("/scan/suggest")
    async def suggest(body: schemas.SuggestRequest):
        """A preset for one goal computed now, under the given constraints."""
        conditions = service.conditions(body.as_of)
        optimizer = Optimizer(service.serving.predictors)
        return optimizer.suggest(body.goal, conditions, body.constraints).to_dict()

    @app.post("/scan/analyze")
    async def analyze_config(body: schemas.AnalyzeRequest):
        """Predictions, risk labels with reasons and concrete fixes for one config."""
        conditions = service.conditions(body.as_of)
        return analyze(service.serving.predictors, body.config, conditions).to_dict()

    @app.post(
        "/scan/outcome",
        response_model=schemas.OutcomeResponse,
        responses=_not_found("No prediction with this prediction_id, or none made for this scan_id"),
    )
    def outcome(body: schemas.OutcomeRequest):
        """The scanner reports what a scan returned and how long it took."""
        # A plain def (FastAPI's thread pool): an outcome for a prediction another worker has not
        # written yet waits for it (ledger.report), and must not hold up the event loop meanwhile.
        if (body.prediction_id is None) == (body.scan_id is None):
            return JSONResponse(_refusal("prediction_id", "give exactly one of prediction_id or scan_id"),
                                status_code=422)  # fmt: skip
        if body.actual_count is None and body.actual_duration_s is None:
            return JSONResponse(_refusal("actual_count", "give actual_count, actual_duration_s or both"),
                                status_code=422)  # fmt: skip
        if body.prediction_id is not None:
            try:
                stored = service.ledger.report(body.prediction_id, body.actual_count, body.actual_duration_s)
            except UnknownPrediction:
                return JSONResponse(
                    {"detail": f"unknown prediction_id {body.prediction_id!r}"}, status_code=404
                )
            return {"matched": [body.prediction_id], "stored": stored}
        matched = service.ledger.report_scan(body.scan_id, body.actual_count, body.actual_duration_s)
        if not matched:
            return JSONResponse(
                {"detail": f"no prediction was made for scan_id {body.scan_id!r}"}, status_code=404
            )
        return {"matched": matched, "stored": True}

    @app.get("/models")
    async def models():
        """Champion and challenger versions with their validation metrics, and what is served."""
        # Gates may be unbounded (-inf / inf): JSON has no infinity, so an open bound reads null.
        return _finite({"serving": service.serving.versions, "registry": registry_summary(service.registry)})

    @app.get("/models/performance")
    async def performance(last: int = Query(default=100, ge=1, le=100_000)):
        """Online MAE and interval coverage over the last outcomes reported."""
        perf = service.ledger.performance(last)
        return _finite({"last": last, **{t: p.to_dict() for t, p in perf.items()}, **service.ledger.counts()})

    @app.get("/market/conditions", responses=_not_found("No market snapshot saved yet (run market-snapshot)"))
    async def market_conditions():
        """The latest persisted market snapshot, with its degraded flag."""
        latest = service.snapshots.latest()
        if latest is None:
            return JSONResponse(
                {"detail": "no market snapshot saved yet (run market-snapshot)"}, status_code=404
            )
        return latest.model_dump(mode="json")

    @app.get(
        "/health",
        response_model=schemas.Health,
        responses={503: {"model": schemas.Health, "description": "Not ready: no result-count model"}},
    )
    async def health():
        """Ready only when the result-count model is loaded; says what is degraded."""
        report = service.health()
        return JSONResponse(report, status_code=200 if report["ready"] else 503)

    @app.get("/ping", include_in_schema=False)
    async def ping():
        return {"ok": True}  # the benchmark's floor: the same app, no work

    # Outermost last: the body limit, then the key, then the fast path to the hot endpoint.
    app.add_middleware(_FastPath, path="/scan/predict", handler=predict_response)
    if api_key is not None:
        app.add_middleware(_ApiKey, key=api_key)
    app.add_middleware(_BodyLimit, limit=MAX_BODY_BYTES, limits=BODY_LIMITS)
    return app


def _no_count(answer: dict[str, Any]) -> str:
    return "; ".join(answer["count"]["reasons"]) or "no result-count model"


def _refusal(field: str, message: object, received: Any = None) -> dict[str, Any]:
    """A 422 body of one field error (:class:`schemas.InvalidRequest`), for refusals the code makes."""
    return {"detail": [{"field": field, "message": str(message), "received": _short(received)}]}


def _not_found(description: str) -> dict[int | str, dict[str, Any]]:
    return {404: {"model": schemas.Problem, "description": description}}


_ERRORS = {
    "401": ("Missing or wrong X-API-Key", "Problem"),
    "413": ("Request body over the operation's limit", "Problem"),
    "422": ("Each bad field, the value received and what was expected", "InvalidRequest"),
    "500": ("Unexpected error: its error_id finds the traceback in the server log", "ServerError"),
}


def _document_errors(doc: dict[str, Any], with_key: bool) -> None:
    """Every operation documents the errors the middleware and handlers answer, with their bodies:
    422 (ours, instead of FastAPI's default schema) where there is input, 413 where there is a
    body, 401 with an API key (not /health), 500 everywhere."""
    components = doc["components"]["schemas"]
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    for model in (schemas.InvalidRequest, schemas.Problem, schemas.ServerError):
        definition = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for sub_name, sub in definition.pop("$defs", {}).items():
            components.setdefault(sub_name, sub)
        components[model.__name__] = definition

    def response(code: str) -> dict[str, Any]:
        description, model = _ERRORS[code]
        return {
            "description": description,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model}"}}},
        }

    for path, operations in doc["paths"].items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            has_input = "requestBody" in operation or operation.get("parameters")
            if has_input:
                responses["422"] = response("422")
            else:
                responses.pop("422", None)
            if "requestBody" in operation:
                limit = BODY_LIMITS.get(path, MAX_BODY_BYTES)
                responses["413"] = {**response("413"), "description": f"Request body over {limit} bytes"}
            if with_key and path not in OPEN_PATHS:
                responses["401"] = response("401")
            responses["500"] = response("500")


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _short(value: Any, limit: int = 80) -> Any:
    text = repr(value)
    return (
        value if len(text) <= limit and isinstance(value, int | float | str | bool | None) else text[:limit]
    )


def app_from_settings(settings: TechnicSettings | None = None) -> FastAPI:
    """The app as ``technic-ml api`` serves it, and as each of its ``--workers N`` processes builds it
    (uvicorn's factory, no argument: the environment's settings): its own service, polling the
    registry every ``api_reload_seconds``, writing to the shared ledger."""
    settings = settings or TechnicSettings()
    service = PredictionService(settings, reload_seconds=settings.api_reload_seconds)
    app = create_app(service, api_key=settings.api_key.get_secret_value() if settings.api_key else None)
    # The loaded service (market panel, models, libraries: millions of objects) lives as long as the
    # process; frozen, the collector's full passes stop walking it. They were the 20-50 ms stalls
    # behind the p99 of computed predictions under load (bench/bench_api.py).
    gc.collect()
    gc.freeze()
    return app


__all__ = ["app_from_settings", "create_app"]
