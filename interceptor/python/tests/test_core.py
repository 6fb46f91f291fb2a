"""The native core and the public helpers, against the real broker."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import time

import httpx
import modelmon_interceptor
import pytest
from conftest import AMQP_URL
from flask import Flask
from modelmon_interceptor import _core
from modelmon_interceptor.settings import Settings


def test_core_keeps_odd_values_inside_the_contract(broker, model):
    core = _core.Core(AMQP_URL, "asgi", "box:1", max_batch_delay_ms=20)
    ts = time.time_ns() // 1000
    core.record(
        ts,
        model,
        "/x\n/" + "y" * 300,
        "VERYLONGMETHODNAME",
        200,
        50,
        80,
        None,
        3,
        "Bad\tError",
        None,
        {"ok_key": 1.5, "Bad-Key": 2.0, "nan": float("nan"), "n": 3},
    )
    core.record(ts, "", "/r", "GET", 200, 1)  # no model: dropped and counted, never sent
    assert core.flush(10.0)
    [ev] = broker.wait_events(model, 1)
    assert ev["route"].startswith("/x?/y") and len(ev["route"]) == 256
    assert ev["method"] == "VERYLONGMETHODNA"
    assert ev["error"] == "Bad?Error"
    assert ev["ttfb_us"] == 50  # a first byte after the last is clamped, not rejected downstream
    assert ev["ml"] == {"ok_key": 1.5, "n": 3.0}
    assert ev["instance"] == "box:1"
    stats = core.stats()
    assert stats["recorded"] == 2 and stats["dropped"] == 1 and stats["published_events"] == 1
    assert stats["state"] == "connected"
    core.shutdown(1.0)


def test_record_outside_a_request_is_a_no_op():
    assert modelmon_interceptor.record(queue_us=1) is False
    assert modelmon_interceptor.mark_error("Fallback") is False


def test_settings_from_the_environment(monkeypatch):
    monkeypatch.setenv("MODELMON_MODEL", "resnet")
    monkeypatch.setenv("MODELMON_AMQP_URL", "amqp://elsewhere:5672/%2f")
    monkeypatch.setenv("MODELMON_EXCLUDE", "/ping, /status")
    monkeypatch.setenv("MODELMON_SAMPLE_RATE", "0.25")
    s = Settings.resolve()
    assert (s.model, s.amqp_url, s.sample_rate, s.disabled) == ("resnet", "amqp://elsewhere:5672/%2f", 0.25, False)
    assert s.exclude == frozenset({"/ping", "/status"})
    # Arguments win over the environment.
    assert Settings.resolve("iris", sample_rate=1.0).model == "iris"
    monkeypatch.setenv("MODELMON_DISABLED", "yes")
    assert Settings.resolve().disabled


@pytest.mark.parametrize("bad", ["a\x00b", "a\nb", "m" * 129])
def test_a_bad_model_name_is_refused_at_startup(bad):
    with pytest.raises(ValueError):
        Settings.resolve(bad)


def test_instrument_refuses_what_it_cannot_wrap():
    with pytest.raises(TypeError):
        modelmon_interceptor.instrument(object(), model="iris")


def test_flush_releases_the_gil_while_it_waits():
    import threading

    from conftest import free_port

    core = _core.Core(f"amqp://guest:guest@127.0.0.1:{free_port()}/%2f", "asgi", "box:2")
    core.record(time.time_ns() // 1000, "iris", "/r", "GET", 200, 1)
    go = threading.Event()
    ran_at: list[float] = []

    def other_thread() -> None:
        go.wait()
        ran_at.append(time.monotonic())

    t = threading.Thread(target=other_thread)
    t.start()
    go.set()
    delivered = core.flush(1.0)  # nothing answers on that port: waits out the timeout
    flush_returned_at = time.monotonic()
    t.join()
    assert delivered is False
    # Had flush held the GIL, the other thread could only have run after it returned.
    assert ran_at[0] < flush_returned_at
    core.shutdown(0.1)


def test_events_still_buffered_are_sent_at_interpreter_exit(broker, model):
    import subprocess
    import sys

    script = (
        "import time\n"
        "from modelmon_interceptor.settings import Settings\n"
        "from modelmon_interceptor.sink import sink_for\n"
        f"s = Settings.resolve({model!r}, max_batch_delay_ms=600000)\n"
        "sink = sink_for(s, 'wsgi')\n"
        f"sink.record(time.time_ns() // 1000, {model!r}, '/exit', 'GET', 200, 5, None, None, None, None, None, None)\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    # The batch delay is ten minutes: only the flush at exit can have sent it.
    [ev] = broker.wait_events(model, 1, timeout=10)
    assert ev["route"] == "/exit"


def test_excluded_paths_match_the_shared_vectors():
    """The proxy reads the same file: both sides exclude the same paths."""
    import json
    from pathlib import Path

    from modelmon_interceptor.settings import DEFAULT_EXCLUDE, Exclusions

    vectors = Path(__file__).resolve().parents[3] / "tests" / "exclusions" / "paths.json"
    v = json.loads(vectors.read_text())
    assert tuple(v["defaults"]) == DEFAULT_EXCLUDE
    assert len(v["cases"]) >= 15
    for case in v["cases"]:
        entries = v["defaults"] if case["excludes"] == "defaults" else case["excludes"]
        assert (case["path"] in Exclusions(entries)) is case["excluded"], case


def test_a_bad_count_in_the_environment_falls_back_to_the_default_and_recording_goes_on(
    broker, model, monkeypatch, caplog
):
    from apps import make_flask_app
    from conftest import WerkzeugThread

    bad = {"MODELMON_BUFFER_EVENTS": "-1", "MODELMON_MAX_BATCH_DELAY_MS": "-5", "MODELMON_MAX_BATCH_EVENTS": "0"}
    for name, value in bad.items():
        monkeypatch.setenv(name, value)
    with caplog.at_level(logging.WARNING, logger="modelmon_interceptor"):
        # Two apps of one process: one warning each, not one per app.
        apps = [make_flask_app(model), make_flask_app(model)]
        with WerkzeugThread(apps[0]) as url, WerkzeugThread(apps[1]) as url2:
            assert httpx.get(f"{url}/items/1").status_code == 200
            assert httpx.get(f"{url2}/items/2").status_code == 200
        assert len(broker.wait_events(model, 2)) == 2
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    for name, value in bad.items():
        assert len([w for w in warnings if f"{name}={value!r}" in w]) == 1, warnings
    assert len(warnings) == len(bad), warnings


@pytest.mark.parametrize(
    "option", [{"max_batch_events": 0}, {"buffer_events": -1}, {"max_batch_delay_ms": -5}, {"max_batch_events": 2.5}]
)
def test_a_bad_count_as_an_argument_is_refused_when_the_app_is_built(model, option):
    [name] = option
    with pytest.raises(ValueError, match=name):
        modelmon_interceptor.instrument(Flask(__name__), model=model, **option)


def test_no_batch_delay_is_honoured(broker, model):
    from apps import make_flask_app
    from conftest import WerkzeugThread

    app = make_flask_app(model, max_batch_delay_ms=0)
    assert app.wsgi_app.settings.max_batch_delay_ms == 0
    with WerkzeugThread(app) as url:
        assert httpx.get(f"{url}/items/1").status_code == 200
    assert len(broker.wait_events(model, 1)) == 1


def test_without_the_native_core_the_app_serves_and_says_so_once(tmp_path):
    script = tmp_path / "app.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys
            import threading
            import urllib.request

            # As a missing or broken extension would: its import fails.
            sys.modules["modelmon_interceptor._core"] = None

            from flask import Flask
            from modelmon_interceptor import instrument
            from werkzeug.serving import make_server

            app = Flask(__name__)

            @app.get("/items/<int:item_id>")
            def item(item_id):
                return {"item": item_id}

            instrument(app, model="pyt-nocore")
            server = make_server("127.0.0.1", 0, app, threaded=True)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            for i in range(3):
                url = f"http://127.0.0.1:{server.server_port}/items/{i}"
                with urllib.request.urlopen(url) as resp:
                    print(resp.status, resp.read().decode().strip())
            server.shutdown()
            """
        )
    )
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, cwd=tmp_path, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:3] == [f'200 {{"item":{i}}}' for i in range(3)], out.stdout
    warnings = [line for line in out.stderr.splitlines() if "native core not available" in line]
    assert len(warnings) == 1, out.stderr
