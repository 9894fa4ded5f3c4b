#!/usr/bin/env bash
# ConsumerGroupCommand against Rill: a console consumer in group G reads 400
# of 1000 records and commits on exit; `--list` shows G; `--describe --group G`
# shows per partition CURRENT-OFFSET, LOG-END-OFFSET and LAG adding up to
# 400 / 1000 / 600. A second consumer in G then resumes and reads exactly the
# other 600. Then OffsetDelete (`--delete-offsets`): while a consumer of G is
# subscribed to the topic it is refused and every offset stays; once G is
# empty, deleting partition 0's offset removes it and leaves 1 and 2.
. "$(dirname "$0")/lib.sh"

N=1000; FIRST=400
topic="compat-lag-$RUN_ID"; group="compat-lag-$RUN_ID"
kjava org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA_BOOTSTRAP" --create --topic "$topic" \
    --partitions 3 --replication-factor "$COMPAT_RF" || fail "TopicCommand --create failed"
for ((i = 0; i < N; i++)); do printf 'k%d:lag record %d\n' "$i" "$i"; done >"$WORK/in"
kjava org.apache.kafka.tools.ConsoleProducer --bootstrap-server "$KAFKA_BOOTSTRAP" --topic "$topic" \
    --request-required-acks all --reader-property parse.key=true --reader-property key.separator=: \
    <"$WORK/in" || fail "ConsoleProducer failed"

consume() {  # consume MAX OUT: one record per poll, so the committed position is exactly what was read
    kjava org.apache.kafka.tools.consumer.ConsoleConsumer --bootstrap-server "$KAFKA_BOOTSTRAP" --topic "$topic" \
        --group "$group" --from-beginning --max-messages "$1" --timeout-ms 30000 \
        --command-property max.poll.records=1 --command-property enable.auto.commit=true \
        --formatter-property print.key=true --formatter-property key.separator=: >"$2" 2>"$2.err" \
        || { cat "$2.err" >&2; fail "ConsoleConsumer failed"; }
}
consume "$FIRST" "$WORK/out1"
[ "$(wc -l <"$WORK/out1")" -eq "$FIRST" ] \
    || fail "first consumer read $(wc -l <"$WORK/out1") records, expected $FIRST$(errors_in "$WORK/out1.err" | head -1 | sed 's/^/; client error: /')"

cgc() { kjava org.apache.kafka.tools.consumer.group.ConsumerGroupCommand --bootstrap-server "$KAFKA_BOOTSTRAP" "$@"; }
cgc --list >"$WORK/groups" || fail "ConsumerGroupCommand --list failed"
grep -qx "$group" "$WORK/groups" || { cat "$WORK/groups" >&2; fail "--list does not show $group"; }
cgc --describe --group "$group" >"$WORK/describe" 2>&1 || { cat "$WORK/describe" >&2; fail "ConsumerGroupCommand --describe failed"; }
cat "$WORK/describe"
"$PY" - "$WORK/describe" "$topic" "$FIRST" "$N" <<'PY' || fail "ConsumerGroupCommand --describe does not show the expected offsets and lag"
import sys
lines = open(sys.argv[1]).read().splitlines()
topic, first, n = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
hdr = [i for i, l in enumerate(lines) if "CURRENT-OFFSET" in l and "LAG" in l]
if not hdr:
    sys.exit("no header line with CURRENT-OFFSET and LAG")
cols = lines[hdr[0]].split()
rows = [dict(zip(cols, l.split())) for l in lines[hdr[0] + 1:] if l.split() and topic in l.split()]
if sorted(int(r["PARTITION"]) for r in rows) != [0, 1, 2]:
    sys.exit(f"rows for partitions {[r.get('PARTITION') for r in rows]}, expected 0..2")
cur = sum(int(r["CURRENT-OFFSET"]) for r in rows if r["CURRENT-OFFSET"] != "-")
leo = sum(int(r["LOG-END-OFFSET"]) for r in rows)
lag = sum(int(r["LAG"]) for r in rows if r["LAG"] != "-")
bad = [r for r in rows if r["CURRENT-OFFSET"] != "-" and int(r["LAG"]) != int(r["LOG-END-OFFSET"]) - int(r["CURRENT-OFFSET"])]
print(f"CURRENT-OFFSET total {cur} (want {first}), LOG-END-OFFSET total {leo} (want {n}), LAG total {lag} (want {n - first})")
sys.exit(1 if (cur, leo, lag) != (first, n, n - first) or bad else 0)
PY
say "ConsumerGroupCommand shows committed offsets and LAG $((N - FIRST))"

consume "$((N - FIRST))" "$WORK/out2"
sort "$WORK/out1" "$WORK/out2" >"$WORK/got"; sort "$WORK/in" >"$WORK/want"
cmp -s "$WORK/want" "$WORK/got" || { show_diff "$WORK/want" "$WORK/got"; fail "the two consumers together did not read each record exactly once"; }
say "a second consumer in the group resumed at the committed offsets and read the other $((N - FIRST))"

# committed_partitions: the partitions of the topic with a committed offset in G.
committed_partitions() {
    cgc --describe --group "$group" --offsets >"$WORK/offsets" 2>&1 || { cat "$WORK/offsets" >&2; fail "--describe --offsets failed"; }
    awk -v t="$topic" '$2 == t && $4 != "-" { print $3 }' "$WORK/offsets" | sort -n | tr '\n' ' '
}
[ "$(committed_partitions)" = "0 1 2 " ] || { cat "$WORK/offsets" >&2; fail "G must have offsets for partitions 0 1 2 before --delete-offsets"; }

# A member of G subscribed to the topic: the deletion must be refused.
kjava_bg "$WORK/member.out" "$WORK/member.err" org.apache.kafka.tools.consumer.ConsoleConsumer \
    --bootstrap-server "$KAFKA_BOOTSTRAP" --topic "$topic" --group "$group" --timeout-ms 120000
member=$!
trap 'kill "$member" 2>/dev/null || true; rm -rf "$WORK"' EXIT
stable() { cgc --describe --group "$group" --state 2>/dev/null | grep -q Stable; }
wait_until "the consumer to join $group" 60 stable
cgc --delete-offsets --group "$group" --topic "$topic" >"$WORK/refused" 2>&1 || true
cat "$WORK/refused"
grep -qi "subscribed" "$WORK/refused" || fail "--delete-offsets while $group is subscribed to $topic must be refused (GROUP_SUBSCRIBED_TO_TOPIC)"
[ "$(committed_partitions)" = "0 1 2 " ] || { cat "$WORK/offsets" >&2; fail "a refused --delete-offsets removed offsets"; }
kill "$member"; wait "$member" 2>/dev/null || true
say "--delete-offsets refused while a member of $group is subscribed to $topic; offsets kept"

empty() { cgc --describe --group "$group" --state 2>/dev/null | grep -q Empty; }
wait_until "$group to be Empty after its consumer stopped" 60 empty
cgc --delete-offsets --group "$group" --topic "$topic:0" >"$WORK/deleted" 2>&1 || { cat "$WORK/deleted" >&2; fail "--delete-offsets failed"; }
cat "$WORK/deleted"
[ "$(committed_partitions)" = "1 2 " ] || { cat "$WORK/offsets" >&2; fail "after --delete-offsets of partition 0, G must keep offsets of 1 and 2 only"; }
say "--delete-offsets on the empty group removed partition 0's offset and kept 1 and 2"
