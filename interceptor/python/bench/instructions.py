#!/usr/bin/env python3
"""Instructions per request that each instrumentation adds to the real example app.

Timings on a shared two-core machine swing by a fifth from one run to the next, more
than the few per cent this benchmark is after. Instruction counts do not. Two ways:

- in-process (default): each variant of the iris app (see app_cpu.py) is called
  directly as an ASGI app under valgrind's callgrind, once with no request and once
  with N, and the difference divided by N is what one request costs, every Python and
  native instruction of every thread included (modelmon's publisher threads too). No
  HTTP server, so this is the app's share alone: the strictest ratio.
- ``--server``: the real uvicorn process under callgrind, loaded over HTTP by a client
  outside it (one keep-alive connection); counters are zeroed after a warm-up and
  dumped after N requests. The server's own work is in the denominator, as it is in
  every real request; the kernel's (sockets, epoll) is not, so the ratio is still an
  upper bound on the throughput a user would lose.

    python3 interceptor/python/bench/instructions.py [--server] [--requests 1000] [--variants none,modelmon,prometheus]

Needs valgrind. Each run takes a few minutes (scikit-learn starts slowly under it).
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PREDICT_PATH = "/v1/models/bench-iris/predict"
PREDICT_BODY = b'{"instances":[[5.1,3.5,1.4,0.2]]}'


def drive(variant: str, requests: int) -> None:
    """Inside valgrind: load the variant, warm it up, then serve `requests` requests."""
    sys.path.insert(0, str(HERE))
    from app_cpu import load, receive, scope, send

    app = load(variant)

    async def serve(n: int) -> None:
        for _ in range(n):
            await app(scope(), receive, send)

    # The warm-up is the same in both runs, so it cancels out of the difference.
    asyncio.run(serve(50))
    asyncio.run(serve(requests))


def quiet_env() -> dict[str, str]:
    # Fixed hashing, and no BLAS or OpenMP worker threads: idle workers spin, and a
    # spinning thread's count grows with the run's duration instead of its work.
    return dict(
        os.environ,
        PYTHONHASHSEED="0",
        OPENBLAS_NUM_THREADS="1",
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
    )


def count(variant: str, requests: int) -> int:
    env = quiet_env()
    out = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            str(Path(__file__).resolve()),
            "--drive",
            variant,
            str(requests),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    m = re.search(r"Collected : (\d+)", out.stderr)
    if not m:
        raise RuntimeError(out.stderr[-2000:])
    return int(m.group(1))


def count_server(variant: str, requests: int) -> int:
    """The whole uvicorn process under callgrind, loaded by a client outside it.

    The in-process count leaves out the HTTP server, which is part of every real
    request's cost; here the counters are zeroed after a warm-up and dumped after
    `requests` keep-alive requests, so server, app and publisher threads are all in.
    The kernel's share (sockets, epoll) is still left out, so the ratio stays an upper
    bound on what a user would see.
    """
    sys.path.insert(0, str(HERE))
    from run import APP_DIR, free_port, uvicorn_command, wait_up

    port = free_port()
    out_file = f"/tmp/modelmon-bench-callgrind.{os.getpid()}.{variant}"
    env = dict(quiet_env(), IRIS_INSTRUMENT=variant, MODELMON_MODEL="bench-iris")
    server = subprocess.Popen(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out_file}", *uvicorn_command(port)],
        cwd=APP_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_up(port, timeout=600)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

        def predict(n: int) -> None:
            for _ in range(n):
                conn.request("POST", PREDICT_PATH, body=PREDICT_BODY, headers={"content-type": "application/json"})
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    raise RuntimeError(f"{variant}: predict answered {response.status}")

        predict(100)
        subprocess.run(["callgrind_control", "--zero", str(server.pid)], check=True, capture_output=True)
        predict(requests)
        subprocess.run(["callgrind_control", "--dump", str(server.pid)], check=True, capture_output=True)
        conn.close()
    finally:
        server.terminate()
        _, err = server.communicate(timeout=120)
    # The dump asked for above is part 1 of the profile (<out>.1); the one at exit goes
    # to <out> itself and is not wanted.
    dump = Path(out_file + ".1")
    text = dump.read_text(errors="replace") if dump.exists() else ""
    for part in (dump, Path(out_file)):
        part.unlink(missing_ok=True)
    m = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
    if not m:
        raise RuntimeError(f"no callgrind dump for {variant}: {err[-2000:]}")
    return int(m.group(1))


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--drive":
        drive(sys.argv[2], int(sys.argv[3]))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--variants", default="none,modelmon,prometheus")
    ap.add_argument(
        "--server",
        action="store_true",
        help="count the whole uvicorn process serving real HTTP requests, not the app called in-process",
    )
    args = ap.parse_args()
    if not shutil.which("valgrind"):
        raise SystemExit("instructions.py needs valgrind (apt-get install valgrind)")
    os.environ.setdefault("MODELMON_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")
    per_request = {}
    for v in args.variants.split(","):
        if args.server:
            per_request[v] = count_server(v, args.requests) / args.requests
        else:
            base, loaded = count(v, 0), count(v, args.requests)
            per_request[v] = (loaded - base) / args.requests
        print(f"{v:<11} {per_request[v] / 1000:10.1f} k instructions per request", flush=True)
    plain = per_request.get("none")
    if plain:
        print("against the plain app (none):")
        for v, n in per_request.items():
            if v != "none":
                print(f"  {v:<11} +{(n - plain) / 1000:.1f} k instructions per request (x{n / plain:.4f})")


if __name__ == "__main__":
    main()
