#!/usr/bin/env bash
# A real single-node Kubernetes for tier-2 tests, without systemd, Docker or a registry:
# etcd + kube-apiserver + kube-controller-manager + kube-scheduler (built by build-kube.sh and
# build-node.sh), containerd + runc + CNI plugins from Debian, kubelet and kube-proxy.
#
#   cluster.sh up DIR      start everything with its state under DIR (a new, empty directory);
#                          prints `export KUBECONFIG=...` lines; every daemon logs to DIR/logs
#   cluster.sh down DIR    stop the daemons by PID, unmount what they mounted, delete cni0,
#                          remove the iptables chains kube-proxy made, delete DIR
#   cluster.sh logs DIR    the last lines of every daemon's log
#
# Addresses stay inside the machine: pods in 198.18.0.0/16 on bridge cni0 (no masquerade to the
# outside), Services in 198.19.0.0/16 through kube-proxy (iptables). No cluster DNS: address things
# by IP or through Service environment variables. Needs root, cgroup v1 or v2, and the packages
# containerd, runc, containernetworking-plugins, iptables, conntrack.
# Env: HEARTH_CACHE, KUBE_VERSION, ETCD_VERSION, HEARTH_NODE_NAME.
set -euo pipefail

cmd="${1:-}"
dir="${2:-}"
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: cluster.sh up|down|logs DIR" >&2; exit 2; }
here="$(cd "$(dirname "$0")" && pwd)"
KUBE_VERSION="${KUBE_VERSION:-v1.34.4}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
cache="${HEARTH_CACHE:-$HOME/.cache/hearth}"
kube_bin="$cache/kube/$KUBE_VERSION/bin"
node_bin="$cache/kube/$KUBE_VERSION/node-bin"
etcd_bin="$cache/etcd/$ETCD_VERSION/bin"
node_name="${HEARTH_NODE_NAME:-hearth-node}"
pod_cidr=198.18.0.0/16
service_cidr=198.19.0.0/16
bridge=cni0

log() { echo "[cluster] $*" >&2; }
die() { log "$*"; exit 1; }

free_port() {
  node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

# Starts a daemon in the background, its output in DIR/logs/NAME.log, its PID in DIR/pids/NAME.
start() {
  local name="$1"; shift
  log "starting $name"
  setsid "$@" >"$dir/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$dir/pids/$name"
}

alive() { kill -0 "$(cat "$dir/pids/$1")" 2>/dev/null; }

# wait_for NAME SECONDS COMMAND...: until COMMAND succeeds; fails with the daemon's log.
wait_for() {
  local name="$1" seconds="$2"; shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if ! alive "$name"; then tail -n 40 "$dir/logs/$name.log" >&2; die "$name exited"; fi
    if [ $SECONDS -ge $deadline ]; then tail -n 40 "$dir/logs/$name.log" >&2; die "$name not ready in ${seconds}s"; fi
    sleep 0.5
  done
}

host_ip() {
  local dev
  dev="$(ip -4 route show default | awk '{for (i = 1; i < NF; i++) if ($i == "dev") print $(i + 1)}' | head -n1)"
  [ -n "$dev" ] || dev="$(ip -4 -o addr show scope global | awk '$2 != "'$bridge'" {print $2; exit}')"
  ip -4 -o addr show dev "$dev" scope global | awk '{split($4, a, "/"); print a[1]; exit}'
}

certificates() {
  local c="$dir/pki" ip="$1"
  mkdir -p "$c"
  (
    cd "$c"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj /CN=hearth-cluster-ca 2>/dev/null
    sign() {
      openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
      printf '%b' "$3" >"$1.ext"
      openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -out "$1.crt" -days 2 -extfile "$1.ext" 2>/dev/null
    }
    sign apiserver /CN=kube-apiserver "subjectAltName=IP:127.0.0.1,IP:$ip,IP:198.19.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\nextendedKeyUsage=serverAuth\n"
    sign kubelet "/CN=$node_name" "subjectAltName=IP:127.0.0.1,IP:$ip,DNS:$node_name\nextendedKeyUsage=serverAuth\n"
    # One client identity in system:masters for every component: a throwaway test cluster.
    sign admin /O=system:masters/CN=hearth-admin "extendedKeyUsage=clientAuth\n"
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  )
}

kubeconfig() {
  cat >"$dir/kubeconfig" <<YAML
apiVersion: v1
kind: Config
clusters:
- name: hearth
  cluster: { server: "https://127.0.0.1:$1", certificate-authority: "$dir/pki/ca.crt" }
users:
- name: admin
  user: { client-certificate: "$dir/pki/admin.crt", client-key: "$dir/pki/admin.key" }
contexts:
- name: hearth
  context: { cluster: hearth, user: admin }
current-context: hearth
YAML
}

containerd_config() {
  local snapshotter="$1"
  mkdir -p "$dir/containerd" "$dir/cni/net.d" "$dir/cni/networks"
  cat >"$dir/containerd/config.toml" <<TOML
version = 2
root = "$dir/containerd/root"
state = "$dir/containerd/state"
[grpc]
  address = "$dir/containerd/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/hearth-pause:${HEARTH_IMAGE_TAG:-0.1.0}"
  # No CAP_SYS_RESOURCE here: containers may not lower their OOM score below the daemon's.
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "$snapshotter"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$dir/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$dir/cni/net.d"
TOML
  cat >"$dir/cni/net.d/10-hearth.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "hearth",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$bridge",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$dir/cni/networks",
        "ranges": [[{ "subnet": "$pod_cidr", "gateway": "198.18.0.1", "rangeStart": "198.18.0.10" }]],
        "routes": [{ "dst": "0.0.0.0/0" }]
      }
    },
    { "type": "portmap", "capabilities": { "portMappings": true }, "snat": false }
  ]
}
JSON
}

kubelet_config() {
  local healthz="$1"
  cat >"$dir/kubelet/config.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$dir/containerd/containerd.sock
failSwapOn: false
address: 0.0.0.0
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $healthz
tlsCertFile: $dir/pki/kubelet.crt
tlsPrivateKeyFile: $dir/pki/kubelet.key
# CI only: anyone who reaches the kubelet may use it.
authentication:
  anonymous: { enabled: true }
  webhook: { enabled: false }
  x509: { clientCAFile: $dir/pki/ca.crt }
authorization: { mode: AlwaysAllow }
# Images cannot be pulled back (no registry): never collect them.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 50Mi
  nodefs.available: 1%
  nodefs.inodesFree: 1%
  imagefs.available: 1%
evictionPressureTransitionPeriod: 10s
maxOpenFiles: 20000
serializeImagePulls: false
resolvConf: $dir/kubelet/resolv.conf
staticPodPath: ""
registerNode: true
localStorageCapacityIsolation: true
housekeepingInterval: 5s
YAML
  : >"$dir/kubelet/resolv.conf"
}

up() {
  [ "$(id -u)" = 0 ] || die "needs root (containerd, kubelet, CNI)"
  for b in "$kube_bin/kube-apiserver" "$kube_bin/kube-controller-manager" "$etcd_bin/etcd" "$node_bin/kubelet" "$node_bin/kube-scheduler" "$node_bin/kube-proxy"; do
    [ -x "$b" ] || die "$b missing: run test/cluster/build-kube.sh and test/cluster/build-node.sh"
  done
  for b in containerd runc iptables conntrack; do command -v "$b" >/dev/null || die "$b missing (Debian package)"; done
  [ -x /usr/lib/cni/bridge ] || die "CNI plugins missing (containernetworking-plugins)"
  ip link show "$bridge" >/dev/null 2>&1 && die "$bridge exists: another cluster runs, or one was not torn down (cluster.sh down)"
  mkdir -p "$dir"/{logs,pids,kubelet,proxy}
  local ip etcd_port peer_port api_port kcm_port sched_port kubelet_healthz proxy_healthz proxy_metrics
  ip="$(host_ip)"
  [ -n "$ip" ] || die "no global IPv4 address for the apiserver to advertise"
  echo "$ip" >"$dir/host-ip"
  etcd_port="$(free_port)"; peer_port="$(free_port)"; api_port="$(free_port)"; kcm_port="$(free_port)"
  sched_port="$(free_port)"; kubelet_healthz="$(free_port)"; proxy_healthz="$(free_port)"; proxy_metrics="$(free_port)"

  # Forwarding for pod traffic; bridged traffic through iptables, so that a Service's reply from a
  # pod on the same bridge is un-NATed. Restored by `down`.
  sysctl -n net.ipv4.ip_forward >"$dir/ip_forward.saved"
  sysctl -qw net.ipv4.ip_forward=1
  if [ -e /proc/sys/net/bridge/bridge-nf-call-iptables ]; then
    sysctl -n net.bridge.bridge-nf-call-iptables >"$dir/bridge-nf.saved"
    sysctl -qw net.bridge.bridge-nf-call-iptables=1
  fi

  certificates "$ip"
  kubeconfig "$api_port"

  start etcd "$etcd_bin/etcd" --name=node --data-dir="$dir/etcd" \
    --listen-client-urls="http://127.0.0.1:$etcd_port" --advertise-client-urls="http://127.0.0.1:$etcd_port" \
    --listen-peer-urls="http://127.0.0.1:$peer_port" --initial-advertise-peer-urls="http://127.0.0.1:$peer_port" \
    --initial-cluster="node=http://127.0.0.1:$peer_port" --unsafe-no-fsync --log-level=warn
  wait_for etcd 30 curl -fs "http://127.0.0.1:$etcd_port/health"

  start kube-apiserver "$kube_bin/kube-apiserver" --etcd-servers="http://127.0.0.1:$etcd_port" \
    --secure-port="$api_port" --bind-address=0.0.0.0 --advertise-address="$ip" \
    --cert-dir="$dir/apiserver-certs" --tls-cert-file="$dir/pki/apiserver.crt" --tls-private-key-file="$dir/pki/apiserver.key" \
    --client-ca-file="$dir/pki/ca.crt" --service-cluster-ip-range="$service_cidr" --authorization-mode=Node,RBAC \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$dir/pki/sa.pub" --service-account-signing-key-file="$dir/pki/sa.key" \
    --kubelet-client-certificate="$dir/pki/admin.crt" --kubelet-client-key="$dir/pki/admin.key" \
    --kubelet-certificate-authority="$dir/pki/ca.crt" --kubelet-preferred-address-types=InternalIP \
    --allow-privileged=true --v=1
  wait_for kube-apiserver 120 kubectl --kubeconfig="$dir/kubeconfig" get --raw /readyz

  start kube-controller-manager "$kube_bin/kube-controller-manager" --kubeconfig="$dir/kubeconfig" \
    --authentication-kubeconfig="$dir/kubeconfig" --authorization-kubeconfig="$dir/kubeconfig" \
    --leader-elect=false --secure-port="$kcm_port" --bind-address=127.0.0.1 \
    --service-account-private-key-file="$dir/pki/sa.key" --root-ca-file="$dir/pki/ca.crt" \
    --cluster-signing-cert-file="$dir/pki/ca.crt" --cluster-signing-key-file="$dir/pki/ca.key" \
    --use-service-account-credentials=true --service-cluster-ip-range="$service_cidr" \
    --controllers='*' --v=1
  start kube-scheduler "$node_bin/kube-scheduler" --kubeconfig="$dir/kubeconfig" \
    --authentication-kubeconfig="$dir/kubeconfig" --authorization-kubeconfig="$dir/kubeconfig" \
    --leader-elect=false --secure-port="$sched_port" --bind-address=127.0.0.1 --v=1

  # overlayfs where the kernel and the backing filesystem allow it, else the slow native one.
  local snapshotter=overlayfs
  mkdir -p "$dir/ovl"/{l,u,w,m}
  if ! mount -t overlay overlay -o "lowerdir=$dir/ovl/l,upperdir=$dir/ovl/u,workdir=$dir/ovl/w" "$dir/ovl/m" 2>/dev/null; then
    snapshotter=native
    log "overlayfs unavailable here: containerd uses the native snapshotter"
  else
    umount "$dir/ovl/m"
  fi
  rm -rf "$dir/ovl"
  containerd_config "$snapshotter"
  start containerd containerd --config "$dir/containerd/config.toml"
  wait_for containerd 30 ctr --address "$dir/containerd/containerd.sock" version
  echo "$snapshotter" >"$dir/snapshotter"

  # The images, pause first (the CRI's sandbox image): built once, imported on every start.
  local archive
  for archive in "$cache"/images/hearth-*.tar; do
    [ -e "$archive" ] || die "no images in $cache/images: run images/build.sh"
    ctr --address "$dir/containerd/containerd.sock" -n k8s.io images import --snapshotter "$snapshotter" "$archive" >/dev/null
  done
  log "imported $(ls "$cache"/images/hearth-*.tar | wc -l) images"

  kubelet_config "$kubelet_healthz"
  start kubelet "$node_bin/kubelet" --config="$dir/kubelet/config.yaml" --kubeconfig="$dir/kubeconfig" \
    --hostname-override="$node_name" --node-ip="$ip" --root-dir="$dir/kubelet/root" \
    --cert-dir="$dir/kubelet/pki" --v=1
  wait_for kubelet 60 curl -fs "http://127.0.0.1:$kubelet_healthz/healthz"

  cat >"$dir/proxy/config.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: { kubeconfig: $dir/kubeconfig }
hostnameOverride: $node_name
mode: iptables
clusterCIDR: $pod_cidr
healthzBindAddress: 127.0.0.1:$proxy_healthz
metricsBindAddress: 127.0.0.1:$proxy_metrics
conntrack: { maxPerCore: 0 }
YAML
  start kube-proxy "$node_bin/kube-proxy" --config="$dir/proxy/config.yaml" --v=1
  wait_for kube-proxy 60 curl -fs "http://127.0.0.1:$proxy_healthz/healthz"

  # The node is usable once it is Ready (its CNI config loaded, its runtime up).
  local deadline=$((SECONDS + 90))
  until [ "$(kubectl --kubeconfig="$dir/kubeconfig" get node "$node_name" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]; do
    if [ $SECONDS -ge $deadline ]; then
      kubectl --kubeconfig="$dir/kubeconfig" describe node "$node_name" >&2 || true
      tail -n 40 "$dir/logs/kubelet.log" >&2
      die "node $node_name not Ready in 90s"
    fi
    alive kubelet || { tail -n 40 "$dir/logs/kubelet.log" >&2; die "kubelet exited"; }
    sleep 1
  done
  log "node $node_name Ready (apiserver https://$ip:$api_port, snapshotter $snapshotter)"
  echo "export KUBECONFIG=$dir/kubeconfig"
  echo "export HEARTH_NODE_IP=$ip"
  echo "export CONTAINERD_ADDRESS=$dir/containerd/containerd.sock"
}

stop_pid() {
  local name="$1" pid i
  [ -f "$dir/pids/$name" ] || return 0
  pid="$(cat "$dir/pids/$name")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$dir/pids/$name"
}

down() {
  [ -d "$dir" ] || return 0
  # The kubelet first, so that it restarts nothing while containers go.
  stop_pid kubelet
  stop_pid kube-proxy
  if [ -S "$dir/containerd/containerd.sock" ] && [ -f "$dir/pids/containerd" ]; then
    # Stop every pod's tasks so their shims exit and their mounts and network namespaces go.
    local c="ctr --address $dir/containerd/containerd.sock -n k8s.io" id
    for id in $($c tasks list -q 2>/dev/null); do $c tasks kill -s KILL "$id" >/dev/null 2>&1 || true; done
    sleep 1
    for id in $($c tasks list -q 2>/dev/null); do $c tasks delete -f "$id" >/dev/null 2>&1 || true; done
  fi
  stop_pid containerd
  # The runc shims are containerd's children in their own sessions: stop those still running.
  local pid
  for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $dir/containerd/containerd.sock" 2>/dev/null || true); do
    kill -KILL "$pid" 2>/dev/null || true
  done
  stop_pid kube-scheduler
  stop_pid kube-controller-manager
  stop_pid kube-apiserver
  stop_pid etcd
  # Mounts under DIR (overlay rootfs, secrets, configmaps, shm, netns), deepest first.
  local m
  for m in $(awk -v d="$dir/" 'index($2, d) == 1 {print $2}' /proc/self/mounts | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
  ip link delete "$bridge" 2>/dev/null || true
  # kube-proxy's chains: the jumps into them, then their rules, then the chains.
  local table chain
  for table in nat filter mangle; do
    iptables -t "$table" -S 2>/dev/null | awk '$1 == "-A" && $2 !~ /^KUBE-/ && /-j KUBE-/' | sed 's/^-A/-D/' |
      while read -r line; do
        # shellcheck disable=SC2086
        eval iptables -t "$table" $line 2>/dev/null || true
      done
    for chain in $(iptables -t "$table" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^KUBE-/ {print $2}'); do
      iptables -t "$table" -F "$chain" 2>/dev/null || true
    done
    for chain in $(iptables -t "$table" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^KUBE-/ {print $2}'); do
      iptables -t "$table" -X "$chain" 2>/dev/null || true
    done
  done
  [ -f "$dir/ip_forward.saved" ] && sysctl -qw net.ipv4.ip_forward="$(cat "$dir/ip_forward.saved")"
  [ -f "$dir/bridge-nf.saved" ] && sysctl -qw net.bridge.bridge-nf-call-iptables="$(cat "$dir/bridge-nf.saved")"
  rm -rf "$dir"
}

logs() {
  local f
  for f in "$dir"/logs/*.log; do
    echo "--- $(basename "$f" .log)"
    tail -n "${LINES_PER_LOG:-30}" "$f"
  done
}

case "$cmd" in
  up) up ;;
  down) down ;;
  logs) logs ;;
  *) echo "usage: cluster.sh up|down|logs DIR" >&2; exit 2 ;;
esac
