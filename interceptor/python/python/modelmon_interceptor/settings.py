"""Settings: keyword arguments first, then MODELMON_* environment variables, then defaults."""

from __future__ import annotations

import logging
import operator
import os
import socket
from dataclasses import dataclass, field
from typing import TypeVar

log = logging.getLogger("modelmon_interceptor")

try:
    # The contract's text rules come from the Rust crate that defines them (through the
    # native core), so the package holds no copy of them. Named twice: the sink takes
    # is_valid_model_name from here, with or without the core.
    from ._core import MAX_TEXT_CHARS, is_clean_text
    from ._core import is_valid_model_name as is_valid_model_name
except ImportError:
    # Without the core nothing is recorded (the sink warns once), so no name reaches the
    # contract; the app must still start.
    MAX_TEXT_CHARS = 256

    def is_clean_text(s: str, max_chars: int) -> bool:
        return True

    def is_valid_model_name(s: str) -> bool:
        return True


DEFAULT_AMQP_URL = "amqp://127.0.0.1:5672/%2f"
# The same list as modelmon-proxy's, pinned by tests/exclusions/paths.json.
DEFAULT_EXCLUDE = ("/health", "/healthz", "/livez", "/metrics", "/ready", "/readyz")
_FALSE = ("", "0", "false", "no", "off")


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in _FALSE


# Once per variable and value: the middleware is built once per app, gunicorn workers
# each build theirs, and one line per process is enough to notice a typo.
_WARNED: set[tuple[str, str]] = set()
_N = TypeVar("_N", int, float)


def _env_default(name: str, raw: str, need: str, default: _N) -> _N:
    # A typo in a monitoring setting must not stop the model API from starting, nor
    # turn recording off: the default is used instead, and said.
    if (name, raw) not in _WARNED:
        _WARNED.add((name, raw))
        log.warning("modelmon: %s=%r ignored: it must be %s; using the default, %s", name, raw, need, default)
    return default


def _env_float(name: str, default: float, least: float, most: float) -> float:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    # NaN, a typo's stand-in included, fails the test.
    if least <= value <= most:
        return value
    return _env_default(name, raw, f"a number within {least:g}..{most:g}", default)


# The native core takes the publisher's counts as unsigned 64-bit numbers.
_U64_MAX = 2**64 - 1


def _count(arg: str, value: int | None, name: str, default: int, least: int) -> int:
    """A count of the publisher's: the argument, refused when out of range (the app is
    being written, so say so); else the variable, falling back to the default."""
    need = f"a whole number, at least {least}"
    if value is not None:
        try:
            number = operator.index(value)
        except TypeError:
            number = -1
        if not least <= number <= _U64_MAX:
            raise ValueError(f"modelmon: {arg} {value!r} must be {need}")
        return number
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        number = int(raw)
    except ValueError:
        number = -1
    if least <= number <= _U64_MAX:
        return number
    return _env_default(name, raw, need, default)


def _normalise(path: str) -> str:
    """``/a//b/`` → ``/a/b``; the root stays ``/``."""
    return "/" + "/".join(seg for seg in path.split("/") if seg)


class Exclusions:
    """Excluded request paths, read as modelmon-proxy reads them: an entry is one path (a
    trailing slash and doubled slashes do not matter), or ``/prefix/*`` for ``/prefix``
    and everything below it. ``path in exclusions`` is checked on every request, so the
    usual path (already normal, not excluded) costs one set lookup and two string tests.
    """

    __slots__ = ("_exact", "_prefixes")

    def __init__(self, entries: frozenset[str] | tuple[str, ...] | list[str]) -> None:
        exact: set[str] = set()
        prefixes: list[str] = []
        for entry in entries:
            entry = entry.strip()
            if entry.endswith("/*"):
                prefixes.append(_normalise(entry[:-2]))
            elif entry:
                exact.add(_normalise(entry))
        self._exact = frozenset(exact)
        self._prefixes = tuple(prefixes)

    def __contains__(self, path: object) -> bool:
        if not isinstance(path, str):
            return False
        if path in self._exact:
            return True
        if "//" in path or (len(path) > 1 and path.endswith("/")):
            path = _normalise(path)
            if path in self._exact:
                return True
        for prefix in self._prefixes:
            if prefix == "/" or path == prefix or path.startswith(prefix + "/"):
                return True
        return False


def default_instance() -> str:
    """Who serves the requests: $HOSTNAME (a container's id under Docker), else host:pid."""
    host = os.environ.get("HOSTNAME", "").strip()
    if host and is_clean_text(host, MAX_TEXT_CHARS):
        return host
    name = f"{socket.gethostname()}:{os.getpid()}"
    return name if is_clean_text(name, MAX_TEXT_CHARS) else f"pid:{os.getpid()}"


@dataclass
class Settings:
    model: str = "default"
    version: str | None = None
    amqp_url: str = DEFAULT_AMQP_URL
    disabled: bool = False
    exclude: frozenset[str] = field(default_factory=lambda: frozenset(DEFAULT_EXCLUDE))
    sample_rate: float = 1.0
    model_from_path_param: str | None = None
    # None means "work it out per process", because host:pid changes across a fork.
    instance: str | None = None
    max_batch_events: int = 500
    max_batch_delay_ms: int = 200
    buffer_events: int = 65_536
    persistent: bool = False
    exit_flush_timeout_s: float = 2.0

    @classmethod
    def resolve(
        cls,
        model: str | None = None,
        *,
        version: str | None = None,
        amqp_url: str | None = None,
        disabled: bool | None = None,
        exclude: list[str] | tuple[str, ...] | frozenset[str] | None = None,
        sample_rate: float | None = None,
        model_from_path_param: str | None = None,
        instance: str | None = None,
        max_batch_events: int | None = None,
        max_batch_delay_ms: int | None = None,
        buffer_events: int | None = None,
        persistent: bool | None = None,
    ) -> Settings:
        env = os.environ
        model = model or env.get("MODELMON_MODEL") or "default"
        if not is_valid_model_name(model):
            raise ValueError(
                f"modelmon: model name {model!r} must be 1..128 characters and at most 248 bytes, no control characters"
            )
        version = version or env.get("MODELMON_MODEL_VERSION") or None
        if version is not None and not is_clean_text(version, MAX_TEXT_CHARS):
            raise ValueError(f"modelmon: version {version!r} must be 1..256 characters, no control characters")
        if exclude is None:
            raw = env.get("MODELMON_EXCLUDE")
            exclude = [p.strip() for p in raw.split(",") if p.strip()] if raw is not None else DEFAULT_EXCLUDE
        if sample_rate is None:
            rate = _env_float("MODELMON_SAMPLE_RATE", 1.0, 0.0, 1.0)
        elif 0.0 <= sample_rate <= 1.0:
            rate = sample_rate
        else:
            raise ValueError(f"modelmon: sample_rate {sample_rate} must be within 0..1")
        return cls(
            model=model,
            version=version,
            amqp_url=amqp_url or env.get("MODELMON_AMQP_URL") or DEFAULT_AMQP_URL,
            disabled=disabled if disabled is not None else _env_flag("MODELMON_DISABLED"),
            exclude=frozenset(exclude),
            sample_rate=rate,
            model_from_path_param=model_from_path_param or env.get("MODELMON_MODEL_FROM_PATH_PARAM") or None,
            instance=instance or None,
            max_batch_events=_count("max_batch_events", max_batch_events, "MODELMON_MAX_BATCH_EVENTS", 500, 1),
            # 0 is meaningful: a batch goes out as soon as the publisher has its events.
            max_batch_delay_ms=_count(
                "max_batch_delay_ms", max_batch_delay_ms, "MODELMON_MAX_BATCH_DELAY_MS", 200, 0
            ),
            buffer_events=_count("buffer_events", buffer_events, "MODELMON_BUFFER_EVENTS", 65_536, 1),
            persistent=persistent if persistent is not None else _env_flag("MODELMON_PERSISTENT"),
        )
