"""Workload clients of the fault-injection suite (confluent-kafka / librdkafka).

Every role writes a history file of JSON lines; every line has "t", the
monotonic clock (CLOCK_MONOTONIC, shared by every process on the machine,
network namespaces included), and "type".

    workload.py create   --bootstrap B --topic T --partitions N --rf 3 --min-isr 2
    workload.py leaders  --bootstrap B --topic T          -> {"0": leader, ...} on stdout
    workload.py produce  --bootstrap B --topic T --id I --out FILE --stop-file F --max-seconds S
    workload.py consume  --bootstrap B --topic T --group G --id I --out FILE --stop-file F --max-seconds S
    workload.py offsets  --bootstrap B --topic T --group G --out FILE --stop-file F --max-seconds S
    workload.py final    --bootstrap B --topic T --out FILE --max-seconds S [--isolation read_committed]
    workload.py txn-produce --bootstrap B --topic T --id I --seed S --out FILE --stop-file F --max-seconds S
    workload.py txn-consume --bootstrap B --topic T --group G --id I --out FILE --stop-file F --max-seconds S

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
With --isolation read_committed it reads what a read_committed consumer
sees: it first waits (at most --lso-wait seconds) until every partition's
last stable offset has reached its high watermark, then reads to the last
stable offset; its end lines also carry hwm (the read_uncommitted high
watermark), and a partition whose last stable offset stayed below it is
reported that way. Positions advance past control records (transaction
markers), which are never delivered to the application.

txn-produce: a transactional producer (transactional.id "<run>-txn-<I>")
running transactions of --txn-min..--txn-max records, record r of a
transaction going to partition (base + r) mod N, each transaction committed
or aborted at random (seeded with --seed and I); values
"<run>-x<I>-<txn>-<record>". Before an abort it flushes, so that aborted
records really are in the log. Lines: init / init_ok / init_fail (instance:
the producer incarnation), begin (txn, records, intent), send (txn, record,
value, partition), ack / fail (delivery reports), commit (commit requested),
commit_ok / commit_fail, abort (abort requested; after_commit when a commit
failed first), abort_ok / abort_fail, recreate. Every *_fail line has error,
code, retriable, fatal and abortable as librdkafka reports them. On a fatal
error, or a commit or abort that cannot be finished, it destroys the
producer and makes a new one with the same transactional.id (its
init_transactions fences the old epoch and aborts what it left open) and
goes on. It stops beginning transactions when the stop file appears.

txn-consume: consume with isolation.level read_committed (librdkafka's
default, set explicitly): what a read_committed member reads, in order.
"""

import argparse
import faulthandler
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
# SIGUSR1 writes every thread's Python stack to stderr: the suite sends it to
# a client that did not stop in time, before killing it.
faulthandler.register(signal.SIGUSR1, all_threads=True)


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
        "isolation.level": args.isolation or "read_committed",
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


def cmd_txn_consume(args):
    """consume with isolation.level=read_committed: the transactional workload's group members."""
    args.isolation = "read_committed"
    return cmd_consume(args)


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


def _watermarks(c, topic, partitions, deadline, h):
    """partition -> (low, high) as consumer c's isolation level sees them
    (ListOffsets: the high watermark, or the last stable offset under
    read_committed)."""
    ends = {}
    while time.monotonic() < deadline and len(ends) < partitions:
        for p in range(partitions):
            if p in ends:
                continue
            try:
                ends[p] = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            except Exception as e:  # noqa: BLE001
                h.write("error", error=f"watermarks {p}: {e}")
                time.sleep(1)
    return ends


def cmd_final(args):
    h = History(args.out)
    committed = args.isolation == "read_committed"
    conf = {**common_conf(args), "group.id": f"faults-final-{time.time_ns()}",
            "enable.auto.commit": False, "auto.offset.reset": "earliest",
            "enable.partition.eof": True}
    if args.isolation:
        conf["isolation.level"] = args.isolation
    c = Consumer(conf)
    deadline = time.monotonic() + args.max_seconds
    hwm = {}
    if committed:
        # No producer runs any more, so every transaction ends (committed,
        # aborted by its producer, or aborted by the coordinator after
        # transaction.timeout.ms); wait until the last stable offset of every
        # partition reaches its high watermark.
        u = Consumer({**common_conf(args), "group.id": f"faults-final-u-{time.time_ns()}",
                      "isolation.level": "read_uncommitted"})
        lso_deadline = min(deadline, time.monotonic() + args.lso_wait)
        while True:
            hwm = _watermarks(u, args.topic, args.partitions, deadline, h)
            ends = _watermarks(c, args.topic, args.partitions, deadline, h)
            behind = {p: (ends[p][1], hwm[p][1]) for p in ends if p in hwm and ends[p][1] < hwm[p][1]}
            if not behind or time.monotonic() >= lso_deadline:
                break
            time.sleep(1)
        if behind:
            h.write("lso_behind", partitions={str(p): {"lso": lso, "hwm": hw} for p, (lso, hw) in behind.items()},
                    waited=args.lso_wait)
        u.close()
    else:
        ends = _watermarks(c, args.topic, args.partitions, deadline, h)
    for p, (low, high) in sorted(ends.items()):
        extra = {"hwm": hwm[p][1]} if p in hwm else {}
        h.write("end", partition=p, low=low, high=high, **extra)
    if len(ends) < args.partitions:
        h.write("done", complete=False, reason="no watermarks")
        h.close()
        return 1
    c.assign([TopicPartition(args.topic, p, 0) for p in ends])
    pos = {p: 0 for p in ends}
    while any(pos[p] < ends[p][1] for p in ends) and time.monotonic() < deadline:
        m = c.poll(1.0)
        if m is None:
            continue
        if m.error() is not None:
            if m.error().code() == KafkaError._PARTITION_EOF:
                # The fetch position, past control records that are never delivered.
                pos[m.partition()] = max(pos[m.partition()], m.offset())
            else:
                h.write("error", error=m.error().str())
            continue
        pos[m.partition()] = max(pos[m.partition()], m.offset() + 1)
        h.write("final", partition=m.partition(), offset=m.offset(),
                value=m.value().decode() if m.value() is not None else None)
    complete = all(pos[p] >= ends[p][1] for p in ends)
    h.write("done", complete=complete, positions={str(p): v for p, v in pos.items()})
    h.close()
    c.close()
    return 0 if complete else 1


def _err_fields(e):
    """error, code, retriable, fatal, abortable of a KafkaException as librdkafka reports them."""
    err = e.args[0] if e.args and isinstance(e.args[0], KafkaError) else None
    if err is None:
        return {"error": repr(e), "code": "exception", "retriable": False, "fatal": False, "abortable": False}
    return {"error": err.str(), "code": err.name(), "retriable": err.retriable(), "fatal": err.fatal(),
            "abortable": err.txn_requires_abort()}


def cmd_txn_produce(args):
    h = History(args.out)
    rng = random.Random(f"{args.seed}:txn:{args.id}")
    conf = {
        **common_conf(args),
        "transactional.id": f"{args.run}-txn-{args.id}",
        "transaction.timeout.ms": args.txn_timeout_ms,
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 5,
        "request.timeout.ms": 10_000,
    }
    started = time.monotonic()
    state = {"instance": 0, "acked": 0}
    me = args.id

    def on_delivery(err, msg):
        value = msg.value().decode()
        if err is None:
            state["acked"] += 1
            h.write("ack", producer=me, value=value, partition=msg.partition(), offset=msg.offset())
        else:
            h.write("fail", producer=me, value=value, error=err.str(), code=err.name(),
                    retriable=err.retriable(), fatal=err.fatal())

    def drop(p, txn, why):
        """Gives up on a producer instance; the next one's init_transactions
        fences it and aborts whatever it left open."""
        h.write("recreate", producer=me, instance=state["instance"], txn=txn, reason=why)
        try:
            p.purge()
        except Exception:  # noqa: BLE001
            pass
        time.sleep(args.recreate_backoff)
        return None

    def new_producer():
        while not should_stop(args, started):
            state["instance"] += 1
            inst = state["instance"]
            h.write("init", producer=me, instance=inst)
            p = Producer(conf)
            give_up = time.monotonic() + args.op_seconds * 3
            while True:
                try:
                    p.init_transactions(args.op_seconds)
                    h.write("init_ok", producer=me, instance=inst)
                    return p
                except KafkaException as e:
                    f = _err_fields(e)
                    h.write("init_fail", producer=me, instance=inst, **f)
                    if f["fatal"] or not f["retriable"] or time.monotonic() > give_up \
                            or should_stop(args, started):
                        break
                    time.sleep(0.5)
            drop(p, None, "init failed")
        return None

    def abort(p, txn, after_commit):
        h.write("abort", producer=me, txn=txn, after_commit=after_commit)
        give_up = time.monotonic() + args.end_seconds
        while True:
            try:
                p.abort_transaction(args.op_seconds)
                h.write("abort_ok", producer=me, txn=txn)
                return p
            except KafkaException as e:
                f = _err_fields(e)
                h.write("abort_fail", producer=me, txn=txn, **f)
                if f["fatal"] or not f["retriable"] or time.monotonic() > give_up:
                    return drop(p, txn, "abort failed")
                time.sleep(0.2)

    def commit(p, txn):
        h.write("commit", producer=me, txn=txn)
        give_up = time.monotonic() + args.end_seconds
        while True:
            try:
                p.commit_transaction(args.op_seconds)
                h.write("commit_ok", producer=me, txn=txn)
                return p
            except KafkaException as e:
                f = _err_fields(e)
                h.write("commit_fail", producer=me, txn=txn, **f)
                if f["fatal"]:
                    return drop(p, txn, "fatal error on commit")
                if f["abortable"]:
                    return abort(p, txn, after_commit=True)
                if not f["retriable"] or time.monotonic() > give_up:
                    # Neither committed nor abortable: only a new epoch ends it.
                    return drop(p, txn, "commit not finished")
                time.sleep(0.2)

    h.write("start", producer=me, transactional_id=conf["transactional.id"])
    p = None
    txn = 0
    stats = {"commit_ok": 0, "abort_ok": 0}
    next_at = time.monotonic()
    while not should_stop(args, started):
        if p is None:
            p = new_producer()
            if p is None:
                break
        txn += 1
        n = rng.randint(args.txn_min, args.txn_max)
        base = rng.randrange(args.partitions)
        intent = "commit" if rng.random() < args.commit_ratio else "abort"
        try:
            p.begin_transaction()
        except KafkaException as e:
            f = _err_fields(e)
            h.write("begin_fail", producer=me, txn=txn, **f)
            p = drop(p, txn, "begin failed")
            continue
        h.write("begin", producer=me, txn=txn, instance=state["instance"], records=n, intent=intent)
        broken = None
        for rec in range(n):
            value = f"{args.run}-x{me}-{txn}-{rec}"
            part = (base + rec) % args.partitions
            while True:
                try:
                    p.produce(args.topic, value=value.encode(), key=f"x{me}".encode(), partition=part,
                              on_delivery=on_delivery)
                    h.write("send", producer=me, txn=txn, record=rec, value=value, partition=part)
                    break
                except BufferError:
                    p.poll(0.05)
                except KafkaException as e:
                    broken = _err_fields(e)
                    h.write("produce_fail", producer=me, txn=txn, record=rec, value=value, **broken)
                    break
            if broken:
                break
            p.poll(0)
        if broken and broken["fatal"]:
            p = drop(p, txn, "fatal error on produce")
        elif intent == "commit" and not broken:
            p = commit(p, txn)
        else:
            # Aborted records should really be in the log, where read_committed
            # readers must skip them.
            p.flush(args.op_seconds)
            p = abort(p, txn, after_commit=False)
        # Pace: --rate records per second on average.
        next_at += n / args.rate
        if next_at - time.monotonic() < -1.0:
            next_at = time.monotonic()
        while p is not None:
            # poll() returns early when it serves a callback, and a negative
            # timeout would mean "wait forever".
            left = next_at - time.monotonic()
            if left <= 0:
                break
            p.poll(left)
    h.write("stop_sending", producer=me)
    if p is not None:
        p.flush(5)
    h.write("exit", producer=me, txns=txn, instances=state["instance"], acked=state["acked"])
    h.close()
    print(json.dumps({"producer": me, "txns": txn, "instances": state["instance"]}))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["create", "leaders", "produce", "consume", "offsets", "final",
                                        "txn-produce", "txn-consume"])
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
    ap.add_argument("--isolation", choices=["read_committed", "read_uncommitted"],
                    help="consume/final: isolation.level (librdkafka's default: read_committed)")
    ap.add_argument("--lso-wait", type=float, default=60,
                    help="final --isolation read_committed: how long to wait for the LSO to reach the HWM")
    ap.add_argument("--seed", default="0", help="txn-produce: seed of sizes, partitions and outcomes")
    ap.add_argument("--txn-min", type=int, default=2, help="txn-produce: fewest records per transaction")
    ap.add_argument("--txn-max", type=int, default=6, help="txn-produce: most records per transaction")
    ap.add_argument("--commit-ratio", type=float, default=0.7, help="txn-produce: share of transactions committed")
    ap.add_argument("--txn-timeout-ms", type=int, default=20_000,
                    help="txn-produce: transaction.timeout.ms (the coordinator aborts older open transactions)")
    ap.add_argument("--op-seconds", type=float, default=5,
                    help="txn-produce: timeout of one init/commit/abort call")
    ap.add_argument("--end-seconds", type=float, default=40,
                    help="txn-produce: how long a retriable commit or abort is retried before a new producer")
    ap.add_argument("--recreate-backoff", type=float, default=1.0,
                    help="txn-produce: pause before a new producer instance")
    args = ap.parse_args()
    return globals()[f"cmd_{args.command.replace('-', '_')}"](args)


if __name__ == "__main__":
    sys.exit(main())
