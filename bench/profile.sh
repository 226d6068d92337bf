#!/usr/bin/env bash
# Where two configurations of Membrane differ in CPU, function by function: each target serves
# MCP `tools/call` under wrk while `perf record` samples the gateway (every thread) at a fixed
# rate; each function's samples are divided by the calls served, and the table lists the
# functions whose samples per 1,000 calls grew most from the first target to the second.
# Throughput on a shared or virtual machine moves by tens of percent between runs; per-call
# samples of one function move much less, which is how a cost hidden in a feature shows up
# (bench/RESULTS.md, "fifth round": a memchr per byte of the transaction token).
#   targets: bare, policy, audit, txn, otlp, full (as in bench/allocs.sh), and nginx (proxy_pass
#   to the same echo server, for the bare path's comparison)
# Builds nothing: needs build/membrane and build/bench/membrane_bench_echo, perf, wrk and curl
# (nginx for the nginx target). See bench/README.md.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH="$ROOT/bench"
BUILD_DIR="$ROOT/build"
SECONDS_PER_TARGET=8
CONNECTIONS=32
FREQUENCY=4000
ROWS=40
PIN=1
KEEP_RUNDIR=0

usage() {
  cat <<USAGE
usage: bench/profile.sh [options] FIRST SECOND
  FIRST, SECOND     targets: bare, policy, audit, txn, otlp, full or nginx (e.g. bare txn)
  --build-dir DIR   where membrane and bench/ are built (default: build)
  --seconds S       sampled seconds per target (default: $SECONDS_PER_TARGET), after 2 s of warm-up
  --connections N   wrk connections (default: $CONNECTIONS)
  --frequency HZ    perf sampling rate (default: $FREQUENCY; at 4000 Hz one sample per 1,000 calls
                    is 250 ns per call)
  --rows N          functions listed (default: $ROWS)
  --no-pin          let the scheduler place everything (default: servers on CPU 0, wrk on the
                    last CPU, as bench/run.sh does)
  --keep-rundir     keep the temporary directory with logs, configs and perf data
USAGE
}

die() { echo "bench/profile.sh: $*" >&2; exit 1; }
log() { echo "[profile] $*" >&2; }

WANTED=()
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) BUILD_DIR=$(cd "$2" && pwd); shift 2 ;;
    --seconds) SECONDS_PER_TARGET=$2; shift 2 ;;
    --connections) CONNECTIONS=$2; shift 2 ;;
    --frequency) FREQUENCY=$2; shift 2 ;;
    --rows) ROWS=$2; shift 2 ;;
    --no-pin) PIN=0; shift ;;
    --keep-rundir) KEEP_RUNDIR=1; shift ;;
    -h|--help) usage; exit 0 ;;
    -*) usage >&2; die "unknown option '$1'" ;;
    *) WANTED+=("$1"); shift ;;
  esac
done
[ ${#WANTED[@]} = 2 ] || { usage >&2; die "name two targets"; }
for target in "${WANTED[@]}"; do
  case "$target" in
    bare|policy|audit|txn|otlp|full|nginx) ;;
    *) die "unknown target '$target'" ;;
  esac
done

MEMBRANE_BIN="$BUILD_DIR/membrane"
ECHO_BIN="$BUILD_DIR/bench/membrane_bench_echo"
for file in "$MEMBRANE_BIN" "$ECHO_BIN"; do
  [ -e "$file" ] || die "missing $file (cmake --build $BUILD_DIR)"
done
for tool in perf wrk curl; do command -v "$tool" >/dev/null || die "needs $tool"; done
case " ${WANTED[*]} " in *" nginx "*) command -v nginx >/dev/null || die "needs nginx" ;; esac

SERVER_PIN=()
CLIENT_PIN=()
if [ "$PIN" = 1 ] && command -v taskset >/dev/null; then
  last_cpu=$(($(nproc) - 1))
  SERVER_PIN=(taskset -c 0)
  [ "$last_cpu" -gt 0 ] && CLIENT_PIN=(taskset -c "$last_cpu")
fi

# shellcheck source=bench/lib.sh
. "$BENCH/lib.sh"
bench_setup profile

"${SERVER_PIN[@]}" "$ECHO_BIN" --port 0 --threads 1 >"$RUNDIR/echo.log" 2>&1 &
PIDS+=($!)
ECHO_PORT=$(wait_for_listen "$RUNDIR/echo.log" "${PIDS[-1]}" membrane_bench_echo)

TARGET=""
write_config() {  # PORT (the target is $TARGET)
  if [ "$TARGET" = nginx ]; then
    local user_directive=""
    [ "$(id -u)" -eq 0 ] && user_directive="user $(id -un) $(id -gn);"
    sed -e "s#@USER_DIRECTIVE@#$user_directive#" -e "s#@WORKERS@#1#" -e "s#@LISTEN_PORT@#$1#" \
        -e "s#@UPSTREAM_PORT@#$ECHO_PORT#" -e "s#@RUNDIR@#$RUNDIR#g" \
        "$BENCH/nginx.conf.in" >"$RUNDIR/nginx.conf"
    : >"$RUNDIR/nginx-error.log"
  else
    governed_config "$TARGET" "$1" "$ECHO_PORT" 1 >"$RUNDIR/membrane-$TARGET.yaml"
  fi
}

process_and_children() {  # PID: it and its children, comma-separated (nginx's worker is a child)
  local pids=$1 child
  for child in $(ps -o pid= --ppid "$1" 2>/dev/null); do pids="$pids,$child"; done
  printf '%s' "$pids"
}

# Samples per 1,000 calls of each function (dso and symbol) in the target's profile, as
# "<per 1000 calls>\t<dso> <symbol>" lines; the parts of a coroutine, which perf lists apart
# under one name, are added up.
per_call_samples() {  # PERF_DATA CALLS
  perf report -i "$1" --no-children --sort dso,sym -g none --stdio -F sample,dso,sym 2>/dev/null |
    awk -v calls="$2" '/^#/ || NF < 2 { next } {
      samples = $1; $1 = ""; sub(/^ +/, ""); total[$0] += samples
    } END { for (name in total) printf "%.4f\t%s\n", total[name] * 1000 / calls, name }'
}

wrk_threads=2
[ "$CONNECTIONS" -lt 2 ] && wrk_threads=1
for TARGET in "${WANTED[@]}"; do
  if [ "$TARGET" = nginx ]; then
    mkdir -p "$RUNDIR/nginx-tmp"
    launch_on_free_port --before write_config nginx "$RUNDIR/nginx.log" \
      nginx -p "$RUNDIR/" -c "$RUNDIR/nginx.conf" -e "$RUNDIR/nginx-error.log"
    url="http://127.0.0.1:$LAUNCHED_PORT/mcp"
  else
    launch_on_free_port --before write_config "$TARGET" "$RUNDIR/membrane-$TARGET.log" \
      "$MEMBRANE_BIN" serve -c "$RUNDIR/membrane-$TARGET.yaml"
    url="http://127.0.0.1:$LAUNCHED_PORT/mcp/echo"
  fi
  pid=${PIDS[-1]}
  MCP_SESSION_ID=$(open_mcp_session "$url" membrane-profile)
  export MCP_SESSION_ID
  "${CLIENT_PIN[@]}" wrk -t"$wrk_threads" -c"$CONNECTIONS" -d2s -s "$BENCH/tools_call.lua" "$url" >/dev/null
  perf record -F "$FREQUENCY" -g -p "$(process_and_children "$pid")" -o "$RUNDIR/perf-$TARGET.data" \
    -- sleep "$((SECONDS_PER_TARGET + 1))" >"$RUNDIR/perf-$TARGET.log" 2>&1 &
  perf_pid=$!
  sleep 0.5
  result=$("${CLIENT_PIN[@]}" wrk -t"$wrk_threads" -c"$CONNECTIONS" -d"${SECONDS_PER_TARGET}s" \
             -s "$BENCH/tools_call.lua" "$url" | grep '^RESULT') || die "$TARGET: wrk gave no result"
  wait "$perf_pid" || die "$TARGET: perf record failed (see $RUNDIR/perf-$TARGET.log)"
  calls=$(sed -nE 's/.*requests=([0-9]+).*/\1/p' <<<"$result")
  errors=$(sed -nE 's/.*errors=([0-9]+).*/\1/p' <<<"$result")
  [ "$errors" = 0 ] || die "$TARGET: $errors calls failed (see $RUNDIR)"
  # The sampling window is half a second longer than wrk's run at each end: the calls wrk
  # counted are all inside it, and the few samples outside them are idle time.
  per_call_samples "$RUNDIR/perf-$TARGET.data" "$calls" | sort -t $'\t' -k2 >"$RUNDIR/samples-$TARGET.tsv"
  log "$TARGET: $result"
  [ -s "$RUNDIR/samples-$TARGET.tsv" ] || die "$TARGET: perf recorded no samples"
  stop_pid "$pid"
  unset 'PIDS[-1]'
done

first=${WANTED[0]}
second=${WANTED[1]}
total() { awk -F'\t' '{ n += $1 } END { printf "%.1f", n }' "$1"; }
echo "Samples per 1,000 calls at $FREQUENCY Hz (1 sample per 1,000 calls = $((1000000 / FREQUENCY)) ns per call):"
echo "$first $(total "$RUNDIR/samples-$first.tsv"), $second $(total "$RUNDIR/samples-$second.tsv") in all."
echo
printf '| %s | %s | growth | function |\n|---:|---:|---:|---|\n' "$first" "$second"
join -t $'\t' -1 2 -2 2 -a 1 -a 2 -e 0 -o 0,1.1,2.1 \
    "$RUNDIR/samples-$first.tsv" "$RUNDIR/samples-$second.tsv" |
  awk -F'\t' '{ printf "%.2f\t%.2f\t%.2f\t%s\n", $2, $3, $3 - $2, $1 }' |
  sort -t $'\t' -k3 -g -r | head -n "$ROWS" |
  awk -F'\t' '{ name = $4; gsub(/\|/, "\\|", name); if (length(name) > 120) name = substr(name, 1, 117) "..."
                printf "| %s | %s | %+.2f | `%s` |\n", $1, $2, $3, name }'
