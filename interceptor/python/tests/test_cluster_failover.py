"""A cluster node goes away under a model API: the middleware moves on to the next node.

The app's broker setting lists the three nodes of a private RabbitMQ cluster
(``scripts/cluster.sh``) in the order node 2, node 3, node 1, so it publishes through node
2. A watcher reads the events from a quorum queue declared through node 3, which keeps
its messages when a node leaves. A client keeps the app busy while node 2 is stopped: the
app must answer every request, the publisher must carry on through another node (the
stats' ``node`` says which), and every request answered must be either read back or
counted as dropped.

With ``-s`` the test prints how long the failover took, from the stop of node 2 to the
first batch confirmed through the next node, and the counts. Timings are shown, never
asserted: the machine may be loaded.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from urllib.parse import urlsplit

import pika
from apps import make_fastapi_app
from conftest import SteadyClient, UvicornThread, assert_monitor_accepts, routing_key
from modelmon_interceptor._core import CONTENT_TYPE, EXCHANGE, MESSAGE_TYPE
from modelmon_interceptor.sink import all_sinks
from test_broker_down import sink_of

PATIENCE_S = 60.0
MAX_BATCH_EVENTS = 100


def port_of(url: str | None) -> int | None:
    return urlsplit(url).port if url else None


class QuorumWatcher:
    """What a monitor connected to node 3 would see: a durable quorum queue bound to
    ``events.<model>`` on the ``modelmon`` exchange. Every message is checked with the
    monitor's Rust decoder."""

    def __init__(self, url: str, model: str) -> None:
        self.model = model
        self._conn = pika.BlockingConnection(pika.URLParameters(url))
        self._ch = self._conn.channel()
        self._ch.exchange_declare(EXCHANGE, exchange_type="topic", durable=True)
        self.queue = f"{model}-watch-{uuid.uuid4().hex[:6]}"
        self._ch.queue_declare(self.queue, durable=True, arguments={"x-queue-type": "quorum"})
        self._ch.queue_bind(self.queue, EXCHANGE, routing_key=routing_key(model))
        self.messages = 0
        self.events: list[dict] = []
        self.reported_dropped = 0

    def drain(self) -> None:
        while True:
            method, props, body = self._ch.basic_get(self.queue, auto_ack=True)
            if method is None:
                return
            assert method.routing_key == routing_key(self.model), method.routing_key
            assert_monitor_accepts(body, self.model)
            assert props.content_type == CONTENT_TYPE
            assert props.type == MESSAGE_TYPE
            batch = json.loads(body)
            self.messages += 1
            self.events.extend(batch["events"])
            self.reported_dropped += batch["dropped"]

    def distinct(self) -> int:
        # One client sends one request at a time, so no two requests share a start time:
        # an event read twice (a batch sent again after its confirm was lost) shows as a
        # repeated ts.
        return len({e["ts"] for e in self.events})

    def sleep(self, seconds: float) -> None:
        """Sleeps while pika keeps the connection alive (heartbeats)."""
        self._conn.sleep(seconds)

    def wait_distinct(self, n: int, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while True:
            self.drain()
            if self.distinct() >= n or time.monotonic() > deadline:
                return self.distinct()
            self._conn.sleep(0.1)

    def close(self) -> None:
        if self._conn.is_open:
            self._conn.close()


def test_a_node_stops_under_load_and_the_publisher_moves_on(cluster, model):
    # The order the app is given: node 2 first, so that is the one it publishes through.
    amqp = ",".join([cluster.url(2), cluster.url(3), cluster.url(1)])
    watcher = QuorumWatcher(cluster.url(3), model)
    app = make_fastapi_app(model, amqp_url=amqp, max_batch_events=MAX_BATCH_EVENTS, max_batch_delay_ms=50)
    load: SteadyClient | None = None
    sink = None
    stopping: subprocess.Popen[str] | None = None
    try:
        with UvicornThread(app) as url:
            load = SteadyClient(url)

            # Events flow through node 2 and reach the queue on node 3. (The publisher
            # starts with the first request.)
            deadline = time.monotonic() + PATIENCE_S
            while not any(s._settings.amqp_url == amqp for s in all_sinks()):
                assert time.monotonic() < deadline, "no publisher started"
                watcher.sleep(0.05)
            sink = sink_of(amqp)
            assert watcher.wait_distinct(200, PATIENCE_S) >= 200, sink.stats()
            before = sink.stats()
            assert before["state"] == "connected", before
            assert port_of(before["node"]) == cluster.port(2), before
            assert "guest:***@" in before["node"], "the password is hidden"

            # Node 2 goes; the stop itself takes seconds (rabbitmqctl starts a VM of its own
            # before it asks the node to stop, then waits for it to exit), so the publisher
            # is watched meanwhile.
            old = cluster.port(2)
            t0 = time.monotonic()
            stopping = cluster.stop_node_async(2)
            left_at = switched_at = first_at = None
            published_at_switch = 0
            answered_at_stop = load.answered
            while first_at is None:
                s = sink.stats()
                now = time.monotonic()
                on_old = s["state"] == "connected" and port_of(s["node"]) == old
                if left_at is None and not on_old:
                    left_at = now
                if switched_at is None:
                    if s["state"] == "connected" and port_of(s["node"]) != old:
                        switched_at = now
                        published_at_switch = s["published_events"]
                elif s["published_events"] > published_at_switch:
                    first_at = now
                assert now - t0 < PATIENCE_S, f"no event published through another node: {s}"
                assert not load.failures, load.failures
                time.sleep(0.005)
            stop_rc = stopping.wait(cluster.COMMAND_S)
            stopped_at = time.monotonic()
            assert stop_rc == 0, "scripts/cluster.sh stop-node 2 failed"

            # (2) The publisher moved on: traffic carries on through another node.
            watcher.sleep(3.0)
            after = sink.stats()
            assert after["state"] == "connected", after
            new = port_of(after["node"])
            assert new in (cluster.port(3), cluster.port(1)), after
            assert after["published_events"] > published_at_switch >= before["published_events"], (before, after)
            assert after["connections"] >= 2, after

            assert load.stop(), "the client thread did not stop"
        # (1) The model API kept serving: no request failed.
        assert load.failures == [], f"requests failed while node 2 stopped: {load.failures}"

        # (3) Nothing is lost silently: once the publisher is flushed, each answered request
        # is either read back from the quorum queue or counted as dropped.
        assert sink.flush(PATIENCE_S), sink.stats()
        final = sink.stats()
        assert final["recorded"] == load.answered, final
        assert final["lost_in_python"] == 0, final
        assert (final["held"], final["unrouted"]) == (0, 0), final
        assert final["recorded"] == final["published_events"] + final["dropped"], final
        watcher.wait_distinct(final["published_events"], PATIENCE_S)
        # Anything more (a batch delivered twice) would show within a moment.
        watcher.sleep(2.0)
        watcher.drain()
        distinct = watcher.distinct()
        received = len(watcher.events)
        assert distinct + final["dropped"] >= load.answered, (distinct, final, load.answered)
        assert distinct <= load.answered, (distinct, load.answered)
        # A batch whose confirm was lost with node 2 is sent again through the next node,
        # so its events may be read twice: at most one batch (MAX_BATCH_EVENTS events) is
        # in flight when the node goes.
        assert received <= load.answered + MAX_BATCH_EVENTS, (received, load.answered)
        assert watcher.reported_dropped <= final["dropped"], (watcher.reported_dropped, final)

        node_no = {cluster.port(3): 3, cluster.port(1): 1}[new]
        print(
            f"\nfailover: stop-node 2 called -> publisher off node 2 after {left_at - t0:.3f} s, "
            f"connected to node {node_no} after {switched_at - t0:.3f} s, "
            f"first batch confirmed through it after {first_at - t0:.3f} s, "
            f"{first_at - left_at:.3f} s after it lost node 2 (stop-node itself returned after {stopped_at - t0:.3f} s)"
            f"\nrequests answered: {load.answered} ({answered_at_stop} before the stop), failed: {len(load.failures)}"
            f"\nevents read from the quorum queue: {received} in {watcher.messages} batches, "
            f"{distinct} distinct ({received - distinct} read twice)"
            f"\npublisher: published {final['published_events']}, dropped {final['dropped']} "
            f"(reported in batches: {watcher.reported_dropped}), connections {final['connections']}, "
            f"node {final['node']}"
        )
    finally:
        if load is not None:
            load.stop(0)
        if stopping is not None and stopping.poll() is None:
            # The cluster's teardown must not race a stop still under way.
            try:
                stopping.wait(cluster.COMMAND_S)
            except subprocess.TimeoutExpired:
                stopping.kill()
                stopping.wait()
        watcher.close()
        if sink is not None:
            sink.shutdown(0.1)
