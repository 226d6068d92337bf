#!/usr/bin/env bash
# The README's test command: installs what is needed, builds once, runs every unit and
# integration test through ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
ctest --test-dir build --output-on-failure --parallel 2 "$@"
