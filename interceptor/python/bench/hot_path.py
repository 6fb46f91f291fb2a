#!/usr/bin/env python3
"""What the middleware itself costs per request, without a server or a network in the way.

A minimal ASGI app (response start + one body) is called in a loop, bare and wrapped by
ModelmonMiddleware (publishing to the real RabbitMQ), in alternating rounds. Every call is
timed on its own, so the report gives the added cost at the median and at p99 of the
per-request distribution. Also times the one native call alone.

    python3 interceptor/python/bench/hot_path.py
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import bench_amqp_url

os.environ.setdefault("MODELMON_AMQP_URL", bench_amqp_url())

from modelmon_interceptor import ModelmonMiddleware, _core, flush, stats

N = 50_000
ROUNDS = 7


class Route:
    path_format = "/v1/models/{name}/predict"


async def bare(scope, receive, send):
    await receive()
    scope["route"] = Route
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b'{"prediction":"setosa"}'})


async def receive():
    return {"type": "http.request", "body": b'{"instances":[[5.1,3.5,1.4,0.2]]}', "more_body": False}


async def send(_message):
    return None


async def loop(app, samples: list[int]) -> None:
    scope_base = {"type": "http", "method": "POST", "path": "/v1/models/iris/predict", "headers": []}
    clock = time.perf_counter_ns
    for _ in range(N):
        scope = dict(scope_base)
        t0 = clock()
        await app(scope, receive, send)
        samples.append(clock() - t0)


def pct(xs: list[int], q: float) -> float:
    return xs[min(len(xs) - 1, int(q * len(xs)))]


async def main() -> None:
    wrapped = ModelmonMiddleware(bare, model="bench-iris")
    plain_ns: list[int] = []
    mm_ns: list[int] = []
    for _ in range(ROUNDS):
        await loop(bare, plain_ns)
        await loop(wrapped, mm_ns)
        flush(10)
    plain_ns.sort()
    mm_ns.sort()
    print(f"{ROUNDS} alternating rounds x {N} calls, each call timed (ns per request)")
    print(f"{'':24}{'mean':>8}{'p50':>8}{'p90':>8}{'p99':>8}")
    for name, xs in (("bare ASGI app", plain_ns), ("with ModelmonMiddleware", mm_ns)):
        print(f"{name:<24}{statistics.fmean(xs):>8.0f}{pct(xs, 0.5):>8.0f}{pct(xs, 0.9):>8.0f}{pct(xs, 0.99):>8.0f}")
    print(
        f"{'added':<24}{statistics.fmean(mm_ns) - statistics.fmean(plain_ns):>+8.0f}"
        f"{pct(mm_ns, 0.5) - pct(plain_ns, 0.5):>+8.0f}{pct(mm_ns, 0.9) - pct(plain_ns, 0.9):>+8.0f}"
        f"{pct(mm_ns, 0.99) - pct(plain_ns, 0.99):>+8.0f}"
    )

    core = _core.Core(os.environ["MODELMON_AMQP_URL"], "asgi", "bench:1")
    ts = time.time_ns() // 1000
    samples = []
    for _ in range(ROUNDS):
        t0 = time.perf_counter_ns()
        for _ in range(N):
            core.record(ts, "bench-iris", "/v1/models/{name}/predict", "POST", 200, 812, None, 33, 24, None, None, None)
        samples.append((time.perf_counter_ns() - t0) / N)
        core.flush(10)
    print(f"native core.record() alone, tight loop: {statistics.median(samples):.0f} ns/call")
    s = core.stats()
    print(f"publisher: recorded={s['recorded']} published={s['published_events']} dropped={s['dropped']}")
    core.shutdown(5)
    print(f"(load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    mm = stats()[0]
    print(f"middleware publisher: recorded={mm['recorded']} published={mm['published_events']} dropped={mm['dropped']}")


asyncio.run(main())
