#!/usr/bin/env bash
# Starts and stops a Rill cluster on loopback for the compat tests: one
# metadata controller (file store) and N brokers with their Kafka listeners,
# the same way scripts/local-cluster.sh starts them, but in the background with
# the same interface as compat/kafka-launch.sh:
#
#   compat/rill-launch.sh start --dir DIR [--brokers N] [--base-port P] [--profile debug|release]
#                               [--security sasl_ssl|mtls]
#       Starts the processes from $CARGO_TARGET_DIR/<profile> (built beforehand;
#       compat/run.sh builds them), waits for each RILL_READY line, writes
#       DIR/env and prints KAFKA_BOOTSTRAP=... (the brokers' kafka= addresses).
#       --security sasl_ssl: the Kafka listeners speak TLS (a CA and broker
#       certificate made in DIR/pki) and require SASL (SCRAM-SHA-512,
#       SCRAM-SHA-256, PLAIN) with compat/security-lib.sh's users, and
#       every request is authorized by ACLs (User:admin is a super user).
#       --security mtls: TLS with client certificates required (client
#       certificates for alice and bob in DIR/pki, signed by the same CA).
#       With either, the controller's, replication and gRPC client API ports
#       speak mutual TLS with the broker certificate (--internal-tls-*).
#   compat/rill-launch.sh rotate-cert --dir DIR         a new broker certificate from the same CA, in place
#   compat/rill-launch.sh stop --dir DIR               SIGTERM, then SIGKILL after RILL_STOP_TIMEOUT
#   compat/rill-launch.sh kill-broker --dir DIR ID     SIGKILL broker ID
#   compat/rill-launch.sh restart-broker --dir DIR ID  start broker ID again on its data dir, wait for RILL_READY
#
# Ports: controller P (http P+1); broker i: client P+10+10i, http +1,
# replication +2, Kafka listener +3. P defaults to 27000: below Linux's
# ephemeral range (32768-60999 by default), so the local end of some outgoing
# connection cannot be holding a port a listener needs.
# Environment: RILL_BIN_DIR (where rill-broker and rill-controller are,
# instead of $CARGO_TARGET_DIR/<profile>), RILL_KAFKA_ADDR_FLAG (the broker flag for the Kafka listener
# address, default --kafka-addr), RILL_START_TIMEOUT (s, default 60),
# RILL_STOP_TIMEOUT (s, default 20), RILL_COMPAT_BROKER_ARGS (extra broker
# arguments). The processes read RILL_LOG (log filter) themselves.
set -euo pipefail
self="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
repo="$(cd "$(dirname "$0")/.." && pwd)"

: "${RILL_START_TIMEOUT:=60}" "${RILL_STOP_TIMEOUT:=20}"
# shellcheck source=compat/launch-lib.sh
. "$repo/compat/launch-lib.sh"
# shellcheck source=compat/security-lib.sh
. "$repo/compat/security-lib.sh"
KAFKA_FLAG="${RILL_KAFKA_ADDR_FLAG:---kafka-addr}"

usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0" >&2; exit 2; }
log() { echo "rill-launch: $*" >&2; }

cmd="${1:-}"; [ -n "$cmd" ] || usage; shift
dir=""; brokers=3; base=27000; profile=debug; id=""; security=plaintext
while [ $# -gt 0 ]; do
    case "$1" in
        --dir) dir=$2; shift 2 ;;
        --brokers) brokers=$2; shift 2 ;;
        --base-port) base=$2; shift 2 ;;
        --profile) profile=$2; shift 2 ;;
        --security) security=$2; shift 2 ;;
        -h|--help) usage ;;
        *) if [ -z "$id" ]; then id=$1; shift; else usage; fi ;;
    esac
done
[ -n "$dir" ] || usage

alive() { pid_alive "$dir/$1.pid"; }

ready_lines() { local n; n=$(grep -c '^RILL_READY' "$dir/$1.ready" 2>/dev/null || true); echo "${n:-0}"; }

# launch NAME: runs the command line saved in DIR/NAME.cmd in the background,
# stdout to NAME.ready (appended), stderr to NAME.log, and waits until a new
# RILL_READY line appears.
launch() {
    local name=$1 before
    before=$(ready_lines "$name")
    # shellcheck disable=SC2046
    setsid $(cat "$dir/$name.cmd") >>"$dir/$name.ready" 2>>"$dir/$name.log" </dev/null &
    echo $! >"$dir/$name.pid"
    wait_ready "$name" "$dir/$name.pid" "$dir/$name.log" RILL_START_TIMEOUT more_ready_lines "$name" "$before"
}
# more_ready_lines NAME N: whether NAME printed more than N RILL_READY lines.
more_ready_lines() { [ "$(ready_lines "$1")" -gt "$2" ]; }
# field NAME KEY: KEY=value from NAME's latest RILL_READY line.
field() { { grep '^RILL_READY' "$dir/$1.ready" || true; } | tail -1 | sed -nE "s/.* $2=([^ ]+).*/\1/p"; }

stop_all() {
    [ -f "$dir/names" ] || { log "nothing to stop in $dir"; return 0; }
    local n pids=()
    for n in $(tac "$dir/names"); do pids+=("$dir/$n.pid"); done
    term_and_wait "$RILL_STOP_TIMEOUT" "${pids[@]}"
    log "stopped"
}

start() {
    local bin="${RILL_BIN_DIR:-${CARGO_TARGET_DIR:-$repo/target}/$profile}"
    for b in rill-controller rill-broker; do
        [ -x "$bin/$b" ] || { log "$bin/$b not built (compat/run.sh --target rill builds it)"; exit 1; }
    done
    if [ -f "$dir/names" ]; then
        for n in $(cat "$dir/names"); do alive "$n" && { log "a cluster is already running in $dir"; exit 1; }; done
    fi
    rm -rf "$dir" && mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    # Whatever fails from here on, stop what was started.
    trap 'status=$?; [ $status -eq 0 ] || stop_all; exit $status' EXIT
    echo controller >"$dir/names"
    # Secured clusters also speak mutual TLS among themselves (replication,
    # the gRPC client API, the controller), with the broker certificate.
    local internal_args=""
    if [ "$security" != plaintext ]; then
        make_pki "$dir/pki"
        internal_args="--internal-tls-cert-file $dir/pki/broker.crt --internal-tls-key-file $dir/pki/broker.key --internal-tls-ca-file $dir/pki/ca.crt"
    fi
    echo "$bin/rill-controller --metadata-file $dir/controller/metadata.json --listen-addr 127.0.0.1:$base --http-addr 127.0.0.1:$((base + 1)) $internal_args" \
        >"$dir/controller.cmd"
    launch controller || exit 1
    local secure_args=""
    case "$security" in
        plaintext) ;;
        sasl_ssl)
            rill_credentials "$dir/credentials"
            secure_args="--kafka-tls-cert-file $dir/pki/broker.crt --kafka-tls-key-file $dir/pki/broker.key"
            secure_args+=" --kafka-sasl-mechanisms SCRAM-SHA-512,SCRAM-SHA-256,PLAIN --sasl-credentials-file $dir/credentials"
            secure_args+=" --authorization --super-users User:admin"
            ;;
        mtls)
            make_pki "$dir/pki" alice
            make_pki "$dir/pki" bob
            secure_args="--kafka-tls-cert-file $dir/pki/broker.crt --kafka-tls-key-file $dir/pki/broker.key"
            secure_args+=" --kafka-tls-client-ca-file $dir/pki/ca.crt"
            ;;
        *) log "--security plaintext|sasl_ssl|mtls, not $security"; exit 2 ;;
    esac
    local controller
    controller=$(field controller controller)
    local bootstrap="" internal=""
    [ "$security" = plaintext ] || internal="$controller"
    for ((i = 0; i < brokers; i++)); do
        local p=$((base + 10 + 10 * i))
        echo "broker-$i" >>"$dir/names"
        echo "$bin/rill-broker --broker-id $i --data-dir $dir/broker-$i --controller-addr $controller" \
             "--listen-addr 127.0.0.1:$p --http-addr 127.0.0.1:$((p + 1)) --replication-addr 127.0.0.1:$((p + 2))" \
             "$KAFKA_FLAG 127.0.0.1:$((p + 3)) $secure_args $internal_args ${RILL_COMPAT_BROKER_ARGS:-}" >"$dir/broker-$i.cmd"
        [ "$security" = plaintext ] || internal+=" 127.0.0.1:$p 127.0.0.1:$((p + 2))"
        launch "broker-$i" || exit 1
        local k
        k=$(field "broker-$i" kafka)
        [ -n "$k" ] || { log "broker-$i's RILL_READY line has no kafka= address: $(grep "^RILL_READY" "$dir/broker-$i.ready")"; exit 1; }
        bootstrap+="${bootstrap:+,}$k"
    done
    local rf=$(( brokers < 3 ? brokers : 3 ))
    cat >"$dir/env" <<ENV
export KAFKA_BOOTSTRAP=$bootstrap
export COMPAT_BROKERS=$brokers
export COMPAT_RF=$rf
export KILL_LEADER_CMD="$self kill-broker --dir $dir"
export RESTART_BROKER_CMD="$self restart-broker --dir $dir"
export KAFKA_SECURITY=$security
export KAFKA_CA_FILE=$dir/pki/ca.crt
export ROTATE_CERT_CMD="$self rotate-cert --dir $dir"
export INTERNAL_ADDRS="$internal"
export INTERNAL_CERT=$dir/pki/broker.crt
export INTERNAL_KEY=$dir/pki/broker.key
ENV
    echo "$bootstrap" >"$dir/bootstrap"
    log "ready: controller $controller, $brokers brokers (env in $dir/env, logs in $dir/*.log)"
    echo "KAFKA_BOOTSTRAP=$bootstrap"
}

case "$cmd" in
    start) start ;;
    stop) stop_all ;;
    kill-broker)
        [ -n "$id" ] || usage
        alive "broker-$id" || { log "broker $id is not running"; exit 1; }
        kill -KILL "$(cat "$dir/broker-$id.pid")"
        while alive "broker-$id"; do sleep 0.05; done
        log "killed broker $id (SIGKILL)"
        ;;
    restart-broker)
        [ -n "$id" ] || usage
        alive "broker-$id" && { log "broker $id is already running"; exit 0; }
        launch "broker-$id"
        log "broker $id restarted"
        ;;
    rotate-cert)
        # The brokers read the files again within seconds; nothing restarts.
        [ -f "$dir/pki/ca.crt" ] || { log "no TLS in $dir"; exit 1; }
        make_pki "$dir/pki"
        log "broker certificate rotated: $(openssl x509 -noout -serial -in "$dir/pki/broker.crt")"
        ;;
    *) usage ;;
esac
