#!/usr/bin/env bash
# The README's test command: installs what is needed, builds two trees once each and runs the
# whole ctest suite (unit, integration, policy and fuzz tests) on both:
#   default  ./build       the gateway as it ships
#   asan     ./build-asan  the same code under AddressSanitizer + UBSan (docs/sanitizers.md)
# Fails if either suite fails. Arguments go to both ctest runs (e.g. -R 'integration: audit');
# MEMBRANE_TEST_TREES="default" (or "asan") builds and tests one tree only.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh

read -r -a trees <<<"${MEMBRANE_TEST_TREES:-default asan}"
declare -A build_seconds test_seconds outcome
for tree in "${trees[@]}"; do
  start=$SECONDS
  scripts/build.sh "$tree"
  build_seconds[$tree]=$((SECONDS - start))
done

# Both suites run even when the first fails, so one run shows every failure.
for tree in "${trees[@]}"; do
  echo "=== ctest on the $tree tree ==="
  start=$SECONDS
  if ctest --preset "$tree" "$@"; then outcome[$tree]=passed; else outcome[$tree]=FAILED; fi
  test_seconds[$tree]=$((SECONDS - start))
done

status=0
echo "=== summary ==="
for tree in "${trees[@]}"; do
  echo "$tree tree: tests ${outcome[$tree]} (build ${build_seconds[$tree]} s, ctest ${test_seconds[$tree]} s)"
  [ "${outcome[$tree]}" = passed ] || status=1
done
exit "$status"
