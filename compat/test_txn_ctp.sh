#!/usr/bin/env bash
# Consume-transform-produce with exactly-once delivery (Java client):
# SeqProducer (idempotent, acks=all) writes RECORDS records to an input
# topic; TxnCopier, in group G with isolation.level=read_committed, copies
# each poll of at most BATCH records to an output topic inside a transaction
# that also carries the consumed offsets (sendOffsetsToTransaction with the
# consumer's group metadata), pausing PAUSE_MS between writing a
# transaction's copies and committing it. The copier is SIGKILLed KILLS
# times, each time inside that pause (its copies in the log, uncommitted),
# and restarted with the same transactional.id until it has consumed the
# whole input. Then:
#   - the log holds the killed transactions' copies (read_uncommitted reads
#     more than RECORDS records), so the kills did hit open transactions;
#   - a read_committed reader of the output finds every input record exactly
#     once, none missing;
#   - the group's committed offsets (ConsumerGroupCommand --describe) equal
#     the input's end offsets.
# It prints the records copied per run and the time from each kill to the
# restarted copier's first commit.
#
# Timeouts: RUN_TIMEOUT (s), how long one copier run may take to reach its
# next kill point or finish; RECOVER_TIMEOUT (s), from a kill to the
# restarted copier's first commit (the killed member holds the group's
# rebalance for its 6 s session timeout); STABLE_TIMEOUT (s), for the last
# commit's markers to be written (the output's last stable offsets to reach
# its high watermarks) before the output is read.
. "$(dirname "$0")/lib.sh"

RECORDS="${COMPAT_CTP_RECORDS:-2400}"
BATCH="${COMPAT_CTP_BATCH:-40}"
PAUSE_MS="${COMPAT_CTP_PAUSE_MS:-150}"
KILLS=2
RUN_TIMEOUT="${COMPAT_CTP_RUN_TIMEOUT:-120}"
RECOVER_TIMEOUT="${COMPAT_CTP_RECOVER_TIMEOUT:-60}"
STABLE_TIMEOUT="${COMPAT_TXN_STABLE_TIMEOUT:-60}"

in="compat-ctp-in-$RUN_ID"; out="compat-ctp-out-$RUN_ID"; group="compat-ctp-$RUN_ID"; tid="compat-ctp-$RUN_ID"
tc() { kjava org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA_BOOTSTRAP" "$@"; }
tc --create --topic "$in" --partitions 3 --replication-factor "$COMPAT_RF" || fail "creating $in failed"
tc --create --topic "$out" --partitions 3 --replication-factor "$COMPAT_RF" || fail "creating $out failed"
kjava dev.rill.compat.SeqProducer --topic "$in" --count "$RECORDS" >"$WORK/input.out" 2>"$WORK/input.err" \
    || { tail -5 "$WORK/input.err" >&2; fail "SeqProducer did not write the input: $(grep RESULT "$WORK/input.out")"; }
say "input: $(grep RESULT "$WORK/input.out")"

copier=""
trap '[ -z "$copier" ] || kill -KILL "$copier" 2>/dev/null || true; rm -rf "$WORK"' EXIT
start_copier() {
    kjava_bg "$WORK/copier-$1.out" "$WORK/copier-$1.err" dev.rill.compat.TxnCopier --input "$in" --output "$out" \
        --group "$group" --transactional-id "$tid" --batch "$BATCH" --pause-ms "$PAUSE_MS"
    copier=$!
}
copied() { sed -n 's/^COMMITTED txns=[0-9]* records=//p' "$WORK/copier-$1.out" | tail -1; }
# reached RUN N: copier run RUN has committed at least N records and is
# inside a transaction (its last line says SENT), or it ended.
reached() {
    { [ "$(copied "$1")" -ge "$2" ] 2>/dev/null && tail -n 1 "$WORK/copier-$1.out" | grep -q '^SENT'; } \
        || ! kill -0 "$copier" 2>/dev/null
}
committed_once() { grep -q '^COMMITTED' "$WORK/copier-$1.out" || ! kill -0 "$copier" 2>/dev/null; }

run=0
start_copier $run
for ((k = 1; k <= KILLS; k++)); do
    # Each run copies about a third of the input before it is killed.
    wait_until "copier run $run to commit $((RECORDS / (KILLS + 1))) records" "$RUN_TIMEOUT" reached $run $((RECORDS / (KILLS + 1)))
    kill -KILL "$copier" 2>/dev/null || { tail -20 "$WORK/copier-$run.err" >&2; fail "copier run $run ended before its kill: $(tail -2 "$WORK/copier-$run.out" | tr '\n' ' ')"; }
    wait "$copier" 2>/dev/null || true
    killed_at=$SECONDS
    ! grep -q '^FATAL' "$WORK/copier-$run.out" || fail "copier run $run failed before its kill: $(grep -m1 '^FATAL' "$WORK/copier-$run.out")"
    say "copier run $run SIGKILLed after committing $(copied $run) records in $(grep -c '^COMMITTED' "$WORK/copier-$run.out") transactions, inside the next one ($(tail -n 1 "$WORK/copier-$run.out"))"
    run=$((run + 1))
    start_copier $run
    wait_until "restarted copier run $run to commit" "$RECOVER_TIMEOUT" committed_once $run
    grep -q '^COMMITTED' "$WORK/copier-$run.out" || { tail -20 "$WORK/copier-$run.err" >&2; fail "copier run $run ended without a commit: $(tail -2 "$WORK/copier-$run.out" | tr '\n' ' ')"; }
    say "copier run $run committed its first transaction $((SECONDS - killed_at))s after the kill"
done
wait_until "the last copier run to consume the whole input" "$RUN_TIMEOUT" eval '! kill -0 "$copier" 2>/dev/null'
status=0; wait "$copier" || status=$?
copier=""
grep -q '^DONE' "$WORK/copier-$run.out" && [ "$status" -eq 0 ] \
    || { tail -20 "$WORK/copier-$run.err" >&2; fail "the last copier run did not finish cleanly (exit $status): $(tail -2 "$WORK/copier-$run.out" | tr '\n' ' ')"; }
say "last copier run: $(grep '^DONE' "$WORK/copier-$run.out")"
grep -h '^ABORTED' "$WORK"/copier-*.out | head -3 || true

kjava dev.rill.compat.TopicDump --topic "$out" --isolation read_committed --wait-stable-s "$STABLE_TIMEOUT" >"$WORK/rc" 2>"$WORK/rc.err" \
    || { tail -5 "$WORK/rc.err" >&2; fail "TopicDump of $out failed"; }
kjava dev.rill.compat.TopicDump --topic "$out" --isolation read_uncommitted >"$WORK/ru" 2>/dev/null \
    || fail "TopicDump --isolation read_uncommitted of $out failed"
cut -f4 "$WORK/rc" | sort >"$WORK/got"
seq 0 $((RECORDS - 1)) | sed 's/^/copy:/' | sort >"$WORK/want"
if ! cmp -s "$WORK/want" "$WORK/got"; then
    show_diff "$WORK/want" "$WORK/got" 20
    fail "read_committed output must hold each of the $RECORDS inputs exactly once: read $(wc -l <"$WORK/got") records, $(uniq -d "$WORK/got" | wc -l) duplicated, $(comm -23 "$WORK/want" "$WORK/got" | wc -l) missing (diff above: < expected, > read)"
fi
say "output: all $RECORDS inputs exactly once under read_committed"
[ "$(wc -l <"$WORK/ru")" -gt "$RECORDS" ] \
    || fail "the killed transactions' copies must be in the log (read_uncommitted reads more than $RECORDS records); read $(wc -l <"$WORK/ru"): the kills hit no open transaction"
say "the log holds $(wc -l <"$WORK/ru") records: $(( $(wc -l <"$WORK/ru") - RECORDS )) copies written by killed transactions and never read by read_committed"

cgc() { kjava org.apache.kafka.tools.consumer.group.ConsumerGroupCommand --bootstrap-server "$KAFKA_BOOTSTRAP" "$@"; }
cgc --describe --group "$group" >"$WORK/describe" 2>&1 || { cat "$WORK/describe" >&2; fail "ConsumerGroupCommand --describe failed"; }
cat "$WORK/describe"
"$PY" - "$WORK/describe" "$in" "$RECORDS" <<'PY' || fail "the group's committed offsets must equal the input's end offsets (above)"
import sys
lines = open(sys.argv[1]).read().splitlines()
topic, n = sys.argv[2], int(sys.argv[3])
hdr = [i for i, l in enumerate(lines) if "CURRENT-OFFSET" in l and "LOG-END-OFFSET" in l]
if not hdr:
    sys.exit("no header line with CURRENT-OFFSET and LOG-END-OFFSET")
cols = lines[hdr[0]].split()
rows = [dict(zip(cols, l.split())) for l in lines[hdr[0] + 1:] if l.split() and topic in l.split()]
if sorted(int(r["PARTITION"]) for r in rows) != [0, 1, 2]:
    sys.exit(f"rows for partitions {[r.get('PARTITION') for r in rows]}, expected 0..2")
bad = [r for r in rows if r["CURRENT-OFFSET"] != r["LOG-END-OFFSET"]]
total = sum(int(r["LOG-END-OFFSET"]) for r in rows)
for r in bad:
    print(f"partition {r['PARTITION']}: committed {r['CURRENT-OFFSET']}, end offset {r['LOG-END-OFFSET']}")
if total != n:
    print(f"input end offsets add up to {total}, expected {n}")
sys.exit(1 if bad or total != n else 0)
PY
say "group $group: committed offsets equal the input's end offsets ($RECORDS records)"
