#!/usr/bin/env bash
# Starts/stops a whole local Kubernetes cluster on loopback: etcd and
# kube-apiserver (apiserver.sh), kube-controller-manager, kube-scheduler and
# Rill's node agent (rill-node-agent, crate rill-e2e), which stands in for a
# kubelet and a container runtime: it registers the node, runs pods' containers
# as local processes (images mapped to binaries built by cargo), gives every
# pod its own 127.0.x.y address and provisions the default StorageClass
# `rill-local`. See e2e/README.md, "Node agent".
#
#   e2e/scripts/cluster.sh up         # builds what is missing, starts what is not running
#   e2e/scripts/cluster.sh down       # stops everything (add --clean to delete all state,
#                                     # --keep-apiserver to leave etcd + kube-apiserver running)
#   e2e/scripts/cluster.sh status
#   e2e/scripts/cluster.sh up-control-plane   # without the node agent
#
# Environment: everything apiserver.sh takes, plus KCM_PORT=10257,
# SCHEDULER_PORT=10259 (healthz ports, 127.0.0.1), NODE_NAME=rill-local,
# AGENT_POD_RANGE=127.0.16.0/20, AGENT_IMAGES (extra `PATTERN=BINARY` lines),
# AGENT_CPU=16 (the node's reported CPUs: pods are processes without CPU
# limits, so requests are bookkeeping only; 16 lets examples/ and a scale-up
# to 5 brokers schedule on a 2-core machine),
# CARGO_TARGET_DIR (where the broker/operator/agent binaries are built),
# AGENT_SKIP_BUILD=1 to use the binaries as they are.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
CACHE="${RILL_CACHE:-$HOME/.cache/rill}"
K8S_VERSION="${K8S_VERSION:-v1.37.1}"
BIN="$CACHE/k8s/$K8S_VERSION/bin"
RUN="${RILL_K8S_RUN:-$CACHE/k8s/run}"
PKI="$RUN/pki"
APISERVER_PORT="${APISERVER_PORT:-16443}"
KCM_PORT="${KCM_PORT:-10257}"
SCHEDULER_PORT="${SCHEDULER_PORT:-10259}"
SERVICE_CIDR="${SERVICE_CIDR:-10.96.0.0/16}"   # allocated in etcd only; no traffic is sent there
NODE_NAME="${NODE_NAME:-rill-local}"
AGENT_POD_RANGE="${AGENT_POD_RANGE:-127.0.16.0/20}"
AGENT_CPU="${AGENT_CPU:-16}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
AGENT_DIR="$RUN/agent"

log() { echo "[cluster] $*" >&2; }
# shellcheck source=lib.sh
source "$HERE/lib.sh"

# A client certificate and a kubeconfig for one control-plane component. The
# user names are the ones Kubernetes' bootstrap RBAC policy grants
# (system:kube-controller-manager, system:kube-scheduler).
component_kubeconfig() { # file-name common-name
    local name="$1" cn="$2"
    if [[ ! -f "$PKI/$name.crt" ]]; then
        log "generating the $name client certificate"
        openssl req -newkey rsa:2048 -nodes -subj "/CN=$cn" \
            -keyout "$PKI/$name.key" -out "$PKI/$name.csr" 2>/dev/null
        openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" \
            -CAcreateserial -days 3650 -extfile "$PKI/client.ext" -out "$PKI/$name.crt" 2>/dev/null
        rm -f "$PKI/$name.csr"
    fi
    cat > "$RUN/$name.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: rill-e2e
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority: $PKI/ca.crt
users:
- name: $cn
  user:
    client-certificate: $PKI/$name.crt
    client-key: $PKI/$name.key
contexts:
- name: rill-e2e
  context:
    cluster: rill-e2e
    user: $cn
current-context: rill-e2e
EOF
}

healthz() { curl -fsSk "https://127.0.0.1:$1/healthz"; }

start_controller_manager() {
    if alive kube-controller-manager; then
        log "kube-controller-manager already running (pid $(cat "$RUN/kube-controller-manager.pid"))"
        return 0
    fi
    component_kubeconfig controller-manager system:kube-controller-manager
    local kc="$RUN/controller-manager.kubeconfig"
    # The controllers Rill's objects need: workloads (Deployment, ReplicaSet,
    # StatefulSet), owner-reference garbage collection, Service endpoints,
    # ServiceAccounts and their tokens and CA, PodDisruptionBudgets,
    # namespace deletion, PersistentVolume binding and protection, node
    # health (the node agent's Lease) and pods of vanished nodes.
    # Each controller acts as its own ServiceAccount (the bootstrap RBAC roles
    # system:controller:*), as in a kubeadm cluster.
    local controllers=(
        deployment-controller replicaset-controller statefulset-controller
        garbage-collector-controller
        endpoints-controller endpointslice-controller endpointslice-mirroring-controller
        serviceaccount-controller serviceaccount-token-controller root-ca-certificate-publisher-controller
        disruption-controller namespace-controller
        persistentvolume-binder-controller persistentvolume-protection-controller
        persistentvolumeclaim-protection-controller
        node-lifecycle-controller pod-garbage-collector-controller ttl-controller
        clusterrole-aggregation-controller
    )
    log "starting kube-controller-manager (healthz https://127.0.0.1:$KCM_PORT)"
    nohup "$BIN/kube-controller-manager" \
        --kubeconfig "$kc" \
        --authentication-kubeconfig "$kc" \
        --authorization-kubeconfig "$kc" \
        --bind-address 127.0.0.1 \
        --secure-port "$KCM_PORT" \
        --leader-elect=false \
        --controllers "$(IFS=,; echo "${controllers[*]}")" \
        --service-account-private-key-file "$PKI/sa.key" \
        --root-ca-file "$PKI/ca.crt" \
        --service-cluster-ip-range "$SERVICE_CIDR" \
        --use-service-account-credentials=true \
        > "$RUN/logs/kube-controller-manager.log" 2>&1 &
    echo $! > "$RUN/kube-controller-manager.pid"
    wait_for "kube-controller-manager /healthz" kube-controller-manager 60 healthz "$KCM_PORT" \
        || { tail -30 "$RUN/logs/kube-controller-manager.log" >&2; exit 1; }
}

start_scheduler() {
    if alive kube-scheduler; then
        log "kube-scheduler already running (pid $(cat "$RUN/kube-scheduler.pid"))"
        return 0
    fi
    component_kubeconfig scheduler system:kube-scheduler
    local kc="$RUN/scheduler.kubeconfig"
    log "starting kube-scheduler (healthz https://127.0.0.1:$SCHEDULER_PORT)"
    nohup "$BIN/kube-scheduler" \
        --kubeconfig "$kc" \
        --authentication-kubeconfig "$kc" \
        --authorization-kubeconfig "$kc" \
        --bind-address 127.0.0.1 \
        --secure-port "$SCHEDULER_PORT" \
        --leader-elect=false \
        > "$RUN/logs/kube-scheduler.log" 2>&1 &
    echo $! > "$RUN/kube-scheduler.pid"
    wait_for "kube-scheduler /healthz" kube-scheduler 60 healthz "$SCHEDULER_PORT" \
        || { tail -30 "$RUN/logs/kube-scheduler.log" >&2; exit 1; }
}

start_agent() {
    if alive rill-node-agent; then
        log "rill-node-agent already running (pid $(cat "$RUN/rill-node-agent.pid"))"
        return 0
    fi
    if [[ "${AGENT_SKIP_BUILD:-}" != 1 ]]; then
        # The invocation `make test` uses (as quickstart.sh, compat/run.sh and
        # test-images.sh do): a no-op after its build. `cargo build -p ...`
        # resolves other features (no dev-dependencies: tokio without
        # test-util) and would compile tokio and everything above it again.
        log "building rill-node-agent, rill-broker, rill-operator into $TARGET/debug"
        (cd "$ROOT" && CARGO_TARGET_DIR="$TARGET" cargo test -q --workspace --all-targets --no-run)
    fi
    # Images of Rill's chart and operator map to the binaries cargo built.
    local images="$RUN/agent-images.conf"
    {
        echo "# image pattern = binary (written by e2e/scripts/cluster.sh)"
        echo "rill/broker:* = $TARGET/debug/rill-broker"
        echo "*/rill/broker:* = $TARGET/debug/rill-broker"
        echo "rill/operator:* = $TARGET/debug/rill-operator"
        echo "*/rill/operator:* = $TARGET/debug/rill-operator"
        echo "# e2e/tests/agent.rs: a shell image (other commands come from the host's PATH)"
        echo "rill-e2e/shell:* = $(command -v sh)"
        [[ -n "${AGENT_IMAGES:-}" ]] && printf '%s\n' "$AGENT_IMAGES"
    } > "$images"
    mkdir -p "$AGENT_DIR"
    log "starting rill-node-agent (node $NODE_NAME, pod addresses $AGENT_POD_RANGE, state in $AGENT_DIR)"
    nohup "$TARGET/debug/rill-node-agent" \
        --kubeconfig "$RUN/kubeconfig" \
        --node-name "$NODE_NAME" \
        --root-dir "$AGENT_DIR" \
        --pod-range "$AGENT_POD_RANGE" \
        --image-map "$images" \
        --cpu "$AGENT_CPU" \
        > "$RUN/logs/rill-node-agent.log" 2>&1 &
    echo $! > "$RUN/rill-node-agent.pid"
    wait_for "node $NODE_NAME Ready" rill-node-agent 60 \
        "$BIN/kubectl" --kubeconfig "$RUN/kubeconfig" wait --for=condition=Ready --timeout=2s "node/$NODE_NAME" \
        || { tail -30 "$RUN/logs/rill-node-agent.log" >&2; exit 1; }
}

stop_one() { # name timeout_s
    local name="$1" timeout="$2" pid
    if alive "$name"; then
        pid="$(cat "$RUN/$name.pid")"
        log "stopping $name (pid $pid)"
        kill "$pid" 2>/dev/null || true
        local deadline=$((SECONDS + timeout))
        while kill -0 "$pid" 2>/dev/null && (( SECONDS < deadline )); do sleep 0.25; done
        if kill -0 "$pid" 2>/dev/null; then log "$name did not stop in ${timeout}s: SIGKILL"; kill -9 "$pid" 2>/dev/null || true; fi
    fi
    rm -f "$RUN/$name.pid"
}

up_control_plane() {
    K8S_COMPONENTS="etcd kube-apiserver kubectl kube-controller-manager kube-scheduler" "$HERE/build-k8s.sh"
    "$HERE/apiserver.sh" start
    mkdir -p "$RUN/logs"
    start_controller_manager
    start_scheduler
}

up() {
    up_control_plane
    start_agent
    log "ready: export KUBECONFIG=$RUN/kubeconfig"
}

down() {
    # The agent stops its pods' processes (SIGTERM, grace period, SIGKILL).
    stop_one rill-node-agent 120
    stop_one kube-scheduler 10
    stop_one kube-controller-manager 10
    if [[ "${1:-}" == "--keep-apiserver" ]]; then return 0; fi
    "$HERE/apiserver.sh" stop "$@"
}

status() {
    local rc=0 name
    "$HERE/apiserver.sh" status || rc=1
    for name in kube-controller-manager kube-scheduler rill-node-agent; do
        if alive "$name"; then echo "$name: running (pid $(cat "$RUN/$name.pid"))"; else echo "$name: stopped"; rc=1; fi
    done
    return $rc
}

case "${1:-}" in
    up) up ;;
    up-control-plane) up_control_plane ;;
    down) shift; down "$@" ;;
    status) status ;;
    *) echo "usage: $0 up|up-control-plane|down [--clean|--keep-apiserver]|status" >&2; exit 2 ;;
esac
