#!/usr/bin/env bash
# Starts and stops a real Apache Kafka cluster (KRaft mode, loopback only) from
# the jars scripts/install-compat.sh put in the cache: the reference system
# Rill's compatibility tests are first proven against, and the other side of
# the side-by-side benchmark.
#
#   compat/kafka-launch.sh start --dir DIR [--brokers N] [--controller combined|separate]
#                                [--base-port P] [--security sasl_ssl|mtls]
#       Formats storage, starts the nodes in the background, waits until every
#       broker has started, writes DIR/env and prints KAFKA_BOOTSTRAP=...
#       --brokers 1 (default): one combined broker+controller node.
#       --brokers 3: three brokers; with --controller separate (default) plus
#       one dedicated controller node, like Rill's controller + brokers; with
#       --controller combined each broker is also a controller voter.
#       --security sasl_ssl: the client listeners are SASL_SSL (a CA and
#       broker certificate made in DIR/pki; SCRAM-SHA-512, SCRAM-SHA-256 and
#       PLAIN with compat/security-lib.sh's users) and ACLs are enforced
#       (StandardAuthorizer; User:admin is a super user); brokers talk to
#       each other on an INTERNAL listener at P+20+i and to the controllers,
#       both SSL with client certificates required (the broker certificate,
#       principal User:broker, a super user).
#       --security mtls: the client listeners are SSL with client
#       certificates required (alice and bob, signed by the same CA); the
#       principal is User:<CN>, as on Rill; the INTERNAL and CONTROLLER
#       listeners are SSL with client certificates too.
#   compat/kafka-launch.sh rotate-cert --dir DIR        a new broker certificate from the same CA,
#                                                       loaded by each broker through AlterConfigs
#   compat/kafka-launch.sh stop --dir DIR               SIGTERM, then SIGKILL after KAFKA_STOP_TIMEOUT
#   compat/kafka-launch.sh kill-broker --dir DIR ID     SIGKILL broker ID (node.id; brokers are 0..N-1)
#   compat/kafka-launch.sh restart-broker --dir DIR ID  start broker ID again, wait until started
#
# Ports: broker i listens on P+i (P defaults to 29092), controllers on P+50+i.
# Environment: KAFKA_HEAP_OPTS (default -Xmx512m -Xms256m), KAFKA_JVM_OPTS,
# KAFKA_LOG_LEVEL (default info), KAFKA_START_TIMEOUT (s, default 120),
# KAFKA_STOP_TIMEOUT (s, default 30), COMPAT_CLASSPATH (else read from
# ${RILL_CACHE:-$HOME/.cache/rill}/compat/env.sh).
set -euo pipefail
self="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
# shellcheck source=compat/launch-lib.sh
. "$(dirname "$self")/launch-lib.sh"
# shellcheck source=compat/security-lib.sh
. "$(dirname "$self")/security-lib.sh"

CACHE="${RILL_CACHE:-$HOME/.cache/rill}"
if [ -z "${COMPAT_CLASSPATH:-}" ]; then
    [ -f "$CACHE/compat/env.sh" ] || { echo "kafka-launch: run scripts/install-compat.sh first" >&2; exit 1; }
    # shellcheck disable=SC1091
    . "$CACHE/compat/env.sh"
fi
HEAP="${KAFKA_HEAP_OPTS:--Xmx512m -Xms256m}"
: "${KAFKA_START_TIMEOUT:=120}" "${KAFKA_STOP_TIMEOUT:=30}"
LOG_LEVEL="${KAFKA_LOG_LEVEL:-info}"

usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0" >&2; exit 2; }
log() { echo "kafka-launch: $*" >&2; }

cmd="${1:-}"; [ -n "$cmd" ] || usage; shift
dir=""; brokers=1; controller=separate; base=29092; id=""; security=plaintext
while [ $# -gt 0 ]; do
    case "$1" in
        --dir) dir=$2; shift 2 ;;
        --brokers) brokers=$2; shift 2 ;;
        --controller) controller=$2; shift 2 ;;
        --base-port) base=$2; shift 2 ;;
        --security) security=$2; shift 2 ;;
        -h|--help) usage ;;
        *) if [ -z "$id" ]; then id=$1; shift; else usage; fi ;;
    esac
done
[ -n "$dir" ] || usage

# A node's process runs `java ... kafka.Kafka DIR/node-X/server.properties`;
# its pid is in DIR/node-X/pid, its output in DIR/node-X/server.log.
node_start() {
    local node=$1 nd="$dir/node-$1"
    # setsid: the node outlives this script and gets no terminal signals.
    # shellcheck disable=SC2086
    setsid java $HEAP ${KAFKA_JVM_OPTS:-} -Dorg.slf4j.simpleLogger.defaultLogLevel="$LOG_LEVEL" \
        -Dorg.slf4j.simpleLogger.showDateTime=true \
        -cp "$COMPAT_CLASSPATH" kafka.Kafka "$nd/server.properties" \
        >>"$nd/server.log" 2>&1 </dev/null &
    echo $! >"$nd/pid"
}

alive() { pid_alive "$dir/node-$1/pid"; }

# Waits until node $1 has logged "Kafka Server started" more than $2 times
# (a restart appends to the same log).
wait_started() {
    wait_ready "node $1" "$dir/node-$1/pid" "$dir/node-$1/server.log" KAFKA_START_TIMEOUT \
        started_more_than "$1" "$2"
}
# started_more_than NODE N: whether NODE logged "Kafka Server started" more
# than N times.
started_more_than() {
    local n
    n=$(grep -c 'Kafka Server started' "$dir/node-$1/server.log" 2>/dev/null || true)
    [ "${n:-0}" -gt "$2" ]
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start() {
    [ "$controller" = combined ] || [ "$controller" = separate ] || usage
    [ "$brokers" -ge 1 ] || usage
    [ "$brokers" -eq 1 ] && controller=combined
    if [ -f "$dir/nodes" ]; then
        for n in $(cat "$dir/nodes"); do
            if alive "$n"; then log "a cluster is already running in $dir (stop it first)"; exit 1; fi
        done
    fi
    rm -rf "$dir" && mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    local rf=$(( brokers < 3 ? brokers : 3 ))
    local min_isr=$(( rf < 2 ? 1 : 2 ))

    # Node ids: brokers 0..N-1 (as Rill numbers its brokers); a separate
    # controller is node 100.
    local nodes=() voters="" bootstrap=""
    for ((i = 0; i < brokers; i++)); do nodes+=("$i"); done
    if [ "$controller" = separate ]; then
        nodes+=(100)
        voters="100@127.0.0.1:$((base + 50))"
    else
        for ((i = 0; i < brokers; i++)); do voters+="${voters:+,}$i@127.0.0.1:$((base + 50 + i))"; done
    fi
    for ((i = 0; i < brokers; i++)); do bootstrap+="${bootstrap:+,}127.0.0.1:$((base + i))"; done
    for ((i = 0; i < brokers; i++)); do
        port_free $((base + i)) || { log "port $((base + i)) is in use (use --base-port)"; exit 1; }
        port_free $((base + 50 + i)) || { log "port $((base + 50 + i)) is in use (use --base-port)"; exit 1; }
    done

    # client: the listener tests connect to; inter: brokers to each other.
    local client=PLAINTEXT inter=PLAINTEXT protocols="PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT" secure=""
    case "$security" in
        plaintext) ;;
        sasl_ssl)
            make_pki "$dir/pki"
            client=SASL_SSL inter=INTERNAL
            protocols="SASL_SSL:SASL_SSL,INTERNAL:SSL,CONTROLLER:SSL"
            # Brokers and controllers talk on SSL listeners with client
            # certificates required, as User:broker (the certificate's CN),
            # which must pass the authorizer too.
            secure="authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:admin;User:broker
ssl.principal.mapping.rules=$KAFKA_PRINCIPAL_RULE
listener.name.internal.ssl.client.auth=required
listener.name.controller.ssl.client.auth=required
sasl.enabled.mechanisms=SCRAM-SHA-512,SCRAM-SHA-256,PLAIN
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.plain.sasl.jaas.config=$(kafka_plain_jaas)
ssl.keystore.type=PEM
ssl.keystore.location=$dir/pki/broker.pem
ssl.truststore.type=PEM
ssl.truststore.location=$dir/pki/ca.crt"
            ;;
        mtls)
            make_pki "$dir/pki"
            make_pki "$dir/pki" alice
            make_pki "$dir/pki" bob
            client=SSL inter=INTERNAL
            protocols="SSL:SSL,INTERNAL:SSL,CONTROLLER:SSL"
            secure="ssl.client.auth=required
ssl.principal.mapping.rules=$KAFKA_PRINCIPAL_RULE
ssl.keystore.type=PEM
ssl.keystore.location=$dir/pki/broker.pem
ssl.truststore.type=PEM
ssl.truststore.location=$dir/pki/ca.crt"
            ;;
        *) log "--security plaintext|sasl_ssl|mtls, not $security"; exit 2 ;;
    esac
    # broker_listeners N: the listeners of broker N.
    broker_listeners() {
        if [ "$security" = plaintext ]; then
            echo "PLAINTEXT://127.0.0.1:$((base + $1))"
        else
            echo "$client://127.0.0.1:$((base + $1)),INTERNAL://127.0.0.1:$((base + 20 + $1))"
        fi
    }
    local cluster_id
    cluster_id=$(python3 -c 'import base64, uuid; print(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))')
    for n in "${nodes[@]}"; do
        local nd="$dir/node-$n" roles listeners advertised=""
        mkdir -p "$nd/data"
        if [ "$n" = 100 ]; then
            roles=controller
            listeners="CONTROLLER://127.0.0.1:$((base + 50))"
        elif [ "$controller" = combined ]; then
            roles=broker,controller
            listeners="$(broker_listeners "$n"),CONTROLLER://127.0.0.1:$((base + 50 + n))"
            advertised="$(broker_listeners "$n")"
        else
            roles=broker
            listeners="$(broker_listeners "$n")"
            advertised="$(broker_listeners "$n")"
        fi
        cat >"$nd/server.properties" <<PROPS
process.roles=$roles
node.id=$n
controller.quorum.voters=$voters
controller.listener.names=CONTROLLER
listeners=$listeners
${advertised:+advertised.listeners=$advertised}
inter.broker.listener.name=$inter
listener.security.protocol.map=$protocols
$secure
log.dirs=$nd/data
# Topics are created explicitly by the tests (as against Rill).
auto.create.topics.enable=false
num.partitions=1
default.replication.factor=$rf
min.insync.replicas=1
offsets.topic.replication.factor=$rf
offsets.topic.num.partitions=12
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$min_isr
transaction.state.log.num.partitions=6
# Abort a transaction past its transaction.timeout.ms within a second of it
# (default: checked every 10 s), as the timeout tests expect.
transaction.abort.timed.out.transaction.cleanup.interval.ms=1000
# Share groups (KIP-932) need no switch: storage formatted at 4.3's metadata
# version finalizes share.version=1. The share-group state topic
# (__share_group_state) follows the cluster's RF.
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$min_isr
group.initial.rebalance.delay.ms=0
# Fence a killed broker within a few seconds.
broker.heartbeat.interval.ms=500
broker.session.timeout.ms=4000
PROPS
    done
    printf '%s\n' "${nodes[@]}" >"$dir/nodes"

    log "formatting storage for nodes ${nodes[*]} (cluster id $cluster_id)"
    local fpids=() scram=()
    [ "$security" != sasl_ssl ] || mapfile -t scram < <(kafka_scram_format_args)
    for n in "${nodes[@]}"; do
        java -Xmx256m -Dorg.slf4j.simpleLogger.defaultLogLevel=warn -cp "$COMPAT_CLASSPATH" kafka.tools.StorageTool \
            format --cluster-id="$cluster_id" --config "$dir/node-$n/server.properties" "${scram[@]}" \
            >"$dir/node-$n/format.log" 2>&1 &
        fpids+=($!)
    done
    local i=0
    for p in "${fpids[@]}"; do
        if ! wait "$p"; then
            cat "$dir/node-${nodes[$i]}/format.log" >&2
            log "formatting node ${nodes[$i]} failed"
            exit 1
        fi
        i=$((i + 1))
    done

    # The ports brokers and controllers use among themselves (SSL with client
    # certificates when secured).
    local internal=""
    if [ "$security" != plaintext ]; then
        for ((i = 0; i < brokers; i++)); do internal+="${internal:+ }127.0.0.1:$((base + 20 + i))"; done
        if [ "$controller" = separate ]; then
            internal+=" 127.0.0.1:$((base + 50))"
        else
            for ((i = 0; i < brokers; i++)); do internal+=" 127.0.0.1:$((base + 50 + i))"; done
        fi
    fi
    log "starting Kafka $KAFKA_VERSION: $brokers broker(s), controller $controller, heap '$HEAP'"
    for n in "${nodes[@]}"; do node_start "$n"; done
    for ((i = 0; i < brokers; i++)); do
        wait_started "$i" 0 || { stop_all; exit 1; }
    done
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
    echo "$brokers" >"$dir/broker-count"
    echo "$base" >"$dir/base-port"
    echo "$bootstrap" >"$dir/bootstrap"
    log "ready (env in $dir/env, logs in $dir/node-*/server.log)"
    echo "KAFKA_BOOTSTRAP=$bootstrap"
}

# term_nodes_and_wait SECS NODE...: SIGTERM the nodes, wait for them,
# SIGKILL after SECS.
term_nodes_and_wait() {
    local secs=$1 n pids=(); shift
    for n in "$@"; do pids+=("$dir/node-$n/pid"); done
    term_and_wait "$secs" "${pids[@]}"
}

stop_all() {
    [ -f "$dir/nodes" ] || { log "nothing to stop in $dir"; return 0; }
    # Brokers first, while the controller quorum can still process their
    # controlled shutdown; then the controllers. Combined nodes stop one at a
    # time so the quorum stays available for as long as possible.
    local brokers_only=() controllers=() n
    for n in $(cat "$dir/nodes"); do
        if grep -q '^process.roles=broker$' "$dir/node-$n/server.properties"; then
            brokers_only+=("$n")
        else
            controllers+=("$n")
        fi
    done
    [ ${#brokers_only[@]} -eq 0 ] || term_nodes_and_wait "$KAFKA_STOP_TIMEOUT" "${brokers_only[@]}"
    local left=${#controllers[@]}
    for n in "${controllers[@]}"; do
        if [ "$left" -le $(( ${#controllers[@]} / 2 )) ]; then
            # The voters left are no majority: a combined node's controlled
            # shutdown would wait for the quorum forever.
            term_nodes_and_wait 5 "$n"
        else
            term_nodes_and_wait "$KAFKA_STOP_TIMEOUT" "$n"
        fi
        left=$((left - 1))
    done
    log "stopped"
}

case "$cmd" in
    start) start ;;
    stop) stop_all ;;
    kill-broker)
        [ -n "$id" ] || usage
        alive "$id" || { log "broker $id is not running"; exit 1; }
        kill -KILL "$(cat "$dir/node-$id/pid")"
        while alive "$id"; do sleep 0.05; done
        log "killed broker $id (SIGKILL)"
        ;;
    restart-broker)
        [ -n "$id" ] || usage
        alive "$id" && { log "broker $id is already running"; exit 0; }
        before=$(grep -c 'Kafka Server started' "$dir/node-$id/server.log" || true)
        node_start "$id"
        wait_started "$id" "${before:-0}"
        log "broker $id restarted"
        ;;
    rotate-cert)
        # Kafka reloads a keystore file when its listener's keystore setting
        # is altered (KIP-226), even to the same path; each broker is asked
        # through its own inter-broker listener (SSL, with the broker
        # certificate as the client's: User:broker, a super user).
        [ -f "$dir/pki/ca.crt" ] || { log "no TLS in $dir"; exit 1; }
        make_pki "$dir/pki"
        base=$(cat "$dir/base-port")
        printf 'security.protocol=SSL\nssl.truststore.type=PEM\nssl.truststore.location=%s\nssl.keystore.type=PEM\nssl.keystore.location=%s\n' \
            "$dir/pki/ca.crt" "$dir/pki/broker.pem" >"$dir/internal-client.properties"
        for ((i = 0; i < $(cat "$dir/broker-count"); i++)); do
            java -Xmx256m -Dorg.slf4j.simpleLogger.defaultLogLevel=warn -cp "$COMPAT_CLASSPATH" kafka.admin.ConfigCommand \
                --bootstrap-server "127.0.0.1:$((base + 20 + i))" --command-config "$dir/internal-client.properties" \
                --entity-type brokers --entity-name "$i" --alter \
                --add-config "listener.name.sasl_ssl.ssl.keystore.location=$dir/pki/broker.pem" >&2
        done
        log "broker certificate rotated: $(openssl x509 -noout -serial -in "$dir/pki/broker.crt")"
        ;;
    *) usage ;;
esac
