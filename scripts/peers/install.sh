#!/usr/bin/env bash
# Builds every peer Hearth is tested and measured against into the cache
# (${HEARTH_CACHE:-$HOME/.cache/hearth}/peers), skipping those already there, and prints where
# each one is. The conformance tests need aws-lambda-rie and aws-lambda-ric, the S3 code-store
# test gofakes3 (it skips without it); of-watchdog is only used by the benchmark, which reports it
# as not measured when it could not be built.
set -euo pipefail
here="$(dirname "$0")"

echo "aws-lambda-rie: $(bash "$here/aws-lambda-rie.sh")"
echo "aws-lambda-ric: $(bash "$here/aws-lambda-ric.sh")"
echo "gofakes3: $(bash "$here/gofakes3.sh")"
if watchdog="$(bash "$here/of-watchdog.sh")"; then
  echo "of-watchdog: $watchdog"
else
  echo "of-watchdog: not available (the benchmark runs without it)"
fi
