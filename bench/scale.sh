#!/usr/bin/env bash
# The partition-scale curve (bench/scale.py): Rill and Apache Kafka with 6 to
# 30,000 partition replicas over 3 brokers, in one run.
#
#   bench/scale.sh                                 # every point, ~30-60 min; publishes bench/results/scale-latest.*
#   bench/scale.sh --points 6,600 --seconds 10     # a partial run (not published)
#   bench/scale.sh --help                          # scale.py's options
#
# Installs what bench/run.sh installs (Kafka's jars, the Python venv,
# BenchTool, rill-load), builds the release binaries (RILL_BIN_DIR=DIR uses
# binaries from DIR), writes .rill/bench/scale/run-*/scale.{json,md,png}.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
case "${1:-}" in
    -h|--help)
        awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
        exec python3 bench/scale.py --help ;;
esac
CACHE="${RILL_CACHE:-$HOME/.cache/rill}"
bench/run.sh --install-only
. "$CACHE/compat/env.sh"
export COMPAT_CLASSPATH BENCH_CLASSES="$CACHE/bench/classes"
RILL_LOAD=$(bench/load/build.sh)
export RILL_LOAD
if [ -n "${RILL_BIN_DIR:-}" ]; then
    bin="$RILL_BIN_DIR"
else
    cargo build --release -p rill-broker -p rill-client --bins -p rill-controller
    bin="${CARGO_TARGET_DIR:-$repo/target}/release"
fi
work="$repo/.rill/bench/scale"
out="$work/run-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$out"
rc=0
"$CACHE/bench/venv/bin/python" bench/scale.py --out "$out" --work "$work/work" --rill-bin "$bin" \
    --command "bench/scale.sh${*:+ $*}" "$@" || rc=$?
if [ $# -eq 0 ] && [ $rc -eq 0 ]; then
    for f in json md png; do cp "$out/scale.$f" "bench/results/scale-latest.$f"; done
    echo "published bench/results/scale-latest.{md,json,png}"
fi
exit $rc
