#!/usr/bin/env bash
# Builds what tier 2 (a real node) and the chart tests need beyond tier 1's control plane:
# kubelet, kube-scheduler and kube-proxy from k8s.io/kubernetes (the same wrapper-module approach
# and build flags as build-kube.sh, so Go's build cache is shared between the two), and helm from
# its module. Binaries go to a cache outside the repository, one folder per pinned version; a
# second run with the binaries present does nothing.
#
# Usage: build-node.sh [helm|node|all] (default all). Prints the bin directories on stdout,
# colon-separated. Env: HEARTH_CACHE, KUBE_VERSION, HELM_VERSION, HEARTH_BUILD_NICE=0 to build at
# normal priority.
set -euo pipefail

what="${1:-all}"
KUBE_VERSION="${KUBE_VERSION:-v1.34.4}"
HELM_VERSION="${HELM_VERSION:-v3.19.5}"
cache="${HEARTH_CACHE:-$HOME/.cache/hearth}"
node_bin="$cache/kube/$KUBE_VERSION/node-bin"
helm_bin="$cache/helm/$HELM_VERSION/bin"

log() { echo "[build-node] $*" >&2; }

go_cmd() {
  if command -v go >/dev/null 2>&1; then command -v go
  elif [ -x /usr/local/go/bin/go ]; then echo /usr/local/go/bin/go
  else log "Go is not installed: kubelet, kube-scheduler, kube-proxy and helm are built from their modules"; return 1
  fi
}

run_go() {
  if [ "${HEARTH_BUILD_NICE:-1}" = "1" ]; then
    GOMAXPROCS=1 GOFLAGS="${GOFLAGS:+$GOFLAGS }-p=1" nice -n 19 "$GO" "$@"
  else
    "$GO" "$@"
  fi
}

relative_replaces() {
  local gomod="$1" version="$2"
  sed -n 's/^[[:space:]]*\([^[:space:]]*\)[[:space:]]*=>[[:space:]]*\.\.*\/.*/\1/p' "$gomod" |
    while read -r mod; do echo "-replace=$mod=$mod@$version"; done
}

build_node() {
  local work minor gomod staging
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' RETURN
  minor="$(echo "$KUBE_VERSION" | cut -d. -f2)"
  staging="v0.${KUBE_VERSION#v1.}"
  log "building kubelet, kube-scheduler and kube-proxy $KUBE_VERSION"
  cd "$work"
  run_go mod init hearth.dev/node-build >/dev/null 2>&1
  gomod="$(run_go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
  # shellcheck disable=SC2046
  run_go mod edit $(relative_replaces "$gomod" "$staging") -require="k8s.io/kubernetes@$KUBE_VERSION"
  grep '^godebug' "$gomod" >>go.mod || true
  cat >tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
GO
  run_go mod tidy
  local ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags="$ldflags -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ldflags="$ldflags -X $pkg.gitTreeState=clean"
  done
  mkdir -p "$node_bin.tmp"
  # The same flags as the control plane's build (CGO off, -trimpath), so every package the two
  # share comes from Go's build cache. kubelet runs fine without cgo on cgroupfs.
  for cmd in kube-scheduler kube-proxy kubelet; do
    [ -x "$node_bin.tmp/$cmd" ] && continue
    CGO_ENABLED=0 run_go build -trimpath -ldflags "$ldflags" -o "$node_bin.tmp/$cmd" "k8s.io/kubernetes/cmd/$cmd"
  done
  rm -rf "$node_bin" && mv "$node_bin.tmp" "$node_bin"
}

build_helm() {
  local minor
  minor="$(echo "$KUBE_VERSION" | cut -d. -f2)"
  log "building helm $HELM_VERSION"
  # Without these, helm assumes Kubernetes 1.20 for `template`, `lint` and kubeVersion checks.
  local ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
    ldflags="$ldflags -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$minor"
  done
  mkdir -p "$helm_bin.tmp"
  CGO_ENABLED=0 GOBIN="$helm_bin.tmp" run_go install -trimpath -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  rm -rf "$helm_bin" && mv "$helm_bin.tmp" "$helm_bin"
}

GO="$(go_cmd)"
case "$what" in
  helm) [ -x "$helm_bin/helm" ] || build_helm; echo "$helm_bin" ;;
  node) [ -x "$node_bin/kubelet" ] || build_node; echo "$node_bin" ;;
  all)
    [ -x "$helm_bin/helm" ] || build_helm
    [ -x "$node_bin/kubelet" ] || build_node
    echo "$helm_bin:$node_bin"
    ;;
  *) log "usage: build-node.sh [helm|node|all]"; exit 2 ;;
esac
