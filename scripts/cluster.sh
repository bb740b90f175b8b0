#!/usr/bin/env bash
# A local 3-node coracle cluster of real processes on loopback.
#
#   scripts/cluster.sh start            build `coracle` (release) and start nodes 1-3
#   scripts/cluster.sh stop             stop every node (SIGTERM, then SIGKILL)
#   scripts/cluster.sh status           `coracle admin status` for every group
#   scripts/cluster.sh kill NODE        SIGKILL one node
#   scripts/cluster.sh restart NODE     start one node again (after kill or stop)
#   scripts/cluster.sh addresses        the client addresses, comma-separated
#
# Settings (environment): CORACLE_CLUSTER_DIR (default target/cluster: data, logs, pids),
# CORACLE_BASE_PORT (default 7100; node n's shard s listens on base + 10(n-1) + s),
# CORACLE_SHARDS (default 1), CORACLE_GROUPS (default 1), CORACLE_BIN (a built `coracle`
# to use instead of building one), CORACLE_NAME (the cluster's name, default coracle).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${CORACLE_CLUSTER_DIR:-$root/target/cluster}"
base_port="${CORACLE_BASE_PORT:-7100}"
shards="${CORACLE_SHARDS:-1}"
groups="${CORACLE_GROUPS:-1}"
name="${CORACLE_NAME:-coracle}"
nodes=(1 2 3)

address() { echo "127.0.0.1:$((base_port + 10 * ($1 - 1)))"; }
members() {
  local list="" n
  for n in "${nodes[@]}"; do list+="${list:+,}$n=$(address "$n")"; done
  echo "$list"
}
addresses() {
  local list="" n
  for n in "${nodes[@]}"; do list+="${list:+,}$(address "$n")"; done
  echo "$list"
}

binary() {
  if [[ -n "${CORACLE_BIN:-}" ]]; then
    echo "$CORACLE_BIN"
    return
  fi
  (cd "$root" && cargo build --quiet --release -p coracle-server --bin coracle) >&2
  echo "$root/target/release/coracle"
}

pid_of() {
  local file="$dir/node-$1.pid"
  [[ -f "$file" ]] || return 1
  local pid
  pid="$(cat "$file")"
  kill -0 "$pid" 2>/dev/null || return 1
  echo "$pid"
}

check_node() {
  [[ "$1" =~ ^[123]$ ]] || { echo "cluster.sh: NODE must be 1, 2 or 3, not '$1'" >&2; exit 2; }
}

start_node() {
  local bin="$1" n="$2"
  if pid_of "$n" >/dev/null; then
    echo "node $n already runs (pid $(pid_of "$n"))"
    return
  fi
  mkdir -p "$dir"
  "$bin" server --node "$n" --members "$(members)" --cluster "$name" \
    --data-dir "$dir/node-$n" --shards "$shards" --groups "$groups" --no-pin-cores \
    >>"$dir/node-$n.log" 2>&1 &
  echo $! >"$dir/node-$n.pid"
  echo "node $n started (pid $!, $(address "$n"), log $dir/node-$n.log)"
}

command="${1:-}"
case "$command" in
  start)
    bin="$(binary)"
    for n in "${nodes[@]}"; do start_node "$bin" "$n"; done
    ;;
  stop)
    for n in "${nodes[@]}"; do
      if pid="$(pid_of "$n")"; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        echo "node $n stopped"
      fi
      rm -f "$dir/node-$n.pid"
    done
    ;;
  status)
    bin="$(binary)"
    "$bin" admin --addresses "$(addresses)" --cluster "$name" status --groups "$groups"
    ;;
  kill)
    check_node "${2:-}"
    if pid="$(pid_of "$2")"; then
      kill -KILL "$pid"
      echo "node $2 killed (pid $pid)"
    else
      echo "node $2 is not running"
    fi
    ;;
  restart)
    check_node "${2:-}"
    start_node "$(binary)" "$2"
    ;;
  addresses)
    addresses
    ;;
  *)
    sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    [[ -z "$command" ]] && exit 2
    echo "cluster.sh: unknown command '$command'" >&2
    exit 2
    ;;
esac
