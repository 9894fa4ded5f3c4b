#!/usr/bin/env bash
# librdkafka (confluent-kafka, Python) with group.protocol=consumer (KIP-848):
# compat/python/consumer_protocol.py runs two members of one group on a
# 6-partition topic while a producer writes to it: member a joins and owns
# all 6 partitions; member b joins and each owns a disjoint share of 3;
# a closes and b owns all 6. Members commit after each batch and in their
# revocation callback, so every acknowledged record must be processed
# exactly once (0 lost, 0 duplicates), and the group's committed offsets must
# end at the end offsets. Prints the settle time of each step (see the
# program's docstring for the definition and its named timeouts).
#
# First, ApiVersions (kafka-broker-api-versions) must list
# ConsumerGroupHeartbeat (68) on every broker; the test stops there otherwise.
. "$(dirname "$0")/lib.sh"

kjava org.apache.kafka.tools.BrokerApiVersionsCommand --bootstrap-server "$KAFKA_BOOTSTRAP" >"$WORK/apis" 2>&1 \
    || { tail -5 "$WORK/apis" >&2; fail "kafka-broker-api-versions failed"; }
api='ConsumerGroupHeartbeat(68)'
usable=$(grep -F "$api: " "$WORK/apis" | grep -c 'usable' || true)
[ "$usable" -eq "$COMPAT_BROKERS" ] || fail "ApiVersions must list $api on each of the $COMPAT_BROKERS brokers; listed usable on $usable ($(grep -m1 -F "$api: " "$WORK/apis" | tr -d '\t,' || echo "absent from the response"))"
say "ApiVersions: $api on all $COMPAT_BROKERS brokers"

rc=0
"$PY" "$COMPAT_DIR/python/consumer_protocol.py" >"$WORK/out" 2>"$WORK/err" || rc=$?
grep -E '^(SETTLE|SHARES|RESULT|NOTE|  )' "$WORK/out" || true
if ! grep -qx OK "$WORK/out"; then
    { grep -E '^(START|ASSIGNED|REVOKED|LOST|CLOSED)' "$WORK/out" || true; } | tail -20 >&2
    tail -5 "$WORK/err" >&2
    fail "$(grep -m1 '^FAIL' "$WORK/out" | sed 's/^FAIL: //' || echo "consumer_protocol.py exited $rc without a verdict")"
fi
say "librdkafka group.protocol=consumer: disjoint shares, then one member owns all; every record processed exactly once"
