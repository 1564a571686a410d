#!/usr/bin/env bash
# Builds gofakes3 (an S3-compatible server in one Go binary) from its Go module and prints the
# binary's path. Cached per version. The S3 code-store test runs the management API against it.
set -euo pipefail
peer_mode="${1:-}"
source "$(dirname "$0")/lib.sh"

version="v1.2.0"
dir="$peers_cache/gofakes3/$version"
binary="$dir/gofakes3"

only_if_installed "$binary" "$binary"

if [ ! -x "$binary" ]; then
  go_install gofakes3 "$version" "$dir" "github.com/johannesboyne/gofakes3/cmd/gofakes3@$version"
fi
echo "$binary"
