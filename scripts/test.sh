#!/usr/bin/env bash
# The README's test command: installs what is needed, builds two trees once each and runs the
# whole ctest suite (unit, integration, policy and fuzz tests) on both:
#   default  ./build       the gateway as it ships
#   asan     ./build-asan  the same code under AddressSanitizer + UBSan (docs/sanitizers.md)
# in one ctest run. Fails if any test fails. Arguments go to ctest (e.g. -R 'integration: audit');
# MEMBRANE_TEST_TREES="default" (or "asan") builds and tests one tree only.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh

read -r -a trees <<<"${MEMBRANE_TEST_TREES:-default asan}"
declare -A build_seconds
for tree in "${trees[@]}"; do
  start=$SECONDS
  scripts/build.sh "$tree"
  build_seconds[$tree]=$((SECONDS - start))
done

# One ctest run over both trees (build-tests/ only lists them), so that one summary line counts
# every test; the sanitizer tree's tests are named "asan …". Both suites run even when one fails.
# Three at a time on two cores: the integration tests spend most of their time waiting on their
# peers (tasks, timeouts, drains); the two that measure or load the machine run alone.
mkdir -p build-tests
: >build-tests/CTestTestfile.cmake
for tree in "${trees[@]}"; do
  case "$tree" in
    default) dir=build ;;
    asan) dir=build-asan ;;
  esac
  echo "subdirs(\"$PWD/$dir\")" >>build-tests/CTestTestfile.cmake
done
echo "=== ctest on the ${trees[*]} tree(s) ==="
start=$SECONDS
status=0
ctest --test-dir build-tests --output-on-failure --parallel 3 "$@" || status=$?
echo "=== builds: $(for tree in "${trees[@]}"; do printf '%s %s s  ' "$tree" "${build_seconds[$tree]}"; done)ctest: $((SECONDS - start)) s"
exit "$status"
