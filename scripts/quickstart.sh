#!/usr/bin/env bash
# Runs Hearth's runtime shim with the hello example on http://127.0.0.1:${PORT:-8080}, installing
# what is missing first (system packages by apt-get, npm dependencies, the build).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
[ -d node_modules ] || npm ci --no-audit --no-fund
npx tsc -b

port="${PORT:-8080}"
echo "hello is starting on http://127.0.0.1:$port; try:"
echo "  curl -s -X POST http://127.0.0.1:$port/invoke -d '{\"name\":\"you\"}'"
HEARTH_FUNCTION_NAME=hello \
HEARTH_RUNTIME=nodejs20.x \
HEARTH_HANDLER=index.handler \
HEARTH_CODE_DIR="$PWD/examples/hello" \
HEARTH_HOST=127.0.0.1 \
HEARTH_PORT="$port" \
exec node runtime-shim/dist/main.js
