#!/usr/bin/env bash
# Transactions with the Java client. TxnProducer (transactional.id, acks=all)
# writes TXNS transactions of RECORDS records each over the 3 partitions of a
# topic, values "t<i>-r<j>", and aborts every ABORT_EVERY-th one (i % 3 == 2),
# printing which. Then, read with TopicDump from the first offset:
#   - read_committed finds exactly the committed transactions' records, none
#     of the aborted ones, each partition in the order they were sent;
#   - read_uncommitted finds every record, committed and aborted, in order.
# TxnChecks then proves, on topics of their own:
#   - open: a transaction sent and flushed but not committed holds the
#     read_committed end offsets at its first offset (the last stable offset)
#     and none of its records is read, while read_uncommitted reads them;
#     after the commit it is visible;
#   - fencing: a second producer with the same transactional.id fences the
#     first (ProducerFencedException or InvalidProducerEpochException on its
#     next send or commit); the fenced producer's records are in the log but
#     never read by read_committed; the second producer's transaction is.
#
# Timeouts: READ_TIMEOUT (s) bounds each read and client call, and the wait
# before reading for the last commit's markers (a commit returns before
# they are written; the reads start once the read_committed end offsets
# equal the read_uncommitted ones);
# QUIET_MS is how long a read_committed consumer keeps polling past the last
# stable offset to see that nothing more arrives.
. "$(dirname "$0")/lib.sh"

TXNS="${COMPAT_TXN_COUNT:-30}"
RECORDS="${COMPAT_TXN_RECORDS:-6}"
ABORT_EVERY=3
READ_TIMEOUT="${COMPAT_TXN_READ_TIMEOUT:-60}"
QUIET_MS="${COMPAT_TXN_QUIET_MS:-2000}"

topic="compat-txn-$RUN_ID"
tc() { kjava org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA_BOOTSTRAP" "$@"; }
for t in "$topic" "$topic-open" "$topic-fencing"; do
    tc --create --topic "$t" --partitions 3 --replication-factor "$COMPAT_RF" || fail "creating $t failed"
done

kjava dev.rill.compat.TxnProducer --topic "$topic" --transactional-id "compat-txn-$RUN_ID" --txns "$TXNS" \
    --records "$RECORDS" --partitions 3 --abort-every "$ABORT_EVERY" >"$WORK/producer.out" 2>"$WORK/producer.err" \
    || { tail -20 "$WORK/producer.err" >&2; cat "$WORK/producer.out" >&2; fail "TxnProducer failed"; }
grep RESULT "$WORK/producer.out"
committed=$(grep -c '^COMMITTED ' "$WORK/producer.out" || true)
aborted=$(grep -c '^ABORTED ' "$WORK/producer.out" || true)
[ "$committed" -eq $((TXNS - TXNS / ABORT_EVERY)) ] && [ "$aborted" -eq $((TXNS / ABORT_EVERY)) ] \
    || fail "the producer reports $committed committed and $aborted aborted transactions, expected $((TXNS - TXNS / ABORT_EVERY)) and $((TXNS / ABORT_EVERY)) (every ${ABORT_EVERY}rd aborted)"
grep -q 'ABORTED .* after' "$WORK/producer.out" && fail "a transaction failed: $(grep -m1 'ABORTED .* after' "$WORK/producer.out")"
say "producer: $TXNS transactions of $RECORDS records, $committed committed, $aborted aborted"

# expect STATES: "partition<TAB>value" in send order per partition, for the
# transactions whose line in the producer's output starts with one of STATES.
expect() {
    awk -v states="$1" -v k="$RECORDS" '
        BEGIN { n = split(states, s, "|"); for (i = 1; i <= n; i++) want[s[i]] = 1 }
        ($1 in want) { for (j = 0; j < k; j++) print j % 3 "\t" $2 "-r" j }' "$WORK/producer.out" \
        | sort -s -n -k1,1
}
# dump ISOLATION: what a consumer with that isolation level reads, as
# "partition<TAB>value", each partition in offset order.
dump() {
    kjava dev.rill.compat.TopicDump --topic "$topic" --isolation "$1" --timeout-s "$READ_TIMEOUT" --wait-stable-s "$READ_TIMEOUT" \
        >"$WORK/dump-$1" 2>"$WORK/dump-$1.err" || { tail -5 "$WORK/dump-$1.err" >&2; fail "TopicDump --isolation $1 failed"; }
    sort -s -n -k1,1 -k2,2 "$WORK/dump-$1" | cut -f1,4
}
expect 'COMMITTED' >"$WORK/want-rc"
dump read_committed >"$WORK/got-rc"
if ! cmp -s "$WORK/want-rc" "$WORK/got-rc"; then
    show_diff "$WORK/want-rc" "$WORK/got-rc" 20
    fail "read_committed must read exactly the $committed committed transactions' records in order per partition ($(wc -l <"$WORK/want-rc") records); read $(wc -l <"$WORK/got-rc"), of which $(grep -cFf <(expect ABORTED | cut -f2) "$WORK/got-rc" || true) aborted (diff above: < expected, > read)"
fi
say "read_committed: $(wc -l <"$WORK/got-rc") records, exactly the committed ones, in order per partition"
expect 'COMMITTED|ABORTED' >"$WORK/want-ru"
dump read_uncommitted >"$WORK/got-ru"
if ! cmp -s "$WORK/want-ru" "$WORK/got-ru"; then
    show_diff "$WORK/want-ru" "$WORK/got-ru" 20
    fail "read_uncommitted must read all $(wc -l <"$WORK/want-ru") records, committed and aborted, in order per partition; read $(wc -l <"$WORK/got-ru") (diff above: < expected, > read)"
fi
say "read_uncommitted: $(wc -l <"$WORK/got-ru") records, committed and aborted, in order per partition"

checks() {
    local check=$1
    kjava dev.rill.compat.TxnChecks --check "$check" --topic "$topic-$check" --partitions 3 \
        --transactional-id "compat-txn-$check-$RUN_ID" --timeout-s "$READ_TIMEOUT" --quiet-ms "$QUIET_MS" \
        >"$WORK/check-$check.out" 2>"$WORK/check-$check.err" || true
    sed 's/^/    /' "$WORK/check-$check.out"
    grep -qx OK "$WORK/check-$check.out" || {
        tail -20 "$WORK/check-$check.err" >&2
        fail "$check: $(grep -m1 '^FAIL' "$WORK/check-$check.out" | sed 's/^FAIL: //' || echo "TxnChecks exited without a verdict")"
    }
}
checks open
say "open transaction: invisible to read_committed (end offsets held at the last stable offset) until committed"
checks fencing
say "fencing: the zombie producer was fenced, its records never read by read_committed"
