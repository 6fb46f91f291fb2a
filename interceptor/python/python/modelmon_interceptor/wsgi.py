"""WSGI middleware (Flask and any WSGI app): ``app.wsgi_app = ModelmonWSGIMiddleware(app.wsgi_app, model="iris")``."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator
from time import perf_counter_ns, time_ns
from typing import Any

from .asgi import UNMATCHED, _client_gone
from .measures import RequestState, _current
from .sink import _Middleware

WSGIApp = Callable[[dict, Callable[..., Any]], Iterable[bytes]]


def _flask_app_of(app: Any) -> Any:
    """The Flask app whose ``wsgi_app`` we wrap, if that is what we wrap."""
    owner = getattr(app, "__self__", None)
    if owner is not None and hasattr(owner, "url_map") and hasattr(owner, "handle_exception"):
        return owner
    if hasattr(app, "url_map") and hasattr(app, "handle_exception"):
        return app
    return None


def _on_flask_exception(sender: Any, exception: BaseException, **_: Any) -> None:
    # Flask turns an exception into its own 500 response, so the middleware never sees it
    # raised; this signal is where the exception class is still known.
    state = _current.get()
    if state is not None:
        state.error = type(exception).__name__


def _on_flask_teardown(sender: Any, **_: Any) -> None:
    # Flask clears environ["werkzeug.request"] when it pops the request context, so the
    # router's answer is copied here, at teardown: after the view ran, before the pop.
    state = _current.get()
    if state is None:
        return
    from flask import request

    rule = request.url_rule
    # A route the view named itself (set_route) wins.
    if rule is not None and state.route is None:
        state.route = rule.rule
    state.params = request.view_args


class ModelmonWSGIMiddleware(_Middleware):
    """Records one event per request of a WSGI app.

    The clock stops when the server has taken the last chunk of the body (the iterator is
    exhausted), and the event is sent from ``close()``, which every WSGI server calls.
    """

    def __init__(
        self, app: WSGIApp, model: str | None = None, *, flask_app: Any = None, **options: Any
    ) -> None:
        super().__init__(model, options, "wsgi")
        self.app = app
        # A wsgi_app already wrapped (ProxyFix behind nginx) hides its Flask app; then
        # only the caller knows it.
        flask_app = flask_app if flask_app is not None else _flask_app_of(app)
        if flask_app is not None and not self._off:
            from flask import got_request_exception, request_tearing_down

            got_request_exception.connect(_on_flask_exception, flask_app, weak=False)
            request_tearing_down.connect(_on_flask_teardown, flask_app, weak=False)

    def __call__(self, environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        if self._off or environ.get("PATH_INFO", "") in self._exclude:
            return self.app(environ, start_response)
        if self._rate < 1.0 and random.random() >= self._rate:
            return self.app(environ, start_response)
        ts = time_ns() // 1000
        t0 = perf_counter_ns()
        r = RequestState()

        def start_response_wrapper(status: str, headers: list, exc_info: Any = None) -> Any:
            try:
                r.status = int(status[:3])
            except ValueError:
                r.status = 500
            return start_response(status, headers, exc_info)

        token = _current.set(r)
        try:
            result = self.app(environ, start_response_wrapper)
        except BaseException as e:
            _current.reset(token)
            # Not any OSError: the app's own calls to a dead backend raise those too.
            if _client_gone(e):
                r.disconnected = True
            self._emit(environ, r, ts, t0, e)
            raise
        _current.reset(token)
        return _Body(result, self, environ, r, ts, t0)

    def _emit(self, environ: dict, r: RequestState, ts: int, t0: int, exc: BaseException | None) -> None:
        sink = self._sink
        if sink is None:
            return
        try:
            end = r.end_ns or perf_counter_ns()
            status = r.status
            error = r.error
            if not r.end_ns and r.disconnected:
                status = 499
            elif exc is not None:
                error = type(exc).__name__
                if not r.end_ns:
                    status = 500
            elif not status:
                status = 500
                error = error or "NoResponse"
            route = r.route
            params = r.params
            if route is None:
                # Plain werkzeug apps keep their request object in the environ; its
                # url_rule is what the router matched.
                request = environ.get("werkzeug.request")
                rule = getattr(request, "url_rule", None)
                route = rule.rule if rule is not None else UNMATCHED
                params = getattr(request, "view_args", None)
            model = self._model_of(params)
            req_bytes = environ.get("CONTENT_LENGTH")
            try:
                req = int(req_bytes) if req_bytes else None
            except ValueError:
                req = None
            core = sink.core or sink.start()
            if core is None:
                sink.lost += 1
                return
            core.record(
                ts,
                model,
                route,
                environ.get("REQUEST_METHOD", "GET"),
                status,
                (end - t0) // 1000,
                (r.first_ns - t0) // 1000 if r.first_ns else None,
                req,
                r.resp_bytes,
                error,
                self._version,
                r.ml,
            )
        except Exception:  # noqa: BLE001 - monitoring must never fail a request
            sink.lost += 1


class _Body:
    """Wraps the app's response iterable to time the last byte and count the bytes."""

    __slots__ = ("_done", "_environ", "_mw", "_r", "_result", "_t0", "_ts")

    def __init__(
        self, result: Iterable[bytes], mw: ModelmonWSGIMiddleware, environ: dict, r: RequestState, ts: int, t0: int
    ) -> None:
        self._result = result
        self._mw = mw
        self._environ = environ
        self._r = r
        self._ts = ts
        self._t0 = t0
        self._done = False

    def __iter__(self) -> Iterator[bytes]:
        r = self._r
        handed_first = 0
        chunks = iter(self._result)
        try:
            while True:
                # A streamed body is the app's generator running after the app returned:
                # it gets its request back while it makes a chunk, so that record() from
                # inside it (tokens counted as they are streamed) reaches the event.
                token = _current.set(r)
                try:
                    chunk = next(chunks)
                except StopIteration:
                    break
                finally:
                    _current.reset(token)
                if handed_first and not r.first_ns:
                    # A chunk after the first non-empty one means a streamed body: that
                    # one's hand-over is the TTFB. Empty chunks before it (SSE endpoints
                    # yield one to get the headers out early) are not the first byte.
                    r.first_ns = handed_first
                yield chunk
                if chunk and not handed_first:
                    handed_first = perf_counter_ns()
                r.resp_bytes += len(chunk)
            r.end_ns = perf_counter_ns()
        except GeneratorExit:
            # The server stopped asking for chunks: the client went away mid-body.
            r.disconnected = True
            raise
        except BaseException as e:
            # Only the app's generator raises here (the server's own write errors never
            # come back through it), so an OSError is the app's failure, not the
            # client's; werkzeug's ClientDisconnected from reading the body is the client's.
            if _client_gone(e):
                r.disconnected = True
            self._finish(e)
            raise

    def close(self) -> None:
        try:
            close = getattr(self._result, "close", None)
            if close is not None:
                # Closing a generator runs its ``finally`` blocks: they may record() too.
                token = _current.set(self._r)
                try:
                    close()
                finally:
                    _current.reset(token)
        finally:
            self._finish(None)

    def _finish(self, exc: BaseException | None) -> None:
        if self._done:
            return
        self._done = True
        r = self._r
        if not r.end_ns and exc is None and not r.disconnected:
            # close() without a full iteration: the server gave up on the body.
            r.disconnected = True
        self._mw._emit(self._environ, r, self._ts, self._t0, exc)
