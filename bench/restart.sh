#!/usr/bin/env bash
# Restart time of a broker holding large active segments (bench/restart.py):
# 3 brokers, --records records of 1 KiB in active segments, broker 0 stopped
# with SIGTERM and started again with a cold page cache.
#
#   bench/restart.sh                          # 2,000,000 records, 2 restarts
#   bench/restart.sh --records 5000000 --warm-cache
#   bench/restart.sh --kill                   # SIGKILL instead of SIGTERM
#   bench/restart.sh --help                   # restart.py's options
#
# Installs what bench/run.sh installs, builds the release binaries
# (RILL_BIN_DIR=DIR uses binaries from DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
case "${1:-}" in -h|--help) bench_help "$0"; exec python3 bench/restart.py --help ;; esac
bench_setup
exec "$PYTHON" bench/restart.py --work .rill/bench/restart/work --rill-bin "$bin" "$@"
