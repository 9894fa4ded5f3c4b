#!/usr/bin/env bash
# Installs the pinned developer tools the Makefile's chart targets need into
# ${RILL_TOOLS:-$HOME/.cache/rill/tools}/bin and prints that directory:
# helm (the default), or promtool with `scripts/install-tools.sh promtool`
# (for `make test-monitoring`).
#
# Helm is not packaged by Debian, and only package registries are reachable,
# so it is built from its Go module with `go install` (needs Go >= 1.24 and
# the Go module proxy). Idempotent: when the pinned version is already there
# it returns at once. One install at a time: a second run waits for the first
# (CI starts one in the background at its beginning, .ci/run).
set -euo pipefail

HELM_VERSION="v3.22.0"
# Go module version of Prometheus whose promtool checks the alert rules.
PROMETHEUS_MODULE_VERSION="v0.316.0"
# Kubernetes version helm assumes when no cluster is given (helm's own
# Makefile derives it from its k8s.io/client-go v0.37 dependency).
HELM_K8S_MAJOR="1"
HELM_K8S_MINOR="37"

TOOLS="${RILL_TOOLS:-$HOME/.cache/rill/tools}"
BIN="$TOOLS/bin"
mkdir -p "$BIN"

if [ "${1:-helm}" = promtool ]; then
    PROMTOOL_STAMP="$BIN/.promtool-${PROMETHEUS_MODULE_VERSION}"
    if ! { [ -x "$BIN/promtool" ] && [ -f "$PROMTOOL_STAMP" ]; }; then
        exec 9>"$BIN/.install.lock"
        if ! flock -n 9; then
            echo "install-tools: waiting for another install-tools.sh to finish" >&2
            flock 9
        fi
    fi
    if ! { [ -x "$BIN/promtool" ] && [ -f "$PROMTOOL_STAMP" ]; }; then
        command -v go >/dev/null 2>&1 || { echo "install-tools: Go is needed to build promtool" >&2; exit 1; }
        echo "install-tools: building promtool (github.com/prometheus/prometheus $PROMETHEUS_MODULE_VERSION) with go install (first time only)..." >&2
        GOBIN="$BIN" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" \
            "github.com/prometheus/prometheus/cmd/promtool@${PROMETHEUS_MODULE_VERSION}"
        "$BIN/promtool" --help >/dev/null
        rm -f "$BIN"/.promtool-*
        touch "$PROMTOOL_STAMP"
    fi
    echo "$BIN"
    exit 0
fi

STAMP="$BIN/.helm-${HELM_VERSION}-k8s${HELM_K8S_MAJOR}.${HELM_K8S_MINOR}"

helm_is_current() {
    [ -x "$BIN/helm" ] && [ -f "$STAMP" ] \
        && "$BIN/helm" version --template '{{.Version}}' 2>/dev/null | grep -qx "$HELM_VERSION"
}

if ! helm_is_current; then
    exec 9>"$BIN/.install.lock"
    if ! flock -n 9; then
        echo "install-tools: waiting for another install-tools.sh to finish" >&2
        flock 9
    fi
fi
if ! helm_is_current; then
    if ! command -v go >/dev/null 2>&1; then
        echo "install-tools: Go is needed to build helm $HELM_VERSION (apt-get install golang-go, or a newer Go)" >&2
        exit 1
    fi
    echo "install-tools: building helm $HELM_VERSION with go install (first time only)..." >&2
    # The flags helm's Makefile builds with (-trimpath, -s -w, the -X ones):
    # without the -X ones a `go install` build reports no version and assumes
    # Kubernetes 1.20. -trimpath also gives the packages helm shares with
    # e2e/scripts/build-k8s.sh (the standard library, gRPC, protobuf, ...) the
    # same build-cache keys, so they are compiled once.
    ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}"
    ldflags+=" -X helm.sh/helm/v3/internal/version.gitCommit=go-install"
    ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
    for pkg in pkg/lint/rules pkg/chartutil; do
        ldflags+=" -X helm.sh/helm/v3/${pkg}.k8sVersionMajor=${HELM_K8S_MAJOR}"
        ldflags+=" -X helm.sh/helm/v3/${pkg}.k8sVersionMinor=${HELM_K8S_MINOR}"
    done
    GOBIN="$BIN" CGO_ENABLED=0 go install -trimpath -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}"
    if ! "$BIN/helm" version --template '{{.Version}}' 2>/dev/null | grep -qx "$HELM_VERSION"; then
        echo "install-tools: helm in $BIN does not report $HELM_VERSION" >&2
        "$BIN/helm" version >&2 || true
        exit 1
    fi
    rm -f "$BIN"/.helm-*
    touch "$STAMP"
fi

echo "$BIN"
