#!/usr/bin/env bash
# The README's start command: installs what is needed, builds, and starts the gateway on the
# ready default config (examples/membrane.yaml: @modelcontextprotocol/server-everything over
# stdio at http://127.0.0.1:8080/mcp/everything).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
exec build/membrane serve -c "${1:-examples/membrane.yaml}"
