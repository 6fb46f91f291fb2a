"""A real model API: scikit-learn's iris classifier behind FastAPI, watched by modelmon.

The model is trained at start-up on the iris data set that ships with scikit-learn, so
nothing is downloaded. One line (``instrument``) reports every request to RabbitMQ.

    uvicorn app:app --port 8000

IRIS_INSTRUMENT picks how the app is watched, so the benchmark can serve the very same
app every way: ``modelmon`` (default), ``none``, or ``prometheus``
(prometheus-fastapi-instrumentator, for comparison).

IRIS_FAULTS=1 adds fault switches (``PUT/GET/DELETE /faults``: added latency, a share
of errors, a CPU burner, a memory leak) for detection tests and benchmarks; see
faults.py. Without it the example has none of that.
"""

from __future__ import annotations

import os
import time

import modelmon_interceptor
import numpy as np
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

MODEL_NAME = os.environ.get("MODELMON_MODEL", "iris")
MODEL_VERSION = "logreg-1"


def train() -> tuple[LogisticRegression, list[str]]:
    data = load_iris()
    clf = LogisticRegression(max_iter=1000)
    clf.fit(data.data, data.target)
    return clf, [str(n) for n in data.target_names]


classifier, class_names = train()


class PredictRequest(BaseModel):
    # Sepal length, sepal width, petal length, petal width (cm), one row per flower.
    instances: list[list[float]] = Field(min_length=1, max_length=1000)


class PredictResponse(BaseModel):
    predictions: list[str]
    probabilities: list[list[float]]


app = FastAPI(title="iris model API")

faults = None
if os.environ.get("IRIS_FAULTS") == "1":
    import faults as fault_switches

    faults = fault_switches.install(app)


@app.get("/v1/models/{name}")
async def metadata(name: str) -> dict:
    if name != MODEL_NAME:
        raise HTTPException(404, f"no model {name!r}")
    return {"name": MODEL_NAME, "version": MODEL_VERSION, "classes": class_names, "features": 4}


@app.post("/v1/models/{name}/predict", response_model=PredictResponse)
async def predict(name: str, req: PredictRequest) -> PredictResponse:
    if name != MODEL_NAME:
        raise HTTPException(404, f"no model {name!r}")
    if faults is not None:
        await faults.before_predict()
    x = np.asarray(req.instances, dtype=float)
    if x.shape[1] != 4:
        raise HTTPException(422, "each instance has 4 features")
    t0 = time.perf_counter_ns()
    proba = classifier.predict_proba(x)
    inference_us = (time.perf_counter_ns() - t0) / 1000
    # Model measures travel with the request's event and show up per model in modelmon.
    modelmon_interceptor.record(inference_us=inference_us, batch_size=len(x))
    return PredictResponse(
        predictions=[class_names[i] for i in proba.argmax(axis=1)],
        probabilities=proba.round(4).tolist(),
    )


@app.get("/health")
async def health() -> dict:
    return {"ok": True}


mode = os.environ.get("IRIS_INSTRUMENT", "modelmon")
if mode == "modelmon":
    options = {}
    if faults is not None:
        # Switching faults is not model traffic.
        from modelmon_interceptor.settings import DEFAULT_EXCLUDE

        options["exclude"] = [*DEFAULT_EXCLUDE, *fault_switches.PATHS]
    modelmon_interceptor.instrument(app, model=MODEL_NAME, version=MODEL_VERSION, **options)
elif mode == "prometheus":
    from prometheus_fastapi_instrumentator import Instrumentator

    Instrumentator().instrument(app).expose(app)
elif mode != "none":
    raise SystemExit(f"IRIS_INSTRUMENT={mode!r}: use modelmon, none or prometheus")
