#!/usr/bin/env bash
# What `modelmon-tui agent` costs on a host with many containers.
#
#   benches/agent_cost.sh [N_CONTAINERS=50] [SECONDS=60] [INTERVAL=2s]
#
# Starts N idle labelled busybox containers (`sleep 3600`, `--network none`), runs the
# release agent against them and the broker (MODELMON_AMQP_URL, default
# amqp://127.0.0.1:5672/%2f), lets it start every stats stream, then reads its CPU time
# (utime + stime of /proc/<pid>/stat) over SECONDS and its VmRSS at the end. Prints CPU in
# % of one core and RSS in MiB. Removes its containers on exit, even when interrupted.
# A benchmark measures: it asserts nothing. Needs a Docker engine with the test image
# (`scripts/services.sh docker`) and a broker (`scripts/services.sh rabbitmq`).
set -euo pipefail

N=${1:-50}
SECS=${2:-60}
INTERVAL=${3:-2s}
BIN=${MODELMON_BIN:-${CARGO_TARGET_DIR:-target}/release/modelmon-tui}
AMQP=${MODELMON_AMQP_URL:-amqp://127.0.0.1:5672/%2f}
IMAGE=modelmon-test-busybox:latest
TAG=mmagent-$$
WORK=$(mktemp -d)
HZ=$(getconf CLK_TCK)
PID=

cleanup() {
  # Only what this script started: its agent and its labelled containers.
  [ -z "$PID" ] || kill "$PID" 2>/dev/null || true
  ids=$(docker ps -aq --filter "label=mmagent=$TAG")
  [ -z "$ids" ] || docker rm -f $ids >/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

[ -x "$BIN" ] || cargo build --release --bin modelmon-tui
echo "starting $N idle containers" >&2
for i in $(seq 1 "$N"); do
  docker run -d --network none --label mmagent=$TAG --label "mmagent.model=agent-$TAG-$((i % 10))" \
    --name "$TAG-$i" "$IMAGE" sleep 3600 >/dev/null
done

# Its own label key, so that monitors polling the same engine leave these alone.
printf '[docker]\nlabel_key = "mmagent.model"\n' >"$WORK/config.toml"
XDG_CONFIG_HOME=/nonexistent "$BIN" agent --host "$TAG" --amqp "$AMQP" \
  --config "$WORK/config.toml" --interval "$INTERVAL" 2>"$WORK/agent.log" &
PID=$!

# Let it connect and open every stats stream before measuring.
sleep 10
kill -0 "$PID" || { cat "$WORK/agent.log" >&2; exit 1; }
ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
t0=$(date +%s.%N); c0=$(ticks)
sleep "$SECS"
t1=$(date +%s.%N); c1=$(ticks)
rss_kb=$(awk '/^VmRSS:/ {print $2}' "/proc/$PID/status")
hwm_kb=$(awk '/^VmHWM:/ {print $2}' "/proc/$PID/status")
threads=$(awk '/^Threads:/ {print $2}' "/proc/$PID/status")

echo "$c0 $c1 $t0 $t1 $HZ $rss_kb $hwm_kb" | awk -v n="$N" -v s="$SECS" -v i="$INTERVAL" -v th="$threads" '{
  printf "agent, %d containers, interval %s, over %ds: CPU %.2f %% of one core, RSS %.1f MiB (peak %.1f MiB), %d threads\n",
    n, i, s, ($2 - $1) / $5 / ($4 - $3) * 100, $6 / 1024, $7 / 1024, th }'
