#!/usr/bin/env bash
# MirrorMaker 2 migrating from Apache Kafka into the cluster under test.
# The test starts its own source cluster, one Apache Kafka node
# (compat/kafka-launch.sh, --base-port COMPAT_MM2_SOURCE_PORT), and runs
# MirrorMaker 2 in dedicated mode (org.apache.kafka.connect.mirror.MirrorMaker
# with an mm2.properties, one direction: source->target, IdentityReplicationPolicy
# so topic names are kept, as in a migration) against KAFKA_BOOTSTRAP.
# On the source, before MirrorMaker starts:
#   orders:   3 partitions, retention.ms=RETENTION_MS, PHASE1 keyed records;
#   accounts: 2 partitions, cleanup.policy=compact, ACCOUNTS keyed records.
# Then:
#   - MirrorMaker creates both topics on the target with the same partition
#     counts and their configs (retention.ms, cleanup.policy), and copies
#     every record: each partition's keys and values in the source's order;
#   - retention.ms altered on the source reaches the target (topic config
#     sync);
#   - group G, an application reading orders on the source, reads every
#     record written so far, commits and stops: the cut-over. MirrorMaker's
#     checkpoint connector (sync.group.offsets.enabled=true) writes G's
#     offsets, translated, on the target. (MirrorMaker translates an offset
#     from the nearest offset sync at or before it. While its checkpoint task
#     runs it keeps syncs spaced more widely the older they are, but of those
#     written before the task started, only the latest per partition: a
#     group is translated closely when it stops at the end of what was
#     replicated, as at a cut-over; far behind it, maybe not at all.) The
#     translated offsets must not pass G's offsets on the source;
#   - producers still write to the source: PHASE2 more orders, which
#     MirrorMaker copies;
#   - a member of G on the target (auto.offset.reset=error: it must start from
#     committed offsets) reads the rest: every record G did not read on the
#     source, in order, each partition from its translated offset; nothing
#     is lost; it reads again at most OFFSET_LAG_MAX records per partition
#     (how many is printed).
# Printed times: MirrorMaker's start to the first copy of every record, the
# config change's sync, G's stop to its offsets on the target, the second
# batch's replication lag (the producer's last acknowledgement to the last
# record on the target).
#
# Timeouts: COPY_TIMEOUT (s), for topics, records and configs to reach the
# target (MirrorMaker's start plus refresh.topics.interval.seconds, 2 s,
# plus the copy); TRANSLATE_TIMEOUT (s), for G's offsets on the target
# (refresh.groups.interval.seconds, 2 s, plus a checkpoint task start,
# emit.checkpoints and sync.group.offsets intervals, 1 s each); the source
# cluster's start: KAFKA_START_TIMEOUT (kafka-launch.sh); each records.py
# command: COMPAT_RECORDS_TIMEOUT.
# Ports: the source Kafka node listens on COMPAT_MM2_SOURCE_PORT (default
# 29500) and COMPAT_MM2_SOURCE_PORT+50. MirrorMaker runs no REST server.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/connect-lib.sh"

PHASE1="${COMPAT_MM2_RECORDS:-3000}"
PHASE2=$(( PHASE1 / 2 ))
ACCOUNTS=300
RETENTION_MS=5400000
RETENTION_MS_2=7200000
# MirrorMaker writes an offset sync at least every OFFSET_LAG_MAX records of
# a partition, so G, stopped at the end of what was replicated, is translated
# at most that many records back.
OFFSET_LAG_MAX=100
COPY_TIMEOUT="${COMPAT_MM2_COPY_TIMEOUT:-120}"
TRANSLATE_TIMEOUT="${COMPAT_MM2_TRANSLATE_TIMEOUT:-90}"
SOURCE_PORT="${COMPAT_MM2_SOURCE_PORT:-29500}"

orders="compat-mm2-orders-$RUN_ID"
accounts="compat-mm2-accounts-$RUN_ID"
group="compat-mm2-group-$RUN_ID"
# The source cluster's directory: under the run's work directory when
# compat/run.sh gives one, so its logs outlive the test.
source_dir="${COMPAT_WORK:-$WORK}/mm2-source"
launcher="$COMPAT_DIR/kafka-launch.sh"
source_started=false
stop_source() { if $source_started; then "$launcher" stop --dir "$source_dir" >/dev/null 2>&1 || true; fi; }
trap 'connect_stop_all; stop_source; rm -rf "$WORK"' EXIT

records() { "$PY" "$COMPAT_DIR/python/records.py" "$@"; }
src() { records --bootstrap "$source_bootstrap" "$@"; }
dst() { records --bootstrap "$KAFKA_BOOTSTRAP" "$@"; }
now_ms() { date +%s%3N; }
secs_since() { awk -v a="$1" -v b="$(now_ms)" 'BEGIN { printf "%.1f", (b - a) / 1000 }'; }

source_started=true
"$launcher" start --dir "$source_dir" --brokers 1 --base-port "$SOURCE_PORT" >"$WORK/launch.out" 2>&1 \
    || { cat "$WORK/launch.out" >&2; fail "the source Kafka cluster did not start (logs in $source_dir)"; }
source_bootstrap=$(cat "$source_dir/bootstrap")
say "source: Apache Kafka $KAFKA_VERSION at $source_bootstrap (logs in $source_dir); target: $KAFKA_BOOTSTRAP"

KAFKA_BOOTSTRAP=$source_bootstrap "$PY" "$COMPAT_DIR/python/admin.py" create "$orders" --partitions 3 --rf 1 \
    --config "retention.ms=$RETENTION_MS" || fail "creating $orders on the source failed"
KAFKA_BOOTSTRAP=$source_bootstrap "$PY" "$COMPAT_DIR/python/admin.py" create "$accounts" --partitions 2 --rf 1 \
    --config cleanup.policy=compact || fail "creating $accounts on the source failed"
src produce "$orders" --partitions 3 --first 0 --count "$PHASE1" --prefix order >/dev/null \
    || fail "producing to $orders on the source failed"
src produce "$accounts" --partitions 2 --first 0 --count "$ACCOUNTS" --prefix account >/dev/null \
    || fail "producing to $accounts on the source failed"
say "source: $orders (3 partitions, retention.ms=$RETENTION_MS) with $PHASE1 records, $accounts (2 partitions, compacted) with $ACCOUNTS"

# MirrorMaker 2, dedicated mode, one direction. The aliases name its
# internal topics (mm2-*.<source>.internal on the target), so they carry the
# run id; the intervals are short so that the test waits seconds, not
# minutes.
alias_src="kafka-$RUN_ID"
alias_dst="target"
cat >"$WORK/mm2.properties" <<PROPS
clusters = $alias_src, $alias_dst
$alias_src.bootstrap.servers = $source_bootstrap
$alias_dst.bootstrap.servers = $KAFKA_BOOTSTRAP
$alias_src->$alias_dst.enabled = true
$alias_dst->$alias_src.enabled = false
$alias_src->$alias_dst.topics = compat-mm2-.*-$RUN_ID
$alias_src->$alias_dst.groups = $group
replication.policy.class = org.apache.kafka.connect.mirror.IdentityReplicationPolicy
replication.factor = $COMPAT_RF
checkpoints.topic.replication.factor = $COMPAT_RF
heartbeats.topic.replication.factor = $COMPAT_RF
offset-syncs.topic.replication.factor = 1
config.storage.replication.factor = $COMPAT_RF
offset.storage.replication.factor = $COMPAT_RF
status.storage.replication.factor = $COMPAT_RF
sync.group.offsets.enabled = true
sync.group.offsets.interval.seconds = 1
emit.checkpoints.interval.seconds = 1
emit.heartbeats.interval.seconds = 1
refresh.topics.interval.seconds = 2
refresh.groups.interval.seconds = 2
sync.topic.configs.interval.seconds = 2
offset.lag.max = $OFFSET_LAG_MAX
$alias_dst.offset.flush.interval.ms = 1000
PROPS
mm2_log="$CONNECT_LOGS/connect-mm2-$RUN_ID.log"
mm2_started=$(now_ms)
java -Xmx512m -XX:TieredStopAtLevel=1 -Dorg.slf4j.simpleLogger.defaultLogLevel="${COMPAT_CONNECT_LOG:-info}" \
    -Dorg.slf4j.simpleLogger.showDateTime=true \
    -cp "$CONNECT_CLASSPATH" org.apache.kafka.connect.mirror.MirrorMaker "$WORK/mm2.properties" \
    --clusters "$alias_dst" >"$mm2_log" 2>&1 &
mm2_pid=$!
# The EXIT trap (connect_stop_all) SIGKILLs it; disowned, so that the shell
# does not report that.
disown "$mm2_pid"
connect_pids+=("$mm2_pid")
connect_names+=(mm2)
say "MirrorMaker 2 started ($alias_src->$alias_dst, log $mm2_log)"

# copied TOPIC COUNT: the topic on the target holds COUNT records.
copied() {
    [ "$(dst partitions "$1" 2>/dev/null)" != 0 ] || return 1
    kill -0 "$mm2_pid" 2>/dev/null || fail "MirrorMaker exited"
    [ "$(dst dump "$1" 2>/dev/null | wc -l)" -ge "$2" ]
}
wait_until "$PHASE1 records of $orders on the target" "$COPY_TIMEOUT" copied "$orders" "$PHASE1"
wait_until "$ACCOUNTS records of $accounts on the target" "$COPY_TIMEOUT" copied "$accounts" "$ACCOUNTS"
say "every record on the target $(secs_since "$mm2_started")s after MirrorMaker's start"

# Partition counts and configs.
for t in "$orders:3" "$accounts:2"; do
    got=$(dst partitions "${t%:*}")
    [ "$got" = "${t#*:}" ] || fail "${t%:*} has $got partitions on the target, ${t#*:} on the source"
done
# config_is TOPIC KEY VALUE: the target's value of KEY is VALUE.
config_is() { [ "$(dst configs "$1" "$2" 2>/dev/null)" = "$2=$3" ]; }
wait_until "retention.ms=$RETENTION_MS on $orders on the target" "$COPY_TIMEOUT" config_is "$orders" retention.ms "$RETENTION_MS"
config_is "$accounts" cleanup.policy compact || fail "$accounts on the target: $(dst configs "$accounts" cleanup.policy), want cleanup.policy=compact"
say "target: same partition counts (3, 2), retention.ms=$RETENTION_MS and cleanup.policy=compact"

altered=$(now_ms)
kjava kafka.admin.ConfigCommand --bootstrap-server "$source_bootstrap" --alter --entity-type topics \
    --entity-name "$orders" --add-config "retention.ms=$RETENTION_MS_2" >"$WORK/alter.out" 2>&1 \
    || { cat "$WORK/alter.out" >&2; fail "altering retention.ms of $orders on the source failed"; }
wait_until "retention.ms=$RETENTION_MS_2 on $orders on the target" "$COPY_TIMEOUT" config_is "$orders" retention.ms "$RETENTION_MS_2"
say "retention.ms altered on the source to $RETENTION_MS_2: on the target $(secs_since "$altered")s later"

# compare TOPIC: each partition's keys and values are the same, in the same
# order, on both clusters.
compare() {
    src dump "$1" >"$WORK/src.$1" || fail "dumping $1 on the source failed"
    dst dump "$1" >"$WORK/dst.$1" || fail "dumping $1 on the target failed"
    "$PY" - "$WORK/src.$1" "$WORK/dst.$1" "$1" <<'PY' || fail "$1 differs between the source and the target (see above)"
import sys
def load(path):
    parts = {}
    for l in open(path):
        p, off, key, value = l.rstrip("\n").split("\t", 3)
        parts.setdefault(int(p), []).append((int(off), key, value))
    return parts
src, dst, topic = load(sys.argv[1]), load(sys.argv[2]), sys.argv[3]
bad = False
for p in sorted(set(src) | set(dst)):
    a, b = src.get(p, []), dst.get(p, [])
    if [r[1:] for r in a] != [r[1:] for r in b]:
        i = next((i for i, (x, y) in enumerate(zip(a, b)) if x[1:] != y[1:]), min(len(a), len(b)))
        print(f"FAIL: {topic} partition {p}: {len(a)} records on the source, {len(b)} on the target; "
              f"first difference at record {i}: {a[i] if i < len(a) else None} vs {b[i] if i < len(b) else None}",
              file=sys.stderr)
        bad = True
if not bad:
    n = sum(len(v) for v in src.values())
    same = all([r[0] for r in src[p]] == [r[0] for r in dst[p]] for p in src)
    print(f"{topic}: {n} records, the same keys and values in the same order per partition on both "
          f"({'same' if same else 'different'} offsets)")
sys.exit(1 if bad else 0)
PY
}
compare "$orders"
compare "$accounts"

# The cut-over: G reads what the source holds, commits, stops.
src group-read "$orders" --group "$group" --to-end >"$WORK/read.source" 2>"$WORK/read.source.err" \
    || { cat "$WORK/read.source.err" >&2; fail "group $group on the source failed"; }
stopped=$(now_ms)
[ "$(wc -l <"$WORK/read.source")" -eq "$PHASE1" ] \
    || fail "group $group read $(wc -l <"$WORK/read.source") records on the source, want $PHASE1"
src committed "$orders" --group "$group" >"$WORK/committed.source" || fail "reading $group's offsets on the source failed"
say "group $group read $PHASE1 records on the source, committed ($(tr '\t\n' '= ' <"$WORK/committed.source")) and stopped"

# translated: the group has a committed offset for every partition on the
# target.
translated() {
    dst committed "$orders" --group "$group" >"$WORK/committed.target" 2>/dev/null || return 1
    [ "$(awk '$2 >= 0' "$WORK/committed.target" | wc -l)" -eq 3 ]
}
wait_until "group $group's offsets on the target" "$TRANSLATE_TIMEOUT" translated
say "group $group's offsets on the target ($(tr '\t\n' '= ' <"$WORK/committed.target")) $(secs_since "$stopped")s after it stopped"

produced=$(now_ms)
src produce "$orders" --partitions 3 --first "$PHASE1" --count "$PHASE2" --prefix order >/dev/null \
    || fail "producing to $orders on the source failed"
acked=$(now_ms)
wait_until "$(( PHASE1 + PHASE2 )) records of $orders on the target" "$COPY_TIMEOUT" copied "$orders" $(( PHASE1 + PHASE2 ))
say "$PHASE2 more records produced on the source in $(( acked - produced )) ms; on the target $(secs_since "$acked")s after the last acknowledgement"
compare "$orders"

# The application moves: G on the target, from its committed offsets only.
dst group-read "$orders" --group "$group" --to-end --reset error >"$WORK/read.target" 2>"$WORK/read.target.err" \
    || { cat "$WORK/read.target.err" >&2; fail "group $group on the target failed"; }
"$PY" - "$WORK/read.source" "$WORK/read.target" "$WORK/committed.source" "$WORK/committed.target" \
    "$WORK/dst.$orders" "$OFFSET_LAG_MAX" <<'PY' || fail "group $group did not resume on the target where it stopped on the source (see above)"
import sys
def rows(path):
    out = []
    for l in open(path):
        p, off, key, value = l.rstrip("\n").split("\t", 3)
        out.append((int(p), int(off), key, value))
    return out
def offsets(path):
    return {int(p): int(o) for p, o in (l.split() for l in open(path))}
on_source, on_target = rows(sys.argv[1]), rows(sys.argv[2])
max_reread = int(sys.argv[6])
committed_source, committed_target = offsets(sys.argv[3]), offsets(sys.argv[4])
topic = {}
for p, off, key, value in rows(sys.argv[5]):
    topic.setdefault(p, []).append((off, key, value))
bad = False
reread = 0
for p in sorted(topic):
    src_part = [(k, v) for q, _, k, v in on_source if q == p]
    dst_part = [(o, k, v) for q, o, k, v in on_target if q == p]
    start = committed_target[p]
    if start > committed_source[p]:
        print(f"FAIL: partition {p}: translated offset {start} is past the source's {committed_source[p]}: "
              f"records {committed_source[p]}..{start - 1} would be lost", file=sys.stderr)
        bad = True
    want = [r for r in topic[p] if r[0] >= start]
    if dst_part != want:
        i = next((i for i, (x, y) in enumerate(zip(dst_part, want)) if x != y), min(len(dst_part), len(want)))
        print(f"FAIL: partition {p}: the target member read {len(dst_part)} records, want {len(want)} "
              f"(from offset {start} to the end); first difference at {i}: "
              f"{dst_part[i] if i < len(dst_part) else None} vs {want[i] if i < len(want) else None}", file=sys.stderr)
        bad = True
    read = set(src_part) | {(k, v) for _, k, v in dst_part}
    missing = [(k, v) for _, k, v in topic[p] if (k, v) not in read]
    if missing:
        print(f"FAIL: partition {p}: {len(missing)} records read by neither, e.g. {missing[:3]}", file=sys.stderr)
        bad = True
    again = len(set(src_part) & {(k, v) for _, k, v in dst_part})
    if again > max_reread:
        print(f"FAIL: partition {p}: the target member read {again} records again, more than "
              f"offset.lag.max={max_reread}: the offsets were not translated from the latest offset sync",
              file=sys.stderr)
        bad = True
    reread += again
if not bad:
    print(f"group resumed on the target: {len(on_target)} records read there, {len(on_source)} on the source, "
          f"none lost; {reread} read again")
sys.exit(1 if bad else 0)
PY
say "MirrorMaker 2 migration done: topics, configs, records and group offsets on the target"
