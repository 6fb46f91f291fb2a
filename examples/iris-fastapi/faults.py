"""Fault switches for the iris example, so detection can be measured against a real API.

app.py wires this in only when ``IRIS_FAULTS=1``; without it the example has no such
endpoints. The fault set is switched over HTTP:

    PUT    /faults   {"latency_ms": [320, 480], "error_share": 0.3, "error_status": 503,
                      "cpu_burn": true, "leak_mib_per_s": 40,
                      "slow_share": 0.05, "slow_ms": [100, 150], "creep_ms_per_min": 1.0}
    GET    /faults   the fault set in force, and what it has done so far
    DELETE /faults   everything off

A PUT replaces the whole set: a field left out is off. What each fault does:

- ``latency_ms`` ``[lo, hi]``: every predict request first waits uniform(lo, hi) ms
  (an ``asyncio.sleep``: the event loop stays free, as with a slow downstream call).
- ``error_share`` (0..1): that share of predict requests answers ``error_status``
  (default 503) instead of a prediction.
- ``cpu_burn``: a child process spins, so the container sits at its CPU limit. A
  process, not a thread: a spinning Python thread would hold the GIL and starve the
  event loop, and the fault to show would be "the API stopped answering" instead.
  ``cpu_burners`` (default 1) spins more of them: one fills ``--cpus 1`` on an idle
  host, a second keeps the limit full when other work on the host takes turns on the
  cores (it also leaves the API less of the quota, so it slows down more).
- ``slow_share`` (0..1) and ``slow_ms`` ``[lo, hi]`` (default ``[100, 150]``): not a
  fault but a shape of normal, that share of predict requests waits uniform(lo, hi) ms, as
  the misses of a cache or a cold path do. A model like that has two modes of latency, and
  its p95 moves between them from minute to minute while nothing is wrong.
- ``creep_ms_per_min``: every predict request first waits that many ms for each minute
  since the fault set was PUT: a slowdown creeping up over the hours (a queue growing, a
  leak), slower than any minute-to-minute change.
- ``leak_mib_per_s``: memory is allocated, written and kept at that rate until the
  fault is cleared or the kernel's OOM killer ends the container.

``/faults`` is not model traffic: app.py tells the interceptor to leave it out.
"""

from __future__ import annotations

import asyncio
import atexit
import random
import subprocess
import sys
import threading
import time

from fastapi import APIRouter, FastAPI, HTTPException
from pydantic import BaseModel, ConfigDict, Field, field_validator

PATHS = ("/faults",)
MIB = 1024 * 1024
PAGE = 4096
# The leak grows in steps this often, so its rate is steady at the monitor's resolution.
LEAK_STEP_S = 0.1


class FaultSet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    latency_ms: tuple[float, float] | None = None
    error_share: float = Field(0.0, ge=0.0, le=1.0)
    error_status: int = Field(503, ge=400, le=599)
    cpu_burn: bool = False
    cpu_burners: int = Field(1, ge=1, le=16)
    leak_mib_per_s: float = Field(0.0, ge=0.0, le=4096.0)
    slow_share: float = Field(0.0, ge=0.0, le=1.0)
    slow_ms: tuple[float, float] = (100.0, 150.0)
    creep_ms_per_min: float = Field(0.0, ge=0.0)

    @field_validator("latency_ms", "slow_ms")
    @classmethod
    def _ordered(cls, v: tuple[float, float] | None) -> tuple[float, float] | None:
        if v is not None and not 0.0 <= v[0] <= v[1]:
            raise ValueError("[lo, hi] with 0 <= lo <= hi")
        return v


class Faults:
    """The fault set in force and the helpers (burner process, leak thread) it runs."""

    def __init__(self) -> None:
        self.current = FaultSet()
        self.since = time.monotonic()
        self._lock = threading.Lock()
        self._burners: list[subprocess.Popen] = []
        self._leak_stop: threading.Event | None = None
        self._leaked: list[bytearray] = []
        self.injected_errors = 0
        self.delayed = 0

    async def before_predict(self) -> None:
        """Called at the top of predict: the latency and error faults act here."""
        f = self.current
        if f.latency_ms is not None:
            self.delayed += 1
            await asyncio.sleep(random.uniform(*f.latency_ms) / 1000.0)
        if f.creep_ms_per_min > 0.0:
            minutes = (time.monotonic() - self.since) / 60.0
            await asyncio.sleep(f.creep_ms_per_min * minutes / 1000.0)
        if f.slow_share > 0.0 and random.random() < f.slow_share:
            await asyncio.sleep(random.uniform(*f.slow_ms) / 1000.0)
        if f.error_share > 0.0 and random.random() < f.error_share:
            self.injected_errors += 1
            raise HTTPException(f.error_status, "injected fault")

    def replace(self, new: FaultSet) -> None:
        with self._lock:
            self._set_burn(new.cpu_burners if new.cpu_burn else 0)
            self._set_leak(new.leak_mib_per_s)
            self.current = new
            self.since = time.monotonic()

    def state(self) -> dict:
        return {
            "faults": self.current.model_dump(),
            "burner_pids": [b.pid for b in self._burners if b.poll() is None],
            "leaked_mib": round(sum(len(b) for b in self._leaked) / MIB, 1),
            "delayed": self.delayed,
            "injected_errors": self.injected_errors,
        }

    def _set_burn(self, n: int) -> None:
        self._burners = [b for b in self._burners if b.poll() is None]
        while len(self._burners) < n:
            self._burners.append(subprocess.Popen([sys.executable, "-c", "while True: pass"]))
        while len(self._burners) > n:
            b = self._burners.pop()
            b.kill()
            b.wait()

    def _set_leak(self, mib_per_s: float) -> None:
        if self._leak_stop is not None:
            self._leak_stop.set()
            self._leak_stop = None
        # Clearing the fault gives the memory back: large blocks are unmapped when freed.
        self._leaked = []
        if mib_per_s > 0.0:
            stop = threading.Event()
            self._leak_stop = stop
            threading.Thread(target=self._leak, args=(mib_per_s, stop), name="iris-leak", daemon=True).start()

    def _leak(self, mib_per_s: float, stop: threading.Event) -> None:
        step = max(PAGE, int(mib_per_s * MIB * LEAK_STEP_S))
        kept = self._leaked
        next_at = time.monotonic()
        while not stop.is_set():
            block = bytearray(step)
            # A fresh block is the kernel's shared zero page until written: one write per
            # page makes it resident, which is what the memory limit counts.
            block[::PAGE] = b"\x01" * len(range(0, step, PAGE))
            kept.append(block)
            next_at += LEAK_STEP_S
            stop.wait(max(0.0, next_at - time.monotonic()))

    def close(self) -> None:
        self.replace(FaultSet())


def install(app: FastAPI) -> Faults:
    """Adds the /faults endpoints to ``app`` and returns the switches predict consults."""
    faults = Faults()
    router = APIRouter()

    @router.get("/faults")
    async def get_faults() -> dict:
        return faults.state()

    @router.put("/faults")
    async def put_faults(new: FaultSet) -> dict:
        # Starting or stopping a burner waits on a process: off the event loop.
        await asyncio.to_thread(faults.replace, new)
        return faults.state()

    @router.delete("/faults")
    async def delete_faults() -> dict:
        await asyncio.to_thread(faults.close)
        return faults.state()

    app.include_router(router)
    # A burner must not outlive the API when it runs outside a container.
    atexit.register(faults.close)
    return faults
