#!/usr/bin/env bash
# Installs the pinned developer tools the Makefile's chart targets need into
# ${RILL_TOOLS:-$HOME/.cache/rill/tools}/bin and prints that directory.
#
# Helm is not packaged by Debian, and only package registries are reachable,
# so it is built from its Go module with `go install` (needs Go >= 1.24 and
# the Go module proxy). Idempotent: when the pinned version is already there
# it returns at once.
set -euo pipefail

HELM_VERSION="v3.22.0"

TOOLS="${RILL_TOOLS:-$HOME/.cache/rill/tools}"
BIN="$TOOLS/bin"
mkdir -p "$BIN"

helm_is_current() {
    [ -x "$BIN/helm" ] && "$BIN/helm" version --template '{{.Version}}' 2>/dev/null | grep -qx "$HELM_VERSION"
}

if ! helm_is_current; then
    if ! command -v go >/dev/null 2>&1; then
        echo "install-tools: Go is needed to build helm $HELM_VERSION (apt-get install golang-go, or a newer Go)" >&2
        exit 1
    fi
    echo "install-tools: building helm $HELM_VERSION with go install (first time only)..." >&2
    # Helm prints its version from these linker flags; without them a
    # `go install` build reports v3-unknown-ish values.
    GOBIN="$BIN" CGO_ENABLED=0 go install \
        -ldflags "-X helm.sh/helm/v3/internal/version.version=${HELM_VERSION} -X helm.sh/helm/v3/internal/version.gitCommit=go-install -X helm.sh/helm/v3/internal/version.gitTreeState=clean" \
        "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}"
    if ! helm_is_current; then
        echo "install-tools: helm in $BIN does not report $HELM_VERSION" >&2
        "$BIN/helm" version >&2 || true
        exit 1
    fi
fi

echo "$BIN"
