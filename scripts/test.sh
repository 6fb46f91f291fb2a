#!/usr/bin/env bash
# The one command that runs every test: ./scripts/test.sh
# It installs and starts what the tests need (RabbitMQ, tmux, Python packages), then
# runs formatting and lint checks, the Rust tests and the Python tests.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "services"
./scripts/services.sh all

step "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

step "Rust tests"
INSTA_UPDATE=no cargo test --workspace --locked

if [ -x interceptor/python/test.sh ]; then
  step "Python tests"
  interceptor/python/test.sh
fi

step "all tests passed"
