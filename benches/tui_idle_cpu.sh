#!/usr/bin/env bash
# The TUI's own CPU with --demo and nobody at the keyboard, over 30 s (issue 5 goal:
# at most 1 % of one core). Baseline in the same run: the same binary with --headless,
# which runs the same store and demo simulator without a display, so the difference is
# what the UI itself costs.
#
#   benches/tui_idle_cpu.sh [SECONDS] [BINARY]
set -euo pipefail
secs=${1:-30}
bin=${2:-target/release/modelmon-tui}
[ -x "$bin" ] || { echo "build it first: cargo build --release --bin modelmon-tui" >&2; exit 2; }
command -v tmux >/dev/null || { echo "tmux is needed (scripts/services.sh installs it)" >&2; exit 2; }
bin=$(realpath "$bin")
sock="modelmon-idle-$$"
state=$(mktemp -d)
trap 'tmux -L "$sock" kill-server 2>/dev/null || true; rm -rf "$state"' EXIT
hz=$(getconf CLK_TCK)

# utime + stime of a pid, in clock ticks.
ticks() { awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }

measure() { # label, args...
  local label=$1; shift
  tmux -L "$sock" new-session -d -s "$label" -x 160 -y 45 \
    "env -i PATH=$PATH TERM=tmux-256color LANG=C.UTF-8 HOME=$state XDG_CONFIG_HOME=/nonexistent XDG_STATE_HOME=$state $bin $*"
  local pid=""
  for _ in $(seq 50); do
    pid=$(pgrep -P "$(tmux -L "$sock" display -p -t "$label" '#{pane_pid}')" || tmux -L "$sock" display -p -t "$label" '#{pane_pid}')
    [ -n "$pid" ] && break
    sleep 0.1
  done
  sleep 5 # past start-up
  local t0 c0 t1 c1
  t0=$(date +%s.%N); c0=$(ticks "$pid")
  sleep "$secs"
  t1=$(date +%s.%N); c1=$(ticks "$pid")
  tmux -L "$sock" kill-session -t "$label"
  awk -v c="$((c1 - c0))" -v hz="$hz" -v t0="$t0" -v t1="$t1" -v l="$label" \
    'BEGIN { printf "%-9s %6.2f %% of one core over %.1f s\n", l, 100 * c / hz / (t1 - t0), t1 - t0 }'
}

measure headless --demo --headless
measure tui --demo
