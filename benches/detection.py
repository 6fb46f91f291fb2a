#!/usr/bin/env python3
"""How fast does modelmon detect real faults in a real model API?

A benchmark, not a test: it measures and prints, it asserts nothing.

It runs the iris example (FastAPI + scikit-learn, instrumented with modelmon_interceptor)
in a container (--network host on a loopback port, --cpus 1, --memory 400m), puts a
steady load on it, and watches it with `modelmon-tui --batch --interval 500ms`, as a user
would. Once the model's baseline is learnt (`baseline.ready`), it injects each fault in
turn, notes when the expected alert is first shown (pending or firing) and when it
fires, clears the fault and waits for every alert to resolve before the next one.

    fault     what is done                              expected rule
    latency   every predict waits 320..480 ms (x100)    latency_regression
    errors    30 % of predicts answer 503                error_spike
    cpu       a burner process holds --cpus 1 at 100 %  cpu_saturation
    leak      40 MiB/s kept until the OOM killer        oom_killed (memory_saturation counts as shown)
    stop      docker stop                               container_down
    creep     every predict waits 1 ms more each minute  latency_regression (or median_latency_regression)
              (--creep MS): a slowdown creeping up over the hours; not in the default list
    share     the --slow share of predicts x2.5          latency_regression
              (--share-factor F): a slow mode taking more of the requests (a cache's
              misses 4 % -> 10 %); needs --slow; not in the default list

Before it, once:

    ./scripts/services.sh docker modelapi        # Docker, the busybox image, the venv
    cargo build --release --bin modelmon-tui

Then:

    python3 benches/detection.py                       # target/release/modelmon-tui
    python3 benches/detection.py path/to/modelmon-tui  # another build
    python3 benches/detection.py --fast-baseline       # learn = 3m, skip_recent = 0s, min_history = 1m
    python3 benches/detection.py --faults latency,stop --timeout 60
    python3 benches/detection.py --steady 30           # no faults for 30 min: what fires anyway?
    python3 benches/detection.py --steady 30 --demo    # the same over --demo, its incidents off
    python3 benches/detection.py --steady 30 --slow 0.05  # 5 % of predicts take 100..150 ms all along

A creep is judged against the normal of the hours before the last one ([alerts.baseline]
earlier), so it needs those hours, or a scaled-down learning: --baseline overrides keys of
[alerts.baseline] (written into the monitor's config), --settle waits that many minutes
after the baseline is ready before the first fault:

    python3 benches/detection.py --faults creep --timeout 2400 --settle 12 \
        --baseline learn=10m,skip_recent=1m,min_history=5m,earlier=30m

--slow SHARE gives the model a normal with two modes of latency (as a cache's misses do):
that share of predicts waits 100..150 ms from the start, under every fault and after it;
its p95 moves between the modes from minute to minute while nothing is wrong. The share
fault makes that share larger (x2.5), and the p95 stays in the slow mode:

    python3 benches/detection.py --faults share --slow 0.04 --rps 10 --timeout 1500 \
        --settle 20 --baseline learn=20m,skip_recent=2m,min_history=5m

With the real defaults ([alerts.baseline] learn 1h, skip_recent 5m, min_history 10m)
the warm-up alone takes about min_history + skip_recent (15 min); --fast-baseline writes
the shortened values into the monitor's config (a build without `[alerts.baseline]`
rejects that config, and the script says so). A fault whose rule does not show within
--timeout seconds is reported as "not within N s"; the run goes on.

The table goes to stdout, progress to stderr. --record FILE keeps every --batch line.
Only 127.0.0.1 is ever sent traffic. Python 3.9+, standard library only.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGE = "modelmon-test-busybox:latest"
DEFAULT_VENV = "/var/cache/modelmon/iris-venv"
AMQP = "amqp://127.0.0.1:5672/%2f"
SETUP_HINT = "run ./scripts/services.sh docker modelapi first"
ACTIVE = ("pending", "firing")
# The spec's shortened learning, for trying the benchmark out.
FAST_BASELINE = {"learn": "3m", "skip_recent": "0s", "min_history": "1m"}
REAL_BASELINE = {"learn": "1h", "skip_recent": "5m", "min_history": "10m"}
ROWS = ([5.1, 3.5, 1.4, 0.2], [6.4, 3.2, 4.5, 1.5], [6.3, 3.3, 6.0, 2.5])


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def now_ms() -> int:
    return int(time.time() * 1000)


def seconds(text: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    for unit in ("ms", "s", "m", "h"):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * units[unit]
    return float(text)


def docker(*args: str, check: bool = True) -> str:
    out = subprocess.run(["docker", *args], capture_output=True, text=True)
    if check and out.returncode != 0:
        raise SystemExit(f"docker {' '.join(args)} failed ({SETUP_HINT}): {out.stderr.strip()}")
    return out.stdout.strip()


def http_call(port: int, method: str, path: str, body: dict | None = None, timeout: float = 10) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        data = json.dumps(body) if body is not None else None
        conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


class ModelApi:
    """The iris example in a container made of read-only bind mounts on the busybox image."""

    def __init__(self, model: str, cpus: str, memory: str, label_key: str, amqp: str, slow: float) -> None:
        self.shape = {"slow_share": slow, "slow_ms": [100, 150]} if slow > 0 else {}
        venv = Path(os.environ.get("MODELMON_VENV", DEFAULT_VENV))
        python = venv / "bin" / "python"
        try:
            # The venv's python links into the interpreter's prefix, which must be mounted too.
            prefix = subprocess.run(
                [str(python), "-c", "import sys; print(sys.base_prefix)"],
                capture_output=True, text=True, check=True,
            ).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            raise SystemExit(f"no working venv at {venv} ({SETUP_HINT})") from None
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.model = model
        self.name = f"mm-detect-{os.getpid()}"
        mounts = ["/usr"] + [d for d in ("/lib", "/lib64", "/etc/ssl") if os.path.exists(d)]
        mounts += [prefix, str(venv)]
        cmd = [
            "run", "-d", "--name", self.name,
            "--network", "host",
            "--cpus", cpus, "--memory", memory, "--memory-swap", memory,
            "--label", f"{label_key}={model}",
        ]
        for m in mounts:
            cmd += ["-v", f"{m}:{m}:ro"]
        cmd += ["-v", f"{ROOT / 'examples' / 'iris-fastapi'}:/app:ro"]
        env = {
            "MODELMON_MODEL": model, "MODELMON_AMQP_URL": amqp, "IRIS_FAULTS": "1", "HOME": "/tmp",
            "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
        }
        for k, v in env.items():
            cmd += ["-e", f"{k}={v}"]
        cmd += [IMAGE, str(python), "-m", "uvicorn", "app:app", "--app-dir", "/app",
                "--host", "127.0.0.1", "--port", str(self.port), "--no-access-log", "--log-level", "warning"]
        docker(*cmd)
        self.wait_ready()

    def wait_ready(self, timeout: float = 90) -> None:
        self._wait_ready(timeout)
        if self.shape:
            self.faults("PUT")

    def state(self) -> str:
        return docker("inspect", "-f", "{{.State.Status}}", self.name, check=False)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if http_call(self.port, "GET", "/health", timeout=2)[0] == 200:
                    return
            except OSError:
                pass
            state = self.state()
            if state not in ("running", "created", "restarting"):
                logs = docker("logs", "--tail", "30", self.name, check=False)
                raise SystemExit(f"the model API container is {state}:\n{logs}")
            if time.monotonic() > deadline:
                raise SystemExit(f"the model API did not answer /health within {timeout:.0f} s")
            time.sleep(0.2)

    def faults(self, method: str, body: dict | None = None) -> None:
        # The model's normal shape (--slow) stays under every fault and after it.
        if self.shape:
            method, body = "PUT", {**self.shape, **(body or {})}
        status, text = http_call(self.port, method, "/faults", body)
        if status != 200:
            raise SystemExit(f"{method} /faults: {status} {text}")

    def stop(self) -> None:
        docker("stop", "-t", "10", self.name)

    def start_again(self) -> None:
        docker("start", self.name)
        self.wait_ready()

    def remove(self) -> None:
        docker("rm", "-f", self.name, check=False)


class Load:
    """A steady open-loop load: `rps` predicts a second, each at its scheduled time."""

    def __init__(self, port: int, model: str, rps: float, workers: int = 48) -> None:
        self.port = port
        self.path = f"/v1/models/{model}/predict"
        self.period = 1.0 / rps
        self.t0 = time.monotonic()
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.ticket = 0
        self.by_status: dict[int, int] = {}
        self.failed = 0
        self.skipped = 0
        self.threads = [threading.Thread(target=self._work, daemon=True) for _ in range(workers)]
        for t in self.threads:
            t.start()

    def _next(self) -> int:
        with self.lock:
            self.ticket += 1
            return self.ticket

    def _work(self) -> None:
        conn = None
        while not self.stop_event.is_set():
            k = self._next()
            due = self.t0 + k * self.period
            if self.stop_event.wait(max(0.0, due - time.monotonic())):
                return
            # Catching up a long stall in a burst would be a spike of our own making.
            if time.monotonic() - due > 1.0:
                with self.lock:
                    self.skipped += 1
                continue
            body = json.dumps({"instances": [ROWS[k % 3]]})
            status = None
            for attempt in (0, 1):
                reused = conn is not None
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                try:
                    conn.request("POST", self.path, body=body, headers={"Content-Type": "application/json"})
                    resp = conn.getresponse()
                    resp.read()
                    status = resp.status
                    break
                except (OSError, http.client.HTTPException) as e:
                    conn.close()
                    conn = None
                    # Only a keep-alive connection the server had closed is worth a second
                    # try; a late answer is a failure, never sent twice.
                    if attempt or not reused or isinstance(e, socket.timeout):
                        break
            with self.lock:
                if status is None:
                    self.failed += 1
                else:
                    self.by_status[status] = self.by_status.get(status, 0) + 1
            if status is None:
                time.sleep(0.05)

    def counts(self) -> str:
        with self.lock:
            statuses = " ".join(f"{s}:{n}" for s, n in sorted(self.by_status.items()))
            return f"{statuses} failed:{self.failed} skipped:{self.skipped}"

    def close(self) -> None:
        self.stop_event.set()
        for t in self.threads:
            t.join(timeout=15)


class Monitor:
    """`modelmon-tui --batch` as a child; its lines parsed on a thread."""

    def __init__(self, binary: Path, model: str | None, amqp: str, config_text: str, record: Path | None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="modelmon-detect-"))
        self.config = self.dir / "config.toml"
        self.config.write_text(config_text)
        self.stderr_path = self.dir / "stderr.log"
        env = {k: v for k, v in os.environ.items() if k != "MODELMON_AMQP_URL"}
        # Fresh history: the baseline is learnt from scratch, which is what warm-up measures.
        env["XDG_STATE_HOME"] = str(self.dir / "state")
        if model is None:
            # --demo with its scripted incidents off: only the models' own noise.
            source = ["--demo"]
            env["MODELMON_DEMO_INCIDENTS"] = "off"
        else:
            source = ["--amqp", amqp, "--models", model]
        self.proc = subprocess.Popen(
            [str(binary), "--batch", "--interval", "500ms", "--config", str(self.config), *source],
            stdout=subprocess.PIPE, stderr=self.stderr_path.open("w"), text=True, env=env,
        )
        self.lines: queue.Queue = queue.Queue()
        self.record = record.open("w") if record else None
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            if self.record:
                self.record.write(raw)
            try:
                self.lines.put(json.loads(raw))
            except json.JSONDecodeError:
                continue
        self.lines.put(None)

    def next(self, timeout: float) -> dict | None:
        """The next line, or None after `timeout` s; exits if the monitor has gone."""
        try:
            line = self.lines.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return None
        if line is None:
            self.proc.wait()
            err = self.stderr_path.read_text().strip()
            hint = ""
            if "baseline" in err and "unknown field" in err:
                hint = "\n(this build has no [alerts.baseline]: run without --fast-baseline)"
            raise SystemExit(f"the monitor exited ({self.proc.returncode}):\n{err}{hint}")
        return line

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        if self.record:
            self.record.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def row_of(line: dict, model: str) -> dict | None:
    for m in line.get("models") or []:
        if m.get("model") == model:
            return m
    return None


def active_alerts(line: dict, model: str) -> list[dict]:
    row = row_of(line, model) or {}
    return [a for a in row.get("alerts") or [] if a.get("state") in ACTIVE]


def monitor_alerts(line: dict) -> list[dict]:
    """The monitor's own alerts (broker_down, ...): a top-level list, where the build has one."""
    top = line.get("alerts")
    return [a for a in top if a.get("state") in ACTIVE] if isinstance(top, list) else []


def began_after(a: dict, t_ms: int) -> bool:
    """Whether the alert entered its current state at or after `t_ms`: one still firing
    from an earlier fault is not this fault's doing."""
    since = a.get("since")
    if a.get("state") == "firing":
        since = a.get("started_ms") or since
    return not isinstance(since, (int, float)) or since >= t_ms


def figures(row: dict | None) -> str:
    if not row:
        return "no row yet"

    def f(key: str, fmt: str) -> str:
        v = row.get(key)
        return format(v, fmt) if isinstance(v, (int, float)) else "-"

    mem = row.get("mem_bytes")
    mem_s = f"{mem / 2**20:.0f}MiB" if isinstance(mem, (int, float)) else "-"
    return (
        f"qps {f('qps', '.1f')} p95 {f('p95_ms', '.1f')}ms err {f('error_rate', '.3f')} "
        f"cpu {f('cpu_percent', '.0f')}% mem {mem_s} {row.get('container_state') or '-'}"
    )


@dataclass
class Fault:
    name: str
    rule: str
    # Rules that count as "shown" besides the expected one.
    also_shown: tuple[str, ...] = ()
    body: dict | None = None
    # Rules that count as the expected one firing (one slowdown fires one of the two).
    also_fires: tuple[str, ...] = ()

    def inject(self, api: ModelApi) -> None:
        if self.name == "stop":
            api.stop()
        else:
            api.faults("PUT", self.body)

    def clear(self, api: ModelApi) -> None:
        if api.state() != "running":
            # The fault ended the container (OOM kill, stop): an operator starts it again.
            api.start_again()
        else:
            api.faults("DELETE")


FAULTS = {
    "latency": Fault("latency", "latency_regression", body={"latency_ms": [320, 480]}),
    "errors": Fault("errors", "error_spike", body={"error_share": 0.3, "error_status": 503}),
    "cpu": Fault("cpu", "cpu_saturation", body={"cpu_burn": True}),
    "leak": Fault("leak", "oom_killed", also_shown=("memory_saturation",), body={"leak_mib_per_s": 40}),
    "stop": Fault("stop", "container_down"),
    "creep": Fault("creep", "latency_regression", also_shown=("median_latency_regression",),
                   body={"creep_ms_per_min": 1.0}, also_fires=("median_latency_regression",)),
    "share": Fault("share", "latency_regression"),
}


@dataclass
class Result:
    fault: Fault
    shown_s: float | None = None
    firing_s: float | None = None
    recovered_s: float | None = None
    others: set[str] = field(default_factory=set)
    explanation: str = ""


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.model = args.model or f"iris-detect-{os.getpid()}"
        self.last_progress = 0.0

    def progress(self, what: str, line: dict, every: float = 5.0) -> None:
        if time.monotonic() - self.last_progress >= every:
            self.last_progress = time.monotonic()
            active = ", ".join(f"{a['rule']}:{a['state']}" for a in active_alerts(line, self.model))
            log(f"{what}: {figures(row_of(line, self.model))}; alerts: {active or 'none'}")

    def wait_baseline(self, mon: Monitor, timeout: float) -> float | None:
        """Seconds until the model's baseline is ready; None when it never says so."""
        t0 = time.monotonic()
        seen_key = False
        while (left := timeout - (time.monotonic() - t0)) > 0:
            line = mon.next(left)
            if line is None:
                break
            row = row_of(line, self.model)
            if row is not None and "baseline" in row:
                seen_key = True
                b = row["baseline"]
                if isinstance(b, dict) and b.get("ready"):
                    return time.monotonic() - t0
            elapsed = time.monotonic() - t0
            if not seen_key and row is not None and elapsed > 30:
                log("this build's --batch has no per-model `baseline`: no baseline to wait for "
                    f"(the detection engine is not in it?); warming up {self.args.warmup:.0f} s instead")
                while time.monotonic() - t0 < self.args.warmup:
                    mon.next(1.0)
                return None
            b = (row or {}).get("baseline")
            expl = b.get("explanation") if isinstance(b, dict) else None
            self.progress(f"warming up {elapsed:.0f}s, baseline {expl or 'not ready'}", line, every=30)
        log(f"the baseline was not ready within {timeout:.0f} s; measuring anyway")
        return None

    def watch_fault(self, mon: Monitor, api: ModelApi, fault: Fault) -> Result:
        res = Result(fault)
        shown_rules = (fault.rule, *fault.also_shown)
        log(f"{fault.name}: injecting")
        inject_ms = now_ms()
        fault.inject(api)
        deadline = time.monotonic() + self.args.timeout
        while res.firing_s is None and (left := deadline - time.monotonic()) > 0:
            line = mon.next(left)
            if line is None:
                break
            if line.get("ts_ms", 0) < inject_ms:
                continue
            dt = (line["ts_ms"] - inject_ms) / 1000
            for a in active_alerts(line, self.model):
                if not began_after(a, inject_ms):
                    continue
                if a.get("rule") in shown_rules and res.shown_s is None:
                    res.shown_s = dt
                    log(f"{fault.name}: {a['rule']} shown ({a['state']}) after {dt:.1f} s")
                if a.get("rule") in (fault.rule, *fault.also_fires) and a.get("state") == "firing":
                    res.firing_s = dt
                    res.explanation = str(a.get("explanation") or "")
                    why = f": {res.explanation}" if res.explanation else ""
                    log(f"{fault.name}: {a['rule']} firing after {dt:.1f} s{why}")
                elif a.get("state") == "firing" and a.get("rule") not in shown_rules:
                    res.others.add(a["rule"])
            res.others.update(self.new_monitor_alerts(line, inject_ms))
            self.progress(f"{fault.name} +{dt:.0f}s", line)
        if res.firing_s is None:
            log(f"{fault.name}: {fault.rule} not firing within {self.args.timeout:.0f} s")
        fault.clear(api)
        res.recovered_s = self.wait_recovery(mon, res, inject_ms)
        return res

    @staticmethod
    def new_monitor_alerts(line: dict, t_ms: int) -> list[str]:
        return [
            f"monitor:{a.get('rule')}"
            for a in monitor_alerts(line)
            if a.get("state") == "firing" and began_after(a, t_ms)
        ]

    def wait_recovery(self, mon: Monitor, res: Result, inject_ms: int) -> float | None:
        """Seconds from injection until no alert of the model is pending or firing and
        its container runs and serves again; None when that does not happen in time."""
        shown_rules = (res.fault.rule, *res.fault.also_shown)
        deadline = time.monotonic() + self.args.recovery_timeout
        while (left := deadline - time.monotonic()) > 0:
            line = mon.next(left)
            if line is None:
                break
            active = active_alerts(line, self.model)
            for a in active:
                if a.get("state") == "firing" and a.get("rule") not in shown_rules and began_after(a, inject_ms):
                    res.others.add(a["rule"])
            res.others.update(self.new_monitor_alerts(line, inject_ms))
            row = row_of(line, self.model) or {}
            serving = row.get("container_state") == "running" and (row.get("last_seen_ms_ago") or 1e9) < 5000
            if not active and not monitor_alerts(line) and serving:
                dt = (line["ts_ms"] - inject_ms) / 1000
                log(f"{res.fault.name}: recovered {dt:.1f} s after the injection")
                return dt
            self.progress(f"{res.fault.name} recovering", line, every=15)
        log(f"{res.fault.name}: alerts not resolved within {self.args.recovery_timeout:.0f} s of clearing")
        return None

    def run(self) -> int:
        args = self.args
        baseline = dict(FAST_BASELINE if args.fast_baseline else REAL_BASELINE)
        baseline.update(args.baseline)
        config = "# written by benches/detection.py\n[notify.desktop]\nenabled = false\n"
        if args.fast_baseline or args.baseline:
            config += "\n[alerts.baseline]\n" + "".join(f'{k} = "{v}"\n' for k, v in baseline.items())
        api = mon = load = None
        if args.demo:
            if args.steady is None or args.slow > 0:
                raise SystemExit("--demo goes with --steady MINUTES, and without --slow")
            mon = Monitor(args.monitor, None, args.amqp, config, args.record)
            try:
                return self.steady(mon, None)
            finally:
                mon.close()
        try:
            log(f"starting the model API ({self.model}, --cpus {args.cpus} --memory {args.memory})")
            api = ModelApi(self.model, args.cpus, args.memory, args.label_key, args.amqp, args.slow)
            load = Load(api.port, self.model, args.rps)
            mon = Monitor(args.monitor, self.model, args.amqp, config, args.record)
            if args.steady is not None:
                return self.steady(mon, load)
            warm = args.baseline_timeout or (
                seconds(baseline["min_history"]) + seconds(baseline["skip_recent"]) + 180
            )
            which = "fast" if args.fast_baseline else "real defaults"
            if args.baseline:
                which += ", " + ", ".join(f"{k} = {v}" for k, v in args.baseline.items())
            log(f"waiting for the baseline ({which}, up to {warm:.0f} s)")
            ready = self.wait_baseline(mon, warm)
            if ready is not None:
                log(f"baseline ready after {ready:.0f} s")
            if args.settle > 0:
                log(f"settling {args.settle:g} min before the first fault")
                end = time.monotonic() + args.settle * 60
                while (left := end - time.monotonic()) > 0:
                    line = mon.next(left)
                    if line is None:
                        break
                    self.progress("settling", line, every=60)
            results = [self.watch_fault(mon, api, FAULTS[name]) for name in args.faults]
            self.table(results, ready)
            log(f"load: {load.counts()}")
            return 0
        finally:
            for part in (load, mon):
                if part is not None:
                    part.close()
            if api is not None:
                api.remove()

    def steady(self, mon: Monitor, load: Load | None) -> int:
        """No faults: every alert that fires over the run, with its explanation."""
        t0 = time.monotonic()
        end = t0 + self.args.steady * 60
        seen: set[tuple] = set()
        fired: list[tuple[float, str, dict]] = []
        ready_at = None
        while (left := end - time.monotonic()) > 0:
            line = mon.next(left)
            if line is None:
                break
            rows = line.get("models", []) if self.args.demo else [row_of(line, self.model) or {}]
            bs = [r.get("baseline") for r in rows]
            if ready_at is None and bs and all(isinstance(b, dict) and b.get("ready") for b in bs):
                ready_at = time.monotonic() - t0
                log(f"baseline ready after {ready_at:.0f} s: {bs[0].get('explanation')}")
            scoped = [(r.get("model", self.model), a) for r in rows for a in r.get("alerts") or []]
            scoped += [("(monitor)", a) for a in monitor_alerts(line)]
            for who, a in scoped:
                if a.get("state") != "firing":
                    continue
                key = (who, a.get("rule"), a.get("started_ms") or a.get("since"))
                if key in seen:
                    continue
                seen.add(key)
                at = time.monotonic() - t0
                fired.append((at, who, a))
                log(f"FIRING +{at:.0f}s {who} {a.get('rule')}: value {a.get('value')} threshold "
                    f"{a.get('threshold')} normal {a.get('normal')}: {a.get('explanation')}")
            self.progress(f"steady +{time.monotonic() - t0:.0f}s", line, every=60)
        minutes = self.args.steady
        what = "--demo, incidents off" if self.args.demo else f"{self.args.rps:g} req/s"
        if self.args.slow > 0 and not self.args.demo:
            what += f", {self.args.slow:g} of predicts 100..150 ms"
        print(f"steady run: {minutes:g} min, {what}, no faults; "
              f"baseline ready after {'%.0f s' % ready_at if ready_at is not None else 'never'}")
        print(f"alerts that fired: {len(fired)}")
        for at, who, a in fired:
            when = "before" if ready_at is None or at < ready_at else "after"
            print(f"  +{at:6.0f}s  {who}  {a.get('rule')}  ({when} the baseline was ready)  {a.get('explanation') or ''}")
        if load is not None:
            log(f"load: {load.counts()}")
        return 0

    def table(self, results: list[Result], ready: float | None) -> None:
        def secs(v: float | None) -> str:
            return f"{v:.1f}" if v is not None else f"not within {self.args.timeout:.0f} s"

        def rec(v: float | None) -> str:
            return f"{v:.1f}" if v is not None else "no"

        rows = [("fault", "expected rule", "shown s", "firing s", "recovered s", "other rules that fired")]
        for r in results:
            rule = r.fault.rule + (f" (or {', '.join(r.fault.also_shown)} shown)" if r.fault.also_shown else "")
            rows.append((r.fault.name, rule, secs(r.shown_s), secs(r.firing_s), rec(r.recovered_s),
                         ", ".join(sorted(r.others)) or "-"))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        mode = "fast baseline" if self.args.fast_baseline else "default baseline"
        if self.args.baseline:
            mode += " with " + ", ".join(f"{k} = {v}" for k, v in self.args.baseline.items())
        if self.args.slow > 0:
            mode += f", {self.args.slow:g} of predicts 100..150 ms all along"
        print(f"detection: {self.args.rps:g} req/s, --interval 500ms, {mode}, "
              f"baseline ready after {'%.0f s' % ready if ready is not None else '(not reported)'}")
        for i, row in enumerate(rows):
            print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
            if i == 0:
                print("  ".join("-" * w for w in widths))
        for r in results:
            if r.explanation:
                print(f"{r.fault.rule}: {r.explanation}")


def key_values(text: str) -> dict[str, str]:
    """`learn=10m,earlier=30m` as a dict."""
    pairs = [kv.split("=", 1) for kv in text.split(",") if kv]
    if any(len(kv) != 2 for kv in pairs):
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE,... not {text!r}")
    return dict(pairs)


def interrupted(*_: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("monitor", nargs="?", type=Path, default=ROOT / "target" / "release" / "modelmon-tui",
                   help="the modelmon-tui binary (default: target/release/modelmon-tui)")
    p.add_argument("--faults", default="latency,errors,cpu,leak,stop",
                   type=lambda s: [f.strip() for f in s.split(",") if f.strip()],
                   help="which faults, in this order (default: all but creep and share)")
    p.add_argument("--fast-baseline", action="store_true",
                   help='[alerts.baseline] learn = "3m", skip_recent = "0s", min_history = "1m"')
    p.add_argument("--steady", type=float, metavar="MINUTES", help="no faults: count what fires in MINUTES")
    p.add_argument("--demo", action="store_true",
                   help="with --steady: watch --demo (incidents off) instead of the model API")
    p.add_argument("--timeout", type=float, default=120, help="seconds to wait for each fault's rule (120)")
    p.add_argument("--recovery-timeout", type=float, default=420,
                   help="seconds to wait for all alerts to resolve after a fault (420)")
    p.add_argument("--baseline-timeout", type=float,
                   help="seconds to wait for baseline.ready (default: min_history + skip_recent + 180)")
    p.add_argument("--warmup", type=float, default=60,
                   help="seconds of traffic before the first fault when the build reports no baseline (60)")
    p.add_argument("--cpu-burners", type=int, default=1,
                   help="burner processes for the cpu fault (1 fills --cpus 1 on an idle host)")
    p.add_argument("--slow", type=float, default=0.0, metavar="SHARE",
                   help="that share of predicts takes 100..150 ms all along: a normal with two modes (0)")
    p.add_argument("--share-factor", type=float, default=2.5, metavar="F",
                   help="the share fault: the --slow share times F (2.5)")
    p.add_argument("--rps", type=float, default=25, help="steady load, requests a second (25)")
    p.add_argument("--creep", type=float, default=1.0, metavar="MS",
                   help="the creep fault: ms more each minute (1)")
    p.add_argument("--baseline", type=key_values, default={}, metavar="KEY=VALUE,...",
                   help="[alerts.baseline] keys for the monitor's config, over the defaults")
    p.add_argument("--settle", type=float, default=0.0, metavar="MINUTES",
                   help="minutes to wait after the baseline is ready, before the first fault (0)")
    p.add_argument("--cpus", default="1")
    p.add_argument("--memory", default="400m")
    p.add_argument("--model", help="model name (default: iris-detect-<pid>)")
    p.add_argument("--label-key", default="modelmon.model", help="container label the monitor maps by")
    p.add_argument("--amqp", default=AMQP, help="broker URL (default: amqp://127.0.0.1:5672/%%2f)")
    p.add_argument("--record", type=Path, metavar="FILE", help="write every --batch line to FILE")
    args = p.parse_args()
    unknown = [f for f in args.faults if f not in FAULTS]
    if unknown:
        p.error(f"unknown fault(s) {unknown}; choose from {', '.join(FAULTS)}")
    if not os.access(args.monitor, os.X_OK):
        p.error(f"no monitor binary at {args.monitor}: cargo build --release --bin modelmon-tui, or pass its path")
    FAULTS["cpu"].body = {"cpu_burn": True, "cpu_burners": args.cpu_burners}
    FAULTS["creep"].body = {"creep_ms_per_min": args.creep}
    if "share" in args.faults and (args.slow <= 0 or args.share_factor <= 1):
        p.error("the share fault makes the --slow share larger: give --slow SHARE, and a --share-factor over 1")
    FAULTS["share"].body = {"slow_share": min(1.0, args.slow * args.share_factor)}
    # A plain `kill` cleans up like Ctrl-C: the container must not outlive the run.
    signal.signal(signal.SIGTERM, interrupted)
    try:
        return Bench(args).run()
    except KeyboardInterrupt:
        log("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
