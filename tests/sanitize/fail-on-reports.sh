#!/usr/bin/env bash
# fail-on-reports.sh DIR COMMAND ARGS...
# Runs an integration test file in the sanitizer build so that every instrumented process it
# starts (gateways spawned by the harness, `membrane ...` CLI runs) writes its ASan/LSan/UBSan
# report to a file under DIR instead of to a stderr that nobody reads once the test has passed,
# then fails if any such file exists, printing each report. The exit status is the command's own
# when it failed, else 1 when there was a report.
set -uo pipefail
dir=$1
shift
rm -rf "$dir"
mkdir -p "$dir"
# Reports go to DIR/asan.PID (ASan and LSan) and DIR/ubsan.PID; a path is quoted for the
# sanitizers' option parser, which splits on spaces and colons.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}log_path=\"$dir/asan\""
export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}log_path=\"$dir/ubsan\""

"$@"
status=$?

shopt -s nullglob
reports=("$dir"/*)
if [ ${#reports[@]} -gt 0 ]; then
  for report in "${reports[@]}"; do
    printf '\n===== sanitizer report %s =====\n' "$report"
    cat "$report"
  done
  printf '\nFAILED: %d sanitizer report(s) from processes this test started (above; kept in %s)\n' \
    "${#reports[@]}" "$dir"
  [ "$status" -ne 0 ] || status=1
fi
exit "$status"
