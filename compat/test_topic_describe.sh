#!/usr/bin/env bash
# TopicCommand against Rill: --create with a config, --list shows the topic,
# --describe shows the partition count, replication factor, the config, and
# for every partition a leader among its replicas and a full ISR (through
# DescribeTopicPartitions, which the Kafka 4 tool uses when the broker
# serves it). With --partition-size-limit-per-response 1 the tool pages
# through the partitions one answer at a time and must still show all 4.
. "$(dirname "$0")/lib.sh"

topic="compat-describe-$RUN_ID"
tc() { kjava org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA_BOOTSTRAP" "$@"; }
tc --create --topic "$topic" --partitions 4 --replication-factor "$COMPAT_RF" \
    --config retention.ms=3600000 || fail "TopicCommand --create failed"
tc --list >"$WORK/list" || fail "TopicCommand --list failed"
grep -qx "$topic" "$WORK/list" || { cat "$WORK/list" >&2; fail "--list does not show $topic"; }

check_describe() {
    tc --describe --topic "$topic" "$@" >"$WORK/describe" 2>"$WORK/describe.err" || return 1
    "$PY" - "$WORK/describe" "$topic" "$COMPAT_RF" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
topic, rf = sys.argv[2], int(sys.argv[3])
problems = []
head = [l for l in text.splitlines() if l.startswith("Topic:")]
if len(head) != 1:
    sys.exit(f"expected one 'Topic:' summary line, got {head}")
fields = dict(re.findall(r"(\w+): (\S*)", head[0]))
if fields.get("Topic") != topic: problems.append(f"Topic is {fields.get('Topic')}")
if fields.get("PartitionCount") != "4": problems.append(f"PartitionCount is {fields.get('PartitionCount')}")
if fields.get("ReplicationFactor") != str(rf): problems.append(f"ReplicationFactor is {fields.get('ReplicationFactor')}")
if "retention.ms=3600000" not in head[0]: problems.append("Configs lacks retention.ms=3600000")
parts = {}
for l in text.splitlines():
    m = re.search(r"Partition: (\d+)\s+Leader: (-?\d+|none)\s+Replicas: ([\d,]*)\s+Isr: ([\d,]*)", l)
    if m:
        parts[int(m[1])] = (m[2], m[3].split(","), m[4].split(","))
if sorted(parts) != [0, 1, 2, 3]: problems.append(f"partition lines for {sorted(parts)}, expected 0..3")
for p, (leader, reps, isr) in sorted(parts.items()):
    if len(reps) != rf or len(set(reps)) != rf: problems.append(f"partition {p}: replicas {reps}, expected {rf} distinct")
    if leader not in reps: problems.append(f"partition {p}: leader {leader} not among replicas {reps}")
    if sorted(isr) != sorted(reps): problems.append(f"partition {p}: ISR {isr} is not the full replica set {reps}")
if problems:
    print("\n".join("  " + p for p in problems)); sys.exit(1)
PY
}
# A new topic's ISR may take a moment to fill on some brokers: retry.
wait_until "TopicCommand --describe to show leaders and full ISRs" 30 check_describe
cat "$WORK/describe"
say "TopicCommand --describe shows 4 partitions, RF $COMPAT_RF, leaders and ISRs"
wait_until "TopicCommand --describe, one partition per answer, to show every partition" 30 \
    check_describe --partition-size-limit-per-response 1
say "TopicCommand --describe --partition-size-limit-per-response 1 pages through all 4 partitions"
