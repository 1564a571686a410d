#!/usr/bin/env bash
# Installs the system packages Hearth's tests and `hearth dev` use, where they are missing.
# Debian/Ubuntu (apt-get); run as root, or with sudo available.
set -euo pipefail

packages=(redis-server python3 e2fsprogs util-linux procps awscli prometheus mount)
# Event source mappings read NATS JetStream; the tests run a real nats-server.
packages+=(nats-server)
# The peers (scripts/peers): aws-lambda-ric compiles a native addon against libcurl; wrk is the
# benchmark's load generator.
packages+=(g++ make cmake autoconf automake libtool libcurl4-openssl-dev wrk)
# The single-node cluster (test/cluster/cluster.sh) and its images (images/build.sh).
packages+=(containerd runc containernetworking-plugins iptables conntrack buildah openssl curl)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The distribution's redis-server may start a service; Hearth's tests start their own.
