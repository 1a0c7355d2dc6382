# Shared by the local stack scripts (sourced, not run): how they tell that a port is served
# and that a pid file's process is still theirs.

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A pid file's process, if it still runs. Pids are reused (pid_max is often 32768), so a
# stale file must never name someone else's process: ours has the pid file's folder in
# its command line (Kafka: its server.properties) or as its working directory (Redis).
pid_alive() {
  [ -f "$1" ] || return 1
  local pid seen
  pid=$(cat "$1")
  kill -0 "$pid" 2>/dev/null || return 1
  # No pipe into grep -q: under pipefail its early exit fails the writer (SIGPIPE).
  seen="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) $(readlink "/proc/$pid/cwd" 2>/dev/null)"
  [[ "$seen" == *"$(dirname "$1")"* ]]
}
