#!/usr/bin/env bash
# Builds AWS's Runtime Interface Emulator (the local stand-in for Lambda's Runtime API plus its
# invoke endpoint) from its Go module and prints the binary's path. Cached per version.
set -euo pipefail
peer_mode="${1:-}"
source "$(dirname "$0")/lib.sh"

# The module has no semver tags on the proxy; this pseudo-version is the newest one served.
version="v0.0.0-20261030222936-bef5c4ba774d"
dir="$peers_cache/aws-lambda-rie/$version"
binary="$dir/aws-lambda-rie"

only_if_installed "$binary" "$binary"

if [ ! -x "$binary" ]; then
  log "aws-lambda-rie: a cold build takes about a minute"
  go_install aws-lambda-rie "$version" "$dir" \
    "github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie@$version"
fi
echo "$binary"
