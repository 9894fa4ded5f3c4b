#!/usr/bin/env bash
# Starts/stops a local Kubernetes API server (etcd + kube-apiserver) on 127.0.0.1.
#
#   e2e/scripts/apiserver.sh start    # builds the binaries first if needed
#   e2e/scripts/apiserver.sh stop
#   e2e/scripts/apiserver.sh status
#
# Everything lives under ${RILL_CACHE:-$HOME/.cache/rill}/k8s/run (certs, keys,
# etcd data, logs, pids). The admin kubeconfig is written to
# ${RILL_CACHE}/k8s/run/kubeconfig (client-certificate user in system:masters).
#
# Ports (override with env): ETCD_CLIENT_PORT=23790 ETCD_PEER_PORT=23800
# APISERVER_PORT=16443. Authorization: RBAC (plus Node). Service-account tokens
# are signed with a key pair generated here.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${RILL_CACHE:-$HOME/.cache/rill}"
K8S_VERSION="${K8S_VERSION:-v1.37.1}"
BIN="$CACHE/k8s/$K8S_VERSION/bin"
RUN="${RILL_K8S_RUN:-$CACHE/k8s/run}"
ETCD_CLIENT_PORT="${ETCD_CLIENT_PORT:-23790}"
ETCD_PEER_PORT="${ETCD_PEER_PORT:-23800}"
APISERVER_PORT="${APISERVER_PORT:-16443}"
SERVICE_CIDR="${SERVICE_CIDR:-10.96.0.0/16}"   # allocated in etcd only; no traffic is sent there

log() { echo "[apiserver] $*" >&2; }

# shellcheck source=lib.sh
source "$HERE/lib.sh"

gen_pki() {
    local pki="$RUN/pki"
    [[ -f "$pki/admin.crt" ]] && return 0
    log "generating certificates in $pki"
    mkdir -p "$pki"
    (
        cd "$pki"
        openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=rill-e2e-ca" \
            -keyout ca.key -out ca.crt 2>/dev/null
        cat > serving.ext <<EOF
subjectAltName=DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:10.96.0.1
extendedKeyUsage=serverAuth
EOF
        openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" \
            -keyout apiserver.key -out apiserver.csr 2>/dev/null
        openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
            -days 3650 -extfile serving.ext -out apiserver.crt 2>/dev/null
        printf 'extendedKeyUsage=clientAuth\n' > client.ext
        openssl req -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=rill-e2e-admin" \
            -keyout admin.key -out admin.csr 2>/dev/null
        openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
            -days 3650 -extfile client.ext -out admin.crt 2>/dev/null
        openssl genrsa -out sa.key 2048 2>/dev/null
        openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
        rm -f ./*.csr
    )
}

write_kubeconfig() {
    local pki="$RUN/pki"
    cat > "$RUN/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: rill-e2e
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority: $pki/ca.crt
users:
- name: rill-e2e-admin
  user:
    client-certificate: $pki/admin.crt
    client-key: $pki/admin.key
contexts:
- name: rill-e2e
  context:
    cluster: rill-e2e
    user: rill-e2e-admin
current-context: rill-e2e
EOF
}

start() {
    K8S_COMPONENTS="${K8S_COMPONENTS:-etcd kube-apiserver}" "$HERE/build-k8s.sh"
    mkdir -p "$RUN/logs"
    gen_pki
    write_kubeconfig
    local pki="$RUN/pki"

    if alive etcd; then
        log "etcd already running (pid $(cat "$RUN/etcd.pid"))"
    else
        log "starting etcd on 127.0.0.1:$ETCD_CLIENT_PORT"
        nohup "$BIN/etcd" \
            --name rill-e2e \
            --data-dir "$RUN/etcd" \
            --listen-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" \
            --advertise-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" \
            --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
            --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
            --initial-cluster "rill-e2e=http://127.0.0.1:$ETCD_PEER_PORT" \
            --unsafe-no-fsync \
            > "$RUN/logs/etcd.log" 2>&1 &
        echo $! > "$RUN/etcd.pid"
        wait_for "etcd /health" etcd 60 curl -fsS "http://127.0.0.1:$ETCD_CLIENT_PORT/health" \
            || { tail -20 "$RUN/logs/etcd.log" >&2; exit 1; }
    fi

    if alive kube-apiserver; then
        log "kube-apiserver already running (pid $(cat "$RUN/kube-apiserver.pid"))"
    else
        log "starting kube-apiserver on https://127.0.0.1:$APISERVER_PORT"
        nohup "$BIN/kube-apiserver" \
            --etcd-servers "http://127.0.0.1:$ETCD_CLIENT_PORT" \
            --bind-address 127.0.0.1 \
            --advertise-address 127.0.0.1 \
            --secure-port "$APISERVER_PORT" \
            --tls-cert-file "$pki/apiserver.crt" \
            --tls-private-key-file "$pki/apiserver.key" \
            --client-ca-file "$pki/ca.crt" \
            --authorization-mode Node,RBAC \
            --service-account-issuer https://kubernetes.default.svc.cluster.local \
            --service-account-key-file "$pki/sa.pub" \
            --service-account-signing-key-file "$pki/sa.key" \
            --service-cluster-ip-range "$SERVICE_CIDR" \
            --allow-privileged=true \
            --endpoint-reconciler-type none \
            > "$RUN/logs/kube-apiserver.log" 2>&1 &
        echo $! > "$RUN/kube-apiserver.pid"
    fi
    wait_for "kube-apiserver /readyz" kube-apiserver 120 curl -fsS --cacert "$pki/ca.crt" \
        --cert "$pki/admin.crt" --key "$pki/admin.key" \
        "https://127.0.0.1:$APISERVER_PORT/readyz" \
        || { tail -30 "$RUN/logs/kube-apiserver.log" >&2; exit 1; }
    log "ready: export KUBECONFIG=$RUN/kubeconfig"
}

stop() {
    local name pid
    for name in kube-apiserver etcd; do
        if alive "$name"; then
            pid="$(cat "$RUN/$name.pid")"
            log "stopping $name (pid $pid)"
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
            kill -9 "$pid" 2>/dev/null || true
        fi
        rm -f "$RUN/$name.pid"
    done
    if [[ "${1:-}" == "--clean" ]]; then
        log "removing $RUN"
        rm -rf "$RUN"
    fi
}

status() {
    local name rc=0
    for name in etcd kube-apiserver; do
        if alive "$name"; then echo "$name: running (pid $(cat "$RUN/$name.pid"))"; else echo "$name: stopped"; rc=1; fi
    done
    return $rc
}

case "${1:-}" in
    start) start ;;
    stop) shift; stop "${1:-}" ;;
    status) status ;;
    *) echo "usage: $0 start|stop [--clean]|status" >&2; exit 2 ;;
esac
