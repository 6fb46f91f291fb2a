"""Streamed answers end to end: an LLM-like endpoint paced at known times, served by a real
HTTP server, measured by the middleware, through the real broker, and read back from the
real ``modelmon-tui --batch``.

The endpoint waits ``FIRST_S`` before its first token (the time to first byte a user of a
chat API waits), then sends ``TOKENS`` more, one every ``EVERY_S`` (the generation time),
and reports its token counts with ``record()``. The monitor must show those two times, and
every request; the broker must carry the token counts.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import modelmon_interceptor
from conftest import UvicornThread, WerkzeugThread
from modelmon_interceptor import instrument
from test_end_to_end import BatchMonitor

FIRST_S = 0.3
TOKENS = 10
EVERY_S = 0.05
# Sent at once, so the test takes about one answer's time.
REQUESTS = 8
# The first token cannot leave before FIRST_S: 1 % below is the monitor's bucket (its
# percentiles are within 0.4 % of the sample). Nor can the last leave before
# TOKENS * EVERY_S after the first, but the middleware may see the first a few ms late
# (the answers reach their first token at the same instant), which shortens the
# generation as measured: 10 % below. Above, a loaded 2-core machine may be late by a
# scheduler's whims: a quarter of a second is far more than that and still far less than
# mistaking one figure for the other (TTFB taken at the last byte would read 800 ms, at
# the headers about 0).
TTFB_LOW = 0.99
GEN_LOW = 0.9
LATE_S = 0.25


def prompt_of(i: int) -> str:
    """Request i's prompt: i + 1 words, so every request has its own ``tokens_in``."""
    return " ".join(["word"] * (i + 1))


def sse(data: Any) -> bytes:
    return f"data: {json.dumps(data)}\n\n".encode()


def make_chat_fastapi(model: str) -> Any:
    from fastapi import FastAPI
    from fastapi.responses import StreamingResponse

    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(payload: dict) -> StreamingResponse:
        start = time.monotonic()
        modelmon_interceptor.record(tokens_in=len(payload["prompt"].split()))

        async def tokens():
            await asyncio.sleep(FIRST_S - (time.monotonic() - start))
            first = time.monotonic()
            for k in range(TOKENS + 1):
                # Each token on a schedule counted from the first one: a late token does
                # not push the later ones back, and none comes before its time.
                if k:
                    await asyncio.sleep(max(0.0, first + k * EVERY_S - time.monotonic()))
                yield sse({"token": f"t{k}"})
            # Counted while streaming, recorded once the answer is complete.
            modelmon_interceptor.record(tokens_out=TOKENS + 1)
            yield b"data: [DONE]\n\n"

        return StreamingResponse(tokens(), media_type="text/event-stream")

    instrument(app, model=model)
    return app


def make_chat_flask(model: str) -> Any:
    from flask import Flask, Response, request

    app = Flask(__name__)

    @app.post("/v1/chat/completions")
    def chat() -> Response:
        start = time.monotonic()
        modelmon_interceptor.record(tokens_in=len(request.get_json()["prompt"].split()))

        def tokens():
            # An empty chunk first, as SSE endpoints do to get the headers out before the
            # model answers: it is not the first byte of the answer.
            yield b""
            time.sleep(max(0.0, FIRST_S - (time.monotonic() - start)))
            first = time.monotonic()
            for k in range(TOKENS + 1):
                if k:
                    time.sleep(max(0.0, first + k * EVERY_S - time.monotonic()))
                yield sse({"token": f"t{k}"})
            modelmon_interceptor.record(tokens_out=TOKENS + 1)
            yield b"data: [DONE]\n\n"

        return Response(tokens(), mimetype="text/event-stream")

    instrument(app, model=model)
    return app


def stream_one(url: str, i: int) -> dict[str, Any]:
    """One chat request read as it arrives: when its first and last bytes came, and what."""
    t0 = time.monotonic()
    first = None
    body = b""
    with httpx.Client(timeout=30) as client:
        with client.stream("POST", f"{url}/v1/chat/completions", json={"prompt": prompt_of(i)}) as resp:
            for chunk in resp.iter_raw():
                if chunk and first is None:
                    first = time.monotonic() - t0
                body += chunk
            status = resp.status_code
    return {"status": status, "first_s": first, "total_s": time.monotonic() - t0, "body": body}


def check_streamed_answers(url: str) -> list[dict[str, Any]]:
    with ThreadPoolExecutor(REQUESTS) as pool:
        answers = list(pool.map(lambda i: stream_one(url, i), range(REQUESTS)))
    want = b"".join(sse({"token": f"t{k}"}) for k in range(TOKENS + 1)) + b"data: [DONE]\n\n"
    for a in answers:
        assert a["status"] == 200
        assert a["body"] == want
    # The client had its first token well before the end: the server streamed, and the
    # TTFB below is about something a user waits for.
    gaps = [a["total_s"] - a["first_s"] for a in answers]
    assert statistics.median(gaps) > TOKENS * EVERY_S / 2, answers
    return answers


def check_monitor_figures(mon: BatchMonitor) -> dict:
    line = mon.wait(
        f"{REQUESTS} streamed answers counted",
        lambda v: (m := mon.model_line(v)) is not None
        and m["requests"] >= REQUESTS
        and m["ttfb_requests"] >= REQUESTS,
    )
    m = mon.model_line(line)
    assert m["requests"] == REQUESTS
    assert m["ttfb_requests"] == REQUESTS, "every answer was streamed, so every one has a TTFB"
    assert m["errors"] == 0 and m["status"]["2xx"] == REQUESTS
    ttfb_ms, gen_ms = m["ttfb_p50_ms"], m["gen_p50_ms"]
    first_ms, gen_paced_ms = FIRST_S * 1000, TOKENS * EVERY_S * 1000
    assert first_ms * TTFB_LOW <= ttfb_ms <= first_ms + LATE_S * 1000, m
    assert gen_paced_ms * GEN_LOW <= gen_ms <= gen_paced_ms + LATE_S * 1000, m
    assert line["ingest"]["rejected"] == 0
    # The tokens each answer recorded, as the monitor adds them up per model.
    out, prompt = m["ml"]["tokens_out"], m["ml"]["tokens_in"]
    assert out["count"] == REQUESTS and out["sum"] == REQUESTS * (TOKENS + 1), out
    assert out["max"] == TOKENS + 1 and abs(out["p50"] - (TOKENS + 1)) <= 0.01 * (TOKENS + 1), out
    assert prompt["sum"] == sum(range(1, REQUESTS + 1)), prompt
    # Shown with -s: the figures this run measured.
    print(f"\n{m['model']}: ttfb p50 {ttfb_ms} ms (paced {first_ms:.0f}), gen p50 {gen_ms} ms (paced {gen_paced_ms:.0f})")
    return m


def check_tokens(broker, model: str) -> None:
    events = broker.wait_events(model, REQUESTS)
    assert len(events) == REQUESTS
    assert sorted(e["ml"]["tokens_in"] for e in events) == [float(i + 1) for i in range(REQUESTS)]
    assert all(e["ml"]["tokens_out"] == float(TOKENS + 1) for e in events)
    assert all(e["route"] == "/v1/chat/completions" for e in events)


def test_a_streamed_fastapi_answer_shows_its_first_token_and_generation_times(broker, model):
    mon = BatchMonitor(model)
    try:
        mon.wait("the monitor to connect", lambda v: v["broker"]["state"] == "connected")
        with UvicornThread(make_chat_fastapi(model)) as url:
            check_streamed_answers(url)
        check_monitor_figures(mon)
        check_tokens(broker, model)
    finally:
        mon.close()


def test_a_streamed_flask_answer_shows_its_first_token_and_generation_times(broker, model):
    mon = BatchMonitor(model)
    try:
        mon.wait("the monitor to connect", lambda v: v["broker"]["state"] == "connected")
        with WerkzeugThread(make_chat_flask(model)) as url:
            check_streamed_answers(url)
        check_monitor_figures(mon)
        check_tokens(broker, model)
    finally:
        mon.close()
