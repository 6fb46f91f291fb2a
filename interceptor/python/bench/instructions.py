#!/usr/bin/env python3
"""Instructions per request that each instrumentation adds to the real example app.

Timings on a shared two-core machine swing by a fifth from one run to the next, more
than the few per cent this benchmark is after. Instruction counts do not: each variant
of the iris app (see app_cpu.py) is called in-process under valgrind's callgrind, once
with no request and once with N requests, and the difference divided by N is what one
request costs on the main thread, every Python and native instruction included (not
modelmon's publisher threads, which run without the GIL; run.py measures those).

    python3 interceptor/python/bench/instructions.py [--requests 1000] [--variants none,modelmon,prometheus]

Needs valgrind. Each run takes a minute or two (scikit-learn starts slowly under it).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


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


def count(variant: str, requests: int) -> int:
    # Fixed hashing, and no BLAS or OpenMP worker threads: idle workers spin, and a
    # spinning thread's count grows with the run's duration instead of its work.
    env = dict(
        os.environ,
        PYTHONHASHSEED="0",
        OPENBLAS_NUM_THREADS="1",
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
    )
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


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--drive":
        drive(sys.argv[2], int(sys.argv[3]))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--variants", default="none,modelmon,prometheus")
    args = ap.parse_args()
    if not shutil.which("valgrind"):
        raise SystemExit("instructions.py needs valgrind (apt-get install valgrind)")
    os.environ.setdefault("MODELMON_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")
    per_request = {}
    for v in args.variants.split(","):
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
