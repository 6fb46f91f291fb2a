"""ASGI middleware (FastAPI, Starlette and any ASGI 3 app)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, MutableMapping
from time import perf_counter_ns
from typing import Any

from .measures import RequestState, _current
from .sink import _Middleware

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# The route of a request no route matched (a 404). Never the raw path: ids in paths
# would give the monitor one series per id.
UNMATCHED = "<unmatched>"


class _Exchange(RequestState):
    """One request's state plus the ``receive``/``send`` wrappers that fill it in.

    Bound methods of one object rather than two closures per request: no cells to
    create, and the state the wrappers write is the object the handler's ``record()``
    reaches through the context variable.
    """

    __slots__ = ("app_receive", "app_send")

    async def receive(self) -> Message:
        message = await self.app_receive()
        kind = message["type"]
        if kind == "http.request":
            self.req_bytes += len(message.get("body", b""))
        elif kind == "http.disconnect" and not self.end_ns:
            # A disconnect after the last byte is just the connection closing.
            self.disconnected = True
        return message

    def send(self, message: Message) -> Awaitable[None]:
        # Not a coroutine: it returns the server's own awaitable, which saves a coroutine
        # per message. So the last byte's time is taken as it is handed to the server.
        kind = message["type"]
        if kind == "http.response.body":
            body = message.get("body", b"")
            self.resp_bytes += len(body)
            if not message.get("more_body", False):
                self.end_ns = perf_counter_ns()
            else:
                if body and not self.first_ns:
                    self.first_ns = perf_counter_ns()
                # Mid-stream is where a client that went away shows up (ASGI 2.4 servers
                # raise OSError from send); the rare streamed chunk can afford a coroutine.
                return self._send_chunk(message)
        elif kind == "http.response.start":
            self.status = message["status"]
        return self.app_send(message)

    async def _send_chunk(self, message: Message) -> None:
        try:
            await self.app_send(message)
        except OSError:
            self.disconnected = True
            raise


class ModelmonMiddleware(_Middleware):
    """Records one event per HTTP request: ``app.add_middleware(ModelmonMiddleware, model="iris")``.

    The clock stops when the last body message (``more_body`` false) has been handed to
    the server, so background tasks that run after the response are not counted as
    latency.
    """

    def __init__(self, app: ASGIApp, model: str | None = None, **options: Any) -> None:
        super().__init__(model, options, "asgi")
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._off or scope["type"] != "http" or scope["path"] in self._exclude:
            await self.app(scope, receive, send)
            return
        if self._rate < 1.0 and random.random() >= self._rate:
            await self.app(scope, receive, send)
            return
        r = _Exchange()
        r.app_receive = receive
        r.app_send = send
        # Never reset: the server runs each request in a task of its own, whose context
        # dies with it, and ``done`` turns later record() calls in a reused context into
        # no-ops. A reset would cost as much as the set.
        _current.set(r)
        t0 = perf_counter_ns()
        try:
            await self.app(scope, r.receive, r.send)
        except BaseException as e:
            r.done = True
            r.app_receive = r.app_send = None
            self._emit(scope, r, t0, e)
            raise
        r.done = True
        # The request's context holds ``r`` for as long as the server keeps the task's
        # context around, and with it the server's receive/send and all they reach.
        # Measured under uvicorn: unless they are dropped here, every thousand requests
        # run about thirty young-generation collections (none without the middleware),
        # and so, in time, full ones, which pause a model server for tens of ms.
        r.app_receive = r.app_send = None
        self._emit(scope, r, t0, None)

    def _emit(self, scope: Scope, r: RequestState, t0: int, exc: BaseException | None) -> None:
        sink = self._sink
        if sink is None:
            return
        try:
            end = r.end_ns
            status = r.status
            error = r.error
            if not end or exc is not None or not status:
                if _client_gone(exc) or (
                    not end and (r.disconnected or isinstance(exc, asyncio.CancelledError))
                ):
                    # The client went away before it had the last byte: nginx's 499,
                    # whatever the app said. (A gone-client error can follow the last
                    # byte's hand-over: the server then failed to send it.)
                    status = 499
                    exc = None
                elif exc is not None:
                    error = type(exc).__name__
                    if not end:
                        status = 500
                elif not status:
                    status = 500
                    error = error or "NoResponse"
                if not end:
                    end = perf_counter_ns()
            model = self._model if self._param is None else self._model_of(scope.get("path_params"))
            req_bytes = r.req_bytes
            if not req_bytes and scope["method"] not in ("GET", "HEAD"):
                req_bytes = _content_length(scope)
            # The handler's own set_route() first; else the router puts the matched
            # route in the scope once the app has run.
            template = r.route
            if template is None:
                try:
                    template = scope["route"].path_format
                except (KeyError, AttributeError):
                    template = None
                if not template or not isinstance(template, str):
                    template = _template_of(scope.get("route"))
            core = sink._core or sink.start()
            if core is None:
                sink.lost += 1
                return
            core.request(
                t0,
                end,
                r.first_ns,
                model,
                template,
                scope["method"],
                status,
                req_bytes,
                r.resp_bytes,
                error,
                self._version,
                r.ml,
            )
        except Exception:  # noqa: BLE001 - monitoring must never fail a request; count the loss
            sink.lost += 1


# What servers and frameworks raise when the client has gone: uvicorn's
# ``ClientDisconnected`` (an OSError) from ``send``, Starlette's ``ClientDisconnect`` when
# reading a body or streaming. By name, so neither is imported; a plain OSError is not one
# of them, since the app's own I/O raises those too.
_GONE = frozenset(("ClientDisconnected", "ClientDisconnect"))


def _client_gone(exc: BaseException | None) -> bool:
    return exc is not None and type(exc).__name__ in _GONE


def _template_of(route: Any) -> str:
    """The template of a route without a usable ``path_format``; never the raw path."""
    template = getattr(route, "path_format", None) or getattr(route, "path", None) if route else None
    return template if isinstance(template, str) and template else UNMATCHED


def _content_length(scope: Scope) -> int:
    """The declared body size, for apps that never read the body they were sent."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0
