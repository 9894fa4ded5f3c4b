#!/usr/bin/env bash
# Share groups (KIP-932): the Java KafkaShareConsumer (ShareWork, explicit
# acknowledgement) and kafka-share-groups (ShareGroupCommand).
#   0. Every broker's ApiVersions lists ShareGroupHeartbeat, ShareGroupDescribe,
#      ShareFetch, ShareAcknowledge and the share-group offset APIs
#      (kafka-broker-api-versions), and the finalized features include
#      share.version >= 1 (kafka-features describe); otherwise the test stops
#      here, naming what is missing.
#   1. Group configs (IncrementalAlterConfigs on GROUP resources, kafka-configs
#      --entity-type groups): a lock duration below 1 s is refused naming the
#      key; group G gets share.record.lock.duration.ms=LOCK_MS and
#      share.auto.offset.reset=earliest, shown by --describe.
#   2. N records (values: ids 0..N-1) go to a one-partition topic (see Sizes)
#      while 3 share consumers of G, each its own JVM, read it, acknowledging
#      each record ACCEPT and logging every acknowledgement the broker
#      confirmed. Once all 3 have accepted records, `--describe --members`
#      shows 3 members, each assigned partition 0, and `--describe --state`
#      Stable with 3 members. Consumer 1 then commits, acquires a batch and
#      holds it unacknowledged while staying connected. Meanwhile `--describe`
#      shows a start offset and a lag of at least the held records, and
#      `--delete` and `--reset-offsets --execute` are refused (not empty).
#      The held records are delivered to consumers 2 and 3 when their locks
#      expire: none earlier than LOCK_MS minus LOCK_SLACK_MS after the hold
#      began. Consumer 1 then ACCEPTs them after all (explicit mode wants
#      every record acknowledged before the next poll); the broker's answer
#      is printed, not checked, and those late acknowledgements are left out
#      of the counts below: Kafka 4.3.1 refuses one (INVALID_RECORD_STATE)
#      while another consumer holds the record, but confirms it once the
#      record was accepted by another consumer and the start offset moved
#      past it. It then holds a second batch and is SIGKILLed; those
#      records come back to the survivors too (Kafka releases a dead
#      connection's acquired records at once; at the latest their locks
#      expire). The survivors go on until every id is accepted. Then: every
#      id 0..N-1 was confirmed ACCEPTed exactly once across the 3 logs (the
#      killed consumer's confirmed ones count; none lost, none twice), no
#      other acknowledgement failed, every held id was accepted by a survivor
#      with delivery count >= 2, the survivors close with every
#      acknowledgement confirmed, and `--describe` shows lag 0.
#   3. A second group G2 (share.delivery.count.limit=LIMIT) on a topic of N2
#      records: one consumer ACCEPTs ids = 0 mod 3, REJECTs ids = 1 and RELEASEs
#      ids = 2 (mod 3) on every delivery, each acknowledgement confirmed
#      (commitSync: ShareAcknowledge). Accepted and rejected ids are
#      delivered once; released ids come back with delivery counts 1..LIMIT
#      and are then archived, never delivered again within QUIET_MS.
#   4. kafka-share-groups on the empty G2: `--list` shows G and G2 (`--state`:
#      G2 Empty), `--describe` lag 0, `--describe --members` no active
#      members, `--reset-offsets --to-earliest --execute` sets the start
#      offset 0 and `--describe` then shows lag N2, `--delete-offsets` removes
#      it, `--delete` deletes G2 and `--list` no longer shows it.
# It prints the counts, the time from the kill to the redeliveries and each
# phase's time.
#
# Sizes: N (COMPAT_SHARE_RECORDS, 100000): all but the last 2 CHUNKs (1000
# each) are written at RATE (COMPAT_SHARE_RATE, 5000 records/s) from when
# the consumers start, and each chunk at CHUNK_RATE (250/s) when consumer 1
# is asked to hold (so there are new records to hold); N2 (30), LIMIT (3).
# LOCK_MS: G's share.record.lock.duration.ms; 15000 is the least Kafka allows
# by default (group.share.min.record.lock.duration.ms).
# Timeouts (s): JOIN_TIMEOUT, for each consumer's first confirmed ACCEPT;
# HOLD_TIMEOUT, for consumer 1 to hold records once asked; EXPIRY_TIMEOUT,
# for the held records to reach the other consumers (the lock duration plus
# 30 s); DRAIN_TIMEOUT, for every id to be accepted after the kill (the lock
# duration plus the rest of the production plus 60 s); STOP_TIMEOUT, for a
# consumer to close once asked; RR_TIMEOUT, for the release/reject consumer's
# run. LOCK_SLACK_MS: how much
# earlier than LOCK_MS after the hold began a held record may come back (the
# held records may have been fetched shortly before). QUIET_MS: how long the
# release/reject consumer polls after its last record to see that nothing
# more comes.
. "$(dirname "$0")/lib.sh"

N="${COMPAT_SHARE_RECORDS:-100000}"
RATE="${COMPAT_SHARE_RATE:-5000}"
CHUNK=1000
CHUNK_RATE=250
N2=30
LIMIT=3
LOCK_MS="${COMPAT_SHARE_LOCK_MS:-15000}"
LOCK_SLACK_MS=3000
WORK_US=20
JOIN_TIMEOUT=60
HOLD_TIMEOUT=30
EXPIRY_TIMEOUT=$(( LOCK_MS / 1000 + 30 ))
DRAIN_TIMEOUT=$(( LOCK_MS / 1000 + N / RATE + 60 ))
STOP_TIMEOUT=30
RR_TIMEOUT=60
QUIET_MS=3000

topic="compat-share-$RUN_ID"; group="compat-share-$RUN_ID"
topic2="compat-share-rr-$RUN_ID"; group2="compat-share-rr-$RUN_ID"
pids=()
# On failure the consumers' logs are kept in COMPAT_LOGS/share-groups-work.
cleanup() {
    local rc=$?
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null && { wait "$p" 2>/dev/null || true; }; done
    if [ "$rc" -ne 0 ] && [ -n "${COMPAT_LOGS:-}" ]; then
        rm -rf "$COMPAT_LOGS/share-groups-work" && cp -r "$WORK" "$COMPAT_LOGS/share-groups-work" || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
sg() { kjava org.apache.kafka.tools.consumer.group.ShareGroupCommand --bootstrap-server "$KAFKA_BOOTSTRAP" "$@"; }
cfg() { kjava kafka.admin.ConfigCommand --bootstrap-server "$KAFKA_BOOTSTRAP" --entity-type groups "$@"; }
# field FILE KEYCOL KEY COL: in a tool's table, column COL of the row whose
# column KEYCOL is KEY (KEYCOL's header line starts the table).
field() {
    awk -v kc="$2" -v k="$3" -v c="$4" '
        !hdr { for (i = 1; i <= NF; i++) if ($i == kc) { hdr = 1; for (j = 1; j <= NF; j++) h[$j] = j; next } next }
        $h[kc] == k { print $h[c]; exit }' "$1"
}
is_number() { [[ "$1" =~ ^[0-9]+$ ]]; }
now_ms() { date +%s%3N; }

# --- 0. ApiVersions and features ------------------------------------------------
kjava org.apache.kafka.tools.BrokerApiVersionsCommand --bootstrap-server "$KAFKA_BOOTSTRAP" >"$WORK/apis" 2>&1 \
    || { tail -5 "$WORK/apis" >&2; fail "kafka-broker-api-versions failed"; }
missing=()
for api in 'ShareGroupHeartbeat(76)' 'ShareGroupDescribe(77)' 'ShareFetch(78)' 'ShareAcknowledge(79)' \
    'DescribeShareGroupOffsets(90)' 'AlterShareGroupOffsets(91)' 'DeleteShareGroupOffsets(92)'; do
    served=$(grep -cF "$api: " "$WORK/apis" || true)
    unsupported=$(grep -F "$api: " "$WORK/apis" | grep -c UNSUPPORTED || true)
    if [ "$served" -lt "$COMPAT_BROKERS" ] || [ "$unsupported" -gt 0 ]; then
        missing+=("$api on $((served - unsupported)) of $COMPAT_BROKERS brokers ($(grep -m1 -F "$api: " "$WORK/apis" | tr -d '\t,' || echo 'not listed'))")
    fi
done
[ ${#missing[@]} -eq 0 ] || fail "ApiVersions (kafka-broker-api-versions): every broker must serve the share-group APIs; served: $(printf '%s; ' "${missing[@]}")"
say "ApiVersions: every broker serves $(grep -m1 -F 'ShareFetch(78): ' "$WORK/apis" | tr -d '\t,'), $(grep -m1 -F 'ShareGroupHeartbeat(76): ' "$WORK/apis" | tr -d '\t,') and the other share-group APIs"
kjava org.apache.kafka.tools.FeatureCommand --bootstrap-server "$KAFKA_BOOTSTRAP" describe >"$WORK/features" 2>&1 \
    || { tail -5 "$WORK/features" >&2; fail "kafka-features describe failed"; }
share_level=$(awk '$1 == "Feature:" && $2 == "share.version" { for (i = 3; i < NF; i++) if ($i == "FinalizedVersionLevel:") print $(i + 1) }' "$WORK/features")
is_number "${share_level:-x}" && [ "$share_level" -ge 1 ] \
    || { cat "$WORK/features" >&2; fail "kafka-features describe must show share.version with FinalizedVersionLevel >= 1 (share groups on); saw '${share_level:-no share.version}'"; }
say "features: share.version finalized at level $share_level"

# --- 1. topics and group configs ------------------------------------------------
for t in "$topic" "$topic2"; do
    kjava org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA_BOOTSTRAP" --create --topic "$t" \
        --partitions 1 --replication-factor "$COMPAT_RF" || fail "creating $t failed"
done
if cfg --entity-name "$group" --alter --add-config share.record.lock.duration.ms=100 >"$WORK/cfg-bad" 2>&1 \
    || ! grep -q 'share.record.lock.duration.ms' "$WORK/cfg-bad"; then
    tail -5 "$WORK/cfg-bad" >&2
    fail "kafka-configs must refuse share.record.lock.duration.ms=100 for group $group, naming the key"
fi
cfg --entity-name "$group" --alter --add-config "share.record.lock.duration.ms=$LOCK_MS,share.auto.offset.reset=earliest" \
    >"$WORK/cfg" 2>&1 || { tail -5 "$WORK/cfg" >&2; fail "kafka-configs --alter on group $group failed"; }
cfg --entity-name "$group2" --alter --add-config "share.delivery.count.limit=$LIMIT,share.auto.offset.reset=earliest" \
    >"$WORK/cfg2" 2>&1 || { tail -5 "$WORK/cfg2" >&2; fail "kafka-configs --alter on group $group2 failed"; }
cfg --entity-name "$group" --describe >"$WORK/cfg-describe" 2>&1 || { cat "$WORK/cfg-describe" >&2; fail "kafka-configs --describe on group $group failed"; }
for kv in "share.record.lock.duration.ms=$LOCK_MS" share.auto.offset.reset=earliest; do
    grep -q "^ *$kv .*DYNAMIC_GROUP_CONFIG:$kv" "$WORK/cfg-describe" \
        || { cat "$WORK/cfg-describe" >&2; fail "kafka-configs --describe of group $group must show $kv (DYNAMIC_GROUP_CONFIG)"; }
done
say "group configs: a 100 ms lock refused; $group has share.record.lock.duration.ms=$LOCK_MS, $group2 share.delivery.count.limit=$LIMIT"

# --- 2. three share consumers, one killed while holding records ----------------
t_phase=$SECONDS
# produce NAME FIRST COUNT RATE: SeqProducer in the background writing ids
# FIRST..FIRST+COUNT-1 at RATE/s; checked at the end.
producers=()
produce() {
    kjava_bg "$WORK/$1.out" "$WORK/$1.err" dev.rill.compat.SeqProducer --topic "$topic" --first "$2" --count "$3" --rate "$4"
    pids+=($!); producers+=("$1:$!:$3")
}
produce producer 0 $(( N - 2 * CHUNK )) "$RATE"
for i in 1 2 3; do
    kjava_bg "$WORK/c$i.out" "$WORK/c$i.err" dev.rill.compat.ShareWork --topic "$topic" --group "$group" \
        --log "$WORK/c$i.log" --hold-file "$WORK/hold$i" --late-ack-file "$WORK/late-ack$i" --stop-file "$WORK/stop" \
        --work-us "$WORK_US" --client-id "compat-share-c$i"
    pids+=($!); eval "c${i}_pid=$!"
done
# accepted_by I: how many acknowledgements consumer I logged as confirmed ACCEPTs.
accepted_by() { if [ -f "$WORK/c$1.log" ]; then grep -c '^ACK ACCEPT ' "$WORK/c$1.log" || true; else echo 0; fi; }
has_accepted() {
    [ "$(accepted_by "$1")" -gt 0 ] && return 0
    local pid; pid=$(eval echo "\$c${1}_pid")
    kill -0 "$pid" 2>/dev/null || { tail -20 "$WORK/c$1.err" >&2; fail "consumer $1 exited before accepting a record"; }
    return 1
}
for i in 1 2 3; do wait_until "consumer $i to have an acknowledgement confirmed" "$JOIN_TIMEOUT" has_accepted "$i"; done
say "all 3 consumers accepted records after $(( SECONDS - t_phase ))s"

sg --describe --group "$group" --members >"$WORK/members" 2>&1 &
members_job=$!
sg --describe --group "$group" --state >"$WORK/state" 2>&1 || true
wait "$members_job" || true
cat "$WORK/members" "$WORK/state"
n_members=$(awk -v t="$topic:0" 'hdr && NF >= 6 && $NF == t { n++ } /CONSUMER-ID/ && /ASSIGNMENT/ { hdr = 1 } END { print n + 0 }' "$WORK/members")
[ "$n_members" -eq 3 ] || fail "--describe --members must show 3 members each assigned $topic:0; saw $n_members"
[ "$(field "$WORK/state" GROUP "$group" STATE)" = Stable ] && [ "$(field "$WORK/state" GROUP "$group" '#MEMBERS')" = 3 ] \
    || fail "--describe --state must show $group Stable with 3 members"
counts="$(accepted_by 1)/$(accepted_by 2)/$(accepted_by 3)"
for i in 1 2 3; do [ "$(accepted_by "$i")" -gt 0 ] || fail "consumer $i has no accepted record before the kill (counts $counts)"; done

# Each hold gets a chunk of new records of its own, written slowly so that
# every consumer fetches some of them, whether or not the main production
# is still running.
touch "$WORK/hold1"
produce chunk1 $(( N - 2 * CHUNK )) "$CHUNK" "$CHUNK_RATE"
# holding R: consumer 1 reports holding its round R of records.
holding() {
    grep -q "^HOLDING round=$1 " "$WORK/c1.out" && return 0
    kill -0 "$c1_pid" 2>/dev/null || { tail -20 "$WORK/c1.err" >&2; fail "consumer 1 exited instead of holding records"; }
    return 1
}
wait_until "consumer 1 to hold acquired records" "$HOLD_TIMEOUT" holding 1
hold1=$(grep -m1 '^HOLDING round=1 ' "$WORK/c1.out")
[[ "$hold1" == *" unconfirmed=0 "* ]] || fail "consumer 1 holds records with acknowledgements still unconfirmed after commitSync: $hold1"
since1=$(sed -n 's/.* since=\([0-9]*\).*/\1/p' <<<"$hold1")
held1=$(awk '$1 == "HELD" && $2 == 1' "$WORK/c1.log" | wc -l)
[ "$held1" -gt 0 ] || fail "consumer 1 reported holding records but logged none"
total=$(cat "$WORK"/c?.log | grep -c '^ACK ACCEPT ' || true)
say "consumer 1 holds $held1 acquired records unacknowledged after $(( SECONDS - t_phase ))s; accepted per consumer: $counts (total $total of $N)"

# While they are locked: the group has members and records in flight.
sg --describe --group "$group" >"$WORK/describe-locked" 2>&1 || true
cat "$WORK/describe-locked"
start=$(field "$WORK/describe-locked" TOPIC "$topic" START-OFFSET); lag=$(field "$WORK/describe-locked" TOPIC "$topic" LAG)
is_number "${start:-x}" && is_number "${lag:-x}" && [ "$start" -le "$N" ] && [ "$lag" -ge "$held1" ] \
    || fail "--describe while records are held must show $topic partition 0 with a START-OFFSET <= $N and a LAG of at least the $held1 held records; saw START-OFFSET '${start:-}' LAG '${lag:-}'"
sg --delete --group "$group" >"$WORK/delete-busy" 2>&1 || true
cat "$WORK/delete-busy"
grep -qi 'not empty' "$WORK/delete-busy" || fail "--delete of $group with members must be refused (GroupNotEmptyException: not empty)"
sg --reset-offsets --to-earliest --execute --group "$group" --topic "$topic" >"$WORK/reset-busy" 2>&1 || true
cat "$WORK/reset-busy"
grep -qi 'not empty' "$WORK/reset-busy" || fail "--reset-offsets --execute on $group with members must be refused (not empty)"
say "while held: start offset $start, lag $lag; --delete and --reset-offsets refused (group not empty)"

# The held records come back to the others once their locks expire, while
# consumer 1 is still connected.
awk '$1 == "HELD" && $2 == 1 { print $3 }' "$WORK/c1.log" | sort >"$WORK/held1"
all_back() {
    awk '$1 == "GOT" && $4 >= 2 { print $2 }' "$WORK/c2.log" "$WORK/c3.log" | sort -u | comm -23 "$WORK/held1" - | grep -q . || return 0
    for i in 2 3; do
        local pid; pid=$(eval echo "\$c${i}_pid")
        kill -0 "$pid" 2>/dev/null || { tail -20 "$WORK/c$i.err" >&2; fail "consumer $i exited"; }
    done
    return 1
}
wait_until "the $held1 held records to be delivered to the other consumers when their locks expire" "$EXPIRY_TIMEOUT" all_back
say "the held records were delivered to the other consumers $(( $(now_ms) - since1 )) ms or less after consumer 1 began holding (lock $LOCK_MS ms)"

# Consumer 1 acknowledges them after all (refused), holds a second round and is killed.
touch "$WORK/late-ack1"
produce chunk2 $(( N - CHUNK )) "$CHUNK" "$CHUNK_RATE"
wait_until "consumer 1 to acknowledge late and hold a second round" "$HOLD_TIMEOUT" holding 2
late=$(grep -m1 '^LATE_ACK ' "$WORK/c1.out")
[[ "$late" == "LATE_ACK n=$held1 failed="*" unconfirmed=0" ]] \
    || fail "consumer 1 must get an answer for each of its $held1 late ACCEPTs; it reports: $late"
hold2=$(grep -m1 '^HOLDING round=2 ' "$WORK/c1.out")
held2=$(awk '$1 == "HELD" && $2 == 2' "$WORK/c1.log" | wc -l)
kill -KILL "$c1_pid"; wait "$c1_pid" 2>/dev/null || true
kill_ms=$(now_ms)
say "late ACCEPTs answered ($late); consumer 1 SIGKILLed holding $held2 records (round 2) after $(( SECONDS - t_phase ))s"

all_accepted() {
    # Counting the lines first keeps the polling cheap; duplicates are checked below.
    [ "$(cat "$WORK"/c?.log | grep -c '^ACK ACCEPT ' || true)" -ge "$N" ] \
        && [ "$(cat "$WORK"/c?.log | awk '$1 == "ACK" && $2 == "ACCEPT" { print $3 }' | sort -u | wc -l)" -ge "$N" ] && return 0
    for i in 2 3; do
        local pid; pid=$(eval echo "\$c${i}_pid")
        kill -0 "$pid" 2>/dev/null || { tail -20 "$WORK/c$i.err" >&2; fail "consumer $i exited before every record was accepted"; }
    done
    return 1
}
wait_until "all $N ids to be accepted (the held ones after their lock expires)" "$DRAIN_TIMEOUT" all_accepted
touch "$WORK/stop"
for i in 2 3; do
    pid=$(eval echo "\$c${i}_pid")
    stopped() { ! kill -0 "$1" 2>/dev/null; }
    wait_until "consumer $i to close" "$STOP_TIMEOUT" stopped "$pid"
    wait "$pid" || { tail -20 "$WORK/c$i.err" >&2; fail "consumer $i failed: $(tail -1 "$WORK/c$i.out")"; }
    grep -q '^DONE .* unconfirmed=0 ' "$WORK/c$i.out" || fail "consumer $i did not close with every acknowledgement confirmed: $(tail -1 "$WORK/c$i.out")"
done
for p in "${producers[@]}"; do
    IFS=: read -r name pid count <<<"$p"
    wait "$pid" || { tail -5 "$WORK/$name.err" >&2; fail "$name failed: $(tail -2 "$WORK/$name.out" | tr '\n' ' ')"; }
    grep -q "^RESULT sent=$count acked=$count errors=0" "$WORK/$name.out" || fail "$name did not write its $count records: $(grep RESULT "$WORK/$name.out")"
done

"$PY" - "$WORK" "$N" "$kill_ms" "$since1" "$LOCK_MS" "$LOCK_SLACK_MS" <<'PY' || fail "the share consumers' deliveries and acknowledgements are not as they must be (above)"
import collections, sys
work, n, kill_ms, since1, lock_ms, slack_ms = sys.argv[1], *map(int, sys.argv[2:])
accepts = collections.defaultdict(list)   # id -> [(consumer, delivery count, ms)]
fails, unknown, redelivered = [], [], set()
held = {1: set(), 2: set()}               # round -> ids consumer 1 held
back = {}                                 # id -> when consumer 2 or 3 first got it again (ms)
per, late_ok = {}, 0
for c in (1, 2, 3):
    per[c] = 0
    for line in open(f"{work}/c{c}.log"):
        f = line.split()
        if f[0] == "ACK" and f[1] == "ACCEPT":
            if c == 1 and int(f[2]) in held[1]:
                late_ok += 1  # an ACCEPT after the lock expired: the broker may drop it (see above)
                continue
            accepts[int(f[2])].append((c, int(f[4]), int(f[5])))
            per[c] += 1
        elif f[0] == "ACKFAIL":
            fails.append((c, int(f[2]), line.strip()))
        elif f[0] == "ACKUNKNOWN":
            unknown.append(f"consumer {c}: {line.strip()}")
        elif f[0] == "HELD":
            held[int(f[1])].add(int(f[2]))
        elif f[0] == "GOT" and int(f[3]) >= 2:
            redelivered.add(int(f[1]))
            if c != 1:
                back.setdefault(int(f[1]), int(f[4]))
errors = []
missing = [i for i in range(n) if i not in accepts]
twice = {i: a for i, a in accepts.items() if len(a) > 1}
extra = [i for i in accepts if not 0 <= i < n]
if missing:
    errors.append(f"{len(missing)} ids never confirmed accepted (lost), first {missing[:5]}")
if twice:
    first = sorted(twice)[:3]
    errors.append(f"{len(twice)} ids confirmed accepted more than once, e.g. " + "; ".join(f"{i}: {twice[i]}" for i in first))
if extra:
    errors.append(f"{len(extra)} accepted ids outside 0..{n - 1}, e.g. {extra[:5]}")
other_fails = [f for f in fails if f[0] != 1 or f[1] not in held[1]]
if other_fails:
    errors.append(f"{len(other_fails)} acknowledgements failed besides consumer 1's late ones, first: consumer {other_fails[0][0]}: {other_fails[0][2]}")
if unknown:
    errors.append(f"{len(unknown)} confirmations of offsets never acknowledged, first: {unknown[0]}")
for r in (1, 2):
    for i in sorted(held[r]):
        a = accepts.get(i, [])
        if not a or a[0][0] == 1 or a[0][1] < 2:
            errors.append(f"id {i}, held by consumer 1 (round {r}), must be accepted by consumer 2 or 3 with delivery count >= 2; saw {a}")
            break
early = [(i, back[i] - since1) for i in sorted(held[1]) if i in back and back[i] < since1 + lock_ms - slack_ms]
if early:
    errors.append(f"{len(early)} ids held by a live consumer were delivered to another before their {lock_ms} ms lock could expire, "
                  f"e.g. id {early[0][0]} {early[0][1]} ms after the hold began")
t1 = sorted(back[i] - since1 for i in held[1] if i in back)
t2 = sorted(back[i] - kill_ms for i in held[2] if i in back)
print(f"accepted exactly once: {len(accepts) - len(twice)} of {n} ids; per consumer {per[1]}/{per[2]}/{per[3]} "
      f"(consumer 1 killed); lost {len(missing)}, twice {len(twice)}; consumer 1's late ACCEPTs: {len(fails) - len(other_fails)} refused, {late_ok} confirmed")
print(f"redelivered (delivery count >= 2): {len(redelivered)} records; held {len(held[1])} (round 1) and {len(held[2])} (round 2, then killed)")
if t1:
    print(f"round 1 (holder alive): delivered again {t1[0]} to {t1[-1]} ms after the hold began (lock {lock_ms} ms)")
if t2:
    print(f"round 2 (holder killed): delivered again {t2[0]} to {t2[-1]} ms after the kill")
for e in errors:
    print("ERROR:", e)
sys.exit(1 if errors else 0)
PY
sg --describe --group "$group" >"$WORK/describe-done" 2>&1 || true
cat "$WORK/describe-done"
lag=$(field "$WORK/describe-done" TOPIC "$topic" LAG)
[ "${lag:-x}" = 0 ] || fail "--describe of $group after every record was accepted must show LAG 0; saw '${lag:-no row for $topic}'"
say "phase 1 (3 consumers, one killed) took $(( SECONDS - t_phase ))s"

# --- 3. release and reject ----------------------------------------------------------
t_phase=$SECONDS
kjava dev.rill.compat.SeqProducer --topic "$topic2" --count "$N2" >"$WORK/producer2.out" 2>&1 \
    && grep -q "^RESULT sent=$N2 acked=$N2 errors=0" "$WORK/producer2.out" \
    || { tail -5 "$WORK/producer2.out" >&2; fail "producing $N2 records to $topic2 failed"; }
kjava dev.rill.compat.ShareWork --mode release-reject --topic "$topic2" --group "$group2" --log "$WORK/rr.log" \
    --quiet-ms "$QUIET_MS" --timeout-s "$RR_TIMEOUT" --client-id compat-share-rr >"$WORK/rr.out" 2>"$WORK/rr.err" \
    || { tail -20 "$WORK/rr.err" >&2; fail "the release/reject consumer failed: $(tail -1 "$WORK/rr.out")"; }
grep -q '^DONE .* unconfirmed=0 ' "$WORK/rr.out" || fail "the release/reject consumer did not end with every acknowledgement confirmed: $(tail -1 "$WORK/rr.out")"
"$PY" - "$WORK/rr.log" "$N2" "$LIMIT" <<'PY' || fail "release/reject: deliveries and acknowledgements are not as Kafka's share groups define (above)"
import collections, sys
log, n, limit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
got = collections.defaultdict(list)   # id -> delivery counts, in order
acks = collections.defaultdict(list)  # id -> [(type, delivery count)]
errors = []
for line in open(log):
    f = line.split()
    if f[0] == "GOT":
        got[int(f[1])].append(int(f[3]))
    elif f[0] == "ACK":
        acks[int(f[2])].append((f[1], int(f[4])))
    else:
        errors.append(f"unexpected line: {line.strip()}")
kind = {0: "ACCEPT", 1: "REJECT", 2: "RELEASE"}
for i in range(n):
    k = kind[i % 3]
    want = list(range(1, limit + 1)) if k == "RELEASE" else [1]
    if got[i] != want:
        errors.append(f"id {i} ({k}) must be delivered with delivery counts {want}; was {got[i] or 'never'}")
    if acks[i] != [(k, c) for c in want]:
        errors.append(f"id {i} must have {k} confirmed for each delivery {want}; confirmed {acks[i]}")
if set(got) - set(range(n)):
    errors.append(f"ids outside 0..{n - 1} delivered: {sorted(set(got) - set(range(n)))[:5]}")
print(f"release/reject: {n // 3 + (n % 3 > 0)} accepted and {n // 3 + (n % 3 > 1)} rejected ids delivered once; "
      f"{n // 3} released ids delivered {limit} times each (delivery counts 1..{limit}), then archived")
for e in errors[:10]:
    print("ERROR:", e)
sys.exit(1 if errors else 0)
PY
say "phase 2 (release and reject) took $(( SECONDS - t_phase ))s"

# --- 4. kafka-share-groups on the empty group --------------------------------------
t_phase=$SECONDS
sg --list >"$WORK/list" 2>&1 || true
grep -qx "$group" "$WORK/list" && grep -qx "$group2" "$WORK/list" || { cat "$WORK/list" >&2; fail "--list must show $group and $group2"; }
sg --list --state >"$WORK/list-state" 2>&1 || true
[ "$(field "$WORK/list-state" GROUP "$group2" STATE)" = Empty ] || { cat "$WORK/list-state" >&2; fail "--list --state must show $group2 Empty"; }
sg --describe --group "$group2" >"$WORK/describe2" 2>&1 || true
cat "$WORK/describe2"
start=$(field "$WORK/describe2" TOPIC "$topic2" START-OFFSET); lag=$(field "$WORK/describe2" TOPIC "$topic2" LAG)
is_number "${start:-x}" && [ "$start" -le "$N2" ] && [ "${lag:-x}" = 0 ] \
    || fail "--describe of $group2 must show $topic2 partition 0 with a START-OFFSET <= $N2 and LAG 0 (every record accepted, rejected or archived); saw START-OFFSET '${start:-}' LAG '${lag:-}'"
sg --describe --group "$group2" --members >"$WORK/members2" 2>&1 || true
grep -q 'no active members' "$WORK/members2" || { cat "$WORK/members2" >&2; fail "--describe --members of the empty $group2 must say it has no active members"; }
sg --reset-offsets --to-earliest --execute --group "$group2" --topic "$topic2" >"$WORK/reset" 2>&1 || true
cat "$WORK/reset"
[ "$(field "$WORK/reset" TOPIC "$topic2" NEW-OFFSET)" = 0 ] || fail "--reset-offsets --to-earliest --execute on $group2 must show NEW-OFFSET 0 for $topic2"
sg --describe --group "$group2" >"$WORK/describe2-reset" 2>&1 || true
cat "$WORK/describe2-reset"
start=$(field "$WORK/describe2-reset" TOPIC "$topic2" START-OFFSET); lag=$(field "$WORK/describe2-reset" TOPIC "$topic2" LAG)
[ "${start:-x}" = 0 ] && [ "${lag:-x}" = "$N2" ] \
    || fail "--describe after the reset must show START-OFFSET 0 and LAG $N2; saw START-OFFSET '${start:-}' LAG '${lag:-}'"
sg --delete-offsets --group "$group2" --topic "$topic2" >"$WORK/delete-offsets" 2>&1 || true
cat "$WORK/delete-offsets"
[ "$(field "$WORK/delete-offsets" TOPIC "$topic2" STATUS)" = Successful ] || fail "--delete-offsets on $group2 must report $topic2 Successful"
sg --describe --group "$group2" >"$WORK/describe2-deleted" 2>&1 || true
grep -q 'has no offset information' "$WORK/describe2-deleted" \
    || { cat "$WORK/describe2-deleted" >&2; fail "--describe after --delete-offsets must say $group2 has no offset information"; }
sg --delete --group "$group2" >"$WORK/delete" 2>&1 || true
cat "$WORK/delete"
grep -q "Deletion of requested share groups ('$group2') was successful" "$WORK/delete" || fail "--delete of the empty $group2 must succeed"
sg --list >"$WORK/list-after" 2>&1 || true
grep -qx "$group2" "$WORK/list-after" && fail "--list still shows $group2 after --delete"
grep -qx "$group" "$WORK/list-after" || { cat "$WORK/list-after" >&2; fail "--list must still show $group after deleting $group2"; }
say "kafka-share-groups: list, describe, members, reset to earliest, delete-offsets and delete took $(( SECONDS - t_phase ))s"
