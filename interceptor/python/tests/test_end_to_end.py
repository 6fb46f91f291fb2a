"""End to end: the example app under load, watched by the real ``modelmon-tui --batch``.

What the monitor counts must equal what the client saw: every request, and the same
split between answers, client errors and server errors.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import httpx
import pytest
from conftest import UvicornThread
from test_example import load_example

ROOT = Path(__file__).resolve().parents[3]


def monitor_binary() -> Path:
    explicit = os.environ.get("MODELMON_TUI")
    if explicit:
        return Path(explicit)
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    return target / "debug" / "modelmon-tui"


class BatchMonitor:
    """``modelmon-tui --batch`` bound to one model (or to all, on its default queue, with
    ``model=None``); its JSON lines read on a thread."""

    def __init__(self, model: str | None, amqp: str | None = None, extra: tuple[str, ...] = ()) -> None:
        binary = monitor_binary()
        if not binary.exists():
            pytest.fail(f"{binary} is missing: build it with `cargo build` (scripts/test.sh does)")
        args = [str(binary), "--batch", "--interval", "200ms", *extra]
        if model is not None:
            args += ["--models", model]
        if amqp is not None:
            args += ["--amqp", amqp]
        # Its log is kept for the message of a failed wait: it says what the monitor was
        # doing (connecting, retrying, refusing bodies) when the line stopped changing.
        self._log = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env={**os.environ, "XDG_CONFIG_HOME": "/nonexistent"},
        )
        self.model = model
        self.last: dict | None = None
        self._cv = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cv:
                self.last = json.loads(line)
                self._cv.notify_all()

    def wait(self, what: str, pred, timeout: float = 20.0) -> dict:
        deadline = time.monotonic() + timeout
        with self._cv:
            while self.last is None or not pred(self.last):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"timed out waiting for {what}; last line: {self.last}\n"
                        f"the monitor's log ends:\n{self.log_tail()}"
                    )
                self._cv.wait(left)
            return self.last

    def log_tail(self, lines: int = 40) -> str:
        self._log.flush()
        self._log.seek(0)
        return "".join(self._log.readlines()[-lines:])

    def model_line(self, line: dict) -> dict | None:
        return next((m for m in line["models"] if m["model"] == self.model), None)

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self._log.close()


def test_monitor_counts_exactly_what_the_client_saw(model, monkeypatch):
    mon = BatchMonitor(model)
    try:
        mon.wait("the monitor to connect", lambda v: v["broker"]["state"] == "connected")
        example = load_example(monkeypatch, model)
        seen: dict[int, int] = {}
        good = {"instances": [[5.1, 3.5, 1.4, 0.2]]}
        bad = {"instances": [[5.1, 3.5]]}  # 422: the client's fault, not an error
        with UvicornThread(example.app) as url, httpx.Client(base_url=url) as client:
            for i in range(400):
                body = bad if i % 10 == 0 else good
                name = model if i % 25 else "not-this-model"  # 404 for an unknown model
                r = client.post(f"/v1/models/{name}/predict", json=body)
                seen[r.status_code] = seen.get(r.status_code, 0) + 1
            client.get("/health")  # excluded: never counted
        sent = sum(seen.values())
        line = mon.wait(
            f"{sent} requests counted",
            lambda v: (m := mon.model_line(v)) is not None and m["requests"] >= sent,
        )
        m = mon.model_line(line)
        assert m["requests"] == sent
        server_errors = sum(n for s, n in seen.items() if s >= 500)
        client_errors = sum(n for s, n in seen.items() if 400 <= s < 500)
        assert m["errors"] == server_errors
        assert m["error_rate"] == pytest.approx(server_errors / sent)
        assert m["client_errors"] == client_errors
        assert m["status"]["4xx"] == client_errors
        assert m["status"]["2xx"] == seen.get(200, 0)
        assert line["ingest"]["rejected"] == 0
        assert line["ingest"]["dropped_at_source"] == 0
    finally:
        mon.close()
