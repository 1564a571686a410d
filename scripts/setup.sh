#!/usr/bin/env bash
# Everything Hearth's tests need on a fresh Debian or Ubuntu machine with Node 20+:
# system packages (apt-get), the npm dependencies, the build, and the peers the conformance
# tests run against (built once into ${HEARTH_CACHE:-$HOME/.cache/hearth}).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
npm ci --no-audit --no-fund
npx tsc -b
bash scripts/peers/install.sh
