#!/usr/bin/env bash
# Configures and builds Membrane with a preset of CMakePresets.json: `scripts/build.sh [PRESET]`.
#   default  ./build       Release with debug info, Ninja (what scripts/serve.sh runs)
#   asan     ./build-asan  ASan + UBSan with clang, fuzz targets included (docs/sanitizers.md)
set -euo pipefail
cd "$(dirname "$0")/.."
preset=${1:-default}
case "$preset" in
  default) dir=build ;;
  asan) dir=build-asan ;;
  *) echo "scripts/build.sh: unknown preset '$preset' (default, asan)" >&2; exit 2 ;;
esac
if [ ! -f "$dir/CMakeCache.txt" ]; then
  cmake --preset "$preset"
fi
cmake --build --preset "$preset" --parallel "$(nproc)"
