#!/usr/bin/env bash
# The client and consumer-group curves (bench/curves.py): Rill and Apache
# Kafka with 10, 100 and 1,000 clients, or consumer groups, on 3 brokers, in
# one run.
#
#   bench/curves.sh clients                            # ~8-9 min; publishes bench/results/clients-latest.*
#   bench/curves.sh groups                             # ~7-8 min; publishes bench/results/groups-latest.*
#   bench/curves.sh clients --points 10 --seconds 5    # a partial run (not published)
#   bench/curves.sh --help                             # curves.py's options
#
# Installs what bench/run.sh installs, builds the release binaries
# (RILL_BIN_DIR=DIR uses binaries from DIR), writes
# .rill/bench/CURVE/run-*/CURVE.{json,md,png}. A run without options
# publishes its report even when a point failed (the report says which).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
case "${1:-}" in
    clients|groups) curve=$1; shift ;;
    -h|--help) bench_help "$0"; exec python3 bench/curves.py --help ;;
    *) echo "usage: bench/curves.sh clients|groups [option ...] (--help)" >&2; exit 2 ;;
esac
bench_setup
work=".rill/bench/$curve"
out="$work/run-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$out"
rc=0
"$PYTHON" bench/curves.py --curve "$curve" --out "$out" --work "$work/work" --rill-bin "$bin" \
    --command "bench/curves.sh $curve${*:+ $*}" "$@" || rc=$?
if [ $# -eq 0 ] && [ -f "$out/$curve.md" ]; then
    for f in json md png; do cp "$out/$curve.$f" "bench/results/$curve-latest.$f"; done
    sed -i "s/($curve.png)/($curve-latest.png)/" "bench/results/$curve-latest.md"
    echo "published bench/results/$curve-latest.{md,json,png}"
fi
exit $rc
