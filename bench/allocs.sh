#!/usr/bin/env bash
# Heap allocations and context switches per MCP `tools/call` through Membrane, for each
# governance feature alone and all of them together. Unlike throughput on a shared or virtual
# machine, these do not move with timing: they say how much work a call costs, not how fast the
# machine ran it.
#   bare    no governance
#   policy  the shipped ruleset (policies/default)
#   audit   the audit log
#   txn     transaction tokens (one per transaction, the default)
#   otlp    span export to a live OTLP sink (the echo upstream's)
#   full    all four
#   virtual a virtual server of three upstreams (the echo server under three names), calling the
#           member published without a prefix; virtual_renamed: calling `second_echo`, routed
#           to another member and renamed on its way
# Each gateway runs with bench/alloc_counter.cpp preloaded (every malloc, calloc and realloc of
# every thread is counted); its context switches are read from /proc/<pid>/task/*/status.
# Builds nothing: needs build/membrane, build/bench/membrane_bench_echo and
# build/bench/membrane_bench_alloc_counter.so. See bench/README.md.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH="$ROOT/bench"
BUILD_DIR="$ROOT/build"
SECONDS_PER_TARGET=3
CONNECTIONS=4
TARGETS="bare,policy,audit,txn,otlp,full,virtual,virtual_renamed"
KEEP_RUNDIR=0

usage() {
  cat <<USAGE
usage: bench/allocs.sh [options]
  --build-dir DIR   where membrane and bench/ are built (default: build)
  --seconds S       measured seconds per target (default: $SECONDS_PER_TARGET), after 1 s of warm-up
  --connections N   wrk connections (default: $CONNECTIONS)
  --targets LIST    comma-separated subset of $TARGETS (default: all)
  --keep-rundir     keep the temporary directory with logs and configs
USAGE
}

die() { echo "bench/allocs.sh: $*" >&2; exit 1; }
log() { echo "[allocs] $*" >&2; }

while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) BUILD_DIR=$(cd "$2" && pwd); shift 2 ;;
    --seconds) SECONDS_PER_TARGET=$2; shift 2 ;;
    --connections) CONNECTIONS=$2; shift 2 ;;
    --targets) TARGETS=$2; shift 2 ;;
    --keep-rundir) KEEP_RUNDIR=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option '$1'" ;;
  esac
done

MEMBRANE_BIN="$BUILD_DIR/membrane"
ECHO_BIN="$BUILD_DIR/bench/membrane_bench_echo"
COUNTER="$BUILD_DIR/bench/membrane_bench_alloc_counter.so"
for file in "$MEMBRANE_BIN" "$ECHO_BIN" "$COUNTER"; do
  [ -e "$file" ] || die "missing $file (cmake --build $BUILD_DIR)"
done
for tool in wrk curl; do command -v "$tool" >/dev/null || die "needs $tool"; done

SERVER_PIN=()
# shellcheck source=bench/lib.sh
. "$BENCH/lib.sh"
bench_setup allocs

"$ECHO_BIN" --port 0 >"$RUNDIR/echo.log" 2>&1 &
PIDS+=($!)
ECHO_PORT=$(wait_for_listen "$RUNDIR/echo.log" "${PIDS[-1]}" membrane_bench_echo)

TARGET=""
write_config() {  # PORT (the target is $TARGET)
  case "$TARGET" in
    virtual*) virtual_config "$1" "http://127.0.0.1:$ECHO_PORT/mcp" 1 ;;
    *) governed_config "$TARGET" "$1" "$ECHO_PORT" 1 ;;
  esac >"$RUNDIR/membrane-$TARGET.yaml"
}

context_switches() {  # PID: voluntary and involuntary, all threads
  cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches/ { n += $2 } END { print n + 0 }'
}

counted() {  # REPORT FIELD: the last report's allocations (2), bytes (4) or large allocations (6)
  tail -1 "$1" | awk -v f="$2" '{ print $f }'
}

printf '| target | allocations per call | over 1 KiB | bytes asked per call | context switches per call | calls counted |\n'
printf '|---|---:|---:|---:|---:|---:|\n'
IFS=, read -ra WANTED <<<"$TARGETS"
for TARGET in "${WANTED[@]}"; do
  case "$TARGET" in
    bare|policy|audit|txn|otlp|full) url_path=/mcp/echo tool=echo ;;
    virtual) url_path=/mcp/trio tool=echo ;;
    virtual_renamed) url_path=/mcp/trio tool=second_echo ;;
    *) die "unknown target '$TARGET'" ;;
  esac
  export MCP_TOOL=$tool
  report="$RUNDIR/allocs-$TARGET.txt"
  launch_on_free_port --before write_config "$TARGET" "$RUNDIR/membrane-$TARGET.log" \
    env LD_PRELOAD="$COUNTER" MEMBRANE_ALLOC_REPORT="$report" \
    "$MEMBRANE_BIN" serve -c "$RUNDIR/membrane-$TARGET.yaml"
  pid=${PIDS[-1]}
  url="http://127.0.0.1:$LAUNCHED_PORT$url_path"
  sid=$(open_mcp_session "$url" membrane-allocs)
  export MCP_SESSION_ID=$sid
  wrk -t1 -c"$CONNECTIONS" -d1s -s "$BENCH/tools_call.lua" "$url" >/dev/null
  kill -USR2 "$pid"; sleep 0.2
  before_allocs=$(counted "$report" 2); before_bytes=$(counted "$report" 4)
  before_large=$(counted "$report" 6)
  before_switches=$(context_switches "$pid")
  result=$(wrk -t1 -c"$CONNECTIONS" -d"${SECONDS_PER_TARGET}s" -s "$BENCH/tools_call.lua" "$url" |
           grep '^RESULT') || die "$TARGET: wrk gave no result"
  # What the last calls hand to writer threads is counted once they are done with it.
  sleep 0.5
  kill -USR2 "$pid"; sleep 0.2
  after_switches=$(context_switches "$pid")
  calls=$(sed -nE 's/.*requests=([0-9]+).*/\1/p' <<<"$result")
  errors=$(sed -nE 's/.*errors=([0-9]+).*/\1/p' <<<"$result")
  [ "$errors" = 0 ] || die "$TARGET: $errors calls failed (see $RUNDIR)"
  awk -v t="$TARGET" -v n="$calls" -v a0="$before_allocs" -v a1="$(counted "$report" 2)" \
      -v b0="$before_bytes" -v b1="$(counted "$report" 4)" -v l0="$before_large" \
      -v l1="$(counted "$report" 6)" -v s0="$before_switches" -v s1="$after_switches" 'BEGIN {
        printf "| %s | %.1f | %.1f | %.0f | %.2f | %d |\n", t, (a1 - a0) / n, (l1 - l0) / n, (b1 - b0) / n,
               (s1 - s0) / n, n
      }'
  stop_pid "$pid"
  unset 'PIDS[-1]'
  log "$TARGET done"
done
