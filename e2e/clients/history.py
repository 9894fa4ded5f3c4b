"""A history-keeping Kafka client for the e2e scenarios (librdkafka through
confluent-kafka, installed by scripts/install-compat.sh).

    python history.py produce --bootstrap B --topic T --acked FILE [--count N] [--rate R]
    python history.py verify  --bootstrap B --topic T --acked FILE

`produce` writes unique values with an idempotent producer (acks=all) until
it has sent N records, or until SIGTERM/SIGINT when no count is given; it
then waits for every outstanding delivery. Each acknowledged record goes to
FILE as "partition offset value". The last stdout line is a JSON summary:
sent, acked, failed, the first errors, and the longest time without any
acknowledgement while producing (the write unavailability a failover caused).

`verify` reads every partition of the topic from the start to its high
watermark and checks the history: every acknowledged value is read back
exactly once, at the partition and offset it was acknowledged at. It prints
a JSON summary and exits 1 when a record is lost or duplicated.
"""

import argparse
import json
import signal
import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

DELIVERY_TIMEOUT_MS = 120_000
FLUSH_TIMEOUT_S = 150


def produce(args):
    stop = False

    def on_signal(_sig, _frame):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    producer = Producer(
        {
            **client_config(args),
            "bootstrap.servers": args.bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
            "delivery.timeout.ms": DELIVERY_TIMEOUT_MS,
            "request.timeout.ms": 10_000,
            "metadata.max.age.ms": 5_000,
            "topic.metadata.refresh.interval.ms": 1_000,
        }
    )
    acked = open(args.acked, "w", buffering=1)
    state = {"acked": 0, "failed": 0, "errors": [], "last_ack": time.monotonic(), "longest_gap": 0.0}
    # Per partition: when it last acknowledged a write, and the longest gap
    # between two of its acknowledgements.
    partition_last_ack = {}
    partition_gap = {"longest": 0.0, "partition": None}

    def on_delivery(err, msg):
        now = time.monotonic()
        if err is not None:
            state["failed"] += 1
            if len(state["errors"]) < 5:
                state["errors"].append(str(err))
            return
        state["longest_gap"] = max(state["longest_gap"], now - state["last_ack"])
        state["last_ack"] = now
        last = partition_last_ack.get(msg.partition(), now)
        if now - last > partition_gap["longest"]:
            partition_gap["longest"] = now - last
            partition_gap["partition"] = msg.partition()
        partition_last_ack[msg.partition()] = now
        state["acked"] += 1
        acked.write(f"{msg.partition()} {msg.offset()} {msg.value().decode()}\n")

    prefix = f"{args.prefix}-{int(time.time() * 1000)}"
    interval = 1.0 / args.rate if args.rate > 0 else 0.0
    sent = 0
    next_at = time.monotonic()
    state["last_ack"] = time.monotonic()
    while not stop and (args.count is None or sent < args.count):
        value = f"{prefix}-{sent}"
        try:
            producer.produce(args.topic, value=value.encode(), key=str(sent).encode(), on_delivery=on_delivery)
            sent += 1
        except BufferError:
            producer.poll(0.05)
            continue
        producer.poll(0)
        if interval:
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                producer.poll(delay)
    remaining = producer.flush(FLUSH_TIMEOUT_S)
    acked.close()
    summary = {
        "sent": sent,
        "acked": state["acked"],
        "failed": state["failed"],
        "undelivered": remaining,
        "errors": state["errors"],
        "longest_gap_s": round(state["longest_gap"], 3),
        "longest_partition_gap_s": round(partition_gap["longest"], 3),
        "longest_gap_partition": partition_gap["partition"],
    }
    print(json.dumps(summary), flush=True)
    return 0 if remaining == 0 else 1


def verify(args):
    history = {}
    with open(args.acked) as f:
        for line in f:
            partition, offset, value = line.split()
            # librdkafka reports some deliveries without an offset: an
            # idempotent producer whose batch was acknowledged implicitly
            # (a later batch of the partition was, after a lost response).
            # Those must still be read back exactly once, in their
            # partition; only the offset cannot be compared.
            history[value] = (int(partition), None if offset == "None" else int(offset))
    consumer = Consumer(
        {
            "group.id": f"history-verify-{time.time_ns()}",
            **client_config(args),
            "bootstrap.servers": args.bootstrap,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_uncommitted",
        }
    )
    metadata = consumer.list_topics(args.topic, timeout=30)
    topic = metadata.topics.get(args.topic)
    if topic is None or topic.error is not None:
        raise SystemExit(f"topic {args.topic}: {topic.error if topic else 'missing'}")
    ends = {}
    for p in topic.partitions:
        _low, high = consumer.get_watermark_offsets(TopicPartition(args.topic, p), timeout=30)
        ends[p] = high
    consumer.assign([TopicPartition(args.topic, p, 0) for p in ends])
    seen = {}
    positions = {p: 0 for p in ends}
    deadline = time.monotonic() + args.timeout
    while any(positions[p] < ends[p] for p in ends):
        if time.monotonic() > deadline:
            raise SystemExit(f"read timed out: positions {positions}, ends {ends}")
        msg = consumer.poll(1.0)
        if msg is None:
            continue
        if msg.error() is not None:
            raise KafkaException(msg.error())
        positions[msg.partition()] = msg.offset() + 1
        value = msg.value().decode()
        seen.setdefault(value, []).append((msg.partition(), msg.offset()))
    consumer.close()
    lost = [v for v in history if v not in seen]
    duplicated = [v for v, at in seen.items() if len(at) > 1]
    moved = [
        v
        for v, (partition, offset) in history.items()
        if v in seen and (seen[v][0][0] != partition or (offset is not None and seen[v][0][1] != offset))
    ]
    summary = {
        "acknowledged": len(history),
        "acknowledged_without_offset": sum(1 for _, offset in history.values() if offset is None),
        "read": sum(len(at) for at in seen.values()),
        "lost": len(lost),
        "duplicated": len(duplicated),
        "moved": len(moved),
        "examples": {"lost": lost[:5], "duplicated": duplicated[:5], "moved": moved[:5]},
    }
    print(json.dumps(summary), flush=True)
    return 1 if lost or duplicated or moved else 0


def topics(args):
    """Prints every topic the client may describe, as kcat -L does:
    `topic "NAME" with N partitions:`."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({**client_config(args), "bootstrap.servers": args.bootstrap})
    metadata = admin.list_topics(timeout=15)
    for name, topic in sorted(metadata.topics.items()):
        if topic.error is None:
            print(f'topic "{name}" with {len(topic.partitions)} partitions:')
    return 0


def client_config(args):
    """librdkafka settings (security, credentials, a group id the user may
    read) from the `key=value` file --client-config names, if any."""
    path = args.client_config
    if not path:
        return {}
    config = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                key, _, value = line.partition("=")
                config[key.strip()] = value.strip()
    return config


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("produce")
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--acked", required=True)
    p.add_argument("--count", type=int)
    p.add_argument("--rate", type=float, default=0.0, help="records per second (0: as fast as possible)")
    p.add_argument("--prefix", default="e2e")
    p.add_argument("--client-config", help="file of librdkafka key=value settings (security, credentials)")
    v = sub.add_parser("verify")
    v.add_argument("--bootstrap", required=True)
    v.add_argument("--topic", required=True)
    v.add_argument("--acked", required=True)
    v.add_argument("--timeout", type=float, default=120.0)
    v.add_argument("--client-config", help="file of librdkafka key=value settings (security, credentials, group.id)")
    t = sub.add_parser("topics")
    t.add_argument("--bootstrap", required=True)
    t.add_argument("--client-config", help="file of librdkafka key=value settings (security, credentials)")
    args = parser.parse_args()
    return {"produce": produce, "verify": verify, "topics": topics}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
