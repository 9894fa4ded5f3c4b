"""Keyed records in, records and group offsets out, through librdkafka
(confluent-kafka), for the shell tests that compare two clusters
(test_mm2.sh). Every command takes --bootstrap (default KAFKA_BOOTSTRAP).

    records.py produce TOPIC --partitions P --first F --count N --prefix S
        records F..F+N-1: key "S-key-I", value "S-I" (I zero-padded to 6
        digits), record I into partition I % P; idempotent, acks=all; exits 1
        if any record is not acknowledged.
    records.py dump TOPIC
        "partition<TAB>offset<TAB>key<TAB>value" for every record, each
        partition in offset order, from its first offset to the end offset it
        had when reading started (no group).
    records.py group-read TOPIC --group G (--count N | --to-end) [--reset R]
        a member of group G (subscribe) reads N records, or until it reaches
        the end offsets each partition had when it was assigned, prints them
        as dump does, commits the offset after the last record it printed of
        each partition (synchronously) and closes. --reset is
        auto.offset.reset (default earliest; "error" makes a partition without
        a committed offset an error). Ends with "first P=OFFSET" lines on
        stderr: the first offset it read per partition.
    records.py committed TOPIC --group G
        "partition<TAB>offset" of the group's committed offset per partition
        (-1 when none), through OffsetFetch.
    records.py partitions TOPIC
        the topic's partition count, 0 if it does not exist.
    records.py configs TOPIC KEY...
        "KEY=VALUE" for each key, from DescribeConfigs.

Named timeout: COMPAT_RECORDS_TIMEOUT (s, default 60), for any one command.
"""

import argparse
import os
import sys
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource

TIMEOUT = float(os.environ.get("COMPAT_RECORDS_TIMEOUT", "60"))


def fail(msg):
    print(f"records: {msg}", file=sys.stderr)
    sys.exit(1)


def produce(args):
    p = Producer({"bootstrap.servers": args.bootstrap, "enable.idempotence": True, "acks": "all",
                  "linger.ms": 5})
    errors = []

    def delivered(err, _msg):
        if err is not None:
            errors.append(err)

    for i in range(args.first, args.first + args.count):
        p.produce(args.topic, key=f"{args.prefix}-key-{i:06d}", value=f"{args.prefix}-{i:06d}",
                  partition=i % args.partitions, on_delivery=delivered)
        p.poll(0)
    left = p.flush(TIMEOUT)
    if left or errors:
        fail(f"{left} records unacknowledged after {TIMEOUT}s, {len(errors)} failed: {errors[:3]}")
    print(f"produced {args.count} records into {args.topic}")


def partition_ids(client, topic):
    md = client.list_topics(topic=topic, timeout=TIMEOUT)
    t = md.topics.get(topic)
    if t is None or t.error is not None or not t.partitions:
        return []
    return sorted(t.partitions)


def line(msg):
    key = msg.key().decode() if msg.key() is not None else ""
    value = msg.value().decode() if msg.value() is not None else ""
    return f"{msg.partition()}\t{msg.offset()}\t{key}\t{value}"


def dump(args):
    c = Consumer({"bootstrap.servers": args.bootstrap, "group.id": "unused-dump", "enable.auto.commit": False})
    parts = partition_ids(c, args.topic)
    if not parts:
        fail(f"topic {args.topic} has no partitions")
    end = {p: c.get_watermark_offsets(TopicPartition(args.topic, p), timeout=TIMEOUT)[1] for p in parts}
    todo = {p for p in parts if end[p] > 0}
    c.assign([TopicPartition(args.topic, p, OFFSET_BEGINNING) for p in todo])
    rows = {p: [] for p in parts}
    deadline = time.monotonic() + TIMEOUT
    while todo:
        if time.monotonic() > deadline:
            fail(f"dump of {args.topic}: partitions {sorted(todo)} not read to {end} within {TIMEOUT}s")
        msg = c.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() == KafkaError._PARTITION_EOF:
                continue
            fail(f"dump of {args.topic}: {msg.error()}")
        p = msg.partition()
        if p in todo and msg.offset() < end[p]:
            rows[p].append(line(msg))
        if msg.offset() + 1 >= end[p]:
            todo.discard(p)
    c.close()
    out = [r for p in parts for r in rows[p]]
    if out:
        print("\n".join(out))


def group_read(args):
    conf = {"bootstrap.servers": args.bootstrap, "group.id": args.group, "enable.auto.commit": False,
            "auto.offset.reset": args.reset, "session.timeout.ms": 10000}
    c = Consumer(conf)
    end = {}
    assigned = []

    def on_assign(consumer, parts):
        for tp in parts:
            end[tp.partition] = consumer.get_watermark_offsets(TopicPartition(args.topic, tp.partition),
                                                               timeout=TIMEOUT)[1]
        assigned.extend(parts)

    c.subscribe([args.topic], on_assign=on_assign)
    first, last, start, out = {}, {}, {}, []
    deadline = time.monotonic() + TIMEOUT

    def partition_done(p):
        if p in last:
            return last[p] + 1 >= end[p]
        if p not in start:
            start[p] = c.committed([TopicPartition(args.topic, p)], timeout=TIMEOUT)[0].offset
        return start[p] >= end[p]

    def done():
        if args.count is not None:
            return len(out) >= args.count
        return bool(assigned) and all(partition_done(p) for p in end)

    while not done():
        if time.monotonic() > deadline:
            fail(f"group {args.group} on {args.topic}: read {len(out)} records in {TIMEOUT}s "
                 f"(end offsets {end}, last offsets read {last})")
        msg = c.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            fail(f"group {args.group} on {args.topic}: {msg.error()}")
        p = msg.partition()
        first.setdefault(p, msg.offset())
        last[p] = msg.offset()
        out.append(line(msg))
    if last:
        c.commit(offsets=[TopicPartition(args.topic, p, o + 1) for p, o in sorted(last.items())],
                 asynchronous=False)
    c.close()
    if out:
        print("\n".join(out))
    for p in sorted(first):
        print(f"first {p}={first[p]}", file=sys.stderr)


def committed(args):
    c = Consumer({"bootstrap.servers": args.bootstrap, "group.id": args.group, "enable.auto.commit": False})
    parts = partition_ids(c, args.topic)
    if not parts:
        fail(f"topic {args.topic} has no partitions")
    for tp in c.committed([TopicPartition(args.topic, p) for p in parts], timeout=TIMEOUT):
        if tp.error is not None:
            fail(f"committed offsets of {args.group} on {args.topic}: {tp.error}")
        print(f"{tp.partition}\t{tp.offset if tp.offset >= 0 else -1}")
    c.close()


def partitions(args):
    a = AdminClient({"bootstrap.servers": args.bootstrap})
    print(len(partition_ids(a, args.topic)))


def configs(args):
    a = AdminClient({"bootstrap.servers": args.bootstrap})
    res = ConfigResource(ConfigResource.Type.TOPIC, args.topic)
    entries = a.describe_configs([res], request_timeout=TIMEOUT)[res].result(timeout=TIMEOUT)
    for k in args.keys:
        e = entries.get(k)
        print(f"{k}={e.value if e is not None else ''}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP"))
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("produce")
    s.add_argument("topic")
    s.add_argument("--partitions", type=int, required=True)
    s.add_argument("--first", type=int, required=True)
    s.add_argument("--count", type=int, required=True)
    s.add_argument("--prefix", required=True)
    s = sub.add_parser("dump")
    s.add_argument("topic")
    s = sub.add_parser("group-read")
    s.add_argument("topic")
    s.add_argument("--group", required=True)
    g = s.add_mutually_exclusive_group(required=True)
    g.add_argument("--count", type=int)
    g.add_argument("--to-end", action="store_true")
    s.add_argument("--reset", default="earliest")
    s = sub.add_parser("committed")
    s.add_argument("topic")
    s.add_argument("--group", required=True)
    s = sub.add_parser("partitions")
    s.add_argument("topic")
    s = sub.add_parser("configs")
    s.add_argument("topic")
    s.add_argument("keys", nargs="+")
    args = ap.parse_args()
    if not args.bootstrap:
        fail("no --bootstrap and KAFKA_BOOTSTRAP is not set")
    {"produce": produce, "dump": dump, "group-read": group_read, "committed": committed,
     "partitions": partitions, "configs": configs}[args.cmd](args)


if __name__ == "__main__":
    main()
