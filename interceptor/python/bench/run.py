#!/usr/bin/env python3
"""Cost of the modelmon middleware on a real model API, measured side by side.

The same FastAPI app (examples/iris-fastapi: a scikit-learn classifier) is served by one
uvicorn worker per variant:
  plain       no instrumentation (the baseline)
  modelmon    modelmon_interceptor.instrument(app)   (native publisher, real RabbitMQ)
  prometheus  prometheus-fastapi-instrumentator
  proxy       plain app behind target/release/modelmon-proxy (only if that binary exists)
wrk (a separate process) loads them in alternating rounds, so drift on the machine hits
every variant alike. Two loads: saturated (throughput) and one connection (latency).
Figures are ratios against `plain` from the same run; nothing here asserts anything.

    python3 interceptor/python/bench/run.py [--rounds 5] [--seconds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
APP_DIR = ROOT / "examples" / "iris-fastapi"
PROXY = ROOT / "target" / "release" / "modelmon-proxy"
VHOST = "modelmon-bench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench_amqp_url() -> str:
    """A vhost of its own, so the bench's events do not land in anyone's events.# queue."""
    ctl = shutil.which("rabbitmqctl")
    if ctl:
        subprocess.run([ctl, "add_vhost", VHOST], capture_output=True, check=False)  # may exist already
        done = subprocess.run(
            [ctl, "set_permissions", "-p", VHOST, "guest", ".*", ".*", ".*"], capture_output=True, check=False
        )
        if done.returncode == 0:
            return f"amqp://guest:guest@127.0.0.1:5672/{VHOST}"
    return "amqp://guest:guest@127.0.0.1:5672/%2f"


class EventCounter:
    """A queue bound like a monitor's, to show what the instrumented variants delivered."""

    def __init__(self, amqp: str) -> None:
        try:
            import pika
        except ImportError:
            self.ch = None
            return
        # No heartbeats: this connection sits idle for the whole run.
        self.conn = pika.BlockingConnection(pika.URLParameters(amqp + "?heartbeat=0"))
        self.ch = self.conn.channel()
        self.ch.exchange_declare("modelmon", exchange_type="topic", durable=True)
        self.queue = self.ch.queue_declare("", exclusive=True, auto_delete=True).method.queue
        self.ch.queue_bind(self.queue, "modelmon", routing_key="events.#")

    def count(self) -> tuple[int | None, int]:
        if self.ch is None:
            return None, 0
        events = dropped = 0
        while True:
            method, _, body = self.ch.basic_get(self.queue, auto_ack=True)
            if method is None:
                break
            batch = json.loads(body)
            events += len(batch["events"])
            dropped += batch["dropped"]
        self.conn.close()
        return events, dropped


def wait_up(port: int, path: str = "/health", timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"nothing answering on port {port}")


def uvicorn_command(port: int) -> list[str]:
    """One worker of the example app, as the benchmarks serve it."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "app:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--no-access-log",
        "--log-level",
        "warning",
    ]


def start_app(mode: str, amqp: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = dict(os.environ, IRIS_INSTRUMENT=mode, MODELMON_AMQP_URL=amqp, MODELMON_MODEL="bench-iris")
    proc = subprocess.Popen(
        uvicorn_command(port),
        cwd=APP_DIR,
        env=env,
    )
    wait_up(port)
    return proc, port


def start_proxy(upstream_port: int, amqp: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen(
        [
            str(PROXY),
            "--listen",
            f"127.0.0.1:{port}",
            "--upstream",
            f"http://127.0.0.1:{upstream_port}",
            "--model",
            "bench-iris",
            "--route",
            "/v1/models/{name}/predict",
            "--amqp",
            amqp,
        ],
    )
    wait_up(port)
    return proc, port


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes (all their threads), from /proc."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / os.sysconf("SC_CLK_TCK")


def wrk(port: int, connections: int, seconds: int, pids: list[int]) -> dict[str, float]:
    cpu0 = cpu_seconds(pids)
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "-s",
            str(HERE / "predict.lua"),
            f"http://127.0.0.1:{port}/v1/models/bench-iris/predict",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    m = re.search(r"RESULT (.*)", out)
    if not m:
        raise RuntimeError(out)
    r = {k: float(v) for k, v in (kv.split("=") for kv in m.group(1).split())}
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
    # CPU per request barely moves when other work on the machine steals cores, unlike
    # throughput and tail latency: the steadiest measure of what a variant costs.
    r["cpu_us_per_req"] = (cpu_seconds(pids) - cpu0) * 1e6 / max(r["requests"], 1)
    return r


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--json", type=Path, help="also write the raw results here")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("bench: wrk is needed (apt-get install -y wrk)")
    amqp = bench_amqp_url()
    counter = EventCounter(amqp)
    procs: list[subprocess.Popen] = []
    ports: dict[str, int] = {}
    pids: dict[str, list[int]] = {}
    try:
        for mode in ("none", "modelmon", "prometheus"):
            proc, port = start_app(mode, amqp)
            procs.append(proc)
            ports["plain" if mode == "none" else mode] = port
            pids["plain" if mode == "none" else mode] = [proc.pid]
        if PROXY.exists():
            proc, port = start_proxy(ports["plain"], amqp)
            procs.append(proc)
            ports["proxy"] = port
            # The proxy's cost is its own CPU plus the app's behind it.
            pids["proxy"] = [proc.pid, *pids["plain"]]
        variants = list(ports)
        for v in variants:  # warm-up: imports, JIT-free but caches, first connections
            wrk(ports[v], args.connections, 2, pids[v])
        results: dict[str, dict[str, list[dict[str, float]]]] = {v: {"load": [], "one": []} for v in variants}
        for rnd in range(args.rounds):
            order = variants[:]
            random.shuffle(order)
            for v in order:
                results[v]["load"].append(wrk(ports[v], args.connections, args.seconds, pids[v]))
                results[v]["one"].append(wrk(ports[v], 1, args.seconds, pids[v]))
            print(f"round {rnd + 1}/{args.rounds} done", file=sys.stderr)
    finally:
        for p in procs:
            p.send_signal(signal.SIGINT)
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()

    events, dropped = counter.count()
    if events is not None:
        print(
            f"\nevents received by a queue bound to events.# in {amqp.rsplit('/', 1)[1]}: {events}, "
            f"reported dropped at the source: {dropped}"
        )

    # Rounds are paired: each variant's figure is set against plain's from the same
    # round, and the median of those per-round comparisons is reported, so that a burst
    # of load from elsewhere on the machine moves both sides of a comparison alike.
    def paired(v: str, load: str, key: str, ratio: bool) -> tuple[float, float, float]:
        xs = []
        for mine, base in zip(results[v][load], results["plain"][load]):
            xs.append(mine[key] / base[key] if ratio else mine[key] - base[key])
        xs.sort()
        return statistics.median(xs), xs[len(xs) // 4], xs[(3 * len(xs)) // 4]

    def med(v: str, load: str, key: str) -> float:
        return statistics.median(r[key] for r in results[v][load])

    print(
        f"\n{args.rounds} alternating rounds of {args.seconds}s per variant and load; wrk -t1; "
        f"load = {args.connections} connections, one = 1 connection"
    )
    print("absolute medians:")
    print(
        f"  {'variant':<11}{'req/s load':>11}{'p99 load µs':>13}{'CPU µs/req':>12}{'req/s one':>11}"
        f"{'p50 one µs':>12}{'p99 one µs':>12}"
    )
    for v in results:
        print(
            f"  {v:<11}{med(v, 'load', 'rps'):>11.0f}{med(v, 'load', 'p99_us'):>13.0f}"
            f"{med(v, 'load', 'cpu_us_per_req'):>12.0f}{med(v, 'one', 'rps'):>11.0f}"
            f"{med(v, 'one', 'p50_us'):>12.0f}{med(v, 'one', 'p99_us'):>12.0f}"
        )
    print("against plain, same round (median [quartiles] of per-round comparisons):")
    print(
        f"  {'variant':<11}{'throughput ratio':>26}{'CPU/req ratio':>26}{'p50 added µs (one)':>24}"
        f"{'p99 added µs (one)':>26}"
    )
    for v in results:
        if v == "plain":
            continue
        t, c, p50, p99 = (
            paired(v, "load", "rps", True),
            paired(v, "load", "cpu_us_per_req", True),
            paired(v, "one", "p50_us", False),
            paired(v, "one", "p99_us", False),
        )
        print(
            f"  {v:<11}{t[0]:>10.3f} [{t[1]:.3f}, {t[2]:.3f}]   {c[0]:>10.3f} [{c[1]:.3f}, {c[2]:.3f}]"
            f"   {p50[0]:>+8.0f} [{p50[1]:+.0f}, {p50[2]:+.0f}]   {p99[0]:>+8.0f} [{p99[1]:+.0f}, {p99[2]:+.0f}]"
        )
    print(f"  (load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
