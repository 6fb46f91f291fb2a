#!/usr/bin/env bash
# Installs what the Python interceptor's tests need, builds the native core (a PyO3
# extension, via maturin) by installing the package, and runs pytest against the real
# RabbitMQ on 127.0.0.1:5672 (started by the caller, see .ci/run) and, for outages, a
# private node of the tests' own.
# Usage: interceptor/python/test.sh [pytest args...]   (paths relative to interceptor/python)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
py="${PYTHON:-python3}"

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
"$py" -m pip install -q \
    pytest fastapi starlette uvicorn flask gunicorn httpx pika scikit-learn maturin \
    prometheus-fastapi-instrumentator
# A normal (not editable) install: the tests run against what users get. Cargo's
# incremental build lives in ./target, outside the root workspace.
"$py" -m pip install -q --force-reinstall --no-deps "$here"

# The broker-restart tests make their outages on a private RabbitMQ node with the Rust
# tests' own helper, run as this example (found in the target dir, like the monitor).
(cd "$here/../.." && cargo build --locked -q -p modelmon-publisher --example private_node)

if ! (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; then
    echo "test.sh: RabbitMQ is not answering on 127.0.0.1:5672; start it first (rabbitmq-server -detached)" >&2
    exit 1
fi

# No path given: pyproject's testpaths, all of tests/. Naming the suite here as well
# would run all of it beside the files asked for.
exec "$py" -m pytest -q -p no:cacheprovider "$@"
