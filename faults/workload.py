"""Workload clients of the fault-injection suite (confluent-kafka / librdkafka).

Every role writes a history file of JSON lines; every line has "t", the
monotonic clock (CLOCK_MONOTONIC, shared by every process on the machine,
network namespaces included), and "type".

    workload.py create   --bootstrap B --topic T --partitions N --rf 3 --min-isr 2
    workload.py leaders  --bootstrap B --topic T          -> {"0": leader, ...} on stdout
    workload.py produce  --bootstrap B --topic T --id I --out FILE --stop-file F --max-seconds S
    workload.py consume  --bootstrap B --topic T --group G --id I --out FILE --stop-file F --max-seconds S
    workload.py offsets  --bootstrap B --topic T --group G --out FILE --stop-file F --max-seconds S
    workload.py final    --bootstrap B --topic T --out FILE --max-seconds S

produce: an idempotent acks=all producer writing unique values
"<run>-p<I>-<seq>" with keys "p<I>-k<n>"; lines: send (value, key, seq),
ack (value, partition, offset), fail (value, error, code, retriable, fatal).
It stops sending when the stop file appears (or after --max-seconds), then
flushes for at most --flush-seconds; whatever is still undelivered is written
as "pending" (indeterminate).

consume: a member of consumer group G (subscribe, eager rebalance, manual
commits): assign / revoke (partitions), read (partition, offset, value),
commit (partition, offset, ok, error) after every poll batch and on revoke.

offsets: every --interval seconds the group's committed offsets (OffsetFetch
through a consumer with the group's id that never joins): committed
(partition, offset). Failures are written as committed_error.

final: a fresh consumer reads every partition from offset 0 to its high
watermark: end (partition, low, high), final (partition, offset, value),
then done (complete: bool). Incomplete reads say so; the checker fails them.
"""

import argparse
import json
import os
import random
import signal
import sys
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

STOP = False


def _on_signal(_sig, _frame):
    global STOP
    STOP = True


signal.signal(signal.SIGTERM, _on_signal)
signal.signal(signal.SIGINT, _on_signal)


class History:
    def __init__(self, path):
        self.f = open(path, "a", buffering=1)

    def write(self, type_, **fields):
        fields["t"] = time.monotonic()
        fields["type"] = type_
        self.f.write(json.dumps(fields, separators=(",", ":")) + "\n")

    def close(self):
        self.f.flush()
        os.fsync(self.f.fileno())
        self.f.close()


def should_stop(args, started):
    return STOP or os.path.exists(args.stop_file) or time.monotonic() - started > args.max_seconds


def common_conf(args):
    return {
        "bootstrap.servers": args.bootstrap,
        "socket.timeout.ms": 10_000,
        "metadata.max.age.ms": 5_000,
        "topic.metadata.refresh.interval.ms": 1_000,
        "reconnect.backoff.max.ms": 1_000,
    }


def cmd_create(args):
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    deadline = time.monotonic() + args.max_seconds
    last = None
    while time.monotonic() < deadline:
        topic = NewTopic(args.topic, num_partitions=args.partitions, replication_factor=args.rf,
                         config={"min.insync.replicas": str(args.min_isr)})
        fs = admin.create_topics([topic], request_timeout=15)
        try:
            fs[args.topic].result(timeout=30)
            break
        except KafkaException as e:
            err = e.args[0]
            if err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                break
            last = str(e)
        except Exception as e:  # noqa: BLE001 - keep trying until the deadline
            last = str(e)
        time.sleep(1)
    else:
        print(f"create: {args.topic} not created: {last}", file=sys.stderr)
        return 1
    # Wait until every partition has a leader and a full ISR.
    while time.monotonic() < deadline:
        md = admin.list_topics(args.topic, timeout=10)
        t = md.topics.get(args.topic)
        if t is not None and t.error is None and len(t.partitions) == args.partitions and all(
            p.leader >= 0 and len(p.isrs) >= args.rf for p in t.partitions.values()
        ):
            print(json.dumps({p: {"leader": v.leader, "isr": v.isrs} for p, v in t.partitions.items()}))
            return 0
        time.sleep(0.5)
    print(f"create: {args.topic} has no leader/full ISR everywhere", file=sys.stderr)
    return 1


def cmd_leaders(args):
    admin = AdminClient({"bootstrap.servers": args.bootstrap, "socket.timeout.ms": 5000})
    deadline = time.monotonic() + args.max_seconds
    while time.monotonic() < deadline:
        try:
            md = admin.list_topics(args.topic, timeout=5)
            t = md.topics.get(args.topic)
            if t is not None and t.error is None and t.partitions:
                out = {str(p): {"leader": v.leader, "replicas": v.replicas, "isr": v.isrs}
                       for p, v in t.partitions.items()}
                if args.need_leader is None or out.get(str(args.need_leader), {}).get("leader", -1) >= 0:
                    print(json.dumps(out))
                    return 0
        except Exception:  # noqa: BLE001
            pass
        time.sleep(0.5)
    print("{}")
    return 1


def cmd_produce(args):
    h = History(args.out)
    producer = Producer({
        **common_conf(args),
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 5,
        "delivery.timeout.ms": args.delivery_timeout_ms,
        "request.timeout.ms": 10_000,
        "queue.buffering.max.messages": 2000,
    })
    outstanding = {}

    def on_delivery(err, msg):
        value = msg.value().decode()
        outstanding.pop(value, None)
        if err is None:
            h.write("ack", producer=args.id, value=value, partition=msg.partition(), offset=msg.offset())
        else:
            h.write("fail", producer=args.id, value=value, error=err.str(), code=err.name(),
                    retriable=err.retriable(), fatal=err.fatal())

    run = args.run
    rng = random.Random(args.id)
    started = time.monotonic()
    interval = 1.0 / args.rate
    next_at = time.monotonic()
    seq = 0
    h.write("start", producer=args.id)
    while not should_stop(args, started):
        if len(outstanding) >= args.max_outstanding:
            producer.poll(0.05)
            continue
        value = f"{run}-p{args.id}-{seq}"
        key = f"p{args.id}-k{rng.randrange(args.keys)}"
        try:
            producer.produce(args.topic, value=value.encode(), key=key.encode(), on_delivery=on_delivery)
        except BufferError:
            producer.poll(0.05)
            continue
        except KafkaException as e:
            h.write("fail", producer=args.id, value=value, error=str(e), code="produce_exception",
                    retriable=False, fatal=True, key=key, seq=seq)
            seq += 1
            time.sleep(0.1)
            continue
        # Written after produce() accepted it (it cannot call back before poll()).
        h.write("send", producer=args.id, value=value, key=key, seq=seq)
        outstanding[value] = seq
        seq += 1
        next_at += interval
        delay = next_at - time.monotonic()
        producer.poll(max(0.0, delay))
        if delay < -1.0:
            next_at = time.monotonic()
    h.write("stop_sending", producer=args.id)
    flush_deadline = time.monotonic() + args.flush_seconds
    while outstanding and time.monotonic() < flush_deadline:
        producer.flush(1.0)
    for value in list(outstanding):
        h.write("pending", producer=args.id, value=value)
    h.write("exit", producer=args.id)
    h.close()
    print(json.dumps({"producer": args.id, "sent": seq, "pending": len(outstanding)}))
    return 0


def cmd_consume(args):
    h = History(args.out)
    consumer = Consumer({
        **common_conf(args),
        "group.id": args.group,
        "client.id": f"faults-c{args.id}",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 10_000,
        "heartbeat.interval.ms": 1_000,
        "max.poll.interval.ms": 60_000,
        "partition.assignment.strategy": "range",
    })
    positions = {}  # partition -> next offset to commit (read offset + 1)

    def commit(reason):
        if not positions:
            return
        tps = [TopicPartition(args.topic, p, o) for p, o in sorted(positions.items())]
        try:
            res = consumer.commit(offsets=tps, asynchronous=False)
            for tp in res or []:
                ok = tp.error is None
                h.write("commit", consumer=args.id, partition=tp.partition, offset=tp.offset, ok=ok,
                        error=None if ok else str(tp.error), reason=reason)
        except KafkaException as e:
            for tp in tps:
                h.write("commit", consumer=args.id, partition=tp.partition, offset=tp.offset, ok=False,
                        error=str(e), reason=reason)
        except Exception as e:  # noqa: BLE001
            for tp in tps:
                h.write("commit", consumer=args.id, partition=tp.partition, offset=tp.offset, ok=False,
                        error=repr(e), reason=reason)
        positions.clear()

    def on_assign(c, parts):
        h.write("assign", consumer=args.id, partitions=[p.partition for p in parts])

    def on_revoke(c, parts):
        commit("revoke")
        h.write("revoke", consumer=args.id, partitions=[p.partition for p in parts])

    def on_lost(c, parts):
        positions.clear()
        h.write("revoke", consumer=args.id, partitions=[p.partition for p in parts], lost=True)

    consumer.subscribe([args.topic], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)
    started = time.monotonic()
    h.write("start", consumer=args.id)
    while not should_stop(args, started):
        try:
            msgs = consumer.consume(num_messages=200, timeout=0.5)
        except KafkaException as e:
            h.write("error", consumer=args.id, error=str(e))
            time.sleep(0.2)
            continue
        for m in msgs:
            if m.error() is not None:
                if m.error().code() != KafkaError._PARTITION_EOF:
                    h.write("error", consumer=args.id, error=m.error().str())
                continue
            h.write("read", consumer=args.id, partition=m.partition(), offset=m.offset(),
                    value=m.value().decode() if m.value() is not None else None)
            positions[m.partition()] = m.offset() + 1
        if msgs:
            commit("batch")
    commit("final")
    h.write("exit", consumer=args.id)
    h.close()
    try:
        consumer.close()
    except Exception:  # noqa: BLE001
        pass
    return 0


def cmd_offsets(args):
    h = History(args.out)
    c = Consumer({**common_conf(args), "group.id": args.group, "enable.auto.commit": False})
    started = time.monotonic()
    tps = [TopicPartition(args.topic, p) for p in range(args.partitions)]
    while not should_stop(args, started):
        try:
            for tp in c.committed(tps, timeout=5):
                if tp.error is not None:
                    h.write("committed_error", partition=tp.partition, error=str(tp.error))
                elif tp.offset >= 0:
                    h.write("committed", partition=tp.partition, offset=tp.offset)
        except Exception as e:  # noqa: BLE001
            h.write("committed_error", error=str(e))
        time.sleep(args.interval)
    h.close()
    c.close()
    return 0


def cmd_final(args):
    h = History(args.out)
    c = Consumer({**common_conf(args), "group.id": f"faults-final-{time.time_ns()}",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest",
                  "enable.partition.eof": False})
    deadline = time.monotonic() + args.max_seconds
    ends = {}
    while time.monotonic() < deadline and len(ends) < args.partitions:
        for p in range(args.partitions):
            if p in ends:
                continue
            try:
                low, high = c.get_watermark_offsets(TopicPartition(args.topic, p), timeout=10)
                ends[p] = (low, high)
                h.write("end", partition=p, low=low, high=high)
            except Exception as e:  # noqa: BLE001
                h.write("error", error=f"watermarks {p}: {e}")
                time.sleep(1)
    if len(ends) < args.partitions:
        h.write("done", complete=False, reason="no watermarks")
        h.close()
        return 1
    c.assign([TopicPartition(args.topic, p, 0) for p in ends])
    pos = {p: 0 for p in ends}
    idle_since = time.monotonic()
    while any(pos[p] < ends[p][1] for p in ends) and time.monotonic() < deadline:
        m = c.poll(1.0)
        if m is None:
            continue
        if m.error() is not None:
            h.write("error", error=m.error().str())
            continue
        pos[m.partition()] = m.offset() + 1
        h.write("final", partition=m.partition(), offset=m.offset(),
                value=m.value().decode() if m.value() is not None else None)
        idle_since = time.monotonic()
    complete = all(pos[p] >= ends[p][1] for p in ends)
    h.write("done", complete=complete, positions={str(p): v for p, v in pos.items()})
    h.close()
    c.close()
    return 0 if complete else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["create", "leaders", "produce", "consume", "offsets", "final"])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", default="faults")
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--rf", type=int, default=3)
    ap.add_argument("--min-isr", type=int, default=2)
    ap.add_argument("--id", type=int, default=0)
    ap.add_argument("--run", default="r")
    ap.add_argument("--group", default="faults-group")
    ap.add_argument("--out", default="/dev/null")
    ap.add_argument("--stop-file", default="/nonexistent")
    ap.add_argument("--max-seconds", type=float, default=600)
    ap.add_argument("--flush-seconds", type=float, default=45)
    ap.add_argument("--delivery-timeout-ms", type=int, default=120_000)
    ap.add_argument("--rate", type=float, default=100)
    ap.add_argument("--keys", type=int, default=8)
    ap.add_argument("--max-outstanding", type=int, default=1000)
    ap.add_argument("--interval", type=float, default=1.0)
    ap.add_argument("--need-leader", type=int)
    args = ap.parse_args()
    return globals()[f"cmd_{args.command}"](args)


if __name__ == "__main__":
    sys.exit(main())
