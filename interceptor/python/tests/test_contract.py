"""The native core links the monitor's own decoder: every golden vector decodes through it
as the vector says, and the contract names and limits the middleware relies on are the
crate's.

The decoder's rules themselves are tested in Rust (``interceptor/contract/tests``); here
they are what the conftest's ``Broker`` holds every published batch to.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from modelmon_interceptor import _core
from modelmon_interceptor._core import rust_decode

VECTORS = Path(__file__).resolve().parents[3] / "tests" / "vectors"
FILES = sorted(VECTORS.glob("*.json"))


def body_of(vector: dict) -> bytes:
    if "body_text" in vector:
        return vector["body_text"].encode()
    return json.dumps(vector["body"]).encode()


def test_the_golden_vectors_are_there():
    assert len(FILES) >= 20, f"expected the golden vectors in {VECTORS}"


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_golden_vector_decodes_through_the_native_core(path):
    vector = json.loads(path.read_text())
    error, accepted, dropped, rejected, details = rust_decode(body_of(vector), vector["routing_model"], vector["now_us"])
    expect = vector["expect"]
    if "batch_error" in expect:
        assert error == expect["batch_error"], details
        return
    assert error is None, details
    assert accepted == expect["accepted"]
    assert rejected == expect["rejected"], details
    assert dropped == expect["dropped"]
    assert len(details) == sum(rejected.values())


def test_contract_names_and_limits_are_the_documented_ones():
    # docs/events.md states them; the settings and the tests read them from the crate.
    assert (_core.EXCHANGE, _core.MESSAGE_TYPE, _core.CONTENT_TYPE) == (
        "modelmon",
        "modelmon.events.v1",
        "application/json",
    )
    assert _core.ROUTING_PREFIX == "events."
    assert (_core.MAX_MODEL_CHARS, _core.MAX_TEXT_CHARS) == (128, 256)
    # `events.<model>` must fit an AMQP short string of 255 bytes.
    assert _core.MAX_MODEL_BYTES == 255 - len(_core.ROUTING_PREFIX) == 248


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("iris", True),
        ("m" * 128, True),
        ("é" * 124, True),  # 248 bytes: the routing key's limit
        ("é" * 125, False),  # 125 characters, but 250 bytes
        ("模" * 83, False),
        ("m" * 129, False),
        ("", False),
        ("a\nb", False),
        ("caf\u0085", False),  # a C1 control character
        ("a\u007f", False),
        ("a\udcff", False),  # an undecodable byte of an environment variable: no UTF-8
    ],
)
def test_model_names_follow_the_contract(name, valid):
    assert _core.is_valid_model_name(name) is valid
    # The text rule counts characters; only a model name is bounded in bytes too.
    over_bytes = len(name.encode("utf-8", "surrogatepass")) > _core.MAX_MODEL_BYTES
    assert _core.is_clean_text(name, _core.MAX_MODEL_CHARS) is (valid or over_bytes)
