#!/usr/bin/env bash
# Local stack: the real Apache Kafka broker (KRaft, single node) and Redis 7, on loopback.
#
#   deploy/local/stack.sh up       start what is not already running and healthy
#   deploy/local/stack.sh down     stop only what 'up' started (pid files under .local/)
#   deploy/local/stack.sh status   say what runs where
#   deploy/local/stack.sh libs     fetch the Kafka jars only (once; Maven Central)
#
# Data and logs live under .local/ (gitignored). Ports come from the environment so that
# a second stack (e.g. a Redis Cluster for the scale-out tests) can sit beside this one.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
STATE=${DNC_STACK_DIR:-$ROOT/.local}
KAFKA_PORT=${DNC_KAFKA_PORT:-19092}
CONTROLLER_PORT=${DNC_KAFKA_CONTROLLER_PORT:-19093}
REDIS_PORT=${DNC_REDIS_PORT:-16379}
KAFKA_HEAP=${DNC_KAFKA_HEAP:-1g}
KAFKA_DIR=$STATE/kafka
REDIS_DIR=$STATE/redis

say() { printf '[stack] %s\n' "$*"; }
die() { printf '[stack] error: %s\n' "$*" >&2; exit 1; }
# shellcheck source=deploy/local/lib.sh
. "$(dirname "$0")/lib.sh"



need_apt_package() {  # $1 = command, $2 = Debian package
  command -v "$1" >/dev/null 2>&1 && return 0
  if command -v apt-get >/dev/null 2>&1; then
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    say "installing Debian package $2 (for $1)"
    $sudo apt-get update -qq >/dev/null || die "apt-get update failed; install $2 by hand"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$2" >/dev/null \
      || die "apt-get install $2 failed; install it by hand"
  else
    die "'$1' is missing and apt-get is not available: install the '$2' package by hand"
  fi
}

check_java() {
  command -v java >/dev/null 2>&1 || die "Java 17 or newer is required to run the Kafka broker (Debian: apt-get install openjdk-17-jre-headless)"
  command -v mvn >/dev/null 2>&1 || die "Maven is required to fetch the Kafka jars from Maven Central (Debian: apt-get install maven)"
  local major
  major=$(java -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/ {print $2}')
  [ "${major%%.*}" -ge 17 ] 2>/dev/null || die "Java 17 or newer is required, found $major"
}

kafka_libs() {
  local version stamp
  version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$ROOT/deploy/kafka/pom.xml")
  stamp=$KAFKA_DIR/libs/.version
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$(sha1sum "$ROOT/deploy/kafka/pom.xml" | cut -c1-40)" ]; then
    return 0
  fi
  say "fetching Apache Kafka $version jars from Maven Central"
  rm -rf "$KAFKA_DIR/libs"
  mkdir -p "$KAFKA_DIR/libs"
  mvn -q -B -f "$ROOT/deploy/kafka/pom.xml" package -Dlibs.dir="$KAFKA_DIR/libs" \
    -Dproject.build.directory="$KAFKA_DIR/target" >"$KAFKA_DIR/mvn.log" 2>&1 \
    || { tail -20 "$KAFKA_DIR/mvn.log" >&2; die "mvn could not fetch the Kafka jars (see $KAFKA_DIR/mvn.log)"; }
  sha1sum "$ROOT/deploy/kafka/pom.xml" | cut -c1-40 >"$stamp"
}

kafka_up() {
  if pid_alive "$KAFKA_DIR/pid" && port_open "$KAFKA_PORT"; then
    say "kafka already running (pid $(cat "$KAFKA_DIR/pid")) on 127.0.0.1:$KAFKA_PORT"
    return 0
  fi
  if port_open "$KAFKA_PORT"; then
    say "something already listens on 127.0.0.1:$KAFKA_PORT; using it as the Kafka broker (not ours, 'down' leaves it alone)"
    return 0
  fi
  check_java
  kafka_libs
  mkdir -p "$KAFKA_DIR/data" "$KAFKA_DIR/logs"
  sed -e "s:@KAFKA_PORT@:$KAFKA_PORT:g" -e "s:@CONTROLLER_PORT@:$CONTROLLER_PORT:g" \
      -e "s:@DATA@:$KAFKA_DIR/data:g" \
      "$ROOT/deploy/kafka/server.properties.in" >"$KAFKA_DIR/server.properties"
  if [ ! -f "$KAFKA_DIR/data/meta.properties" ]; then
    say "formatting KRaft storage"
    java -cp "$KAFKA_DIR/libs/*" -Dlog4j2.configurationFile="$ROOT/deploy/kafka/log4j2.properties" \
      kafka.tools.StorageTool format --standalone -t "$(java -cp "$KAFKA_DIR/libs/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)" \
      -c "$KAFKA_DIR/server.properties" >"$KAFKA_DIR/logs/format.log" 2>&1 \
      || { cat "$KAFKA_DIR/logs/format.log" >&2; die "kafka storage format failed"; }
  fi
  # A broker keeps several files open per partition; test suites create many topics.
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
  say "starting kafka on 127.0.0.1:$KAFKA_PORT (open files: $(ulimit -n))"
  # Appended, so that a restarted broker's log keeps what happened before the restart.
  printf '\n===== stack.sh: starting kafka at %s =====\n' "$(date -u +%FT%TZ)" >>"$KAFKA_DIR/logs/server.out"
  # setsid: the broker must outlive the shell that started it (make, CI step).
  setsid nohup java -Xms256m -Xmx"$KAFKA_HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -Djava.awt.headless=true -Dlog4j2.configurationFile="$ROOT/deploy/kafka/log4j2.properties" \
    -Dkafka.logs.dir="$KAFKA_DIR/logs" \
    -cp "$KAFKA_DIR/libs/*" kafka.Kafka "$KAFKA_DIR/server.properties" \
    >>"$KAFKA_DIR/logs/server.out" 2>&1 </dev/null &
  echo $! >"$KAFKA_DIR/pid"
  for _ in $(seq 1 120); do
    port_open "$KAFKA_PORT" && { say "kafka is up"; return 0; }
    pid_alive "$KAFKA_DIR/pid" || { tail -30 "$KAFKA_DIR/logs/server.out" >&2; die "kafka exited during start"; }
    sleep 0.5
  done
  tail -30 "$KAFKA_DIR/logs/server.out" >&2
  die "kafka did not open 127.0.0.1:$KAFKA_PORT within 60 s"
}

redis_up() {
  if pid_alive "$REDIS_DIR/pid" && port_open "$REDIS_PORT"; then
    say "redis already running (pid $(cat "$REDIS_DIR/pid")) on 127.0.0.1:$REDIS_PORT"
    return 0
  fi
  if port_open "$REDIS_PORT"; then
    say "something already listens on 127.0.0.1:$REDIS_PORT; using it as Redis (not ours, 'down' leaves it alone)"
    return 0
  fi
  need_apt_package redis-server redis-server
  mkdir -p "$REDIS_DIR/data"
  sed -e "s:@PORT@:$REDIS_PORT:g" -e "s:@DIR@:$REDIS_DIR/data:g" -e "s:@PIDFILE@:$REDIS_DIR/pid:g" \
      -e "s:@LOGFILE@:$REDIS_DIR/redis.log:g" \
      "$ROOT/deploy/redis/redis.conf.in" >"$REDIS_DIR/redis.conf"
  say "starting redis on 127.0.0.1:$REDIS_PORT"
  redis-server "$REDIS_DIR/redis.conf"
  for _ in $(seq 1 50); do
    port_open "$REDIS_PORT" && pid_alive "$REDIS_DIR/pid" && { say "redis is up"; return 0; }
    sleep 0.1
  done
  die "redis did not start (see $REDIS_DIR/redis.log)"
}

stop_pid() {  # $1 = name, $2 = pidfile
  if pid_alive "$2"; then
    local pid
    pid=$(cat "$2")
    say "stopping $1 (pid $pid)"
    kill "$pid"
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && { say "$1 did not stop in 30 s; killing it"; kill -9 "$pid"; }
  else
    say "$1 was not started by this stack; leaving it alone"
  fi
  rm -f "$2"
}

case "${1:-}" in
  up)
    mkdir -p "$STATE"
    redis_up
    kafka_up
    ;;
  down)
    stop_pid kafka "$KAFKA_DIR/pid"
    stop_pid redis "$REDIS_DIR/pid"
    ;;
  libs)
    # The Kafka jars alone (deploy/local/kafka-cluster.sh runs its nodes from them).
    mkdir -p "$STATE"
    check_java
    kafka_libs
    ;;
  status)
    port_open "$KAFKA_PORT" && say "kafka: 127.0.0.1:$KAFKA_PORT" || say "kafka: down"
    port_open "$REDIS_PORT" && say "redis: 127.0.0.1:$REDIS_PORT" || say "redis: down"
    ;;
  *)
    echo "usage: $0 up|down|status|libs" >&2
    exit 2
    ;;
esac
