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
# returns at once. One build at a time: a second run waits for the first (CI
# starts one in the background at its beginning, .ci/run) and then finds the
# binaries there. The Kubernetes binaries come from one `go build`, which
# compiles their shared packages once and links one while compiling another.
#
#   e2e/scripts/build-k8s.sh                  # build what is missing
#   e2e/scripts/build-k8s.sh --download-only  # only fetch the Go modules (network)
#
# Environment:
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

export GOFLAGS="${GOFLAGS:-} -mod=readonly"   # go.sum is committed: builds are reproducible
export CGO_ENABLED=0
export GOTOOLCHAIN=local

if [[ "${1:-}" == "--download-only" ]]; then
    command -v go >/dev/null || { log "go is required"; exit 1; }
    t0=$SECONDS
    (cd "$MODDIR" && go mod download) && (cd "$MODDIR/etcd" && go mod download)
    log "Go modules downloaded in $((SECONDS - t0))s"
    exit 0
fi

missing_components() {
    missing=()
    local c
    for c in $COMPONENTS; do [[ -x "$BIN/$c" ]] || missing+=("$c"); done
    (( ${#missing[@]} > 0 ))
}
if ! missing_components; then
    log "cached: $BIN ($COMPONENTS; kubernetes $K8S_VERSION, etcd $ETCD_VERSION)"
    exit 0
fi

command -v go >/dev/null || { log "go is required"; exit 1; }
mkdir -p "$BIN"
exec 9>"$BIN/.build.lock"
if ! flock -n 9; then
    log "waiting for another build-k8s.sh to finish (it holds $BIN/.build.lock)"
    flock 9
    if ! missing_components; then
        log "built by the other run: $BIN ($COMPONENTS)"
        exit 0
    fi
fi
trap 'rm -rf "$BIN"/.build.??????' EXIT   # what a failed build left (the lock is ours)

minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
k8s_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    k8s_ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    k8s_ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

# build moddir ldflags name=package...: one `go build` for all the named
# main packages; each binary goes to $BIN/name.
build() {
    local dir="$1" ldflags="$2" t0=$SECONDS out names=() pkgs=() spec
    shift 2
    for spec in "$@"; do names+=("${spec%%=*}"); pkgs+=("${spec#*=}"); done
    log "building ${names[*]} (this takes minutes the first time)"
    out="$(mktemp -d "$BIN/.build.XXXXXX")"
    (cd "$dir" && go build -p "$PROCS" -trimpath -ldflags "$ldflags" -o "$out/" "${pkgs[@]}")
    for spec in "$@"; do
        # go build names each binary after the last element of its package
        # path that is not a major version (go.etcd.io/etcd/server/v3: server).
        local exe="${spec#*=}"
        [[ "$(basename "$exe")" =~ ^v[0-9]+$ ]] && exe="$(dirname "$exe")"
        mv -f "$out/$(basename "$exe")" "$BIN/${spec%%=*}"
    done
    rm -rf "$out"
    log "built ${names[*]} in $((SECONDS - t0))s -> $BIN"
}

t_all=$SECONDS
k8s=()
etcd=()
for c in "${missing[@]}"; do
    case "$c" in
        etcd) etcd=("etcd=go.etcd.io/etcd/server/v3") ;;
        kube-apiserver|kube-controller-manager|kube-scheduler|kubectl) k8s+=("$c=k8s.io/kubernetes/cmd/$c") ;;
        *) log "unknown component $c"; exit 2 ;;
    esac
done
(( ${#k8s[@]} == 0 )) || build "$MODDIR" "$k8s_ldflags" "${k8s[@]}"
(( ${#etcd[@]} == 0 )) || build "$MODDIR/etcd" "-s -w" "${etcd[@]}"
log "done in $((SECONDS - t_all))s: $BIN (kubernetes $K8S_VERSION, etcd $ETCD_VERSION)"
