#!/usr/bin/env bash
# DeleteRecordsCommand (kafka-delete-records) against the cluster: on a
# 2-partition topic with 50 records in each, deleting below offset 20 of
# partition 0 and everything of partition 1 (-1: up to the high watermark)
# reports low_watermark 20 and 50; GetOffsetShell then gives earliest offsets
# 20 and 50 (latest stays 50), and a console consumer reading from the
# beginning gets exactly the 30 records left, those with sequence 20..49 of
# partition 0. An offset above the end is refused per partition.
. "$(dirname "$0")/lib.sh"

topic="compat-delete-$RUN_ID"
kjava org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA_BOOTSTRAP" --create \
    --topic "$topic" --partitions 2 --replication-factor "$COMPAT_RF" >/dev/null \
    || fail "TopicCommand --create failed"
for p in 0 1; do
    "$PY" - "$p" >"$WORK/in-$p" <<'PY'
import sys
p = sys.argv[1]
for i in range(50):
    print(f"p{p}-{i}")
PY
    kcat -P -b "$KAFKA_BOOTSTRAP" -t "$topic" -p "$p" -X acks=all <"$WORK/in-$p" \
        || fail "kcat could not produce to partition $p"
done
say "50 records in each of 2 partitions"

delete() {
    printf '%s' "$1" >"$WORK/offsets.json"
    kjava org.apache.kafka.tools.DeleteRecordsCommand --bootstrap-server "$KAFKA_BOOTSTRAP" \
        --offset-json-file "$WORK/offsets.json" >"$WORK/delete.out" 2>"$WORK/delete.err"
    cat "$WORK/delete.out"
}
delete "{\"partitions\":[{\"topic\":\"$topic\",\"partition\":0,\"offset\":20},{\"topic\":\"$topic\",\"partition\":1,\"offset\":-1}],\"version\":1}"
grep -q "partition: $topic-0	low_watermark: 20" "$WORK/delete.out" \
    || fail "kafka-delete-records did not report low_watermark 20 for partition 0"
grep -q "partition: $topic-1	low_watermark: 50" "$WORK/delete.out" \
    || fail "kafka-delete-records did not report low_watermark 50 for partition 1 (offset -1)"
say "kafka-delete-records: partition 0 low watermark 20, partition 1 low watermark 50"

delete "{\"partitions\":[{\"topic\":\"$topic\",\"partition\":0,\"offset\":99}],\"version\":1}"
grep -q "partition: $topic-0	error: .*OffsetOutOfRange" "$WORK/delete.out" \
    || fail "an offset above the end was not refused with OffsetOutOfRange"
say "an offset above the end is refused: OffsetOutOfRange"

offsets() {
    kjava org.apache.kafka.tools.GetOffsetShell --bootstrap-server "$KAFKA_BOOTSTRAP" \
        --topic "$topic" --time "$1" 2>/dev/null | sort
}
earliest=$(offsets -2 | tr '\n' ' ')
latest=$(offsets -1 | tr '\n' ' ')
[ "$earliest" = "$topic:0:20 $topic:1:50 " ] || fail "earliest offsets are '$earliest', expected $topic:0:20 $topic:1:50"
[ "$latest" = "$topic:0:50 $topic:1:50 " ] || fail "latest offsets are '$latest', expected 50 and 50"
say "GetOffsetShell: earliest $earliest, latest $latest"

kjava org.apache.kafka.tools.consumer.ConsoleConsumer --bootstrap-server "$KAFKA_BOOTSTRAP" \
    --topic "$topic" --from-beginning --max-messages 30 --timeout-ms 20000 \
    >"$WORK/read" 2>"$WORK/read.err" || true
sort "$WORK/read" >"$WORK/read.sorted"
"$PY" -c 'print("\n".join(sorted(f"p0-{i}" for i in range(20, 50))))' >"$WORK/want"
if ! cmp -s "$WORK/read.sorted" "$WORK/want"; then
    show_diff "$WORK/want" "$WORK/read.sorted"
    fail "a consumer from the beginning read $(wc -l <"$WORK/read") records, expected exactly p0-20..p0-49"
fi
say "a consumer from the beginning reads exactly the 30 records left"
