"""The broker is down, or drops its connections: the app must not notice, losses are
counted, memory stays bounded, and publishing resumes when the broker is back."""

from __future__ import annotations

import time

import httpx
from apps import make_fastapi_app, make_flask_app
from conftest import UvicornThread, WerkzeugThread, free_port
from modelmon_interceptor.sink import all_sinks
from relay import Relay


def sink_of(url: str):
    [sink] = [s for s in all_sinks() if s._settings.amqp_url == url]
    return sink


def wait_until(predicate, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_no_broker_at_all_the_app_answers_and_drops_are_counted(model):
    amqp = f"amqp://guest:guest@127.0.0.1:{free_port()}/%2f"
    app = make_fastapi_app(model, amqp_url=amqp, buffer_events=20, max_batch_events=10)
    n = 2000
    with UvicornThread(app) as url, httpx.Client(base_url=url) as client:
        for i in range(n):
            assert client.get(f"/items/{i}").json() == {"item": i}
        assert client.get("/boom").status_code == 500
        sink = sink_of(amqp)
        stats = sink.stats()
    try:
        assert stats["recorded"] == n + 1
        assert stats["published_events"] == 0
        assert stats["state"] in ("down", "connecting")
        assert stats["last_error"]
        # Bounded: whatever is not dropped fits in the buffer plus one batch being assembled.
        held = stats["recorded"] - stats["dropped"]
        assert 0 <= held <= 20 + 10, stats
    finally:
        sink.shutdown(0.1)


def test_broker_closing_the_connection_then_coming_back(broker, model):
    port = free_port()
    relay = Relay(port)
    relay.start()
    amqp = f"amqp://guest:guest@127.0.0.1:{port}/%2f"
    app = make_flask_app(model, amqp_url=amqp, buffer_events=10, max_batch_events=5, max_batch_delay_ms=50)
    sink = None
    try:
        with WerkzeugThread(app) as url, httpx.Client(base_url=url) as client:
            for _ in range(5):
                assert client.get("/items/1").status_code == 200
            assert len(broker.wait_events(model, 5)) == 5
            sink = sink_of(amqp)

            relay.stop()
            assert wait_until(lambda: sink.stats()["state"] != "connected"), sink.stats()
            for _ in range(60):
                assert client.get("/items/2").status_code == 200
            assert wait_until(lambda: sink.stats()["dropped"] >= 60 - 10 - 5), sink.stats()

            relay.start()
            assert wait_until(lambda: sink.stats()["state"] == "connected", timeout=30), sink.stats()
            for _ in range(5):
                assert client.get("/pid").status_code == 200
            broker.wait_for(lambda _: sum(e["route"] == "/pid" for e in broker.events(model)) == 5, timeout=30)
            assert sink.flush(10.0)
            broker.wait_for(lambda _: False, timeout=0.5)
        evs = broker.events(model)
        assert sum(e["route"] == "/pid" for e in evs) == 5
        stats = sink.stats()
        reported = sum(m.batch["dropped"] for m in broker.batches(model))
        # Every event was either delivered or reported as dropped by a later batch.
        assert reported > 0
        assert reported == stats["dropped"], stats
        assert len(evs) + reported == 70
    finally:
        relay.stop()
        if sink is not None:
            sink.shutdown(0.1)
