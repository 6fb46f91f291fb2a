#!/usr/bin/env python3
"""CPU time per request of the real example app, called in-process: plain vs modelmon vs
prometheus-fastapi-instrumentator.

The iris FastAPI app (examples/iris-fastapi) is loaded three times, once per variant, and
each is called directly as an ASGI app with a real predict request, in alternating rounds.
The figure is the main thread's CPU time per request (time.thread_time_ns), which other
processes on the machine disturb far less than wall-clock figures. It leaves out the HTTP
server, so it shows what the instrumentation itself adds to the work of one request.
modelmon's publisher threads are not in it (they run without the GIL; run.py counts them).

    python3 interceptor/python/bench/app_cpu.py [--rounds 15] [--calls 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
APP = HERE.parents[2] / "examples" / "iris-fastapi" / "app.py"
sys.path.insert(0, str(HERE))
from run import bench_amqp_url

BODY = b'{"instances":[[5.1,3.5,1.4,0.2]]}'
PATH = "/v1/models/bench-iris/predict"


def load(mode: str):
    os.environ["IRIS_INSTRUMENT"] = mode
    spec = importlib.util.spec_from_file_location(f"iris_{mode}", APP)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.app


async def receive() -> dict:
    return {"type": "http.request", "body": BODY, "more_body": False}


async def send(_message: dict) -> None:
    return None


def scope() -> dict:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": PATH,
        "raw_path": PATH.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


async def cpu_us_per_request(app, calls: int) -> float:
    t0 = time.thread_time_ns()
    for _ in range(calls):
        await app(scope(), receive, send)
    return (time.thread_time_ns() - t0) / calls / 1000


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--calls", type=int, default=1000)
    args = ap.parse_args()
    os.environ.setdefault("MODELMON_AMQP_URL", bench_amqp_url())
    os.environ["MODELMON_MODEL"] = "bench-iris"
    apps = {"plain": load("none"), "modelmon": load("modelmon"), "prometheus": load("prometheus")}
    for app in apps.values():
        await cpu_us_per_request(app, 300)
    results: dict[str, list[float]] = {name: [] for name in apps}
    for _ in range(args.rounds):
        for name, app in apps.items():
            results[name].append(await cpu_us_per_request(app, args.calls))
    base = results["plain"]
    print(f"{args.rounds} alternating rounds x {args.calls} in-process predict calls; main-thread CPU µs per request")
    print(f"{'variant':<12}{'median':>9}{'min':>9}{'added (paired median)':>24}{'ratio':>8}")
    for name, xs in results.items():
        added = statistics.median(x - b for x, b in zip(xs, base))
        ratio = statistics.median(x / b for x, b in zip(xs, base))
        print(f"{name:<12}{statistics.median(xs):>9.1f}{min(xs):>9.1f}{added:>+24.1f}{ratio:>8.3f}")
    # CPU time per request grows with the machine's load (shared caches, a busy sibling
    # hyperthread), so the figures only compare within one run.
    print(f"(load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")


if __name__ == "__main__":
    asyncio.run(main())
