# Shared helpers for the compat shell tests; sourced, not run.
# Needs KAFKA_BOOTSTRAP; COMPAT_RF (replication factor, default 3) and
# COMPAT_BROKERS (brokers expected in metadata, default 3).
set -euo pipefail

COMPAT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${RILL_CACHE:-$HOME/.cache/rill}"
if [ -z "${COMPAT_CLASSPATH:-}" ] || [ -z "${COMPAT_VENV:-}" ]; then
    [ -f "$CACHE/compat/env.sh" ] || { echo "run scripts/install-compat.sh first" >&2; exit 1; }
    # shellcheck disable=SC1091
    . "$CACHE/compat/env.sh"
fi
: "${KAFKA_BOOTSTRAP:?KAFKA_BOOTSTRAP is not set}"
COMPAT_RF="${COMPAT_RF:-3}"
COMPAT_BROKERS="${COMPAT_BROKERS:-3}"
PY="$COMPAT_VENV/bin/python"
# Unique topic and group names per run, so tests can rerun on one cluster.
RUN_ID="${RUN_ID:-$(date +%s)-$$}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/rill-compat.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

say() { echo "[$(basename "$0") +${SECONDS}s] $*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

# Runs a Java main class from the cached Kafka jars (tools, clients, Streams)
# and Rill's compat programs, with a small heap and warnings-only logging.
kjava() {
    local main=$1; shift
    java -Xmx256m -XX:TieredStopAtLevel=1 -Dorg.slf4j.simpleLogger.defaultLogLevel="${COMPAT_JAVA_LOG:-warn}" \
        -cp "$COMPAT_CLASSPATH" "$main" "$@"
}

# kjava_bg OUT ERR MAIN ARGS...: kjava in the background with its output in
# OUT and ERR; afterwards $! is the JVM's own pid (not a subshell's), so a
# SIGKILL sent to it kills the program.
kjava_bg() {
    local out=$1 err=$2 main=$3; shift 3
    java -Xmx256m -XX:TieredStopAtLevel=1 -Dorg.slf4j.simpleLogger.defaultLogLevel="${COMPAT_JAVA_LOG:-warn}" \
        -cp "$COMPAT_CLASSPATH" "$main" "$@" >"$out" 2>"$err" &
}

# Creates a topic through librdkafka's admin API (CreateTopics) and waits
# until every partition has a leader.
create_topic_rdkafka() {
    "$PY" "$COMPAT_DIR/python/admin.py" create "$@"
}

# show_diff WANT GOT [LINES]: the first lines of their diff on stderr (no
# SIGPIPE failure under pipefail).
show_diff() { diff "$1" "$2" | head -n "${3:-10}" >&2 || true; }

# errors_in FILE: a Java tool's exception lines, then its ERROR log lines
# (some tools exit 0 after an error).
errors_in() { { grep -E '^[a-zA-Z.]+(Exception|Error): ' "$1"; grep -E '(^|\] )ERROR ' "$1"; } || true; }

# wait_until NAME SECONDS CMD...: reruns CMD until it succeeds, fails after
# SECONDS with the condition's NAME.
wait_until() {
    local name=$1 secs=$2; shift 2
    local deadline=$(( SECONDS + secs ))
    until "$@"; do
        [ "$SECONDS" -lt "$deadline" ] || fail "timed out after ${secs}s waiting for: $name"
        sleep 0.2
    done
}
