#!/usr/bin/env bash
# Builds and caches a local Kubernetes control plane from the Go module proxy:
#   etcd, kube-apiserver, kubectl, kube-controller-manager, kube-scheduler
# into ${RILL_CACHE:-$HOME/.cache/rill}/k8s/<version>/bin.
#
# Versions are pinned by e2e/k8s/go.mod (+ go.sum): k8s.io/kubernetes with one
# replace line per staging module (k8s.io/kubernetes requires them at v0.0.0),
# and e2e/k8s/etcd/go.mod for etcd (the version Kubernetes itself requires).
#
# Idempotent: binaries that already exist are not rebuilt, so a second run
# returns at once. Environment:
#   RILL_CACHE               cache root (default ~/.cache/rill)
#   K8S_COMPONENTS           space-separated subset to build (default: all five)
#   GOMAXPROCS / BUILD_PROCS build parallelism (default: number of CPUs)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
MODDIR="$HERE/../k8s"
CACHE="${RILL_CACHE:-$HOME/.cache/rill}"
K8S_VERSION="$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" { print $3 }' "$MODDIR/go.mod")"
ETCD_VERSION="$(awk '$1 == "require" && $2 == "go.etcd.io/etcd/server/v3" { print $3 }' "$MODDIR/etcd/go.mod")"
BIN="$CACHE/k8s/$K8S_VERSION/bin"
COMPONENTS="${K8S_COMPONENTS:-etcd kube-apiserver kubectl kube-controller-manager kube-scheduler}"
PROCS="${BUILD_PROCS:-$(nproc)}"

log() { echo "[build-k8s] $(date +%H:%M:%S) $*" >&2; }

missing=()
for c in $COMPONENTS; do [[ -x "$BIN/$c" ]] || missing+=("$c"); done
if (( ${#missing[@]} == 0 )); then
    log "cached: $BIN ($COMPONENTS; kubernetes $K8S_VERSION, etcd $ETCD_VERSION)"
    exit 0
fi

command -v go >/dev/null || { log "go is required"; exit 1; }
mkdir -p "$BIN"
export GOFLAGS="${GOFLAGS:-} -mod=readonly"   # go.sum is committed: builds are reproducible
export CGO_ENABLED=0
export GOTOOLCHAIN=local

minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
k8s_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    k8s_ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    k8s_ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

build() { # name moddir package ldflags
    local name="$1" dir="$2" pkg="$3" ldflags="$4" t0=$SECONDS
    log "building $name from $pkg (this takes minutes the first time)"
    (cd "$dir" && go build -p "$PROCS" -trimpath -ldflags "$ldflags" -o "$BIN/.$name.tmp" "$pkg")
    mv -f "$BIN/.$name.tmp" "$BIN/$name"
    log "built $name in $((SECONDS - t0))s -> $BIN/$name"
}

t_all=$SECONDS
for c in "${missing[@]}"; do
    case "$c" in
        etcd) build etcd "$MODDIR/etcd" go.etcd.io/etcd/server/v3 "-s -w" ;;
        kube-apiserver|kube-controller-manager|kube-scheduler|kubectl)
            build "$c" "$MODDIR" "k8s.io/kubernetes/cmd/$c" "$k8s_ldflags" ;;
        *) log "unknown component $c"; exit 2 ;;
    esac
done
log "done in $((SECONDS - t_all))s: $BIN (kubernetes $K8S_VERSION, etcd $ETCD_VERSION)"
