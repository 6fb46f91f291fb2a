#!/usr/bin/env bash
# The one command that runs every test: ./scripts/test.sh
# It installs and starts what the tests need (RabbitMQ, tmux, Python packages), then
# runs formatting and lint checks, the Rust tests and the Python tests.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

# CI clones afresh every run; a build cache outside the clone keeps the run well inside
# its time budget. Nothing but compiled artifacts lives there, and a missing or stale
# cache only makes the build slower.
if [ "${CI:-}" = "true" ] && [ -z "${CARGO_TARGET_DIR:-}" ]; then
  export CARGO_TARGET_DIR=/var/cache/modelmon/target
  mkdir -p "$CARGO_TARGET_DIR"
fi

step "services"
./scripts/services.sh all

step "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

step "Rust tests"
# A plain `cargo test` skips a test whose service is missing, with a line saying so. Here
# every service was just started, so a missing one is a broken setup: fail on it.
export MODELMON_TEST_SERVICES=1
INSTA_UPDATE=no cargo test --workspace --locked

step "dashboard in a browser"
# The Rust tests built the binary; the script finds it in the target dir.
node tests/browser/dashboard.mjs

if [ -x interceptor/python/test.sh ]; then
  step "Python tests"
  # The end-to-end test runs the monitor the Rust tests just built.
  cargo build --locked --bin modelmon-tui
  MODELMON_TUI="${CARGO_TARGET_DIR:-$PWD/target}/debug/modelmon-tui" interceptor/python/test.sh
fi

step "all tests passed"
