#!/usr/bin/env bash
# An idempotent Java producer (enable.idempotence=true, acks=all) across a
# leader failover: SeqProducer writes sequence-numbered records to an RF=3,
# min.insync.replicas=2 topic; once half are acknowledged the test kills the
# broker leading partition 0 with $KILL_LEADER_CMD <broker-id>. Every send
# must still succeed, leadership must move, and SeqVerifier must read back
# every sequence number exactly once, each key in order: zero duplicates
# (retries of batches the dead leader had already replicated are
# deduplicated) and zero gaps. Then $RESTART_BROKER_CMD <broker-id>, if set,
# brings the broker back and it must rejoin every ISR.
#
# Needs 3 brokers (COMPAT_BROKERS, COMPAT_RF = 3) and KILL_LEADER_CMD;
# exits 77 (skipped) otherwise.
. "$(dirname "$0")/lib.sh"

if [ "$COMPAT_BROKERS" -lt 3 ] || [ "$COMPAT_RF" -lt 3 ] || [ -z "${KILL_LEADER_CMD:-}" ]; then
    echo "SKIP: needs 3 brokers, COMPAT_RF=3 and KILL_LEADER_CMD (have $COMPAT_BROKERS brokers, RF $COMPAT_RF)"
    exit 77
fi
COUNT="${COMPAT_FAILOVER_RECORDS:-60000}"
RATE="${COMPAT_FAILOVER_RATE:-6000}"
PRODUCE_TIMEOUT="${COMPAT_FAILOVER_PRODUCE_TIMEOUT:-180}"
topic="compat-failover-$RUN_ID"
tc() { kjava org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA_BOOTSTRAP" "$@"; }
tc --create --topic "$topic" --partitions 3 --replication-factor 3 --config min.insync.replicas=2 \
    || fail "TopicCommand --create failed"

# leader_of P: the leader broker id of partition P as TopicCommand shows it.
leader_of() {
    tc --describe --topic "$topic" 2>/dev/null \
        | sed -nE "s/.*Partition: $1[[:space:]]+Leader: (-?[0-9]+).*/\1/p"
}
isr_of() {
    tc --describe --topic "$topic" 2>/dev/null \
        | sed -nE "s/.*Partition: $1[[:space:]].*Isr: ([0-9,]*).*/\1/p"
}
full_isr() { [ "$(isr_of "$1" | tr ',' '\n' | grep -c .)" -eq 3 ]; }
wait_until "partition 0 to have 3 in-sync replicas" 30 full_isr 0
leader=$(leader_of 0)
[[ "$leader" =~ ^[0-9]+$ ]] || fail "no leader for partition 0 (got '$leader')"
say "partition 0 is led by broker $leader"

kjava dev.rill.compat.SeqProducer --topic "$topic" --count "$COUNT" --rate "$RATE" --midpoint "$((COUNT / 3))" \
    >"$WORK/producer.out" 2>"$WORK/producer.err" &
producer=$!
wait_until "the producer to have a third of its records acknowledged" 60 grep -q MIDPOINT "$WORK/producer.out"
kill -0 "$producer" 2>/dev/null || fail "the producer finished before the kill: lower COMPAT_FAILOVER_RATE"
say "$(grep MIDPOINT "$WORK/producer.out"); killing broker $leader"
$KILL_LEADER_CMD "$leader" || fail "KILL_LEADER_CMD $leader failed"
killed_at=$SECONDS

moved() { local l; l=$(leader_of 0); [[ "$l" =~ ^[0-9]+$ ]] && [ "$l" != "$leader" ]; }
wait_until "partition 0 to get a new leader" 60 moved
say "partition 0 is now led by broker $(leader_of 0) ($((SECONDS - killed_at))s after the kill)"

deadline=$((SECONDS + PRODUCE_TIMEOUT))
while kill -0 "$producer" 2>/dev/null; do
    [ "$SECONDS" -lt "$deadline" ] || { kill "$producer"; fail "producer still running after ${PRODUCE_TIMEOUT}s"; }
    sleep 0.2
done
status=0; wait "$producer" || status=$?
say "producer finished $((SECONDS - killed_at))s after the kill"
cat "$WORK/producer.out" | grep -E 'RESULT|FIRST_ERROR' || true
if [ "$status" -ne 0 ]; then
    tail -20 "$WORK/producer.err" >&2
    fail "the idempotent producer did not get every record acknowledged (exit $status)"
fi
kjava dev.rill.compat.SeqVerifier --topic "$topic" --count "$COUNT" || fail "read-back found duplicates, gaps or reordering (above)"
say "all $COUNT records present exactly once, in order per key"

if [ -n "${RESTART_BROKER_CMD:-}" ]; then
    $RESTART_BROKER_CMD "$leader" || fail "RESTART_BROKER_CMD $leader failed"
    rejoined() { full_isr 0 && full_isr 1 && full_isr 2; }
    wait_until "restarted broker $leader to rejoin every ISR" 90 rejoined
    say "broker $leader restarted and rejoined every ISR"
fi
