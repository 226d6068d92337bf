#!/usr/bin/env bash
# Builds the policy-parser fuzz target with clang (libFuzzer + AddressSanitizer + UBSan) and runs
# it for a bounded time: `run-policy-fuzz.sh [SECONDS]` (default 20). Exit code non-zero on a
# finding; the reproducer is left in the work directory it prints.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
seconds=${1:-20}
work=$(mktemp -d "${TMPDIR:-/tmp}/membrane-fuzz.XXXXXX")
clang++ -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -I "$root/include" -I "$root/src" \
  "$here/policy_parser_fuzz.cpp" "$root"/src/policy/*.cpp "$root"/src/core/*.cpp \
  $(pkg-config --cflags --libs re2) -lyaml-cpp -o "$work/policy_parser_fuzz"
mkdir -p "$work/corpus"
cp "$here"/corpus/* "$work/corpus/"
cd "$work"
echo "fuzzing the policy parser for ${seconds}s in $work"
./policy_parser_fuzz -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
  -print_final_stats=1 corpus 2>&1 | tail -n 25
