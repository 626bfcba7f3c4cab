"""technic_ml.client against the real app in process (FastAPI's TestClient is an httpx.Client)."""

from __future__ import annotations

import shutil

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from technic_ml.api.app import create_app
from technic_ml.api.service import PredictionService
from technic_ml.client import ApiError, InvalidRequestError, NoCountModel, TechnicClient
from technic_ml.contracts import MarketConditions
from technic_ml.settings import TechnicSettings

CONFIG = {"max_symbols": 100, "min_tech_rating": 50, "min_dollar_vol": 1e6, "lookback_days": 60}


@pytest.fixture
def technic(tmp_path, champions_root):
    root = tmp_path / "root"
    shutil.copytree(champions_root, root)
    service = PredictionService(TechnicSettings(data_root=root))
    with (
        TestClient(create_app(service, reload=False)) as http,
        TechnicClient(http=http) as c,
    ):
        yield c
    service.stop()


def test_predict_then_report_the_outcome_typed_end_to_end(technic):
    p = technic.predict(CONFIG, scan_id="scan-1")
    assert p.count.state == "model" and p.count.lower <= p.count.value <= p.count.upper
    assert p.duration.state in {"model", "heuristic"} and p.as_of.tzinfo is not None
    done = technic.report_outcome(prediction_id=p.prediction_id, actual_count=12, actual_duration_s=2.5)
    assert done.matched == [p.prediction_id] and done.stored is True
    again = technic.report_outcome(scan_id="scan-1", actual_count=13)
    assert again.matched == [p.prediction_id]
    perf = technic.performance(last=10)
    assert perf["outcomes"] >= 1 and perf["count"]["n"] >= 1


def test_batch_health_models_and_presets(technic):
    batch = technic.predict_batch([CONFIG, {**CONFIG, "max_symbols": 300}], record=True)
    assert len(batch.predictions) == 2 and all(row.prediction_id for row in batch.predictions)
    health = technic.health()
    assert health.ready is True and health.models["count"]
    assert technic.models()["serving"]["count"] == health.models["count"]
    suggestion = technic.suggest("quick", constraints={"max_symbols_max": 200})
    assert suggestion["goal"] == "quick" and suggestion["config"]["max_symbols"] <= 200
    assert "risks" in technic.analyze(CONFIG)


def test_refusals_raise_with_what_the_server_said(technic):
    with pytest.raises(ValidationError, match="max_symbols"):  # caught before anything is sent
        technic.predict({**CONFIG, "max_symbols": 0})
    with pytest.raises(InvalidRequestError) as refused:  # only the server knows "exactly one id"
        technic.report_outcome(prediction_id="a", scan_id="b", actual_count=1)
    assert refused.value.status == 422 and refused.value.errors[0].field == "prediction_id"
    with pytest.raises(ApiError) as unknown:
        technic.report_outcome(prediction_id="no-such-prediction", actual_count=1)
    assert unknown.value.status == 404 and "no-such-prediction" in unknown.value.detail
    with pytest.raises(ApiError) as missing:
        technic.market_conditions()  # no snapshot saved in this root
    assert missing.value.status == 404
    with pytest.raises(ApiError) as no_presets:
        technic.presets()
    assert no_presets.value.status == 404 and "daily-presets" in no_presets.value.detail


def test_market_conditions_parse_into_the_contract(technic, tmp_path):
    from technic_ml.jobs.market import take_snapshot

    take_snapshot(TechnicSettings(data_root=tmp_path / "root"), "2018-11-20T10:00:00-05:00")
    conditions = technic.market_conditions()
    assert isinstance(conditions, MarketConditions) and conditions.spy_bar_date is not None


def test_without_a_count_model_the_duration_still_comes_back(tmp_path):
    service = PredictionService(TechnicSettings(data_root=tmp_path / "empty"))
    with TestClient(create_app(service, reload=False)) as http, TechnicClient(http=http) as c:
        with pytest.raises(NoCountModel) as no_model:
            c.predict(CONFIG)
        assert no_model.value.response.duration.state == "heuristic"
        assert c.health().ready is False  # a 503 from /health is an answer, not an error
    service.stop()


def test_the_api_key_is_sent_on_every_call(tmp_path, champions_root):
    root = tmp_path / "root"
    shutil.copytree(champions_root, root)
    service = PredictionService(TechnicSettings(data_root=root))
    with TestClient(create_app(service, api_key="s3cret", reload=False)) as http:
        with TechnicClient(http=http, api_key="s3cret") as keyed:
            assert keyed.predict(CONFIG).count.state == "model"
        # The key went with the keyed client's requests, not onto the shared http client.
        assert "X-API-Key" not in http.headers
        with TechnicClient(http=http) as anonymous, pytest.raises(ApiError) as refused:
            anonymous.predict(CONFIG)
        assert refused.value.status == 401
    service.stop()


@pytest.mark.parametrize(
    "status, body",
    [(502, b"<html>bad gateway</html>"), (502, b'["not", "ours"]'), (404, b'{"detail": "gone"}')],
)
def test_an_answer_that_is_not_ours_is_an_api_error_with_its_status(status, body):
    import httpx

    transport = httpx.MockTransport(lambda request: httpx.Response(status, content=body))
    http = httpx.Client(transport=transport, base_url="http://api")
    with http, TechnicClient(http=http) as c, pytest.raises(ApiError) as raised:
        c.models()
    assert raised.value.status == status and raised.value.detail
