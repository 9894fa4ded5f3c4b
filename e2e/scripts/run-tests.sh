#!/usr/bin/env bash
# Runs the Rust e2e tests (crate rill-e2e) against a real Kubernetes API server.
#
#   e2e/scripts/run-tests.sh              # local control plane: builds (cached), starts, stops it
#   KUBECONFIG=~/.kube/config e2e/scripts/run-tests.sh   # any cluster you point it at
#
# With the local control plane it starts etcd + kube-apiserver (unless already
# running, in which case it leaves them running), applies crds/, runs the
# tests with --ignored (they are ignored without a cluster), then stops what
# it started. Extra arguments go to the test binary (e.g. a test name).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
CACHE="${RILL_CACHE:-$HOME/.cache/rill}"
K8S_VERSION="$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" { print $3 }' "$HERE/../k8s/go.mod")"

started=false
if [[ -z "${KUBECONFIG:-}" ]]; then
    if ! "$HERE/apiserver.sh" status >/dev/null 2>&1; then
        "$HERE/apiserver.sh" start
        started=true
    fi
    export KUBECONFIG="$CACHE/k8s/run/kubeconfig"
fi
cleanup() { if $started; then "$HERE/apiserver.sh" stop; fi; }
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
# One test at a time: each runs an operator, which watches every namespace.
cargo test -p rill-e2e --test metadata_controller -- --ignored --test-threads=1 "$@"
