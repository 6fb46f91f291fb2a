"""Broker restarts under load: every event the middleware published is counted by the real
monitor, and every event it dropped is reported to it.

A private RabbitMQ node is restarted five times for five seconds (the shared broker is never
stopped) while a client keeps an instrumented FastAPI app busy and ``modelmon-tui --batch``
consumes on its default queue, which vanishes with every restart: a publisher that is back
before the monitor has nowhere to deliver and must neither lose its batches nor call them
published. The buffer is small, so the outages overflow it and the drops must be reported.
"""

from __future__ import annotations

import time

from apps import make_fastapi_app
from conftest import SteadyClient, UvicornThread
from test_broker_down import sink_of, wait_until
from test_end_to_end import BatchMonitor

RESTARTS = 5
OUTAGE_S = 5.0
# Reconnects back off to 5 s (jittered) on both sides; the rest is a loaded machine.
PATIENCE_S = 60.0


def test_restarts_under_load_lose_nothing_silently(private_node, model, tmp_path):
    mon = BatchMonitor(
        None,
        amqp=private_node.url,
        extra=("--snapshot-dir", str(tmp_path), "--no-docker", "--no-alerts"),
    )
    sink = None
    try:
        mon.wait("the monitor to connect", lambda v: v["broker"]["state"] == "connected", PATIENCE_S)
        app = make_fastapi_app(model, amqp_url=private_node.url, buffer_events=500, max_batch_delay_ms=50)
        with UvicornThread(app) as url:
            load = SteadyClient(url)
            mon.wait("events to flow", lambda v: v["ingest"]["events"] > 0, PATIENCE_S)
            sink = sink_of(private_node.url)
            for n in range(RESTARTS):
                time.sleep(2)
                private_node.stop_app()
                time.sleep(OUTAGE_S)
                private_node.start_app()
                assert wait_until(lambda: sink.stats()["connections"] >= n + 2, PATIENCE_S), sink.stats()
            seen = mon.wait("a line", lambda v: True)["ingest"]["events"]
            mon.wait("traffic after the last restart", lambda v: v["ingest"]["events"] > seen + 100, PATIENCE_S)
            load.stop()
        assert load.failures == [], "the app answered every request through every outage"

        assert sink.flush(PATIENCE_S), sink.stats()
        s = sink.stats()
        assert s["recorded"] == load.answered, s
        assert s["lost_in_python"] == 0, s
        assert (s["held"], s["unrouted"]) == (0, 0), s
        assert s["recorded"] == s["published_events"] + s["dropped"], s
        assert s["dropped"] > 0, f"the outages overflowed the buffer: {s}"

        def counted(v: dict) -> bool:
            i = v["ingest"]
            return i["events"] >= s["published_events"] and i["dropped_at_source"] >= s["dropped"]

        mon.wait("the monitor to count everything", counted, PATIENCE_S)
        # Anything more (a batch delivered twice) would show within a few refreshes.
        time.sleep(2)
        ingest = mon.wait("a line", lambda v: True)["ingest"]
        assert (ingest["events"], ingest["dropped_at_source"]) == (s["published_events"], s["dropped"]), (ingest, s)
        assert ingest["rejected"] == 0, ingest
        # Shown with -s: how the restarts went.
        print(f"\npublisher: {s}\nmonitor ingest: {ingest}")
    finally:
        mon.close()
        if sink is not None:
            sink.shutdown(0.1)
