#!/usr/bin/env bash
# kcat (librdkafka) against Rill: for each compression codec (none, gzip,
# snappy, lz4, zstd), produce keyed records to a fresh 3-partition topic and
# consume them back: every key/value must round-trip exactly once and each
# key must stay in one partition. Then `kcat -L` metadata must list the
# brokers and, for the topic, a leader, replicas and ISR per partition.
. "$(dirname "$0")/lib.sh"

N="${COMPAT_KCAT_RECORDS:-5000}"
for codec in none gzip snappy lz4 zstd; do
    topic="compat-kcat-$codec-$RUN_ID"
    create_topic_rdkafka "$topic" --partitions 3 --rf "$COMPAT_RF" >/dev/null
    # Values repeat their key and codec plus filler text, so compression has
    # something to work with; every line is unique.
    for ((i = 0; i < N; i++)); do
        printf 'key-%d\tvalue-%s-%d-the-quick-brown-fox-%d\n' "$((i % 700))" "$codec" "$i" "$((i * 7919 % 10007))"
    done >"$WORK/in-$codec"
    kcat -P -b "$KAFKA_BOOTSTRAP" -t "$topic" -K $'\t' -z "$codec" \
        -X enable.idempotence=true -X linger.ms=20 -X batch.num.messages=500 \
        <"$WORK/in-$codec" 2>"$WORK/produce-$codec.err" \
        || { cat "$WORK/produce-$codec.err" >&2; fail "kcat produce ($codec) failed"; }
    # kcat's own errors and librdkafka's error-level logs (%0-%3); warnings
    # such as a retried producer-id request are not failures.
    grep -E '^% ERROR|^%[0-3]\|' "$WORK/produce-$codec.err" && fail "kcat produce ($codec) reported errors"
    timeout "${COMPAT_KCAT_TIMEOUT:-60}" kcat -C -b "$KAFKA_BOOTSTRAP" -t "$topic" -o beginning -e -q \
        -f '%k\t%s\t%p\n' >"$WORK/out-$codec" 2>"$WORK/consume-$codec.err" \
        || { cat "$WORK/consume-$codec.err" >&2; fail "kcat consume ($codec) failed or timed out"; }
    cut -f1,2 "$WORK/out-$codec" | sort >"$WORK/got-$codec"
    sort "$WORK/in-$codec" >"$WORK/want-$codec"
    if ! cmp -s "$WORK/want-$codec" "$WORK/got-$codec"; then
        show_diff "$WORK/want-$codec" "$WORK/got-$codec"
        head -5 "$WORK/consume-$codec.err" >&2
        fail "codec $codec: consumed $(wc -l <"$WORK/got-$codec") records, produced $N; they differ (above)"
    fi
    split=$(cut -f1,3 "$WORK/out-$codec" | sort -u | cut -f1 | uniq -d | head -3)
    [ -z "$split" ] || fail "codec $codec: keys found in more than one partition: $split"
    say "codec $codec: $N keyed records round-tripped"
done

topic="compat-kcat-none-$RUN_ID"
kcat -L -J -b "$KAFKA_BOOTSTRAP" -t "$topic" >"$WORK/metadata.json" 2>"$WORK/metadata.err" \
    || { cat "$WORK/metadata.err" >&2; fail "kcat -L failed"; }
"$PY" - "$WORK/metadata.json" "$topic" "$COMPAT_BROKERS" "$COMPAT_RF" <<'PY' || fail "kcat -L metadata is not as expected"
import json, sys
md = json.load(open(sys.argv[1]))
topic, brokers, rf = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
ids = {b["id"] for b in md["brokers"]}
problems = []
if len(ids) != brokers:
    problems.append(f"{len(ids)} brokers listed ({md['brokers']}), expected {brokers}")
for b in md["brokers"]:
    host, _, port = b["name"].rpartition(":")
    if not host or not port.isdigit():
        problems.append(f"broker {b} has no host:port")
if md.get("controllerid", -1) < 0:
    print(f"note: no controller id in metadata ({md.get('controllerid')})")
ts = [t for t in md["topics"] if t["topic"] == topic]
if len(ts) != 1:
    problems.append(f"topic {topic} not in metadata: {[t['topic'] for t in md['topics']]}")
else:
    parts = ts[0]["partitions"]
    if sorted(p["partition"] for p in parts) != [0, 1, 2]:
        problems.append(f"partitions {[p['partition'] for p in parts]}, expected 0..2")
    for p in parts:
        reps = [r["id"] for r in p["replicas"]]
        isr = [r["id"] for r in p["isrs"]]
        if p["leader"] not in ids or p["leader"] not in reps:
            problems.append(f"partition {p['partition']}: leader {p['leader']} not a listed broker and replica")
        if len(reps) != rf or not set(reps) <= ids:
            problems.append(f"partition {p['partition']}: replicas {reps}, expected {rf} of {sorted(ids)}")
        if not set(isr) <= set(reps) or p["leader"] not in isr:
            problems.append(f"partition {p['partition']}: ISR {isr} not within replicas {reps} with the leader")
for line in problems:
    print("  " + line)
print(f"metadata: {len(ids)} brokers; {topic}: " + ", ".join(
    f"p{p['partition']} leader {p['leader']} replicas {[r['id'] for r in p['replicas']]} isr {[r['id'] for r in p['isrs']]}"
    for p in (ts[0]["partitions"] if ts else [])))
sys.exit(1 if problems else 0)
PY
say "kcat -L: brokers and partition metadata as expected"
