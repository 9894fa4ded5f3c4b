#!/usr/bin/env bash
# The partition-scale curve (bench/scale.py): Rill and Apache Kafka with 6 to
# 30,000 partition replicas over 3 brokers, in one run.
#
#   bench/scale.sh                                 # every point, ~30-60 min; publishes bench/results/scale-latest.*
#   bench/scale.sh --points 6,600 --seconds 10     # a partial run (not published)
#   bench/scale.sh --help                          # scale.py's options
#
# Installs what bench/run.sh installs, builds the release binaries
# (RILL_BIN_DIR=DIR uses binaries from DIR), writes
# .rill/bench/scale/run-*/scale.{json,md,png}.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
case "${1:-}" in -h|--help) bench_help "$0"; exec python3 bench/scale.py --help ;; esac
bench_setup
work=".rill/bench/scale"
out="$work/run-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$out"
rc=0
"$PYTHON" bench/scale.py --out "$out" --work "$work/work" --rill-bin "$bin" \
    --command "bench/scale.sh${*:+ $*}" "$@" || rc=$?
# A full run is published even when a point failed: the report lists it
# (Kafka's produce run at 30,000 replicas may fail on a small machine). The
# exit status still says that one did.
if [ $# -eq 0 ] && [ -f "$out/scale.md" ]; then
    for f in json md png; do [ ! -f "$out/scale.$f" ] || cp "$out/scale.$f" "bench/results/scale-latest.$f"; done
    sed -i 's/(scale.png)/(scale-latest.png)/' bench/results/scale-latest.md
    echo "published bench/results/scale-latest.{md,json,png}"
fi
exit $rc
