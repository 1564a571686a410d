#!/usr/bin/env bash
# Builds the tier-1 control plane (kube-apiserver, kube-controller-manager, etcd) from their Go
# modules into a cache outside the repository, one folder per pinned version. A second run with
# the binaries present does nothing, so CI can call it before every test run.
#
# k8s.io/kubernetes and etcd's server cannot be `go install`ed: their go.mod files point sibling
# modules at relative paths. Each is built from a small wrapper module that replaces those paths
# with the published modules of the same release.
#
# Prints the bin directory on stdout. Env: HEARTH_CACHE (cache root), KUBE_VERSION, ETCD_VERSION,
# HEARTH_BUILD_NICE=0 to build at normal priority.
set -euo pipefail

KUBE_VERSION="${KUBE_VERSION:-v1.34.4}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
cache="${HEARTH_CACHE:-$HOME/.cache/hearth}"
kube_bin="$cache/kube/$KUBE_VERSION/bin"
etcd_bin="$cache/etcd/$ETCD_VERSION/bin"

log() { echo "[build-kube] $*" >&2; }

go_cmd() {
  if command -v go >/dev/null 2>&1; then command -v go
  elif [ -x /usr/local/go/bin/go ]; then echo /usr/local/go/bin/go
  else log "Go is not installed: the kube binaries are built from their modules"; return 1
  fi
}

# The machine is shared: build on one core at the lowest priority unless told otherwise.
run_go() {
  if [ "${HEARTH_BUILD_NICE:-1}" = "1" ]; then
    GOMAXPROCS=1 GOFLAGS="${GOFLAGS:+$GOFLAGS }-p=1" nice -n 19 "$GO" "$@"
  else
    "$GO" "$@"
  fi
}

# Writes `go mod edit -replace` flags turning every relative replace of the given go.mod into
# the published module at the given version.
relative_replaces() {
  local gomod="$1" version="$2"
  sed -n 's/^[[:space:]]*\([^[:space:]]*\)[[:space:]]*=>[[:space:]]*\.\.*\/.*/\1/p' "$gomod" |
    while read -r mod; do echo "-replace=$mod=$mod@$version"; done
}

build_kube() {
  local work minor gomod staging
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' RETURN
  minor="$(echo "$KUBE_VERSION" | cut -d. -f2)"
  staging="v0.${KUBE_VERSION#v1.}"
  log "building kube-apiserver and kube-controller-manager $KUBE_VERSION (10-20 minutes cold)"
  cd "$work"
  run_go mod init hearth.dev/kube-build >/dev/null 2>&1
  gomod="$(run_go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
  # shellcheck disable=SC2046
  run_go mod edit $(relative_replaces "$gomod" "$staging") -require="k8s.io/kubernetes@$KUBE_VERSION"
  # The release pins runtime behaviour with godebug lines; the binaries should behave the same.
  grep '^godebug' "$gomod" >>go.mod || true
  cat >tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
)
GO
  run_go mod tidy
  # Version stamps: clients (kubectl, helm's kubeVersion checks) read the server version.
  local ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags="$ldflags -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ldflags="$ldflags -X $pkg.gitTreeState=clean"
  done
  mkdir -p "$kube_bin.tmp"
  for cmd in kube-apiserver kube-controller-manager; do
    CGO_ENABLED=0 run_go build -trimpath -ldflags "$ldflags" -o "$kube_bin.tmp/$cmd" "k8s.io/kubernetes/cmd/$cmd"
  done
  rm -rf "$kube_bin" && mv "$kube_bin.tmp" "$kube_bin"
}

build_etcd() {
  local work gomod
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' RETURN
  log "building etcd $ETCD_VERSION"
  cd "$work"
  run_go mod init hearth.dev/etcd-build >/dev/null 2>&1
  gomod="$(run_go mod download -json "go.etcd.io/etcd/server/v3@$ETCD_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
  # shellcheck disable=SC2046
  run_go mod edit $(relative_replaces "$gomod" "$ETCD_VERSION") -require="go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  cat >tools.go <<'GO'
//go:build tools

package tools

import _ "go.etcd.io/etcd/server/v3"
GO
  run_go mod tidy
  mkdir -p "$etcd_bin.tmp"
  CGO_ENABLED=0 run_go build -trimpath -ldflags "-s -w" -o "$etcd_bin.tmp/etcd" go.etcd.io/etcd/server/v3
  rm -rf "$etcd_bin" && mv "$etcd_bin.tmp" "$etcd_bin"
}

GO="$(go_cmd)"
[ -x "$etcd_bin/etcd" ] || build_etcd
[ -x "$kube_bin/kube-apiserver" ] && [ -x "$kube_bin/kube-controller-manager" ] || build_kube
echo "$kube_bin:$etcd_bin"
