#!/usr/bin/env bash
# Runs the Rust e2e tests (crate rill-e2e) against a real Kubernetes API server.
#
#   e2e/scripts/run-tests.sh              # local control plane: builds (cached), starts, stops it
#   KUBECONFIG=~/.kube/config e2e/scripts/run-tests.sh   # any cluster you point it at
#
# Four stages. 1: tests/metadata_controller.rs against etcd + kube-apiserver
# (operators in the test process, brokers as rill-broker processes). 2: tests/agent.rs against the
# whole local cluster of cluster.sh (kube-controller-manager, kube-scheduler
# and rill-node-agent running pods as processes). 3 (local cluster, with
# helm): chart-smoke.sh, the chart and examples/ on that cluster. 4:
# tests/scenarios.rs, the platform-team scenarios on the chart (helm, kubectl,
# kcat and librdkafka). With the local control
# plane it starts what is not running and afterwards stops only what it
# started. With KUBECONFIG set, stage 2 runs only when a node of
# rill-node-agent is registered there. Extra arguments go to both test
# binaries (e.g. a test name filter).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
CACHE="${RILL_CACHE:-$HOME/.cache/rill}"
K8S_VERSION="$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" { print $3 }' "$HERE/../k8s/go.mod")"

local_cluster=false
started=false         # etcd + kube-apiserver started here
started_nodes=false   # controller-manager, scheduler, node agent started here
if [[ -z "${KUBECONFIG:-}" ]]; then
    local_cluster=true
    if ! "$HERE/apiserver.sh" status >/dev/null 2>&1; then
        "$HERE/apiserver.sh" start
        started=true
    fi
    export KUBECONFIG="${RILL_K8S_RUN:-$CACHE/k8s/run}/kubeconfig"
fi
cleanup() {
    if $started; then "$HERE/cluster.sh" down
    elif $started_nodes; then "$HERE/cluster.sh" down --keep-apiserver
    fi
}
trap cleanup EXIT

KUBECTL="${KUBECTL:-}"
if [[ -z "$KUBECTL" ]]; then
    if [[ -x "$CACHE/k8s/$K8S_VERSION/bin/kubectl" ]]; then KUBECTL="$CACHE/k8s/$K8S_VERSION/bin/kubectl"; else KUBECTL="$(command -v kubectl)"; fi
fi
"$KUBECTL" apply --server-side --force-conflicts --field-manager=rill-e2e -f "$ROOT/crds/" >/dev/null
for crd in streamclusters.rill.dev topics.rill.dev; do
    "$KUBECTL" wait --for=condition=Established --timeout=60s "crd/$crd" >/dev/null
done

cd "$ROOT"
# Stage 1. One test at a time: each runs an operator, which watches every namespace.
# `--workspace` keeps the feature set of `make test`'s build, so nothing is
# rebuilt for these tests.
# Both stages run even when the first fails; the exit status covers both.
failed=()
# Stage 1 starts rill-broker as processes: build the binaries first, with
# `make test`'s own invocation (nothing to do after its build). A plain
# `cargo build --bins` would leave the dev-dependencies' features out and
# compile dozens of dependencies a second time.
cargo test --workspace --all-targets --no-run
cargo test --workspace --test metadata_controller -- --ignored --test-threads=1 "$@" \
    || failed+=(metadata_controller)
# Stage 1 runs operators inside the test process: the StatefulSets they made
# would get pods once a node exists. A terminating namespace takes no new
# objects, and kube-controller-manager empties it in stage 2.
delete_test_namespaces() {
    "$KUBECTL" delete namespace -l rill.dev/e2e-test=true --wait=false >/dev/null 2>&1 || true
}
delete_test_namespaces

# Stage 2: pods run by the node agent.
if $local_cluster; then
    if ! "$HERE/cluster.sh" status >/dev/null 2>&1; then
        started_nodes=true
        "$HERE/cluster.sh" up
    fi
fi
if $local_cluster || [[ -n "$("$KUBECTL" get nodes -l rill.dev/node-agent -o name 2>/dev/null)" ]]; then
    cargo test --workspace --test agent -- --ignored --test-threads=1 "$@" || failed+=(agent)
    delete_test_namespaces
else
    echo "no rill-node-agent node in this cluster: skipping tests/agent.rs" >&2
fi
# Stage 3: the chart and examples/ installed as a user would, on the local
# cluster (needs helm: make test-chart installs it).
HELM="${HELM:-$(command -v helm || echo "${RILL_TOOLS:-$CACHE/tools}/bin/helm")}"
if $local_cluster; then
    if [[ -x "$HELM" ]]; then
        HELM="$HELM" "$HERE/chart-smoke.sh" || failed+=(chart-smoke)
    else
        echo "helm not found: skipping chart-smoke.sh (make test-chart installs it)" >&2
    fi
fi
# Stage 4: the scenarios (tests/scenarios.rs): the chart installed with helm
# and used with kubectl and Kafka clients (kcat, confluent-kafka from
# scripts/install-compat.sh), on any cluster whose pods run.
if $local_cluster || [[ -n "$("$KUBECTL" get nodes -o name 2>/dev/null)" ]]; then
    if [[ -x "$HELM" ]]; then
        KUBECTL="$KUBECTL" HELM="$HELM" RILL_K8S_RUN="${RILL_K8S_RUN:-$CACHE/k8s/run}" \
            cargo test --workspace --test scenarios -- --ignored --test-threads=1 "$@" \
            || failed+=(scenarios)
        "$HELM" uninstall rill -n rill-system --wait >/dev/null 2>&1 || true
        delete_test_namespaces
    else
        echo "helm not found: skipping tests/scenarios.rs" >&2
    fi
fi
if (( ${#failed[@]} > 0 )); then
    echo "e2e tests failed: ${failed[*]}" >&2
    exit 1
fi
