"""One native publisher per process, started lazily and restarted after a fork.

gunicorn ``--preload`` imports the app (and so builds the middleware) in the master, then
forks workers. A publishing thread does not survive a fork, so each worker must start its
own publisher after it; starting on the first recorded request does exactly that, and a
fork hook drops whatever the parent had.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import weakref
from collections.abc import Mapping
from typing import Any

from .settings import Exclusions, Settings, default_instance, is_valid_model_name

log = logging.getLogger("modelmon_interceptor")

try:
    from . import _core
except ImportError as e:  # a source checkout without the built extension
    _core = None
    _IMPORT_ERROR: ImportError | None = e
else:
    _IMPORT_ERROR = None


class Sink:
    """Hands events to this process's native publisher, never raising into the app."""

    def __init__(self, settings: Settings, kind: str) -> None:
        self._settings = settings
        self._kind = kind
        self._core: Any = None
        self._lock = threading.Lock()
        self._failed = False
        # Events the Python side could not hand over (native call raised); kept so that
        # nothing is lost silently.
        self.lost = 0
        _SINKS.add(self)

    @property
    def core(self) -> Any:
        """This process's native core, or None before the first event (and after a fork)."""
        return self._core

    def start(self) -> Any:
        """Starts this process's core on first use; None when it cannot run here."""
        return self._start()

    def record(
        self,
        ts: int,
        model: str,
        route: str,
        method: str,
        status: int,
        duration_us: int,
        ttfb_us: int | None,
        req_bytes: int | None,
        resp_bytes: int | None,
        error: str | None,
        version: str | None,
        ml: dict[str, float] | None,
    ) -> None:
        """One event, never raising (the middlewares inline this on their hot path)."""
        core = self._core or self._start()
        if core is None:
            self.lost += 1
            return
        try:
            core.record(
                ts, model, route, method, status, duration_us, ttfb_us, req_bytes, resp_bytes, error, version, ml
            )
        except Exception:  # noqa: BLE001 - never raise into the app; the loss is counted
            self.lost += 1

    def _start(self) -> Any:
        if self._failed:
            return None
        with self._lock:
            if self._core is not None:
                return self._core
            if _core is None:
                self._failed = True
                log.warning("modelmon: native core not available (%s); requests are not recorded", _IMPORT_ERROR)
                return None
            s = self._settings
            try:
                core = _core.Core(
                    s.amqp_url,
                    self._kind,
                    s.instance or default_instance(),
                    s.max_batch_events,
                    s.max_batch_delay_ms,
                    s.buffer_events,
                    s.persistent,
                )
            except Exception:
                self._failed = True
                log.warning("modelmon: could not start the publisher; requests are not recorded", exc_info=True)
                return None
            self._core = core
            return core

    def stats(self) -> dict[str, Any]:
        """The native publisher's counters in this process (zeros before the first request)."""
        core = self._core
        if core is None:
            out: dict[str, Any] = {
                "recorded": 0,
                "published_events": 0,
                "published_batches": 0,
                "dropped": 0,
                "returned": 0,
                "unrouted": 0,
                "held": 0,
                "connections": 0,
                "state": "idle",
                "last_error": None,
                "blocked": False,
                "sanitised": 0,
            }
        else:
            out = core.stats()
        out["lost_in_python"] = self.lost
        out["pid"] = os.getpid()
        return out

    def flush(self, timeout_s: float = 5.0) -> bool:
        core = self._core
        return True if core is None else bool(core.flush(timeout_s))

    def shutdown(self, timeout_s: float = 2.0) -> None:
        with self._lock:
            core, self._core = self._core, None
            # A stopped publisher stays stopped; a later request would start a new one.
        if core is not None:
            core.shutdown(timeout_s)

    def _after_fork_in_child(self) -> None:
        core, self._core = self._core, None
        if core is not None:
            core.abandon()
            # Never dropped either: its Rust side belongs to threads of the parent.
            _ABANDONED.append(core)
        # The parent may have held the lock at the fork; this child starts afresh.
        self._lock = threading.Lock()
        self._failed = False


_SINKS: weakref.WeakSet[Sink] = weakref.WeakSet()
_ABANDONED: list[Any] = []
_SHARED: dict[tuple[Any, ...], Sink] = {}
_SHARED_LOCK = threading.Lock()


def sink_for(settings: Settings, kind: str) -> Sink:
    """The process's sink for these broker settings: apps that share a broker share a publisher."""
    key = (
        kind,
        settings.amqp_url,
        settings.instance,
        settings.max_batch_events,
        settings.max_batch_delay_ms,
        settings.buffer_events,
        settings.persistent,
    )
    with _SHARED_LOCK:
        sink = _SHARED.get(key)
        if sink is None:
            sink = _SHARED[key] = Sink(settings, kind)
        return sink


class _Middleware:
    """What the ASGI and the WSGI middleware share: their settings, resolved once (kept on
    the instance in the form the hot path reads them), the process's sink, and the model a
    request is counted under."""

    def __init__(self, model: str | None, options: dict[str, Any], kind: str) -> None:
        self.settings = s = Settings.resolve(model, **options)
        self._off = s.disabled
        self._exclude = Exclusions(s.exclude)
        self._rate = s.sample_rate
        self._model = s.model
        self._version = s.version
        self._param = s.model_from_path_param
        self._sink: Sink | None = None if s.disabled else sink_for(s, kind)

    def _model_of(self, params: Mapping[str, Any] | None) -> str:
        """The model named by the request's path parameter ``model_from_path_param`` when
        it is a valid name, else the configured one."""
        if self._param is not None and params:
            candidate = params.get(self._param)
            if isinstance(candidate, str) and is_valid_model_name(candidate):
                return candidate
        return self._model


def all_sinks() -> list[Sink]:
    return list(_SINKS)


def _reset_after_fork() -> None:
    global _SHARED_LOCK
    _SHARED_LOCK = threading.Lock()
    for sink in list(_SINKS):
        sink._after_fork_in_child()


def _flush_at_exit() -> None:
    for sink in list(_SINKS):
        try:
            sink.shutdown(sink._settings.exit_flush_timeout_s)
        except Exception:
            log.debug("modelmon: shutdown at exit failed", exc_info=True)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
atexit.register(_flush_at_exit)
