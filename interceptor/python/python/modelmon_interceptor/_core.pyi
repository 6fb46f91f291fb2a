"""Types of the native core, ``modelmon_interceptor._core`` (Rust, PyO3: interceptor/python/src/lib.rs).

The middlewares call it; applications use ``instrument``, ``record``, ``stats`` and
``flush`` from the package instead.
"""

from typing import Any, final

__all__ = [
    "CONTENT_TYPE",
    "EXCHANGE",
    "MAX_MODEL_BYTES",
    "MAX_MODEL_CHARS",
    "MAX_TEXT_CHARS",
    "MESSAGE_TYPE",
    "ROUTING_PREFIX",
    "Core",
    "__version__",
    "is_clean_text",
    "is_valid_model_name",
    "rust_decode",
]

__version__: str

# The wire contract's names and limits, from the Rust crate that defines them.
EXCHANGE: str
MESSAGE_TYPE: str
CONTENT_TYPE: str
ROUTING_PREFIX: str
MAX_MODEL_CHARS: int
MAX_MODEL_BYTES: int
MAX_TEXT_CHARS: int

@final
class Core:
    """A running publisher for one process: events go into a bounded buffer and a Rust
    thread batches and publishes them to RabbitMQ without the GIL."""

    def __new__(
        cls,
        amqp_url: str,
        source_kind: str,
        instance: str,
        max_batch_events: int = 500,
        max_batch_delay_ms: int = 200,
        buffer_events: int = 65_536,
        persistent: bool = False,
        app_id: str | None = None,
    ) -> Core:
        """Starts the publisher. ``amqp_url`` is one URL or a cluster's comma-separated
        nodes; ``source_kind`` is ``"asgi"`` or ``"wsgi"``. Raises ``ValueError`` when
        ``max_batch_events`` or ``buffer_events`` is 0."""

    @property
    def instance(self) -> str:
        """Who serves the requests, as it goes into every event (cleaned)."""

    def record(
        self,
        ts: int,
        model: str,
        route: str,
        method: str,
        status: int,
        duration_us: int,
        ttfb_us: int | None = None,
        req_bytes: int | None = None,
        resp_bytes: int | None = None,
        error: str | None = None,
        version: str | None = None,
        ml: dict[str, float] | None = None,
    ) -> None:
        """Queues one request's event (``ts`` in Unix µs); never blocks: a full buffer
        drops and counts it. Measures in ``ml`` that are not a valid name with a finite
        number are left out."""

    def request(
        self,
        start_ns: int,
        end_ns: int,
        first_ns: int,
        model: str,
        route: str,
        method: str,
        status: int,
        req_bytes: int | None,
        resp_bytes: int | None,
        error: str | None,
        version: str | None,
        ml: dict[str, float] | None,
    ) -> None:
        """``record`` for a request timed with ``time.perf_counter_ns()``: its start, its
        last byte, and its first byte when streamed (else 0)."""

    def stats(self) -> dict[str, Any]:
        """This publisher's counters: ``recorded``, ``published_events``,
        ``published_batches``, ``dropped``, ``returned``, ``unrouted``, ``held``,
        ``connections``, ``sanitised`` (ints), ``state`` (``"connected"``,
        ``"connecting"`` or ``"down"``), ``node`` and ``last_error`` (str or None),
        ``blocked`` (bool)."""

    def flush(self, timeout_s: float) -> bool:
        """Publishes what is buffered, the GIL released meanwhile; True when, in time,
        all of it was delivered or counted as dropped."""

    def shutdown(self, timeout_s: float) -> None:
        """Flushes for at most ``timeout_s`` and stops the publishing thread."""

    def abandon(self) -> None:
        """In a forked child: lets go of the parent's publisher without touching it."""

def rust_decode(
    body: bytes, routing_model: str | None, now_us: int
) -> tuple[str | None, int, int, dict[str, int], list[str]]:
    """What the monitor's Rust decoder makes of a batch body: ``(batch_error, accepted,
    dropped, {reason: count}, details)``, ``details`` being the refused batch's sentence or
    one ``"reason: sentence"`` per rejected event. For tests."""

def is_valid_model_name(s: str) -> bool:
    """Whether ``s`` may name a model: 1..=128 characters and at most 248 bytes of UTF-8
    (its routing key must fit AMQP's 255), no control character (False for a string that
    is not valid UTF-8, such as one with a lone surrogate)."""

def is_clean_text(s: str, max_chars: int) -> bool:
    """Whether ``s`` is 1..=``max_chars`` characters with no control character (False for a
    string that is not valid UTF-8)."""
