#!/usr/bin/env bash
# A broker failover against the metadata controller with the Kubernetes
# store (e2e/src/bin/rill-kube-failover.rs): API-server writes, time until
# every partition the failed broker led has a new leader (controller,
# brokers, Topic status), and the same for the broker rejoining every ISR.
#
#   bench/kube-failover.sh                         # 1,000 and 10,000 led partitions, Kubernetes store
#   bench/kube-failover.sh --led 1000              # one point
#   bench/kube-failover.sh --store file --led 1000,10000   # the file store, for comparison
#   bench/kube-failover.sh --help                  # the program's options
#
# Builds rill-broker and rill-kube-failover (release; RILL_BIN_DIR=DIR uses
# the binaries in DIR). The Kubernetes store needs an API server: with
# KUBECONFIG unset it starts the local control plane (e2e/scripts/apiserver.sh,
# built from the Go module proxy once, ~13 min) and stops it afterwards if
# it started it. Prints a Markdown table on stdout; progress on stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
    -h|--help)
        awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
        ;;
esac
if [ -n "${RILL_BIN_DIR:-}" ]; then
    bin="$RILL_BIN_DIR"
else
    cargo build --release -p rill-broker --bin rill-broker -p rill-e2e --bin rill-kube-failover >&2
    bin="${CARGO_TARGET_DIR:-$(pwd)/target}/release"
fi
case "${1:-}" in -h|--help) exec "$bin/rill-kube-failover" --help ;; esac

# Thousands of partitions mean thousands of open segment files per broker.
ulimit -n 200000 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

store=kube
prev=""
for a in "$@"; do
    case "$a" in --store=*) store="${a#--store=}" ;; esac
    if [ "$prev" = "--store" ]; then store="$a"; fi
    prev="$a"
done
started=false
if [ "$store" = kube ] && [ -z "${KUBECONFIG:-}" ]; then
    if ! e2e/scripts/apiserver.sh status >/dev/null 2>&1; then
        e2e/scripts/apiserver.sh start
        started=true
    fi
    export KUBECONFIG="${RILL_K8S_RUN:-${RILL_CACHE:-$HOME/.cache/rill}/k8s/run}/kubeconfig"
fi
cleanup() { if $started; then e2e/scripts/apiserver.sh stop; fi; }
trap cleanup EXIT

args=("$@")
if [[ " $* " != *" --led"* ]]; then args+=(--led 1000,10000); fi
"$bin/rill-kube-failover" --broker-bin "$bin/rill-broker" "${args[@]}"
