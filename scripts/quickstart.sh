#!/usr/bin/env bash
# Runs Hearth locally (`hearth dev`) with the example functions in examples/, installing what is
# missing first: system packages by apt-get (Redis, Python 3, ...), the npm dependencies, the build.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
[ -d node_modules ] || npm ci --no-audit --no-fund
npm run build
exec npx hearth dev --dir examples --port "${PORT:-8080}"
