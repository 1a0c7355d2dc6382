#!/usr/bin/env bash
# A local 3-master Redis Cluster (Debian's redis-server in cluster mode, no replicas), for
# running the index on Redis Cluster: `make up-cluster`, `make test-cluster`.
#
#   deploy/local/cluster.sh up       start the nodes that are not running; create the
#                                    cluster once (redis-cli --cluster create)
#   deploy/local/cluster.sh down     stop only the nodes 'up' started (pid files)
#   deploy/local/cluster.sh status   say what runs where
#   deploy/local/cluster.sh reset    down, then delete the cluster's data and identity
#
# Ports: DNC_CLUSTER_PORTS (default "17000 17001 17002"); data and logs under
# .local/cluster/<port>/. Same memory settings as the single Redis (redis.conf.in).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
STATE=${DNC_STACK_DIR:-$ROOT/.local}/cluster
read -r -a PORTS <<<"${DNC_CLUSTER_PORTS:-17000 17001 17002}"

say() { printf '[cluster] %s\n' "$*"; }
die() { printf '[cluster] error: %s\n' "$*" >&2; exit 1; }
# shellcheck source=deploy/local/lib.sh
. "$(dirname "$0")/lib.sh"

cli() { redis-cli -h 127.0.0.1 -p "$1" "${@:2}"; }

node_up() {  # $1 = port
  local port=$1 dir=$STATE/$1
  if pid_alive "$dir/pid" && port_open "$port"; then
    say "node 127.0.0.1:$port already running (pid $(cat "$dir/pid"))"
    return 0
  fi
  if port_open "$port"; then
    # Another checkout's cluster (CI runs in a fresh clone beside a running stack): use it,
    # as stack.sh does with Kafka and Redis; 'down' leaves it alone.
    cli "$port" cluster info 2>/dev/null | grep -q '^cluster_enabled:1\|^cluster_state:' \
      || die "127.0.0.1:$port is taken by something that is not a Redis Cluster node"
    say "a cluster node already listens on 127.0.0.1:$port; using it (not ours, 'down' leaves it alone)"
    return 0
  fi
  command -v redis-server >/dev/null || die "redis-server is missing: run 'make up' (it installs Debian's package)"
  mkdir -p "$dir"
  sed -e "s:@PORT@:$port:g" -e "s:@DIR@:$dir:g" -e "s:@PIDFILE@:$dir/pid:g" \
      -e "s:@LOGFILE@:$dir/redis.log:g" "$ROOT/deploy/redis/redis.conf.in" >"$dir/redis.conf"
  cat >>"$dir/redis.conf" <<EOF
# Cluster mode (deploy/local/cluster.sh). nodes.conf holds the node's identity and slots.
cluster-enabled yes
cluster-config-file nodes.conf
cluster-node-timeout 3000
EOF
  say "starting node 127.0.0.1:$port"
  redis-server "$dir/redis.conf"
  for _ in $(seq 1 50); do
    port_open "$port" && pid_alive "$dir/pid" && return 0
    sleep 0.1
  done
  die "node $port did not start (see $dir/redis.log)"
}

cluster_ok() { cli "${PORTS[0]}" cluster info 2>/dev/null | grep -q '^cluster_state:ok'; }

assigned_slots() { cli "$1" cluster info | sed -n 's/^cluster_slots_assigned:\([0-9]*\).*/\1/p'; }

create() {
  local port addrs=()
  for port in "${PORTS[@]}"; do
    addrs+=("127.0.0.1:$port")
    [ "$(assigned_slots "$port")" = 0 ] \
      || die "node $port already belongs to a cluster that is not healthy; 'cluster.sh reset' starts afresh"
  done
  say "creating the cluster: ${addrs[*]}"
  redis-cli --cluster create "${addrs[@]}" --cluster-replicas 0 --cluster-yes >"$STATE/create.log" 2>&1 \
    || { cat "$STATE/create.log" >&2; die "redis-cli --cluster create failed"; }
}

up() {
  local port
  mkdir -p "$STATE"
  for port in "${PORTS[@]}"; do node_up "$port"; done
  # Gossip needs a moment after a restart before the state is ok again.
  for _ in $(seq 1 30); do cluster_ok && break; sleep 0.2; done
  cluster_ok || create
  for _ in $(seq 1 100); do
    cluster_ok && { say "cluster is up: ${PORTS[*]}"; return 0; }
    sleep 0.2
  done
  die "the cluster did not reach cluster_state:ok (see $STATE/*/redis.log)"
}

down() {
  local port pidfile pid
  for port in "${PORTS[@]}"; do
    pidfile=$STATE/$port/pid
    if pid_alive "$pidfile"; then
      pid=$(cat "$pidfile")
      say "stopping node $port (pid $pid)"
      kill "$pid"
      for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
      kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    fi
    rm -f "$pidfile"
  done
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  reset)
    down
    for port in "${PORTS[@]}"; do rm -rf "${STATE:?}/$port"; done
    say "cluster data removed"
    ;;
  status)
    for port in "${PORTS[@]}"; do
      port_open "$port" && say "node: 127.0.0.1:$port" || say "node: 127.0.0.1:$port down"
    done
    cluster_ok && say "cluster_state: ok" || say "cluster_state: not ok"
    ;;
  *)
    echo "usage: $0 up|down|status|reset" >&2
    exit 2
    ;;
esac
