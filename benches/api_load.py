#!/usr/bin/env python3
"""What heavy dashboard readers cost the monitor: RSS and request latency under load.

    python3 benches/api_load.py [--bin target/release/modelmon-tui] [--baseline OTHER_BIN]
                                [--models 256] [--readers 64] [--seconds 20]
                                [--path /api/v1/models] [--gzip]

Starts the monitor (`--headless --serve`) bound to MODELS models named `load-000`...,
publishes a steady trickle of events for every one of them to the broker on 127.0.0.1:5672
(so the view changes at every refresh, as in production), waits until all are shown, then
runs READERS concurrent clients, each fetching PATH again as soon as it has read the last
reply, for SECONDS. Prints the monitor's peak RSS, request latency percentiles and
throughput. With --baseline, runs the same load against a second binary in the same run
and prints the ratios. A benchmark measures; it asserts nothing. Needs `pika`.
"""

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import pika


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def publish(models, stop):
    """One batch of a few events per model per second, until `stop` is set."""
    conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", 5672))
    ch = conn.channel()
    ch.exchange_declare("modelmon", exchange_type="topic", durable=True)
    props = pika.BasicProperties(content_type="application/json", type="modelmon.events.v1")
    rng = random.Random(7)
    while not stop.is_set():
        started = time.time()
        now_us = int(started * 1e6)
        for m in models:
            events = [
                {"ts": now_us - rng.randrange(0, 900_000), "model": m, "instance": "load-1",
                 "method": "POST", "route": rng.choice(["/predict", "/v1/embed", "/health"]),
                 "status": 500 if rng.random() < 0.01 else 200,
                 "duration_us": int(rng.lognormvariate(9.5, 0.5))}
                for _ in range(4)
            ]
            body = {"v": 1, "source": {"kind": "other", "instance": "api-load"}, "events": events}
            ch.basic_publish("modelmon", f"events.{m}", json.dumps(body), props)
        stop.wait(max(0.0, 1.0 - (time.time() - started)))
    conn.close()


def get_json(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        return json.load(r)


async def reader(port, path, accept, deadline, out):
    r, w = await asyncio.open_connection("127.0.0.1", port)
    req = (f"GET {path} HTTP/1.1\r\nHost: x\r\nAccept-Encoding: {accept}\r\n\r\n").encode()
    while time.monotonic() < deadline:
        t0 = time.monotonic()
        w.write(req)
        head = await r.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = None
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        if length is None:  # chunked
            body = 0
            while True:
                size = int((await r.readuntil(b"\r\n")).split(b";")[0], 16)
                await r.readexactly(size + 2)
                body += size
                if size == 0:
                    break
        else:
            await r.readexactly(length)
            body = length
        out.append((time.monotonic() - t0, status, body))
    w.close()


async def load(port, path, readers, seconds, accept):
    out = []
    deadline = time.monotonic() + seconds
    await asyncio.gather(*(reader(port, path, accept, deadline, out) for _ in range(readers)))
    return out


def pct(sorted_xs, p):
    return sorted_xs[min(len(sorted_xs) - 1, int(p / 100 * len(sorted_xs)))]


def run(binary, args, models):
    port = free_port()
    state = tempfile.mkdtemp(prefix="modelmon-api-load-")
    env = dict(os.environ, XDG_STATE_HOME=state, XDG_CONFIG_HOME="/nonexistent")
    env.pop("MODELMON_AMQP_URL", None)
    proc = subprocess.Popen(
        [binary, "--headless", "--no-docker", "--serve", f"127.0.0.1:{port}",
         "--models", ",".join(models)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if get_json(port, "/api/v1/status")["models"] >= len(models):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                sys.exit(f"{binary}: not all {len(models)} models shown within 60 s")
            time.sleep(0.5)
        time.sleep(2)
        idle_rss = rss_bytes(proc.pid)
        peak = [idle_rss]
        done = threading.Event()

        def sample():
            while not done.wait(0.05):
                peak[0] = max(peak[0], rss_bytes(proc.pid))

        sampler = threading.Thread(target=sample)
        sampler.start()
        accept = "gzip" if args.gzip else "identity"
        out = asyncio.run(load(port, args.path, args.readers, args.seconds, accept))
        done.set()
        sampler.join()
        lat = sorted(t for t, _, _ in out)
        ok = sum(1 for _, s, _ in out if s == 200)
        return {
            "binary": binary,
            "requests": len(out),
            "ok": ok,
            "not_ok": len(out) - ok,
            "req_per_s": len(out) / args.seconds,
            "body_bytes_mean": sum(b for _, s, b in out if s == 200) / max(ok, 1),
            "p50_ms": pct(lat, 50) * 1e3,
            "p99_ms": pct(lat, 99) * 1e3,
            "max_ms": lat[-1] * 1e3,
            "rss_idle_mb": idle_rss / 2**20,
            "rss_peak_mb": peak[0] / 2**20,
        }
    finally:
        proc.terminate()
        proc.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default="target/release/modelmon-tui")
    ap.add_argument("--baseline")
    ap.add_argument("--models", type=int, default=256)
    ap.add_argument("--readers", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--path", default="/api/v1/models")
    ap.add_argument("--gzip", action="store_true", help="readers accept gzip")
    args = ap.parse_args()

    models = [f"load-{i:03}" for i in range(args.models)]
    stop = threading.Event()
    pub = threading.Thread(target=publish, args=(models, stop), daemon=True)
    pub.start()
    try:
        results = [run(args.bin, args, models)]
        if args.baseline:
            results.append(run(args.baseline, args, models))
    finally:
        stop.set()
    print(f"{args.models} models, {args.readers} readers of {args.path} for {args.seconds:g} s"
          f" ({'gzip' if args.gzip else 'identity'})")
    cols = ["requests", "not_ok", "req_per_s", "body_bytes_mean", "p50_ms", "p99_ms", "max_ms",
            "rss_idle_mb", "rss_peak_mb"]
    print(f"{'':>10}" + "".join(f"{c:>16}" for c in cols))
    for name, r in zip(["this", "baseline"], results):
        print(f"{name:>10}" + "".join(f"{r[c]:>16.1f}" for c in cols))
    if len(results) == 2:
        a, b = results
        print(f"{'ratio':>10}" + "".join(
            f"{(a[c] / b[c] if b[c] else float('nan')):>16.3f}" for c in cols))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
