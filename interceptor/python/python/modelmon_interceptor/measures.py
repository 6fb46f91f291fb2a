"""Per-request state, reachable from inside a handler through a context variable."""

from __future__ import annotations

from contextvars import ContextVar


class RequestState:
    """What the middleware learns about one request while it runs.

    Handlers see this object through ``_current`` and add to ``ml``; they never replace
    it, so what a sync handler records in a worker thread (which runs in a copy of the
    request's context) still reaches the middleware.
    """

    # Slots: every field is read on every request, and a slot is the cheapest attribute
    # there is to read and write.
    __slots__ = (
        "disconnected",
        "done",
        "end_ns",
        "error",
        "first_ns",
        "ml",
        "params",
        "req_bytes",
        "resp_bytes",
        "route",
        "status",
    )

    def __init__(self) -> None:
        self.status = 0
        self.req_bytes = 0
        self.resp_bytes = 0
        self.first_ns = 0
        self.end_ns = 0
        self.disconnected = False
        self.error: str | None = None
        self.ml: dict[str, float] | None = None
        # Set by framework hooks that know the router's answer (Flask), else None.
        self.route: str | None = None
        self.params: dict[str, object] | None = None
        # Set once the event is built: later record() calls in the same context are no-ops.
        self.done = False


_current: ContextVar[RequestState | None] = ContextVar("modelmon_request", default=None)


def record(**measures: float) -> bool:
    """Adds model measures (``queue_us=…``, ``tokens_out=…``) to the current request's event.

    Keys must match ``[a-z0-9_]{1,64}`` and values be finite numbers; the first 16 valid
    measures of a request are kept. Anything else is dropped when the event is built (in
    the native core, where checking costs nothing worth measuring) rather than raised,
    because a monitoring mistake must never fail a prediction. Returns False when no
    request is being recorded here.
    """
    state = _current.get()
    if state is None or state.done:
        return False
    ml = state.ml
    if ml is None:
        state.ml = measures
    else:
        ml.update(measures)
    return True


def set_route(template: str) -> bool:
    """Names the current request's route, for frameworks whose router has no templates
    (a plain ASGI or WSGI app, a hand-written dispatcher): ``set_route("/v1/items/{id}")``.

    Use a template, never the raw path: ids in paths would give the monitor one series per
    id. It wins over what the router says. Returns False when no request is being recorded
    here or ``template`` is empty.
    """
    state = _current.get()
    if state is None or state.done or not template:
        return False
    state.route = template
    return True


def mark_error(kind: str) -> bool:
    """Marks the current request as failed with ``kind`` even though it answered normally.

    For handlers that turn a failure into a normal-looking response (a fallback
    prediction, say) but still want it counted as an error.
    """
    state = _current.get()
    if state is None or state.done or not kind:
        return False
    state.error = kind
    return True
