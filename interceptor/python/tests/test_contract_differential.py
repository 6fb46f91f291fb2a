"""The Python validator against the monitor's own Rust decoder (linked into the native
core as `rust_decode`) on thousands of generated bodies: mutated golden vectors, odd
numbers, escapes, deep nesting and broken bytes. The golden vectors pin known cases; this
catches the two sides drifting apart on the unknown ones."""

from __future__ import annotations

import json
import random
from pathlib import Path

from modelmon_interceptor._core import rust_decode
from modelmon_interceptor.contract import validate_batch

VECTORS = Path(__file__).resolve().parents[3] / "tests" / "vectors"
NOW = 1_780_000_000_000_000

VALUES = [
    "0",
    "-0",
    "1",
    "1.0",
    "-1",
    "1.5",
    "2.5",
    "-0.0",
    "1e3",
    "1E-2",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775808",
    "-9223372036854775809",
    "9223372036854775808",
    "1e400",
    "1e-400",
    "9e15",
    "8999999999999999",
    "100",
    "599",
    "600",
    "99",
    "86400000000",
    "86400000001",
    "86400000000.4",
    "true",
    "false",
    "null",
    '""',
    '"x"',
    '"\\u0000"',
    '"\\ud800"',
    '"\\udc00\\ud800"',
    '"\\ud83d\\ude00"',
    '"caf\\u00e9"',
    '"\\u007f"',
    '"\\u0085"',
    '"a\\nb"',
    "[]",
    "{}",
    "[1,2]",
    '{"a":1}',
    '{"queue_us":1}',
    '{"a":"\\ud800"}',
    "[" * 129 + "]" * 129,
    "[" * 130 + "]" * 130,
    '"' + "x" * 256 + '"',
    '"' + "x" * 257 + '"',
    '"' + "é" * 128 + '"',
    '"' + "é" * 129 + '"',
    "NaN",
    "01",
    '{"k0":0,"k0":1}',
    '"iris"',
    '"GET"',
    "1779999999000000",
    "1780000300000001",
    "1779913599999999",
]
KEYS = [
    "v",
    "dropped",
    "source",
    "events",
    "kind",
    "instance",
    "pid",
    "ts",
    "model",
    "version",
    "method",
    "route",
    "status",
    "duration_us",
    "ttfb_us",
    "req_bytes",
    "resp_bytes",
    "error",
    "ml",
    "queue_us",
]
_DECODER = json.JSONDecoder()


def seeds() -> list[str]:
    out = []
    for path in sorted(VECTORS.glob("*.json")):
        v = json.loads(path.read_text())
        if path.stem != "too_many_events":
            out.append(v["body_text"] if "body_text" in v else json.dumps(v["body"]))
    return out


def replace_a_value(rng: random.Random, text: str) -> str:
    spots = [i for k in KEYS for i in _find_all(text, f'"{k}":')]
    if not spots:
        return text
    start = text.index(":", rng.choice(spots)) + 1
    while text[start] == " ":
        start += 1
    try:
        _, end = _DECODER.raw_decode(text, start)
    except ValueError:
        return text
    return text[:start] + rng.choice(VALUES) + text[end:]


def _find_all(s: str, sub: str):
    i = s.find(sub)
    while i != -1:
        yield i
        i = s.find(sub, i + 1)


def break_bytes(rng: random.Random, b: bytes) -> bytes:
    out = bytearray(b)
    for _ in range(rng.randint(1, 3)):
        if not out:
            break
        i = rng.randrange(len(out))
        op = rng.random()
        if op < 0.3:
            del out[i]
        elif op < 0.6:
            out.insert(i, rng.choice(b'{}[],:"\\0123456789-.eE tfn\xff\xc3'))
        else:
            out[i] = rng.randrange(256)
    return bytes(out)


def test_python_validator_agrees_with_the_rust_decoder_on_generated_bodies():
    rng = random.Random(20260601)
    bases = seeds()
    disagreements = []
    outcomes = set()
    for _ in range(4000):
        text = rng.choice(bases)
        for _ in range(rng.randint(1, 4)):
            text = replace_a_value(rng, text)
        body = text.encode("utf-8", "surrogatepass")
        if rng.random() < 0.3:
            body = break_bytes(rng, body)
        model = rng.choice(["iris", "iris", None, "other"])
        err, accepted, dropped, rejected = rust_decode(body, model, NOW)
        mine = validate_batch(body, model, NOW)
        rust = (err, 0, 0, {}) if err else (None, accepted, dropped, dict(rejected))
        py = (
            (mine.batch_error, 0, 0, {})
            if mine.batch_error
            else (None, len(mine.accepted), mine.dropped, mine.rejected)
        )
        outcomes.add(err or tuple(sorted(rejected)))
        if rust != py:
            disagreements.append((body[:200], rust, py))
    assert disagreements == []
    # The generator reaches many different outcomes, or this test would prove little.
    assert len(outcomes) >= 20
