#!/usr/bin/env bash
# kafka-transactions (org.apache.kafka.tools.TransactionsCommand) and
# transaction timeouts, on a 3-partition topic:
#   1. producer H (transaction.timeout.ms=60000) begins a transaction, sends
#      two records to partition 0, flushes and stays open: `list` shows its
#      transactional id Ongoing; `describe --transactional-id` shows it
#      Ongoing with partition 0 and a coordinator broker id;
#      `describe-producers --topic --partition 0` shows its producer id with
#      the transaction's first offset as CurrentTransactionStartOffset.
#   2. producer S (transaction.timeout.ms=SHORT_TIMEOUT_MS) begins a
#      transaction on partition 1, sends, flushes and is SIGKILLed; producer C
#      then commits a transaction with one record on partition 0 and one on
#      partition 1. While S's transaction is open a read_committed consumer
#      reads nothing (both partitions' last stable offsets are held); the
#      coordinator aborts S's transaction (describe shows CompleteAbort)
#      within ABORT_TIMEOUT seconds of the kill, after which read_committed
#      reads C's record on partition 1 and none of S's records.
#   3. H is SIGKILLed; `find-hanging --broker-id` (the leader of partition 0)
#      runs and its output is shown; `abort --topic --partition 0
#      --start-offset` with H's first offset aborts H's transaction, and
#      read_committed then reads C's record on partition 0 and none of H's,
#      before H's own 60 s timeout could have ended it.
#
# Timeouts: SHORT_TIMEOUT_MS, S's transaction.timeout.ms; ABORT_TIMEOUT (s),
# the bound for the coordinator to abort S after the kill (its timeout plus
# the coordinator's check interval, 1 s on the Kafka launcher, plus slack);
# HOLD_TIMEOUT_MS, H's transaction.timeout.ms, which must not pass before the
# abort in step 3 is checked; START_TIMEOUT (s), for a producer to open its
# transaction.
. "$(dirname "$0")/lib.sh"

HOLD_TIMEOUT_MS=60000
SHORT_TIMEOUT_MS="${COMPAT_TXN_SHORT_TIMEOUT_MS:-8000}"
ABORT_TIMEOUT="${COMPAT_TXN_ABORT_TIMEOUT:-$(( SHORT_TIMEOUT_MS / 1000 + 20 ))}"
START_TIMEOUT="${COMPAT_TXN_START_TIMEOUT:-60}"

topic="compat-txtools-$RUN_ID"
hold_id="compat-txtools-hold-$RUN_ID"; short_id="compat-txtools-short-$RUN_ID"; after_id="compat-txtools-after-$RUN_ID"
kjava org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA_BOOTSTRAP" --create --topic "$topic" \
    --partitions 3 --replication-factor "$COMPAT_RF" || fail "creating $topic failed"
txtool() { kjava org.apache.kafka.tools.TransactionsCommand --bootstrap-server "$KAFKA_BOOTSTRAP" "$@"; }
# field FILE KEYCOL KEY COL: in a tool's table, column COL of the row whose
# column KEYCOL is KEY (KEYCOL's header line starts the table).
field() {
    awk -v kc="$2" -v k="$3" -v c="$4" '
        !hdr { for (i = 1; i <= NF; i++) if ($i == kc) { hdr = 1; for (j = 1; j <= NF; j++) h[$j] = j; next } next }
        $h[kc] == k { print $h[c]; exit }' "$1"
}
pids=()
trap 'for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done; rm -rf "$WORK"' EXIT
# open_txn NAME ID TIMEOUT_MS FIRST_TXN PARTITION: a producer that opens a
# transaction of two records on PARTITION and holds it; waits for its OPEN.
open_txn() {
    kjava_bg "$WORK/$1.out" "$WORK/$1.err" dev.rill.compat.TxnProducer --topic "$topic" --transactional-id "$2" \
        --timeout-ms "$3" --first-txn "$4" --txns 1 --records 2 --partitions 1 --partition-base "$5" --hold true
    pids+=($!)
    eval "$1_pid=$!"
    local pid=$!
    opened() { grep -q '^OPEN' "$WORK/$1.out" || ! kill -0 "$2" 2>/dev/null; }
    wait_until "producer $1 to open its transaction" "$START_TIMEOUT" opened "$1" "$pid"
    grep -q '^OPEN' "$WORK/$1.out" || { tail -10 "$WORK/$1.err" >&2; fail "producer $1 exited: $(tail -2 "$WORK/$1.out")"; }
}
# rc_partition P: the values read_committed reads from partition P.
rc_partition() {
    kjava dev.rill.compat.TopicDump --topic "$topic" --isolation read_committed >"$WORK/rc" 2>"$WORK/rc.err" \
        || { tail -5 "$WORK/rc.err" >&2; fail "TopicDump failed"; }
    awk -F'\t' -v p="$1" '$1 == p { print $4 }' "$WORK/rc" | sort | tr '\n' ' '
}

# --- 1. an open transaction seen by list, describe, describe-producers --------
open_txn hold "$hold_id" "$HOLD_TIMEOUT_MS" 100 0
hold_opened=$SECONDS
hold_offset=$(sed -nE 's/^OPEN t100 0@([0-9]+).*/\1/p' "$WORK/hold.out")
say "producer H: $(grep '^OPEN' "$WORK/hold.out") (transaction t100 open on partition 0 at offset $hold_offset)"

txtool list >"$WORK/list" 2>"$WORK/list.err" || { cat "$WORK/list.err" >&2; fail "kafka-transactions list failed"; }
grep -E "^TransactionalId|^$hold_id[[:space:]]" "$WORK/list"
state=$(field "$WORK/list" TransactionalId "$hold_id" TransactionState)
[ "$state" = Ongoing ] || fail "list must show $hold_id Ongoing; it shows '${state:-no row}'"

txtool describe --transactional-id "$hold_id" >"$WORK/describe" 2>"$WORK/describe.err" \
    || { cat "$WORK/describe.err" >&2; fail "kafka-transactions describe failed"; }
cat "$WORK/describe"
state=$(field "$WORK/describe" TransactionalId "$hold_id" TransactionState)
parts=$(field "$WORK/describe" TransactionalId "$hold_id" TopicPartitions)
coordinator=$(field "$WORK/describe" TransactionalId "$hold_id" CoordinatorId)
producer_id=$(field "$WORK/describe" TransactionalId "$hold_id" ProducerId)
[ "$state" = Ongoing ] || fail "describe must show $hold_id Ongoing; it shows '${state:-no row}'"
[ "$parts" = "$topic-0" ] || fail "describe must show the transaction's partition $topic-0; it shows '$parts'"
[[ "$coordinator" =~ ^[0-9]+$ ]] || fail "describe must show a coordinator broker id; it shows '$coordinator'"
[[ "$producer_id" =~ ^[0-9]+$ ]] || fail "describe must show a producer id; it shows '$producer_id'"

txtool describe-producers --topic "$topic" --partition 0 >"$WORK/producers" 2>"$WORK/producers.err" \
    || { cat "$WORK/producers.err" >&2; fail "kafka-transactions describe-producers failed"; }
cat "$WORK/producers"
start=$(field "$WORK/producers" ProducerId "$producer_id" CurrentTransactionStartOffset)
[ "$start" = "$hold_offset" ] \
    || fail "describe-producers must show producer $producer_id with CurrentTransactionStartOffset $hold_offset; it shows '${start:-no row}'"
say "list, describe (coordinator $coordinator, producer $producer_id) and describe-producers (start offset $start) show H's open transaction"

# --- 2. a killed producer's transaction aborted by its timeout ----------------
open_txn short "$short_id" "$SHORT_TIMEOUT_MS" 200 1
kill -KILL "$short_pid"; wait "$short_pid" 2>/dev/null || true
killed_at=$SECONDS
say "producer S (transaction.timeout.ms=$SHORT_TIMEOUT_MS): $(grep '^OPEN' "$WORK/short.out"), SIGKILLed"
kjava dev.rill.compat.TxnProducer --topic "$topic" --transactional-id "$after_id" --first-txn 300 --txns 1 \
    --records 2 --partitions 2 >"$WORK/after.out" 2>"$WORK/after.err" \
    || { tail -10 "$WORK/after.err" >&2; fail "producer C failed: $(tail -2 "$WORK/after.out")"; }
grep -q '^COMMITTED t300 ' "$WORK/after.out" || fail "producer C did not commit: $(cat "$WORK/after.out")"
held=$(rc_partition 1)
txtool describe --transactional-id "$short_id" >"$WORK/short-describe" 2>&1 || true
if [ "$(field "$WORK/short-describe" TransactionalId "$short_id" TransactionState)" = Ongoing ]; then
    [ -z "$held" ] || fail "while S's transaction is open, read_committed must read nothing of partition 1; it reads: $held"
    [ -z "$(rc_partition 0)" ] || fail "while H's transaction is open, read_committed must read nothing of partition 0; it reads: $(rc_partition 0)"
    say "C committed t300; read_committed reads nothing of partitions 0 and 1 while H and S are open ($((SECONDS - killed_at))s after the kill)"
else
    say "C committed t300; S's transaction already ended when checked ($((SECONDS - killed_at))s after the kill): the held read was not checked"
fi
aborted() {
    txtool describe --transactional-id "$short_id" >"$WORK/short-describe" 2>&1 || return 1
    [ "$(field "$WORK/short-describe" TransactionalId "$short_id" TransactionState)" = CompleteAbort ]
}
wait_until "the coordinator to abort S's transaction after its timeout (ABORT_TIMEOUT)" "$ABORT_TIMEOUT" aborted
say "the coordinator aborted S's transaction: describe shows CompleteAbort $((SECONDS - killed_at))s after the kill (timeout ${SHORT_TIMEOUT_MS} ms)"
got=$(rc_partition 1)
[ "$got" = "t300-r1 " ] || fail "after S's abort read_committed must read exactly C's t300-r1 from partition 1, none of S's t200-*; it reads: '$got'"
got=$(rc_partition 0)
[ -z "$got" ] || fail "H's transaction is still open: read_committed must read nothing of partition 0; it reads: $got"
say "read_committed now reads C's record on partition 1 and none of S's; partition 0 is still held by H"

# --- 3. find-hanging, and abort with the tool ----------------------------------
kill -KILL "$hold_pid"; wait "$hold_pid" 2>/dev/null || true
say "producer H SIGKILLed"
leader=$(kjava org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA_BOOTSTRAP" --describe --topic "$topic" \
    | sed -nE 's/.*Partition: 0[[:space:]]+Leader: ([0-9]+).*/\1/p')
[[ "$leader" =~ ^[0-9]+$ ]] || fail "no leader for partition 0 (got '$leader')"
txtool find-hanging --broker-id "$leader" >"$WORK/hanging" 2>"$WORK/hanging.err" \
    || { cat "$WORK/hanging.err" >&2; fail "kafka-transactions find-hanging --broker-id $leader failed"; }
say "find-hanging --broker-id $leader:"
cat "$WORK/hanging"
grep -q 'Topic' "$WORK/hanging" || fail "find-hanging printed no table header"
txtool abort --topic "$topic" --partition 0 --start-offset "$hold_offset" >"$WORK/abort" 2>"$WORK/abort.err" \
    || { cat "$WORK/abort" "$WORK/abort.err" >&2; fail "kafka-transactions abort --topic $topic --partition 0 --start-offset $hold_offset failed"; }
say "abort --partition 0 --start-offset $hold_offset returned"
got=$(rc_partition 0)
elapsed=$((SECONDS - hold_opened))
[ "$got" = "t300-r0 " ] || fail "after the abort read_committed must read exactly C's t300-r0 from partition 0, none of H's t100-*; it reads: '$got'"
[ "$elapsed" -lt $((HOLD_TIMEOUT_MS / 1000)) ] \
    || fail "the abort was checked ${elapsed}s after H opened its transaction, past its ${HOLD_TIMEOUT_MS} ms timeout: the coordinator may have aborted it instead"
txtool describe-producers --topic "$topic" --partition 0 >"$WORK/producers" 2>&1 || true
start=$(field "$WORK/producers" ProducerId "$producer_id" CurrentTransactionStartOffset)
[ "$start" = None ] || fail "after the abort describe-producers must show no open transaction for producer $producer_id; it shows '$start'"
say "the tool's abort moved partition 0's last stable offset on (${elapsed}s after H opened, within its timeout): read_committed reads C's record and none of H's"
