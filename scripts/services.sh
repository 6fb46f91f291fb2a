#!/usr/bin/env bash
# Makes sure the real services the tests talk to are installed and answering.
# Idempotent: run it as often as you like. Needs root for installs (CI runs as root).
set -euo pipefail

log() { echo "services: $*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

apt_install() {
  # Install only what is missing; apt-get update once per run. Leading --options go to
  # apt-get (--no-install-recommends).
  local opts=() missing=()
  while [ $# -gt 0 ] && [ "${1#--}" != "$1" ]; do opts+=("$1"); shift; done
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]}"
  if [ -z "${APT_UPDATED:-}" ]; then apt-get update -qq; export APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${opts[@]}" "${missing[@]}" >/dev/null
}

# The shared broker on 127.0.0.1:5672. The publisher's resource-alarm test starts a second,
# private node of its own from the same installation (publisher/tests/support/private_node.rs):
# it needs nothing more from here.
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

# Desktop notifications in tests: a session bus (dbus-daemon) and a real notification
# daemon (dunst) that needs an X display, which Xvfb provides. The tests start and stop
# their own instances; this only installs them.
notify() {
  local need=()
  command -v dbus-daemon >/dev/null || need+=(dbus)
  command -v dbus-launch >/dev/null || need+=(dbus-x11)
  command -v dunst >/dev/null || need+=(dunst)
  command -v dunstctl >/dev/null || need+=(dunst)
  command -v Xvfb >/dev/null || need+=(xvfb)
  command -v notify-send >/dev/null || need+=(libnotify-bin)
  [ ${#need[@]} -eq 0 ] || apt_install "${need[@]}"
}

# Docker engine for the container-resource tests (tests/docker.rs). No registry is reachable
# here, so the test image is imported from a tar of Debian's static busybox.
DOCKER_TEST_IMAGE=modelmon-test-busybox:latest

docker_answers() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

docker_engine() {
  command -v dockerd >/dev/null || apt_install docker.io
  if ! docker_answers; then
    log "starting dockerd (log: ${DOCKERD_LOG:-/tmp/modelmon-dockerd.log})"
    # No bridge and no iptables: test containers use --network none or host only.
    nohup dockerd --bridge=none --iptables=false >"${DOCKERD_LOG:-/tmp/modelmon-dockerd.log}" 2>&1 &
  fi
  for _ in $(seq 1 60); do
    if docker_answers; then docker_test_image; return 0; fi
    sleep 1
  done
  log "dockerd is not answering after 60 s"
  exit 1
}

docker_test_image() {
  docker image inspect "$DOCKER_TEST_IMAGE" >/dev/null 2>&1 && return 0
  apt_install busybox-static
  local bb root
  # The static binary: the image has no libc.
  bb=$(dpkg -L busybox-static | grep -m1 'bin/busybox$')
  root=$(mktemp -d)
  mkdir -p "$root/bin" "$root/tmp" "$root/dev/shm" "$root/proc" "$root/sys" "$root/etc"
  cp "$bb" "$root/bin/busybox"
  for applet in sh sleep dd yes cat head tail true false ls echo grep mkdir rm kill env; do
    ln -s busybox "$root/bin/$applet"
  done
  tar -C "$root" -cf "$root.tar" .
  log "importing $DOCKER_TEST_IMAGE"
  docker import -c 'ENV PATH=/bin' "$root.tar" "$DOCKER_TEST_IMAGE" >/dev/null
  rm -rf "$root" "$root.tar"
}

# Prometheus Alertmanager for the `format = "alertmanager"` test (tests/alerts/alertmanager.rs),
# which starts its own instance on a free loopback port: this only installs it.
alertmanager() {
  command -v prometheus-alertmanager >/dev/null || apt_install prometheus-alertmanager
}

# Prometheus for the /metrics test (tests/prometheus.rs), which starts its own server on a
# free loopback port with a scrape config of its own: this only installs it, without the
# exporters Debian recommends.
prometheus_bin() {
  command -v prometheus >/dev/null || apt_install --no-install-recommends prometheus
}

# The fault-injection harness (tests/support/model_api.rs, benches/detection.py) runs the
# iris example in a container built from bind mounts: this venv, the Python it links to
# and the app directory. The interceptor's native core is compiled here (maturin, through
# pip), which takes minutes, so a stamp of everything that goes into the venv lets a run
# with nothing changed return at once.
MODELAPI_VENV="${MODELMON_VENV:-/var/cache/modelmon/iris-venv}"

modelapi_stamp() {
  local root="$1" py="$2"
  # The native core compiles the contract and publisher crates too: they are inputs.
  # Their tests and benchmarks are not, and would only force needless rebuilds.
  {
    "$py" -c 'import sys; print(sys.version, sys.base_prefix)'
    (cd "$root" && find interceptor/python interceptor/contract interceptor/publisher \
        examples/iris-fastapi/requirements.txt \
        \( -name target -o -name __pycache__ -o -name '*.egg-info' -o -name tests \
           -o -name bench -o -name benches \) -prune -o -type f -print0 |
      LC_ALL=C sort -z | xargs -0 sha256sum)
  } | sha256sum | cut -d' ' -f1
}

modelapi() {
  local root py venv="$MODELAPI_VENV" stamp want
  root="$(cd "$(dirname "$0")/.." && pwd)"
  # The interpreter itself, not a pyenv shim: the venv's python links to it, and the
  # container mounts its prefix at the same path.
  py="$("${MODELMON_PYTHON:-python3}" -c 'import sys; print(sys.executable)')"
  stamp="$venv/.modelmon-stamp"
  want="$(modelapi_stamp "$root" "$py")"
  if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c '' 2>/dev/null &&
     [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    return 0
  fi
  log "building the model API venv at $venv (the interceptor's native core compiles: minutes)"
  mkdir -p "$(dirname "$venv")"
  if ! "$venv/bin/python" -c '' 2>/dev/null; then "$py" -m venv --clear "$venv"; fi
  export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
  "$venv/bin/python" -m pip install -q -r "$root/examples/iris-fastapi/requirements.txt"
  # Cargo's build of the core outlives this run (and the clone) in a cache of its own, so
  # a changed source recompiles only what changed.
  CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/modelmon/interceptor-target}" \
    "$venv/bin/python" -m pip install -q --force-reinstall --no-deps "$root/interceptor/python"
  "$venv/bin/python" -c 'import fastapi, uvicorn, sklearn, numpy, modelmon_interceptor._core'
  echo "$want" >"$stamp"
}

# nginx for the browser test's reverse-proxy check (the dashboard under /modelmon/): the
# test starts its own nginx with a config of its own on a free loopback port, so this only
# installs it (nginx is in /usr/sbin, which a non-root PATH may lack).
nginx_bin() {
  command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || apt_install nginx
}

# The dashboard's browser test (tests/browser/dashboard.mjs): Debian's Chromium, driven by
# playwright-core, which is told where Chromium is and so downloads no browser; and nginx,
# which the test puts in front of a monitor to load the dashboard under a path prefix.
browser() {
  command -v chromium >/dev/null || apt_install chromium
  nginx_bin
  local dir; dir="$(dirname "$0")/../tests/browser"
  if [ ! -d "$dir/node_modules/playwright-core" ]; then
    log "installing playwright-core"
    (cd "$dir" && npm ci --no-audit --no-fund >/dev/null)
  fi
}

# Several steps in one call: scripts/services.sh docker modelapi
[ $# -gt 0 ] || set -- all
for step in "$@"; do
  case "$step" in
    rabbitmq) rabbitmq ;;
    tools) tools ;;
    notify) notify ;;
    docker) docker_engine ;;
    browser) browser ;;
    nginx) nginx_bin ;;
    alertmanager) alertmanager ;;
    prometheus) prometheus_bin ;;
    modelapi) modelapi ;;
    all) rabbitmq; tools; notify; docker_engine; browser; alertmanager; prometheus_bin; modelapi ;;
    *) echo "usage: $0 [all|rabbitmq|tools|notify|docker|browser|nginx|alertmanager|prometheus|modelapi]..." >&2; exit 2 ;;
  esac
done
