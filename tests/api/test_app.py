"""Every endpoint and its error paths, through FastAPI's TestClient on real (sample) champions."""

from __future__ import annotations

import json
import threading

from fastapi.testclient import TestClient

from technic_ml.api.app import MAX_BODY_BYTES, create_app
from technic_ml.api.service import PredictionService
from technic_ml.predictors.registry import ModelRegistry
from technic_ml.settings import TechnicSettings

CONFIG = {"max_symbols": 100, "min_tech_rating": 50, "min_dollar_vol": 1e6, "lookback_days": 60}
AS_OF = "2018-12-20T10:00:00-05:00"
# What a publisher writes; the registry adds the rest (version, hashes, library versions).
PUBLISHED = ("target", "features", "feature_set", "params", "coverage", "training_window",
             "training_data_sha256", "data_source", "data_note", "interval", "validation")  # fmt: skip


def _republish(registry: ModelRegistry, version: str) -> str:
    """Publish the count model of ``version`` again as a new version and make it champion."""
    predictor, manifest = registry.load("result-count", version)
    new = registry.publish("result-count", predictor, {k: manifest[k] for k in PUBLISHED if k in manifest})
    registry.promote("result-count", new.version)
    return new.version


def test_predict_answers_both_targets_with_intervals_and_a_ledger_id(client, service):
    r = client.post("/scan/predict", json={"config": CONFIG, "as_of": AS_OF})
    assert r.status_code == 200, r.text
    body = r.json()
    count, duration = body["count"], body["duration"]
    assert count["state"] == "model" and count["lower"] <= count["value"] <= count["upper"]
    assert count["coverage"] == 0.9 and 0 <= count["p_empty"] <= 1 and count["version"]
    assert duration["state"] == "model" and duration["upper"] > 0
    assert body["as_of"].startswith("2018-12-20T10:00") and body["market_degraded"] is False
    assert len(body["prediction_id"]) == 32
    assert service.ledger.counts()["predictions"] == 1


def test_invalid_input_names_every_bad_field_without_a_traceback(client):
    bad = {"config": {**CONFIG, "max_symbols": "100", "lookback_days": 5}, "as_of": AS_OF, "colour": 1}
    r = client.post("/scan/predict", json=bad)
    assert r.status_code == 422
    fields = {e["field"] for e in r.json()["detail"]}
    assert {"config.max_symbols", "config.lookback_days", "colour"} <= fields, r.json()
    assert "Traceback" not in r.text
    assert (
        client.post(
            "/scan/predict", content=b"{not json", headers={"content-type": "application/json"}
        ).status_code
        == 422
    )


def test_oversized_bodies_are_refused(client):
    big = json.dumps({"config": {**CONFIG, "sectors": ["x" * 100] * (MAX_BODY_BYTES // 50)}})
    r = client.post("/scan/predict", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "bytes" in r.json()["detail"]


def test_an_unexpected_error_is_a_500_with_an_id_not_a_traceback(client, service, monkeypatch):
    monkeypatch.setattr(service, "conditions", lambda as_of=None: 1 / 0)
    with TestClient(client.app, raise_server_exceptions=False) as c:
        r = c.post("/scan/predict", json={"config": CONFIG})
    assert r.status_code == 500 and r.json()["detail"] == "internal error" and r.json()["error_id"]
    assert "ZeroDivision" not in r.text and "Traceback" not in r.text


def test_without_a_count_model_predict_is_503_with_the_reason_and_the_flagged_heuristic(tmp_path):
    service = PredictionService(TechnicSettings(data_root=tmp_path / "empty"))
    with TestClient(create_app(service, reload=False)) as c:
        r = c.post("/scan/predict", json={"config": CONFIG, "as_of": AS_OF})
        assert r.status_code == 503
        body = r.json()
        assert "no result-count model" in body["detail"]
        assert body["count"]["state"] == "abstain" and body["count"]["value"] is None
        assert body["duration"]["state"] == "heuristic" and body["duration"]["value"] == 10.0
        health = c.get("/health")
        assert health.status_code == 503 and health.json()["ready"] is False
        assert any("no result-count model" in d for d in health.json()["degraded"])


def test_health_is_ready_with_models(client):
    r = client.get("/health")
    assert r.status_code == 200 and r.json()["ready"] is True and r.json()["models"]["count"]


def test_a_newly_published_champion_is_served_without_restart_or_failed_requests(settings, service):
    registry = ModelRegistry(settings.model_registry_path)
    old = registry.aliases("result-count")["champion"]
    statuses: list[int] = []
    stop = threading.Event()
    with TestClient(create_app(service, reload=False)) as c:

        def hammer():
            while not stop.is_set():
                statuses.append(c.post("/scan/predict", json={"config": CONFIG, "as_of": AS_OF}).status_code)

        worker = threading.Thread(target=hammer)
        worker.start()
        try:
            new = _republish(registry, old)
            assert service.refresh() is True
            after = c.post("/scan/predict", json={"config": CONFIG, "as_of": AS_OF}).json()
        finally:
            stop.set()
            worker.join()
        assert after["count"]["version"] == new != old
        assert c.get("/models").json()["serving"]["count"] == new
    assert statuses and set(statuses) == {200}


def test_outcomes_by_prediction_id_and_by_scan_id(client):
    first = client.post("/scan/predict", json={"config": CONFIG, "as_of": AS_OF}).json()
    r = client.post("/scan/outcome", json={"prediction_id": first["prediction_id"], "actual_count": 12})
    assert r.status_code == 200 and r.json() == {"matched": [first["prediction_id"]], "stored": True}
    again = client.post("/scan/outcome", json={"prediction_id": first["prediction_id"], "actual_count": 99})
    assert again.json()["stored"] is False  # the first outcome is kept
    client.post("/scan/predict", json={"config": CONFIG, "as_of": AS_OF, "scan_id": "scan-42"})
    by_scan = client.post(
        "/scan/outcome", json={"scan_id": "scan-42", "actual_count": 3, "actual_duration_s": 0.002}
    )
    assert by_scan.status_code == 200 and len(by_scan.json()["matched"]) == 1
    assert client.post("/scan/outcome", json={"prediction_id": "nope", "actual_count": 1}).status_code == 404
    assert client.post("/scan/outcome", json={"scan_id": "nope", "actual_count": 1}).status_code == 404
    assert client.post("/scan/outcome", json={"actual_count": 1}).status_code == 422
    assert client.post("/scan/outcome", json={"prediction_id": first["prediction_id"]}).status_code == 422


def test_performance_is_mae_and_coverage_over_the_last_outcomes(client):
    made = [
        client.post("/scan/predict", json={"config": {**CONFIG, "min_tech_rating": r}, "as_of": AS_OF}).json()
        for r in (30, 50, 70)
    ]
    actual = [made[0]["count"]["value"] + 2, made[1]["count"]["upper"] + 5, made[2]["count"]["lower"]]
    for m, a in zip(made, actual, strict=True):
        client.post("/scan/outcome", json={"prediction_id": m["prediction_id"], "actual_count": round(a)})
    perf = client.get("/models/performance", params={"last": 10}).json()
    errors = [abs(m["count"]["value"] - round(a)) for m, a in zip(made, actual, strict=True)]
    assert perf["count"]["n"] == 3 and abs(perf["count"]["mae"] - sum(errors) / 3) < 1e-9
    inside = [
        m["count"]["lower"] <= round(a) <= m["count"]["upper"] for m, a in zip(made, actual, strict=True)
    ]
    assert perf["count"]["coverage"] == sum(inside) / 3
    assert perf["duration"]["n"] == 0 and perf["duration"]["mae"] is None
    assert client.get("/models/performance", params={"last": 0}).status_code == 422


def test_suggest_today_serves_the_saved_presets(client, settings):
    assert client.get("/scan/suggest").status_code == 404
    from technic_ml.optimizer import PresetsHistory

    document = {
        "schema_version": 1, "presets_id": "p1", "generated_at": "2018-12-20T08:30:00-05:00",
        "for_session": "2018-12-20", "source": "model", "flags": [],
        "provenance": {"snapshot_id": "s"}, "presets": {"quick": {"config": CONFIG}, "deep": {}},
    }  # fmt: skip
    PresetsHistory(settings.presets_path).save(document)
    r = client.get("/scan/suggest", params={"goal": "quick"})
    assert r.status_code == 200 and list(r.json()["presets"]) == ["quick"]
    assert r.json()["provenance"]["snapshot_id"] == "s"
    # The service's "today" on the sample is the session after its last close (2019-01-02).
    assert r.json()["stale"] is True and r.json()["current_session"] == "2019-01-02"
    assert client.get("/scan/suggest", params={"goal": "fast"}).status_code == 422


def test_suggest_on_demand_and_analyze(client):
    r = client.post(
        "/scan/suggest", json={"goal": "quick", "as_of": AS_OF, "constraints": {"max_symbols_max": 60}}
    )
    assert r.status_code == 200, r.text
    assert r.json()["source"] == "model" and r.json()["config"]["max_symbols"] <= 60
    bad = client.post("/scan/suggest", json={"goal": "quick", "constraints": {"max_symbol": 5}})
    assert bad.status_code == 422 and "constraints.max_symbol" in {e["field"] for e in bad.json()["detail"]}
    a = client.post("/scan/analyze", json={"config": {**CONFIG, "min_tech_rating": 0, "max_symbols": 200},
                                           "as_of": AS_OF})  # fmt: skip
    assert a.status_code == 200 and "more results than anyone will review" in [
        x["label"] for x in a.json()["risks"]
    ]


def test_models_and_market_conditions(client, settings):
    models = client.get("/models").json()
    assert models["registry"]["count"]["champion"] == models["serving"]["count"]
    assert client.get("/market/conditions").status_code == 404
    from technic_ml.jobs.market import take_snapshot

    take_snapshot(settings, AS_OF)
    r = client.get("/market/conditions")
    assert (
        r.status_code == 200 and r.json()["degraded"] is False and r.json()["as_of"].startswith("2018-12-20")
    )


def test_an_api_key_guards_everything_but_health(service):
    with TestClient(create_app(service, api_key="s3cret", reload=False)) as c:
        assert c.post("/scan/predict", json={"config": CONFIG}).status_code == 401
        assert (
            c.post("/scan/predict", json={"config": CONFIG}, headers={"X-API-Key": "wrong"}).status_code
            == 401
        )
        ok = c.post("/scan/predict", json={"config": CONFIG, "as_of": AS_OF}, headers={"X-API-Key": "s3cret"})
        assert ok.status_code == 200
        assert c.get("/health").status_code == 200


def test_the_api_command_refuses_a_public_address_without_a_key(monkeypatch):
    from typer.testing import CliRunner

    from technic_ml.cli import app

    monkeypatch.delenv("TECHNIC_API_KEY", raising=False)
    result = CliRunner().invoke(app, ["api", "--host", "0.0.0.0"])
    assert result.exit_code == 1 and "TECHNIC_API_KEY" in result.output


def test_the_background_poller_picks_up_a_rollback_without_restart(settings, service):
    import time

    registry = ModelRegistry(settings.model_registry_path)
    first = registry.aliases("result-count")["champion"]
    second = _republish(registry, first)
    with TestClient(create_app(service)) as c:  # reload=True: the lifespan starts the poller (0.2 s)
        deadline = time.monotonic() + 10
        while c.get("/models").json()["serving"]["count"] != second and time.monotonic() < deadline:
            time.sleep(0.1)
        assert c.get("/models").json()["serving"]["count"] == second
        registry.rollback("result-count")
        deadline = time.monotonic() + 10
        while c.get("/models").json()["serving"]["count"] != first and time.monotonic() < deadline:
            time.sleep(0.1)
        assert c.get("/models").json()["serving"]["count"] == first


def test_repeated_configs_are_answered_from_the_cache_and_a_swap_invalidates_it(settings, service):
    conditions = service.conditions(None)
    from technic_ml.contracts import ScanConfig

    config = ScanConfig(**CONFIG)
    first = service.predict(config, conditions)
    assert service.predict(ScanConfig(**CONFIG), conditions) is first  # same config, same minute
    other = service.predict(ScanConfig(**{**CONFIG, "min_tech_rating": 51}), conditions)
    assert other is not first
    registry = ModelRegistry(settings.model_registry_path)
    old = registry.aliases("result-count")["champion"]
    new = _republish(registry, old)
    assert service.refresh()
    after = service.predict(config, conditions)
    assert after is not first and after["count"].version == new


def test_a_moment_the_market_data_cannot_serve_is_a_422_with_the_reason(client):
    r = client.post("/scan/predict", json={"config": CONFIG, "as_of": "1990-01-02T10:00:00-05:00"})
    assert r.status_code == 422 and r.json()["detail"], r.text
    assert "Traceback" not in r.text


def test_other_methods_on_the_fast_path_go_through_the_router(client):
    assert client.get("/scan/predict").status_code == 405


def test_a_config_with_a_huge_integer_in_an_extra_field_is_served(client):
    r = client.post("/scan/predict", json={"config": {**CONFIG, "note": 2**70}, "as_of": AS_OF})
    assert r.status_code == 200, r.text


def test_a_duration_names_its_source_and_one_never_trained_on_abstains(client):
    default = client.post("/scan/predict", json={"config": CONFIG, "as_of": AS_OF}).json()["duration"]
    assert default["source"] == "sample" and default["state"] == "model"  # the configured market data
    body = {"config": CONFIG, "as_of": AS_OF, "duration_source": "scanner_log"}
    logged = client.post("/scan/predict", json=body).json()["duration"]
    assert logged["source"] == "scanner_log" and logged["state"] == "abstain" and logged["value"] is None
    assert any("data_source=3 outside the training range" in r for r in logged["reasons"])
    bad = client.post("/scan/predict", json={**body, "duration_source": "nasdaq"})
    assert bad.status_code == 422 and "duration_source" in bad.text


def test_a_challenger_is_shadowed_into_the_ledger_never_served(settings, service):
    registry = ModelRegistry(settings.model_registry_path)
    champion = registry.aliases("result-count")["champion"]
    predictor, manifest = registry.load("result-count", champion)
    challenger = registry.publish(
        "result-count", predictor, {k: manifest[k] for k in PUBLISHED if k in manifest}
    ).version
    registry.set_challenger("result-count", challenger, "test: shadow it")
    assert service.refresh() is True
    assert service.serving.challenger_versions["count"] == challenger
    with TestClient(create_app(service, reload=False)) as c:
        body = c.post("/scan/predict", json={"config": CONFIG, "as_of": AS_OF}).json()
        assert body["count"]["version"] == champion  # the client gets the champion only
        assert c.post("/scan/outcome", json={"prediction_id": body["prediction_id"], "actual_count": 7})
        frame = service.ledger.outcomes_frame()  # the app's lifespan closes the ledger on exit
    mine = frame[(frame.prediction_id == body["prediction_id"]) & (frame.target == "count")]
    by_role = mine.set_index("role")
    assert by_role.loc["served", "version"] == champion and by_role.loc["shadow", "version"] == challenger
    # the same model file: the same prediction, and the same outcome to score it on
    assert by_role.loc["shadow", "value"] == by_role.loc["served", "value"]
    assert set(mine["actual"]) == {7.0}
    # promoting it ends the shadow: nothing left to prove
    registry.promote("result-count", challenger, "test")
    assert service.refresh() is True and service.serving.challengers is None
    assert service.serving.versions["count"] == challenger
