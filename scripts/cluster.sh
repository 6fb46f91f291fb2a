#!/usr/bin/env bash
# A private three-node RabbitMQ cluster on loopback, for the tests that need failover (a
# node going away under connected clients, quorum queues electing a new leader) and for
# anyone who wants to watch modelmon ride out the loss of a node by hand.
#
#   scripts/cluster.sh start DIR          boot 3 nodes in DIR (new, or empty) and cluster them;
#                                         prints one line, "URL1,URL2,URL3", also kept in DIR/urls
#   scripts/cluster.sh stop-node DIR K    stop node K (1..3) entirely; the other two keep serving
#   scripts/cluster.sh start-node DIR K   bring node K back on the same name, ports and data;
#                                         it rejoins the cluster by itself
#   scripts/cluster.sh ctl DIR K ARGS...  rabbitmqctl against node K, e.g. `ctl DIR 2 -q list_queues`
#   scripts/cluster.sh stop DIR           stop whatever still runs, then remove DIR
#
# For example:
#   urls=$(scripts/cluster.sh start /tmp/cl)  # amqp://guest:guest@127.0.0.1:PORT/%2f, three times
#   scripts/cluster.sh stop-node /tmp/cl 1
#   scripts/cluster.sh start-node /tmp/cl 1
#   scripts/cluster.sh stop /tmp/cl
#
# The nodes run as the caller, from the same installation as the shared broker on
# 127.0.0.1:5672, but with names, ports, data, logs, config and an Erlang cookie of their
# own under DIR: nothing here reaches that broker, its cookie or /etc/rabbitmq. Node names
# carry a random tag, so several clusters can run at once. The publisher's tests start a
# single private node the same way (interceptor/publisher/tests/support/private_node.rs).
#
# Only the URL line goes to stdout, so `$(...)` captures just that; progress goes to stderr.
# When something fails, look in DIR/nK: server.out (console), log/ (RabbitMQ's log), env.
# A failed `start` stops its nodes but keeps DIR for that; `stop DIR` removes it.
#
# After an outage of all three nodes, start the node that stopped last first: RabbitMQ
# makes a node that went down while others still ran wait at boot for one of them.
#
# CLUSTER_BOOT_TIMEOUT (seconds, default 90) is how long each node may take to boot.
set -euo pipefail

BOOT_TIMEOUT=${CLUSTER_BOOT_TIMEOUT:-90}
STOP_TIMEOUT=15
NODES=(1 2 3)

# Settings a caller exported for some other node (RABBITMQ_NODENAME, say) would send the
# nodes or rabbitmqctl elsewhere: every one of ours comes from DIR/nK/env instead.
while read -r var; do unset "$var"; done < <(compgen -e | grep '^RABBITMQ_' || true)

log() { printf 'cluster: %s\n' "$*" >&2; }
die() {
  log "$*"
  exit 1
}

usage() {
  cat >&2 <<'EOF'
usage: scripts/cluster.sh start DIR
       scripts/cluster.sh stop-node DIR K
       scripts/cluster.sh start-node DIR K
       scripts/cluster.sh ctl DIR K RABBITMQCTL-ARGS...
       scripts/cluster.sh stop DIR
EOF
  exit 2
}

# Debian's /usr/sbin/rabbitmq-* wrappers re-run themselves as the rabbitmq user through su,
# which resets HOME (so our cookie would be ignored) and could not write to DIR. The scripts
# they wrap run as whoever starts them and take every setting from the environment.
tool() {
  if [ -x "/usr/lib/rabbitmq/bin/$1" ]; then
    echo "/usr/lib/rabbitmq/bin/$1"
  else
    echo "$1"
  fi
}
RABBITMQ_SERVER=$(tool rabbitmq-server)
RABBITMQCTL=$(tool rabbitmqctl)

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# kill -0 would also count a zombie, and whether a node's exited processes get reaped
# depends on who ends up as their parent: look for a live member of the group instead.
group_alive() {
  ps -e -o pgid=,stat= | awk -v g="$1" '$1 == g && $2 !~ /^Z/ { found = 1 } END { exit !found }'
}

# DIR as an absolute path, checked to be one of ours so that `stop` cannot delete anything
# else by mistake.
cluster_dir() {
  [ -f "$1/cluster" ] || die "$1 is not a cluster directory (it has no 'cluster' file)"
  (cd "$1" && pwd -P)
}

check_node() {
  case "$1" in
  1 | 2 | 3) ;;
  *) die "node must be 1, 2 or 3, not '$1'" ;;
  esac
}

node_var() { (. "$DIR/n$1/env" && printf '%s' "${!2}"); }

ctl() {
  local k=$1
  shift
  (
    . "$DIR/n$k/env"
    cd "$DIR/n$k"
    exec "$RABBITMQCTL" -n "$RABBITMQ_NODENAME" "$@"
  )
}

tail_node() {
  local k=$1 nd=$DIR/n$1 name
  name=$(node_var "$k" RABBITMQ_NODENAME)
  {
    echo "--- node $k ($name): console, $nd/server.out"
    tail -n 40 "$nd/server.out" 2>/dev/null || true
    echo "--- node $k ($name): log, $nd/log/$name.log"
    tail -n 40 "$nd/log/$name.log" 2>/dev/null || true
    echo "---"
  } >&2
}

# Ports below the kernel's ephemeral range: an outgoing connection (a client retrying while
# the node is down, say) could otherwise be given a node's port between stop-node and
# start-node, and the node could not listen on it again.
free_ports() {
  python3 - "$1" <<'PY'
import random, socket, sys

want = int(sys.argv[1])
with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
    ephemeral = int(f.read().split()[0])
top = ephemeral if ephemeral > 20000 else 65536
# What a default RabbitMQ, its plugins or its CLI would expect to find free.
reserved = {4369, 5671, 5672, 15671, 15672, 15692, 25672, 61613, 61614}
held, ports = [], []
while len(ports) < want:
    port = random.randrange(10000, top)
    if port in reserved or port in ports:
        continue
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        s.close()
        continue
    held.append(s)
    ports.append(port)
print(" ".join(map(str, ports)))
PY
}

write_node() {
  local k=$1 cookie=$2 name=$3 amqp=$4 dist=$5 nd=$DIR/n$1
  mkdir -p "$nd/log" "$nd/mnesia"
  # Erlang takes the cookie from $HOME and refuses one others can read. Every node and its
  # rabbitmqctl have this HOME, and the same cookie, which is what lets them cluster.
  printf '%s' "$cookie" >"$nd/.erlang.cookie"
  chmod 400 "$nd/.erlang.cookie"
  # What /etc/rabbitmq/enabled_plugins turns on for the shared node (the management UI on
  # 15672) would clash with it, and slows every boot.
  printf '[].\n' >"$nd/enabled_plugins"
  cat >"$nd/rabbitmq.conf" <<'EOF'
# Stands in for /etc/rabbitmq/rabbitmq.conf, which is the shared node's.
# Listener, ports and paths come from the environment (see env next to this file);
# guest may log in because every client comes from loopback.
EOF
  : >"$nd/rabbitmq-env.conf"
  {
    printf 'export %s=%q\n' \
      HOME "$nd" \
      RABBITMQ_NODENAME "$name" \
      RABBITMQ_NODE_IP_ADDRESS 127.0.0.1 \
      RABBITMQ_NODE_PORT "$amqp" \
      RABBITMQ_DIST_PORT "$dist" \
      RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS '-kernel inet_dist_use_interface {127,0,0,1}' \
      ERL_EPMD_ADDRESS 127.0.0.1 \
      RABBITMQ_MNESIA_BASE "$nd/mnesia" \
      RABBITMQ_LOG_BASE "$nd/log" \
      RABBITMQ_PID_FILE "$nd/node.pid" \
      RABBITMQ_ENABLED_PLUGINS_FILE "$nd/enabled_plugins" \
      RABBITMQ_CONFIG_FILE "$nd/rabbitmq.conf" \
      RABBITMQ_CONF_ENV_FILE "$nd/rabbitmq-env.conf"
  } >"$nd/env"
}

# A session of its own, so that the node outlives this script, gets no signal meant for the
# caller's terminal, and its script, VM and helpers can be killed together as one group.
launch() {
  local k=$1 nd=$DIR/n$1 pid
  (
    . "$nd/env"
    cd "$nd"
    exec setsid "$RABBITMQ_SERVER" </dev/null >>"$nd/server.out" 2>&1
  ) &
  pid=$!
  # Not a job of this script: `wait` must not wait for it, nor bash report its end.
  disown "$pid"
  echo "$pid" >"$nd/pid"
  # setsid only forks when its caller leads a group, which a background job of a script
  # never does; if that ever changed, the group to kill would not be $pid.
  sleep 0.2
  local pgid
  pgid=$(ps -o pgid= -p "$pid" | tr -d ' ' || true)
  if [ -n "$pgid" ] && [ "$pgid" != "$pid" ]; then
    log "node $k: process group $pgid is not its pid $pid"
    return 1
  fi
}

# Returns once node K accepts AMQP connections and has finished booting, or fails at the
# deadline (a $SECONDS value).
wait_booted() {
  local k=$1 deadline=$2 port pgid out left
  port=$(node_var "$k" RABBITMQ_NODE_PORT)
  pgid=$(<"$DIR/n$k/pid")
  # The AMQP listener opens in one of the last boot steps.
  until port_open "$port"; do
    if ! group_alive "$pgid"; then
      log "node $k exited while booting"
      return 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "node $k did not listen on port $port in time"
      return 1
    fi
    sleep 0.25
  done
  left=$((deadline - SECONDS))
  [ "$left" -ge 5 ] || left=5
  if ! out=$(ctl "$k" -q await_startup --timeout "$left" 2>&1); then
    log "node $k: rabbitmqctl await_startup failed: $out"
    return 1
  fi
}

# The names of the running nodes, as node K sees them, sorted, space-separated.
running_nodes() {
  ctl "$1" -q cluster_status --formatter json 2>/dev/null |
    python3 -c 'import json, sys; print(" ".join(sorted(json.load(sys.stdin)["running_nodes"])))'
}

# Stops node K's whole VM: politely first, then by killing its process group. Returns once
# its AMQP port refuses connections; fails only if it still accepts them after all that.
stop_node() {
  local k=$1 nd=$DIR/n$1 pgid port ctl_pid ctl_done=0 deadline
  [ -f "$nd/pid" ] || return 0
  pgid=$(<"$nd/pid")
  port=$(node_var "$k" RABBITMQ_NODE_PORT)
  if group_alive "$pgid"; then
    # A node paused with SIGSTOP (a test simulating a hang) would not answer `stop`.
    kill -CONT -- "-$pgid" 2>/dev/null || true
    # Bounded, so that a node which never answers cannot keep its rabbitmqctl around.
    (
      . "$nd/env"
      cd "$nd"
      exec timeout $((STOP_TIMEOUT + 5)) "$RABBITMQCTL" -n "$RABBITMQ_NODENAME" -q stop
    ) >/dev/null 2>&1 &
    ctl_pid=$!
    deadline=$((SECONDS + STOP_TIMEOUT))
    while group_alive "$pgid" && [ "$SECONDS" -lt "$deadline" ]; do
      if [ "$ctl_done" = 0 ] && ! kill -0 "$ctl_pid" 2>/dev/null; then
        ctl_done=1
        # The node did not take the request (or did not answer it while going down): a
        # short grace, not the full wait, before it is killed.
        if ! wait "$ctl_pid" && [ "$deadline" -gt $((SECONDS + 3)) ]; then
          deadline=$((SECONDS + 3))
        fi
      fi
      sleep 0.2
    done
    if group_alive "$pgid"; then
      log "node $k did not stop when asked: killing its process group $pgid"
      kill -KILL -- "-$pgid" 2>/dev/null || true
      deadline=$((SECONDS + 5))
      while group_alive "$pgid" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
    fi
    if [ "$ctl_done" = 0 ]; then
      kill "$ctl_pid" 2>/dev/null || true
      wait "$ctl_pid" 2>/dev/null || true
    fi
  fi
  deadline=$((SECONDS + STOP_TIMEOUT))
  while port_open "$port"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "node $k: port $port still accepts connections"
      return 1
    fi
    sleep 0.2
  done
}

stop_all() {
  local k
  for k in "${NODES[@]}"; do stop_node "$k" & done
  wait || true
}

cmd_start() {
  local dir=$1
  if [ -e "$dir" ]; then
    [ -d "$dir" ] || die "$dir exists and is not a directory"
    [ -z "$(ls -A "$dir")" ] || die "$dir is not empty"
  fi
  mkdir -p "$dir"
  DIR=$(cd "$dir" && pwd -P)
  local started=$SECONDS

  local base tag cookie ports k
  base=${DIR##*/}
  base=${base//[^A-Za-z0-9_-]/-}
  tag=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
  cookie=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
  local prefix="modelmon-${base:0:24}-$tag"
  printf 'prefix=%s\n' "$prefix" >"$DIR/cluster"
  read -ra ports <<<"$(free_ports 6)"
  [ "${#ports[@]}" -eq 6 ] || die "could not find free ports"
  local names=() urls=()
  for k in "${NODES[@]}"; do
    names+=("$prefix-n$k@localhost")
    urls+=("amqp://guest:guest@127.0.0.1:${ports[2 * (k - 1)]}/%2f")
    write_node "$k" "$cookie" "${names[k - 1]}" "${ports[2 * (k - 1)]}" "${ports[2 * k - 1]}"
  done

  # From here on, a failure or an interrupt must not leave nodes behind.
  trap 'rc=$?; if [ "$rc" != 0 ]; then log "stopping the nodes of $DIR"; stop_all; fi' EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM

  # Booting in parallel saves most of the wait, and the nodes do not need each other yet.
  log "booting ${names[*]}"
  for k in "${NODES[@]}"; do launch "$k" || { tail_node "$k"; exit 1; }; done
  for k in "${NODES[@]}"; do
    wait_booted "$k" $((SECONDS + BOOT_TIMEOUT)) || { tail_node "$k"; exit 1; }
  done
  log "booted in $((SECONDS - started)) s"

  # One at a time: each join changes the cluster's membership, which the next one reads.
  for k in "${NODES[@]:1}"; do
    log "node $k joins ${names[0]}"
    local out
    for step in stop_app "join_cluster ${names[0]}" start_app; do
      # shellcheck disable=SC2086 # the join step is two words on purpose
      if ! out=$(ctl "$k" -q $step 2>&1); then
        log "node $k: rabbitmqctl $step failed: $out"
        tail_node "$k"
        exit 1
      fi
    done
    wait_booted "$k" $((SECONDS + BOOT_TIMEOUT)) || { tail_node "$k"; exit 1; }
  done

  # Quorum queues are only spread over the nodes that are running members when declared.
  local want have="" deadline=$((SECONDS + BOOT_TIMEOUT))
  want=$(printf '%s\n' "${names[@]}" | sort | tr '\n' ' ')
  want=${want% }
  until [ "$have" = "$want" ]; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "node 1 sees running nodes '$have', not '$want'"
      tail_node 1
      exit 1
    fi
    sleep 0.5
    have=$(running_nodes 1 || true)
  done

  local line
  line=$(
    IFS=,
    echo "${urls[*]}"
  )
  echo "$line" >"$DIR/urls"
  trap - EXIT INT TERM
  log "cluster of 3 nodes up in $((SECONDS - started)) s"
  echo "$line"
}

cmd_stop_node() {
  DIR=$(cluster_dir "$1")
  check_node "$2"
  local started=$SECONDS
  stop_node "$2" || { tail_node "$2"; exit 1; }
  log "node $2 stopped in $((SECONDS - started)) s"
}

cmd_start_node() {
  DIR=$(cluster_dir "$1")
  check_node "$2"
  local k=$2 started=$SECONDS
  if [ -f "$DIR/n$k/pid" ] && group_alive "$(<"$DIR/n$k/pid")"; then
    log "node $k is already running"
  else
    launch "$k" || { tail_node "$k"; exit 1; }
  fi
  if ! wait_booted "$k" $((SECONDS + BOOT_TIMEOUT)); then
    tail_node "$k"
    # Half booted, it would only confuse the next step (or the next start-node).
    stop_node "$k" || true
    exit 1
  fi
  log "node $k started in $((SECONDS - started)) s"
}

cmd_ctl() {
  DIR=$(cluster_dir "$1")
  check_node "$2"
  local k=$2
  shift 2
  ctl "$k" "$@"
}

cmd_stop() {
  [ -e "$1" ] || return 0
  DIR=$(cluster_dir "$1")
  stop_all
  rm -rf "$DIR"
}

[ $# -ge 2 ] || usage
command=$1
shift
case "$command:$#" in
start:1) cmd_start "$1" ;;
stop-node:2) cmd_stop_node "$1" "$2" ;;
start-node:2) cmd_start_node "$1" "$2" ;;
ctl:*) cmd_ctl "$@" ;;
stop:1) cmd_stop "$1" ;;
*) usage ;;
esac
