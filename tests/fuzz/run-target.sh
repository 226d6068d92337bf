#!/usr/bin/env bash
# Runs one libFuzzer target for a bounded budget, from a fresh copy of its checked-in seed corpus:
#   run-target.sh BINARY SECONDS [MAX_EXECUTIONS] [WORK_DIR]
# BINARY is a built <name>_fuzz; its seeds are tests/fuzz/corpus/<name>/, its dictionary
# tests/fuzz/dict/<name>.dict and its extra libFuzzer flags tests/fuzz/options/<name>.options
# (one per line), when they exist. MAX_EXECUTIONS 0 means no cap. Prints one summary line:
#   <name>: <executions> executions in <seconds> s, cov <cov> ft <ft>, <n> finding(s)
# and exits non-zero on any finding (crash, sanitizer report, leak, timeout, out of memory); the
# reproducer and the log stay in WORK_DIR.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
binary=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
seconds=$2
max_executions=${3:-0}
name=$(basename "$binary")
name=${name%_fuzz}
work=${4:-$(mktemp -d "${TMPDIR:-/tmp}/membrane-fuzz-$name.XXXXXX")}

rm -rf "$work"
mkdir -p "$work/corpus" "$work/artifacts"
work=$(cd "$work" && pwd)  # the run happens inside it: a relative WORK_DIR must still resolve
cp -R "$here/corpus/$name/." "$work/corpus/"

flags=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
       -artifact_prefix="$work/artifacts/")
[ "$max_executions" -gt 0 ] && flags+=(-runs="$max_executions")
[ -f "$here/dict/$name.dict" ] && flags+=(-dict="$here/dict/$name.dict")
if [ -f "$here/options/$name.options" ]; then
  while read -r flag; do
    [ -n "$flag" ] && [ "${flag#\#}" = "$flag" ] && flags+=("$flag")
  done <"$here/options/$name.options"
fi
# An undefined-behaviour report is a finding even in a build whose UBSan recovers.
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

cd "$work"
started=$(date +%s)
status=0
"$binary" "${flags[@]}" corpus >"$work/log" 2>&1 || status=$?
elapsed=$(($(date +%s) - started))

executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -n 1)
coverage=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$work/log" | tail -n 1 || true)
findings=$(find "$work/artifacts" -type f | wc -l)
if [ "$status" -ne 0 ] && [ "$findings" -eq 0 ]; then
  findings=1  # died before writing a reproducer
fi
echo "$name: ${executions:-?} executions in $elapsed s, ${coverage:-cov ? ft ?}, $findings finding(s)"
if [ "$status" -ne 0 ] || [ "$findings" -ne 0 ]; then
  echo "--- $work/log (end) ---"
  tail -n 60 "$work/log"
  echo "reproducers: $(find "$work/artifacts" -type f | tr '\n' ' ')"
  exit 1
fi
