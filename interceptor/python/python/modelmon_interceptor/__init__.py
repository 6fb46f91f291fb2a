"""modelmon interceptor: reports every request of a Python model API to modelmon.

    from modelmon_interceptor import instrument
    instrument(app, model="iris")

Events go to RabbitMQ (wire contract v1) from a native publisher thread that never
takes the GIL; see docs/python.md.
"""

from __future__ import annotations

from typing import Any

from .asgi import ModelmonMiddleware
from .instrument import instrument
from .measures import mark_error, record, set_route
from .settings import Settings
from .sink import all_sinks
from .wsgi import ModelmonWSGIMiddleware

__all__ = [
    "ModelmonMiddleware",
    "ModelmonWSGIMiddleware",
    "Settings",
    "flush",
    "instrument",
    "mark_error",
    "record",
    "set_route",
    "stats",
]
__version__ = "0.1.0"


def stats() -> list[dict[str, Any]]:
    """Counters of every publisher of this process (one per distinct broker setting)."""
    return [s.stats() for s in all_sinks()]


def flush(timeout_s: float = 5.0) -> bool:
    """Publishes what is buffered; True when, in time, all of it was delivered (confirmed
    and routed to a queue) or counted as dropped."""
    # Every sink gets its flush, even after one has failed.
    results = [s.flush(timeout_s) for s in all_sinks()]
    return all(results)
