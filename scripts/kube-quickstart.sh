#!/usr/bin/env bash
# Rill on Kubernetes, on this machine, in one command: builds (once, cached)
# and starts a local control plane (etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler) and Rill's node agent, which runs
# the pods as local processes; installs charts/rill with helm as a user
# would; applies examples/ (a 3-broker StreamCluster and two Topics) in the
# namespace `streaming`; waits for them to be Ready; produces and consumes a
# record with kcat through the bootstrap Service; and prints the commands to
# look around.
#
#   scripts/kube-quickstart.sh          # bring it all up (the first run builds Kubernetes: ~15 min)
#   scripts/kube-quickstart.sh down     # uninstall, stop everything, delete all state
#
# Needs Go (Kubernetes and helm are built from the Go module proxy), cargo,
# and kcat (`apt-get install kcat`; installed here when apt-get is usable).
# Nothing listens outside 127.0.0.0/8. e2e/README.md says what the node agent
# stands in for.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
CACHE="${RILL_CACHE:-$HOME/.cache/rill}"
RUN="${RILL_K8S_RUN:-$CACHE/k8s/run}"
K8S_VERSION="$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" { print $3 }' e2e/k8s/go.mod)"
KUBECTL="$CACHE/k8s/$K8S_VERSION/bin/kubectl"
export RILL_TOOLS="${RILL_TOOLS:-$CACHE/tools}"
HELM="$RILL_TOOLS/bin/helm"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
NS=streaming

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

case "${1:-up}" in
up) ;;
down)
    if [[ -f "$RUN/kubeconfig" ]] && e2e/scripts/apiserver.sh status >/dev/null 2>&1; then
        say "Uninstalling (namespace $NS, helm release rill)"
        export KUBECONFIG="$RUN/kubeconfig"
        "$KUBECTL" delete namespace "$NS" --ignore-not-found --wait=true --timeout=120s || true
        "$HELM" uninstall rill -n rill-system --wait --timeout 120s 2>/dev/null || true
    fi
    say "Stopping the node agent and the control plane, deleting their state"
    e2e/scripts/cluster.sh down --clean
    echo "Done. The built Kubernetes binaries stay cached in $CACHE/k8s."
    exit 0
    ;;
-h | --help)
    sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
*)
    echo "usage: $0 [up|down]" >&2
    exit 2
    ;;
esac

say "Kubernetes $K8S_VERSION binaries (built from the Go module proxy on first use, then cached)"
e2e/scripts/build-k8s.sh
say "helm (built from its Go module on first use, then cached)"
scripts/install-tools.sh >/dev/null
if ! command -v kcat >/dev/null; then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        say "kcat (Debian package)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kcat >/dev/null
    else
        echo "kcat is not installed: sudo apt-get install kcat" >&2
        exit 1
    fi
fi

say "Starting the local cluster (control plane + node agent; binaries built into $CARGO_TARGET_DIR/debug)"
e2e/scripts/cluster.sh up
export KUBECONFIG="$RUN/kubeconfig"
"$KUBECTL" get nodes -o wide

say "helm install rill charts/rill, then examples/ in namespace $NS"
# chart-smoke.sh is the same walk-through `make test` checks: helm install,
# the examples applied, every condition waited for, a record through kcat.
# KEEP=1 leaves it all running.
KEEP=1 SMOKE_NAMESPACE="$NS" HELM="$HELM" KUBECTL="$KUBECTL" e2e/scripts/chart-smoke.sh

say "Rill is running. Look around:"
cat <<EOF
  export KUBECONFIG=$KUBECONFIG
  alias kubectl=$KUBECTL

  kubectl -n $NS get streamclusters,topics        # brokers ready, partitions, bootstrap
  kubectl -n $NS get topic orders -o jsonpath='{.status.partitions}'; echo   # leader, replicas, ISR per partition
  kubectl -n $NS get pods -o wide                 # broker pods, their loopback pod IPs
  kubectl -n $NS describe streamcluster events     # conditions and events
  kubectl -n rill-system get pods,lease           # the operator and its leader Lease

  kcat -b events-bootstrap.$NS.svc:9092 -L                        # brokers, leaders, ISR
  seq 1 100 | kcat -b events-bootstrap.$NS.svc:9092 -t orders -P
  kcat -b events-bootstrap.$NS.svc:9092 -t orders -C -e

  kubectl -n $NS delete pod events-0              # the leader moves; the pod comes back with its data
  kubectl -n $NS patch streamcluster events --type merge -p '{"spec":{"brokers":5}}'

  Logs: $RUN/agent/logs/ (pods), $RUN/logs/ (control plane)
  Tear it all down: scripts/kube-quickstart.sh down
EOF
