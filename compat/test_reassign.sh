#!/usr/bin/env bash
# Kafka's replica-move tools while an idempotent producer (acks=all) runs:
# ReassignPartitionsCommand --generate proposes a plan, --execute starts a
# plan that moves every replica of an RF=2, min.insync.replicas=2 topic one
# broker along (each partition's leader replica moves away), --verify
# (with --preserve-throttles: no throttle was set) waits until every move
# is completed, TopicCommand --describe then shows exactly the planned
# replicas with full ISRs, and LeaderElectionCommand --election-type
# PREFERRED puts each partition's first replica in the lead. The producer
# must get every record acknowledged and SeqVerifier must read back every
# sequence number exactly once, in order per key: no acknowledged record
# is lost or duplicated by the moves.
#
# Needs 3 brokers (COMPAT_BROKERS); exits 77 (skipped) otherwise.
. "$(dirname "$0")/lib.sh"

if [ "$COMPAT_BROKERS" -lt 3 ]; then
    echo "SKIP: needs 3 brokers (have $COMPAT_BROKERS)"
    exit 77
fi
COUNT="${COMPAT_REASSIGN_RECORDS:-30000}"
RATE="${COMPAT_REASSIGN_RATE:-3000}"
MOVE_TIMEOUT="${COMPAT_REASSIGN_TIMEOUT:-120}"
topic="compat-reassign-$RUN_ID"
tc() { kjava org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA_BOOTSTRAP" "$@"; }
rp() { kjava org.apache.kafka.tools.reassign.ReassignPartitionsCommand --bootstrap-server "$KAFKA_BOOTSTRAP" "$@"; }
tc --create --topic "$topic" --partitions 3 --replication-factor 2 --config min.insync.replicas=2 \
    || fail "TopicCommand --create failed"

# assignment: "partition replicas leader isr" per line, from --describe.
assignment() {
    tc --describe --topic "$topic" 2>/dev/null \
        | sed -nE 's/.*Partition: ([0-9]+)[[:space:]]+Leader: (-?[0-9]+|none)[[:space:]]+Replicas: ([0-9,]*)[[:space:]]+Isr: ([0-9,]*).*/\1 \3 \2 \4/p' \
        | sort -n
}
full_isrs() {
    local n
    n=$(assignment | awk '{ split($2, r, ","); split($4, i, ","); if (length(r) == 2 && length(i) == 2) c++ } END { print c + 0 }')
    [ "$n" -eq 3 ]
}
wait_until "every partition to have 2 in-sync replicas" 30 full_isrs
assignment >"$WORK/before"
say "before: $(tr '\n' ';' <"$WORK/before")"

kjava dev.rill.compat.SeqProducer --topic "$topic" --count "$COUNT" --rate "$RATE" --midpoint "$((COUNT / 4))" \
    >"$WORK/producer.out" 2>"$WORK/producer.err" &
producer=$!
wait_until "the producer to have a quarter of its records acknowledged" 60 grep -q MIDPOINT "$WORK/producer.out"
kill -0 "$producer" 2>/dev/null || fail "the producer finished before the moves: lower COMPAT_REASSIGN_RATE"

# --generate: a proposal over brokers 0,1,2 (printed, not executed).
printf '{"version":1,"topics":[{"topic":"%s"}]}' "$topic" >"$WORK/topics.json"
rp --generate --topics-to-move-json-file "$WORK/topics.json" --broker-list 0,1,2 >"$WORK/generate" 2>&1 \
    || { cat "$WORK/generate" >&2; fail "--generate failed"; }
grep -q 'Proposed partition reassignment configuration' "$WORK/generate" \
    || { cat "$WORK/generate" >&2; fail "--generate printed no proposal"; }
grep -q "\"$topic\"" "$WORK/generate" || { cat "$WORK/generate" >&2; fail "--generate's proposal lacks $topic"; }

# The plan: every replica one broker along, so the leader's replica moves.
"$PY" - "$WORK/before" "$topic" >"$WORK/plan.json" <<'PY'
import json, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
plan = []
for part, replicas, _leader, _isr in rows:
    moved = [(int(r) + 1) % 3 for r in replicas.split(",")]
    plan.append({"topic": sys.argv[2], "partition": int(part), "replicas": moved, "log_dirs": ["any"] * len(moved)})
print(json.dumps({"version": 1, "partitions": plan}))
PY
rp --execute --reassignment-json-file "$WORK/plan.json" >"$WORK/execute" 2>&1 \
    || { cat "$WORK/execute" >&2; fail "--execute failed"; }
grep -q 'Successfully started partition reassignment' "$WORK/execute" \
    || { cat "$WORK/execute" >&2; fail "--execute did not start the reassignment"; }
say "--execute started moving every replica one broker along"

verified() {
    rp --verify --preserve-throttles --reassignment-json-file "$WORK/plan.json" >"$WORK/verify" 2>&1 || return 1
    [ "$(grep -c 'is completed' "$WORK/verify")" -eq 3 ]
}
wait_until "--verify to report every move completed" "$MOVE_TIMEOUT" verified
say "--verify: $(grep -c 'is completed' "$WORK/verify") moves completed"

# The replicas are the planned ones, every ISR full.
"$PY" - "$WORK/plan.json" >"$WORK/want" <<'PY'
import json, sys
for p in sorted(json.load(open(sys.argv[1]))["partitions"], key=lambda p: p["partition"]):
    print(p["partition"], ",".join(map(str, p["replicas"])))
PY
settled() {
    assignment | awk '{ print $1, $2 }' >"$WORK/got" && cmp -s "$WORK/want" "$WORK/got" && full_isrs
}
wait_until "--describe to show the planned replicas with full ISRs" 30 settled || true
settled || { show_diff "$WORK/want" "$WORK/got"; fail "replicas after the move differ from the plan"; }

# Preferred leaders: each partition's first replica leads afterwards.
kjava org.apache.kafka.tools.LeaderElectionCommand --bootstrap-server "$KAFKA_BOOTSTRAP" \
    --election-type PREFERRED --topic "$topic" --partition 0 >"$WORK/elect" 2>&1 \
    || { cat "$WORK/elect" >&2; fail "LeaderElectionCommand --election-type PREFERRED failed"; }
kjava org.apache.kafka.tools.LeaderElectionCommand --bootstrap-server "$KAFKA_BOOTSTRAP" \
    --election-type PREFERRED --all-topic-partitions >>"$WORK/elect" 2>&1 \
    || { cat "$WORK/elect" >&2; fail "LeaderElectionCommand --all-topic-partitions failed"; }
preferred_lead() {
    [ "$(assignment | awk '{ split($2, r, ","); if (r[1] == $3) c++ } END { print c + 0 }')" -eq 3 ]
}
wait_until "every partition to be led by its preferred replica" 30 preferred_lead
say "after: $(assignment | tr '\n' ';')"

deadline=$((SECONDS + 180))
while kill -0 "$producer" 2>/dev/null; do
    [ "$SECONDS" -lt "$deadline" ] || { kill "$producer"; fail "producer still running after 180s"; }
    sleep 0.2
done
status=0; wait "$producer" || status=$?
grep -E 'RESULT|FIRST_ERROR' "$WORK/producer.out" || true
if [ "$status" -ne 0 ]; then
    tail -20 "$WORK/producer.err" >&2
    fail "the idempotent producer did not get every record acknowledged (exit $status)"
fi
kjava dev.rill.compat.SeqVerifier --topic "$topic" --count "$COUNT" || fail "read-back found duplicates, gaps or reordering (above)"
say "all $COUNT records acknowledged during the moves read back exactly once, in order per key"
