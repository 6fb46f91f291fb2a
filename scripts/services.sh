#!/usr/bin/env bash
# Makes sure the real services the tests talk to are installed and answering.
# Idempotent: run it as often as you like. Needs root for installs (CI runs as root).
set -euo pipefail

log() { echo "services: $*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

apt_install() {
  # Install only what is missing; apt-get update once per run.
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]}"
  if [ -z "${APT_UPDATED:-}" ]; then apt-get update -qq; export APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

rabbitmq() {
  if ! command -v rabbitmq-server >/dev/null; then apt_install rabbitmq-server; fi
  if ! port_open 5672; then
    log "starting RabbitMQ"
    rabbitmq-server -detached || true
  fi
  for _ in $(seq 1 120); do
    if port_open 5672 && rabbitmqctl -q status >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  log "RabbitMQ is not answering on 127.0.0.1:5672 after 120 s"
  exit 1
}

tools() {
  apt_install tmux
}

case "${1:-all}" in
  rabbitmq) rabbitmq ;;
  tools) tools ;;
  all) rabbitmq; tools ;;
  *) echo "usage: $0 [all|rabbitmq|tools]" >&2; exit 2 ;;
esac
