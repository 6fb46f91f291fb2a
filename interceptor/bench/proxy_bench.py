#!/usr/bin/env python3
"""Direct vs through modelmon-proxy, same upstream, same run, alternating rounds.

Measures with wrk (apt-get install -y wrk):
  * p50 latency at 1 connection, direct and proxied -> the added p50 in microseconds;
  * requests/s at 16 connections, direct and proxied -> proxied as % of direct.
Each round runs both sides back to back, swapping which goes first, and the report
takes the median over rounds, so load from other processes hits both sides alike.
This measures; it asserts nothing.

Two upstreams: `--work-us 0` answers at once (the worst case for a proxy: its own
cost is compared with a server that does nothing), and e.g. `--work-us 1000` spins a
millisecond of CPU per request, like a small model's inference.

Usage: interceptor/bench/proxy_bench.py [--rounds 5] [--duration 5] [--work-us 0,1000] [--no-build]
Needs RabbitMQ on 127.0.0.1:5672 (the proxy publishes every event as in production).
"""

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
BODY = '{"instances":[[5.1,3.5,1.4,0.2]]}'


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, what, timeout=15):
    end = time.time() + timeout
    while time.time() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"{what} did not start on port {port}")


def to_us(value):
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", value)
    if not m:
        raise ValueError(value)
    n, unit = float(m.group(1)), m.group(2)
    return n * {"us": 1, "ms": 1000, "s": 1_000_000}[unit]


def cpu_seconds(pid):
    """User + system CPU time of a process so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(url, connections, duration, script):
    threads = min(connections, 2)
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", "-s", script, url],
        capture_output=True, text=True, check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    p50 = to_us(re.search(r"\s50%\s+([\d.]+\w+)", out).group(1))
    p99 = to_us(re.search(r"\s99%\s+([\d.]+\w+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    if errors or socket_errors:
        sys.exit(f"wrk saw errors against {url}:\n{out}")
    return {"rps": rps, "requests": requests, "p50_us": p50, "p99_us": p99}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    ap.add_argument("--work-us", default="0,1000", help="comma-separated CPU work per request in the upstream")
    ap.add_argument("--proxy-arg", action="append", default=[], help="extra flag for modelmon-proxy, repeatable")
    ap.add_argument("--no-build", action="store_true")
    args = ap.parse_args()

    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "-p", "modelmon-proxy", "--bins", "--examples"],
                       cwd=ROOT, check=True)
    proxy_bin = os.path.join(TARGET, "release", "modelmon-proxy")
    upstream_bin = os.path.join(TARGET, "release", "examples", "echo_upstream")
    report = {}
    for work in [int(w) for w in args.work_us.split(",")]:
        print(f"== upstream work {work} us per request", flush=True)
        report[f"work_us_{work}"] = scenario(args, proxy_bin, upstream_bin, work)
    print(json.dumps(report, indent=2))


def scenario(args, proxy_bin, upstream_bin, work_us):
    up_port, proxy_port = free_port(), free_port()
    procs = []
    try:
        procs.append(subprocess.Popen([upstream_bin, f"127.0.0.1:{up_port}", str(work_us)],
                                      stdout=subprocess.DEVNULL))
        wait_port(up_port, "echo_upstream")
        proxy_log = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)
        procs.append(subprocess.Popen(
            [proxy_bin, "--listen", f"127.0.0.1:{proxy_port}", "--upstream", f"http://127.0.0.1:{up_port}",
             "--model", "iris", "--route", "/v1/models/{name}/predict", "--instance", "proxy-bench",
             *args.proxy_arg],
            stderr=proxy_log))
        wait_port(proxy_port, "modelmon-proxy")

        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
            lua.write('wrk.method = "POST"\n')
            lua.write(f"wrk.body = '{BODY}'\n")
            lua.write('wrk.headers["Content-Type"] = "application/json"\n')
        path = "/v1/models/iris/predict"
        urls = {"direct": f"http://127.0.0.1:{up_port}{path}", "proxy": f"http://127.0.0.1:{proxy_port}{path}"}

        # Warm both sides (pools, caches) before measuring.
        for side in ("direct", "proxy"):
            wrk(urls[side], 16, 1, lua.name)

        rounds = []
        for r in range(args.rounds):
            order = ("direct", "proxy") if r % 2 == 0 else ("proxy", "direct")
            result = {}
            for side in order:
                c1 = wrk(urls[side], 1, args.duration, lua.name)
                before = {name: cpu_seconds(p.pid) for name, p in (("upstream", procs[0]), ("proxy", procs[1]))}
                c16 = wrk(urls[side], 16, args.duration, lua.name)
                # CPU per request is less sensitive than req/s to what else runs on the box.
                for name, p in (("upstream", procs[0]), ("proxy", procs[1])):
                    c16[f"{name}_cpu_us_per_req"] = (cpu_seconds(p.pid) - before[name]) * 1e6 / c16["requests"]
                result[side] = {"c1": c1, "c16": c16}
            added = result["proxy"]["c1"]["p50_us"] - result["direct"]["c1"]["p50_us"]
            ratio = result["proxy"]["c16"]["rps"] / result["direct"]["c16"]["rps"]
            rounds.append({"round": r + 1, "added_p50_us_c1": added, "throughput_ratio_c16": ratio, **result})
            print(f"round {r + 1}: p50@1 direct {result['direct']['c1']['p50_us']:.0f} us, "
                  f"proxy {result['proxy']['c1']['p50_us']:.0f} us (+{added:.0f} us); "
                  f"rps@16 direct {result['direct']['c16']['rps']:.0f}, proxy {result['proxy']['c16']['rps']:.0f} "
                  f"({ratio:.1%}); cpu/req upstream {result['direct']['c16']['upstream_cpu_us_per_req']:.1f} us, "
                  f"proxy {result['proxy']['c16']['proxy_cpu_us_per_req']:.1f} us", flush=True)

        summary = {
            "upstream_work_us": work_us,
            "proxy_args": args.proxy_arg,
            "load_average_at_end": os.getloadavg()[0],
            "rounds": args.rounds,
            "duration_s": args.duration,
            "median_added_p50_us_at_1_conn": statistics.median(r["added_p50_us_c1"] for r in rounds),
            "median_throughput_ratio_at_16_conn": statistics.median(r["throughput_ratio_c16"] for r in rounds),
            "median_cpu_us_per_req_at_16_conn": {
                "upstream_direct": statistics.median(r["direct"]["c16"]["upstream_cpu_us_per_req"] for r in rounds),
                "upstream_behind_proxy": statistics.median(r["proxy"]["c16"]["upstream_cpu_us_per_req"] for r in rounds),
                "proxy": statistics.median(r["proxy"]["c16"]["proxy_cpu_us_per_req"] for r in rounds),
            },
            "goal": {"added_p50_us_at_1_conn": "<= 100", "throughput_ratio_at_16_conn": ">= 0.90"},
        }
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            p.wait(timeout=10)
    proxy_log.seek(0)
    tail = [line.strip() for line in proxy_log.read().splitlines() if "stopped" in line]
    summary["proxy_publisher"] = tail[-1] if tail else None
    return {"summary": summary, "rounds": rounds}


if __name__ == "__main__":
    main()
