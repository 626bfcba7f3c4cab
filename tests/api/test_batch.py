"""POST /scan/predict/batch: many configs scored at once, each exactly as /scan/predict scores it."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from technic_ml.api.app import BODY_LIMITS, create_app
from technic_ml.api.schemas import MAX_BATCH
from technic_ml.api.service import PredictionService
from technic_ml.settings import TechnicSettings

AS_OF = "2018-11-20T10:00:00-05:00"


def _config(i: int) -> dict:
    return {
        "max_symbols": 20 + 7 * i,
        "min_tech_rating": (i * 13) % 90,
        "min_dollar_vol": 1e6,
        "lookback_days": 20 + (i * 11) % 200,
        "sectors": ["Technology"] if i % 3 == 0 else None,
    }


def test_each_row_is_what_predict_answers_in_the_requests_order(client):
    configs = [_config(i) for i in range(25)]
    r = client.post("/scan/predict/batch", json={"configs": configs, "as_of": AS_OF})
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["predictions"]) == 25 and body["market_degraded"] is False
    for config, row in zip(configs, body["predictions"], strict=True):
        one = client.post("/scan/predict", json={"config": config, "as_of": AS_OF}).json()
        assert row["prediction_id"] is None  # not recorded unless asked
        assert row["count"] == one["count"] and row["duration"] == one["duration"]
        assert row["risks"] == one["risks"]


def test_recorded_rows_get_ids_an_outcome_is_reported_by(client, service):
    before = service.ledger.counts()["predictions"]
    r = client.post("/scan/predict/batch", json={"configs": [_config(1), _config(2)], "record": True})
    ids = [row["prediction_id"] for row in r.json()["predictions"]]
    assert all(ids) and len(set(ids)) == 2
    assert service.ledger.counts()["predictions"] == before + 2
    done = client.post("/scan/outcome", json={"prediction_id": ids[1], "actual_count": 3})
    assert done.status_code == 200 and done.json()["matched"] == [ids[1]]
    # Unrecorded batches leave the ledger alone.
    client.post("/scan/predict/batch", json={"configs": [_config(3)]})
    assert service.ledger.counts()["predictions"] == before + 2


def test_the_documented_limits_hold(client):
    full = [_config(i % 40) for i in range(MAX_BATCH)]
    body = json.dumps({"configs": full}).encode()
    assert len(body) < BODY_LIMITS["/scan/predict/batch"]  # the limit fits a full batch
    headers = {"content-type": "application/json"}
    assert client.post("/scan/predict/batch", content=body, headers=headers).status_code == 200
    over = client.post("/scan/predict/batch", json={"configs": [*full, _config(0)]})
    assert over.status_code == 422 and over.json()["detail"][0]["field"] == "configs"
    empty = client.post("/scan/predict/batch", json={"configs": []})
    assert empty.status_code == 422 and empty.json()["detail"][0]["field"] == "configs"
    huge = b'{"configs": [' + b" " * BODY_LIMITS["/scan/predict/batch"] + b"]}"
    too_large = client.post("/scan/predict/batch", content=huge, headers=headers)
    assert too_large.status_code == 413
    doc = client.get("/openapi.json").json()["paths"]["/scan/predict/batch"]["post"]
    assert str(BODY_LIMITS["/scan/predict/batch"]) in doc["responses"]["413"]["description"]
    assert doc["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/BatchRequest"
    }


@pytest.fixture
def empty_service(tmp_path):
    service = PredictionService(TechnicSettings(data_root=tmp_path / "empty"))
    yield service
    service.stop()


def test_without_a_count_model_the_batch_is_503_with_every_flagged_duration(empty_service):
    with TestClient(create_app(empty_service, reload=False)) as client:
        r = client.post("/scan/predict/batch", json={"configs": [_config(1), _config(2)]})
    assert r.status_code == 503
    body = r.json()
    assert "no champion" in body["detail"] or "model" in body["detail"]
    assert [row["duration"]["state"] for row in body["predictions"]] == ["heuristic", "heuristic"]
    assert all(row["count"]["value"] is None for row in body["predictions"])
