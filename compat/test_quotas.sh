#!/usr/bin/env bash
# Client quotas with Kafka's own tools against a cluster:
#   - ConfigCommand (kafka-configs.sh) --alter --add-config sets
#     producer_byte_rate and consumer_byte_rate on a client id, --describe
#     shows them (within QUOTA_VISIBLE_TIMEOUT seconds, through any
#     broker), a bad value is refused naming the key;
#   - ProducerPerformance with that client id, asked for far more than
#     the quota, achieves less than QUOTA_MAX_RATIO times the quota, while
#     the same run with another client id achieves at least
#     FREE_MIN_RATIO times the quota;
#   - --delete-config removes the quotas;
#   - with --security sasl_ssl, the same for a user quota: user dave with
#     the default client id (any client id of dave's), described with the
#     same entity; dave is given WRITE on the topic and loses it after.
# The topic has one partition, so one broker (its leader) measures the
# producer: quotas are per broker, as in Kafka.
. "$(dirname "$0")/lib.sh"
# shellcheck source=compat/security-lib.sh
. "$COMPAT_DIR/security-lib.sh"

# Bytes per second the producer quota allows (per broker).
QUOTA=${QUOTA:-102400}
# A throttled run must stay below this multiple of the quota: the rate is
# measured over 10 s at least, so a 30 s run may reach about 1.3x.
QUOTA_MAX_RATIO=${QUOTA_MAX_RATIO:-2}
# An unthrottled run must reach at least this multiple of the quota.
FREE_MIN_RATIO=${FREE_MIN_RATIO:-4}
# Records of 1000 bytes per run: about 30 s at the quota.
RECORDS=${RECORDS:-3000}
# How long a quota change may take to show through a broker.
QUOTA_VISIBLE_TIMEOUT=${QUOTA_VISIBLE_TIMEOUT:-10}

secured=false
[ "${KAFKA_SECURITY:-plaintext}" = sasl_ssl ] && secured=true
password_of() { local pair; for pair in $COMPAT_SASL_USERS; do [ "${pair%%:*}" = "$1" ] && echo "${pair#*:}"; done; }
# props USER FILE: client properties of USER on the secured cluster (an
# empty file on a plaintext one).
props() {
    if $secured; then
        cat >"$2" <<CONF
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="$1" password="$(password_of "$1")";
ssl.truststore.type=PEM
ssl.truststore.location=$KAFKA_CA_FILE
CONF
    else
        : >"$2"
    fi
}
props admin "$WORK/admin.properties"
props dave "$WORK/dave.properties"
cc() { kjava kafka.admin.ConfigCommand --bootstrap-server "$KAFKA_BOOTSTRAP" --command-config "$WORK/admin.properties" "$@"; }

topic="compat-quota-$RUN_ID"
kjava org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA_BOOTSTRAP" --command-config "$WORK/admin.properties" \
    --create --topic "$topic" --partitions 1 --replication-factor "$COMPAT_RF" >"$WORK/create.log" 2>&1 \
    || { cat "$WORK/create.log" >&2; fail "TopicCommand --create failed"; }

# perf NAME CONFIG CLIENT_ID: ProducerPerformance as fast as it can;
# prints the bytes per second it achieved.
perf() {
    local name=$1 config=$2 client=$3
    kjava org.apache.kafka.tools.ProducerPerformance --bootstrap-server "$KAFKA_BOOTSTRAP" --topic "$topic" \
        --num-records "$RECORDS" --record-size 1000 --throughput -1 --producer.config "$config" \
        --producer-props acks=1 client.id="$client" >"$WORK/$name.out" 2>"$WORK/$name.err" \
        || { cat "$WORK/$name.err" >&2; fail "ProducerPerformance ($name) failed"; }
    local errors
    errors="$(errors_in "$WORK/$name.err")"
    [ -z "$errors" ] || { cat "$WORK/$name.err" >&2; fail "ProducerPerformance ($name) reported: $errors"; }
    local summary
    summary=$(grep "^$RECORDS records sent" "$WORK/$name.out") \
        || { cat "$WORK/$name.out" >&2; fail "ProducerPerformance ($name) did not send $RECORDS records"; }
    echo "$summary" | awk '{ printf "%d\n", $4 * 1000 }'
}

# describes ARGS... -- WANT...: --describe ARGS lists every key=value of WANT.
describes() {
    local args=() want=()
    while [ "$1" != -- ]; do args+=("$1"); shift; done
    shift
    cc --describe "${args[@]}" >"$WORK/describe" 2>&1 || return 1
    for kv in "$@"; do grep -q -- "$kv" "$WORK/describe" || return 1; done
}
# describes_none ARGS...: --describe ARGS lists no quota.
describes_none() {
    cc --describe "$@" >"$WORK/describe" 2>&1 || return 1
    ! grep -q "Quota configs" "$WORK/describe"
}

# throttled_and_free WHAT ENTITY_ARGS -- CONFIG THROTTLED_CLIENT FREE_CLIENT
# [REMOVE]: sets the quota on ENTITY, checks the describe, runs the
# throttled producer; then the free one (after removing the quota when
# REMOVE is set, for a user quota that applies to any client id).
throttled_and_free() {
    local what=$1; shift
    local entity=()
    while [ "$1" != -- ]; do entity+=("$1"); shift; done
    shift
    local config=$1 throttled=$2 free=$3 remove=${4:-}
    cc --alter --add-config "producer_byte_rate=$QUOTA,consumer_byte_rate=$((QUOTA * 2))" "${entity[@]}" \
        >"$WORK/alter" 2>&1 || { cat "$WORK/alter" >&2; fail "--alter --add-config on $what failed"; }
    [ -z "$(errors_in "$WORK/alter")" ] || { cat "$WORK/alter" >&2; fail "--alter on $what reported errors"; }
    wait_until "--describe to show the quotas of $what" "$QUOTA_VISIBLE_TIMEOUT" \
        describes "${entity[@]}" -- "producer_byte_rate=$QUOTA" "consumer_byte_rate=$((QUOTA * 2))"
    say "$what: $(grep 'Quota configs' "$WORK/describe")"

    local got
    got=$(perf "$what-throttled" "$config" "$throttled")
    say "$what: ProducerPerformance with the quota: $got bytes/s (quota $QUOTA): $(grep "^$RECORDS records sent" "$WORK/$what-throttled.out")"
    [ "$got" -lt $((QUOTA * QUOTA_MAX_RATIO)) ] \
        || fail "$what: $got bytes/s with a quota of $QUOTA, more than ${QUOTA_MAX_RATIO}x"
    if [ -n "$remove" ]; then
        cc --alter --delete-config producer_byte_rate,consumer_byte_rate "${entity[@]}" >"$WORK/delete" 2>&1 \
            || { cat "$WORK/delete" >&2; fail "--alter --delete-config on $what failed"; }
        wait_until "--describe to show no quota for $what" "$QUOTA_VISIBLE_TIMEOUT" describes_none "${entity[@]}"
        # Every broker has it once the one asked has it; give the
        # metadata stream a moment to reach the partition leader too.
        sleep 2
    fi
    got=$(perf "$what-free" "$config" "$free")
    say "$what: ProducerPerformance without a quota: $got bytes/s: $(grep "^$RECORDS records sent" "$WORK/$what-free.out")"
    [ "$got" -ge $((QUOTA * FREE_MIN_RATIO)) ] \
        || fail "$what: only $got bytes/s without a quota, less than ${FREE_MIN_RATIO}x the quota of $QUOTA"
    if [ -z "$remove" ]; then
        cc --alter --delete-config producer_byte_rate,consumer_byte_rate "${entity[@]}" >"$WORK/delete" 2>&1 \
            || { cat "$WORK/delete" >&2; fail "--alter --delete-config on $what failed"; }
        wait_until "--describe to show no quota for $what" "$QUOTA_VISIBLE_TIMEOUT" describes_none "${entity[@]}"
    fi
    say "$what: --delete-config removed the quotas"
}

client="compat-quota-client-$RUN_ID"

# A bad value is refused, naming the key, and sets nothing.
if cc --alter --add-config producer_byte_rate=fast --entity-type clients --entity-name "$client" >"$WORK/bad" 2>&1 \
    && [ -z "$(errors_in "$WORK/bad")" ]; then
    cat "$WORK/bad" >&2; fail "producer_byte_rate=fast was accepted"
fi
grep -q producer_byte_rate "$WORK/bad" || { cat "$WORK/bad" >&2; fail "the refusal does not name producer_byte_rate"; }
if cc --alter --add-config consumer_byte_rate=0.5 --entity-type clients --entity-name "$client" >"$WORK/bad" 2>&1 \
    && [ -z "$(errors_in "$WORK/bad")" ]; then
    cat "$WORK/bad" >&2; fail "consumer_byte_rate=0.5 (a fractional byte rate) was accepted"
fi
describes_none --entity-type clients --entity-name "$client" || { cat "$WORK/describe" >&2; fail "a refused change set a quota"; }
say "refused: producer_byte_rate=fast and consumer_byte_rate=0.5 ($(errors_in "$WORK/bad" | head -n 1))"

if $secured; then
    acls() { kjava org.apache.kafka.tools.AclCommand --bootstrap-server "$KAFKA_BOOTSTRAP" --command-config "$WORK/admin.properties" "$@"; }
    acls --add --allow-principal User:dave --operation Write --topic "$topic" >"$WORK/acl.log" 2>&1 \
        || { cat "$WORK/acl.log" >&2; fail "AclCommand --add (WRITE for dave) failed"; }
    throttled_and_free "user dave, any client id" --entity-type users --entity-name dave --entity-type clients --entity-default -- \
        "$WORK/dave.properties" "$client" "$client" remove
    acls --remove --force --allow-principal User:dave --operation Write --topic "$topic" >"$WORK/acl.log" 2>&1 \
        || { cat "$WORK/acl.log" >&2; fail "AclCommand --remove failed"; }
else
    throttled_and_free "client-id $client" --entity-type clients --entity-name "$client" -- \
        "$WORK/admin.properties" "$client" "compat-quota-free-$RUN_ID"
fi
