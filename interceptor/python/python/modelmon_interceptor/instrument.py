"""``instrument(app)``: the one line that wires modelmon into a FastAPI, Starlette or Flask app."""

from __future__ import annotations

from typing import Any

from .asgi import ModelmonMiddleware
from .wsgi import ModelmonWSGIMiddleware


def instrument(app: Any, model: str | None = None, **options: Any) -> Any:
    """Adds the modelmon middleware to ``app`` and returns ``app``.

    FastAPI/Starlette apps get :class:`ModelmonMiddleware` as their outermost user
    middleware; Flask apps get their ``wsgi_app`` wrapped. Options are those of
    :class:`~modelmon_interceptor.settings.Settings` (``version``, ``amqp_url``,
    ``exclude``, ``sample_rate``, ``model_from_path_param``, ...).
    """
    if hasattr(app, "add_middleware") and hasattr(app, "user_middleware"):
        app.add_middleware(ModelmonMiddleware, model=model, **options)
        return app
    if hasattr(app, "wsgi_app") and hasattr(app, "url_map"):
        app.wsgi_app = ModelmonWSGIMiddleware(app.wsgi_app, model=model, **options)
        return app
    raise TypeError(
        f"modelmon: don't know how to instrument {type(app).__name__}; wrap it yourself with "
        "ModelmonMiddleware (ASGI) or ModelmonWSGIMiddleware (WSGI)"
    )
