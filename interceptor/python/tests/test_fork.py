"""gunicorn --preload forks workers from a master that already ran the middleware:
each worker must publish through a publisher of its own."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent


def test_gunicorn_preload_two_workers_each_publish(broker, model):
    env = dict(os.environ, MODELMON_TEST_MODEL=model, PYTHONPATH=str(HERE))
    env.pop("HOSTNAME", None)  # so the instance is host:pid and differs per worker
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--preload", "-w", "2", "-b", "127.0.0.1:0", "gunicorn_app:app"],
        cwd=HERE,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        port = None
        lines = []
        deadline = time.monotonic() + 30
        while port is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            lines.append(line)
            m = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", line)
            if m:
                port = int(m.group(1))
        assert port, "".join(lines)
        worker_pids: set[int] = set()
        deadline = time.monotonic() + 60
        sent = 0
        while len(worker_pids) < 2 and time.monotonic() < deadline:
            # A new connection per request, so that either worker may accept it.
            resp = httpx.get(f"http://127.0.0.1:{port}/pid", headers={"connection": "close"})
            worker_pids.add(resp.json()["pid"])
            sent += 1
        assert len(worker_pids) == 2
        broker.wait_for(lambda _: sum(e["route"] == "/pid" for e in broker.events(model)) >= sent, timeout=30)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    pid_events = [e for e in broker.events(model) if e["route"] == "/pid"]
    assert len(pid_events) == sent
    sources = {m.batch["source"]["pid"] for m in broker.batches(model) if any(e["route"] == "/pid" for e in m.events)}
    assert sources == worker_pids
    assert proc.pid not in sources
    # Each worker names itself: instance is host:pid when $HOSTNAME is not set.
    assert {int(e["instance"].rsplit(":", 1)[1]) for e in pid_events} == worker_pids
    # The master's own request (before the fork) was published by the master.
    warm = [m for m in broker.batches(model) if any(e["route"] == "/items/<int:item_id>" for e in m.events)]
    assert {m.batch["source"]["pid"] for m in warm} == {proc.pid}
