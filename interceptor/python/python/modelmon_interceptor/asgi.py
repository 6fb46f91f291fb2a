"""ASGI middleware (FastAPI, Starlette and any ASGI 3 app)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, MutableMapping
from time import perf_counter_ns, time_ns
from typing import Any

from .contract import is_valid_model_name
from .measures import RequestState, _current
from .settings import Settings
from .sink import Sink, sink_for

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# The route of a request no route matched (a 404). Never the raw path: ids in paths
# would give the monitor one series per id.
UNMATCHED = "<unmatched>"


class ModelmonMiddleware:
    """Records one event per HTTP request: ``app.add_middleware(ModelmonMiddleware, model="iris")``.

    The clock stops when the last body message (``more_body`` false) has been handed to
    the server, so background tasks that run after the response are not counted as
    latency.
    """

    def __init__(self, app: ASGIApp, model: str | None = None, **options: Any) -> None:
        self.app = app
        self.settings = s = Settings.resolve(model, **options)
        self._off = s.disabled
        self._exclude = s.exclude
        self._rate = s.sample_rate
        self._model = s.model
        self._version = s.version
        self._param = s.model_from_path_param
        self._sink: Sink | None = None if s.disabled else sink_for(s, "asgi")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._off or scope["type"] != "http" or scope["path"] in self._exclude:
            await self.app(scope, receive, send)
            return
        if self._rate < 1.0 and random.random() >= self._rate:
            await self.app(scope, receive, send)
            return
        ts = time_ns() // 1000
        t0 = perf_counter_ns()
        r = RequestState()
        token = _current.set(r)

        async def receive_wrapper() -> Message:
            message = await receive()
            kind = message["type"]
            if kind == "http.request":
                r.req_bytes += len(message.get("body", b""))
            elif kind == "http.disconnect" and not r.end_ns:
                # A disconnect after the last byte is just the connection closing.
                r.disconnected = True
            return message

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.body":
                body = message.get("body", b"")
                more = message.get("more_body", False)
                try:
                    await send(message)
                except OSError:
                    r.disconnected = True
                    raise
                now = perf_counter_ns()
                r.resp_bytes += len(body)
                if more:
                    if body and not r.first_ns:
                        r.first_ns = now
                else:
                    r.end_ns = now
                return
            if message["type"] == "http.response.start":
                r.status = message["status"]
            await send(message)

        exc: BaseException | None = None
        try:
            await self.app(scope, receive_wrapper, send_wrapper)
        except BaseException as e:
            exc = e
            raise
        finally:
            _current.reset(token)
            self._emit(scope, r, ts, t0, exc)

    def _emit(self, scope: Scope, r: RequestState, ts: int, t0: int, exc: BaseException | None) -> None:
        sink = self._sink
        if sink is None:
            return
        try:
            end = r.end_ns or perf_counter_ns()
            status = r.status
            error = r.error
            if not r.end_ns and (r.disconnected or isinstance(exc, asyncio.CancelledError)):
                # The client went away before the last byte: nginx's 499, whatever the app said.
                status = 499
            elif exc is not None:
                error = type(exc).__name__
                if not r.end_ns:
                    status = 500
            elif not status:
                status = 500
                error = error or "NoResponse"
            model = self._model
            if self._param is not None:
                params = scope.get("path_params")
                if params:
                    candidate = params.get(self._param)
                    if isinstance(candidate, str) and is_valid_model_name(candidate):
                        model = candidate
            req_bytes = r.req_bytes
            if not req_bytes and scope["method"] not in ("GET", "HEAD"):
                req_bytes = _content_length(scope)
            route = scope.get("route")
            template = getattr(route, "path_format", None) or getattr(route, "path", None) if route else None
            core = sink.core or sink.start()
            if core is None:
                sink.lost += 1
                return
            core.record(
                ts,
                model,
                template if isinstance(template, str) and template else UNMATCHED,
                scope["method"],
                status,
                (end - t0) // 1000,
                (r.first_ns - t0) // 1000 if r.first_ns else None,
                req_bytes,
                r.resp_bytes,
                error,
                self._version,
                r.ml,
            )
        except Exception:  # noqa: BLE001 - monitoring must never fail a request; count the loss
            sink.lost += 1


def _content_length(scope: Scope) -> int:
    """The declared body size, for apps that never read the body they were sent."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0
