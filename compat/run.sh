#!/usr/bin/env bash
# Runs Rill's client-compatibility tests against a cluster and prints a
# per-test summary ending with "N passed, N failed" (", N skipped" if any);
# exits non-zero if any test failed.
#
#   compat/run.sh --target rill   [--release] [--brokers 3]
#       builds the broker and controller (debug unless --release), starts a
#       controller and brokers on loopback (compat/rill-launch.sh), runs the
#       tests, stops the cluster. With RILL_BIN_DIR set, runs the binaries
#       there and builds nothing.
#   compat/run.sh --target kafka  [--brokers 3|1]
#       the same against real Apache Kafka (compat/kafka-launch.sh), to prove
#       the tests right. --brokers 1 uses RF 1 and skips the failover test.
#   compat/run.sh --target external
#       an already running cluster: KAFKA_BOOTSTRAP, COMPAT_RF,
#       COMPAT_BROKERS and optionally KILL_LEADER_CMD / RESTART_BROKER_CMD
#       from the environment.
# Options: --only REGEX (run the tests whose names match), --keep (leave the
# cluster running), --no-build, --security sasl_ssl|mtls (start the cluster
# with TLS and SASL, or TLS with client certificates, on its Kafka listeners
# and run the security tests instead: compat/test_acls.sh,
# compat/test_quotas.sh, compat/test_sasl_ssl.sh and compat/test_internal_tls.sh, or
# compat/test_mtls.sh and compat/test_internal_tls.sh). Needs scripts/install-compat.sh first.
# COMPAT_TEST_TIMEOUT (s, default 300) bounds each test. COMPAT_BASE_PORT
# moves the cluster's ports (the launchers' --base-port), so two runs can
# share a machine; the work directory is per checkout.
set -euo pipefail
script="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
cd "$(dirname "$0")/.."
repo=$(pwd)

target=""; brokers=3; only=""; keep=false; build=true; profile=debug; security=plaintext
while [ $# -gt 0 ]; do
    case "$1" in
        --target) target=$2; shift 2 ;;
        --brokers) brokers=$2; shift 2 ;;
        --only) only=$2; shift 2 ;;
        --keep) keep=true; shift ;;
        --no-build) build=false; shift ;;
        --release) profile=release; shift ;;
        --security) security=$2; shift 2 ;;
        *) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$script" >&2; exit 2 ;;
    esac
done
case "$target" in kafka|rill|external) ;; *) echo "compat/run.sh: --target kafka|rill|external" >&2; exit 2 ;; esac

CACHE="${RILL_CACHE:-$HOME/.cache/rill}"
[ -f "$CACHE/compat/env.sh" ] || { echo "compat/run.sh: run scripts/install-compat.sh first" >&2; exit 1; }
# shellcheck disable=SC1091
. "$CACHE/compat/env.sh"
export COMPAT_CLASSPATH COMPAT_VENV KAFKA_VERSION

started=$(date +%s)
stamp() { echo "[compat +$(( $(date +%s) - started ))s] $*"; }
work="$repo/.rill/compat-$target-$security"
logs="$work/logs"
cluster="$work/cluster"
mkdir -p "$work"
rm -rf "$logs" && mkdir -p "$logs"
export COMPAT_LOGS="$logs"  # tests keep the logs of what they start here
export COMPAT_WORK="$work"  # and the data of clusters they start themselves

launcher=""
stop_cluster() {
    if [ -n "$launcher" ] && ! $keep; then "$launcher" stop --dir "$cluster" || true; fi
}
trap stop_cluster EXIT

t0=$(date +%s)
case "$target" in
    kafka)
        launcher="$repo/compat/kafka-launch.sh"
        stamp "starting Apache Kafka $KAFKA_VERSION ($brokers broker(s))"
        "$launcher" start --dir "$cluster" --brokers "$brokers" --security "$security" \
            ${COMPAT_BASE_PORT:+--base-port "$COMPAT_BASE_PORT"}
        ;;
    rill)
        export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
        if [ -n "${RILL_BIN_DIR:-}" ]; then
            stamp "using the binaries in RILL_BIN_DIR=$RILL_BIN_DIR"
        elif $build; then
            stamp "building rill-broker and rill-controller ($profile)"
            if [ "$profile" = release ]; then
                cargo build --release -p rill-broker -p rill-client --bins -p rill-controller
            else
                # The same invocation as `make test`: reuses its debug binaries.
                cargo test --workspace --all-targets --no-run
            fi
        fi
        launcher="$repo/compat/rill-launch.sh"
        stamp "starting a Rill controller and $brokers brokers"
        "$launcher" start --dir "$cluster" --brokers "$brokers" --profile "$profile" --security "$security" \
            ${COMPAT_BASE_PORT:+--base-port "$COMPAT_BASE_PORT"}
        ;;
esac
if [ -n "$launcher" ]; then
    # shellcheck disable=SC1091
    . "$cluster/env"
fi
: "${KAFKA_BOOTSTRAP:?KAFKA_BOOTSTRAP is not set}"
export KAFKA_BOOTSTRAP COMPAT_RF="${COMPAT_RF:-3}" COMPAT_BROKERS="${COMPAT_BROKERS:-3}"
export KILL_LEADER_CMD="${KILL_LEADER_CMD:-}" RESTART_BROKER_CMD="${RESTART_BROKER_CMD:-}"
stamp "cluster up in $(( $(date +%s) - t0 ))s: KAFKA_BOOTSTRAP=$KAFKA_BOOTSTRAP (RF $COMPAT_RF)"

TEST_TIMEOUT="${COMPAT_TEST_TIMEOUT:-300}"
results=()   # "STATUS<TAB>seconds<TAB>name<TAB>detail"
record() { results+=("$1"$'\t'"$2"$'\t'"$3"$'\t'"${4:-}"); echo "  -> $1 $3 (${2}s)${4:+: $4}"; }
wanted() { [ -z "$only" ] || [[ "$1" =~ $only ]]; }

# A shell test: exit 0 passes, 77 skips, anything else fails.
run_shell() {
    local name=$1 script=$2
    wanted "$name" || return 0
    stamp "test $name"
    local t=$(date +%s) rc=0
    timeout --kill-after=10 "$TEST_TIMEOUT" "$repo/compat/$script" >"$logs/$name.log" 2>&1 || rc=$?
    local secs=$(( $(date +%s) - t ))
    sed 's/^/    /' "$logs/$name.log" | tail -n 40
    case $rc in
        0) record PASS "$secs" "$name" ;;
        77) record SKIP "$secs" "$name" "$(grep -m1 SKIP "$logs/$name.log" || true)" ;;
        124) record FAIL "$secs" "$name" "timed out after COMPAT_TEST_TIMEOUT=${TEST_TIMEOUT}s" ;;
        *) record FAIL "$secs" "$name" "$(grep -m1 '^FAIL' "$logs/$name.log" || echo "exit $rc")" ;;
    esac
}

# run_pytest NAME FILE: a pytest file of compat/python, one result per test
# case (NAME::case), from its JUnit XML.
run_pytest() {
    local name=$1 file=$2
    wanted "$name" || return 0
    stamp "test $name (pytest compat/python/$file)"
    local t=$(date +%s) rc=0 xml="$logs/pytest-$name.xml"
    timeout --kill-after=10 "$TEST_TIMEOUT" "$COMPAT_VENV/bin/python" -m pytest -p no:cacheprovider -q -rfE \
        --junitxml="$xml" "$repo/compat/python/$file" >"$logs/$name.log" 2>&1 || rc=$?
    sed 's/^/    /' "$logs/$name.log" | tail -n 40
    if [ ! -s "$xml" ]; then
        record FAIL "$(( $(date +%s) - t ))" "$name" "pytest produced no report (exit $rc)"
        return 0
    fi
    local line
    while IFS= read -r line; do
        IFS=$'\t' read -r status secs tname detail <<<"$line"
        record "$status" "$secs" "$name::$tname" "$detail"
    done < <("$COMPAT_VENV/bin/python" - "$xml" <<'PY'
import sys, xml.etree.ElementTree as ET
for case in ET.parse(sys.argv[1]).getroot().iter("testcase"):
    status, detail = "PASS", ""
    for tag in ("failure", "error"):
        el = case.find(tag)
        if el is not None:
            status = "FAIL"
            detail = (el.get("message") or "").splitlines()[0][:300] if el.get("message") else tag
    if case.find("skipped") is not None:
        status, detail = "SKIP", (case.find("skipped").get("message") or "")[:200]
    print(f"{status}\t{round(float(case.get('time', 0)))}\t{case.get('name')}\t{detail}")
PY
    )
    if [ $rc -eq 124 ]; then record FAIL "$(( $(date +%s) - t ))" "$name" "timed out after ${TEST_TIMEOUT}s"; fi
}

if [ "$security" = plaintext ]; then
    run_shell kcat test_kcat.sh
    run_pytest librdkafka test_librdkafka.py
    run_shell console-roundtrip test_console.sh
    run_shell topic-describe test_topic_describe.sh
    run_shell delete-records test_delete_records.sh
    run_shell configs-alter test_configs_alter.sh
    run_shell group-lag test_group_lag.sh
    run_shell consumer-protocol test_consumer_protocol.sh
    run_shell consumer-protocol-librdkafka test_consumer_protocol_librdkafka.sh
    run_shell reassign test_reassign.sh
    run_shell quotas test_quotas.sh
    run_shell streams-wordcount test_streams_wordcount.sh
    run_shell txn-java test_txn_java.sh
    run_shell txn-ctp test_txn_ctp.sh
    run_shell txn-tools test_txn_tools.sh
    run_pytest txn-librdkafka test_txn_librdkafka.py
    run_shell connect-eos test_connect_eos.sh
    run_shell connect-distributed test_connect_distributed.sh
    run_shell mm2 test_mm2.sh
    run_shell share-groups test_share_groups.sh
    # These kill (and restart) a broker.
    run_shell txn-coordinator-kill test_txn_coordinator_kill.sh
    run_shell streams-eos test_streams_eos.sh
    # Last: it kills (and restarts) a broker.
    run_shell idempotent-failover test_idempotent_failover.sh
elif [ "$security" = sasl_ssl ]; then
    run_shell acls test_acls.sh
    run_shell quotas test_quotas.sh
    run_shell sasl-ssl test_sasl_ssl.sh
    run_shell internal-tls test_internal_tls.sh
else
    run_shell mtls test_mtls.sh
    run_shell internal-tls test_internal_tls.sh
fi

passed=0; failed=0; skipped=0
echo
echo "Compatibility results against $target, $security ($KAFKA_BOOTSTRAP), logs in $logs:"
for r in "${results[@]}"; do
    IFS=$'\t' read -r status secs name detail <<<"$r"
    printf '  %-4s %5ss  %s%s\n' "$status" "$secs" "$name" "${detail:+  ($detail)}"
    case $status in PASS) passed=$((passed + 1)) ;; FAIL) failed=$((failed + 1)) ;; SKIP) skipped=$((skipped + 1)) ;; esac
done
echo "total time $(( $(date +%s) - started ))s"
if [ "$skipped" -gt 0 ]; then
    echo "$passed passed, $failed failed, $skipped skipped"
else
    echo "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
