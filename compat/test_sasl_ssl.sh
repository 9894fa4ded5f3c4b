#!/usr/bin/env bash
# Clients over SASL_SSL against a secured cluster (a launcher's --security
# sasl_ssl: TLS with the launcher's CA, SCRAM-SHA-512, SCRAM-SHA-256 and
# PLAIN with compat/security-lib.sh's users):
#   - librdkafka (confluent-kafka) produces with SCRAM-SHA-256 and consumes
#     in a group with SCRAM-SHA-512: every record comes back;
#   - kcat (Debian's librdkafka) lists metadata, produces and consumes with
#     PLAIN (its librdkafka predates the SCRAM nonce fix of 2.6.1, which
#     Kafka 4 and Rill both require);
#   - Kafka's TopicCommand, ConsoleProducer and ConsoleConsumer (the Java
#     client) with SCRAM-SHA-512;
#   - a wrong password and an unknown user are refused with an
#     authentication error (SCRAM and PLAIN);
#   - a plaintext client and a SASL_PLAINTEXT client on the TLS port are
#     closed, not left hanging;
#   - the broker certificate is rotated while ProducerPerformance writes:
#     new connections get the new certificate and the producer sees no error.
. "$(dirname "$0")/lib.sh"
# shellcheck source=compat/security-lib.sh
. "$COMPAT_DIR/security-lib.sh"

[ "${KAFKA_SECURITY:-plaintext}" = sasl_ssl ] || { echo "SKIP: the cluster is not started with --security sasl_ssl"; exit 77; }
: "${KAFKA_CA_FILE:?}"
password_of() { local pair; for pair in $COMPAT_SASL_USERS; do [ "${pair%%:*}" = "$1" ] && echo "${pair#*:}"; done; }

# rdk USER MECHANISM [PASSWORD]: kcat's security arguments.
rdk() {
    local password=${3:-$(password_of "$1")}
    echo "-X security.protocol=SASL_SSL -X ssl.ca.location=$KAFKA_CA_FILE -X sasl.mechanisms=$2" \
         "-X sasl.username=$1 -X sasl.password=$password"
}
# java_config USER MECHANISM FILE: a Java client configuration file.
java_config() {
    local module=org.apache.kafka.common.security.scram.ScramLoginModule
    [ "$2" = PLAIN ] && module=org.apache.kafka.common.security.plain.PlainLoginModule
    cat >"$3" <<CONF
security.protocol=SASL_SSL
sasl.mechanism=$2
sasl.jaas.config=$module required username="$1" password="$(password_of "$1")";
ssl.truststore.type=PEM
ssl.truststore.location=$KAFKA_CA_FILE
CONF
}
java_config admin SCRAM-SHA-512 "$WORK/admin.properties"
java_config alice SCRAM-SHA-512 "$WORK/alice.properties"

topic="compat-sasl-$RUN_ID"
kjava org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA_BOOTSTRAP" --command-config "$WORK/admin.properties" \
    --create --topic "$topic" --partitions 3 --replication-factor "$COMPAT_RF" >"$WORK/create.log" 2>&1 \
    || { cat "$WORK/create.log" >&2; fail "TopicCommand --create over SASL_SSL failed"; }
say "TopicCommand created $topic over SASL_SSL (SCRAM-SHA-512)"
# Every right on topics and groups for alice and bob (the cluster enforces
# ACLs; admin is its super user).
kjava org.apache.kafka.tools.AclCommand --bootstrap-server "$KAFKA_BOOTSTRAP" --command-config "$WORK/admin.properties" \
    --add --allow-principal User:alice --allow-principal User:bob --operation All \
    --topic '*' --group '*' >"$WORK/acls.log" 2>&1 || { cat "$WORK/acls.log" >&2; fail "AclCommand --add failed"; }
say "AclCommand: alice and bob may do everything on topics and groups"

"$PY" "$COMPAT_DIR/sasl_client.py" roundtrip "$topic" 2000 >"$WORK/scram.log" 2>&1 \
    || { cat "$WORK/scram.log" >&2; fail "confluent-kafka over SASL_SSL with SCRAM failed"; }
say "confluent-kafka: $(tail -n 1 "$WORK/scram.log")"

# shellcheck disable=SC2046
kcat -L -b "$KAFKA_BOOTSTRAP" $(rdk alice PLAIN) -t "$topic" -m 15 >"$WORK/metadata" 2>&1 \
    || { cat "$WORK/metadata" >&2; fail "kcat -L with PLAIN failed"; }
grep -q "$COMPAT_BROKERS brokers:" "$WORK/metadata" || { cat "$WORK/metadata" >&2; fail "kcat -L does not list $COMPAT_BROKERS brokers"; }
say "kcat -L over SASL_SSL with PLAIN lists $COMPAT_BROKERS brokers"

N=3000
for ((i = 0; i < N; i++)); do printf 'k%d\tsecured record %d\n' "$((i % 50))" "$i"; done >"$WORK/in"
# shellcheck disable=SC2046
kcat -P -b "$KAFKA_BOOTSTRAP" $(rdk bob PLAIN) -t "$topic" -K $'\t' -X enable.idempotence=true \
    <"$WORK/in" 2>"$WORK/produce.err" || { cat "$WORK/produce.err" >&2; fail "kcat produce with PLAIN failed"; }
grep -E '^% ERROR|^%[0-3]\|' "$WORK/produce.err" && fail "kcat produce reported errors"
# shellcheck disable=SC2046
timeout 60 kcat -C -b "$KAFKA_BOOTSTRAP" $(rdk alice PLAIN) -t "$topic" -o beginning -e -q -f '%k\t%s\n' \
    >"$WORK/out" 2>"$WORK/consume.err" || { cat "$WORK/consume.err" >&2; fail "kcat consume with PLAIN failed"; }
grep 'secured record' "$WORK/out" | sort >"$WORK/got"; sort "$WORK/in" >"$WORK/want"
cmp -s "$WORK/want" "$WORK/got" || { show_diff "$WORK/want" "$WORK/got"; fail "kcat read $(wc -l <"$WORK/got") records back, produced $N"; }
say "kcat: $N records produced and read back with PLAIN"

head -n 500 "$WORK/in" | tr '\t' ':' >"$WORK/java-in"
kjava org.apache.kafka.tools.ConsoleProducer --bootstrap-server "$KAFKA_BOOTSTRAP" --command-config "$WORK/alice.properties" \
    --topic "$topic" --request-required-acks all --reader-property parse.key=true --reader-property key.separator=: \
    <"$WORK/java-in" 2>"$WORK/java-produce.err" || { cat "$WORK/java-produce.err" >&2; fail "ConsoleProducer over SASL_SSL failed"; }
grep -E 'ERROR|Exception' "$WORK/java-produce.err" && fail "ConsoleProducer reported errors (above)"
kjava org.apache.kafka.tools.consumer.ConsoleConsumer --bootstrap-server "$KAFKA_BOOTSTRAP" --command-config "$WORK/alice.properties" \
    --topic "$topic" --group "compat-sasl-$RUN_ID" --from-beginning --max-messages $((N + 2500)) --timeout-ms 30000 \
    >"$WORK/java-out" 2>"$WORK/java-consume.err" || { cat "$WORK/java-consume.err" >&2; fail "ConsoleConsumer over SASL_SSL failed"; }
[ "$(wc -l <"$WORK/java-out")" -eq $((N + 2500)) ] || fail "ConsoleConsumer read $(wc -l <"$WORK/java-out") records, expected $((N + 2500))"
say "Java ConsoleProducer and ConsoleConsumer (group) over SASL_SSL with SCRAM-SHA-512: $((N + 2500)) records"

# refused USER MECHANISM PASSWORD: the login fails with an authentication
# error (confluent-kafka for SCRAM, kcat for PLAIN).
refused() {
    local t0=$SECONDS rc=0
    if [ "$2" = PLAIN ]; then
        # shellcheck disable=SC2046
        timeout 20 kcat -L -b "$KAFKA_BOOTSTRAP" $(rdk "$1" "$2" "$3") -m 10 >"$WORK/refused" 2>&1 || rc=$?
        [ "$rc" -ne 0 ] || { cat "$WORK/refused" >&2; fail "$1 with a wrong password ($2) was let in"; }
        grep -qi 'authentication' "$WORK/refused" || { cat "$WORK/refused" >&2; fail "$1 ($2): refused without an authentication error"; }
    else
        timeout 30 "$PY" "$COMPAT_DIR/sasl_client.py" login "$1" "$3" "$2" >"$WORK/refused" 2>&1 || rc=$?
        [ "$rc" -ne 0 ] || { cat "$WORK/refused" >&2; fail "$1 with a wrong password ($2) was let in"; }
        grep -q 'SASL authentication error' "$WORK/refused" || { tail -n 5 "$WORK/refused" >&2; fail "$1 ($2): refused without an authentication error"; }
    fi
    say "$1 ($2, wrong credentials) refused in $((SECONDS - t0))s: $(grep -m1 -oi 'authentication failed[^(]*' "$WORK/refused" || true)"
}
refused alice SCRAM-SHA-512 not-her-password
refused nobody SCRAM-SHA-256 whatever
refused alice PLAIN not-her-password

# plain_refused PROTOCOL: a client speaking PROTOCOL to the TLS port fails
# within 20 s (closed by the broker, not hanging).
plain_refused() {
    local t0=$SECONDS rc=0
    timeout 20 kcat -L -b "$KAFKA_BOOTSTRAP" -X security.protocol="$1" -X sasl.mechanisms=PLAIN \
        -X sasl.username=alice -X sasl.password="$(password_of alice)" -m 5 >"$WORK/plain" 2>&1 || rc=$?
    [ "$rc" -ne 0 ] || { cat "$WORK/plain" >&2; fail "a $1 client got metadata from the TLS port"; }
    [ "$rc" -ne 124 ] || fail "a $1 client hung on the TLS port"
    say "$1 client on the TLS port refused in $((SECONDS - t0))s (kcat exit $rc)"
}
plain_refused plaintext
plain_refused sasl_plaintext

# Rotation under load: ProducerPerformance writes for about 15 s; the
# certificate changes after 3 s.
: "${ROTATE_CERT_CMD:?}"
first_broker=${KAFKA_BOOTSTRAP%%,*}
served_serial() {
    openssl s_client -connect "$first_broker" -CAfile "$KAFKA_CA_FILE" </dev/null 2>/dev/null \
        | openssl x509 -noout -serial 2>/dev/null
}
before=$(served_serial)
[ -n "$before" ] || fail "openssl s_client got no certificate from $first_broker"
kjava org.apache.kafka.tools.ProducerPerformance --bootstrap-server "$KAFKA_BOOTSTRAP" --topic "$topic" --num-records 30000 --throughput 2000 \
    --record-size 200 --producer.config "$WORK/alice.properties" --producer-props acks=all \
    >"$WORK/perf.out" 2>"$WORK/perf.err" &
perf=$!
sleep 3
$ROTATE_CERT_CMD >"$WORK/rotate.log" 2>&1 || { cat "$WORK/rotate.log" >&2; kill "$perf"; fail "rotating the certificate failed"; }
wanted=$(openssl x509 -noout -serial -in "$(dirname "$KAFKA_CA_FILE")/broker.crt")
serves_wanted() { [ "$(served_serial)" = "$wanted" ]; }
wait_until "the broker to serve the rotated certificate" 30 serves_wanted
say "certificate rotated under load: $before -> $wanted served to new connections"
wait "$perf" || { cat "$WORK/perf.err" >&2; fail "ProducerPerformance failed during the rotation"; }
errors="$(errors_in "$WORK/perf.err")"
[ -z "$errors" ] || { cat "$WORK/perf.err" >&2; fail "ProducerPerformance reported errors during the rotation: $errors"; }
grep -q '^30000 records sent' "$WORK/perf.out" || { cat "$WORK/perf.out" "$WORK/perf.err" >&2; fail "ProducerPerformance did not send all 30000 records"; }
say "ProducerPerformance across the rotation: $(grep '^30000 records sent' "$WORK/perf.out")"
"$PY" "$COMPAT_DIR/sasl_client.py" login alice alice-secret SCRAM-SHA-512 >/dev/null 2>&1 \
    || fail "a new SASL_SSL client cannot connect after the rotation"
say "a new SASL_SSL client connects with the rotated certificate"
