# Process control shared by the benchmark drivers (bench/run.sh, bench/soak.sh); sourced, not run.
#
# The driver defines die() and log(), sets KEEP_RUNDIR (1: keep the run directory) and
# SERVER_PIN (an array prefix such as `taskset -c 0`, or empty), then calls bench_setup NAME.
# From then on every process it registers in PIDS is stopped, newest first, when the script ends
# (normally, on an error or on INT/TERM); so is FOREGROUND_PID, the client it is waiting for.
# A driver with something to do before that (a polite session teardown) defines
# bench_before_stop.

# bench_setup NAME: creates RUNDIR (membrane-NAME.XXXXXX under $TMPDIR) and installs the traps.
bench_setup() {
  RUNDIR=$(mktemp -d "${TMPDIR:-/tmp}/membrane-$1.XXXXXX")
  PIDS=()
  FOREGROUND_PID=""
  trap bench_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

stop_pid() {  # TERM, wait up to 5 s, then KILL it (and the children it leaves behind)
  local pid=$1 children i
  kill -0 "$pid" 2>/dev/null || return 0
  children=$(ps -o pid= --ppid "$pid" 2>/dev/null || true)
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null || true
    for c in $children; do kill -KILL "$c" 2>/dev/null || true; done
  fi
  wait "$pid" 2>/dev/null || true
}

bench_cleanup() {
  local rc=$? i
  trap - EXIT INT TERM
  if declare -F bench_before_stop >/dev/null; then bench_before_stop || true; fi
  [ -n "$FOREGROUND_PID" ] && stop_pid "$FOREGROUND_PID"
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[$i]}"; done
  if [ "$KEEP_RUNDIR" = 1 ]; then log "logs and configs kept in $RUNDIR"; else rm -rf "$RUNDIR"; fi
  exit "$rc"
}

# run_in_foreground CMD...: runs CMD in the background and waits for it, so that INT/TERM reach
# the traps at once instead of after CMD; returns CMD's exit status.
run_in_foreground() {
  local rc=0
  "$@" &
  FOREGROUND_PID=$!
  wait "$FOREGROUND_PID" || rc=$?
  FOREGROUND_PID=""
  return "$rc"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pick_port() {  # a port nobody listens on, below the usual ephemeral range (32768-60999)
  local port
  while :; do
    port=$((20000 + RANDOM % 12000))
    port_open "$port" || { echo "$port"; return 0; }
  done
}

# wait_for_listen LOGFILE PID NAME: prints the port from "listening on [http://]127.0.0.1:PORT"
# (membrane_bench_echo --port 0 prints it) once that port accepts connections.
wait_for_listen() {
  local logfile=$1 pid=$2 name=$3 port="" i
  for i in $(seq 150); do
    port=$(sed -nE 's#.*listening on (https?://)?127\.0\.0\.1:([0-9]+).*#\2#p' "$logfile" | head -1)
    if [ -n "$port" ] && port_open "$port"; then echo "$port"; return 0; fi
    kill -0 "$pid" 2>/dev/null || { cat "$logfile" >&2; die "$name exited during start-up"; }
    sleep 0.1
  done
  cat "$logfile" >&2
  die "$name did not report its port within 15 s"
}

# The process each launch started, by NAME (for CPU accounting).
declare -gA LAUNCHED_PIDS=()

# cpu_ticks PID...: CPU time (user + system, all threads, in clock ticks) the processes and their
# children have used so far; a process that is gone counts 0.
cpu_ticks() {
  local total=0 pid stat
  for pid in "$@" $(for p in "$@"; do pgrep -P "$p" 2>/dev/null || true; done); do
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
    stat=${stat##*) }  # the fields after "pid (comm) "; comm may hold spaces
    total=$((total + $(awk '{ print $12 + $13 }' <<<"$stat")))
  done
  echo "$total"
}

# launch NAME LOGFILE PORT CMD...: starts CMD (behind SERVER_PIN) in the background and waits
# until it listens on PORT. Returns 0 once it does (its pid joins PIDS), 1 if it exited because
# the port was taken; dies on any other failure.
launch() {
  local name=$1 logfile=$2 port=$3 pid i; shift 3
  "${SERVER_PIN[@]}" "$@" >"$logfile" 2>&1 &
  pid=$!
  for i in $(seq 150); do
    if ! kill -0 "$pid" 2>/dev/null; then
      wait "$pid" 2>/dev/null || true
      grep -qi 'address already in use' "$logfile" "$RUNDIR"/*error.log 2>/dev/null && return 1
      cat "$logfile" >&2
      die "$name exited during start-up (log above)"
    fi
    if port_open "$port"; then PIDS+=("$pid"); LAUNCHED_PIDS[$name]=$pid; return 0; fi
    sleep 0.1
  done
  stop_pid "$pid"
  cat "$logfile" >&2
  die "$name did not listen on 127.0.0.1:$port within 15 s"
}

# launch_on_free_port [--before FN] NAME LOGFILE CMD...: launch on a port picked here, every
# "@PORT@" in CMD replaced by it, after `FN PORT` (which can write a config file holding the
# port); picks another port when the bind lost a race (nginx, and Membrane at log level warn,
# cannot report a port they chose themselves). Sets LAUNCHED_PORT.
launch_on_free_port() {
  local before="" name logfile port attempt
  if [ "$1" = --before ]; then before=$2; shift 2; fi
  name=$1 logfile=$2; shift 2
  LAUNCHED_PORT=""
  for attempt in 1 2 3 4 5 6 7 8; do
    port=$(pick_port)
    [ -z "$before" ] || "$before" "$port"
    if launch "$name" "$logfile" "$port" "${@//@PORT@/$port}"; then
      LAUNCHED_PORT=$port
      return 0
    fi
  done
  die "no free port found for $name"
}

# open_mcp_session URL CLIENT_NAME: initialize (2025-11-25) and notifications/initialized at URL;
# prints the session id. The drivers that call through one session (allocs.sh, profile.sh) use it.
CURL_MCP=(curl -sS --max-time 10 -H 'Content-Type: application/json'
          -H 'Accept: application/json, text/event-stream' -H 'MCP-Protocol-Version: 2025-11-25')
open_mcp_session() {
  local url=$1 client=$2 sid
  sid=$("${CURL_MCP[@]}" -D - -o /dev/null --data-binary \
          '{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"'"$client"'","version":"1.0.0"}}}' \
          "$url" | awk '{ sub(/\r$/, "") } tolower($0) ~ /^mcp-session-id:/ { sub(/^[^:]*:[ \t]*/, ""); print; exit }')
  [ -n "$sid" ] || die "initialize at $url gave no session"
  "${CURL_MCP[@]}" -H "Mcp-Session-Id: $sid" -o /dev/null \
    --data-binary '{"jsonrpc":"2.0","method":"notifications/initialized"}' "$url"
  printf '%s' "$sid"
}

# governed_config TARGET PORT ECHO_PORT WORKERS: prints a Membrane config for a governance target
# of the benchmarks: the echo upstream, and what TARGET turns on: policy (the shipped ruleset),
# audit (a log in RUNDIR), txn (transaction tokens; txn_call: a token per call), otlp (span
# export to the echo's OTLP sink), full (all four; full_call: with a token per call); any other
# target (bare) none of them.
governed_config() {
  local target=$1 port=$2 echo_port=$3 workers=$4
  echo "# written by the benchmark drivers (bench/lib.sh)"
  echo "listen: \"127.0.0.1:$port\""
  echo "workers: $workers"
  echo "log_level: warn"
  echo "upstreams:"
  echo "  echo:"
  echo "    url: \"http://127.0.0.1:$echo_port/mcp\""
  case "$target" in policy|full*) printf 'policy:\n  paths: ["%s"]\n' "$ROOT/policies/default" ;; esac
  case "$target" in audit|full*) printf 'audit:\n  file: "%s"\n' "$RUNDIR/audit-$target.log" ;; esac
  case "$target" in
    txn*|full*) printf 'txn:\n  key_file: "%s"\n  trust_domain: bench.example\n' "$RUNDIR/txn-key-$target.json" ;;
  esac
  case "$target" in *_call) printf '  per: call\n' ;; esac
  case "$target" in otlp|full*) printf 'otel:\n  endpoint: "http://127.0.0.1:%s"\n' "$echo_port" ;; esac
}

# virtual_config PORT ECHO_URL WORKERS: a gateway whose virtual server `trio` publishes three
# upstreams, all the echo server under three names (each member keeps a session of its own); the
# first without a prefix, so `echo` reaches it unchanged and `second_echo` the second, renamed.
virtual_config() {
  cat <<EOF
# written by bench/lib.sh
listen: "127.0.0.1:$1"
workers: $3
log_level: warn
upstreams:
  echo: {url: "$2"}
  second: {url: "$2"}
  third: {url: "$2"}
virtual_servers:
  trio:
    upstreams:
      echo: {prefix: ""}
      second:
      third:
EOF
}
