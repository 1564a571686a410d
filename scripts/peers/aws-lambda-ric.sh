#!/usr/bin/env bash
# Installs AWS's Node.js runtime interface client (npm aws-lambda-ric; 3.x is the line that runs
# on Node 20) into the cache and prints the path of its command (bin/index.mjs). Its native
# addon compiles libcurl-based code: it needs g++, make, cmake, autoconf, automake, libtool and
# libcurl headers (scripts/install-deps.sh installs them) and takes a few minutes cold.
set -euo pipefail
peer_mode="${1:-}"
source "$(dirname "$0")/lib.sh"

version="3.3.0"
dir="$peers_cache/aws-lambda-ric/$version"
entry="$dir/node_modules/aws-lambda-ric/bin/index.mjs"
# Written last, so an interrupted build is redone rather than taken for a finished one.
marker="$dir/.complete"

only_if_installed "$entry" "$marker"

if [ ! -f "$marker" ]; then
  log "installing aws-lambda-ric $version (cold: about 3-4 minutes, compiles a native addon)"
  started=$SECONDS
  rm -rf "$dir"
  mkdir -p "$dir"
  echo '{"name":"hearth-peer-aws-lambda-ric","private":true}' >"$dir/package.json"
  # --foreground-scripts shows the native build's progress. The install scripts must run (they
  # build the addon); npm 11 warns that allowScripts does not cover them, and runs them.
  npm install --prefix "$dir" --no-audit --no-fund --no-save --foreground-scripts \
    --ignore-scripts=false "aws-lambda-ric@$version" >&2
  test -f "$entry"
  touch "$marker"
  log "installed aws-lambda-ric in $((SECONDS - started)) s"
fi
echo "$entry"
