#!/usr/bin/env bash
# Clients with TLS client certificates (mTLS) against a cluster started
# with a launcher's --security mtls (client certificates for alice and bob
# signed by the launcher's CA, required by every Kafka listener):
#   - Kafka's TopicCommand creates a topic as bob; kcat (librdkafka)
#     produces and consumes as alice; Kafka's ConsoleProducer and
#     ConsoleConsumer (group) do the same with a PEM keystore;
#   - a client without a certificate, one with a certificate from another
#     CA and a plaintext client are all refused, quickly.
. "$(dirname "$0")/lib.sh"
# shellcheck source=compat/security-lib.sh
. "$COMPAT_DIR/security-lib.sh"

[ "${KAFKA_SECURITY:-plaintext}" = mtls ] || { echo "SKIP: the cluster is not started with --security mtls"; exit 77; }
: "${KAFKA_CA_FILE:?}"
pki=$(dirname "$KAFKA_CA_FILE")

# rdk CERT_DIR NAME: kcat's TLS arguments with NAME's certificate.
rdk() { echo "-X security.protocol=SSL -X ssl.ca.location=$KAFKA_CA_FILE -X ssl.certificate.location=$1/$2.crt -X ssl.key.location=$1/$2.key"; }
# java_config NAME FILE: a Java client configuration with NAME's certificate.
java_config() {
    cat >"$2" <<CONF
security.protocol=SSL
ssl.truststore.type=PEM
ssl.truststore.location=$KAFKA_CA_FILE
ssl.keystore.type=PEM
ssl.keystore.location=$pki/$1.pem
CONF
}
java_config alice "$WORK/alice.properties"
java_config bob "$WORK/bob.properties"

topic="compat-mtls-$RUN_ID"
kjava org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA_BOOTSTRAP" --command-config "$WORK/bob.properties" \
    --create --topic "$topic" --partitions 3 --replication-factor "$COMPAT_RF" >"$WORK/create.log" 2>&1 \
    || { cat "$WORK/create.log" >&2; fail "TopicCommand --create with bob's certificate failed"; }
say "TopicCommand created $topic with bob's client certificate"

N=3000
for ((i = 0; i < N; i++)); do printf 'k%d\tmtls record %d\n' "$((i % 50))" "$i"; done >"$WORK/in"
# shellcheck disable=SC2046
kcat -P -b "$KAFKA_BOOTSTRAP" $(rdk "$pki" alice) -t "$topic" -K $'\t' -X enable.idempotence=true \
    <"$WORK/in" 2>"$WORK/produce.err" || { cat "$WORK/produce.err" >&2; fail "kcat produce with alice's certificate failed"; }
grep -E '^% ERROR|^%[0-3]\|' "$WORK/produce.err" && fail "kcat produce reported errors"
# shellcheck disable=SC2046
timeout 60 kcat -C -b "$KAFKA_BOOTSTRAP" $(rdk "$pki" alice) -t "$topic" -o beginning -e -q -f '%k\t%s\n' \
    >"$WORK/out" 2>"$WORK/consume.err" || { cat "$WORK/consume.err" >&2; fail "kcat consume with alice's certificate failed"; }
sort "$WORK/in" >"$WORK/want"; sort "$WORK/out" >"$WORK/got"
cmp -s "$WORK/want" "$WORK/got" || { show_diff "$WORK/want" "$WORK/got"; fail "kcat read $(wc -l <"$WORK/got") records back, produced $N"; }
say "kcat: $N records produced and read back with alice's client certificate"

head -n 500 "$WORK/in" | tr '\t' ':' >"$WORK/java-in"
kjava org.apache.kafka.tools.ConsoleProducer --bootstrap-server "$KAFKA_BOOTSTRAP" --command-config "$WORK/alice.properties" \
    --topic "$topic" --request-required-acks all --reader-property parse.key=true --reader-property key.separator=: \
    <"$WORK/java-in" 2>"$WORK/java-produce.err" || { cat "$WORK/java-produce.err" >&2; fail "ConsoleProducer with a client certificate failed"; }
grep -E 'ERROR|Exception' "$WORK/java-produce.err" && fail "ConsoleProducer reported errors (above)"
kjava org.apache.kafka.tools.consumer.ConsoleConsumer --bootstrap-server "$KAFKA_BOOTSTRAP" --command-config "$WORK/alice.properties" \
    --topic "$topic" --group "compat-mtls-$RUN_ID" --from-beginning --max-messages $((N + 500)) --timeout-ms 30000 \
    >"$WORK/java-out" 2>"$WORK/java-consume.err" || { cat "$WORK/java-consume.err" >&2; fail "ConsoleConsumer with a client certificate failed"; }
[ "$(wc -l <"$WORK/java-out")" -eq $((N + 500)) ] || fail "ConsoleConsumer read $(wc -l <"$WORK/java-out") records, expected $((N + 500))"
say "Java ConsoleProducer and ConsoleConsumer (group) with a PEM keystore: $((N + 500)) records"

# refused WHAT ARGS...: kcat -L with ARGS fails within 20 s.
refused() {
    local what=$1 t0=$SECONDS rc=0; shift
    timeout 20 kcat -L -b "$KAFKA_BOOTSTRAP" "$@" -m 5 >"$WORK/refused" 2>&1 || rc=$?
    [ "$rc" -ne 0 ] || { cat "$WORK/refused" >&2; fail "$what got metadata"; }
    [ "$rc" -ne 124 ] || fail "$what hung"
    say "$what refused in $((SECONDS - t0))s: $(grep -m1 -oE 'SSL handshake failed[^(]*|Disconnected[^(]*|certificate[^(]*' "$WORK/refused" || echo "kcat exit $rc")"
}
refused "a client without a certificate" -X security.protocol=SSL -X ssl.ca.location="$KAFKA_CA_FILE"
make_pki "$WORK/foreign" mallory
# shellcheck disable=SC2046
refused "a client with a certificate from another CA" $(rdk "$WORK/foreign" mallory)
refused "a plaintext client" -X security.protocol=plaintext
