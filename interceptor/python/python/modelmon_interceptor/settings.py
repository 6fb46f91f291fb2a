"""Settings: keyword arguments first, then MODELMON_* environment variables, then defaults."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

# The contract's text rules come from the Rust crate that defines them (through the
# native core), so the package holds no copy of them.
from ._core import MAX_TEXT_CHARS, is_clean_text, is_valid_model_name

DEFAULT_AMQP_URL = "amqp://127.0.0.1:5672/%2f"
# The same list as modelmon-proxy's, pinned by tests/exclusions/paths.json.
DEFAULT_EXCLUDE = ("/health", "/healthz", "/livez", "/metrics", "/ready", "/readyz")
_FALSE = ("", "0", "false", "no", "off")


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in _FALSE


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        return float(raw)
    except ValueError:
        # A typo in a monitoring setting must not stop the model API from starting.
        return default


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        return int(raw)
    except ValueError:
        return default


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
            raise ValueError(f"modelmon: model name {model!r} must be 1..128 characters, no control characters")
        version = version or env.get("MODELMON_MODEL_VERSION") or None
        if version is not None and not is_clean_text(version, MAX_TEXT_CHARS):
            raise ValueError(f"modelmon: version {version!r} must be 1..256 characters, no control characters")
        if exclude is None:
            raw = env.get("MODELMON_EXCLUDE")
            exclude = [p.strip() for p in raw.split(",") if p.strip()] if raw is not None else DEFAULT_EXCLUDE
        rate = sample_rate if sample_rate is not None else _env_float("MODELMON_SAMPLE_RATE", 1.0)
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"modelmon: sample_rate {rate} must be within 0..1")
        return cls(
            model=model,
            version=version,
            amqp_url=amqp_url or env.get("MODELMON_AMQP_URL") or DEFAULT_AMQP_URL,
            disabled=disabled if disabled is not None else _env_flag("MODELMON_DISABLED"),
            exclude=frozenset(exclude),
            sample_rate=rate,
            model_from_path_param=model_from_path_param or env.get("MODELMON_MODEL_FROM_PATH_PARAM") or None,
            instance=instance or None,
            max_batch_events=max_batch_events or _env_int("MODELMON_MAX_BATCH_EVENTS", 500),
            max_batch_delay_ms=max_batch_delay_ms or _env_int("MODELMON_MAX_BATCH_DELAY_MS", 200),
            buffer_events=buffer_events or _env_int("MODELMON_BUFFER_EVENTS", 65_536),
            persistent=persistent if persistent is not None else _env_flag("MODELMON_PERSISTENT"),
        )
