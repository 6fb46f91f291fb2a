"""The model APIs the tests serve: one FastAPI app and one Flask app, with the endpoints
a model server has (predict, multi-model infer, streaming) and the awkward cases."""

import asyncio
import os
import time
from typing import Any
from urllib.error import URLError

import modelmon_interceptor
from modelmon_interceptor import instrument


class ModelCrashed(RuntimeError):
    pass


def make_fastapi_app(model: str, **options: Any) -> Any:
    from fastapi import BackgroundTasks, FastAPI, Request
    from fastapi.responses import StreamingResponse

    app = FastAPI()
    app.state.background_started_us = []

    @app.post("/v1/models/{name}/predict")
    async def predict(name: str, payload: dict) -> dict:
        modelmon_interceptor.record(queue_us=12, batch_size=len(payload.get("rows", [])))
        return {"model": name, "prediction": [0] * len(payload.get("rows", []))}

    @app.get("/items/{item_id}")
    def item(item_id: int) -> dict:
        # A sync endpoint runs in a worker thread: record() must still reach the event.
        modelmon_interceptor.record(inference_us=7.5)
        return {"item": item_id}

    @app.post("/v2/models/{model_name}/infer")
    async def infer(model_name: str, request: Request) -> dict:
        body = await request.body()
        return {"model_name": model_name, "bytes": len(body)}

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def tokens():
            for i in range(4):
                yield f"data: token{i}\n\n".encode()
                await asyncio.sleep(0.03)

        return StreamingResponse(tokens(), media_type="text/event-stream")

    @app.get("/endless")
    async def endless() -> StreamingResponse:
        async def tokens():
            for i in range(400):
                yield f"data: token{i}\n\n".encode()
                await asyncio.sleep(0.02)

        return StreamingResponse(tokens(), media_type="text/event-stream")

    @app.get("/boom")
    async def boom() -> dict:
        raise ModelCrashed("weights missing")

    @app.get("/boom-sync")
    def boom_sync() -> dict:
        raise KeyError("feature")

    @app.get("/bg")
    async def bg(tasks: BackgroundTasks) -> dict:
        async def slow_cleanup() -> None:
            app.state.background_started_us.append(time.time_ns() // 1000)
            await asyncio.sleep(1.0)

        tasks.add_task(slow_cleanup)
        return {"ok": True}

    @app.get("/health")
    async def health() -> dict:
        return {"ok": True}

    @app.get("/pid")
    async def pid() -> dict:
        return {"pid": os.getpid()}

    instrument(app, model=model, **options)
    return app


def make_flask_app(model: str, wrap: Any = None, **options: Any) -> Any:
    """The Flask app, instrumented; ``wrap`` is applied to its ``wsgi_app`` first, as
    ``ProxyFix`` is behind a reverse proxy."""
    from flask import Flask, Response, jsonify, request

    app = Flask(__name__)

    @app.post("/v1/models/<name>/predict")
    def predict(name: str) -> Any:
        payload = request.get_json()
        modelmon_interceptor.record(queue_us=3, batch_size=len(payload.get("rows", [])))
        return jsonify(model=name, prediction=[0] * len(payload.get("rows", [])))

    @app.get("/items/<int:item_id>")
    def item(item_id: int) -> Any:
        return jsonify(item=item_id)

    @app.post("/v2/models/<model_name>/infer")
    def infer(model_name: str) -> Any:
        return jsonify(model_name=model_name, bytes=len(request.get_data()))

    @app.get("/stream")
    def stream() -> Response:
        def tokens():
            for i in range(4):
                yield f"data: token{i}\n\n".encode()
                time.sleep(0.03)

        return Response(tokens(), mimetype="text/event-stream")

    @app.get("/endless")
    def endless() -> Response:
        def tokens():
            for i in range(400):
                yield (f"data: token{i}\n\n" + "x" * 4096).encode()
                time.sleep(0.02)

        return Response(tokens(), mimetype="text/event-stream")

    @app.get("/tokens")
    def tokens_endpoint() -> Response:
        count = int(request.args.get("count", "3"))
        pad = "x" * int(request.args.get("pad", "0"))

        def tokens():
            # An empty chunk gets the headers out before the model answers, as SSE
            # endpoints do; the first token comes 0.2 s later.
            yield b""
            time.sleep(0.2)
            sent = 0
            try:
                for i in range(count):
                    yield f"data: token{i}{pad}\n\n".encode()
                    sent += 1
                    time.sleep(0.01)
            finally:
                # Also when the client leaves and the server closes the stream early.
                modelmon_interceptor.record(tokens_out=sent)

        return Response(tokens(), mimetype="text/event-stream")

    @app.get("/boom")
    def boom() -> Any:
        raise ModelCrashed("weights missing")

    @app.get("/dead-backend")
    def dead_backend() -> Response:
        def tokens():
            # An LLM proxy streaming from a backend that dies mid-answer: the backend's
            # client raises an OSError (URLError; requests' RequestException is one too).
            yield b"data: token0\n\n"
            raise URLError("backend connection reset")

        return Response(tokens(), mimetype="text/event-stream")

    @app.get("/health")
    def health() -> Any:
        return jsonify(ok=True)

    @app.get("/pid")
    def pid() -> Any:
        return jsonify(pid=os.getpid())

    if wrap is not None:
        app.wsgi_app = wrap(app.wsgi_app)
    instrument(app, model=model, **options)
    return app
