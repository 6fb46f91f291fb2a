#!/usr/bin/env bash
# What Docker polling costs the monitor, and whether its CPU % agrees with `docker stats`.
#
#   scripts/bench-docker.sh [N_CONTAINERS=50] [SECONDS=60]
#
# Starts N idle labelled containers (plus two busy ones for the agreement check), runs
# `modelmon-tui --batch --interval 2s` twice in the same run -- once with Docker polling
# at the default 2 s, once with --no-docker as the baseline -- and reads each one's CPU
# time from /proc/<pid>/stat over SECONDS. Prints the monitor's CPU in % of one core and
# the ratio to the baseline; then compares per-container CPU % with `docker stats
# --no-stream` taken right after the same monitor's sample. A benchmark measures: it
# asserts nothing. Needs the engine and test image from `scripts/services.sh docker`.
set -euo pipefail

N=${1:-50}
SECS=${2:-60}
BIN=${MODELMON_BIN:-target/release/modelmon-tui}
IMAGE=modelmon-test-busybox:latest
TAG=mmbench-$$
WORK=$(mktemp -d)
HZ=$(getconf CLK_TCK)

cleanup() {
  # Only what this script started: its monitors and its labelled containers.
  for p in $(cat "$WORK"/pids 2>/dev/null); do kill "$p" 2>/dev/null || true; done
  ids=$(docker ps -aq --filter "label=mmbench=$TAG")
  [ -z "$ids" ] || docker rm -f $ids >/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

[ -x "$BIN" ] || cargo build --release --bin modelmon-tui
echo "starting $N idle containers + 2 busy ones" >&2
for i in $(seq 1 "$N"); do
  # Ten models with N/10 replicas each: per-instance and per-model sums both work.
  docker run -d --network none --label mmbench=$TAG --label "mmbench.model=bench-$TAG-$((i % 10))" \
    --name "$TAG-idle-$i" "$IMAGE" sleep 3600 >/dev/null
done
for i in 1 2; do
  docker run -d --network none --label mmbench=$TAG --label "mmbench.model=bench-$TAG-busy" \
    --name "$TAG-busy-$i" "$IMAGE" sh -c 'while :; do :; done' >/dev/null
done

# Its own label key, so other monitors polling the same engine do not pick these up.
printf '[docker]\nlabel_key = "mmbench.model"\n' >"$WORK/config.toml"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# Runs the monitor for SECS and prints its CPU in % of one core; its lines go to $2.
measure() {
  local flags=$1 out=$2
  XDG_CONFIG_HOME=/nonexistent XDG_STATE_HOME="$WORK/state-$RANDOM" \
    "$BIN" --config "$WORK/config.toml" --batch --interval 2s $flags >"$out" 2>/dev/null &
  local pid=$!
  echo "$pid" >>"$WORK/pids"
  # Let it connect and start every stats stream before measuring.
  sleep 10
  local t0 c0 t1 c1
  t0=$(date +%s.%N); c0=$(cpu_ticks "$pid")
  sleep "$SECS"
  t1=$(date +%s.%N); c1=$(cpu_ticks "$pid")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  echo "$c0 $c1 $t0 $t1 $HZ" | awk '{printf "%.2f", ($2 - $1) / $5 / ($4 - $3) * 100}'
}

base=$(measure --no-docker "$WORK/base.ndjson")
with=$(measure "" "$WORK/docker.ndjson")
containers=$(tail -n 1 "$WORK/docker.ndjson" | python3 -c 'import json,sys; print(json.load(sys.stdin)["docker"]["containers"])')
echo "monitor CPU, % of one core over ${SECS}s: with Docker polling ($containers containers, 2 s) = $with; --no-docker baseline = $base"
awk -v a="$with" -v b="$base" 'BEGIN { if (b > 0) printf "ratio with/without Docker: %.2f\n", a / b }'

# Agreement with docker stats: a fresh monitor, then docker stats right after each of
# its samples, per container, five rounds.
XDG_CONFIG_HOME=/nonexistent XDG_STATE_HOME="$WORK/state-agree" \
  "$BIN" --config "$WORK/config.toml" --batch --interval 1s >"$WORK/agree.ndjson" 2>/dev/null &
echo $! >>"$WORK/pids"
sleep 10
for round in 1 2 3 4 5; do
  docker stats --no-stream --format '{{.Name}} {{.CPUPerc}}' $(docker ps -q --filter "label=mmbench=$TAG") \
    | sed 's/%$//' >"$WORK/stats-$round.txt"
  tail -n 1 "$WORK/agree.ndjson" >"$WORK/line-$round.json"
done
python3 - "$WORK" <<'EOF'
import json, sys, glob, os
work = sys.argv[1]
diffs = []
for r in range(1, 6):
    stats = dict(l.split() for l in open(os.path.join(work, f"stats-{r}.txt")) if l.strip())
    line = json.load(open(os.path.join(work, f"line-{r}.json")))
    for m in line["models"]:
        for c in m.get("containers") or []:
            if c["name"] in stats and c["cpu_percent"] is not None:
                diffs.append((c["name"], c["cpu_percent"], float(stats[c["name"]])))
busy = [abs(a - b) for n, a, b in diffs if "-busy-" in n]
idle = [abs(a - b) for n, a, b in diffs if "-idle-" in n]
def summary(xs):
    xs = sorted(xs)
    return f"n={len(xs)} mean |diff|={sum(xs)/len(xs):.2f} pts, max={xs[-1]:.2f} pts" if xs else "n=0"
print("CPU % vs docker stats, idle containers:", summary(idle))
print("CPU % vs docker stats, busy containers:", summary(busy))
EOF
