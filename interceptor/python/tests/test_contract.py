"""The Python validator agrees with the Rust decoder on every golden vector."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from modelmon_interceptor.contract import REASONS, validate_batch

VECTORS = Path(__file__).resolve().parents[3] / "tests" / "vectors"
FILES = sorted(VECTORS.glob("*.json"))


def body_of(vector: dict) -> bytes:
    if "body_text" in vector:
        return vector["body_text"].encode()
    return json.dumps(vector["body"]).encode()


def test_the_golden_vectors_are_there():
    assert len(FILES) >= 20, f"expected the golden vectors in {VECTORS}"


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_validator_agrees_with_golden_vector(path):
    vector = json.loads(path.read_text())
    result = validate_batch(body_of(vector), vector["routing_model"], vector["now_us"])
    expect = vector["expect"]
    if "batch_error" in expect:
        assert result.batch_error == expect["batch_error"], result.detail
        return
    assert result.batch_error is None, result.detail
    assert len(result.accepted) == expect["accepted"]
    assert result.rejected == expect["rejected"]
    assert result.dropped == expect["dropped"]
    assert set(result.rejected) <= set(REASONS)


NOW = 1_780_000_000_000_000


def batch(*events: dict, **top: object) -> bytes:
    body = {"v": 1, "source": {"kind": "asgi", "instance": "h", "pid": 1}, "dropped": 0, "events": list(events)}
    body.update(top)
    return json.dumps(body).encode()


def ev(**fields: object) -> dict:
    base = {
        "ts": NOW - 1_000,
        "model": "iris",
        "instance": "h",
        "method": "GET",
        "route": "/r",
        "status": 200,
        "duration_us": 10,
    }
    base.update(fields)
    return base


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"x" * ((1 << 20) + 1), "body_too_large"),
        (b'{"v":1,"source":{"kind":"asgi","instance":"h"},"events":[{"route":"\\ud800"}]}', "not_json"),
        (b'{"v":1.0,"source":{"kind":"a","instance":"h"},"events":[]}', "bad_version"),
        (b'{"v":1,"source":{"kind":"a","instance":"h"},"dropped":-1,"events":[]}', "not_a_batch"),
        (b'{"v":1,"source":{"kind":"a","instance":"h","pid":1.5},"events":[]}', "not_a_batch"),
        (b'{"v":1,"source":{"kind":"a","instance":"h"},"events":[],"dropped":1e999}', "not_a_batch"),
    ],
)
def test_edge_bodies_the_vectors_do_not_cover(body, reason):
    assert validate_batch(body, "iris", NOW).batch_error == reason


@pytest.mark.parametrize(
    "extra",
    [
        b',"x":"\\ud800"',  # a lone surrogate, even in a field nobody reads
        b',"x\\udc00":1',
        b',"x":"\xff"',  # not UTF-8
        b',"x":' + b"[" * 130 + b"]" * 130,  # nested deeper than the reader skips
    ],
)
def test_what_the_rust_reader_refuses_anywhere_in_the_body(extra):
    body = b'{"v":1,"source":{"kind":"asgi","instance":"h"},"events":[]' + extra + b"}"
    assert validate_batch(body, None, NOW).batch_error == "not_json"


def test_nesting_up_to_the_readers_limit_is_fine():
    body = b'{"v":1,"source":{"kind":"asgi","instance":"h"},"events":[],"x":' + b"[" * 129 + b"]" * 129 + b"}"
    assert validate_batch(body, None, NOW).batch_error is None


def test_minus_zero_is_an_integer_zero():
    body = b'{"v":1,"source":{"kind":"asgi","instance":"h"},"events":[],"dropped":-0}'
    assert validate_batch(body, None, NOW).dropped == 0


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (ev(ml={"a": 1, "a ": 2}), "bad_ml"),
        (ev(status=True), "wrong_type"),
        (ev(ts=2**64), "wrong_type"),
        (ev(duration_us=1.4, ttfb_us=2), "bad_duration"),  # 1.4 rounds to 1
        (ev(duration_us=2.5, ttfb_us=3), None),  # 2.5 rounds half away from zero, to 3
        (ev(method="X" * 17), "bad_text"),
        (ev(route="/caf\u0085"), "bad_text"),
        (ev(req_bytes=1.5), "wrong_type"),
    ],
)
def test_event_rules(event, reason):
    result = validate_batch(batch(event), "iris", NOW)
    assert result.rejected == ({reason: 1} if reason else {})


def test_duplicate_ml_keys_count_like_serde_sees_them():
    pairs = ",".join(f'"k{i % 8}":{i}' for i in range(17))
    body = batch(ev()).replace(b'"duration_us": 10', b'"duration_us": 10, "ml": {' + pairs.encode() + b"}")
    assert validate_batch(body, "iris", NOW).rejected == {"bad_ml": 1}
