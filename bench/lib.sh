# Shared by bench/scale.sh, bench/curves.sh and bench/soak.sh (sourced):
# installs what bench/run.sh installs (Kafka's jars, the Python venv,
# BenchTool, rill-load), exports what bench.py's tools read
# (COMPAT_CLASSPATH, BENCH_CLASSES, RILL_LOAD) and sets $bin to the Rill
# binaries: RILL_BIN_DIR, else a release build. Sets $PYTHON to the bench
# venv's python.
bench_setup() {
    local repo; repo=$(pwd)
    local cache="${RILL_CACHE:-$HOME/.cache/rill}"
    bench/run.sh --install-only
    # shellcheck disable=SC1091
    . "$cache/compat/env.sh"
    export COMPAT_CLASSPATH BENCH_CLASSES="$cache/bench/classes"
    RILL_LOAD=$(bench/load/build.sh)
    export RILL_LOAD
    PYTHON="$cache/bench/venv/bin/python"
    # Thousands of partitions mean tens of thousands of open segment files
    # per broker (Kafka's docs ask for 100,000 or more).
    ulimit -n 200000 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    if [ -n "${RILL_BIN_DIR:-}" ]; then
        bin="$RILL_BIN_DIR"
    else
        cargo build --release -p rill-broker -p rill-client --bins -p rill-controller
        bin="${CARGO_TARGET_DIR:-$repo/target}/release"
    fi
}

# Prints a script's leading comment block (its help).
bench_help() {
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$1"
}
