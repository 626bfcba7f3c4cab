"""The framework's floor for bench/bench_api.py: a plain FastAPI endpoint at the same path that
parses the same body with the same pydantic model (technic_ml.api.schemas.PredictRequest) and
answers a constant. What any FastAPI service pays before doing any work; served by uvicorn with
the same options as ``technic-ml api``."""

from __future__ import annotations

from fastapi import FastAPI

from technic_ml.api.schemas import PredictRequest

app = FastAPI()
ANSWER = {"prediction_id": "0" * 32, "count": None, "duration": None, "risks": []}


@app.post("/scan/predict")
async def predict(body: PredictRequest) -> dict:
    return ANSWER
