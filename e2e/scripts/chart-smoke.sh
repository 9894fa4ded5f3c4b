#!/usr/bin/env bash
# Installs Rill as a user would on the local cluster of cluster.sh (the node
# agent runs the pods): `helm install charts/rill`, then examples/ applied in
# a namespace, and checks that the operator pod is Ready and holds its
# leader Lease, the 3-broker StreamCluster becomes Ready with its brokers
# registered through the operator's Service, the Topics are placed, and (with
# kcat installed) a record goes through the bootstrap Service name.
#
#   e2e/scripts/cluster.sh up
#   e2e/scripts/chart-smoke.sh          # prints "N passed, M failed"; exit 1 if M > 0
#
# The release and namespace are removed at the end (KEEP=1 keeps them).
# When a host process already listens on one of the brokers' default ports
# on every address (pods share the host's network namespace), the
# StreamCluster gets free ports instead, and the script says so. After a
# failure it prints what a user would look at: pods, events, the operator's
# and the agent's last log lines.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
CACHE="${RILL_CACHE:-$HOME/.cache/rill}"
RUN="${RILL_K8S_RUN:-$CACHE/k8s/run}"
K8S_VERSION="$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" { print $3 }' "$HERE/../k8s/go.mod")"
export KUBECONFIG="${KUBECONFIG:-$RUN/kubeconfig}"
KUBECTL="${KUBECTL:-$CACHE/k8s/$K8S_VERSION/bin/kubectl}"
HELM="${HELM:-$(command -v helm || echo "${RILL_TOOLS:-$CACHE/tools}/bin/helm")}"
RELEASE=rill
OPERATOR_NS=rill-system
NS="${SMOKE_NAMESPACE:-streaming-smoke}"
# Named timeouts (seconds).
OPERATOR_READY=120
CLUSTER_READY=180
TOPICS_READY=60

k() { "$KUBECTL" "$@"; }
pass=0; fail=0; failed=()
ok() { pass=$((pass + 1)); echo "PASS  $1"; }
bad() { fail=$((fail + 1)); failed+=("$1"); echo "FAIL  $1"; [[ -n "${2:-}" ]] && sed 's/^/      | /' <<<"$2"; }
check() { # name cmd...
    local name="$1"; shift
    local out; if out="$("$@" 2>&1)"; then ok "$name"; else bad "$name" "$out"; fi
}
# Polls `cmd` until it succeeds or `timeout` seconds pass.
eventually() { # name timeout cmd...
    local name="$1" timeout="$2"; shift 2
    local deadline=$((SECONDS + timeout)) out
    until out="$("$@" 2>&1)"; do
        if (( SECONDS >= deadline )); then bad "$name (after ${timeout}s)" "$out"; return 1; fi
        sleep 2
    done
    ok "$name"
}

cleanup() {
    [[ "${KEEP:-}" == 1 ]] && return 0
    k delete namespace "$NS" --wait=false >/dev/null 2>&1
    "$HELM" uninstall "$RELEASE" -n "$OPERATOR_NS" >/dev/null 2>&1
}
trap cleanup EXIT

if ! k get nodes -l rill.dev/node-agent -o name 2>/dev/null | grep -q .; then
    echo "no rill-node-agent node: start the cluster with e2e/scripts/cluster.sh up" >&2
    exit 2
fi

# 1. The chart.
check "helm install charts/rill" \
    "$HELM" upgrade --install "$RELEASE" "$ROOT/charts/rill" -n "$OPERATOR_NS" --create-namespace --wait=false
eventually "operator Deployment is Available" "$OPERATOR_READY" \
    k -n "$OPERATOR_NS" wait --for=condition=Available --timeout=5s deployment/rill-operator
eventually "operator holds its leader Lease" "$OPERATOR_READY" \
    bash -c "[[ -n \"\$('$KUBECTL' -n $OPERATOR_NS get lease rill-operator -o jsonpath='{.spec.holderIdentity}')\" ]]"

# 2. The examples, in a fresh namespace (one left by an earlier run is
# waited out first).
NAMESPACE_GONE=180
if k get namespace "$NS" >/dev/null 2>&1; then
    k delete namespace "$NS" --wait=false >/dev/null 2>&1
    eventually "namespace $NS of an earlier run is gone" "$NAMESPACE_GONE" \
        bash -c "! '$KUBECTL' get namespace '$NS' >/dev/null 2>&1"
fi
check "namespace $NS created" k create namespace "$NS"
ports=""
tls_port=9093
plain_port=9092
# Brokers bind their own pod address, so only a wildcard listener on the host
# (0.0.0.0, [::] or *) collides with theirs.
if ss -Hltn 2>/dev/null | awk '{print $4}' | grep -Eq '^(0\.0\.0\.0|\[::\]|\*):(9091|9092|9093|9094|9644)$'; then
    pick() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
    ports="  ports: {client: $(pick), replication: $(pick), http: $(pick)}"
    tls_port=$(pick)
    plain_port=$(pick)
    echo "INFO  a host process holds a default broker port: the StreamCluster uses ${ports#  ports: }"
fi
# The example as it is (TLS+SCRAM listener, ACLs on), plus a plaintext
# listener with authorization off so that Debian's kcat (librdkafka 2.0,
# no SCRAM against Kafka 4 or Rill) can check the data path. Clients
# configured from a User's Secret alone are the e2e User scenario's job.
listeners="  listeners: [{name: tls, port: $tls_port, tls: true, authentication: scram}, {name: plain, port: $plain_port, tls: false, authentication: none}]\n  authorization: {enabled: false}"
check "examples/streamcluster.yaml applies" bash -c \
    "sed 's/^spec:/spec:\n$ports\n$listeners/' '$ROOT/examples/streamcluster.yaml' | '$KUBECTL' -n '$NS' apply -f -"
eventually "StreamCluster events is Ready with 3 ready brokers" "$CLUSTER_READY" bash -c \
    "[[ \"\$('$KUBECTL' -n $NS get streamcluster events -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status} {.status.readyBrokers}')\" == 'True 3' ]]"
check "broker pods run on the agent's node with loopback pod IPs" bash -c \
    "'$KUBECTL' -n $NS get pods -l app.kubernetes.io/instance=events -o jsonpath='{range .items[*]}{.status.podIP}{\"\\n\"}{end}' | grep -c '^127\\.' | grep -qx 3"
check "every broker registered with the operator's controller" bash -c \
    "for i in 0 1 2; do grep -q 'registered with the controller' \"$RUN/agent/logs/${NS}_events-\${i}_broker.log\" || exit 1; done"
check "examples/topics.yaml applies" k -n "$NS" apply -f "$ROOT/examples/topics.yaml"
eventually "Topics orders and customer-profiles are Ready" "$TOPICS_READY" bash -c \
    "for t in orders customer-profiles; do [[ \"\$('$KUBECTL' -n $NS get topic \$t -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}')\" == True ]] || exit 1; done"

# 3. A Kafka client through the bootstrap Service name.
if command -v kcat >/dev/null; then
    bootstrap="events-bootstrap.$NS.svc:$plain_port"
    check "kcat lists 3 brokers through $bootstrap" bash -c \
        "kcat -b '$bootstrap' -L -m 10 | grep -q '3 brokers'"
    value="smoke-$$-$RANDOM"
    check "kcat produces to orders/0" bash -c "echo '$value' | kcat -b '$bootstrap' -t orders -p 0 -P -m 10"
    check "kcat reads the record back" bash -c \
        "kcat -b '$bootstrap' -t orders -p 0 -C -o beginning -e -q -m 10 | grep -qx '$value'"
else
    echo "INFO  kcat not installed: Kafka client checks skipped"
fi

if (( fail > 0 )); then
    echo
    echo "---- diagnostics"
    k get nodes -o wide 2>&1
    k get pods -A -o wide 2>&1
    k -n "$NS" get streamcluster,topic,statefulset,pvc 2>&1
    k get events -A --sort-by=.lastTimestamp 2>&1 | tail -25
    for pod in $(k -n "$NS" get pods -o name 2>/dev/null); do
        echo "-- $pod"; k -n "$NS" describe "$pod" 2>&1 | sed -n '/^Conditions:/,$p' | tail -20
    done
    echo "-- operator log"; k -n "$OPERATOR_NS" logs deployment/rill-operator --tail=30 2>&1 \
        || tail -30 "$RUN"/agent/logs/${OPERATOR_NS}_rill-operator-*_operator.log 2>&1
    echo "-- node agent log"; tail -30 "$RUN/logs/rill-node-agent.log" 2>&1
fi
echo
echo "$pass passed, $fail failed"
for f in "${failed[@]}"; do echo "  failed: $f"; done
(( fail == 0 ))
