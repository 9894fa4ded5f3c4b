#!/usr/bin/env bash
# Checks the chart's monitoring assets (charts/rill/files/):
#   - promtool (built from the Go module proxy) parses alerts.yaml;
#   - every rill_* metric that alerts.yaml and dashboard.json name is
#     exported by a running Rill: a controller and 3 brokers started by
#     compat/rill-launch.sh with a configuration file (auto-created topics,
#     RF 3), after kcat produced and consumed through them, and the operator
#     binary (serving /metrics while it waits for a Kubernetes API).
# Run by `make test-monitoring` (part of `make test`); uses the debug
# binaries of `make test`'s build. Prints "monitoring: N passed, 0 failed".
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rill/target}"
BIN="$CARGO_TARGET_DIR/debug"
FILES=charts/rill/files
WORK="$repo/.rill/monitoring"
BASE_PORT="${RILL_MONITORING_BASE_PORT:-27400}"
OPERATOR_HTTP="127.0.0.1:$((BASE_PORT + 90))"

log() { echo "test-monitoring: $*" >&2; }
# shellcheck source=scripts/lib/checks.sh
. scripts/lib/checks.sh

for b in rill-broker rill-controller rill-operator; do
    [ -x "$BIN/$b" ] || { log "$BIN/$b is not built (cargo build --workspace --bins)"; exit 1; }
done
PROMTOOL="$(scripts/install-tools.sh promtool)/promtool"
scripts/install-compat.sh >/dev/null
command -v kcat >/dev/null || { log "kcat is missing (scripts/install-compat.sh installs it)"; exit 1; }

rm -rf "$WORK" && mkdir -p "$WORK"
operator_pid=""
cleanup() {
    [ -z "$operator_pid" ] || kill "$operator_pid" 2>/dev/null || true
    compat/rill-launch.sh stop --dir "$WORK/cluster" >/dev/null 2>&1 || true
}
trap cleanup EXIT

check "promtool check rules $FILES/alerts.yaml" "$PROMTOOL" check rules "$FILES/alerts.yaml"

# A Rill cluster whose brokers read a configuration file.
cat >"$WORK/broker.properties" <<'PROPS'
auto.create.topics.enable=true
default.replication.factor=3
min.insync.replicas=2
PROPS
RILL_COMPAT_BROKER_ARGS="--config-file $WORK/broker.properties" \
    compat/rill-launch.sh start --dir "$WORK/cluster" --brokers 3 --base-port "$BASE_PORT" >/dev/null
# shellcheck disable=SC1091
. "$WORK/cluster/env"

# Traffic: produce to an auto-created topic (RF 3 from the file), then
# consume it in a group.
seq 1 100 | kcat -b "$KAFKA_BOOTSTRAP" -P -t monitoring -X acks=all -X topic.metadata.refresh.interval.ms=200 2>"$WORK/kcat-produce.log"
timeout 60 kcat -b "$KAFKA_BOOTSTRAP" -C -t monitoring -o beginning -e -q -c 100 >"$WORK/consumed.txt" 2>"$WORK/kcat-consume.log"
check "kcat read back the 100 records produced" bash -c "[ \$(wc -l <'$WORK/consumed.txt') -eq 100 ]"

# The operator serves /metrics while it waits for an API server that is not
# there.
cat >"$WORK/kubeconfig" <<'KUBE'
apiVersion: v1
kind: Config
clusters:
- name: none
  cluster:
    server: http://127.0.0.1:9
contexts:
- name: none
  context:
    cluster: none
current-context: none
users: []
KUBE
KUBECONFIG="$WORK/kubeconfig" "$BIN/rill-operator" --http-addr "$OPERATOR_HTTP" \
    --controller-listen-addr "127.0.0.1:$((BASE_PORT + 91))" --crd-wait-seconds 600 \
    >"$WORK/operator.log" 2>&1 &
operator_pid=$!

scrape() { python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' "http://$1/metrics"; }
field() { grep '^RILL_READY' "$WORK/cluster/$1.ready" | tail -1 | sed -nE "s/.* $2=([^ ]+).*/\1/p"; }
{
    scrape "$(field controller http)"
    for i in 0 1 2; do scrape "$(field "broker-$i" http)"; done
    for _ in $(seq 1 100); do scrape "$OPERATOR_HTTP" 2>/dev/null && break; sleep 0.1; done
} >"$WORK/exposition.txt"
grep -v '^#' "$WORK/exposition.txt" | sed -E 's/[{ ].*//' | sort -u >"$WORK/exported.txt"

grep -ohE 'rill_[a-z0-9_]+' "$FILES/alerts.yaml" "$FILES/dashboard.json" | sort -u >"$WORK/referenced.txt"
check "alerts and dashboard name $(wc -l <"$WORK/referenced.txt") metrics, all exported" \
    bash -c "missing=\$(comm -23 '$WORK/referenced.txt' '$WORK/exported.txt'); [ -z \"\$missing\" ] || { echo \"not exported: \$missing\"; exit 1; }"
check "the brokers honoured the configuration file (topic auto-created with RF 3)" \
    bash -c "[ \$(grep '^rill_log_size_bytes{' '$WORK/exposition.txt' | grep 'topic=\"monitoring\"' | grep -c 'partition=\"0\"') -eq 3 ]"

echo "monitoring: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
