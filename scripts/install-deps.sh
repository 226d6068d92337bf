#!/usr/bin/env bash
# Installs what building and testing Membrane needs on Debian 12: compiler toolchain and the
# Debian -dev packages the gateway links, plus the npm packages the integration tests run
# against (pinned in tests/package-lock.json). Safe to run repeatedly.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential cmake ninja-build pkg-config libboost1.81-dev libssl-dev
          nlohmann-json3-dev libyaml-cpp-dev libre2-dev catch2 nodejs npm openssl curl
          nginx-light wrk procps clang libclang-rt-14-dev llvm kubernetes-client redis-server
          chromium)  # chromium: the browser tests/integration/console_browser.test.mjs drives
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# clang and libclang-rt-14-dev build the sanitizer tree and the fuzz targets (docs/sanitizers.md);
# llvm provides the llvm-symbolizer that turns the sanitizers' reports into file:line stacks.
# nodejs/npm may come from elsewhere (nvm, nodesource): a working `node` is what counts.
if command -v node >/dev/null && command -v npm >/dev/null; then
  missing=("${missing[@]/nodejs}"); missing=("${missing[@]/npm}")
fi
# kubernetes-client is there for `kubectl kustomize` (tests/integration/deploy_manifests.test.mjs);
# any kubectl renders those files, and Debian's would clash with another one over /usr/bin/kubectl.
if command -v kubectl >/dev/null; then
  missing=("${missing[@]/kubernetes-client}")
fi
read -r -a missing <<<"${missing[*]:-}"
if [ ${#missing[@]} -gt 0 ]; then
  sudo_cmd=(); [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  echo "installing Debian packages: ${missing[*]}"
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  echo "Node $(node --version) is older than 20; the MCP SDK needs >= 20" >&2
  exit 1
fi
if [ ! -d tests/node_modules ] || [ tests/package-lock.json -nt tests/node_modules/.package-lock.json ]; then
  npm ci --prefix tests --no-audit --no-fund --loglevel=error
fi
