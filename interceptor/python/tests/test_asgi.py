"""FastAPI behind a real uvicorn server; events read back from the real RabbitMQ."""

from __future__ import annotations

import gc
import http.client
import json
import os
import socket
import time

import httpx
import pytest
from apps import make_fastapi_app
from conftest import UvicornThread


def now_us() -> int:
    return time.time_ns() // 1000


def test_a_prediction_becomes_one_event_with_every_field(broker, model):
    app = make_fastapi_app(model, version="2024-06-01")
    body = json.dumps({"rows": [[5.1, 3.5, 1.4, 0.2]] * 3}).encode()
    with UvicornThread(app) as url:
        before = now_us()
        resp = httpx.post(f"{url}/v1/models/iris/predict", content=body, headers={"content-type": "application/json"})
        after = now_us()
    assert resp.status_code == 200
    [ev] = broker.wait_events(model, 1)
    assert ev["model"] == model
    assert ev["version"] == "2024-06-01"
    assert ev["method"] == "POST"
    assert ev["route"] == "/v1/models/{name}/predict"
    assert ev["status"] == 200
    assert before <= ev["ts"] <= after
    assert 0 < ev["duration_us"] <= after - before
    assert ev["req_bytes"] == len(body)
    assert ev["resp_bytes"] == len(resp.content)
    assert ev["ml"] == {"queue_us": 12.0, "batch_size": 3.0}
    assert "error" not in ev and "ttfb_us" not in ev
    [msg] = broker.batches(model)
    assert msg.routing_key == f"events.{model}"
    assert msg.batch["v"] == 1
    assert msg.batch["source"]["kind"] == "asgi"
    assert msg.batch["source"]["pid"] == os.getpid()
    assert ev["instance"] == msg.batch["source"]["instance"]


def test_sync_endpoint_gets_its_template_and_measures(broker, model):
    app = make_fastapi_app(model)
    with UvicornThread(app) as url:
        assert httpx.get(f"{url}/items/42").status_code == 200
        assert httpx.get(f"{url}/items/43").status_code == 200
    evs = broker.wait_events(model, 2)
    assert [e["route"] for e in evs] == ["/items/{item_id}"] * 2
    assert all(e["ml"] == {"inference_us": 7.5} for e in evs)
    assert all(e["method"] == "GET" and e["status"] == 200 for e in evs)


def test_unmatched_path_is_a_404_without_the_raw_path(broker, model):
    app = make_fastapi_app(model)
    with UvicornThread(app) as url:
        assert httpx.get(f"{url}/no/such/thing/12345").status_code == 404
        # 422: the route matched, the parameter did not validate.
        assert httpx.get(f"{url}/items/not-a-number").status_code == 422
    evs = broker.wait_events(model, 2)
    by_status = {e["status"]: e for e in evs}
    assert by_status[404]["route"] == "<unmatched>"
    assert by_status[422]["route"] == "/items/{item_id}"
    # The raw path never leaks into a text field (numbers such as `ts` may hold any digits).
    texts = [v for e in evs for v in e.values() if isinstance(v, str)]
    assert texts and not any("12345" in t or "not-a-number" in t for t in texts), texts
    assert "error" not in by_status[404]


@pytest.mark.parametrize(("path", "error"), [("/boom", "ModelCrashed"), ("/boom-sync", "KeyError")])
def test_a_raised_exception_is_a_500_with_its_class(broker, model, path, error):
    app = make_fastapi_app(model)
    with UvicornThread(app) as url:
        resp = httpx.get(f"{url}{path}")
        # The app still answers after the failure: the exception was re-raised, not swallowed,
        # so Starlette's error middleware produced the 500.
        assert httpx.get(f"{url}/items/1").status_code == 200
    assert resp.status_code == 500
    evs = broker.wait_events(model, 2)
    failed = [e for e in evs if e["route"] == path]
    assert len(failed) == 1
    assert failed[0]["status"] == 500
    assert failed[0]["error"] == error


def test_streamed_response_has_a_first_byte_time(broker, model):
    app = make_fastapi_app(model)
    with UvicornThread(app) as url:
        resp = httpx.get(f"{url}/stream")
    assert resp.status_code == 200
    [ev] = broker.wait_events(model, 1)
    assert ev["route"] == "/stream"
    assert ev["resp_bytes"] == len(resp.content)
    # The stream sleeps between tokens, so the first byte comes strictly before the last.
    assert 0 < ev["ttfb_us"] < ev["duration_us"]


def test_background_tasks_are_not_timed(broker, model):
    app = make_fastapi_app(model)
    with UvicornThread(app) as url:
        assert httpx.get(f"{url}/bg").status_code == 200
        [ev] = broker.wait_events(model, 1, timeout=20)
    [bg_start] = app.state.background_started_us
    # The clock stopped at the last response byte, which Starlette sends before it starts
    # the background task (which then runs for a second). 2 ms of slack covers the two clocks.
    assert ev["ts"] + ev["duration_us"] <= bg_start + 2_000
    assert ev["status"] == 200 and "error" not in ev


def test_client_going_away_mid_stream_is_a_499(broker, model):
    app = make_fastapi_app(model)
    with UvicornThread(app) as url:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"GET /endless HTTP/1.1\r\nHost: x\r\n\r\n")
            got = b""
            while b"token1" not in got:
                chunk = s.recv(4096)
                assert chunk, "server closed before streaming"
                got += chunk
        [ev] = broker.wait_events(model, 1, timeout=20)
    assert ev["route"] == "/endless"
    assert ev["status"] == 499
    assert "error" not in ev


def test_client_going_away_while_the_app_reads_the_body_is_a_499(broker, model):
    # Starlette raises ClientDisconnect from request.body(); the client never saw an answer,
    # so this is the client's doing (499), not a server error with that class.
    app = make_fastapi_app(model)
    with UvicornThread(app) as url:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(
                b"POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10
            )
            time.sleep(0.2)
        [ev] = broker.wait_events(model, 1, timeout=20)
    assert ev["route"] == "/v2/models/{model_name}/infer"
    assert ev["status"] == 499
    assert "error" not in ev


def test_excluded_paths_and_sampling_are_not_recorded(broker, model):
    app = make_fastapi_app(model)
    unsampled = make_fastapi_app(model + "-unsampled", sample_rate=0.0)
    with UvicornThread(app) as url, UvicornThread(unsampled) as url2:
        for _ in range(3):
            assert httpx.get(f"{url}/health").status_code == 200
            assert httpx.get(f"{url2}/items/1").status_code == 200
        assert httpx.get(f"{url}/items/1").status_code == 200
        evs = broker.wait_events(model, 1)
        # Let anything that should not be there arrive too.
        broker.wait_for(lambda _: False, timeout=1.0)
    evs = broker.events(model)
    assert [e["route"] for e in evs] == ["/items/{item_id}"]


def test_kill_switch_makes_the_middleware_a_pass_through(broker, model, monkeypatch):
    monkeypatch.setenv("MODELMON_DISABLED", "1")
    app = make_fastapi_app(model)
    with UvicornThread(app) as url:
        for _ in range(3):
            assert httpx.get(f"{url}/items/5").json() == {"item": 5}
        assert httpx.get(f"{url}/boom").status_code == 500
    broker.wait_for(lambda _: False, timeout=1.0)
    assert broker.events(model) == []


def test_model_from_path_param_tells_models_apart(broker, model):
    app = make_fastapi_app(model + "-fallback", model_from_path_param="model_name")
    a, b = model + "-a", model + "-b"
    with UvicornThread(app) as url:
        for m in (a, b, a):
            assert httpx.post(f"{url}/v2/models/{m}/infer", content=b"[1,2,3]").status_code == 200
        # A request without the parameter falls back to the configured model.
        assert httpx.get(f"{url}/items/3").status_code == 200
    evs = broker.wait_events(model, 4)
    assert sorted(e["model"] for e in evs) == sorted([a, a, b, model + "-fallback"])
    assert {e["route"] for e in evs if e["model"] in (a, b)} == {"/v2/models/{model_name}/infer"}
    assert all(e["req_bytes"] == 7 for e in evs if e["model"] in (a, b))
    # One model per batch, routed by its own key, so a monitor can bind one model only.
    for m in broker.batches(model):
        assert {e["model"] for e in m.events} == {m.routing_key.removeprefix("events.")}


def test_requests_do_not_make_the_garbage_collector_run(broker, model):
    # Python collects when tracked objects pile up, and on a model server's big heap a full
    # collection is a pause of tens of milliseconds: the tail latency users would see. A
    # plain FastAPI request leaves nothing behind; an instrumented one must not either.
    app = make_fastapi_app(model)
    with UvicornThread(app) as url:
        host, port = url.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port))

        def predict(n: int) -> None:
            for _ in range(n):
                conn.request(
                    "POST", "/v1/models/m/predict", body=b'{"rows": [[1, 2]]}', headers={"content-type": "application/json"}
                )
                response = conn.getresponse()
                assert response.status == 200
                response.read()

        predict(50)
        before = gc.get_stats()[0]["collections"]
        predict(1000)
        collections = gc.get_stats()[0]["collections"] - before
        conn.close()
    broker.wait_events(model, 1050, timeout=30)
    assert collections <= 5, f"1000 requests ran {collections} young-generation collections"


def test_an_app_without_route_templates_names_its_routes_with_set_route(broker, model):
    """A plain ASGI app has no router to ask: the handler names the route, or the event
    says <unmatched> rather than the raw path with its id."""
    import modelmon_interceptor
    from modelmon_interceptor import ModelmonMiddleware

    async def app(scope, receive, send):
        if scope["path"].startswith("/raw/"):
            assert modelmon_interceptor.set_route("/raw/{id}")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    with UvicornThread(ModelmonMiddleware(app, model=model)) as url:
        for path in ("/raw/17", "/raw/42", "/other/9"):
            assert httpx.get(url + path).status_code == 200
    evs = broker.wait_events(model, 3)
    assert sorted(e["route"] for e in evs) == ["/raw/{id}", "/raw/{id}", "<unmatched>"]
    assert not modelmon_interceptor.set_route("/outside/a/request")


def test_a_prefix_exclusion_leaves_out_everything_below_it(broker, model):
    from modelmon_interceptor import ModelmonMiddleware

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    wrapped = ModelmonMiddleware(app, model=model, exclude=["/internal/*", "/health"])
    with UvicornThread(wrapped) as url:
        for path in ("/internal", "/internal/debug/vars", "/health/", "/internals", "/predict"):
            assert httpx.get(url + path).status_code == 200
        broker.wait_events(model, 2)
        broker.wait_for(lambda _: False, timeout=1.0)
    assert sorted(e["route"] for e in broker.events(model)) == ["<unmatched>", "<unmatched>"]
