#!/usr/bin/env bash
# Membrane soak benchmark: at least a million tools/call through the gateway over many
# sessions (opened and closed throughout, several concurrent clients, some on a stdio upstream),
# sampling the gateway's RSS and open file descriptors from /proc as it goes, to show that both
# stay flat once warmed up. See bench/README.md ("Soak").
#
#   nice -n 10 bench/soak.sh                       # 1 000 000 calls, prints a Markdown report
#   nice -n 10 bench/soak.sh --write-results       # ... and appends it to bench/RESULTS.md
#   bench/soak.sh --idle-connections 2000 --body-bytes 60000   # idle keep-alive memory instead
#   bench/soak.sh --streams 10000 --stream-kind legacy       # memory per open SSE stream instead
#
# Builds nothing: needs build/membrane, build/bench/membrane_bench_echo and
# build/bench/membrane_bench_soak. Everything listens on 127.0.0.1 on ports picked at run time;
# every process it starts is stopped when it exits.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH="$ROOT/bench"
ORIGINAL_ARGS=("$@")

BUILD_DIR="$ROOT/build"
CALLS=1000000
CLIENTS=8
MIN_CALLS=20
MAX_CALLS=200
STDIO_EVERY=10       # every Nth session goes to the stdio upstream (0: none)
WORKERS=1
# Deleted session ids are remembered until they would have expired (session.max_age, 24 h by
# default, up to 100 000 of them): a short max_age lets that record reach its steady state
# within the run, so that what remains is what a leak would look like.
SESSION_MAX_AGE=30s
INTERVAL=5           # seconds between samples
WARMUP_PERCENT=10    # samples before this share of the calls are the warm-up
IDLE_CONNECTIONS=0
BODY_BYTES=60000
HEADER_BYTES=0
STREAMS=0
STREAM_KIND=streamable
WRITE_RESULTS=0
RESULTS_FILE="$BENCH/RESULTS.md"
KEEP_RUNDIR=0

usage() {
  cat <<EOF
usage: bench/soak.sh [options]
  --build-dir DIR          where membrane and bench/membrane_bench_{echo,soak} are (default: build)
  --calls N                tools/call requests in total (default: $CALLS)
  --clients N              concurrent clients, each running one session after another (default: $CLIENTS)
  --min-calls N, --max-calls N   calls per session, uniformly drawn (default: $MIN_CALLS..$MAX_CALLS)
  --stdio-every N          every Nth session on the stdio upstream; 0 = HTTP only (default: $STDIO_EVERY)
  --workers N              Membrane worker threads (default: $WORKERS)
  --session-max-age D      Membrane session.max_age (default: $SESSION_MAX_AGE; sessions here last seconds)
  --interval S             seconds between samples (default: $INTERVAL)
  --warmup-percent P       samples before P% of the calls count as warm-up (default: $WARMUP_PERCENT)
  --idle-connections N     measure N idle keep-alive connections instead of soaking
  --body-bytes B           ... each after one request with a body of about B bytes (default: $BODY_BYTES)
  --header-bytes H         ... and an extra header of H bytes (default: $HEADER_BYTES)
  --streams N              measure N sessions and N open SSE streams instead of soaking:
  --stream-kind K          streamable (N sessions, then a GET listen stream on each, relayed from
                           an upstream that holds them) or legacy (N 2024-11-05 SSE sessions on an
                           upstream without listen streams) (default: $STREAM_KIND)
  --write-results          append the report to bench/RESULTS.md (or --results-file FILE)
  --keep-rundir            keep the logs and the config in the temporary run directory
EOF
}

die() { echo "soak.sh: $*" >&2; exit 1; }
log() { echo "[soak] $*" >&2; }

while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) BUILD_DIR=$2; shift 2 ;;
    --calls) CALLS=$2; shift 2 ;;
    --clients) CLIENTS=$2; shift 2 ;;
    --min-calls) MIN_CALLS=$2; shift 2 ;;
    --max-calls) MAX_CALLS=$2; shift 2 ;;
    --stdio-every) STDIO_EVERY=$2; shift 2 ;;
    --workers) WORKERS=$2; shift 2 ;;
    --session-max-age) SESSION_MAX_AGE=$2; shift 2 ;;
    --interval) INTERVAL=$2; shift 2 ;;
    --warmup-percent) WARMUP_PERCENT=$2; shift 2 ;;
    --idle-connections) IDLE_CONNECTIONS=$2; shift 2 ;;
    --body-bytes) BODY_BYTES=$2; shift 2 ;;
    --header-bytes) HEADER_BYTES=$2; shift 2 ;;
    --streams) STREAMS=$2; shift 2 ;;
    --stream-kind) STREAM_KIND=$2; shift 2 ;;
    --write-results) WRITE_RESULTS=1; shift ;;
    --results-file) RESULTS_FILE=$2; WRITE_RESULTS=1; shift 2 ;;
    --keep-rundir) KEEP_RUNDIR=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
  esac
done

MEMBRANE_BIN="$BUILD_DIR/membrane"
ECHO_BIN="$BUILD_DIR/bench/membrane_bench_echo"
SOAK_BIN="$BUILD_DIR/bench/membrane_bench_soak"
for bin in "$MEMBRANE_BIN" "$ECHO_BIN" "$SOAK_BIN"; do
  [ -x "$bin" ] || die "missing $bin; build it: cmake --build build --target membrane membrane_bench_echo membrane_bench_soak"
done

SERVER_PIN=()
# shellcheck source=bench/lib.sh
. "$BENCH/lib.sh"
bench_setup soak

# --- the echo upstream (HTTP) -------------------------------------------------------------------
ECHO_FLAGS=()
# Streamable listen streams are relayed from the upstream: it must hold them.
[ "$STREAMS" -gt 0 ] && [ "$STREAM_KIND" = streamable ] && ECHO_FLAGS=(--listen-streams)
"$ECHO_BIN" --port 0 "${ECHO_FLAGS[@]}" >"$RUNDIR/echo.log" 2>&1 &
PIDS+=($!)
ECHO_PORT=$(wait_for_listen "$RUNDIR/echo.log" "${PIDS[-1]}" membrane_bench_echo)

# --- Membrane ------------------------------------------------------------------------------------
cat >"$RUNDIR/membrane.yaml" <<EOF
# written by bench/soak.sh; the address comes from --listen
listen: "127.0.0.1:0"
workers: $WORKERS
log_level: warn
session:
  max_age: $SESSION_MAX_AGE
$( [ "$STREAMS" -gt 0 ] && printf 'limits:\n  max_connections: %d\n  max_streams: %d\n  max_sessions: %d\n  max_sessions_per_caller: %d\n' \
     $((STREAMS + 100)) $((STREAMS + 100)) $((STREAMS + 100)) $((STREAMS + 100)) )
upstreams:
  echo:
    url: http://127.0.0.1:$ECHO_PORT/mcp
    protocol: "2025-11-25"
  echo-stdio:
    command: $ECHO_BIN
    args: [--stdio]
EOF
launch_on_free_port membrane "$RUNDIR/membrane.log" \
  "$MEMBRANE_BIN" serve -c "$RUNDIR/membrane.yaml" --listen "127.0.0.1:@PORT@"
MEMBRANE_PORT=$LAUNCHED_PORT
MEMBRANE_PID=${PIDS[-1]}
log "membrane pid $MEMBRANE_PID on 127.0.0.1:$MEMBRANE_PORT ($WORKERS worker(s)); echo upstream on $ECHO_PORT"

VERSION=$("$MEMBRANE_BIN" --version 2>/dev/null | head -1 || echo "membrane")
MACHINE="$(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), Linux $(uname -r)"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
NICENESS=$(nice)

# --- idle keep-alive connections -----------------------------------------------------------------
if [ "$IDLE_CONNECTIONS" -gt 0 ]; then
  run_in_foreground "$SOAK_BIN" --port "$MEMBRANE_PORT" --pid "$MEMBRANE_PID" \
    --idle-connections "$IDLE_CONNECTIONS" --body-bytes "$BODY_BYTES" \
    --header-bytes "$HEADER_BYTES" >"$RUNDIR/idle.out" || die "the idle-connection measurement failed"
  awk -F'\t' -v n="$IDLE_CONNECTIONS" -v b="$BODY_BYTES" -v h="$HEADER_BYTES" '
    $1 == "idle" { rss[$2] = $3; fds[$2] = $4 }
    END {
      printf "| phase | gateway RSS (KiB) | open fds |\n|---|---:|---:|\n"
      printf "| before (1 session, no client connections) | %d | %d |\n", rss["before"], fds["before"]
      printf "| %d keep-alive connections, each idle after one request (%d-byte body, %d-byte extra header) | %d | %d |\n", n, b, h, rss["idle"], fds["idle"]
      printf "| all closed again | %d | %d |\n", rss["closed"], fds["closed"]
      printf "\nper idle connection: %.1f KiB\n", (rss["idle"] - rss["before"]) / n
    }' "$RUNDIR/idle.out"
  exit 0
fi

# --- sessions and SSE streams --------------------------------------------------------------------
if [ "$STREAMS" -gt 0 ]; then
  run_in_foreground "$SOAK_BIN" --port "$MEMBRANE_PORT" --pid "$MEMBRANE_PID" \
    --streams "$STREAMS" --stream-kind "$STREAM_KIND" >"$RUNDIR/streams.out" ||
    die "the stream measurement failed (see $RUNDIR)"
  awk -F'\t' -v n="$STREAMS" -v kind="$STREAM_KIND" '
    $1 == "streams" && $2 == "open" { open = $3; next }
    $1 == "streams" { rss[$2] = $3; fds[$2] = $4 }
    END {
      printf "| gateway (%s) | RSS (KiB) | open fds |\n|---|---:|---:|\n", kind
      printf "| before | %d | %d |\n", rss["before"], fds["before"]
      if ("sessions" in rss) printf "| %d idle sessions | %d | %d |\n", n, rss["sessions"], fds["sessions"]
      printf "| %d open SSE streams | %d | %d |\n", open, rss["streams"], fds["streams"]
      printf "| after they closed | %d | %d |\n", rss["closed"], fds["closed"]
      printf "| 12 s later (freed memory given back) | %d | %d |\n", rss["released"], fds["released"]
      base = ("sessions" in rss) ? rss["sessions"] : rss["before"]
      if ("sessions" in rss) printf "\nper idle session: %.2f KiB\n", (rss["sessions"] - rss["before"]) / n
      if (open > 0) printf "per open SSE stream: %.1f KiB (%d streams: %.1f MiB in all)\n", (rss["streams"] - base) / open, open, rss["streams"] / 1024
      printf "after close: %.1f MiB above before; 12 s later: %.1f MiB above before\n", (rss["closed"] - rss["before"]) / 1024, (rss["released"] - rss["before"]) / 1024
    }' "$RUNDIR/streams.out"
  exit 0
fi

# --- the soak ------------------------------------------------------------------------------------
log "soaking: $CALLS calls, $CLIENTS clients, $MIN_CALLS..$MAX_CALLS calls per session, every ${STDIO_EVERY}th session on stdio"
status=0
run_in_foreground "$SOAK_BIN" --port "$MEMBRANE_PORT" --pid "$MEMBRANE_PID" --calls "$CALLS" --clients "$CLIENTS" \
  --min-calls "$MIN_CALLS" --max-calls "$MAX_CALLS" --http-upstream echo \
  --stdio-upstream echo-stdio --stdio-every "$STDIO_EVERY" --interval "$INTERVAL" \
  >"$RUNDIR/soak.out" 2>"$RUNDIR/soak.err" || status=$?
kill -0 "$MEMBRANE_PID" 2>/dev/null || { cat "$RUNDIR/membrane.log" >&2; die "membrane died during the soak"; }
[ -s "$RUNDIR/soak.err" ] && cat "$RUNDIR/soak.err" >&2
DONE=$(grep '^done ' "$RUNDIR/soak.out" || true)
[ -n "$DONE" ] || die "the soak client reported no result"
WARNINGS=$(grep -c '' "$RUNDIR/membrane.log" || true)

report() {
  echo "### Soak: $CALLS tools/call over many sessions, $(date -u '+%Y-%m-%d %H:%M') UTC"
  echo
  echo "- command: \`nice -n $NICENESS bench/soak.sh${ORIGINAL_ARGS[*]:+ ${ORIGINAL_ARGS[*]}}\`"
  echo "- machine: $MACHINE; load average before the run: $LOAD_BEFORE"
  echo "- $VERSION, --workers $WORKERS, session.max_age $SESSION_MAX_AGE (deleted ids are remembered that long), default limits; upstreams: \`echo\` (membrane_bench_echo over HTTP) and \`echo-stdio\` (membrane_bench_echo --stdio, one child per session)"
  echo "- load: $CLIENTS concurrent clients; each runs sessions one after another on a fresh connection: initialize, notifications/initialized, $MIN_CALLS..$MAX_CALLS echo calls (each answer checked), DELETE, close; every ${STDIO_EVERY}th session on the stdio upstream"
  echo "- result: ${DONE#done }; gateway log lines (warn and above): $WARNINGS"
  echo
  echo "| elapsed (s) | calls | sessions | RSS (KiB) | peak RSS (KiB) | open fds | threads | children |"
  echo "|---:|---:|---:|---:|---:|---:|---:|---:|"
  # At most about 30 rows: every k-th sample, and always the last.
  awk -F'\t' '$1 == "sample" { n++; line[n] = $0 }
    END {
      k = int((n + 29) / 30); if (k < 1) k = 1
      for (i = 1; i <= n; i++) if ((i - 1) % k == 0 || i == n) {
        split(line[i], f, "\t")
        printf "| %d | %d | %d | %d | %d | %d | %d | %d |\n", f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9]
      }
    }' "$RUNDIR/soak.out"
  echo
  # After warm-up: range of RSS and fds, and the RSS trend (least squares over calls).
  awk -F'\t' -v total="$CALLS" -v warm="$WARMUP_PERCENT" '
    $1 == "sample" && $3 >= total * warm / 100 {
      n++; x = $3 / 100000; y = $5
      sx += x; sy += y; sxx += x * x; sxy += x * y
      if (n == 1 || $5 < rmin) rmin = $5; if (n == 1 || $5 > rmax) rmax = $5
      if (n == 1 || $7 < fmin) fmin = $7; if (n == 1 || $7 > fmax) fmax = $7
      if (n == 1) { rfirst = $5; ffirst = $7 } rlast = $5; flast = $7
    }
    END {
      if (n < 2) { print "- too few samples after warm-up to judge"; exit }
      slope = (n * sxy - sx * sy) / (n * sxx - sx * sx)
      printf "- after warm-up (%d samples from %d%% of the calls on): RSS %d..%d KiB (first %d, last %d; trend %+.1f KiB per 100 000 calls); open fds %d..%d (first %d, last %d)\n", n, warm, rmin, rmax, rfirst, rlast, slope, fmin, fmax, ffirst, flast
      flat_rss = (rmax - rmin) <= 0.10 * rmin && slope * 10 <= 0.05 * rmin
      flat_fds = (fmax - fmin) <= 40 && flast <= ffirst + 10
      printf "- verdict: RSS **%s**, open file descriptors **%s** after warm-up (flat: RSS within 10%% with a trend under 5%% per million calls; fds within a band of 40 that does not climb)\n", flat_rss ? "flat" : "NOT flat", flat_fds ? "flat" : "NOT flat"
    }' "$RUNDIR/soak.out"
}

REPORT=$(report)
echo
echo "$REPORT"
if [ "$WRITE_RESULTS" = 1 ]; then
  { echo; echo "$REPORT"; } >>"$RESULTS_FILE"
  log "appended to $RESULTS_FILE"
fi
exit "$status"
