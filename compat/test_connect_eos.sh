#!/usr/bin/env bash
# Kafka Connect exactly-once source (KIP-618) with a worker SIGKILLed.
# Two distributed workers with exactly.once.source.support=enabled run
# Kafka's FileStreamSourceConnector with exactly.once.support=required
# (validated against the connector) and transaction.boundary=interval:
# the records of each TXN_INTERVAL_MS and the source offset they reach are
# written in one transaction. A feeder appends LINES lines "eos-NNNNNN" to
# the input file at RATE lines/s. Once KILL_AFTER lines are committed the
# worker running the task is SIGKILLed inside a transaction; the task must
# move to the other worker, which fences the dead worker's transactional
# producer (its open transaction is aborted) and resumes from the committed
# offset. When the feeder is done:
#   - read_committed reads every line exactly once: none missing, none
#     twice, and each partition in file order;
#   - read_uncommitted reads records besides: those of the transaction the
#     kill aborted, which the new task wrote again;
#   - the connector's committed offset (GET /connectors/NAME/offsets) is
#     the input file's size;
#   - the workers' internal topics exist and are compacted.
#
# Timeouts: RUN_TIMEOUT (s), for the committed lines to reach each point;
# MOVE_TIMEOUT (s), for the task to run on the other worker after the kill
# (session timeout plus scheduled.rebalance.max.delay.ms plus a restart).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/connect-lib.sh"

LINES="${COMPAT_CONNECT_LINES:-40000}"
RATE="${COMPAT_CONNECT_RATE:-2500}"
# FileStreamSourceTask returns a poll's records once it holds batch.size of
# them, and reads its buffer again only when the file has grown: lines
# already buffered when a full batch is returned at the end of the file
# wait for the next append. If the task resumes on the survivor after the
# feeder is done, the last lines would never be read, on any broker. A
# batch as large as the input makes every poll drain what it read.
BATCH=$LINES
TXN_INTERVAL_MS=1000
KILL_AFTER=$(( LINES / 4 ))
RUN_TIMEOUT="${COMPAT_CONNECT_RUN_TIMEOUT:-90}"
MOVE_TIMEOUT="${COMPAT_CONNECT_MOVE_TIMEOUT:-60}"
PORT1="${COMPAT_CONNECT_PORT:-28083}"
PORT2=$(( PORT1 + 1 ))

topic="compat-connect-eos-$RUN_ID"
connector="eos-source-$RUN_ID"
input="$WORK/input.txt"
feeder_pid=""
trap 'connect_stop_all; [ -z "$feeder_pid" ] || kill "$feeder_pid" 2>/dev/null || true; rm -rf "$WORK"' EXIT

kjava org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA_BOOTSTRAP" --create --topic "$topic" \
    --partitions 3 --replication-factor "$COMPAT_RF" --config min.insync.replicas=2 || fail "creating $topic failed"
: >"$input"

worker_settings=(exactly.once.source.support=enabled session.timeout.ms=6000 heartbeat.interval.ms=2000
    scheduled.rebalance.max.delay.ms=2000)
connect_worker w1 "$PORT1" "${worker_settings[@]}"
connect_worker w2 "$PORT2" "${worker_settings[@]}"
say "two workers up (REST on $PORT1 and $PORT2, group $CONNECT_GROUP)"

connect_rest "$PORT1" PUT "/connectors/$connector/config" "$(cat <<JSON
{"connector.class": "org.apache.kafka.connect.file.FileStreamSourceConnector",
 "tasks.max": "1", "file": "$input", "topic": "$topic", "batch.size": "$BATCH",
 "exactly.once.support": "required", "transaction.boundary": "interval",
 "transaction.boundary.interval.ms": "$TXN_INTERVAL_MS"}
JSON
)" >/dev/null
worker=$(connect_wait_task "$PORT1" "$connector" "$RUN_TIMEOUT")
say "connector $connector: task 0 RUNNING on $worker"

connect_feed "$input" eos "$LINES" "$RATE"

# committed_lines: how many records read_committed reads now.
committed_lines() {
    kjava dev.rill.compat.TopicDump --topic "$topic" --isolation read_committed --timeout-s 30 2>"$WORK/count.err" | wc -l
}
reached() { [ "$(committed_lines)" -ge "$1" ]; }
# diagnose: what read_committed waits behind, printed when lines do not
# commit in time: the counts per isolation level, the task's transaction
# and the producers with transactions open in each partition.
diagnose() {
    local ru
    ru=$(kjava dev.rill.compat.TopicDump --topic "$topic" --isolation read_uncommitted --timeout-s 30 2>/dev/null | wc -l)
    echo "--- $(committed_lines) records read_committed, $ru read_uncommitted" >&2
    kjava org.apache.kafka.tools.TransactionsCommand --bootstrap-server "$KAFKA_BOOTSTRAP" \
        describe --transactional-id "$CONNECT_GROUP-$connector-0" >&2 || true
    for p in 0 1 2; do
        kjava org.apache.kafka.tools.TransactionsCommand --bootstrap-server "$KAFKA_BOOTSTRAP" \
            describe-producers --topic "$topic" --partition "$p" >&2 || true
    done
}
# wait_committed N: waits until N lines are committed; on a timeout the
# test fails with the diagnostics.
wait_committed() {
    ( wait_until "$1 lines committed" "$RUN_TIMEOUT" reached "$1" ) || { diagnose; exit 1; }
}
wait_committed "$KILL_AFTER"

case $worker in
    *":$PORT1") victim=w1; victim_pid=$w1_pid; survivor=$PORT2 ;;
    *) victim=w2; victim_pid=$w2_pid; survivor=$PORT1 ;;
esac
kill -KILL "$victim_pid"
wait "$victim_pid" 2>/dev/null || true
killed=$SECONDS
say "worker $victim ($worker) SIGKILLed with the task running; $(wc -l <"$input") lines in the input so far"
moved=$(connect_wait_task "$survivor" "$connector" "$MOVE_TIMEOUT" "$worker")
say "task 0 RUNNING on $moved $(( SECONDS - killed ))s after the kill"

wait "$feeder_pid" || fail "the feeder failed"
feeder_pid=""
[ "$(wc -l <"$input")" -eq "$LINES" ] || fail "the feeder wrote $(wc -l <"$input") lines, not $LINES"
say "feeder done: $LINES lines, $(stat -c %s "$input") bytes"
wait_committed "$LINES"

kjava dev.rill.compat.TopicDump --topic "$topic" --isolation read_committed --wait-stable-s 30 \
    >"$WORK/rc" 2>"$WORK/rc.err" || { tail -5 "$WORK/rc.err" >&2; fail "read_committed dump failed"; }
kjava dev.rill.compat.TopicDump --topic "$topic" --isolation read_uncommitted \
    >"$WORK/ru" 2>"$WORK/ru.err" || { tail -5 "$WORK/ru.err" >&2; fail "read_uncommitted dump failed"; }
"$PY" - "$WORK/rc" "$WORK/ru" "$LINES" <<'PY' || fail "read_committed did not read every line exactly once, or no transaction was aborted"
import collections, sys
rc_path, ru_path, lines = sys.argv[1], sys.argv[2], int(sys.argv[3])
def load(path):
    rows = []
    for line in open(path):
        p, off, _key, value = line.rstrip("\n").split("\t", 3)
        rows.append((int(p), int(off), value))
    return rows
rc, ru = load(rc_path), load(ru_path)
counts = collections.Counter(v for _, _, v in rc)
want = {f"eos-{i:06d}" for i in range(1, lines + 1)}
missing = sorted(want - counts.keys())
twice = sorted(v for v, n in counts.items() if n > 1)
alien = sorted(counts.keys() - want)
bad = False
if missing:
    print(f"FAIL: {len(missing)} lines missing, e.g. {missing[:5]}", file=sys.stderr); bad = True
if twice:
    print(f"FAIL: {len(twice)} lines read more than once, e.g. {twice[:5]}", file=sys.stderr); bad = True
if alien:
    print(f"FAIL: {len(alien)} values that were never written, e.g. {alien[:5]}", file=sys.stderr); bad = True
last = {}
for p, off, v in rc:
    n = int(v[4:]) if v.startswith("eos-") else -1
    if n <= last.get(p, 0):
        print(f"FAIL: partition {p} offset {off}: {v} after eos-{last[p]:06d}", file=sys.stderr); bad = True
        break
    last[p] = n
ru_counts = collections.Counter(v for _, _, v in ru)
extra = sum(ru_counts.values()) - sum(counts.values())
print(f"read_committed: {len(rc)} records, every line once, in file order per partition"
      if not bad else f"read_committed: {len(rc)} records")
print(f"read_uncommitted: {len(ru)} records, {extra} of them in the transaction the kill aborted "
      f"({sum(1 for n in ru_counts.values() if n > 1)} lines written twice)")
if extra <= 0:
    print("FAIL: read_uncommitted reads no aborted records: the kill aborted no transaction "
          "with records in it, so the test proved nothing", file=sys.stderr)
    bad = True
sys.exit(1 if bad else 0)
PY

offsets=$(connect_rest "$survivor" GET "/connectors/$connector/offsets")
position=$(echo "$offsets" | "$PY" -c 'import json, sys; o = json.load(sys.stdin)["offsets"]; print(o[0]["offset"]["position"] if o else -1)')
size=$(stat -c %s "$input")
[ "$position" = "$size" ] || fail "the connector's committed offset is $position, the input has $size bytes ($offsets)"
say "the connector's committed offset is the input's size, $size bytes"

for suffix in configs offsets status; do
    kjava kafka.admin.ConfigCommand --bootstrap-server "$KAFKA_BOOTSTRAP" --describe \
        --entity-type topics --entity-name "$CONNECT_GROUP-$suffix" >"$WORK/cfg" 2>&1 \
        || { cat "$WORK/cfg" >&2; fail "describing $CONNECT_GROUP-$suffix failed"; }
    grep -q 'cleanup.policy=compact' "$WORK/cfg" || { cat "$WORK/cfg" >&2; fail "$CONNECT_GROUP-$suffix is not compacted"; }
done
say "internal topics $CONNECT_GROUP-{configs,offsets,status} are compacted"
