#!/usr/bin/env bash
# Long fuzzing runs: builds every libFuzzer target in the sanitizer tree (`scripts/build.sh asan`:
# ./build-asan, clang++, ASan + UBSan with fatal UB reports, MEMBRANE_FUZZ=ON) and runs them one
# after the other, each from a fresh copy of its seed corpus, until SECONDS_PER_TARGET have passed
# or MAX_EXECUTIONS inputs have run, whichever comes first:
#   tests/fuzz/run-all.sh [SECONDS_PER_TARGET] [MAX_EXECUTIONS]     (default: 1800 10000000)
# MEMBRANE_FUZZ_TARGETS="sse resp" limits the run to those targets. On a shared machine, prefix
# it with `nice -n 19`. Prints one line per target (executions, time, coverage, findings) and
# keeps logs and reproducers in build-asan/tests/fuzz/long/<target>/; exits non-zero when any
# target had a finding.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
seconds=${1:-1800}
max_executions=${2:-10000000}
build="$root/build-asan"

"$root/scripts/build.sh" asan >/dev/null

targets=()
if [ -n "${MEMBRANE_FUZZ_TARGETS:-}" ]; then
  read -r -a targets <<<"$MEMBRANE_FUZZ_TARGETS"
else
  for source in "$root"/tests/fuzz/*_fuzz.cpp; do
    name=$(basename "$source" .cpp)
    targets+=("${name%_fuzz}")
  done
fi

echo "fuzzing ${#targets[@]} targets for ${seconds} s or ${max_executions} executions each" \
  "($(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?'))"
failed=0
summary=()
for name in "${targets[@]}"; do
  echo "--- $name ($(date -u +%H:%M:%S) UTC)"
  line=$("$root/tests/fuzz/run-target.sh" "$build/tests/fuzz/${name}_fuzz" "$seconds" \
           "$max_executions" "$build/tests/fuzz/long/$name") || failed=1
  echo "$line"
  summary+=("$(head -n 1 <<<"$line")")
done
echo "--- summary"
printf '%s\n' "${summary[@]}"
exit "$failed"
