"""The wheel of scripts/build-wheel.sh works where there is no Rust.

The wheel is built from the current sources, then installed into fresh venvs whose PATH
has no cargo or rustc. In one, with only the app's own packages beside it (FastAPI,
uvicorn, httpx, taken as binary wheels so that nothing can be compiled there), a real
FastAPI app instrumented by the installed copy serves real requests, and its events must
reach the real RabbitMQ on 127.0.0.1:5672: the consumer here (the ``broker`` fixture)
counts them. In the others, one per CPython >= 3.10 found on this machine, a stdlib WSGI
server and an in-process ASGI app do the same with no other package: the one abi3 wheel
serves them all. And mypy, run on the installed wheel, finds its stub true to the native
module and the keyword arguments of ``instrument()`` typed.
"""

from __future__ import annotations

import functools
import glob
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from importlib.metadata import version
from pathlib import Path

import pytest
from conftest import AMQP_URL

ROOT = Path(__file__).resolve().parents[3]
TESTS = Path(__file__).resolve().parent
BUILD = ROOT / "scripts" / "build-wheel.sh"
# A PATH as a model's image has it: system directories only, no ~/.cargo/bin.
BARE_PATH = "/usr/bin:/bin"
# The app's own dependencies, at the versions the rest of the suite runs with.
APP_DEPS = ("fastapi", "starlette", "uvicorn", "httpx", "pydantic")

# Run by the venv's python: a FastAPI app (tests/apps.py) instrumented by the installed
# wheel, served by uvicorn on 127.0.0.1:0, and a client that sends every kind of request
# it has, then flushes. What it sent, and what the package and its publisher say, go to
# stdout as JSON.
APP_SCRIPT = r"""
import functools
import glob
import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path

model, amqp_url, tests = sys.argv[1:4]
sys.path.insert(0, tests)

import httpx
import uvicorn

import modelmon_interceptor
from modelmon_interceptor import _core
from apps import make_fastapi_app

app = make_fastapi_app(model, amqp_url=amqp_url, version="wheel-1", max_batch_delay_ms=50)
server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="critical", lifespan="off"))
thread = threading.Thread(target=server.run, daemon=True)
thread.start()
deadline = time.monotonic() + 20
while not server.started:
    if time.monotonic() > deadline or not thread.is_alive():
        sys.exit("uvicorn did not start")
    time.sleep(0.01)
port = server.servers[0].sockets[0].getsockname()[1]

sent = []
with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
    for i in range(30):
        rows = [[5.1, 3.5]] * (i % 4 + 1)
        r = client.post(f"/v1/models/{model}/predict", json={"rows": rows})
        sent.append(["/v1/models/{name}/predict", r.status_code, len(rows)])
    for i in range(10):
        r = client.get(f"/items/{i}")
        sent.append(["/items/{item_id}", r.status_code, None])
    for _ in range(3):
        # The model raised: a 500. uvicorn then closes the connection, so each on its own.
        r = httpx.get(f"http://127.0.0.1:{port}/boom", timeout=10)
        sent.append(["/boom", r.status_code, None])
    r = client.get("/no/such/route")
    sent.append(["<unmatched>", r.status_code, None])
    assert client.get("/health").status_code == 200  # excluded: never recorded

flushed = modelmon_interceptor.flush(15)
server.should_exit = True
thread.join(10)
print(json.dumps({
    "sent": sent,
    "flushed": flushed,
    "stats": modelmon_interceptor.stats(),
    "pid": os.getpid(),
    "package": str(Path(modelmon_interceptor.__file__).parent),
    "core": _core.__file__,
    "core_version": _core.__version__,
    "cargo": shutil.which("cargo"),
    "rustc": shutil.which("rustc"),
}))
"""


# Run by each CPython's venv, with nothing but the wheel installed: a WSGI app under the
# standard library's HTTP server and an ASGI app called in-process, both instrumented.
STDLIB_SCRIPT = r"""
import asyncio
import json
import os
import sys
import threading
import urllib.request
from wsgiref.simple_server import WSGIRequestHandler, make_server

import modelmon_interceptor
from modelmon_interceptor import ModelmonMiddleware, ModelmonWSGIMiddleware, _core, record

model, amqp_url = sys.argv[1:3]


def wsgi_app(environ, start_response):
    record(batch_size=len(environ["PATH_INFO"]))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


app = ModelmonWSGIMiddleware(wsgi_app, model=model, amqp_url=amqp_url)
server = make_server("127.0.0.1", 0, app, handler_class=Quiet)
threading.Thread(target=server.serve_forever, daemon=True).start()
base = f"http://127.0.0.1:{server.server_port}"
for path in ("/a", "/bb", "/ccc", "/health"):  # /health is excluded
    with urllib.request.urlopen(base + path, timeout=10) as r:
        assert r.status == 200
server.shutdown()


async def asgi_app(scope, receive, send):
    await receive()
    record(queue_us=3)
    await send({"type": "http.response.start", "status": 201, "headers": []})
    await send({"type": "http.response.body", "body": b"made"})


async def call_asgi():
    app = ModelmonMiddleware(asgi_app, model=model, amqp_url=amqp_url)

    async def receive():
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message):
        pass

    for _ in range(2):
        await app({"type": "http", "method": "POST", "path": "/make", "headers": []}, receive, send)


asyncio.run(call_asgi())
print(json.dumps({
    "flushed": modelmon_interceptor.flush(15),
    "stats": modelmon_interceptor.stats(),
    "core": _core.__file__,
    "version": list(sys.version_info[:2]),
}))
"""


@functools.cache
def build_wheel() -> Path:
    """The wheel of the current sources, built once per run; a failed build fails the
    test with its output."""
    started = time.monotonic()
    out = subprocess.run(
        [str(BUILD)],
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
        env={**os.environ, "PYTHON": sys.executable},
    )
    if out.returncode != 0:
        pytest.fail(f"scripts/build-wheel.sh failed ({out.returncode}):\n{out.stderr[-6000:]}")
    lines = out.stdout.strip().splitlines()
    assert lines, f"scripts/build-wheel.sh printed no wheel path:\n{out.stderr[-3000:]}"
    wheel = Path(lines[-1])
    assert wheel.is_file(), f"scripts/build-wheel.sh printed {wheel}, which is not a file"
    assert wheel.parent == ROOT / "dist"
    print(f"\nbuilt {wheel.name} ({wheel.stat().st_size / 1e6:.1f} MB) in {time.monotonic() - started:.0f} s")
    return wheel


def rust_free_env(venv: Path) -> dict[str, str]:
    """This process's environment (pip's settings, certificates) without Rust or this
    process's Python: only the venv and the system directories on PATH."""
    drop = ("CARGO", "RUSTUP", "RUSTC", "RUSTFLAGS", "PYO3", "MATURIN", "VIRTUAL_ENV", "PYTHON", "CONDA")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env["PATH"] = f"{venv / 'bin'}:{BARE_PATH}"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PIP_ROOT_USER_ACTION"] = "ignore"
    return env


def run(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 900) -> str:
    out = subprocess.run(args, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout, check=False)
    tail = f"{out.stdout[-3000:]}\n{out.stderr[-6000:]}"
    assert out.returncode == 0, f"{' '.join(args)} failed ({out.returncode}):\n{tail}"
    return out.stdout


def rust_free_venv(python: str, venv: Path, with_pip: bool = True) -> tuple[str, dict[str, str]]:
    """A fresh venv of ``python`` and the environment to run it in, with no Rust on PATH."""
    subprocess.run([python, "-m", "venv", *([] if with_pip else ["--without-pip"]), str(venv)], check=True, timeout=300)
    env = rust_free_env(venv)
    for tool in ("cargo", "rustc"):
        assert shutil.which(tool, path=env["PATH"]) is None, f"{tool} is on the venv's PATH"
    # The shell agrees: `command -v cargo` finds nothing there.
    probe = subprocess.run(["/bin/sh", "-c", "command -v cargo"], env=env, stdout=subprocess.PIPE, check=False)
    assert probe.returncode != 0, probe.stdout
    return str(venv / "bin" / "python"), env


def cpythons() -> dict[tuple[int, int], str]:
    """One interpreter per CPython >= 3.10 on this machine: this one, python3.N on PATH,
    and pyenv's installs (whose shims run only the selected version)."""
    pyenv = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    candidates = [sys.executable]
    candidates += [p for n in range(10, 30) if (p := shutil.which(f"python3.{n}"))]
    candidates += sorted(glob.glob(f"{pyenv}/versions/*/bin/python3"))
    found: dict[tuple[int, int], str] = {}
    ask = "import platform, sys; print(platform.python_implementation(), *sys.version_info[:2])"
    for exe in candidates:
        try:
            out = subprocess.run([exe, "-c", ask], capture_output=True, text=True, timeout=30, check=False)
        except OSError:
            continue
        words = out.stdout.split()
        if out.returncode != 0 or len(words) != 3 or words[0] != "CPython":
            continue
        v = (int(words[1]), int(words[2]))
        if v >= (3, 10):
            found.setdefault(v, exe)
    return found


def test_the_wheel_installs_and_reports_without_rust(broker, model, tmp_path):
    wheel = build_wheel()
    assert "-cp310-abi3-manylinux_" in wheel.name, wheel.name

    venv = tmp_path / "venv"
    py, env = rust_free_venv(sys.executable, venv)

    started = time.monotonic()
    # Binary wheels only: pip may not build anything, so nothing could reach for a compiler.
    pins = [f"{name}=={version(name)}" for name in APP_DEPS]
    run([py, "-m", "pip", "install", "-q", "--only-binary", ":all:", *pins], env, tmp_path)
    # The wheel alone, with no index: it needs nothing else.
    run([py, "-m", "pip", "install", "-q", "--no-index", "--no-deps", str(wheel)], env, tmp_path)
    print(f"venv ready in {time.monotonic() - started:.0f} s")
    installed = run([py, "-m", "pip", "list", "--format=freeze"], env, tmp_path)
    assert "modelmon-interceptor==0.1.0" in installed.lower().replace("_", "-"), installed

    script = tmp_path / "wheel_app.py"
    script.write_text(APP_SCRIPT)
    # Run from tmp_path, so that nothing of the source tree shadows the installed package.
    result = json.loads(run([py, str(script), model, AMQP_URL, str(TESTS)], env, tmp_path, timeout=120))

    # The installed copy ran, with its native core built for the stable ABI, and with
    # its type information beside it.
    package = Path(result["package"])
    assert package.is_relative_to(venv), package
    assert Path(result["core"]).name == "_core.abi3.so", result["core"]
    assert Path(result["core"]).parent == package
    assert result["core_version"] == "0.1.0"
    assert (package / "py.typed").is_file()
    assert "class Core" in (package / "_core.pyi").read_text()
    assert result["cargo"] is None and result["rustc"] is None

    sent = result["sent"]
    assert result["flushed"] is True, result["stats"]
    (stats,) = result["stats"]
    assert stats["recorded"] == len(sent), stats
    assert stats["published_events"] == len(sent), stats
    assert (stats["dropped"], stats["lost_in_python"]) == (0, 0), stats
    assert Counter(status for _, status, _ in sent) == {200: 40, 500: 3, 404: 1}

    broker.wait_events(model, len(sent))
    broker.wait_for(lambda _: False, timeout=0.5)  # and nothing more
    events = broker.events(model)
    assert Counter((e["route"], e["status"]) for e in events) == Counter((r, s) for r, s, _ in sent)
    assert {e["version"] for e in events} == {"wheel-1"}
    predicts = [e for e in events if e["route"] == "/v1/models/{name}/predict"]
    # record() from the handler reached the native core (the measures' dict, on the
    # stable ABI's path for str keys).
    assert Counter(e["ml"]["batch_size"] for e in predicts) == Counter(n for r, _, n in sent if n is not None)
    assert {e["ml"]["queue_us"] for e in predicts} == {12.0}
    assert {e["ml"]["inference_us"] for e in events if e["route"] == "/items/{item_id}"} == {7.5}
    assert {e.get("error") for e in events if e["status"] == 500} == {"ModelCrashed"}
    # Published by the app's process in the venv, through the ASGI middleware.
    sources = {(m.batch["source"]["pid"], m.batch["source"]["kind"]) for m in broker.batches(model)}
    assert sources == {(result["pid"], "asgi")}


def test_one_wheel_serves_every_cpython_from_3_10(broker, model, tmp_path):
    wheel = build_wheel()
    found = cpythons()
    print(f"\nCPythons here: {', '.join(f'{a}.{b}' for a, b in sorted(found))}")
    assert found, "no CPython >= 3.10 found, not even this one"
    script = tmp_path / "stdlib_app.py"
    script.write_text(STDLIB_SCRIPT)
    results = {}
    for (major, minor), python in sorted(found.items()):
        venv = tmp_path / f"venv{major}{minor}"
        # No pip of its own (ensurepip takes seconds per venv): this process's pip installs
        # into it, running under the venv's interpreter, whose tags it checks.
        py, env = rust_free_venv(python, venv, with_pip=False)
        pip = [sys.executable, "-m", "pip", "--python", py, "install", "-q", "--no-index", "--no-deps", str(wheel)]
        run(pip, env, tmp_path)
        name = f"{model}-py{major}{minor}"
        results[name] = result = json.loads(run([py, str(script), name, AMQP_URL], env, tmp_path, timeout=120))
        assert result["version"] == [major, minor]
        assert Path(result["core"]).is_relative_to(venv) and result["core"].endswith("/_core.abi3.so"), result["core"]
        assert result["flushed"] is True, result["stats"]
        assert sum(s["published_events"] for s in result["stats"]) == 5, result["stats"]

    broker.wait_events(model, 5 * len(results))
    broker.wait_for(lambda _: False, timeout=0.5)  # and nothing more
    for name in results:
        events = [e for e in broker.events(model) if e["model"] == name]
        wsgi = sorted((e["route"], e["status"], e["ml"]["batch_size"]) for e in events if e["method"] == "GET")
        assert wsgi == [("<unmatched>", 200, 2.0), ("<unmatched>", 200, 3.0), ("<unmatched>", 200, 4.0)], events
        asgi = [(e["route"], e["status"], e["ml"]["queue_us"]) for e in events if e["method"] == "POST"]
        assert asgi == [("<unmatched>", 201, 3.0)] * 2, events


# Checked by mypy against the installed wheel: the right calls pass, the wrong ones are
# caught, so the types the wheel carries are the ones users get.
TYPED_USE = """
from fastapi import FastAPI
from modelmon_interceptor import instrument
from modelmon_interceptor._core import Core

app: FastAPI = instrument(FastAPI(), model="iris", version="1", sample_rate=0.5, exclude=["/health"])
instrument(FastAPI(), model="iris", samplerate=0.5)  # line 7: no such option
instrument(FastAPI(), model="iris", sample_rate="half")  # line 8: not a float
Core("amqp://127.0.0.1", "asgi", "host:1").record(1, "iris", "/r", "GET", "200", 5)  # line 9: status is an int
"""


def test_the_wheel_carries_types_that_match_the_native_module(tmp_path):
    wheel = build_wheel()
    venv = tmp_path / "venv"
    py, env = rust_free_venv(sys.executable, venv, with_pip=False)
    pins = [f"fastapi=={version('fastapi')}", "mypy==2.4.1"]
    pip = [sys.executable, "-m", "pip", "--python", py, "install", "-q", "--only-binary", ":all:"]
    run([*pip, *pins], env, tmp_path)
    run([*pip, "--no-index", "--no-deps", str(wheel)], env, tmp_path)
    # The stub against the module itself: every name, parameter and default.
    run([py, "-m", "mypy.stubtest", "modelmon_interceptor._core"], env, tmp_path)
    use = tmp_path / "use.py"
    use.write_text(TYPED_USE)
    out = subprocess.run(
        [py, "-m", "mypy", "--no-incremental", "--strict", str(use)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
        check=False,
    )
    errors = sorted(
        (int(line.split(":")[1]), line.rsplit("[", 1)[1].rstrip("]"))
        for line in out.stdout.splitlines()
        if ": error: " in line
    )
    assert errors == [(7, "call-arg"), (8, "arg-type"), (9, "arg-type")], out.stdout


def test_instrument_takes_every_option_of_settings_with_its_type():
    """``instrument()`` spells its options out (so that type checkers see them); they must
    stay those of ``Settings.resolve``, with the same types."""
    import inspect

    from modelmon_interceptor import instrument
    from modelmon_interceptor.settings import Settings

    def options(f) -> dict[str, tuple[object, object]]:
        params = inspect.signature(f).parameters.values()
        return {p.name: (p.annotation, p.default) for p in params if p.kind is p.KEYWORD_ONLY}

    assert options(instrument) == options(Settings.resolve)
