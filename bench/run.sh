#!/usr/bin/env bash
# Side-by-side benchmark of Rill against Apache Kafka on this machine
# (bench/README.md): 3 brokers each on loopback, 1 topic, 6 partitions, RF=3,
# min.insync.replicas=2, acks=all, 1 KiB records; Kafka's own perf tools plus
# an end-to-end latency tool on the Java client. Prints the report.
#
#   bench/run.sh              full run (3 repetitions, >= 30 s producer runs;
#                             about 50 min): bench/results/latest.{md,png,json}
#   bench/run.sh --smoke      seconds per step, 1 repetition, one cluster per
#                             system (about 2 min): .rill/bench/smoke/ only
#   bench/run.sh [--smoke] [--out DIR] [bench.py options: --variants kafka,rill
#                --reps N --seconds S --records N --e2e-rate R ...]
#   bench/run.sh --install-only   only the installs below (.ci/run prefetches them)
#
# Installs into ${RILL_CACHE:-$HOME/.cache/rill}: Apache Kafka's jars
# (scripts/install-compat.sh, Maven Central), a Python venv with matplotlib
# (bench/requirements.txt, PyPI) and BenchTool's classes. Builds rill-broker
# and rill-controller: release for full runs; the debug binaries `make test`
# builds for --smoke (RILL_BENCH_PROFILE=release|debug overrides;
# RILL_BIN_DIR=DIR takes already built binaries and builds nothing).
# Cluster data goes to .rill/bench/<mode>/work (removed after each
# repetition; a full run needs about 12 GB free there at peak).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

mode=full
out=""
pass=()
while [ $# -gt 0 ]; do
    case "$1" in
        --smoke) mode=smoke; shift ;;
        --install-only) mode=install; shift ;;
        --out) out=$2; shift 2 ;;
        -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
        *) pass+=("$1"); shift ;;
    esac
done
started=$(date +%s)
say() { echo "bench [+$(( $(date +%s) - started ))s]: $*"; }

CACHE="${RILL_CACHE:-$HOME/.cache/rill}"
BENCH_CACHE="$CACHE/bench"
mkdir -p "$BENCH_CACHE"
# One install at a time (a run waits for .ci/run's prefetch, then finds the
# venv and classes stamped); released before the benchmark runs.
exec 9>"$BENCH_CACHE/.install.lock"
if ! flock -n 9; then
    say "waiting for another bench/run.sh to finish installing"
    flock 9
fi

# --- Apache Kafka jars (shared with compat/) ----------------------------------
scripts/install-compat.sh >"$BENCH_CACHE/install-compat.log" 2>&1 || {
    cat "$BENCH_CACHE/install-compat.log" >&2; exit 1; }
# shellcheck disable=SC1091
. "$CACHE/compat/env.sh"
export KAFKA_VERSION COMPAT_CLASSPATH
say "Apache Kafka $KAFKA_VERSION jars in $COMPAT_LIB"

# --- Python venv with matplotlib ----------------------------------------------
VENV="$BENCH_CACHE/venv"
req="$repo/bench/requirements.txt"
stamp="$VENV/.stamp-$(sha256sum "$req" | cut -c1-16)"
if [ ! -f "$stamp" ] || ! "$VENV/bin/python" -c 'import matplotlib' 2>/dev/null; then
    say "creating $VENV (pip install -r bench/requirements.txt)"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check -r "$req"
    touch "$stamp"
fi

# --- BenchTool ------------------------------------------------------------------
CLASSES="$BENCH_CACHE/classes"
src="$repo/bench/java/BenchTool.java"
jstamp="$CLASSES/.stamp-$(cat "$src" <(echo "$KAFKA_VERSION") | sha256sum | cut -c1-16)"
if [ ! -f "$jstamp" ]; then
    say "javac bench/java/BenchTool.java"
    rm -rf "$CLASSES" && mkdir -p "$CLASSES"
    javac -cp "$COMPAT_CLASSPATH" -d "$CLASSES" "$src"
    touch "$jstamp"
fi
export BENCH_CLASSES="$CLASSES"
# rill-load, the librdkafka load client (bench/load/rill-load.c).
RILL_LOAD=$(bench/load/build.sh 2>"$BENCH_CACHE/rill-load-build.log") || {
    cat "$BENCH_CACHE/rill-load-build.log" >&2; exit 1; }
export RILL_LOAD
say "rill-load: $RILL_LOAD"
flock -u 9 && exec 9>&-
if [ "$mode" = install ]; then
    say "installed in $(( $(date +%s) - started ))s"
    exit 0
fi

# --- Rill binaries --------------------------------------------------------------
target="${CARGO_TARGET_DIR:-$repo/target}"
profile="${RILL_BENCH_PROFILE:-}"
[ -n "$profile" ] || { [ "$mode" = smoke ] && profile=debug || profile=release; }
if [ -n "${RILL_BIN_DIR:-}" ]; then
    bin="$RILL_BIN_DIR"
elif [ "$profile" = release ]; then
    say "cargo build --release -p rill-broker -p rill-client --bins -p rill-controller"
    cargo build --release -p rill-broker -p rill-client --bins -p rill-controller
    bin="$target/release"
else
    # The invocation `make test` uses, so nothing is rebuilt with other
    # feature sets (as scripts/local-cluster.sh --smoke does).
    say "cargo test --workspace --all-targets --no-run (debug binaries)"
    cargo test --workspace --all-targets --no-run
    bin="$target/debug"
fi
for b in rill-broker rill-controller; do
    [ -x "$bin/$b" ] || { echo "bench: $bin/$b is missing" >&2; exit 1; }
done

# --- Run --------------------------------------------------------------------------
work="$repo/.rill/bench/$mode"
if [ -z "$out" ]; then
    if [ "$mode" = full ]; then out="$work/run-$(date +%Y%m%d-%H%M%S)"; else out="$work/out"; fi
fi
rm -rf "$work/work"
mkdir -p "$out"
command="bench/run.sh"
[ "$mode" = smoke ] && command+=" --smoke"
[ ${#pass[@]} -eq 0 ] || command+=" ${pass[*]}"
say "running ($mode; Rill binaries from $bin); output in $out"
"$VENV/bin/python" "$repo/bench/bench.py" --mode "$mode" --out "$out" --work "$work/work" \
    --rill-bin "$bin" --command "$command" ${pass[@]+"${pass[@]}"}

# A full run with the default settings is the published report.
if [ "$mode" = full ] && [ ${#pass[@]} -eq 0 ]; then
    mkdir -p "$repo/bench/results"
    cp "$out/report.md" "$repo/bench/results/latest.md"
    cp "$out/chart.png" "$repo/bench/results/latest.png"
    cp "$out/results.json" "$repo/bench/results/latest.json"
    sed -i 's/(chart.png)/(latest.png)/' "$repo/bench/results/latest.md"
    say "published bench/results/latest.md (raw logs stay in $out/logs)"
fi
say "done in $(( $(date +%s) - started ))s"
