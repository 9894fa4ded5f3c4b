#!/usr/bin/env bash
# Kafka Connect in distributed mode: two workers, a FileStream pipeline, and
# a worker SIGKILLed while it runs. Two workers join one Connect cluster
# (their config, offset and status topics on the cluster under test); the
# REST API answers on both: GET / names the Connect version and the Kafka
# cluster id, GET /connector-plugins lists FileStreamSourceConnector and
# FileStreamSinkConnector. Two connectors are created through it:
#   source: FileStreamSourceConnector, the input file into a one-partition
#           topic (one partition, so the topic has one order to check);
#   sink:   FileStreamSinkConnector, that topic into the output file.
# GET /connectors lists both, GET /connectors/NAME/status shows each
# connector and its task RUNNING. A feeder appends LINES lines "line-NNNNNN"
# to the input at RATE lines/s. Once KILL_AFTER lines are in the output and
# the sink has committed an offset, the worker running the sink task is
# SIGKILLed (with whatever else it runs: the workers share the four
# connector and task instances); both connectors and both tasks must then
# run on the survivor. When the feeder is done:
#   - the topic holds every input line; the source is at-least-once, so a
#     line may be there twice, but only as a replay: read in offset order,
#     line numbers only ever go up by one or jump back (a restarted task
#     resending from its last committed offset), never skip forward;
#   - the output file holds every line, with the same rule; the sink is
#     at-least-once too: the output is exactly the topic's records up to
#     the kill, then the topic again from the sink's committed offset at the
#     kill (what it wrote after its last commit, it writes twice); how many
#     lines each wrote twice is printed;
#   - the source connector's committed offset (GET /connectors/NAME/offsets)
#     is the input's size, the sink's is the topic's end offset;
#   - the three internal topics exist and are compacted.
#
# Timeouts: RUN_TIMEOUT (s), for the output to reach each point; MOVE_TIMEOUT
# (s), for everything to run on the survivor after the kill (the worker
# group's session timeout, 6 s, plus scheduled.rebalance.max.delay.ms, 2 s,
# plus the restarts; the sink task's consumer group has a 6 s session
# timeout too); Connect workers' start: CONNECT_START_TIMEOUT (connect-lib.sh).
# Ports: COMPAT_CONNECT_DIST_PORT and the next one (default 28183-28184).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/connect-lib.sh"

LINES="${COMPAT_CONNECT_LINES:-20000}"
RATE="${COMPAT_CONNECT_RATE:-2000}"
KILL_AFTER=$(( LINES / 4 ))
RUN_TIMEOUT="${COMPAT_CONNECT_RUN_TIMEOUT:-90}"
MOVE_TIMEOUT="${COMPAT_CONNECT_MOVE_TIMEOUT:-60}"
PORT1="${COMPAT_CONNECT_DIST_PORT:-28183}"
PORT2=$(( PORT1 + 1 ))

topic="compat-connect-dist-$RUN_ID"
source_name="file-source-$RUN_ID"
sink_name="file-sink-$RUN_ID"
input="$WORK/input.txt"
output="$WORK/output.txt"
feeder_pid=""
trap 'connect_stop_all; [ -z "$feeder_pid" ] || kill "$feeder_pid" 2>/dev/null || true; rm -rf "$WORK"' EXIT

kjava org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA_BOOTSTRAP" --create --topic "$topic" \
    --partitions 1 --replication-factor "$COMPAT_RF" || fail "creating $topic failed"
: >"$input"
: >"$output"

worker_settings=(session.timeout.ms=6000 heartbeat.interval.ms=2000 scheduled.rebalance.max.delay.ms=2000
    consumer.session.timeout.ms=6000 consumer.heartbeat.interval.ms=2000)
connect_worker w1 "$PORT1" "${worker_settings[@]}"
connect_worker w2 "$PORT2" "${worker_settings[@]}"
say "two workers up (REST on $PORT1 and $PORT2, group $CONNECT_GROUP)"

# The REST API of each worker: its version and the Kafka cluster it uses,
# and the FileStream plugins.
for port in "$PORT1" "$PORT2"; do
    connect_rest "$port" GET / | "$PY" -c '
import json, sys
want, port = sys.argv[1], sys.argv[2]
root = json.load(sys.stdin)
if root.get("version") != want or not root.get("kafka_cluster_id"):
    sys.exit(f"GET / on port {port}: want version {want} and a kafka_cluster_id, got {root}")
print("GET / on port %s: Connect %s, Kafka cluster %s" % (port, root["version"], root["kafka_cluster_id"]))
' "$KAFKA_VERSION" "$port" || fail "GET / on port $port is not Connect $KAFKA_VERSION with a Kafka cluster id"
done
connect_rest "$PORT1" GET /connector-plugins | "$PY" -c '
import json, sys
classes = {p["class"] for p in json.load(sys.stdin)}
want = {"org.apache.kafka.connect.file.FileStreamSourceConnector",
        "org.apache.kafka.connect.file.FileStreamSinkConnector"}
if not want <= classes:
    sys.exit(f"GET /connector-plugins lacks {sorted(want - classes)}; it lists {sorted(classes)}")
print(f"GET /connector-plugins: {len(classes)} plugins, the FileStream source and sink among them")
' || fail "GET /connector-plugins does not list the FileStream connectors"

connect_rest "$PORT1" PUT "/connectors/$source_name/config" "$(cat <<JSON
{"connector.class": "org.apache.kafka.connect.file.FileStreamSourceConnector",
 "tasks.max": "1", "file": "$input", "topic": "$topic", "batch.size": "500"}
JSON
)" >/dev/null
connect_rest "$PORT2" PUT "/connectors/$sink_name/config" "$(cat <<JSON
{"connector.class": "org.apache.kafka.connect.file.FileStreamSinkConnector",
 "tasks.max": "1", "file": "$output", "topics": "$topic"}
JSON
)" >/dev/null

# placement PORT: "NAME connector|task0 STATE WORKER" for both connectors,
# from GET /connectors?expand=status.
placement() {
    curl -fsS "http://127.0.0.1:$1/connectors?expand=status" 2>/dev/null | "$PY" -c '
import json, sys
for name, entry in sorted(json.load(sys.stdin).items()):
    s = entry["status"]
    print(name, "connector", s["connector"]["state"], s["connector"]["worker_id"])
    for t in s["tasks"]:
        print(name, "task%d" % t["id"], t["state"], t["worker_id"])' 2>/dev/null || true
}
# all_running PORT [WORKER]: both connectors and their tasks RUNNING (on
# WORKER when given).
all_running() {
    local p
    p=$(placement "$1")
    [ "$(echo "$p" | awk -v w="${2:-}" '$3 == "RUNNING" && (w == "" || $4 == w)' | wc -l)" -eq 4 ]
}
wait_until "both connectors and both tasks RUNNING" "$RUN_TIMEOUT" all_running "$PORT1"
placement "$PORT1" | sed 's/^/    /'

connect_rest "$PORT2" GET /connectors | "$PY" -c '
import json, sys
got, want = sorted(json.load(sys.stdin)), sorted(sys.argv[1:])
if got != want:
    sys.exit(f"GET /connectors: want {want}, got {got}")
print(f"GET /connectors: {got}")' "$source_name" "$sink_name" || fail "GET /connectors does not list the two connectors"
for name in "$source_name" "$sink_name"; do
    connect_rest "$PORT2" GET "/connectors/$name/status" | "$PY" -c '
import json, sys
s, name = json.load(sys.stdin), sys.argv[1]
states = [s["connector"]["state"]] + [t["state"] for t in s["tasks"]]
if s.get("name") != name or len(s["tasks"]) != 1 or set(states) != {"RUNNING"}:
    sys.exit(f"GET /connectors/{name}/status: want the connector and one task RUNNING, got {s}")' "$name" \
        || fail "GET /connectors/$name/status does not show $name running"
done
say "REST: GET /connectors and /connectors/NAME/status show both connectors and their tasks RUNNING"

connect_feed "$input" line "$LINES" "$RATE"

# distinct_out: how many distinct lines the output holds.
distinct_out() { sort -u "$output" | wc -l; }
reached() { [ "$(distinct_out)" -ge "$1" ]; }
# sink_offset PORT: the sink's committed offset (its consumer group's), -1
# while it has none.
sink_offset() {
    curl -fsS "http://127.0.0.1:$1/connectors/$sink_name/offsets" 2>/dev/null | "$PY" -c '
import json, sys
o = json.load(sys.stdin)["offsets"]
print(o[0]["offset"]["kafka_offset"] if o else -1)' 2>/dev/null || echo -1
}
# The kill comes once the sink has committed (every offset.flush.interval.ms
# once its consumer has joined its group), so that its restart resumes from
# a committed offset.
ready_to_kill() { reached "$KILL_AFTER" && [ "$(sink_offset "$PORT1")" -gt 0 ]; }
wait_until "$KILL_AFTER lines in the output and an offset committed by the sink" "$RUN_TIMEOUT" ready_to_kill

sink_worker=$(placement "$PORT1" | awk -v n="$sink_name" '$1 == n && $2 == "task0" { print $4 }')
case $sink_worker in
    "127.0.0.1:$PORT1") victim=w1; victim_pid=$w1_pid; survivor=$PORT2 ;;
    "127.0.0.1:$PORT2") victim=w2; victim_pid=$w2_pid; survivor=$PORT1 ;;
    *) fail "the sink task runs on no known worker: '$sink_worker'" ;;
esac
hosted=$(placement "$PORT1" | awk -v w="$sink_worker" '$4 == w { printf "%s%s %s", sep, $1, $2; sep = ", " }')
kill -KILL "$victim_pid"
wait "$victim_pid" 2>/dev/null || true
killed=$SECONDS
say "worker $victim ($sink_worker) SIGKILLed running: $hosted; $(distinct_out) lines in the output so far"
! curl -fsS -m 2 "http://127.0.0.1:${sink_worker##*:}/" >/dev/null 2>&1 || fail "the killed worker's REST API still answers"
# No sink task runs now: its committed offset stays until the next starts.
resume_offset=$(sink_offset "$survivor")
[ "$resume_offset" -gt 0 ] || fail "no committed offset for the sink after the kill (got $resume_offset)"
say "the sink's committed offset at the kill: $resume_offset"
wait_until "both connectors and both tasks RUNNING on the survivor 127.0.0.1:$survivor" "$MOVE_TIMEOUT" \
    all_running "$survivor" "127.0.0.1:$survivor"
say "both connectors and both tasks RUNNING on 127.0.0.1:$survivor $(( SECONDS - killed ))s after the kill"

wait "$feeder_pid" || fail "the feeder failed"
feeder_pid=""
[ "$(wc -l <"$input")" -eq "$LINES" ] || fail "the feeder wrote $(wc -l <"$input") lines, not $LINES"
say "feeder done: $LINES lines, $(stat -c %s "$input") bytes"
wait_until "all $LINES lines in the output" "$RUN_TIMEOUT" reached "$LINES"
say "all $LINES lines in the output"

# The sink's committed offset reaches the topic's end offset (its last
# commit after the last line), then the topic and the output are read.
end_offset() {
    kjava org.apache.kafka.tools.GetOffsetShell --bootstrap-server "$KAFKA_BOOTSTRAP" --topic "$topic" \
        --time latest 2>/dev/null | awk -F: '$2 == 0 { print $3 }'
}
topic_end=$(end_offset)
[ -n "$topic_end" ] || fail "no end offset for $topic partition 0"
sink_done() { [ "$(sink_offset "$survivor")" = "$topic_end" ]; }
wait_until "the sink's committed offset to reach the topic's end offset $topic_end" "$RUN_TIMEOUT" sink_done
say "the sink's committed offset is the topic's end offset, $topic_end"

kjava dev.rill.compat.TopicDump --topic "$topic" --isolation read_uncommitted \
    >"$WORK/topic" 2>"$WORK/topic.err" || { tail -5 "$WORK/topic.err" >&2; fail "dumping $topic failed"; }
cut -f4 "$WORK/topic" >"$WORK/topic.values"
"$PY" - "$LINES" "$WORK/topic.values" topic "$output" output <<'PY' || fail "a line is missing, out of order or unknown (see above)"
import sys
lines = int(sys.argv[1])
bad = False
for path, what in zip(sys.argv[2::2], sys.argv[3::2]):
    seen = [l.rstrip("\n") for l in open(path)]
    nums = []
    for i, v in enumerate(seen):
        if not (v.startswith("line-") and v[5:].isdigit()):
            print(f"FAIL: {what} entry {i} is {v!r}, not an input line", file=sys.stderr); bad = True; break
        nums.append(int(v[5:]))
    else:
        prev, top, replays = 0, 0, 0
        for i, n in enumerate(nums):
            if n > prev + 1:
                print(f"FAIL: {what} entry {i} is line {n} right after line {prev} (highest so far {top}): "
                      f"a jump forward, not a replay", file=sys.stderr); bad = True; break
            if n <= prev:
                replays += 1
            prev, top = n, max(top, n)
        else:
            if top != lines:
                print(f"FAIL: {what} ends at line {top}, the input has {lines}", file=sys.stderr); bad = True
            else:
                twice = len(nums) - len(set(nums))
                print(f"{what}: {len(nums)} lines, every input line in order; {twice} written twice "
                      f"in {replays} replay(s)")
sys.exit(1 if bad else 0)
PY
# The sink wrote the topic from its start until it was killed, then its
# next task wrote it from the committed offset: the output is the topic's
# first K records, then the topic from resume_offset on.
"$PY" - "$WORK/topic.values" "$output" "$resume_offset" <<'PY' || fail "the sink did not resume from its committed offset (see above)"
import sys
topic = [l.rstrip("\n") for l in open(sys.argv[1])]
out = [l.rstrip("\n") for l in open(sys.argv[2])]
resume = int(sys.argv[3])
k = len(out) - (len(topic) - resume)
if not resume <= k <= len(topic) or out[:k] != topic[:k] or out[k:] != topic[resume:]:
    first = next((i for i, (a, b) in enumerate(zip(out, topic)) if a != b), None)
    print(f"FAIL: the output ({len(out)} lines) is not the topic's first {k} records then the topic from "
          f"offset {resume} on ({len(topic)} records); first divergence from the topic at line {first}",
          file=sys.stderr)
    sys.exit(1)
print(f"the sink wrote topic offsets 0..{k - 1}, was killed, and its next task wrote from its committed "
      f"offset {resume}: {k - resume} lines written twice")
PY

# The source commits its offset every offset.flush.interval.ms (1 s).
source_offset() {
    curl -fsS "http://127.0.0.1:$survivor/connectors/$source_name/offsets" 2>/dev/null | "$PY" -c '
import json, sys
o = json.load(sys.stdin)["offsets"]
print(o[0]["offset"]["position"] if o else -1)' 2>/dev/null || echo -1
}
size=$(stat -c %s "$input")
source_done() { [ "$(source_offset)" = "$size" ]; }
wait_until "the source connector's committed offset to reach the input's size, $size bytes" \
    "$RUN_TIMEOUT" source_done
say "the source connector's committed offset is the input's size, $size bytes"

for suffix in configs offsets status; do
    kjava kafka.admin.ConfigCommand --bootstrap-server "$KAFKA_BOOTSTRAP" --describe \
        --entity-type topics --entity-name "$CONNECT_GROUP-$suffix" >"$WORK/cfg" 2>&1 \
        || { cat "$WORK/cfg" >&2; fail "describing $CONNECT_GROUP-$suffix failed"; }
    grep -q 'cleanup.policy=compact' "$WORK/cfg" || { cat "$WORK/cfg" >&2; fail "$CONNECT_GROUP-$suffix is not compacted"; }
done
say "internal topics $CONNECT_GROUP-{configs,offsets,status} are compacted"
