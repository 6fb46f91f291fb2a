"""Flask behind a real threaded werkzeug server; events read back from the real RabbitMQ."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time

import httpx
from apps import make_flask_app
from conftest import WerkzeugThread


def now_us() -> int:
    return time.time_ns() // 1000


def test_a_prediction_becomes_one_event_with_every_field(broker, model):
    app = make_flask_app(model, version="v7")
    body = json.dumps({"rows": [[1, 2, 3, 4]] * 2}).encode()
    with WerkzeugThread(app) as url:
        before = now_us()
        resp = httpx.post(f"{url}/v1/models/iris/predict", content=body, headers={"content-type": "application/json"})
        after = now_us()
    assert resp.status_code == 200
    [ev] = broker.wait_events(model, 1)
    assert ev["route"] == "/v1/models/<name>/predict"
    assert (ev["method"], ev["status"], ev["version"]) == ("POST", 200, "v7")
    assert before <= ev["ts"] <= after
    assert 0 < ev["duration_us"] <= after - before
    assert ev["req_bytes"] == len(body)
    assert ev["resp_bytes"] == len(resp.content)
    assert ev["ml"] == {"queue_us": 3.0, "batch_size": 2.0}
    assert "error" not in ev
    [msg] = broker.batches(model)
    assert msg.batch["source"]["kind"] == "wsgi"
    assert msg.batch["source"]["pid"] == os.getpid()


def test_route_template_comes_from_flasks_router(broker, model):
    app = make_flask_app(model)
    with WerkzeugThread(app) as url:
        assert httpx.get(f"{url}/items/9").status_code == 200
        assert httpx.get(f"{url}/items/abc").status_code == 404
        assert httpx.get(f"{url}/nowhere/777").status_code == 404
    evs = broker.wait_events(model, 3)
    assert [(e["route"], e["status"]) for e in evs] == [
        ("/items/<int:item_id>", 200),
        ("<unmatched>", 404),
        ("<unmatched>", 404),
    ]
    # The raw path never leaks into a text field. Its segment, not its digits: numbers
    # such as `ts`, and the instance (`host:pid`), may hold any digits.
    texts = [v for e in evs for v in e.values() if isinstance(v, str)]
    assert texts and not any("nowhere" in t for t in texts), texts


def test_a_raised_exception_is_a_500_with_its_class(broker, model):
    app = make_flask_app(model)
    with WerkzeugThread(app) as url:
        assert httpx.get(f"{url}/boom").status_code == 500
        assert httpx.get(f"{url}/items/1").status_code == 200
    evs = broker.wait_events(model, 2)
    assert [(e["route"], e["status"], e.get("error")) for e in evs] == [
        ("/boom", 500, "ModelCrashed"),
        ("/items/<int:item_id>", 200, None),
    ]


def test_exception_propagating_out_of_the_app_is_reraised(broker, model):
    app = make_flask_app(model)
    # In this mode Flask lets the exception out to the server instead of answering 500.
    app.config["PROPAGATE_EXCEPTIONS"] = True
    with WerkzeugThread(app) as url:
        assert httpx.get(f"{url}/boom").status_code == 500
    [ev] = broker.wait_events(model, 1)
    assert (ev["status"], ev["error"]) == (500, "ModelCrashed")


def test_streamed_response_has_a_first_byte_time(broker, model):
    app = make_flask_app(model)
    with WerkzeugThread(app) as url:
        resp = httpx.get(f"{url}/stream")
    [ev] = broker.wait_events(model, 1)
    assert ev["resp_bytes"] == len(resp.content)
    assert 0 < ev["ttfb_us"] < ev["duration_us"]


def test_a_streamed_body_records_its_tokens_and_its_first_real_byte(broker, model):
    app = make_flask_app(model)
    with WerkzeugThread(app) as url:
        resp = httpx.get(f"{url}/tokens")
    assert resp.text == "data: token0\n\ndata: token1\n\ndata: token2\n\n"
    [ev] = broker.wait_events(model, 1)
    # record() from the generator, which runs after the view has returned.
    assert ev["ml"] == {"tokens_out": 3.0}
    # The empty chunk that got the headers out came at once, the first token 0.2 s later.
    assert 200_000 <= ev["ttfb_us"] < ev["duration_us"]


def leave_after_the_second_token(broker, model: str, target: bytes) -> dict:
    """Requests `target` from the Flask app, hangs up once `token1` arrived, and returns
    the event the middleware published."""
    app = make_flask_app(model)
    with WerkzeugThread(app) as url:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            got = b""
            while b"token1" not in got:
                chunk = s.recv(65536)
                assert chunk
                got += chunk
        [ev] = broker.wait_events(model, 1, timeout=20)
    return ev


def test_tokens_recorded_when_the_client_leaves_mid_stream_reach_the_event(broker, model):
    ev = leave_after_the_second_token(broker, model, b"/tokens?count=400&pad=4096")
    assert (ev["route"], ev["status"]) == ("/tokens", 499)
    # The generator's finally block ran as the server closed the stream.
    assert 2 <= ev["ml"]["tokens_out"] < 400


def test_client_going_away_mid_stream_is_a_499(broker, model):
    ev = leave_after_the_second_token(broker, model, b"/endless")
    assert (ev["route"], ev["status"]) == ("/endless", 499)


def test_excluded_paths_and_kill_switch(broker, model, monkeypatch):
    app = make_flask_app(model)
    monkeypatch.setenv("MODELMON_DISABLED", "true")
    off = make_flask_app(model + "-off")
    with WerkzeugThread(app) as url, WerkzeugThread(off) as url2:
        assert httpx.get(f"{url}/health").status_code == 200
        assert httpx.get(f"{url2}/items/2").json() == {"item": 2}
        assert httpx.get(f"{url}/items/1").status_code == 200
        broker.wait_events(model, 1)
        broker.wait_for(lambda _: False, timeout=1.0)
    assert [e["route"] for e in broker.events(model)] == ["/items/<int:item_id>"]


def test_model_from_path_param(broker, model):
    app = make_flask_app(model, model_from_path_param="model_name")
    with WerkzeugThread(app) as url:
        for m in ("a", "b"):
            assert httpx.post(f"{url}/v2/models/{model}-{m}/infer", content=b"xyz").status_code == 200
    evs = broker.wait_events(model, 2)
    assert sorted(e["model"] for e in evs) == [f"{model}-a", f"{model}-b"]
    assert {e["route"] for e in evs} == {"/v2/models/<model_name>/infer"}


def test_a_plain_wsgi_app_names_its_routes_with_set_route(broker, model):
    import modelmon_interceptor
    from modelmon_interceptor import ModelmonWSGIMiddleware

    def app(environ, start_response):
        if environ["PATH_INFO"].startswith("/raw/"):
            modelmon_interceptor.set_route("/raw/{id}")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    with WerkzeugThread(ModelmonWSGIMiddleware(app, model=model)) as url:
        for path in ("/raw/1", "/raw/2", "/elsewhere"):
            assert httpx.get(url + path).status_code == 200
    evs = broker.wait_events(model, 3)
    assert sorted(e["route"] for e in evs) == ["/raw/{id}", "/raw/{id}", "<unmatched>"]


def test_an_oserror_from_a_streamed_body_is_the_apps_500_not_a_client_499(broker, model):
    app = make_flask_app(model)
    with WerkzeugThread(app) as url:
        # The headers and a first token went out before the backend died: the client
        # gets a cut answer.
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(f"{url}/dead-backend")
        assert httpx.get(f"{url}/items/1").status_code == 200
    evs = broker.wait_events(model, 2)
    assert [(e["route"], e["status"], e.get("error")) for e in evs] == [
        ("/dead-backend", 500, "URLError"),
        ("/items/<int:item_id>", 200, None),
    ]


def test_an_oserror_raised_by_a_wsgi_app_is_a_500_with_its_class(broker, model):
    from modelmon_interceptor import ModelmonWSGIMiddleware

    def app(environ, start_response):
        # Not a ConnectionError or TimeoutError: werkzeug's server takes those for its
        # client's and sends no answer at all.
        raise FileNotFoundError("model.safetensors")

    with WerkzeugThread(ModelmonWSGIMiddleware(app, model=model)) as url:
        assert httpx.get(f"{url}/predict").status_code == 500
    [ev] = broker.wait_events(model, 1)
    assert (ev["status"], ev["error"]) == (500, "FileNotFoundError")


def test_a_client_leaving_while_the_app_reads_the_body_is_a_499(broker, model):
    from modelmon_interceptor import ModelmonWSGIMiddleware
    from werkzeug.wrappers import Request

    def app(environ, start_response):
        # werkzeug raises ClientDisconnected when the body ends short of its length.
        body = Request(environ).get_data()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [body]

    with WerkzeugThread(ModelmonWSGIMiddleware(app, model=model)) as url:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
            s.shutdown(socket.SHUT_WR)
            while s.recv(65536):
                pass
        [ev] = broker.wait_events(model, 1)
    assert ev["status"] == 499


def test_a_flask_app_behind_proxyfix_keeps_its_routes_errors_and_models(broker, model):
    from werkzeug.middleware.proxy_fix import ProxyFix

    # The Flask docs' setup behind nginx: wsgi_app is wrapped before instrument() runs.
    app = make_flask_app(model, wrap=ProxyFix, model_from_path_param="model_name")
    with WerkzeugThread(app) as url:
        assert httpx.get(f"{url}/items/9").status_code == 200
        assert httpx.get(f"{url}/boom").status_code == 500
        assert httpx.post(f"{url}/v2/models/{model}-a/infer", content=b"xyz").status_code == 200
    evs = broker.wait_events(model, 3)
    # Each model has its batches: their order is not the requests'.
    assert sorted((e["route"], e["model"], e["status"], e.get("error", "")) for e in evs) == [
        ("/boom", model, 500, "ModelCrashed"),
        ("/items/<int:item_id>", model, 200, ""),
        ("/v2/models/<model_name>/infer", f"{model}-a", 200, ""),
    ]
