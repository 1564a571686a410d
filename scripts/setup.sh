#!/usr/bin/env bash
# Everything Hearth's tests need on a fresh Debian or Ubuntu machine with Node 20+:
# system packages (apt-get), the npm dependencies, the build, the peers the conformance tests run
# against, the Kubernetes control plane and helm the controller and chart tests use, and (as root)
# the node binaries and images of the single-node cluster test. Tools
# built from source go once into ${HEARTH_CACHE:-$HOME/.cache/hearth}; later runs reuse them.
set -euo pipefail
cd "$(dirname "$0")/.."

# A cold build of the kube binaries takes most of an hour on two cores at low priority; here the
# machine is ours, so build at full speed unless told otherwise.
export HEARTH_BUILD_NICE="${HEARTH_BUILD_NICE:-0}"

bash scripts/install-deps.sh
npm ci --no-audit --no-fund
npm run build
bash scripts/peers/install.sh
bash test/cluster/build-kube.sh >/dev/null
if [ "$(id -u)" = 0 ]; then
  # As root the end-to-end test runs on a real single node: kubelet, kube-scheduler and
  # kube-proxy, helm, and Hearth's images (rebuilt only when their content changed).
  bash test/cluster/build-node.sh all >/dev/null
  bash images/build.sh
else
  bash test/cluster/build-node.sh helm >/dev/null
  echo "setup: not root, so the single-node cluster test will be skipped (it needs root)" >&2
fi
