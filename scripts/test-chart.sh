#!/usr/bin/env bash
# Chart checks: helm lint and helm template with default and non-default
# values, schema rejection of bad values, the chart's CRDs equal crds/, and
# every RBAC rule carries a comment saying who needs it. Run by
# `make test-chart`; prints "N passed, 0 failed" on success.
set -euo pipefail

cd "$(dirname "$0")/.."
HELM="$(scripts/install-tools.sh)/helm"
CHART=charts/rill
CUSTOM=$CHART/ci/custom-values.yaml
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT

# shellcheck source=scripts/lib/checks.sh
. scripts/lib/checks.sh

# Render against the Kubernetes release the operator is built for.
KUBE_VERSION=1.37.0
render() { "$HELM" template rill "$CHART" --namespace rill-system --kube-version "$KUBE_VERSION" "$@"; }

check "helm lint (default values)" "$HELM" lint --strict "$CHART" --kube-version 1.37.0
check "helm lint (ci/custom-values.yaml)" "$HELM" lint --strict "$CHART" -f "$CUSTOM" --kube-version 1.37.0
render_to() { local out="$1"; shift; render "$@" >"$out"; }
check "helm template (default values)" render_to "$OUT/default.yaml"
check "helm template (ci/custom-values.yaml)" render_to "$OUT/custom.yaml" -f "$CUSTOM"
check "helm template with the StreamCluster enabled" render_to "$OUT/with-cluster.yaml" --set streamCluster.enabled=true
check "helm template refuses Kubernetes older than 1.32" bash -c "! '$HELM' template rill '$CHART' --kube-version 1.31.0"

check "default: operator image is rill/operator:<appVersion>" grep -q 'image: rill/operator:0.1.0' "$OUT/default.yaml"
check "default: broker image is rill/broker:<appVersion>" grep -q 'value: "rill/broker:0.1.0"' "$OUT/default.yaml"
check "default: controller address points at the operator Service" grep -q 'value: "http://rill-operator.rill-system.svc:9095"' "$OUT/default.yaml"
check "default: no StreamCluster" bash -c "! grep -q '^kind: StreamCluster' '$OUT/default.yaml'"
check "default: RBAC and ServiceAccount rendered" bash -c "grep -q '^kind: ClusterRole$' '$OUT/default.yaml' && grep -q '^kind: Role$' '$OUT/default.yaml' && grep -q '^kind: ServiceAccount$' '$OUT/default.yaml'"
check "default: restricted securityContext" bash -c "grep -q 'runAsNonRoot: true' '$OUT/default.yaml' && grep -q 'allowPrivilegeEscalation: false' '$OUT/default.yaml' && grep -q 'type: RuntimeDefault' '$OUT/default.yaml' && grep -q 'drop: \[\"ALL\"\]' '$OUT/default.yaml'"
check "custom: StreamCluster rendered with 5 brokers" bash -c "grep -q '^kind: StreamCluster' '$OUT/custom.yaml' && grep -q 'brokers: 5' '$OUT/custom.yaml'"
check "custom: images overridden" bash -c "grep -q 'image: registry.example.org/rill/operator:0.1.0-dev' '$OUT/custom.yaml' && grep -q 'registry.example.org/rill/broker:0.1.0-dev' '$OUT/custom.yaml'"
check "custom: no RBAC or ServiceAccount when disabled" bash -c "! grep -Eq '^kind: (ClusterRole|Role|ServiceAccount)$' '$OUT/custom.yaml' && grep -q 'serviceAccountName: platform-rill' '$OUT/custom.yaml'"
check "schema rejects replicaCount: 0" bash -c "! '$HELM' template rill '$CHART' --kube-version $KUBE_VERSION --set replicaCount=0"
check "schema rejects an unknown key" bash -c "! '$HELM' template rill '$CHART' --kube-version $KUBE_VERSION --set imageTag=oops"
check "schema rejects streamCluster.brokers: 0" bash -c "! '$HELM' template rill '$CHART' --kube-version $KUBE_VERSION --set streamCluster.enabled=true --set streamCluster.brokers=0"
check "chart crds/ equal top-level crds/" diff -r crds "$CHART/crds"

# Monitoring: off by default; on, two PodMonitors (operator, brokers), the
# alerts of files/alerts.yaml and the dashboard ConfigMap.
MONITORING=(--set monitoring.podMonitor.enabled=true --set monitoring.prometheusRule.enabled=true --set monitoring.dashboard.enabled=true)
check "helm lint --strict with monitoring enabled" "$HELM" lint --strict "$CHART" --kube-version "$KUBE_VERSION" "${MONITORING[@]}"
check "helm template with monitoring enabled" render_to "$OUT/monitoring.yaml" "${MONITORING[@]}"
check "default: no PodMonitor, PrometheusRule or dashboard" bash -c "! grep -Eq '^kind: (PodMonitor|PrometheusRule)$' '$OUT/default.yaml' && ! grep -q 'rill-operator-dashboard' '$OUT/default.yaml'"
check "monitoring: PodMonitors for the operator and the brokers" bash -c "[ \$(grep -c '^kind: PodMonitor$' '$OUT/monitoring.yaml') -eq 2 ] && grep -q 'app.kubernetes.io/name: rill-broker' '$OUT/monitoring.yaml'"
check "monitoring: PrometheusRule holds every alert of files/alerts.yaml" bash -c "[ \$(grep -c '^ *- alert: ' '$CHART/files/alerts.yaml') -eq \$(grep -c '^ *- alert: ' '$OUT/monitoring.yaml') ] && grep -q '^kind: PrometheusRule$' '$OUT/monitoring.yaml'"
dashboard_parses() {
    python3 - "$OUT/monitoring.yaml" <<'PY'
import json, sys
text = open(sys.argv[1]).read()
doc = next(d for d in text.split("\n---\n") if "rill-operator-dashboard" in d)
body = doc.split("rill.json: |-\n", 1)[1]
dashboard = json.loads("\n".join(line[4:] for line in body.splitlines()))
assert dashboard["uid"] == "rill-overview" and dashboard["panels"], dashboard.keys()
assert 'grafana_dashboard: "1"' in doc
PY
}
check "monitoring: dashboard ConfigMap holds valid JSON with the sidecar label" dashboard_parses
check "schema rejects a bad monitoring.podMonitor.interval" bash -c "! '$HELM' template rill '$CHART' --kube-version $KUBE_VERSION --set monitoring.podMonitor.interval=often"

# Every rule in the RBAC templates is preceded by a comment line.
rbac_comments() {
    local file status=0
    for file in "$CHART"/templates/clusterrole.yaml "$CHART"/templates/role.yaml; do
        awk -v f="$file" '
            /^ *- apiGroups:/ { if (prev !~ /^ *#/) { print f ": rule without a comment at line " NR; bad = 1 } }
            { prev = $0 }
            END { exit bad }
        ' "$file" || status=1
    done
    return $status
}
check "every RBAC rule has a comment" rbac_comments

# Security objects: the operator's NetworkPolicy (on by default, off with
# networkPolicy.enabled=false) and the RBAC rules the certificates and the
# brokers' NetworkPolicies need.
check "default: operator NetworkPolicy admits broker pods to the controller port" bash -c "grep -q '^kind: NetworkPolicy$' '$OUT/default.yaml' && grep -q 'app.kubernetes.io/name: rill-broker' '$OUT/default.yaml' && grep -q 'port: 9095' '$OUT/default.yaml'"
check "networkPolicy.enabled=false: no NetworkPolicy" bash -c "! '$HELM' template rill '$CHART' --kube-version $KUBE_VERSION --set networkPolicy.enabled=false | grep -q '^kind: NetworkPolicy$'"
check "schema rejects a non-boolean networkPolicy.enabled" bash -c "! '$HELM' template rill '$CHART' --kube-version $KUBE_VERSION --set networkPolicy.enabled=maybe"
check "default: ClusterRole has the certificates' secrets rule (get/create/patch, by name)" grep -Fq 'verbs: ["get", "create", "patch"]' "$OUT/default.yaml"
check "default: operator pods carry the labels the brokers' NetworkPolicies admit" grep -q 'value: "app.kubernetes.io/name=rill-operator,app.kubernetes.io/instance=rill"' "$OUT/default.yaml"

# The RBAC rules asked of a real API server as the operator's
# ServiceAccount (`kubectl auth can-i --as`): the chart's ServiceAccount,
# roles and bindings are applied under a release name of their own to the
# API server of e2e/scripts/apiserver.sh (`e2e/scripts/apiserver.sh start`;
# RILL_K8S_RUN and KUBECTL as there), asked, and removed. Without a
# reachable API server these checks are reported as skipped, never passed.
K8S_RUN="${RILL_K8S_RUN:-${RILL_CACHE:-$HOME/.cache/rill}/k8s/run}"
KUBECTL="${KUBECTL:-$(ls -1 "${RILL_CACHE:-$HOME/.cache/rill}"/k8s/*/bin/kubectl 2>/dev/null | tail -1)}"
skipped=0
if [ -n "$KUBECTL" ] && [ -f "$K8S_RUN/kubeconfig" ] && "$KUBECTL" --kubeconfig "$K8S_RUN/kubeconfig" version >/dev/null 2>&1; then
    kc() { "$KUBECTL" --kubeconfig "$K8S_RUN/kubeconfig" "$@"; }
    RBAC_RELEASE="rbac-check-$$"
    RBAC_NS="rill-rbac-check-$$"
    APP_NS="rill-rbac-app-$$"
    rbac_cleanup() {
        kc delete clusterrolebinding,clusterrole "$RBAC_RELEASE-operator" --ignore-not-found >/dev/null 2>&1 || true
        kc delete namespace "$RBAC_NS" "$APP_NS" --wait=false --ignore-not-found >/dev/null 2>&1 || true
    }
    trap 'rbac_cleanup; rm -rf "$OUT"' EXIT
    kc create namespace "$RBAC_NS" >/dev/null && kc create namespace "$APP_NS" >/dev/null
    "$HELM" template "$RBAC_RELEASE" "$CHART" --namespace "$RBAC_NS" --kube-version "$KUBE_VERSION" \
        --show-only templates/serviceaccount.yaml --show-only templates/clusterrole.yaml \
        --show-only templates/clusterrolebinding.yaml --show-only templates/role.yaml >"$OUT/rbac.yaml"
    check "RBAC objects apply to the API server" kc apply -f "$OUT/rbac.yaml"
    SA="system:serviceaccount:$RBAC_NS:$RBAC_RELEASE-operator"
    can() { [ "$(kc auth can-i "$@" --as "$SA" 2>/dev/null)" = yes ]; }
    cannot() { ! can "$@"; }
    # Secrets in a StreamCluster's namespace: CAs, bundles, broker
    # certificate, SCRAM credentials (read by name, created, renewed).
    check "API server: operator may get secrets in a cluster's namespace" can get secrets -n "$APP_NS"
    check "API server: operator may create secrets in a cluster's namespace" can create secrets -n "$APP_NS"
    check "API server: operator may patch secrets in a cluster's namespace" can patch secrets -n "$APP_NS"
    check "API server: operator may not delete secrets" cannot delete secrets -n "$APP_NS"
    # User controller: client Secrets in application namespaces, the
    # credentials file (update with compare-and-swap), and a label-filtered
    # watch of the operator's own Secrets.
    check "API server: operator may update secrets" can update secrets -n "$APP_NS"
    check "API server: operator may list and watch secrets (label-filtered)" can watch secrets --all-namespaces
    check "API server: operator may watch users.rill.dev" can watch users.rill.dev --all-namespaces
    check "API server: operator may patch users.rill.dev (its finalizer)" can patch users.rill.dev -n "$APP_NS"
    check "API server: operator may patch users.rill.dev/status" can patch users.rill.dev --subresource status -n "$APP_NS"
    check "API server: operator may update users.rill.dev/finalizers" can update users.rill.dev --subresource finalizers -n "$APP_NS"
    check "API server: operator may not create users.rill.dev" cannot create users.rill.dev -n "$APP_NS"
    check "API server: operator may not delete users.rill.dev" cannot delete users.rill.dev -n "$APP_NS"
    check "API server: no cluster-wide wildcard" cannot '*' '*' --all-namespaces
    # The brokers' NetworkPolicies.
    check "API server: operator may create networkpolicies" can create networkpolicies.networking.k8s.io -n "$APP_NS"
    check "API server: operator may watch networkpolicies" can watch networkpolicies.networking.k8s.io --all-namespaces
    check "API server: operator may delete networkpolicies" can delete networkpolicies.networking.k8s.io -n "$APP_NS"
    check "API server: operator may not create pods" cannot create pods -n "$APP_NS"
else
    skipped=1
    echo "skip RBAC checks against an API server: none reachable at $K8S_RUN/kubeconfig (start one with e2e/scripts/apiserver.sh start)"
fi

echo "chart: $passed passed, $failed failed$([ "$skipped" -eq 1 ] && echo ', API server checks skipped')"
[ "$failed" -eq 0 ]
