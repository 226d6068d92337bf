#!/usr/bin/env bash
# Membrane benchmark driver: MCP `tools/call` (echo tool) throughput and latency, measured in
# one run on this machine against three targets that share one echo upstream:
#   direct    wrk -> membrane_bench_echo
#   membrane  wrk -> Membrane (build/membrane serve) -> membrane_bench_echo
#   nginx     wrk -> nginx proxy_pass (upstream keepalive) -> membrane_bench_echo
#   otlp_live wrk -> Membrane exporting spans to a collector (the echo's OTLP sink) -> echo
#   otlp_dead wrk -> Membrane exporting spans to a collector that is down -> membrane_bench_echo
#             (opt-in: --targets membrane,otlp_live,otlp_dead)
#   stateless wrk as an MCP 2026-07-28 client (no session; Mcp-Method/Mcp-Name headers and the
#             _meta envelope on every call) -> the same Membrane -> the same session-era echo
#             upstream, on a session Membrane holds (opt-in: --targets membrane,stateless)
#   limit_local wrk -> Membrane with a policy holding one rate limit that every call is charged
#             to (never exhausted), token buckets in the gateway process -> membrane_bench_echo
#   limit_redis the same, buckets in a redis-server this script starts (--redis): one EVALSHA
#             round trip over loopback per call (opt-in: --targets membrane,limit_local,limit_redis)
#   policy    wrk -> Membrane judging every call by the shipped ruleset (policies/default) -> echo
#   audit     wrk -> Membrane writing the audit log (one hash-chained line per request) -> echo
#   txn       wrk -> Membrane with transaction tokens (txn.per: transaction, the default: one token
#             per session, reused) on the upstream hop -> echo
#   full      wrk -> Membrane with all of them and span export to the echo's OTLP sink -> echo
#   txn_call, full_call: txn and full with txn.per: call (a signature per call)
#             (opt-in, with otlp_live for the attribution table:
#              --targets direct,membrane,nginx,policy,audit,txn,otlp_live,full)
#   virtual   wrk -> Membrane's virtual server of 3 upstreams (three names for the same echo
#             server, one session each) -> membrane_bench_echo; the call goes to the member
#             published without a prefix, so `echo` reaches it unchanged
#   virtual_renamed the same, calling `second_echo`: routed to another member, the name
#             rewritten to `echo` on its way (opt-in: --targets membrane,virtual,virtual_renamed)
#   baseline, baseline_limit: membrane and limit_local run by another Membrane binary
#             (--baseline-bin, e.g. the previous commit's build), to compare two builds in one run
#             (opt-in: --targets direct,membrane,baseline,limit_local,baseline_limit --baseline-bin B)
# For each target: a LATENCY run (1 wrk thread, 1 connection: p50/p99 of one request at a
# time) and a THROUGHPUT run (several connections: requests/s), each after a warm-up.
# Prints a Markdown table; writes to bench/RESULTS.md only with --write-results.
# Builds nothing: see `usage` for how to build the two binaries. See bench/README.md.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH="$ROOT/bench"
ORIGINAL_ARGS=("$@")

BUILD_DIR="$ROOT/build"
WORKERS=1             # Membrane --workers and nginx worker_processes
ECHO_THREADS=1        # membrane_bench_echo --threads
LATENCY_SECONDS=10
THROUGHPUT_SECONDS=10
WARMUP_SECONDS=3
WRK_THREADS=2
CONNECTIONS=32
MESSAGE="hello from wrk"
TARGETS="direct,membrane,nginx"
BASELINE_BIN=""
WRITE_RESULTS=0
RESULTS_FILE="$BENCH/RESULTS.md"
KEEP_RUNDIR=0
ROUNDS=1              # repeat all measurements, report per-metric medians
SESSION_SECONDS=0     # --sessions S: latency of `initialize` (a new session) per target
PIN=1                 # servers and wrk on separate CPUs (taskset)
SERVER_CPUS=""        # default: all allowed CPUs but the last
CLIENT_CPUS=""        # default: the last allowed CPU

usage() {
  cat <<EOF
usage: bench/run.sh [options]
  --build-dir DIR          where membrane and bench/membrane_bench_echo are (default: build)
  --workers N              Membrane --workers and nginx worker_processes (default: $WORKERS)
  --echo-threads N         echo upstream I/O threads (default: $ECHO_THREADS)
  --latency-duration S     seconds of each latency run, 1 connection (default: $LATENCY_SECONDS)
  --throughput-duration S  seconds of each throughput run (default: $THROUGHPUT_SECONDS)
  --warmup S               seconds of the warm-up before every measured run (default: $WARMUP_SECONDS)
  --wrk-threads N          wrk threads in the throughput run (default: $WRK_THREADS)
  --connections N          connections in the throughput run (default: $CONNECTIONS)
  --message TEXT           text the echo tool returns (default: "$MESSAGE")
  --targets LIST           comma-separated subset of direct,membrane,nginx,otlp_live,otlp_dead,
                           stateless,limit_local,limit_redis,policy,audit,txn,txn_call,full,full_call,baseline,
                           baseline_limit
                           (default: direct,membrane,nginx)
  --baseline-bin PATH      the Membrane binary of the baseline targets (another build)
  --rounds N               measure every target N times, interleaved; report medians (default: 1)
  --sessions S             also time S seconds of initialize requests (each opens a new
                           session), 1 connection, on direct and membrane: what a new session
                           costs through the gateway against what a tools/call hop costs
  --server-cpus LIST       CPUs (taskset list) for echo, Membrane, nginx and redis-server
                           (default: all but the last)
  --client-cpus LIST       CPUs for wrk (default: the last allowed CPU)
  --no-pin                 let the scheduler place everything (noisier latency, see README)
  --write-results          append the report to bench/RESULTS.md (or --results-file)
  --results-file FILE      file --write-results appends to
  --keep-rundir            keep the temporary directory with logs and configs
  -h, --help               this text

Needs (not built by this script):
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
  cmake --build build -j1 --target membrane membrane_bench_echo
and nginx, wrk, curl (scripts/install-deps.sh installs nginx-light and wrk); limit_redis also
needs redis-server and redis-cli.

limit_local and limit_redis run Membrane with --policy RUNDIR/limit-*.yaml holding
  - limit: bench-limit
    condition: tool.name == "echo"
    by: [session.id]
    rate: 999999999/second
(never exhausted: they measure the cost of the check); limit_redis adds --redis to a
redis-server on a free port (--save '' --appendonly no), started and stopped by this script.
EOF
}

die() { echo "run.sh: $*" >&2; exit 1; }
log() { echo "[bench] $*" >&2; }
need_value() { [ $# -ge 2 ] || die "$1 needs a value"; }
need_int() {
  if ! [[ $2 =~ ^[0-9]+$ ]] || [ "$2" -lt "${3:-1}" ]; then die "$1 must be an integer >= ${3:-1}, got '$2'"; fi
}

while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) need_value "$@"; BUILD_DIR=$(cd "$2" 2>/dev/null && pwd) || die "no directory $2"; shift 2 ;;
    --workers) need_value "$@"; need_int "$1" "$2"; WORKERS=$2; shift 2 ;;
    --echo-threads) need_value "$@"; need_int "$1" "$2"; ECHO_THREADS=$2; shift 2 ;;
    --latency-duration) need_value "$@"; need_int "$1" "$2"; LATENCY_SECONDS=$2; shift 2 ;;
    --throughput-duration) need_value "$@"; need_int "$1" "$2"; THROUGHPUT_SECONDS=$2; shift 2 ;;
    --warmup) need_value "$@"; need_int "$1" "$2" 0; WARMUP_SECONDS=$2; shift 2 ;;
    --wrk-threads) need_value "$@"; need_int "$1" "$2"; WRK_THREADS=$2; shift 2 ;;
    --connections) need_value "$@"; need_int "$1" "$2"; CONNECTIONS=$2; shift 2 ;;
    --message) need_value "$@"; MESSAGE=$2; shift 2 ;;
    --targets) need_value "$@"; TARGETS=$2; shift 2 ;;
    --baseline-bin) need_value "$@"; BASELINE_BIN=$2; shift 2 ;;
    --rounds) need_value "$@"; need_int "$1" "$2"; ROUNDS=$2; shift 2 ;;
    --sessions) need_value "$@"; need_int "$1" "$2"; SESSION_SECONDS=$2; shift 2 ;;
    --server-cpus) need_value "$@"; SERVER_CPUS=$2; shift 2 ;;
    --client-cpus) need_value "$@"; CLIENT_CPUS=$2; shift 2 ;;
    --no-pin) PIN=0; shift ;;
    --write-results) WRITE_RESULTS=1; shift ;;
    --results-file) need_value "$@"; RESULTS_FILE=$2; shift 2 ;;
    --keep-rundir) KEEP_RUNDIR=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
  esac
done
[ "$CONNECTIONS" -ge "$WRK_THREADS" ] || die "--connections must be >= --wrk-threads"

declare -A WANT=()
IFS=',' read -r -a target_list <<<"$TARGETS"
for t in "${target_list[@]}"; do
  case "$t" in
    direct|membrane|nginx|otlp_live|otlp_dead|stateless|limit_local|limit_redis|policy|audit|txn|txn_call|full|full_call|virtual|virtual_renamed|baseline|baseline_limit) WANT[$t]=1 ;;
    *) die "unknown target '$t' (direct, membrane, nginx, otlp_live, otlp_dead, stateless, limit_local, limit_redis, policy, audit, txn, txn_call, full, full_call, virtual, virtual_renamed, baseline, baseline_limit)" ;;
  esac
done
ORDER=()
for t in direct membrane baseline stateless limit_local baseline_limit limit_redis policy audit txn txn_call otlp_live otlp_dead full full_call virtual virtual_renamed nginx; do
  [ -n "${WANT[$t]:-}" ] && ORDER+=("$t")
done
# Targets that run build/membrane.
WANT_MEMBRANE=""
for t in membrane stateless otlp_live otlp_dead limit_local limit_redis policy audit txn txn_call full full_call virtual virtual_renamed; do
  [ -n "${WANT[$t]:-}" ] && WANT_MEMBRANE=1
done
[ ${#ORDER[@]} -gt 0 ] || die "--targets is empty"

# --- prerequisites -----------------------------------------------------------------------
ECHO_BIN="$BUILD_DIR/bench/membrane_bench_echo"
MEMBRANE_BIN="$BUILD_DIR/membrane"
LUA="$BENCH/tools_call.lua"
missing=0
if [ ! -x "$ECHO_BIN" ]; then echo "missing $ECHO_BIN" >&2; missing=1; fi
if [ -n "$WANT_MEMBRANE" ] && [ ! -x "$MEMBRANE_BIN" ]; then
  echo "missing $MEMBRANE_BIN" >&2; missing=1
fi
if [ -n "${WANT[baseline]:-}${WANT[baseline_limit]:-}" ]; then
  [ -n "$BASELINE_BIN" ] || die "the baseline targets need --baseline-bin PATH"
  [ -x "$BASELINE_BIN" ] || die "--baseline-bin $BASELINE_BIN is not an executable"
fi
if [ $missing -ne 0 ]; then
  cat >&2 <<EOF
Build them first (from $ROOT):
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
  cmake --build build -j1 --target membrane membrane_bench_echo
EOF
  exit 1
fi
tools=(wrk curl timeout)
[ "$PIN" = 1 ] && tools+=(taskset)
[ -n "${WANT[nginx]:-}" ] && tools+=(nginx)
[ -n "${WANT[limit_redis]:-}" ] && tools+=(redis-server redis-cli)
for tool in "${tools[@]}"; do
  command -v "$tool" >/dev/null ||
    die "$tool not found (scripts/install-deps.sh installs nginx-light and wrk; limit_redis needs the redis-server package)"
done

# --- CPU placement -------------------------------------------------------------------------
# On a small machine the scheduler sometimes puts wrk and the server on the same CPU and
# sometimes not, and a cross-CPU wake-up costs tens of µs on a VM: unpinned 1-connection
# latencies jump between modes from run to run. By default the systems under test share the
# first CPUs and wrk gets the last one, identically for all three targets.
SERVER_PIN=() CLIENT_PIN=()
if [ "$PIN" = 1 ]; then
  allowed=$(taskset -pc $$ | sed 's/.*: *//')
  cpus=()
  IFS=',' read -r -a parts <<<"$allowed"
  for part in "${parts[@]}"; do
    if [[ $part == *-* ]]; then mapfile -t -O "${#cpus[@]}" cpus < <(seq "${part%-*}" "${part#*-}");
    else cpus+=("$part"); fi
  done
  if [ ${#cpus[@]} -lt 2 ] && { [ -z "$SERVER_CPUS" ] || [ -z "$CLIENT_CPUS" ]; }; then
    log "only ${#cpus[@]} CPU available: not pinning"
    PIN=0
  else
    if [ -z "$SERVER_CPUS" ]; then
      SERVER_CPUS=$(IFS=','; echo "${cpus[*]:0:${#cpus[@]}-1}")
    fi
    [ -n "$CLIENT_CPUS" ] || CLIENT_CPUS=${cpus[-1]}
    SERVER_PIN=(taskset -c "$SERVER_CPUS")
    CLIENT_PIN=(taskset -c "$CLIENT_CPUS")
  fi
fi

# --- process management (bench/lib.sh) ------------------------------------------------------
# shellcheck source=bench/lib.sh
. "$BENCH/lib.sh"
bench_setup bench
MEMBRANE_URL="" MEMBRANE_SID=""
bench_before_stop() {  # polite session teardown, best effort
  [ -n "$MEMBRANE_SID" ] || return 0
  curl -sS -o /dev/null --max-time 2 -X DELETE -H "Mcp-Session-Id: $MEMBRANE_SID" \
    -H 'MCP-Protocol-Version: 2025-11-25' "$MEMBRANE_URL" 2>/dev/null || true
}

# --- MCP helpers -----------------------------------------------------------------------------
CURL_MCP=(curl -sS --max-time 10 -H 'Content-Type: application/json'
          -H 'Accept: application/json, text/event-stream')

json_escape() {  # enough for the message: backslash, quote, control characters
  local s=$1
  s=${s//\\/\\\\}; s=${s//\"/\\\"}; s=${s//$'\n'/\\n}; s=${s//$'\r'/\\r}; s=${s//$'\t'/\\t}
  printf '%s' "$s"
}

# mcp_session NAME URL: initialize + notifications/initialized; prints the session id ("" if
# the server issues none).
mcp_session() {
  local name=$1 url=$2 code sid
  local init='{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"membrane-bench","version":"1.0.0"}}}'
  code=$("${CURL_MCP[@]}" -o "$RUNDIR/$name.init.body" -D "$RUNDIR/$name.init.headers" \
           -w '%{http_code}' --data-binary "$init" "$url") || code="curl-failed"
  if [ "$code" != 200 ] || ! grep -q '"result"' "$RUNDIR/$name.init.body"; then
    cat "$RUNDIR/$name.init.headers" "$RUNDIR/$name.init.body" >&2 2>/dev/null || true
    die "$name: initialize at $url failed (HTTP $code)"
  fi
  sid=$(awk '{ sub(/\r$/, "") } tolower($0) ~ /^mcp-session-id:/ { sub(/^[^:]*:[ \t]*/, ""); print; exit }' \
        "$RUNDIR/$name.init.headers")
  local hdrs=(-H 'MCP-Protocol-Version: 2025-11-25')
  [ -n "$sid" ] && hdrs+=(-H "Mcp-Session-Id: $sid")
  code=$("${CURL_MCP[@]}" "${hdrs[@]}" -o /dev/null -w '%{http_code}' \
           --data-binary '{"jsonrpc":"2.0","method":"notifications/initialized"}' "$url") || code="curl-failed"
  case "$code" in 200|202|204) ;; *) die "$name: notifications/initialized failed (HTTP $code)" ;; esac
  printf '%s' "$sid"
}

# tools_call NAME URL SID ID OUT: one tools/call of echo by curl, JSON-RPC id ID, response body
# to OUT; prints the HTTP status ("curl-failed" if there was none).
# The tool each target calls: echo, except through the virtual server's renamed member.
tool_of() {
  if [ "$1" = virtual_renamed ]; then printf 'second_echo'; else printf 'echo'; fi
}

tools_call() {
  local name=$1 url=$2 sid=$3 id=$4 out=$5
  local hdrs=(-H 'MCP-Protocol-Version: 2025-11-25')
  [ -n "$sid" ] && hdrs+=(-H "Mcp-Session-Id: $sid")
  local body meta=""
  if [ "$name" = stateless ]; then
    hdrs=(-H 'MCP-Protocol-Version: 2026-07-28' -H 'Mcp-Method: tools/call' -H 'Mcp-Name: echo')
    meta=',"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}'
  fi
  body="{\"jsonrpc\":\"2.0\",\"id\":$id,\"method\":\"tools/call\",\"params\":{\"name\":\"$(tool_of "$name")\",\"arguments\":{\"message\":\"$(json_escape "$MESSAGE")\"}$meta}}"
  local code
  code=$("${CURL_MCP[@]}" "${hdrs[@]}" -o "$out" -w '%{http_code}' --data-binary "$body" "$url") ||
    code="curl-failed"
  printf '%s' "$code"
}

# preflight NAME URL SID: one tools/call by curl must return 200 with the echoed text (a tool
# result, not an error result such as a policy refusal).
preflight() {
  local name=$1 url=$2 sid=$3 code
  code=$(tools_call "$name" "$url" "$sid" 1 "$RUNDIR/$name.call.body")
  if [ "$code" != 200 ] || ! grep -q '"content"' "$RUNDIR/$name.call.body" ||
     grep -qE '"isError": *true' "$RUNDIR/$name.call.body"; then
    cat "$RUNDIR/$name.call.body" >&2 2>/dev/null || true
    die "$name: tools/call preflight at $url failed (HTTP $code)"
  fi
}

# run_wrk NAME URL SID THREADS CONNECTIONS SECONDS LABEL [VAR]: runs wrk, stores its RESULT
# line in VAR.
run_wrk() {
  local name=$1 url=$2 sid=$3 threads=$4 conns=$5 secs=$6 label=$7 var=${8:-}
  local out="$RUNDIR/wrk.$name.$label.log" line protocol=2025-11-25 initialize=0
  [ "$name" = stateless ] && protocol=2026-07-28
  [[ $label == initialize* ]] && initialize=1
  MCP_SESSION_ID="$sid" MCP_MESSAGE="$MESSAGE" MCP_PROTOCOL="$protocol" MCP_INITIALIZE="$initialize" \
    MCP_TOOL="$(tool_of "$name")" \
    run_in_foreground timeout -k 5 $((secs + 30)) "${CLIENT_PIN[@]}" wrk -t"$threads" \
    -c"$conns" -d"${secs}s" --timeout 5s -s "$LUA" "$url" >"$out" 2>&1 || true
  line=$(grep '^RESULT ' "$out" | tail -1 || true)
  [ -n "$line" ] || { cat "$out" >&2; die "$name: wrk ($label) produced no RESULT line"; }
  if [ -n "$var" ]; then printf -v "$var" '%s' "$line"; fi
}

field() { sed -nE "s/.* $2=([^ ]+).*/\\1/p" <<<"$1"; }

# --- start the servers -----------------------------------------------------------------------
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

"${SERVER_PIN[@]}" "$ECHO_BIN" --port 0 --threads "$ECHO_THREADS" >"$RUNDIR/echo.log" 2>&1 &
PIDS+=($!)
ECHO_PID=$!
ECHO_PORT=$(wait_for_listen "$RUNDIR/echo.log" "${PIDS[-1]}" membrane_bench_echo)
declare -A URL=() SID=()
URL[direct]="http://127.0.0.1:$ECHO_PORT/mcp"
log "echo upstream on 127.0.0.1:$ECHO_PORT ($ECHO_THREADS thread(s))"

if [ -n "${WANT[membrane]:-}" ] || [ -n "${WANT[stateless]:-}" ]; then
  launch_on_free_port membrane "$RUNDIR/membrane.log" \
    "$MEMBRANE_BIN" serve --listen "127.0.0.1:@PORT@" --upstream "echo=${URL[direct]}" \
    --workers "$WORKERS" --log-level warn
  MEMBRANE_PORT=$LAUNCHED_PORT
  URL[membrane]="http://127.0.0.1:$MEMBRANE_PORT/mcp/echo"
  URL[stateless]=${URL[membrane]}
  log "membrane on 127.0.0.1:$MEMBRANE_PORT ($WORKERS worker(s))"
fi

# Membrane with span export: to the echo's OTLP sink (live), or to an address nobody listens on
# (dead: every export fails, is retried and dropped).
launch_traced() {
  local target=$1 collector=$2
  launch_on_free_port "$target" "$RUNDIR/membrane-$target.log" \
    "$MEMBRANE_BIN" serve --listen "127.0.0.1:@PORT@" --upstream "echo=${URL[direct]}" \
    --workers "$WORKERS" --log-level warn --otlp-endpoint "$collector"
  URL[$target]="http://127.0.0.1:$LAUNCHED_PORT/mcp/echo"
  log "membrane ($target: spans to $collector) on 127.0.0.1:$LAUNCHED_PORT"
}
[ -n "${WANT[otlp_live]:-}" ] && launch_traced otlp_live "http://127.0.0.1:$ECHO_PORT"
[ -n "${WANT[otlp_dead]:-}" ] && launch_traced otlp_dead "http://127.0.0.1:$(pick_port)"

# Membrane with a policy rate limit that every echo call is charged to: one token from its
# session's bucket, never exhausted at this rate, so the targets measure the cost of the check.
# limit_local keeps the buckets in the process; limit_redis in a redis-server started here.
BENCH_RATE="999999999/second"
write_limit_policy() {  # FILE RATE (atomically: Membrane watches the file and reloads it)
  cat >"$1.tmp" <<EOF
# written by bench/run.sh
- limit: bench-limit
  condition: tool.name == "echo"
  by: [session.id]
  rate: $2
EOF
  mv -f "$1.tmp" "$1"
}
launch_limited() {  # TARGET POLICY [EXTRA SERVE FLAGS...]
  local target=$1 policy=$2; shift 2
  launch_on_free_port "$target" "$RUNDIR/membrane-$target.log" \
    "$MEMBRANE_BIN" serve --listen "127.0.0.1:@PORT@" --upstream "echo=${URL[direct]}" \
    --workers "$WORKERS" --log-level warn --policy "$policy" "$@"
  URL[$target]="http://127.0.0.1:$LAUNCHED_PORT/mcp/echo"
  log "membrane ($target: policy $policy${*:+ $*}) on 127.0.0.1:$LAUNCHED_PORT"
}
if [ -n "${WANT[baseline]:-}" ]; then
  launch_on_free_port baseline "$RUNDIR/membrane-baseline.log" \
    "$BASELINE_BIN" serve --listen "127.0.0.1:@PORT@" --upstream "echo=${URL[direct]}" \
    --workers "$WORKERS" --log-level warn
  URL[baseline]="http://127.0.0.1:$LAUNCHED_PORT/mcp/echo"
  log "baseline membrane ($BASELINE_BIN) on 127.0.0.1:$LAUNCHED_PORT"
fi
if [ -n "${WANT[baseline_limit]:-}" ]; then
  BASELINE_POLICY="$RUNDIR/limit-baseline.yaml"
  write_limit_policy "$BASELINE_POLICY" "$BENCH_RATE"
  launch_on_free_port baseline_limit "$RUNDIR/membrane-baseline_limit.log" \
    "$BASELINE_BIN" serve --listen "127.0.0.1:@PORT@" --upstream "echo=${URL[direct]}" \
    --workers "$WORKERS" --log-level warn --policy "$BASELINE_POLICY"
  URL[baseline_limit]="http://127.0.0.1:$LAUNCHED_PORT/mcp/echo"
  log "baseline membrane ($BASELINE_BIN, policy $BASELINE_POLICY) on 127.0.0.1:$LAUNCHED_PORT"
fi
if [ -n "${WANT[limit_local]:-}" ]; then
  # Starts at 1/hour so that the check after its preflight can see the limit refuse a call;
  # that check then writes BENCH_RATE (see verify_limit).
  LOCAL_POLICY="$RUNDIR/limit-local.yaml"
  write_limit_policy "$LOCAL_POLICY" 1/hour
  launch_limited limit_local "$LOCAL_POLICY"
fi
if [ -n "${WANT[limit_redis]:-}" ]; then
  launch_on_free_port redis-server "$RUNDIR/redis.log" \
    redis-server --bind 127.0.0.1 --port @PORT@ --save '' --appendonly no --dir "$RUNDIR" \
    --daemonize no
  REDIS_PORT=$LAUNCHED_PORT
  log "redis-server on 127.0.0.1:$REDIS_PORT"
  REDIS_POLICY="$RUNDIR/limit-redis.yaml"
  write_limit_policy "$REDIS_POLICY" "$BENCH_RATE"
  launch_limited limit_redis "$REDIS_POLICY" --redis "redis://127.0.0.1:$REDIS_PORT"
fi

# Governance (what Membrane is deployed for), each feature alone and all of them together, from a
# config file each: the shipped ruleset, the audit log, transaction tokens, span export.
GOVERNED=""
write_governed_config() {  # PORT (the target is $GOVERNED)
  governed_config "$GOVERNED" "$1" "$ECHO_PORT" "$WORKERS" >"$RUNDIR/membrane-$GOVERNED.yaml"
}
for GOVERNED in policy audit txn txn_call full full_call; do
  [ -n "${WANT[$GOVERNED]:-}" ] || continue
  launch_on_free_port --before write_governed_config "$GOVERNED" "$RUNDIR/membrane-$GOVERNED.log" \
    "$MEMBRANE_BIN" serve -c "$RUNDIR/membrane-$GOVERNED.yaml"
  URL[$GOVERNED]="http://127.0.0.1:$LAUNCHED_PORT/mcp/echo"
  log "membrane ($GOVERNED: $RUNDIR/membrane-$GOVERNED.yaml) on 127.0.0.1:$LAUNCHED_PORT"
done

# A virtual server of three upstreams, all the echo server under three names (each member keeps
# a session of its own): what publishing several servers as one costs a call.
write_virtual_config() {  # PORT
  virtual_config "$1" "${URL[direct]}" "$WORKERS" >"$RUNDIR/membrane-virtual.yaml"
}
if [ -n "${WANT[virtual]:-}" ] || [ -n "${WANT[virtual_renamed]:-}" ]; then
  launch_on_free_port --before write_virtual_config virtual "$RUNDIR/membrane-virtual.log" \
    "$MEMBRANE_BIN" serve -c "$RUNDIR/membrane-virtual.yaml"
  URL[virtual]="http://127.0.0.1:$LAUNCHED_PORT/mcp/trio"
  URL[virtual_renamed]=${URL[virtual]}
  log "membrane (virtual server of 3 upstreams: $RUNDIR/membrane-virtual.yaml) on 127.0.0.1:$LAUNCHED_PORT"
fi

if [ -n "${WANT[nginx]:-}" ]; then
  mkdir -p "$RUNDIR/nginx-tmp"
  user_directive=""
  [ "$(id -u)" -eq 0 ] && user_directive="user $(id -un) $(id -gn);"
  write_nginx_config() {  # PORT
    sed -e "s#@USER_DIRECTIVE@#$user_directive#" -e "s#@WORKERS@#$WORKERS#" \
        -e "s#@LISTEN_PORT@#$1#" -e "s#@UPSTREAM_PORT@#$ECHO_PORT#" -e "s#@RUNDIR@#$RUNDIR#g" \
        "$BENCH/nginx.conf.in" >"$RUNDIR/nginx.conf"
    : >"$RUNDIR/nginx-error.log"
  }
  launch_on_free_port --before write_nginx_config nginx "$RUNDIR/nginx.out" \
    nginx -p "$RUNDIR/" -c "$RUNDIR/nginx.conf" -e "$RUNDIR/nginx-error.log"
  NGINX_PORT=$LAUNCHED_PORT
  URL[nginx]="http://127.0.0.1:$NGINX_PORT/mcp"
  log "nginx on 127.0.0.1:$NGINX_PORT ($WORKERS worker process(es))"
fi

# --sessions: every initialize opens a session that stays until it idles out, so the gateway that
# measures them holds far more than the default caps (256 per caller, 10 000 in all) allow; its
# config raises them and is otherwise the membrane target's.
write_sessions_config() {  # PORT
  cat >"$RUNDIR/membrane-sessions.yaml" <<EOF
# written by bench/run.sh
listen: "127.0.0.1:$1"
workers: $WORKERS
log_level: warn
limits:
  max_sessions: 10000000
  max_sessions_per_caller: 10000000
upstreams:
  echo:
    url: "${URL[direct]}"
EOF
}
if [ "$SESSION_SECONDS" -gt 0 ] && [ -n "${WANT[membrane]:-}" ]; then
  launch_on_free_port --before write_sessions_config membrane-sessions \
    "$RUNDIR/membrane-sessions.log" "$MEMBRANE_BIN" serve -c "$RUNDIR/membrane-sessions.yaml"
  URL[membrane-sessions]="http://127.0.0.1:$LAUNCHED_PORT/mcp/echo"
  log "membrane (sessions: caps raised) on 127.0.0.1:$LAUNCHED_PORT"
fi

# --- sessions and preflight ------------------------------------------------------------------
# verify_limit NAME: right after NAME's preflight call, is its rate limit really charged?
verify_limit() {
  local name=$1 code keys i ok=0
  local url=${URL[$name]} sid=${SID[$name]} body="$RUNDIR/$name.probe.body"
  case "$name" in
    limit_redis)
      # The call's bucket must be in Redis. It expires about 1 s after its last call (it is full
      # again by then), so look at once.
      keys=$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" --scan --pattern 'membrane:limit:*') ||
        die "limit_redis: redis-cli --scan failed"
      if [ -z "$keys" ]; then
        cat "$RUNDIR/membrane-limit_redis.log" >&2
        die "limit_redis: no membrane:limit:* key in Redis after the preflight tools/call:" \
            "the rate limit is not charged in Redis"
      fi
      log "limit_redis: bucket in Redis: $(head -1 <<<"$keys" | tr -c '[:print:]\n' '|')"
      ;;
    limit_local)
      # Started at 1/hour: the preflight took the session's only token, so a second call must be
      # refused by bench-limit (a tool result with isError, HTTP 200) ...
      code=$(tools_call "$name" "$url" "$sid" 2 "$body")
      if [ "$code" != 200 ] || ! grep -qF "Rate limit 'bench-limit'" "$body"; then
        cat "$body" "$RUNDIR/membrane-limit_local.log" >&2 2>/dev/null || true
        die "limit_local: a second call under bench-limit at 1/hour was not refused (HTTP $code):" \
            "the rate limit is not active"
      fi
      # ... then the bench rate goes in. Membrane's policy watcher (1 s) reloads the file; the
      # bucket keeps its name and the new rate applies to it at once, so calls pass again.
      write_limit_policy "$LOCAL_POLICY" "$BENCH_RATE"
      for i in $(seq 100); do
        sleep 0.1
        code=$(tools_call "$name" "$url" "$sid" $((2 + i)) "$body")
        if [ "$code" = 200 ] && grep -q '"content"' "$body" && ! grep -qE '"isError": *true' "$body"
        then ok=1; break; fi
      done
      if [ "$ok" != 1 ]; then
        cat "$body" "$RUNDIR/membrane-limit_local.log" >&2 2>/dev/null || true
        die "limit_local: calls still refused 10 s after $LOCAL_POLICY got rate $BENCH_RATE"
      fi
      log "limit_local: bench-limit refused a call at 1/hour, passes calls at $BENCH_RATE"
      ;;
  esac
}
for t in "${ORDER[@]}"; do
  SID[$t]=""
  # A stateless client has no session; Membrane opens one upstream on its first call.
  [ "$t" != stateless ] && SID[$t]=$(mcp_session "$t" "${URL[$t]}")
  preflight "$t" "${URL[$t]}" "${SID[$t]}"
  verify_limit "$t"
  log "$t: session ${SID[$t]:-(none)}, tools/call ok"
done
if [ -n "${WANT[membrane]:-}" ]; then MEMBRANE_URL=${URL[membrane]}; MEMBRANE_SID=${SID[membrane]}; fi

# --- measure ---------------------------------------------------------------------------------
declare -A LAT=() THR=()  # [target,round] -> RESULT line
# CPU time the proxy (all its threads and processes) and the echo upstream used in each
# throughput run, per request: what a call costs, apart from how the shared CPU was divided.
declare -A CPU=() SERVER_PID=()  # CPU[target,round] -> "proxy_ticks echo_ticks"
for t in "${ORDER[@]}"; do
  case "$t" in
    direct) ;;
    stateless) SERVER_PID[$t]=${LAUNCHED_PIDS[membrane]:-} ;;
    virtual_renamed) SERVER_PID[$t]=${LAUNCHED_PIDS[virtual]:-} ;;
    *) SERVER_PID[$t]=${LAUNCHED_PIDS[$t]:-} ;;
  esac
done
CLOCK_TICK=$(getconf CLK_TCK)
for ((round = 1; round <= ROUNDS; round++)); do
  [ "$ROUNDS" -gt 1 ] && log "round $round of $ROUNDS"
  # Every other round runs the targets in reverse order: on this kind of machine the target
  # measured first in a round comes out several per cent slower, whatever it is.
  round_order=("${ORDER[@]}")
  if ((round % 2 == 0)); then
    round_order=()
    for ((i = ${#ORDER[@]} - 1; i >= 0; i--)); do round_order+=("${ORDER[$i]}"); done
  fi
  for t in "${round_order[@]}"; do
    if [ "$WARMUP_SECONDS" -gt 0 ]; then
      log "$t: warm-up ${WARMUP_SECONDS}s, 1 connection"
      run_wrk "$t" "${URL[$t]}" "${SID[$t]}" 1 1 "$WARMUP_SECONDS" "warmup-latency.$round"
    fi
    log "$t: latency run ${LATENCY_SECONDS}s, 1 thread, 1 connection"
    run_wrk "$t" "${URL[$t]}" "${SID[$t]}" 1 1 "$LATENCY_SECONDS" "latency.$round" "LAT[$t,$round]"
    log "$t:   ${LAT[$t,$round]}"
    if [ "$WARMUP_SECONDS" -gt 0 ]; then
      log "$t: warm-up ${WARMUP_SECONDS}s, $WRK_THREADS threads, $CONNECTIONS connections"
      run_wrk "$t" "${URL[$t]}" "${SID[$t]}" "$WRK_THREADS" "$CONNECTIONS" "$WARMUP_SECONDS" \
        "warmup-throughput.$round"
    fi
    log "$t: throughput run ${THROUGHPUT_SECONDS}s, $WRK_THREADS threads, $CONNECTIONS connections"
    proxy_before=$(cpu_ticks ${SERVER_PID[$t]:-}) echo_before=$(cpu_ticks "$ECHO_PID")
    run_wrk "$t" "${URL[$t]}" "${SID[$t]}" "$WRK_THREADS" "$CONNECTIONS" "$THROUGHPUT_SECONDS" \
      "throughput.$round" "THR[$t,$round]"
    CPU[$t,$round]="$(($(cpu_ticks ${SERVER_PID[$t]:-}) - proxy_before)) $(($(cpu_ticks "$ECHO_PID") - echo_before))"
    log "$t:   ${THR[$t,$round]} (CPU ticks: proxy, echo: ${CPU[$t,$round]})"
  done
done

# New sessions: `initialize` after everything else (the sessions it opens stay until they idle out).
declare -A INIT=()
if [ "$SESSION_SECONDS" -gt 0 ]; then
  for t in direct membrane; do
    [ -n "${WANT[$t]:-}" ] || continue
    url=${URL[$t]}
    [ "$t" = membrane ] && url=${URL[membrane-sessions]}
    log "$t: initialize run ${SESSION_SECONDS}s, 1 connection (a new session per request)"
    run_wrk "$t" "$url" "" 1 1 "$WARMUP_SECONDS" "initialize-warmup"
    run_wrk "$t" "$url" "" 1 1 "$SESSION_SECONDS" "initialize" "INIT[$t]"
    log "$t:   ${INIT[$t]}"
  done
fi

# --- report ----------------------------------------------------------------------------------
fmt_int() { awk -v v="$1" 'BEGIN { printf "%d", v + 0.5 }'; }
cpu_model=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
membrane_version="n/a"
[ -n "$WANT_MEMBRANE" ] && membrane_version=$("$MEMBRANE_BIN" --version 2>&1 | head -1 | sed 's/^membrane //' || true)
baseline_version=""
[ -n "$BASELINE_BIN" ] && baseline_version="$BASELINE_BIN: $("$BASELINE_BIN" --version 2>&1 | head -1 || true)"
nginx_version="n/a"
[ -n "${WANT[nginx]:-}" ] && nginx_version=$(nginx -v 2>&1 | sed 's#^nginx version: nginx/##' || true)
wrk_version=$(wrk -v 2>&1 | head -1 | awk '{ print $2 }' || true)  # wrk -v exits 1
redis_version=""
[ -n "${WANT[limit_redis]:-}" ] &&
  redis_version=", redis-server $(redis-server --version | sed -nE 's/.* v=([^ ]+).*/\1/p')"
command_line="bench/run.sh"
for a in "${ORIGINAL_ARGS[@]}"; do
  if [[ $a =~ ^[A-Za-z0-9_./,:=@+-]+$ ]]; then command_line+=" $a"; else q=${a//\'/\'\\\'\'}; command_line+=" '$q'"; fi
done

# Per target: medians over the rounds (sum for errors). M[target,metric]
median() { printf '%s\n' "$@" | sort -g |
           awk '{ a[NR] = $1 } END { print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2) }'; }
per_call_us() {  # TICKS REQUESTS: CPU microseconds per call
  awk -v c="$1" -v r="$2" -v hz="$CLOCK_TICK" 'BEGIN { printf "%.1f", (r > 0 ? c * 1e6 / hz / r : 0) }'
}
declare -A M=()
errors_total=0
for t in "${ORDER[@]}"; do
  for metric in lat:p50_us lat:p99_us thr:rps thr:p50_us thr:p99_us; do
    kind=${metric%%:*} key=${metric#*:} values=()
    for ((round = 1; round <= ROUNDS; round++)); do
      if [ "$kind" = lat ]; then values+=("$(field "${LAT[$t,$round]}" "$key")");
      else values+=("$(field "${THR[$t,$round]}" "$key")"); fi
    done
    M[$t,$kind.$key]=$(median "${values[@]}")
  done
  errs=0
  for ((round = 1; round <= ROUNDS; round++)); do
    errs=$((errs + $(field "${LAT[$t,$round]}" errors) + $(field "${THR[$t,$round]}" errors)))
  done
  M[$t,errors]=$errs
  proxy_values=() echo_values=()
  for ((round = 1; round <= ROUNDS; round++)); do
    read -r proxy_ticks echo_ticks <<<"${CPU[$t,$round]}"
    requests=$(field "${THR[$t,$round]}" requests)
    proxy_values+=("$(per_call_us "$proxy_ticks" "$requests")")
    echo_values+=("$(per_call_us "$echo_ticks" "$requests")")
  done
  M[$t,cpu.proxy]=$(median "${proxy_values[@]}")
  M[$t,cpu.echo]=$(median "${echo_values[@]}")
  errors_total=$((errors_total + errs))
done

# limit_redis: what Redis itself saw (before cleanup stops it), and whether Membrane ever gave up
# on it (it then forwards the call unchecked and logs a warning per call).
redis_calls="" redis_connections="?" redis_store_errors=0
if [ -n "${WANT[limit_redis]:-}" ]; then
  redis_calls=$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" info commandstats |
                sed -nE 's/^cmdstat_evalsha:calls=([0-9]+),usec=[0-9]+,usec_per_call=([0-9.]+).*/\1 \2/p' || true)
  # Connections Membrane opened to Redis over the whole run (its pool keeps a few idle ones per
  # worker; more calls waiting on Redis at once than that means connections opened and closed).
  redis_connections=$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" info stats |
                      sed -nE 's/^total_connections_received:([0-9]+).*/\1/p' || true)
  wrk_requests=$(cat "$RUNDIR"/wrk.limit_redis.*.log | sed -nE 's/^RESULT requests=([0-9]+).*/\1/p' |
                 awk '{ s += $1 } END { print s + 0 }')
  redis_store_errors=$(grep -c 'rate-limit store did not answer' "$RUNDIR/membrane-limit_redis.log" || true)
fi
num() { awk -v v="$1" 'BEGIN { printf (v == int(v) ? "%d" : "%.1f"), v }'; }
minus() { awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; printf (d == int(d) ? "%+d" : "%+.1f"), d }'; }

if [ "$PIN" = 1 ]; then placement="servers on CPU $SERVER_CPUS, wrk on CPU $CLIENT_CPUS (taskset)";
else placement="not pinned"; fi
[ "$ROUNDS" -gt 1 ] && rounds_note="; median of $ROUNDS interleaved rounds, every other one in reverse order" || rounds_note=""

report() {
  echo "### tools/call echo, $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "- command: \`$command_line\`"
  echo "- machine: $(nproc) CPUs, ${cpu_model:-unknown CPU}, $(uname -sr); load average before the run: $LOAD_BEFORE"
  echo "- versions: membrane ${membrane_version:-?}, nginx $nginx_version, wrk $wrk_version$redis_version"
  echo "- setup: Membrane --workers $WORKERS, nginx worker_processes $WORKERS, echo upstream --threads $ECHO_THREADS;" \
       "$placement; latency runs 1 thread/1 connection ${LATENCY_SECONDS}s, throughput runs" \
       "$WRK_THREADS threads/$CONNECTIONS connections ${THROUGHPUT_SECONDS}s; ${WARMUP_SECONDS}s warm-up" \
       "before each$rounds_note; message \"$MESSAGE\""
  if [ -n "${WANT[limit_local]:-}" ] || [ -n "${WANT[limit_redis]:-}" ]; then
    local redis_note=""
    [ -n "${WANT[limit_redis]:-}" ] &&
      redis_note="; limit_redis: --redis to a redis-server on the server CPUs (--save '' --appendonly no)"
    echo "- limit targets: Membrane --policy with one limit (\`tool.name == \"echo\"\`, by session.id," \
         "rate $BENCH_RATE, never exhausted), --log-level warn like the others$redis_note"
  fi
  echo
  echo "| target | throughput (req/s, $CONNECTIONS conns) | p50 µs (1 conn) | p99 µs (1 conn) | p50 / p99 µs ($CONNECTIONS conns) | added p50 vs direct | errors |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  local t added
  for t in "${ORDER[@]}"; do
    added="—"
    if [ -n "${WANT[direct]:-}" ] && [ "$t" != direct ]; then
      added="$(minus "${M[$t,lat.p50_us]}" "${M[direct,lat.p50_us]}") µs"
    fi
    echo "| $t | $(awk -v v="${M[$t,thr.rps]}" 'BEGIN { printf "%d", v + 0.5 }') |" \
         "$(num "${M[$t,lat.p50_us]}") | $(num "${M[$t,lat.p99_us]}") |" \
         "$(num "${M[$t,thr.p50_us]}") / $(num "${M[$t,thr.p99_us]}") | $added | ${M[$t,errors]} |"
  done
  echo
  # On a CPU the proxy shares with the upstream, throughput also depends on how the scheduler
  # divides that CPU between them; CPU time per call does not.
  echo "CPU time per call in the throughput runs (user + system, all threads; the proxy's own" \
       "process, and the echo upstream's):"
  echo
  echo "| target | proxy CPU µs per call | echo CPU µs per call |"
  echo "|---|---:|---:|"
  for t in "${ORDER[@]}"; do
    if [ "$t" = direct ]; then
      echo "| $t | — | ${M[$t,cpu.echo]} |"
    else
      echo "| $t | ${M[$t,cpu.proxy]} | ${M[$t,cpu.echo]} |"
    fi
  done
  echo
  if [ -n "${WANT[membrane]:-}" ] && [ -n "${WANT[direct]:-}" ]; then
    added=$(minus "${M[membrane,lat.p50_us]}" "${M[direct,lat.p50_us]}")
    local verdict="NOT met"
    awk -v a="$added" 'BEGIN { exit !(a < 50) }' && verdict="met"
    echo "- Membrane added p50 latency over direct: **${added} µs** (target < 50 µs: **$verdict**)"
  fi
  if [ -n "${WANT[membrane]:-}" ] && [ -n "${WANT[nginx]:-}" ]; then
    local ratio verdict="NOT met"
    ratio=$(awk -v m="${M[membrane,thr.rps]}" -v n="${M[nginx,thr.rps]}" \
              'BEGIN { printf "%.2f", (n > 0 ? m / n : 0) }')
    awk -v r="$ratio" 'BEGIN { exit !(r >= 0.7) }' && verdict="met"
    echo "- Membrane throughput / nginx throughput: **${ratio}×** (target ≥ 0.70×: **$verdict**)"
  fi
  if [ -n "${WANT[membrane]:-}" ]; then
    local feature shares=""
    for feature in policy audit txn txn_call otlp_live full full_call; do
      [ -n "${WANT[$feature]:-}" ] || continue
      shares+="${shares:+, }$feature $(awk -v f="${M[$feature,thr.rps]}" -v m="${M[membrane,thr.rps]}" 'BEGIN { printf "%.2f", (m > 0 ? f / m : 0) }')×"
    done
    [ -n "$shares" ] && echo "- Governance, throughput as a share of bare Membrane: $shares"
  fi
  if [ -n "${WANT[full]:-}" ] && [ -n "${WANT[nginx]:-}" ]; then
    local full_ratio full_verdict="NOT met"
    full_ratio=$(awk -v f="${M[full,thr.rps]}" -v n="${M[nginx,thr.rps]}" 'BEGIN { printf "%.2f", (n > 0 ? f / n : 0) }')
    awk -v r="$full_ratio" 'BEGIN { exit !(r >= 0.7) }' && full_verdict="met"
    echo "- full (policy + audit + transaction tokens + span export) / nginx throughput: **${full_ratio}×** (target ≥ 0.70×: **$full_verdict**)"
  fi
  if [ -n "${WANT[full]:-}" ] && [ -n "${WANT[full_call]:-}" ]; then
    echo "- a token per call (full_call) / per transaction (full): throughput $(awk -v c="${M[full_call,thr.rps]}" -v f="${M[full,thr.rps]}" 'BEGIN { printf "%.2f", (f > 0 ? c / f : 0) }')×, p50 $(num "${M[full_call,lat.p50_us]}") vs $(num "${M[full,lat.p50_us]}") µs"
  fi
  if [ -n "${WANT[otlp_dead]:-}" ] && [ -n "${WANT[otlp_live]:-}" ]; then
    local dead_ratio dead_verdict="NOT met"
    dead_ratio=$(awk -v d="${M[otlp_dead,thr.rps]}" -v l="${M[otlp_live,thr.rps]}" \
                   'BEGIN { printf "%.3f", (l > 0 ? d / l : 0) }')
    awk -v r="$dead_ratio" 'BEGIN { exit !(r >= 0.95) }' && dead_verdict="met"
    echo "- Throughput with the collector down / with it up: **${dead_ratio}×** (target ≥ 0.95×: **$dead_verdict**)"
  fi
  if [ -n "${WANT[otlp_live]:-}" ] && [ -n "${WANT[membrane]:-}" ]; then
    echo "- Throughput with span export / without (the cost of tracing itself): $(awk -v l="${M[otlp_live,thr.rps]}" -v m="${M[membrane,thr.rps]}" 'BEGIN { printf "%.3f", (m > 0 ? l / m : 0) }')×"
  fi
  local base new what
  for pair in membrane:baseline limit_local:baseline_limit; do
    new=${pair%%:*} base=${pair#*:}
    [ -n "${WANT[$new]:-}" ] && [ -n "${WANT[$base]:-}" ] || continue
    [ "$new" = membrane ] && what="no policy" || what="one rate limit"
    echo "- this build / baseline ($baseline_version), $what: throughput $(awk -v n="${M[$new,thr.rps]}" -v b="${M[$base,thr.rps]}" 'BEGIN { printf "%.3f", (b > 0 ? n / b : 0) }')×, p50 $(num "${M[$new,lat.p50_us]}") vs $(num "${M[$base,lat.p50_us]}") µs, p99 $(num "${M[$new,lat.p99_us]}") vs $(num "${M[$base,lat.p99_us]}") µs"
  done
  if [ -n "${WANT[stateless]:-}" ] && [ -n "${WANT[membrane]:-}" ]; then
    echo "- MCP 2026-07-28 client (stateless, bridged) / 2025-11-25 client (session), same gateway and upstream: throughput $(awk -v s="${M[stateless,thr.rps]}" -v m="${M[membrane,thr.rps]}" 'BEGIN { printf "%.3f", (m > 0 ? s / m : 0) }')×, p50 $(num "${M[stateless,lat.p50_us]}") vs $(num "${M[membrane,lat.p50_us]}") µs, p99 $(num "${M[stateless,lat.p99_us]}") vs $(num "${M[membrane,lat.p99_us]}") µs"
  fi
  local lt label
  for lt in limit_local limit_redis; do
    [ -n "${WANT[$lt]:-}" ] && [ -n "${WANT[membrane]:-}" ] || continue
    [ "$lt" = limit_local ] && label="local buckets" || label="Redis buckets"
    echo "- policy rate limit ($label) / no policy: throughput $(awk -v l="${M[$lt,thr.rps]}" -v m="${M[membrane,thr.rps]}" 'BEGIN { printf "%.3f", (m > 0 ? l / m : 0) }')×, p50 $(num "${M[$lt,lat.p50_us]}") vs $(num "${M[membrane,lat.p50_us]}") µs, p99 $(num "${M[$lt,lat.p99_us]}") vs $(num "${M[membrane,lat.p99_us]}") µs"
  done
  if [ -n "${WANT[limit_redis]:-}" ]; then
    if [ -n "$redis_calls" ]; then
      echo "- Redis ran ${redis_calls%% *} EVALSHA (${redis_calls#* } µs each inside Redis) for the" \
           "$wrk_requests limit_redis calls wrk completed, warm-ups included (+1 preflight, + calls in flight at the end of each run)," \
           "and accepted ${redis_connections:-?} connections (redis-cli's included)"
    else
      echo "- Redis ran no EVALSHA (no cmdstat_evalsha in INFO commandstats)"
    fi
  fi
  if [ "$redis_store_errors" -gt 0 ]; then
    echo "- **WARNING: Membrane logged $redis_store_errors call(s) for which Redis did not answer (forwarded unchecked); the limit_redis figures are not valid.**"
  fi
  if [ -n "${INIT[membrane]:-}" ] && [ -n "${INIT[direct]:-}" ]; then
    local init_m init_d init_added call_added extra init_verdict="NOT met" init_errors
    init_m=$(field "${INIT[membrane]}" p50_us) init_d=$(field "${INIT[direct]}" p50_us)
    init_added=$(awk -v m="$init_m" -v d="$init_d" 'BEGIN { print m - d }')
    call_added=$(awk -v m="${M[membrane,lat.p50_us]}" -v d="${M[direct,lat.p50_us]}" 'BEGIN { print m - d }')
    extra=$(awk -v i="$init_added" -v c="$call_added" 'BEGIN { print i - c }')
    awk -v e="$extra" 'BEGIN { exit !(e <= 20) }' && init_verdict="met"
    init_errors=$(( $(field "${INIT[membrane]}" errors) + $(field "${INIT[direct]}" errors) ))
    echo "- New session (\`initialize\`, 1 connection): p50 $init_m µs through Membrane, $init_d µs direct" \
         "(p99 $(field "${INIT[membrane]}" p99_us) / $(field "${INIT[direct]}" p99_us) µs): the gateway adds" \
         "$(num "$init_added") µs to opening a session and $(num "$call_added") µs to a tools/call," \
         "**$(minus "$extra" 0) µs more** (target ≤ 20 µs: **$init_verdict**)$([ "$init_errors" -gt 0 ] && echo "; $init_errors failed")"
    errors_total=$((errors_total + init_errors))
  fi
  if [ -n "${WANT[nginx]:-}" ] && [ -n "${WANT[direct]:-}" ]; then
    echo "- nginx added p50 latency over direct (reference): $(minus "${M[nginx,lat.p50_us]}" "${M[direct,lat.p50_us]}") µs"
  fi
  if [ "$errors_total" -gt 0 ]; then
    echo "- **WARNING: $errors_total failed requests (non-2xx or socket errors); the figures above are not valid.**"
  fi
  echo
  echo "<details><summary>raw wrk results</summary>"
  echo
  echo '```'
  local round
  for ((round = 1; round <= ROUNDS; round++)); do
    for t in "${ORDER[@]}"; do
      echo "round $round $t latency:    ${LAT[$t,$round]#RESULT }"
      echo "round $round $t throughput: ${THR[$t,$round]#RESULT } cpu_ticks_proxy_echo=${CPU[$t,$round]// /,}"
    done
  done
  for t in direct membrane; do
    [ -n "${INIT[$t]:-}" ] && echo "$t initialize: ${INIT[$t]#RESULT }"
  done
  echo '```'
  echo
  echo "</details>"
}

REPORT=$(report)
echo
echo "$REPORT"
if [ "$WRITE_RESULTS" = 1 ]; then
  { echo; echo "$REPORT"; } >>"$RESULTS_FILE"
  log "appended to $RESULTS_FILE"
fi
[ "$errors_total" -eq 0 ] && [ "$redis_store_errors" -eq 0 ] || exit 3
