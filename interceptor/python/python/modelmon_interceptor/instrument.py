"""``instrument(app)``: the one line that wires modelmon into a FastAPI, Starlette or Flask app."""

from __future__ import annotations

from typing import Any, TypeVar

from .asgi import ModelmonMiddleware
from .wsgi import ModelmonWSGIMiddleware, _flask_app_of

# The app comes back as what it was: `app = instrument(FastAPI())` stays a FastAPI.
_App = TypeVar("_App")


def instrument(
    app: _App,
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
) -> _App:
    """Adds the modelmon middleware to ``app`` and returns ``app``.

    FastAPI/Starlette apps get :class:`ModelmonMiddleware` as their outermost user
    middleware; Flask apps get their ``wsgi_app`` wrapped. The options are those of
    :meth:`Settings.resolve <modelmon_interceptor.settings.Settings.resolve>` (see
    docs/python.md): one left at None comes from its ``MODELMON_*`` environment variable,
    if it has one, else its default.
    """
    options: dict[str, Any] = {
        "version": version,
        "amqp_url": amqp_url,
        "disabled": disabled,
        "exclude": exclude,
        "sample_rate": sample_rate,
        "model_from_path_param": model_from_path_param,
        "instance": instance,
        "max_batch_events": max_batch_events,
        "max_batch_delay_ms": max_batch_delay_ms,
        "buffer_events": buffer_events,
        "persistent": persistent,
    }
    target: Any = app
    if hasattr(target, "add_middleware") and hasattr(target, "user_middleware"):
        target.add_middleware(ModelmonMiddleware, model=model, **options)
        return app
    if hasattr(target, "wsgi_app") and hasattr(target, "url_map"):
        target.wsgi_app = ModelmonWSGIMiddleware(
            target.wsgi_app, model=model, flask_app=_flask_app_of(target), **options
        )
        return app
    raise TypeError(
        f"modelmon: don't know how to instrument {type(app).__name__}; wrap it yourself with "
        "ModelmonMiddleware (ASGI) or ModelmonWSGIMiddleware (WSGI)"
    )
