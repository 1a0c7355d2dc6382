#!/usr/bin/env bash
# Local PostgreSQL for the list view's PostgreSQL backend (DNC_VIEW__BACKEND=postgres) and
# its tests: Debian's `postgresql` package, a cluster of our own on loopback.
#
#   deploy/local/postgres.sh up       initialise (once) and start it unless it already runs
#   deploy/local/postgres.sh down     stop only the cluster 'up' started
#   deploy/local/postgres.sh status   say where it runs
#   deploy/local/postgres.sh url      print the URL the service and the tests use
#
# Data and log live under .local/postgres (gitignored). The cluster trusts loopback
# connections (a developer's machine, like the local Kafka and Redis): never expose it.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
STATE=${DNC_STACK_DIR:-$ROOT/.local}
PG_PORT=${DNC_POSTGRES_PORT:-15432}
PG_USER=dnc
PG_DB=dnc
PG_DIR=$STATE/postgres
DATA=$PG_DIR/data

# As root the cluster belongs to the 'postgres' user, who must be able to walk into the
# checkout. A clone in a private directory (mktemp -d, a home directory of mode 700) does
# not let it: the cluster then lives under /var/tmp, one per checkout (named by a hash of
# its state folder), rather than loosening permissions outside the checkout.
choose_dir() {
  if [ "$(id -u)" -eq 0 ] && id postgres >/dev/null 2>&1; then
    mkdir -p "$STATE"
    if ! runuser -u postgres -- test -x "$STATE" 2>/dev/null; then
      PG_DIR=/var/tmp/dnc-postgres-$(printf %s "$STATE" | sha1sum | cut -c1-12)
      DATA=$PG_DIR/data
    fi
  fi
}

say() { printf '[postgres] %s\n' "$*"; }
die() { printf '[postgres] error: %s\n' "$*" >&2; exit 1; }
# shellcheck source=deploy/local/lib.sh
. "$(dirname "$0")/lib.sh"

pg_bin() {  # newest installed server version's bin directory, or nothing
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [ -n "$d" ] && [ -x "$d/initdb" ] && echo "$d"
}

need_postgres() {
  pg_bin >/dev/null && return 0
  command -v apt-get >/dev/null 2>&1 \
    || die "PostgreSQL server binaries are missing and apt-get is not available: install Debian's 'postgresql' package by hand"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  say "installing Debian package postgresql"
  $sudo apt-get update -qq >/dev/null || die "apt-get update failed; install postgresql by hand"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >/dev/null \
    || die "apt-get install postgresql failed; install it by hand"
  pg_bin >/dev/null || die "postgresql installed but no /usr/lib/postgresql/*/bin/initdb found"
}

# PostgreSQL refuses to run as root: as root, the cluster belongs to the 'postgres' system
# user the Debian package creates; otherwise to whoever runs this script.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    (cd / && runuser -u postgres -- "$@")  # the checkout may be closed to it
  else
    "$@"
  fi
}

running() {  # our cluster answers on the port
  [ -f "$DATA/postmaster.pid" ] && as_owner "$(pg_bin)/pg_ctl" -D "$DATA" status >/dev/null 2>&1
}

url() { echo "postgresql://$PG_USER@127.0.0.1:$PG_PORT/$PG_DB"; }

init_cluster() {
  [ -f "$DATA/PG_VERSION" ] && return 0
  say "initialising a cluster in $DATA"
  mkdir -p "$PG_DIR"
  rm -rf "$DATA"
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres: "$PG_DIR"
    # The postgres user must reach the data directory through the worktree's parents.
    as_owner test -x "$PG_DIR" || die "user postgres cannot enter $PG_DIR"
  fi
  as_owner "$(pg_bin)/initdb" -D "$DATA" -U "$PG_USER" --auth=trust -E UTF8 --locale=C.UTF-8 \
    >"$PG_DIR/initdb.log" 2>&1 || { cat "$PG_DIR/initdb.log" >&2; die "initdb failed"; }
  # Loopback only, socket in the data directory (not /var/run/postgresql, which is the
  # system cluster's), room for many test databases and connection pools.
  cat >>"$DATA/postgresql.conf" <<EOF

# deploy/local/postgres.sh
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$DATA'
max_connections = 300
shared_buffers = 256MB
EOF
}

up() {
  choose_dir
  if running && port_open "$PG_PORT"; then
    say "postgres already running on 127.0.0.1:$PG_PORT ($(url))"
    return 0
  fi
  if port_open "$PG_PORT"; then
    say "something already listens on 127.0.0.1:$PG_PORT; using it as PostgreSQL (not ours, 'down' leaves it alone)"
    return 0
  fi
  need_postgres
  choose_dir
  init_cluster
  say "starting postgres on 127.0.0.1:$PG_PORT"
  # setsid: the server must outlive the shell that started it (make, CI step).
  as_owner setsid "$(pg_bin)/pg_ctl" -D "$DATA" -l "$PG_DIR/postgres.log" -w -t 60 start >/dev/null \
    || { tail -30 "$PG_DIR/postgres.log" >&2; die "postgres did not start (see $PG_DIR/postgres.log)"; }
  for _ in $(seq 1 100); do
    if as_owner "$(pg_bin)/psql" -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" -d postgres -qAtc 'select 1' >/dev/null 2>&1; then
      break
    fi
    sleep 0.1
  done
  if ! as_owner "$(pg_bin)/psql" -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" -d postgres -qAtc \
      "select 1 from pg_database where datname = '$PG_DB'" | grep -q 1; then
    as_owner "$(pg_bin)/createdb" -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" "$PG_DB" \
      || die "could not create database $PG_DB"
  fi
  say "postgres is up: $(url)"
}

down() {
  choose_dir
  if running; then
    say "stopping postgres"
    as_owner "$(pg_bin)/pg_ctl" -D "$DATA" -m fast -w -t 30 stop >/dev/null \
      || die "postgres did not stop (see $PG_DIR/postgres.log)"
  else
    say "postgres was not started by this stack; leaving it alone"
  fi
}

case "${1:-}" in
  up) up ;;
  down)
    if pg_bin >/dev/null; then down; else say "postgres is not installed; nothing to stop"; fi
    ;;
  status) port_open "$PG_PORT" && say "postgres: $(url)" || say "postgres: down" ;;
  url) url ;;
  dir) choose_dir; echo "$PG_DIR" ;;
  *)
    echo "usage: $0 up|down|status|url|dir" >&2
    exit 2
    ;;
esac
