"""Fixtures: the real RabbitMQ on 127.0.0.1:5672 and real HTTP servers on 127.0.0.1:0."""

from __future__ import annotations

import json
import os
import queue
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pika
import pytest
from modelmon_interceptor._core import CONTENT_TYPE, EXCHANGE, MESSAGE_TYPE, ROUTING_PREFIX, rust_decode

TEST_PREFIX = "pyt-"
ROOT = Path(__file__).resolve().parents[3]
AMQP_URL = os.environ.get("MODELMON_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")


def routing_key(model: str) -> str:
    return ROUTING_PREFIX + model


def model_of_routing_key(key: str) -> str | None:
    model = key[len(ROUTING_PREFIX) :] if key.startswith(ROUTING_PREFIX) else ""
    return model or None


def assert_monitor_accepts(body: bytes, model: str | None) -> None:
    """The monitor's own decoder (linked into the native core) takes the whole batch:
    the body is read and none of its events is rejected."""
    error, _, _, rejected, details = rust_decode(body, model, time.time_ns() // 1000)
    assert error is None, f"monitor would refuse the batch: {error} {details}"
    assert rejected == {}, f"monitor would reject events: {details} in {body[:500]!r}"


@dataclass
class Message:
    routing_key: str
    properties: Any
    body: bytes
    batch: dict[str, Any]

    @property
    def events(self) -> list[dict[str, Any]]:
        return self.batch["events"]


class Broker:
    """An exclusive queue bound to ``modelmon`` with ``events.#``: what a monitor would see.

    Every message read is checked with the monitor's Rust decoder, so a test that reads
    an event has also proved the monitor would accept it.
    """

    def __init__(self) -> None:
        self._conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
        self._ch = self._conn.channel()
        self._ch.exchange_declare(EXCHANGE, exchange_type="topic", durable=True)
        q = self._ch.queue_declare("", exclusive=True, auto_delete=True)
        self.queue = q.method.queue
        self._ch.queue_bind(self.queue, EXCHANGE, routing_key="events.#")
        self.messages: list[Message] = []

    def _pull(self) -> bool:
        method, props, body = self._ch.basic_get(self.queue, auto_ack=True)
        if method is None:
            return False
        model = model_of_routing_key(method.routing_key)
        if not (model or "").startswith(TEST_PREFIX):
            # Other publishers (other engineers' tests, a demo) share the exchange.
            return True
        assert_monitor_accepts(body, model)
        assert props.content_type == CONTENT_TYPE
        assert props.type == MESSAGE_TYPE
        self.messages.append(Message(method.routing_key, props, body, json.loads(body)))
        return True

    def wait_for(self, predicate: Callable[[list[Message]], bool], timeout: float = 20.0) -> list[Message]:
        deadline = time.monotonic() + timeout
        while True:
            while self._pull():
                pass
            if predicate(self.messages):
                return self.messages
            if time.monotonic() > deadline:
                return self.messages
            self._conn.sleep(0.05)

    def events(self, model_prefix: str) -> list[dict[str, Any]]:
        return [e for m in self.messages for e in m.events if e["model"].startswith(model_prefix)]

    def wait_events(self, model_prefix: str, n: int, timeout: float = 20.0) -> list[dict[str, Any]]:
        self.wait_for(lambda _: len(self.events(model_prefix)) >= n, timeout)
        return self.events(model_prefix)

    def batches(self, model_prefix: str) -> list[Message]:
        return [m for m in self.messages if (model_of_routing_key(m.routing_key) or "").startswith(model_prefix)]

    def close(self) -> None:
        if self._conn.is_open:
            self._conn.close()


@pytest.fixture
def broker() -> Iterator[Broker]:
    b = Broker()
    yield b
    b.close()


@pytest.fixture
def model() -> str:
    """A model name no other test (or engineer) publishes, so events can be told apart."""
    return f"{TEST_PREFIX}{uuid.uuid4().hex[:12]}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class UvicornThread:
    """A real uvicorn server on 127.0.0.1:0 in a thread of the test process."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(self.config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


class SteadyClient:
    """One client asking ``GET /items/N`` of an app one request after another, from a
    thread, until ``stop()``: a model API kept busy through a broker's troubles. A request
    that fails or answers other than 200 ends the client and is kept in ``failures``;
    ``answered`` counts the 200s."""

    def __init__(self, url: str) -> None:
        self.answered = 0
        self.failures: list[object] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(url,), daemon=True)
        self._thread.start()

    def _run(self, url: str) -> None:
        with httpx.Client(base_url=url, timeout=30.0) as client:
            while not self._stop.is_set():
                try:
                    r = client.get(f"/items/{self.answered}")
                except httpx.HTTPError as e:
                    self.failures.append(e)
                    return
                if r.status_code != 200:
                    self.failures.append(r.status_code)
                    return
                self.answered += 1

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Stops the client; True once its thread has ended."""
        self._stop.set()
        self._thread.join(timeout_s)
        return not self._thread.is_alive()


class WerkzeugThread:
    """A real threaded werkzeug HTTP server on 127.0.0.1:0 serving a WSGI app."""

    def __init__(self, app: Any) -> None:
        from werkzeug.serving import make_server

        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        return f"http://127.0.0.1:{self.server.server_port}"

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.thread.join(10)


def target_dir() -> Path:
    return Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))


class PrivateNode:
    """A RabbitMQ node of the test's own, for outages: the shared broker on 5672 carries
    other tests' traffic and is never stopped.

    It is the Rust tests' helper (``interceptor/publisher/tests/support/private_node.rs``)
    run as the publisher's ``private_node`` example (test.sh builds it), driven over its
    stdin, so both languages make outages the same way. Closing its stdin stops the node,
    which also happens when this process dies.
    """

    BOOT_S = 90.0
    COMMAND_S = 60.0

    def __init__(self) -> None:
        binary = Path(os.environ.get("MODELMON_PRIVATE_NODE", target_dir() / "debug" / "examples" / "private_node"))
        if not binary.exists():
            pytest.fail(
                f"{binary} is missing: build it with "
                "`cargo build -p modelmon-publisher --example private_node` (test.sh does)"
            )
        # Its stderr is left to pytest's capture: a failing node explains itself there.
        self.proc = subprocess.Popen([str(binary)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        first = self._next(self.BOOT_S)
        assert first.startswith("url "), f"the private node did not start: {first!r}"
        self.url = first.split(" ", 1)[1]

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line.strip())
        self._lines.put(None)

    def _next(self, timeout: float) -> str:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"the private node did not answer within {timeout} s") from None
        if line is None:
            raise AssertionError(f"the private node exited ({self.proc.wait()})")
        return line

    def _do(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        answer = self._next(self.COMMAND_S)
        assert answer == "ok", f"{command}: {answer}"

    def stop_app(self) -> None:
        """An outage: every client connection is closed and new ones are refused."""
        self._do("stop_app")

    def start_app(self) -> None:
        """The same node back on the same URL; returns once it accepts connections."""
        self._do("start_app")

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def private_node() -> Iterator[PrivateNode]:
    node = PrivateNode()
    yield node
    node.close()


class Cluster:
    """A private three-node RabbitMQ cluster (``scripts/cluster.sh``) in a directory of the
    test's own, for failovers: node K (1..3) can be stopped and started while the others
    serve. The shared broker on 5672 is never part of it.

    Its nodes run in sessions of their own, so they outlive a test process that dies
    without its teardown; ``scripts/cluster.sh stop DIR`` then still stops them.
    """

    SCRIPT = ROOT / "scripts" / "cluster.sh"
    # Booting three nodes and clustering them takes 30-40 s on an idle machine.
    START_S = 300.0
    COMMAND_S = 120.0

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.urls: list[str] = []

    def start(self) -> None:
        """Boots the three nodes and clusters them; ``close`` stops them, even after a failure."""
        # Its progress and, on failure, the nodes' logs go to stderr: pytest shows them.
        out = subprocess.run(
            [str(self.SCRIPT), "start", str(self.dir)],
            stdout=subprocess.PIPE,
            text=True,
            timeout=self.START_S,
            check=False,
        )
        if out.returncode != 0:
            pytest.fail(f"scripts/cluster.sh start failed ({out.returncode}); see its output above")
        self.urls = out.stdout.strip().split(",")
        assert len(self.urls) == 3, out.stdout

    def url(self, k: int) -> str:
        return self.urls[k - 1]

    def port(self, k: int) -> int:
        from urllib.parse import urlsplit

        port = urlsplit(self.url(k)).port
        assert port is not None, self.url(k)
        return port

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.SCRIPT), *args], stdout=subprocess.PIPE, text=True, timeout=self.COMMAND_S, check=False
        )

    def stop_node_async(self, k: int) -> subprocess.Popen[str]:
        """Starts stopping node K and returns at once (the stop takes seconds)."""
        return subprocess.Popen([str(self.SCRIPT), "stop-node", str(self.dir), str(k)], text=True)

    def stop_node(self, k: int) -> None:
        out = self._run("stop-node", str(self.dir), str(k))
        assert out.returncode == 0, f"stop-node {k} failed ({out.returncode})"

    def start_node(self, k: int) -> None:
        out = self._run("start-node", str(self.dir), str(k))
        assert out.returncode == 0, f"start-node {k} failed ({out.returncode})"

    def ctl(self, k: int, *args: str) -> str:
        out = self._run("ctl", str(self.dir), str(k), *args)
        assert out.returncode == 0, f"rabbitmqctl {' '.join(args)} on node {k} failed ({out.returncode})"
        return out.stdout

    def close(self) -> None:
        """Stops every node still running and removes the directory."""
        subprocess.run([str(self.SCRIPT), "stop", str(self.dir)], timeout=self.COMMAND_S, check=False)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path / "cluster")
    try:
        c.start()
        yield c
    finally:
        c.close()
