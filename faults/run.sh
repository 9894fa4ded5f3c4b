#!/usr/bin/env bash
# Rill's fault-injection suite: a controller and 3 brokers (Rill, or Apache
# Kafka as the reference) in network namespaces, real clients, faults from
# iproute2, signals, tmpfs and strace, and a checker over the histories.
#
#   faults/run.sh [--target rill|kafka] --short                 representative subset, ~5 min for Rill
#   faults/run.sh [--target rill|kafka] --long [--seed S]       every scenario, mix included
#   faults/run.sh [--target rill|kafka] --scenario NAME [--seed S] [--duration SECS]
#   faults/run.sh --list                                        scenario names
#   faults/run.sh --test                                        the checker's unit tests
#
# Other flags: --brokers 3|5, --producers N, --consumers N, --rate R,
# --warmup S, --settle S, --tmpfs-mb M. Needs root. Prints the results table
# and ends with "faults: N passed, M failed"; exits non-zero when any
# scenario failed. Results: faults/results/<target>[-short]-latest.{md,json};
# histories and logs: faults/.run/<target>/.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
CACHE="${RILL_CACHE:-$HOME/.cache/rill}"
if [ ! -f "$CACHE/compat/env.sh" ]; then
    echo "faults: run faults/install.sh first" >&2
    exit 1
fi
# shellcheck disable=SC1091
. "$CACHE/compat/env.sh"
export COMPAT_CLASSPATH KAFKA_VERSION
py="$COMPAT_VENV/bin/python"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
if [ "${1:-}" = "--test" ]; then
    exec "$py" -m pytest -q "$here/tests"
fi
# The orchestrator traps SIGINT/SIGTERM itself and removes what it created.
exec "$py" "$here/suite.py" "$@"
