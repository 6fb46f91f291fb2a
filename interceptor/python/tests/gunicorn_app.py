"""Loaded by gunicorn with --preload in the fork-safety test."""

import os

from apps import make_flask_app

app = make_flask_app(os.environ["MODELMON_TEST_MODEL"])

# A request in the master before the fork starts a publisher there, so the workers
# inherit a live one: exactly what each worker must replace with its own.
with app.test_client() as c:
    warmup = c.get("/items/0")
    warmup.get_data()
    # WSGI servers close the body when they are done with it; the event goes out then.
    warmup.close()
