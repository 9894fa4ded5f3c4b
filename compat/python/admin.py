"""Topic administration through librdkafka's admin API (CreateTopics,
Metadata), used by the kcat tests and the Python tests.

    python admin.py create TOPIC --partitions N [--rf R] [--config k=v ...]

Waits until every partition of the new topic has a leader (named timeout
COMPAT_TOPIC_READY_TIMEOUT, seconds). The bootstrap address comes from
KAFKA_BOOTSTRAP; the replication factor defaults to COMPAT_RF (3).
"""

import argparse
import os
import sys
import time

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

TOPIC_READY_TIMEOUT = float(os.environ.get("COMPAT_TOPIC_READY_TIMEOUT", "30"))


def bootstrap():
    b = os.environ.get("KAFKA_BOOTSTRAP")
    if not b:
        raise SystemExit("KAFKA_BOOTSTRAP is not set")
    return b


def default_rf():
    return int(os.environ.get("COMPAT_RF", "3"))


def admin_client():
    return AdminClient({"bootstrap.servers": bootstrap()})


def create_topic(admin, topic, partitions, rf=None, config=None, timeout=TOPIC_READY_TIMEOUT):
    """Creates the topic and waits until each partition reports a leader."""
    rf = default_rf() if rf is None else rf
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=rf, config=config or {})],
        operation_timeout=timeout,
    )
    futures[topic].result()  # raises KafkaException with the broker's error
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        md = admin.list_topics(topic=topic, timeout=5)
        t = md.topics.get(topic)
        if t is not None and t.error is None and len(t.partitions) == partitions:
            if all(p.leader >= 0 and p.error is None for p in t.partitions.values()):
                return md
        last = t
        time.sleep(0.1)
    raise TimeoutError(
        f"topic {topic}: not every partition had a leader within COMPAT_TOPIC_READY_TIMEOUT={timeout}s "
        f"(last metadata: {last.partitions if last else None}, error {last.error if last else None})"
    )


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("create")
    c.add_argument("topic")
    c.add_argument("--partitions", type=int, required=True)
    c.add_argument("--rf", type=int, default=None)
    c.add_argument("--config", action="append", default=[])
    args = ap.parse_args()
    try:
        cfg = dict(kv.split("=", 1) for kv in args.config)
        create_topic(admin_client(), args.topic, args.partitions, args.rf, cfg)
    except (KafkaException, TimeoutError) as e:
        print(f"admin: creating {args.topic}: {e}", file=sys.stderr)
        sys.exit(1)
    print(f"created {args.topic} partitions={args.partitions} rf={args.rf or default_rf()}")


if __name__ == "__main__":
    main()
