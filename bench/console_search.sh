#!/usr/bin/env bash
# How fast the security console answers over a large audit trail: every query of the console's
# APIs (docs/console.md) against RECORDS records (default 1,000,000, about 650 MB) written by the
# gateway's own writer (bench/audit_fill.cpp), through the running gateway's admin listener.
# Baseline, in the same run: `grep -c -F` for the same text over the same file (the files are in
# the page cache for both), i.e. what reading the whole file costs at all.
#   bench/console_search.sh [--records N] [--rounds K] [--keep]
# Builds nothing: needs build/membrane and build/bench/membrane_bench_audit_fill. The generated
# trail is kept in bench/out/console/ and reused while it has the asked number of records.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR="$ROOT/build"
RECORDS=1000000
ROUNDS=5
KEEP_RUNDIR=0
while [ $# -gt 0 ]; do
  case "$1" in
    --records) RECORDS=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --keep) KEEP_RUNDIR=1; shift ;;
    *) echo "usage: bench/console_search.sh [--records N] [--rounds K] [--keep]" >&2; exit 2 ;;
  esac
done
log() { echo "[console_search] $*" >&2; }
die() { log "$*"; exit 1; }
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
SERVER_PIN=()
bench_setup console-search

for binary in "$BUILD_DIR/membrane" "$BUILD_DIR/bench/membrane_bench_audit_fill"; do
  [ -x "$binary" ] || die "missing $binary: build first (scripts/build.sh)"
done
OUT="$ROOT/bench/out/console"
TRAIL="$OUT/audit.jsonl"
mkdir -p "$OUT"
if [ ! -f "$TRAIL" ] || [ "$(cat "$OUT/records" 2>/dev/null)" != "$RECORDS" ]; then
  log "writing $RECORDS audit records to $TRAIL"
  rm -f "$TRAIL"
  "$BUILD_DIR/bench/membrane_bench_audit_fill" "$TRAIL" "$RECORDS" 24
  echo "$RECORDS" >"$OUT/records"
fi
size=$(stat -c %s "$TRAIL")

cat >"$RUNDIR/membrane.yaml" <<YAML
listen: "127.0.0.1:0"
admin: "127.0.0.1:0"
workers: 1
audit:
  file: $RUNDIR/own.jsonl
console:
  token_key_file: $RUNDIR/console-key.json
  audit_files: ["$TRAIL"]
upstreams:
  echo: {url: "http://127.0.0.1:1/mcp"}
YAML
"$BUILD_DIR/membrane" serve -c "$RUNDIR/membrane.yaml" >"$RUNDIR/membrane.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do
  admin=$(sed -n 's/.*admin listening on \(http:\/\/[0-9.:]*\).*/\1/p' "$RUNDIR/membrane.log")
  [ -n "$admin" ] && break
  sleep 0.1
done
[ -n "$admin" ] || die "the gateway did not start: $(cat "$RUNDIR/membrane.log")"
token=$("$BUILD_DIR/membrane" token mint --key "$RUNDIR/console-key.json" --iss membrane-console \
  --aud membrane-console --sub bench --claims '{"scope":"membrane:audit"}')

# Values taken from the trail itself: a transaction in its middle, the newest hour.
middle=$(sed -n "$((RECORDS / 2))p" "$TRAIL")
txn=$(sed 's/.*"txn":"\([^"]*\)".*/\1/' <<<"$middle")
last_time=$(tail -n 1 "$TRAIL" | sed 's/.*"time":"\([^"]*\)".*/\1/')
hour_ago=$(date -u -d "${last_time%Z} UTC - 1 hour" +%Y-%m-%dT%H:%M)
cat "$TRAIL" >/dev/null  # into the page cache, for every query and the baseline alike

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
grep_ms=$(for _ in $(seq "$ROUNDS"); do
  start=$(date +%s%N)
  grep -c -F "\"txn\":\"$txn\"" "$TRAIL" >/dev/null
  echo $(( ($(date +%s%N) - start) / 1000 ))
done | median)
grep_ms=$(awk -v us="$grep_ms" 'BEGIN {printf "%.1f", us / 1000}')

printf '%s records, %s MB, %s rounds (median; the first chain verification once); baseline grep -c -F over the file: %s ms\n\n' \
  "$RECORDS" "$((size / 1000000))" "$ROUNDS" "$grep_ms"
printf '| query | answer | records read | ms (median) | x grep |\n|---|---|---|---|---|\n'
query() {  # NAME PATH [ROUNDS]
  local name=$1 route=$2 rounds=${3:-$ROUNDS} ms body
  ms=$(for _ in $(seq "$rounds"); do
    curl -s -o "$RUNDIR/answer.json" -w '%{time_total}\n' -H "Authorization: Bearer $token" \
      "$admin/console/api/$route"
  done | awk '{print $1 * 1000}' | median)
  body=$(cat "$RUNDIR/answer.json")
  local shown scanned
  shown=$(node -e 'const a = JSON.parse(process.argv[1]);
    const n = a.records?.length ?? a.chains?.reduce((s, c) => s + c.records, 0) ?? a.buckets?.length;
    console.log(a.error ? "error: " + a.error_description : (a.chains ? `${n} verified` : a.buckets ? `${a.buckets.length} minutes` : `${n} records`))' "$body")
  scanned=$(node -e 'const a = JSON.parse(process.argv[1]); console.log(a.scanned_records ?? "-")' "$body")
  printf '| %s | %s | %s | %.1f | %.2f |\n' "$name" "$shown" "$scanned" "$ms" \
    "$(awk -v a="$ms" -v b="$grep_ms" 'BEGIN {print a / b}')"
}
query "newest page (no filter)" "records?limit=50"
query "one transaction (search)" "records?txn=$txn&limit=50"
query "caller + tool" "records?identity=user-7@example.com&tool=files_tool_3&limit=50"
query "verdict deny" "records?verdict=deny&limit=50"
query "one rule, last hour" "records?rule=deny-rule-3&since=$hour_ago&limit=50"
query "rule that never matched" "records?rule=no-such-rule&limit=50"
query "transaction timeline" "transactions/$txn"
query "charts, 60 minutes" "stats?minutes=60"
query "chain verification (first)" "chain" 1
query "chain verification (again, files unchanged)" "chain"
