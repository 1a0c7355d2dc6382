#!/usr/bin/env bash
# Local three-node Apache Kafka cluster (KRaft, each node broker + controller) on loopback,
# shaped like production: replication factor 3, min.insync.replicas=2, no unclean election.
#
#   deploy/local/kafka-cluster.sh up            start the nodes not already running; wait
#                                               until every broker answers metadata
#   deploy/local/kafka-cluster.sh down          stop only the nodes 'up' started
#   deploy/local/kafka-cluster.sh status        say what runs where
#   deploy/local/kafka-cluster.sh start N       start node N (1-3) alone (after a kill)
#   deploy/local/kafka-cluster.sh pid N         node N's process id (for fault tests)
#   deploy/local/kafka-cluster.sh properties N  print node N's generated server.properties
#
# Brokers on 127.0.0.1:19192-19194, controllers on 19195-19197, data and logs under
# .local/kafka-cluster/ (gitignored). The environment can move all of it so that a private
# cluster (the fault suite's) sits beside this one:
#   DNC_KAFKA_CLUSTER_DIR, DNC_KAFKA_CLUSTER_PORTS ("19192 19193 19194"),
#   DNC_KAFKA_CLUSTER_CONTROLLER_PORTS ("19195 19196 19197"), DNC_KAFKA_CLUSTER_HEAP (512m),
#   DNC_KAFKA_LIBS (the jars stack.sh fetched, $DNC_STACK_DIR/kafka/libs or .local/kafka/libs).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
STATE=${DNC_KAFKA_CLUSTER_DIR:-$ROOT/.local/kafka-cluster}
read -r -a PORTS <<<"${DNC_KAFKA_CLUSTER_PORTS:-19192 19193 19194}"
read -r -a CPORTS <<<"${DNC_KAFKA_CLUSTER_CONTROLLER_PORTS:-19195 19196 19197}"
HEAP=${DNC_KAFKA_CLUSTER_HEAP:-512m}
LIBS=${DNC_KAFKA_LIBS:-${DNC_STACK_DIR:-$ROOT/.local}/kafka/libs}
NODES=(1 2 3)

say() { printf '[kafka-cluster] %s\n' "$*"; }
die() { printf '[kafka-cluster] error: %s\n' "$*" >&2; exit 1; }
# shellcheck source=deploy/local/lib.sh
. "$(dirname "$0")/lib.sh"

[ "${#PORTS[@]}" -eq 3 ] || die "DNC_KAFKA_CLUSTER_PORTS must name 3 ports, got '${PORTS[*]}'"
[ "${#CPORTS[@]}" -eq 3 ] || die "DNC_KAFKA_CLUSTER_CONTROLLER_PORTS must name 3 ports, got '${CPORTS[*]}'"

node_dir() { echo "$STATE/node$1"; }
node_port() { echo "${PORTS[$(($1 - 1))]}"; }

check_node() {
  case "${1:-}" in 1|2|3) ;; *) die "node must be 1, 2 or 3, got '${1:-}'" ;; esac
}

voters() {
  local out="" n
  for n in "${NODES[@]}"; do out+="${out:+,}$n@127.0.0.1:${CPORTS[$((n - 1))]}"; done
  echo "$out"
}

properties() {  # $1 = node
  sed -e "s|@NODE_ID@|$1|g" -e "s|@VOTERS@|$(voters)|g" \
      -e "s|@KAFKA_PORT@|${PORTS[$(($1 - 1))]}|g" \
      -e "s|@CONTROLLER_PORT@|${CPORTS[$(($1 - 1))]}|g" \
      -e "s|@DATA@|$(node_dir "$1")/data|g" \
      "$ROOT/deploy/kafka/cluster-node.properties.in"
}

libs() {
  # The single-node stack fetches the jars from Maven Central once; the cluster reuses them.
  if [ ! -f "$LIBS/.version" ]; then
    [ -z "${DNC_KAFKA_LIBS:-}" ] || die "no Kafka jars in DNC_KAFKA_LIBS=$LIBS"
    "$ROOT/deploy/local/stack.sh" libs
  fi
}

cluster_id() {
  if [ ! -f "$STATE/cluster.id" ]; then
    java -cp "$LIBS/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1 >"$STATE/cluster.id"
    [ -s "$STATE/cluster.id" ] || die "could not make a cluster id (kafka.tools.StorageTool random-uuid)"
  fi
  cat "$STATE/cluster.id"
}

start_node() {  # $1 = node
  local dir port
  dir=$(node_dir "$1")
  port=$(node_port "$1")
  if pid_alive "$dir/pid" && port_open "$port"; then
    say "node $1 already running (pid $(cat "$dir/pid")) on 127.0.0.1:$port"
    return 0
  fi
  if port_open "$port"; then
    # Like stack.sh: a node started elsewhere (another checkout) is used, never stopped;
    # wait_healthy still checks that it belongs to a cluster of three.
    say "something already listens on 127.0.0.1:$port; using it as node $1 (not ours, 'down' leaves it alone)"
    return 0
  fi
  mkdir -p "$dir/data" "$dir/logs"
  properties "$1" >"$dir/server.properties"
  if [ ! -f "$dir/data/meta.properties" ]; then
    java -cp "$LIBS/*" -Dlog4j2.configurationFile="$ROOT/deploy/kafka/log4j2.properties" \
      kafka.tools.StorageTool format -t "$(cluster_id)" -c "$dir/server.properties" \
      >"$dir/logs/format.log" 2>&1 \
      || { cat "$dir/logs/format.log" >&2; die "storage format of node $1 failed"; }
  fi
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
  say "starting node $1: broker 127.0.0.1:$port, controller 127.0.0.1:${CPORTS[$(($1 - 1))]}"
  printf '\n===== kafka-cluster.sh: starting node %s at %s =====\n' "$1" "$(date -u +%FT%TZ)" \
    >>"$dir/logs/server.out"
  # setsid: the node must outlive the shell that started it (make, CI step, a test).
  setsid nohup java -Xms128m -Xmx"$HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -Djava.awt.headless=true -Dlog4j2.configurationFile="$ROOT/deploy/kafka/log4j2.properties" \
    -Dkafka.logs.dir="$dir/logs" \
    -cp "$LIBS/*" kafka.Kafka "$dir/server.properties" \
    >>"$dir/logs/server.out" 2>&1 </dev/null &
  echo $! >"$dir/pid"
}

# Every broker is asked for metadata (Kafka protocol, Metadata v4) and must list all three.
brokers_seen() {  # $1 = port; prints how many brokers it reports, or nothing
  python3 - "$1" <<'PY' 2>/dev/null
import socket, struct, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
client = b"kafka-cluster.sh"
body = struct.pack(">hhih", 3, 4, 1, len(client)) + client + struct.pack(">i?", -1, False)
s.sendall(struct.pack(">i", len(body)) + body)
def read(n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data
size = struct.unpack(">i", read(4))[0]
resp = read(size)
# correlation id, throttle time, then the brokers array
print(struct.unpack(">i", resp[8:12])[0])
PY
}

wait_healthy() {
  local n seen
  for _ in $(seq 1 180); do
    local ok=1
    for n in "${NODES[@]}"; do
      pid_alive "$(node_dir "$n")/pid" || port_open "$(node_port "$n")" \
        || { tail -30 "$(node_dir "$n")/logs/server.out" >&2; die "node $n exited during start"; }
      seen=$(brokers_seen "$(node_port "$n")" || true)
      [ "${seen:-0}" = "3" ] || ok=0
    done
    [ "$ok" = 1 ] && { say "all three brokers answer metadata"; return 0; }
    sleep 0.5
  done
  die "the brokers did not all see each other within 90 s (logs: $STATE/node*/logs/server.out)"
}

# All nodes at once: stopped one after the other, the last one waits for a controller
# quorum that is already gone, and has to be killed after 30 s.
stop_nodes() {
  local n file pid pids=()
  for n in "${NODES[@]}"; do
    file="$(node_dir "$n")/pid"
    if pid_alive "$file"; then
      pid=$(cat "$file")
      say "stopping node $n (pid $pid)"
      kill "$pid"
      pids+=("$pid")
    else
      say "node $n was not started by this script; leaving it alone"
    fi
    rm -f "$file"
  done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && { say "pid $pid did not stop in 30 s; killing it"; kill -9 "$pid"; }
  done
  return 0
}

case "${1:-}" in
  up)
    mkdir -p "$STATE"
    libs
    for n in "${NODES[@]}"; do start_node "$n"; done
    wait_healthy
    ;;
  down)
    stop_nodes
    ;;
  start)
    check_node "${2:-}"
    mkdir -p "$STATE"
    libs
    start_node "$2"
    ;;
  pid)
    check_node "${2:-}"
    pid_alive "$(node_dir "$2")/pid" || die "node $2 is not running"
    cat "$(node_dir "$2")/pid"
    ;;
  properties)
    check_node "${2:-}"
    properties "$2"
    ;;
  status)
    for n in "${NODES[@]}"; do
      port=$(node_port "$n")
      if port_open "$port"; then
        say "node $n: broker 127.0.0.1:$port (sees $(brokers_seen "$port" || echo '?') brokers)"
      else
        say "node $n: down (127.0.0.1:$port)"
      fi
    done
    ;;
  *)
    echo "usage: $0 up|down|status|start N|pid N|properties N" >&2
    exit 2
    ;;
esac
