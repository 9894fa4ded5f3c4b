#!/usr/bin/env bash
# The consumer group protocol of KIP-848 (group.protocol=consumer) with the
# Java client, next to the classic protocol, on one cluster. Each scenario is
# GroupSettle (compat/java/.../GroupSettle.java) on a topic of its own with
# 12 partitions: a producer writes RATE records/s over the 12 partitions for
# the whole scenario, the members (threads of one JVM, each its own
# KafkaConsumer) process each record, commit after each batch and, for
# revoked partitions, in onPartitionsRevoked. In every scenario each
# acknowledged record must be processed exactly once (0 lost, 0 duplicates,
# none unexpected), no two members may own a partition at once, no
# assignment may change once the group has settled, and the group's
# committed offsets must end at the end offsets. Records in flight when a
# partition moves: a member processes only what poll returned, and the
# revocation callback runs inside poll, between batches, so the old owner's
# commit covers exactly what it processed; records it had fetched but poll
# had not returned are dropped and read again by the new owner from that
# commit. So any duplicate or gap is a failure.
#
#   1. consumer: 2 members with group.protocol=consumer (the broker's
#      default server-side assignor, uniform), then a 3rd joins; the settle
#      time is measured (see below). While the 3 members run,
#      kafka-consumer-groups --describe --state shows the group Stable with
#      the uniform assignor and 3 members; --describe --members --verbose
#      shows each member (by client id) with 4 partitions, its current
#      assignment equal to its target and to what the member itself owns;
#      --describe shows each of the 12 partitions owned by a member.
#   2. classic: the same with group.protocol=classic and the Java client's
#      default assignors (range, then cooperative-sticky: the group uses
#      range, an eager protocol; COMPAT_CP_CLASSIC_ASSIGNOR=cooperative-sticky
#      picks that one). Prints both settle times and their ratio
#      consumer/classic; performance is printed, not asserted.
#   3. range: as 1 with group.remote.assignor=range: --describe --state shows
#      the range assignor and each member owns 4 consecutive partitions.
#   4. upgrade: 2 classic members, then a consumer member joins the same
#      group (Kafka's default group.consumer.migration.policy, bidirectional,
#      converts it to a consumer group), then each classic member is
#      restarted with group.protocol=consumer, one at a time. At the end,
#      kafka-groups --list shows the group with type Consumer, and
#      --describe --members --verbose its 3 members as in 1. kafka-groups
#      --list also shows 1 and 3 as Consumer and 2 as Classic.
#
# Settle time: from just before the new member's subscribe() until the
# moment from which every partition is owned by exactly one member (as the
# members' rebalance listeners report), each member owns 4, and each member
# has received a record from each of its partitions since it was assigned
# it, provided that this then holds for STABLE_MS (not counted).
#
# First, ApiVersions (kafka-broker-api-versions) must list
# ConsumerGroupHeartbeat (68) and ConsumerGroupDescribe (69) on every broker;
# the test stops there otherwise.
#
# Timeouts (s): SETTLE_TIMEOUT bounds each settle, DRAIN_TIMEOUT the
# delivery of every record after the producer stops, HOLD_TIMEOUT how long a
# scenario waits to be inspected, DESCRIBE_TIMEOUT the wait for the group to
# show Stable.
. "$(dirname "$0")/lib.sh"

PARTITIONS=12
RATE="${COMPAT_CP_RATE:-1200}"
STABLE_MS="${COMPAT_CP_STABLE_MS:-2000}"
SETTLE_TIMEOUT="${COMPAT_CP_SETTLE_TIMEOUT:-60}"
DRAIN_TIMEOUT="${COMPAT_CP_DRAIN_TIMEOUT:-60}"
HOLD_TIMEOUT="${COMPAT_CP_HOLD_TIMEOUT:-120}"
DESCRIBE_TIMEOUT="${COMPAT_CP_DESCRIBE_TIMEOUT:-15}"
CLASSIC_ASSIGNOR="${COMPAT_CP_CLASSIC_ASSIGNOR:-}"

# The new APIs, on every broker, or stop now.
kjava org.apache.kafka.tools.BrokerApiVersionsCommand --bootstrap-server "$KAFKA_BOOTSTRAP" >"$WORK/apis" 2>&1 \
    || { tail -5 "$WORK/apis" >&2; fail "kafka-broker-api-versions failed"; }
for api in 'ConsumerGroupHeartbeat(68)' 'ConsumerGroupDescribe(69)'; do
    usable=$(grep -F "$api: " "$WORK/apis" | grep -c 'usable' || true)
    [ "$usable" -eq "$COMPAT_BROKERS" ] || fail "ApiVersions must list $api on each of the $COMPAT_BROKERS brokers; listed usable on $usable ($(grep -m1 -F "$api: " "$WORK/apis" | tr -d '\t,' || echo "absent from the response"))"
done
say "ApiVersions: ConsumerGroupHeartbeat and ConsumerGroupDescribe on all $COMPAT_BROKERS brokers"

cgc() { kjava org.apache.kafka.tools.consumer.group.ConsumerGroupCommand --bootstrap-server "$KAFKA_BOOTSTRAP" "$@"; }
pid=""
trap '[ -z "$pid" ] || kill "$pid" 2>/dev/null || true; rm -rf "$WORK"' EXIT

# scenario NAME INSPECT ARGS...: runs GroupSettle on topic and group
# compat-cp-NAME-RUN_ID with ARGS; with INSPECT (a function, or "-" for none)
# the group is held after it settled while INSPECT GROUP TOPIC OUT runs.
scenario() {
    local name=$1 inspect=$2; shift 2
    local topic="compat-cp-$name-$RUN_ID" group="compat-cp-$name-$RUN_ID" out="$WORK/$name.out" hold=()
    kjava org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA_BOOTSTRAP" --create --topic "$topic" \
        --partitions "$PARTITIONS" --replication-factor "$COMPAT_RF" >/dev/null || fail "creating $topic failed"
    [ "$inspect" = - ] || hold=(--hold-file "$WORK/$name.go")
    kjava_bg "$out" "$WORK/$name.err" dev.rill.compat.GroupSettle --topic "$topic" --group "$group" \
        --partitions "$PARTITIONS" --rate "$RATE" --stable-ms "$STABLE_MS" --settle-timeout-s "$SETTLE_TIMEOUT" \
        --drain-timeout-s "$DRAIN_TIMEOUT" --hold-timeout-s "$HOLD_TIMEOUT" "${hold[@]}" "$@"
    pid=$!
    if [ "$inspect" != - ]; then
        held() { grep -qs '^HOLD ' "$out" || ! kill -0 "$pid" 2>/dev/null; }
        wait_until "$name: the group to settle" $((SETTLE_TIMEOUT * 4 + 30)) held
        if grep -q '^HOLD ' "$out"; then
            "$inspect" "$group" "$topic" "$out"
            touch "$WORK/$name.go"
        fi
    fi
    local rc=0
    wait "$pid" || rc=$?
    pid=""
    { grep -E '^(SETTLE|RESULT|NOTE|  )' "$out" || true; } | sed "s/^/    $name: /"
    if ! grep -qx OK "$out"; then
        { grep -E '^(START|ASSIGNED|REVOKED|LOST|CLOSED|ERROR)' "$out" || true; } | tail -30 >&2
        errors_in "$WORK/$name.err" | head -5 >&2
        fail "$name: $(grep -m1 '^FAIL' "$out" | sed 's/^FAIL: //' || echo "GroupSettle exited $rc without a verdict")"
    fi
}

# settle_ms NAME STEP: the settle time GroupSettle printed for that step.
settle_ms() { sed -n "s/^SETTLE step=$2 .* ms=\([0-9]*\) .*/\1/p" "$WORK/$1.out"; }

# check_members GROUP TOPIC OUT STRATEGY: --describe --state shows the group
# Stable with STRATEGY and 3 members; --describe --members --verbose shows
# each member with 4 partitions, current assignment = target assignment =
# what the member owns (its SETTLED line in OUT); --describe shows each
# partition owned by a member.
check_members() {
    local group=$1 topic=$2 out=$3 strategy=$4
    stable() {
        cgc --describe --group "$group" --state >"$WORK/state" 2>&1 || return 1
        awk -v g="$group" '$1 == g && $0 ~ / Stable / { found = 1 } END { exit !found }' "$WORK/state"
    }
    if ! wait_until_quiet "$DESCRIBE_TIMEOUT" stable; then
        cat "$WORK/state" >&2
        fail "kafka-consumer-groups --describe --state must show $group Stable within ${DESCRIBE_TIMEOUT}s"
    fi
    cat "$WORK/state"
    cgc --describe --group "$group" --members --verbose >"$WORK/members" 2>&1 || { cat "$WORK/members" >&2; fail "--describe --members --verbose failed"; }
    cat "$WORK/members"
    cgc --describe --group "$group" >"$WORK/offsets" 2>&1 || { cat "$WORK/offsets" >&2; fail "--describe failed"; }
    "$PY" - "$group" "$topic" "$out" "$strategy" "$PARTITIONS" "$WORK/state" "$WORK/members" "$WORK/offsets" <<'PY' || fail "kafka-consumer-groups does not show $group as its members see it (above)"
import re, sys
group, topic, out, strategy, parts = sys.argv[1:6]
parts = int(parts)
state, members, offsets = (open(f).read().splitlines() for f in sys.argv[6:9])
bad = []

def table(lines, first):
    """The rows of the table whose header has column FIRST, as dicts. The
    tool pads each column to the width of its longest value, so a value
    starts where its header starts (an empty value is an empty string)."""
    hdr = [i for i, l in enumerate(lines) if l.split()[:1] == ["GROUP"] and first in l.split()]
    if not hdr:
        return None, []
    h = lines[hdr[0]]
    starts = [m.start() for m in re.finditer(r"\S+(?: \(\S+\))?", h)]
    cols = [h[a:b].strip() for a, b in zip(starts, starts[1:] + [None])]
    rows = []
    for l in lines[hdr[0] + 1:]:
        if l.split()[:1] == [group]:
            rows.append({c: l[a:b].strip() for c, a, b in zip(cols, starts, starts[1:] + [None])})
    return cols, rows

cols, rows = table(state, "ASSIGNMENT-STRATEGY")
if not rows:
    bad.append("--describe --state: no row for the group")
else:
    r = rows[0]
    if (r.get("ASSIGNMENT-STRATEGY"), r.get("STATE"), r.get("#MEMBERS")) != (strategy, "Stable", "3"):
        bad.append(f"--describe --state: strategy {r.get('ASSIGNMENT-STRATEGY')!r}, state {r.get('STATE')!r}, "
                   f"{r.get('#MEMBERS')!r} members; expected {strategy}, Stable, 3")

# What each member owns, by client id, from GroupSettle's SETTLED lines.
own = {}
for l in open(out):
    m = re.match(r"SETTLED (\S+) protocol=\S+ partitions=(\S+)", l)
    if m:
        own[f"{group}-{m.group(1)}"] = m.group(2)
cols, rows = table(members, "CURRENT-ASSIGNMENT")
if cols is None:
    bad.append("--describe --members --verbose: no CURRENT-ASSIGNMENT column (not shown as a consumer-protocol group)")
else:
    seen = {}
    for d in rows:
        cid = d.get("CLIENT-ID")
        if not d.get("HOST"):
            bad.append(f"member {cid}: no HOST (Kafka shows the client's address, /127.0.0.1)")
        cur = d.get("CURRENT-ASSIGNMENT", "")
        tgt = d.get("TARGET-ASSIGNMENT", "")
        seen[cid] = cur
        if d.get("#PARTITIONS") != str(parts // 3):
            bad.append(f"member {cid}: #PARTITIONS {d.get('#PARTITIONS')}, expected {parts // 3}")
        if cur != tgt:
            bad.append(f"member {cid}: current assignment {cur} differs from its target {tgt}")
        if cur != f"{topic}:{own.get(cid)}":
            bad.append(f"member {cid}: the group shows {cur}, the member owns {topic}:{own.get(cid)}")
    if sorted(seen) != sorted(own):
        bad.append(f"members shown: {sorted(seen)}, expected {sorted(own)}")

cols, rows = table(offsets, "CONSUMER-ID")
owned = sorted(int(d["PARTITION"]) for d in rows if d.get("TOPIC") == topic and d.get("CONSUMER-ID", "-") not in ("-", ""))
if owned != list(range(parts)):
    bad.append(f"--describe: partitions with a consumer {owned}, expected 0..{parts - 1}")
for b in bad:
    print("  " + b)
sys.exit(1 if bad else 0)
PY
    say "kafka-consumer-groups shows $group Stable, assignor $strategy, 3 members with 4 partitions each, as the members see them"
}

# wait_until_quiet SECONDS CMD: like wait_until, but returns 1 instead of failing.
wait_until_quiet() {
    local deadline=$(( SECONDS + $1 )); shift
    until "$@"; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.5
    done
}

inspect_uniform() { check_members "$1" "$2" "$3" uniform; }
inspect_range() { check_members "$1" "$2" "$3" range; }
inspect_upgrade() {
    check_members "$1" "$2" "$3" uniform
    kjava org.apache.kafka.tools.GroupsCommand --bootstrap-server "$KAFKA_BOOTSTRAP" --list >"$WORK/groups" 2>&1 \
        || { cat "$WORK/groups" >&2; fail "kafka-groups --list failed"; }
    awk -v g="$1" '$1 == g' "$WORK/groups"
    awk -v g="$1" '$1 == g && $2 == "Consumer" && $3 == "consumer" { found = 1 } END { exit !found }' "$WORK/groups" \
        || fail "after the upgrade kafka-groups --list must show $1 with type Consumer, protocol consumer; shows: $(awk -v g="$1" '$1 == g' "$WORK/groups")"
}

scenario consumer inspect_uniform --plan join --protocol consumer
consumer_ms=$(settle_ms consumer join)
say "consumer protocol: the 3rd member settled in $consumer_ms ms"

scenario classic - --plan join --protocol classic ${CLASSIC_ASSIGNOR:+--classic-assignor "$CLASSIC_ASSIGNOR"}
classic_ms=$(settle_ms classic join)
say "classic protocol (${CLASSIC_ASSIGNOR:-range, by default}): the 3rd member settled in $classic_ms ms"
say "SETTLE consumer=${consumer_ms}ms classic=${classic_ms}ms ratio consumer/classic=$(awk -v c="$consumer_ms" -v k="$classic_ms" 'BEGIN { printf "%.2f", (k > 0 ? c / k : 0) }')"

scenario range inspect_range --plan join --protocol consumer --remote-assignor range
"$PY" - "$WORK/range.out" "$PARTITIONS" <<'PY' || fail "with group.remote.assignor=range each member must own $((PARTITIONS / 3)) consecutive partitions"
import re, sys
parts = int(sys.argv[2])
got = {}
for l in open(sys.argv[1]):
    m = re.match(r"SETTLED (\S+) protocol=consumer partitions=(\S+)", l)
    if m:
        got[m.group(1)] = [int(p) for p in m.group(2).split(",")]
bad = [f"{m}: {ps}" for m, ps in got.items() if len(ps) != parts // 3 or ps != list(range(ps[0], ps[0] + len(ps)))]
print("  range assignment: " + ", ".join(f"{m}={ps[0]}-{ps[-1]}" for m, ps in sorted(got.items())))
if len(got) != 3 or bad:
    print("  not consecutive or not balanced: " + "; ".join(bad))
    sys.exit(1)
PY
say "range assignor: each member owns $((PARTITIONS / 3)) consecutive partitions"

scenario upgrade inspect_upgrade --plan upgrade ${CLASSIC_ASSIGNOR:+--classic-assignor "$CLASSIC_ASSIGNOR"}
say "upgrade: classic group -> consumer member joined in $(settle_ms upgrade consumer-joins) ms; m1 restarted as a consumer member in $(settle_ms upgrade restart-m1) ms, m2 in $(settle_ms upgrade restart-m2) ms; 0 lost, 0 duplicates"

kjava org.apache.kafka.tools.GroupsCommand --bootstrap-server "$KAFKA_BOOTSTRAP" --list >"$WORK/groups" 2>&1 \
    || { cat "$WORK/groups" >&2; fail "kafka-groups --list failed"; }
for want in consumer:Consumer classic:Classic range:Consumer upgrade:Consumer; do
    g="compat-cp-${want%%:*}-$RUN_ID"
    awk -v g="$g" -v t="${want#*:}" '$1 == g && $2 == t && $3 == "consumer" { found = 1 } END { exit !found }' "$WORK/groups" \
        || fail "kafka-groups --list must show $g with type ${want#*:} and protocol consumer; shows: $(awk -v g="$g" '$1 == g' "$WORK/groups")"
done
say "kafka-groups --list: the consumer, range and upgraded groups are Consumer groups, the classic one Classic"
