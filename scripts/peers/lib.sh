# Shared by the peer build scripts: where the cache is and how to time a build.
# Peers are third-party programs Hearth is tested and measured against; they are built from
# their registries into a cache outside the repository, one folder per pinned version.
peers_cache="${HEARTH_CACHE:-$HOME/.cache/hearth}/peers"

# The machine's Go may live outside PATH (it does on a fresh Debian machine with a manual install).
find_go() {
  if command -v go >/dev/null 2>&1; then
    command -v go
  elif [ -x /usr/local/go/bin/go ]; then
    echo /usr/local/go/bin/go
  else
    echo "Go is not installed: the Go peers are built from their modules" >&2
    return 1
  fi
}

log() {
  echo "[peers] $*" >&2
}

# `<script> --installed` prints the peer's path only when it is already built, and fails
# otherwise: the tests and the benchmark locate peers this way, never building one themselves.
only_if_installed() {
  local path="$1" marker="$2"
  if [ "${peer_mode:-}" = "--installed" ]; then
    [ -e "$marker" ] || { echo "not installed: run scripts/peers/install.sh" >&2; exit 1; }
    echo "$path"
    exit 0
  fi
}

# `go_install <name> <version> <dir> <module path>@<version>`: builds a Go module's command into
# <dir> with the machine's Go, timing it. Static binaries (no cgo), so the cache does not depend on
# the machine's C libraries. Fails as `go install` does, leaving no empty version folder behind.
go_install() {
  local name="$1" version="$2" dir="$3" package="$4" go started
  # Explicit returns: a caller testing the result (`if ! go_install ...`) turns errexit off here.
  go="$(find_go)" || return 1
  log "building $name $version"
  started=$SECONDS
  mkdir -p "$dir" || return 1
  if ! GOFLAGS=-mod=mod GOBIN="$dir" CGO_ENABLED=0 "$go" install "$package"; then
    rmdir "$dir" 2>/dev/null || true
    return 1
  fi
  log "built $name in $((SECONDS - started)) s"
}
