"""The example model API (examples/iris-fastapi) does what its README says."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import httpx
from conftest import UvicornThread

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "iris-fastapi" / "app.py"


def load_example(monkeypatch, model: str):
    monkeypatch.setenv("MODELMON_MODEL", model)
    monkeypatch.setenv("IRIS_INSTRUMENT", "modelmon")
    spec = importlib.util.spec_from_file_location(f"iris_example_{model.replace('-', '_')}", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_iris_example_predicts_and_reports_inference_measures(broker, model, monkeypatch):
    example = load_example(monkeypatch, model)
    with UvicornThread(example.app) as url:
        resp = httpx.post(
            f"{url}/v1/models/{model}/predict",
            json={"instances": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]},
        )
        bad = httpx.post(f"{url}/v1/models/{model}/predict", json={"instances": [[1, 2]]})
        assert httpx.get(f"{url}/health").status_code == 200
    assert resp.status_code == 200
    assert resp.json()["predictions"] == ["setosa", "virginica"]
    assert bad.status_code == 422
    evs = broker.wait_events(model, 2)
    assert [(e["route"], e["status"]) for e in evs] == [("/v1/models/{name}/predict", 200)] * 1 + [
        ("/v1/models/{name}/predict", 422)
    ]
    ok = evs[0]
    assert ok["version"] == "logreg-1"
    assert ok["ml"]["batch_size"] == 2.0
    assert ok["ml"]["inference_us"] > 0
    assert "ml" not in evs[1]  # the 422 never reached the model
