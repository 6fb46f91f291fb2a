"""Wire contract v1, checked the way the monitor checks it.

This is a pure-Python twin of ``interceptor/contract/src/decode.rs``. It exists so the
Python side can prove, against the same golden vectors as the Rust side, that what the
middleware emits is what the monitor accepts. Every rule here mirrors one in decode.rs,
in the same order, so that the first failing rule (and so the reason) is the same.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

EXCHANGE = "modelmon"
MESSAGE_TYPE = "modelmon.events.v1"
CONTENT_TYPE = "application/json"
ROUTING_PREFIX = "events."
VERSION = 1
MAX_BODY_BYTES = 1 << 20
MAX_EVENTS_PER_BATCH = 10_000
MAX_MODEL_CHARS = 128
MAX_TEXT_CHARS = 256
MAX_METHOD_CHARS = 16
MAX_ML_ENTRIES = 16
MAX_ML_KEY_CHARS = 64
MAX_FUTURE_US = 5 * 60 * 1_000_000
MAX_AGE_US = 24 * 3600 * 1_000_000
MAX_DURATION_US = 24 * 3600 * 1_000_000

REASONS = (
    "not_json",
    "body_too_large",
    "bad_version",
    "not_a_batch",
    "too_many_events",
    "not_an_object",
    "missing_field",
    "wrong_type",
    "bad_model",
    "model_mismatch",
    "bad_text",
    "bad_status",
    "bad_duration",
    "bad_bytes",
    "ts_in_future",
    "ts_too_old",
    "bad_ml",
)

_U64_MAX = (1 << 64) - 1
_I64_MIN = -(1 << 63)
_I64_MAX = (1 << 63) - 1
_ML_KEY_BYTES = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789_")


def routing_key(model: str) -> str:
    return ROUTING_PREFIX + model


def model_of_routing_key(key: str) -> str | None:
    if key.startswith(ROUTING_PREFIX) and len(key) > len(ROUTING_PREFIX):
        return key[len(ROUTING_PREFIX) :]
    return None


def is_clean_text(s: str, max_chars: int) -> bool:
    """1..=max characters, none of them a control character (Unicode category Cc)."""
    if not s or len(s) > max_chars:
        return False
    return not any(c < " " or "\x7f" <= c <= "\x9f" for c in s)


def is_valid_model_name(s: str) -> bool:
    return is_clean_text(s, MAX_MODEL_CHARS)


@dataclass
class ValidationResult:
    """What the monitor would make of one message body.

    ``batch_error`` is set when the whole body is refused (then nothing else is filled in);
    otherwise ``accepted`` holds the valid events and ``rejected`` counts the others by reason.
    """

    batch_error: str | None = None
    detail: str = ""
    accepted: list[dict[str, Any]] = field(default_factory=list)
    rejected: dict[str, int] = field(default_factory=dict)
    dropped: int = 0
    source: dict[str, Any] | None = None


class _Reject(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class _NotJson(ValueError):
    pass


class _Obj(list):
    """A JSON object as its list of (key, value) pairs.

    serde visits every pair, duplicates included (the last one wins for a field, but an
    ``ml`` object keeps all of them), so a dict would hide what the Rust side sees.
    """

    def last(self) -> dict[str, Any]:
        return dict(self)


def _parse_int(text: str) -> int | float:
    n = int(text)
    # The Rust reader reads integers beyond 64 bits as floats ("-0" is plain 0).
    if n > _U64_MAX or n < _I64_MIN:
        return _parse_float(text)
    return n


def _parse_float(text: str) -> float:
    # Like the Rust reader: a number past a float's range (1e400) is valid JSON and reads
    # as infinite; the field holding it rejects its event alone.
    try:
        return float(text)
    except OverflowError:
        return math.inf if not text.startswith("-") else -math.inf


def _no_constants(name: str) -> Any:
    raise _NotJson(f"{name} is not JSON")


_DECODER = json.JSONDecoder(
    object_pairs_hook=_Obj,
    parse_int=_parse_int,
    parse_float=_parse_float,
    parse_constant=_no_constants,
)


def _has_surrogate(s: str) -> bool:
    return any("\ud800" <= c <= "\udfff" for c in s)


# The Rust reader refuses a value nested more than this deep below the point where it
# starts skipping (an unknown field, a container where a scalar belongs, ...).
_MAX_SKIP_DEPTH = 128


def _check_strings_and_depth(root: Any) -> None:
    """Fails where the Rust reader fails on text Python's json module accepts.

    Python decodes a lone surrogate escape (``"\\ud800"``) into the string; the reader
    refuses it wherever it appears. And the reader bounds how deep a value it skips may
    nest, counted from where the skipping starts.
    """
    stack: list[tuple[Any, int]] = [(root, 0)]
    while stack:
        v, depth = stack.pop()
        if depth > _MAX_SKIP_DEPTH:
            raise _NotJson("nested too deeply")
        if isinstance(v, str):
            if _has_surrogate(v):
                raise _NotJson("lone surrogate in \\u escape")
        elif isinstance(v, _Obj):
            for k, x in v:
                if _has_surrogate(k):
                    raise _NotJson("lone surrogate in \\u escape")
                stack.append((x, depth + 1))
        elif isinstance(v, list):
            stack.extend((x, depth + 1) for x in v)


def _skip_roots(root: Any) -> list[Any]:
    """The values the Rust reader skips rather than reads field by field."""
    if not isinstance(root, _Obj):
        return [root]
    roots: list[Any] = []
    for key, value in root:
        if key == "source" and isinstance(value, _Obj):
            roots.extend(x for _, x in value)
        elif key == "events" and isinstance(value, list) and not isinstance(value, _Obj):
            for ev in value:
                if not isinstance(ev, _Obj):
                    roots.append(ev)
                    continue
                for k, x in ev:
                    if k == "ml" and isinstance(x, _Obj):
                        roots.extend(y for _, y in x)
                    else:
                        roots.append(x)
        else:
            roots.append(value)
    return roots


def _check_body(root: Any) -> None:
    for r in _skip_roots(root):
        _check_strings_and_depth(r)
    # Keys read field by field are strings too.
    if isinstance(root, _Obj):
        for key, value in root:
            if _has_surrogate(key):
                raise _NotJson("lone surrogate in \\u escape")
            if key in ("source", "events") and isinstance(value, list):
                containers = [value] if isinstance(value, _Obj) else [e for e in value if isinstance(e, _Obj)]
                for c in containers:
                    for k, x in c:
                        if _has_surrogate(k):
                            raise _NotJson("lone surrogate in \\u escape")
                        if k == "ml" and isinstance(x, _Obj) and any(_has_surrogate(mk) for mk, _ in x):
                            raise _NotJson("lone surrogate in \\u escape")


def _describe(v: Any) -> str:
    if v is _ABSENT:
        return "absent"
    if v is None:
        return "null"
    if isinstance(v, bool):
        return f"the boolean {str(v).lower()}"
    if isinstance(v, (int, float)):
        return f"the number {v}"
    if isinstance(v, str):
        return f"the string {v[:40]!r}"
    if isinstance(v, _Obj):
        return "an object"
    return "an array"


_ABSENT = object()


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def validate_batch(body: bytes | str, routing_model: str | None, now_us: int) -> ValidationResult:
    """Validates one message body exactly as the monitor's ``decode_batch`` does."""
    if isinstance(body, str):
        body = body.encode("utf-8", "surrogatepass")
    if len(body) > MAX_BODY_BYTES:
        return ValidationResult(
            batch_error="body_too_large",
            detail=f"body of {len(body)} bytes is over the {MAX_BODY_BYTES}-byte limit",
        )
    try:
        text = body.decode("utf-8")
        root = _DECODER.decode(text)
        _check_body(root)
    except (ValueError, RecursionError) as e:
        return ValidationResult(batch_error="not_json", detail=str(e))
    if not isinstance(root, _Obj):
        return ValidationResult(batch_error="not_a_batch", detail="the body is not a JSON object")
    batch = root.last()
    v = batch.get("v", _ABSENT)
    if not (_is_int(v) and v == VERSION):
        detail = "`v` is missing" if v is _ABSENT else f"`v` is {_describe(v)}, only 1 is understood"
        return ValidationResult(batch_error="bad_version", detail=detail)
    events = batch.get("events", _ABSENT)
    if not isinstance(events, list) or isinstance(events, _Obj):
        return ValidationResult(batch_error="not_a_batch", detail="`events` is missing or not an array")
    if len(events) > MAX_EVENTS_PER_BATCH:
        return ValidationResult(
            batch_error="too_many_events",
            detail=f"{len(events)} events, at most {MAX_EVENTS_PER_BATCH} per batch",
        )
    source = batch.get("source", _ABSENT)
    if not isinstance(source, _Obj):
        return ValidationResult(batch_error="not_a_batch", detail="`source` is missing or not an object")
    src = source.last()
    kind = src.get("kind", _ABSENT)
    if not isinstance(kind, str):
        return ValidationResult(batch_error="not_a_batch", detail="`source.kind` is missing or not a string")
    instance = src.get("instance", _ABSENT)
    if not (isinstance(instance, str) and is_clean_text(instance, MAX_TEXT_CHARS)):
        return ValidationResult(batch_error="not_a_batch", detail="`source.instance` is missing or not clean text")
    pid = src.get("pid", _ABSENT)
    if pid is _ABSENT or pid is None:
        pid = 0
    elif _is_int(pid) and pid >= 0:
        pid = min(pid, 0xFFFF_FFFF)
    else:
        return ValidationResult(batch_error="not_a_batch", detail="`source.pid` is not a non-negative integer")
    dropped = batch.get("dropped", _ABSENT)
    if dropped is _ABSENT or dropped is None:
        dropped = 0
    elif not (_is_int(dropped) and dropped >= 0):
        return ValidationResult(batch_error="not_a_batch", detail="`dropped` is not a count")
    known_kinds = ("asgi", "wsgi", "proxy", "demo")
    out = ValidationResult(
        dropped=dropped,
        source={"kind": kind if kind in known_kinds else "other", "instance": instance, "pid": pid},
    )
    for raw in events:
        try:
            if not isinstance(raw, _Obj):
                raise _Reject("not_an_object", "an element of `events` is not an object")
            out.accepted.append(_validate_event(raw, routing_model, now_us))
        except _Reject as r:
            out.rejected[r.reason] = out.rejected.get(r.reason, 0) + 1
    return out


def _validate_event(raw: _Obj, expected_model: str | None, now_us: int) -> dict[str, Any]:
    ev = raw.last()
    model = ev.get("model", _ABSENT)
    if isinstance(model, str):
        if not is_clean_text(model, MAX_MODEL_CHARS):
            raise _Reject("bad_model", f"model {model[:40]!r} is not a clean name")
    elif model is _ABSENT or model is None:
        raise _Reject("missing_field", "`model` is missing")
    else:
        raise _Reject("wrong_type", f"`model` is {_describe(model)}, not a string")
    if expected_model is not None and expected_model != model:
        raise _Reject("model_mismatch", f"model {model!r} in a batch routed as {expected_model!r}")
    ts = _int_field(ev.get("ts", _ABSENT), "ts")
    if ts > min(now_us + MAX_FUTURE_US, _I64_MAX):
        raise _Reject("ts_in_future", "`ts` is in the future")
    if ts < max(now_us - MAX_AGE_US, _I64_MIN):
        raise _Reject("ts_too_old", "`ts` is too old")
    out: dict[str, Any] = {"ts": ts, "model": model}
    out["instance"] = _text_field(ev.get("instance", _ABSENT), "instance", MAX_TEXT_CHARS)
    out["method"] = _text_field(ev.get("method", _ABSENT), "method", MAX_METHOD_CHARS)
    out["route"] = _text_field(ev.get("route", _ABSENT), "route", MAX_TEXT_CHARS)
    status = _int_field(ev.get("status", _ABSENT), "status")
    if not 100 <= status <= 599:
        raise _Reject("bad_status", f"`status` {status} is outside 100..599")
    out["status"] = status
    duration = _duration_field(ev.get("duration_us", _ABSENT), "duration_us")
    if duration is None:
        raise _Reject("missing_field", "`duration_us` is missing")
    out["duration_us"] = duration
    ttfb = _duration_field(ev.get("ttfb_us", _ABSENT), "ttfb_us")
    if ttfb is not None and ttfb > duration:
        raise _Reject("bad_duration", f"`ttfb_us` {ttfb} is above `duration_us` {duration}")
    out["ttfb_us"] = ttfb
    out["req_bytes"] = _bytes_field(ev.get("req_bytes", _ABSENT), "req_bytes")
    out["resp_bytes"] = _bytes_field(ev.get("resp_bytes", _ABSENT), "resp_bytes")
    out["version"] = _opt_text_field(ev.get("version", _ABSENT), "version", MAX_TEXT_CHARS)
    out["error"] = _opt_text_field(ev.get("error", _ABSENT), "error", MAX_TEXT_CHARS)
    out["ml"] = _ml_field(ev.get("ml", _ABSENT))
    return out


def _int_field(v: Any, name: str) -> int:
    if _is_int(v):
        if v > _I64_MAX:
            raise _Reject("wrong_type", f"`{name}` {v} is too large")
        return v
    # 1.0 is an integer written by a careless encoder; 1.5 is not.
    if isinstance(v, float) and math.isfinite(v) and v == int(v) and abs(v) < 9.0e15:
        return int(v)
    if v is _ABSENT or v is None:
        raise _Reject("missing_field", f"`{name}` is missing")
    raise _Reject("wrong_type", f"`{name}` is {_describe(v)}, not an integer")


def _round_half_away(f: float) -> int:
    whole = int(f)
    return whole + 1 if f - whole >= 0.5 else whole


def _duration_field(v: Any, name: str) -> int | None:
    if v is _ABSENT or v is None:
        return None
    if _is_int(v):
        if v < 0:
            raise _Reject("bad_duration", f"`{name}` is negative")
        n = v
    elif isinstance(v, float):
        if not math.isfinite(v):
            raise _Reject("bad_duration", f"`{name}` is not finite")
        if v < 0.0:
            raise _Reject("bad_duration", f"`{name}` is negative")
        n = _round_half_away(v)
    else:
        raise _Reject("wrong_type", f"`{name}` is {_describe(v)}, not a number")
    if n > MAX_DURATION_US:
        raise _Reject("bad_duration", f"`{name}` {n} is over one day")
    return n


def _bytes_field(v: Any, name: str) -> int | None:
    if v is _ABSENT or v is None:
        return None
    if _is_int(v):
        if v < 0:
            raise _Reject("bad_bytes", f"`{name}` is negative")
        return v
    if isinstance(v, float) and math.isfinite(v) and v >= 0.0 and v == int(v):
        return min(int(v), _U64_MAX)
    raise _Reject("wrong_type", f"`{name}` is {_describe(v)}, not a byte count")


def _text_field(v: Any, name: str, max_chars: int) -> str:
    s = _opt_text_field(v, name, max_chars)
    if s is None:
        raise _Reject("missing_field", f"`{name}` is missing")
    return s


def _opt_text_field(v: Any, name: str, max_chars: int) -> str | None:
    if v is _ABSENT or v is None:
        return None
    if isinstance(v, str):
        if is_clean_text(v, max_chars):
            return v
        raise _Reject("bad_text", f"`{name}` {v[:40]!r} is not clean text of at most {max_chars}")
    raise _Reject("wrong_type", f"`{name}` is {_describe(v)}, not a string")


def _ml_field(v: Any) -> dict[str, float]:
    if v is _ABSENT or v is None:
        return {}
    if not isinstance(v, _Obj):
        raise _Reject("bad_ml", "`ml` is not an object")
    if len(v) > MAX_ML_ENTRIES:
        raise _Reject("bad_ml", f"`ml` has more than {MAX_ML_ENTRIES} entries")
    out: dict[str, float] = {}
    for k, x in v:
        kb = k.encode("utf-8", "surrogatepass")
        if not (0 < len(kb) <= MAX_ML_KEY_CHARS and all(b in _ML_KEY_BYTES for b in kb)):
            raise _Reject("bad_ml", f"`ml` key {k[:40]!r} is not [a-z0-9_]{{1,64}}")
        if _is_int(x):
            out[k] = float(x)
        elif isinstance(x, float) and math.isfinite(x):
            out[k] = x
        else:
            raise _Reject("bad_ml", f"`ml` value of {k!r} is {_describe(x)}, not a finite number")
    return out
