#!/usr/bin/env bash
# Builds OpenFaaS's of-watchdog (the HTTP front process of an OpenFaaS function) from its Go module
# and prints the binary's path. Cached per version.
# Exits 1 with a message when the module cannot be fetched: some module proxies do not serve it,
# and the benchmark then reports of-watchdog as not measured instead of failing.
set -euo pipefail
peer_mode="${1:-}"
source "$(dirname "$0")/lib.sh"

version="v0.9.15"
dir="$peers_cache/of-watchdog/$version"
binary="$dir/of-watchdog"

only_if_installed "$binary" "$binary"

if [ ! -x "$binary" ]; then
  if ! go_install of-watchdog "$version" "$dir" "github.com/openfaas/of-watchdog@$version"; then
    log "could not build of-watchdog $version: its Go module is not available from this machine's module proxy"
    exit 1
  fi
fi
echo "$binary"
