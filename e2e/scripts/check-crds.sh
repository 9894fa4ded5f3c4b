#!/usr/bin/env bash
# Checks the operator's generated CRDs (crds/) against a real kube-apiserver:
# the CRDs are accepted (structural schema, CEL rules compile within the cost
# budget) and become Established, the examples/ are accepted, and invalid
# objects and changes to immutable fields are rejected by the API server.
#
#   e2e/scripts/apiserver.sh start
#   e2e/scripts/check-crds.sh            # prints "N passed, M failed"; exit 1 if M > 0
#
# KUBECONFIG defaults to the one apiserver.sh writes; any cluster works.
# kubectl: the one build-k8s.sh built, else the one on PATH (override: KUBECTL=...).
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
CACHE="${RILL_CACHE:-$HOME/.cache/rill}"
K8S_VERSION="$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" { print $3 }' "$HERE/../k8s/go.mod")"
export KUBECONFIG="${KUBECONFIG:-$CACHE/k8s/run/kubeconfig}"
if [[ -z "${KUBECTL:-}" ]]; then
    if [[ -x "$CACHE/k8s/$K8S_VERSION/bin/kubectl" ]]; then KUBECTL="$CACHE/k8s/$K8S_VERSION/bin/kubectl"; else KUBECTL="$(command -v kubectl)"; fi
fi
NS="${CHECK_NAMESPACE:-rill-crd-check-$$}"
FIELD_MANAGER=rill-crd-check

pass=0; fail=0; failed=()
k() { "$KUBECTL" "$@"; }
ok() { pass=$((pass + 1)); echo "PASS  $1"; }
bad() { fail=$((fail + 1)); failed+=("$1"); echo "FAIL  $1"; [[ -n "${2:-}" ]] && sed 's/^/      | /' <<<"$2"; }

# expect_ok NAME CMD...      : the command must succeed
expect_ok() {
    local name="$1"; shift
    local out; if out="$("$@" 2>&1)"; then ok "$name"; else bad "$name" "$out"; fi
}
# expect_reject NAME PATTERN CMD... : the command must fail with output matching PATTERN (ERE)
expect_reject() {
    local name="$1" pattern="$2"; shift 2
    local out
    if out="$("$@" 2>&1)"; then
        bad "$name (was ACCEPTED)" "$out"
    elif grep -Eq -- "$pattern" <<<"$out"; then
        ok "$name"; sed 's/^/      > /' <<<"$out"
    else
        bad "$name (rejected, but not with /$pattern/)" "$out"
    fi
}
apply_stdin() { k apply --server-side --field-manager="$FIELD_MANAGER" -n "$NS" -f - ; }

echo "kubectl:    $KUBECTL ($(k version --client -o json 2>/dev/null | sed -n 's/.*"gitVersion": "\(.*\)".*/\1/p' | head -1))"
echo "kubeconfig: $KUBECONFIG"
server_version="$(k version -o json 2>/dev/null | sed -n '/serverVersion/,/}/s/.*"gitVersion": "\(.*\)".*/\1/p')"
if [[ -z "$server_version" ]]; then echo "cannot reach the API server (start it: e2e/scripts/apiserver.sh start)" >&2; exit 2; fi
echo "server:     $server_version"
echo "namespace:  $NS"
echo

# 1. CRDs are accepted and Established.
expect_ok "CRDs apply (server-side) to the API server" \
    k apply --server-side --force-conflicts --field-manager="$FIELD_MANAGER" -f "$ROOT/crds/"
for f in "$ROOT"/crds/*.yaml; do
    crd="$(basename "$f" .yaml)"
    expect_ok "CRD $crd is Established" \
        k wait --for=condition=Established --timeout=60s "crd/$crd"
    expect_ok "CRD $crd has NamesAccepted" \
        k wait --for=condition=NamesAccepted --timeout=60s "crd/$crd"
done
# Discovery can lag Established by a moment; wait until the kinds are served.
for _ in $(seq 1 60); do
    k get streamclusters.rill.dev,topics.rill.dev,users.rill.dev -A >/dev/null 2>&1 && break; sleep 0.5
done

k create namespace "$NS" >/dev/null
trap 'k delete namespace "$NS" --wait=false >/dev/null 2>&1' EXIT

# 2. The examples are accepted.
expect_ok "examples/streamcluster.yaml is accepted" \
    k apply --server-side --field-manager="$FIELD_MANAGER" -n "$NS" -f "$ROOT/examples/streamcluster.yaml"
expect_ok "examples/topics.yaml is accepted" \
    k apply --server-side --field-manager="$FIELD_MANAGER" -n "$NS" -f "$ROOT/examples/topics.yaml"
expect_ok "examples/users.yaml is accepted" \
    k apply --server-side --field-manager="$FIELD_MANAGER" -n "$NS" -f "$ROOT/examples/users.yaml"
expect_ok "examples/users-tls.yaml is accepted" \
    k apply --server-side --field-manager="$FIELD_MANAGER" -n "$NS" -f "$ROOT/examples/users-tls.yaml"
expect_ok "re-applying the examples is accepted (idempotent)" \
    k apply --server-side --field-manager="$FIELD_MANAGER" -n "$NS" -f "$ROOT/examples/streamcluster.yaml" -f "$ROOT/examples/topics.yaml" -f "$ROOT/examples/users.yaml"
expect_ok "kubectl get streamclusters,topics (printer columns)" \
    k get streamclusters.rill.dev,topics.rill.dev -n "$NS" -o wide
k get streamclusters.rill.dev,topics.rill.dev -n "$NS" -o wide 2>&1 | sed 's/^/      | /'

# 3. Invalid objects are rejected.
expect_reject "User with a password on a tls authentication is rejected (CEL)" 'password only applies' apply_stdin <<'EOF'
apiVersion: rill.dev/v1alpha1
kind: User
metadata: {name: tls-password}
spec: {cluster: {name: events}, authentication: {type: tls, password: {valueFrom: {secretKeyRef: {name: s, key: k}}}}}
EOF
expect_reject "User with an unknown ACL operation is rejected" 'operations' apply_stdin <<'EOF'
apiVersion: rill.dev/v1alpha1
kind: User
metadata: {name: bad-op}
spec: {cluster: {name: events}, authentication: {type: scram-sha-512}, authorization: {acls: [{resource: {type: topic, name: t}, operations: [Fly]}]}}
EOF
expect_reject "StreamCluster with brokers: 0 is rejected" 'brokers' apply_stdin <<'EOF'
apiVersion: rill.dev/v1alpha1
kind: StreamCluster
metadata: {name: zero-brokers}
spec: {brokers: 0, storage: {size: 1Gi}}
EOF
expect_reject "Topic with partitions: 0 is rejected" 'partitions' apply_stdin <<'EOF'
apiVersion: rill.dev/v1alpha1
kind: Topic
metadata: {name: zero-partitions}
spec: {clusterRef: {name: events}, partitions: 0, replicationFactor: 1}
EOF
expect_reject "Topic with replicationFactor: 0 is rejected" 'replicationFactor' apply_stdin <<'EOF'
apiVersion: rill.dev/v1alpha1
kind: Topic
metadata: {name: zero-rf}
spec: {clusterRef: {name: events}, partitions: 1, replicationFactor: 0}
EOF
expect_reject "Topic with minInsyncReplicas > replicationFactor is rejected (CEL)" 'minInsyncReplicas must not exceed' apply_stdin <<'EOF'
apiVersion: rill.dev/v1alpha1
kind: Topic
metadata: {name: bad-isr}
spec: {clusterRef: {name: events}, partitions: 1, replicationFactor: 1, config: {minInsyncReplicas: 2}}
EOF
expect_reject "Topic with config.other repeating a typed field is rejected (CEL)" 'may not repeat a typed field' apply_stdin <<'EOF'
apiVersion: rill.dev/v1alpha1
kind: Topic
metadata: {name: dup-config}
spec: {clusterRef: {name: events}, partitions: 1, replicationFactor: 1, config: {other: {retention.ms: "1"}}}
EOF
expect_reject "Topic with topicName '..' is rejected (CEL)" "topicName may not be" apply_stdin <<'EOF'
apiVersion: rill.dev/v1alpha1
kind: Topic
metadata: {name: dotdot}
spec: {clusterRef: {name: events}, topicName: "..", partitions: 1, replicationFactor: 1}
EOF
expect_reject "StreamCluster whose name starts with a digit is rejected (CEL)" 'must start with a letter' apply_stdin <<'EOF'
apiVersion: rill.dev/v1alpha1
kind: StreamCluster
metadata: {name: 1events}
spec: {brokers: 1, storage: {size: 1Gi}}
EOF

# 4. Immutable fields (transition rules).
expect_reject "changing an existing topicName is rejected" 'topicName is immutable' \
    k patch topics.rill.dev customer-profiles -n "$NS" --type=merge -p '{"spec":{"topicName":"Other_Name"}}'
expect_reject "setting topicName on a Topic created without one is rejected" 'topicName is immutable' \
    k patch topics.rill.dev orders -n "$NS" --type=merge -p '{"spec":{"topicName":"orders-renamed"}}'
expect_reject "removing topicName is rejected" 'topicName is immutable' \
    k patch topics.rill.dev customer-profiles -n "$NS" --type=json -p '[{"op":"remove","path":"/spec/topicName"}]'
expect_reject "changing clusterRef is rejected" 'clusterRef is immutable' \
    k patch topics.rill.dev orders -n "$NS" --type=merge -p '{"spec":{"clusterRef":{"name":"other"}}}'
expect_reject "shrinking StreamCluster storage is rejected" 'cannot shrink' \
    k patch streamclusters.rill.dev events -n "$NS" --type=merge -p '{"spec":{"storage":{"size":"1Mi"}}}'
expect_reject "changing the StreamCluster storage class is rejected" 'storageClassName cannot change' \
    k patch streamclusters.rill.dev events -n "$NS" --type=merge -p '{"spec":{"storage":{"storageClassName":"other"}}}'
expect_ok "growing StreamCluster storage is accepted" \
    k patch streamclusters.rill.dev events -n "$NS" --type=merge -p '{"spec":{"storage":{"size":"400Gi"}}}'
expect_ok "a mutable change (Topic partitions 12 -> 24) is accepted" \
    k patch topics.rill.dev orders -n "$NS" --type=merge -p '{"spec":{"partitions":24}}'
expect_ok "a mutable change (StreamCluster brokers 3 -> 5) is accepted" \
    k patch streamclusters.rill.dev events -n "$NS" --type=merge -p '{"spec":{"brokers":5}}'

# Informational: a partition shrink is not expressible as a schema rule unless the
# CRD has a transition rule; the operator may instead report Ready=False.
if out="$(k patch topics.rill.dev orders -n "$NS" --type=merge -p '{"spec":{"partitions":3}}' 2>&1)"; then
    echo "INFO  a partition shrink (24 -> 3) is ACCEPTED by the API server (left to the operator: Ready=False)"
else
    echo "INFO  a partition shrink (24 -> 3) is rejected by the API server:"; sed 's/^/      > /' <<<"$out"
fi

echo
echo "$pass passed, $fail failed"
for f in "${failed[@]}"; do echo "  failed: $f"; done
(( fail == 0 ))
