#!/usr/bin/env bash
# The soak test (bench/soak.py): a 3-broker Rill cluster under a mixed
# workload (produce, consume with group churn, a broker restart every 10
# minutes), sampled every minute (RSS, open file descriptors, CPU, produce
# p99); fails on RSS or descriptor growth that does not level off.
#
#   bench/soak.sh                     # 60 minutes (make soak)
#   bench/soak.sh --minutes 3 --round-seconds 20 --restart-every 1   # the short form
#   bench/soak.sh --help              # soak.py's options
#
# Installs what bench/run.sh installs, builds the release binaries
# (RILL_BIN_DIR=DIR uses binaries from DIR), writes
# .rill/bench/soak/run-*/soak.{json,md}.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
case "${1:-}" in -h|--help) bench_help "$0"; exec python3 bench/soak.py --help ;; esac
bench_setup
work=".rill/bench/soak"
out="$work/run-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$out"
exec "$PYTHON" bench/soak.py --out "$out" --work "$work/work" --rill-bin "$bin" "$@"
