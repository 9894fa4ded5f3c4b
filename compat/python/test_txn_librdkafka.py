"""Transactions with librdkafka (confluent-kafka): a transactional producer
that commits and aborts, read_committed and read_uncommitted consumers, and
a consume-transform-produce loop that commits its group offsets with
send_offsets_to_transaction.

Environment: KAFKA_BOOTSTRAP (required), COMPAT_RF (replication factor,
default 3), COMPAT_TXN_READ_TIMEOUT (seconds a read of a topic may take,
default 60), COMPAT_TXN_STABLE_TIMEOUT (seconds to wait before a read until
no transaction is open on the topic, default 60).

What the tests hold the brokers to:
- Transactions committed are read by a read_committed consumer (librdkafka's
  default isolation level) in order per partition; aborted ones never are,
  although a read_uncommitted consumer finds their records in the log.
- In consume-transform-produce, the consumed offsets sent with the
  transaction are committed for the group when, and only when, it commits:
  an aborted transaction leaves the group's offsets where they were and
  its output unread; in the end every input is in the output exactly once
  and the committed offsets are the input's end offsets.
"""

import os
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from admin import admin_client, bootstrap, create_topic, default_rf

READ_TIMEOUT = float(os.environ.get("COMPAT_TXN_READ_TIMEOUT", "60"))
# How long a reader waits for the last commit's markers: a commit returns
# before they are written, so the last stable offsets reach the high
# watermarks a little later.
STABLE_TIMEOUT = float(os.environ.get("COMPAT_TXN_STABLE_TIMEOUT", "60"))
PARTITIONS = 3
TXNS = 30
RECORDS = 6
RUN = uuid.uuid4().hex[:8]


def txn_producer(transactional_id):
    p = Producer({
        "bootstrap.servers": bootstrap(),
        "transactional.id": transactional_id,
        "acks": "all",
        "linger.ms": 0,
    })
    p.init_transactions(READ_TIMEOUT)
    return p


def watermarks(topic, isolation, partitions):
    c = Consumer({"bootstrap.servers": bootstrap(), "group.id": f"compat-txn-probe-{RUN}", "isolation.level": isolation})
    try:
        return {q: c.get_watermark_offsets(TopicPartition(topic, q), timeout=READ_TIMEOUT, cached=False)[1]
                for q in range(partitions)}
    finally:
        c.close()


def wait_stable(topic, partitions):
    """Waits until no transaction is open on the topic: the read_committed
    end offsets (last stable offsets) equal the read_uncommitted ones."""
    deadline = time.monotonic() + STABLE_TIMEOUT
    while True:
        lso, hw = watermarks(topic, "read_committed", partitions), watermarks(topic, "read_uncommitted", partitions)
        if lso == hw:
            return
        assert time.monotonic() < deadline, (
            f"{topic}: the last stable offsets {lso} did not reach the high watermarks {hw} "
            f"within {STABLE_TIMEOUT}s of the last commit returning")
        time.sleep(0.1)


def read_all(topic, isolation, partitions=PARTITIONS, group=None):
    """Every record from the first offset up to the end (the last stable
    offset with read_committed), as {partition: [value, ...]} in log order,
    once no transaction is open on the topic."""
    wait_stable(topic, partitions)
    c = Consumer({
        "bootstrap.servers": bootstrap(),
        "group.id": group or f"compat-txn-reader-{uuid.uuid4().hex[:8]}",
        "isolation.level": isolation,
        "enable.auto.commit": False,
        "enable.partition.eof": True,
    })
    try:
        c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        out = {p: [] for p in range(partitions)}
        eof = set()
        deadline = time.monotonic() + READ_TIMEOUT
        while len(eof) < partitions:
            assert time.monotonic() < deadline, (
                f"{isolation} read of {topic} did not reach the end of every partition within {READ_TIMEOUT}s; "
                f"at the end: {sorted(eof)}")
            for m in c.consume(num_messages=500, timeout=0.5):
                if m.error():
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        eof.add(m.partition())
                        continue
                    pytest.fail(f"consume error: {m.error()}")
                eof.discard(m.partition())
                out[m.partition()].append(m.value().decode())
        return out
    finally:
        c.close()


def test_commit_abort_read_committed():
    """30 transactions of 6 records over 3 partitions, every third aborted
    (after its records are delivered): read_committed reads exactly the
    committed records in order per partition, read_uncommitted all."""
    topic = f"compat-rdk-txn-{RUN}"
    create_topic(admin_client(), topic, PARTITIONS, default_rf())
    p = txn_producer(f"compat-rdk-txn-{RUN}")
    errors = []
    want_committed = {q: [] for q in range(PARTITIONS)}
    want_all = {q: [] for q in range(PARTITIONS)}
    committed = aborted = 0
    for i in range(TXNS):
        p.begin_transaction()
        for j in range(RECORDS):
            value = f"t{i}-r{j}"
            p.produce(topic, key=f"t{i}", value=value, partition=j % PARTITIONS,
                      on_delivery=lambda err, msg: err and errors.append(f"{msg.value()}: {err}"))
            want_all[j % PARTITIONS].append(value)
        if i % 3 == 2:
            # Delivered first, so the aborted records are in the log.
            assert p.flush(READ_TIMEOUT) == 0, f"transaction t{i}: records still undelivered"
            p.abort_transaction(READ_TIMEOUT)
            aborted += 1
        else:
            p.commit_transaction(READ_TIMEOUT)
            committed += 1
            for j in range(RECORDS):
                want_committed[j % PARTITIONS].append(f"t{i}-r{j}")
    assert not errors, f"failed deliveries: {errors[:5]}"
    print(f"{committed} transactions committed, {aborted} aborted, {RECORDS} records each")

    got = read_all(topic, "read_committed")
    for q in range(PARTITIONS):
        assert got[q] == want_committed[q], (
            f"partition {q}: read_committed must read exactly the committed records in order "
            f"({len(want_committed[q])}); read {len(got[q])}, aborted among them: "
            f"{[v for v in got[q] if v not in want_committed[q]][:5]}, missing: "
            f"{[v for v in want_committed[q] if v not in got[q]][:5]}")
    got = read_all(topic, "read_uncommitted")
    for q in range(PARTITIONS):
        assert got[q] == want_all[q], (
            f"partition {q}: read_uncommitted must read all {len(want_all[q])} records, committed and aborted, "
            f"in order; read {len(got[q])}, missing: {[v for v in want_all[q] if v not in got[q]][:5]}")


def committed_offsets(group, topic):
    c = Consumer({"bootstrap.servers": bootstrap(), "group.id": group})
    try:
        return {tp.partition: tp.offset for tp in
                c.committed([TopicPartition(topic, q) for q in range(PARTITIONS)], timeout=READ_TIMEOUT)}
    finally:
        c.close()


def test_send_offsets_consume_transform_produce():
    """A consume-transform-produce loop (read_committed consumer in a group,
    send_offsets_to_transaction) copies 600 records, 20 per transaction; its
    fourth transaction is aborted instead of committed: the group's offsets
    stay where the third left them and the loop resumes from them. In the
    end read_committed finds each input once in the output, and the group's
    committed offsets are the input's end offsets."""
    n, batch, abort_at = 600, 20, 4
    src, dst = f"compat-rdk-ctp-in-{RUN}", f"compat-rdk-ctp-out-{RUN}"
    group = f"compat-rdk-ctp-{RUN}"
    admin = admin_client()
    create_topic(admin, src, PARTITIONS, default_rf())
    create_topic(admin, dst, PARTITIONS, default_rf())
    feeder = Producer({"bootstrap.servers": bootstrap(), "enable.idempotence": True, "acks": "all"})
    for i in range(n):
        feeder.produce(src, key=f"k{i % 17}", value=f"in-{i}")
    assert feeder.flush(READ_TIMEOUT) == 0, "input records still undelivered"

    producer = txn_producer(f"compat-rdk-ctp-{RUN}")
    consumer = Consumer({
        "bootstrap.servers": bootstrap(),
        "group.id": group,
        "isolation.level": "read_committed",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": True,
    })
    txns = 0
    aborted_copies = 0
    copied = 0
    try:
        consumer.subscribe([src])
        eof = set()
        deadline = time.monotonic() + READ_TIMEOUT
        while len(eof) < PARTITIONS:
            assert time.monotonic() < deadline, (
                f"the loop did not consume all {n} inputs within {READ_TIMEOUT}s: copied {copied}")
            msgs = consumer.consume(num_messages=batch, timeout=0.5)
            good = []
            for m in msgs:
                if m.error():
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        eof.add(m.partition())
                        continue
                    pytest.fail(f"consume error: {m.error()}")
                eof.discard(m.partition())
                good.append(m)
            if not good:
                continue
            if txns + 1 == abort_at:
                # Read before the transaction holds pending offsets for the group.
                before = committed_offsets(group, src)
            producer.begin_transaction()
            for m in good:
                producer.produce(dst, key=m.key(), value=b"copy:" + m.value())
            producer.send_offsets_to_transaction(consumer.position(consumer.assignment()),
                                                 consumer.consumer_group_metadata(), READ_TIMEOUT)
            txns += 1
            if txns == abort_at:
                assert producer.flush(READ_TIMEOUT) == 0
                producer.abort_transaction(READ_TIMEOUT)
                aborted_copies = len(good)
                after = committed_offsets(group, src)
                assert after == before, (
                    f"an aborted transaction must leave the group's committed offsets as they were: "
                    f"before {before}, after {after}")
                print(f"transaction {txns} aborted with {len(good)} copies; committed offsets stay at {after}")
                # Resume from the committed offsets, as an application does after an abort.
                for tp in consumer.committed(consumer.assignment(), timeout=READ_TIMEOUT):
                    consumer.seek(TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else 0))
                eof.clear()
                continue
            producer.commit_transaction(READ_TIMEOUT)
            copied += len(good)
    finally:
        consumer.close()
    print(f"{txns} transactions, {copied} records copied, {aborted_copies} copies aborted")

    out = read_all(dst, "read_committed")
    values = sorted(v for vs in out.values() for v in vs)
    want = sorted(f"copy:in-{i}" for i in range(n))
    dups = sorted({v for v in values if values.count(v) > 1})
    missing = sorted(set(want) - set(values))
    assert values == want, (
        f"read_committed output must hold each of the {n} inputs once: read {len(values)}, "
        f"duplicated {dups[:5]}, missing {missing[:5]}")
    everything = read_all(dst, "read_uncommitted")
    total = sum(len(v) for v in everything.values())
    assert total == n + aborted_copies, (
        f"the log must hold the {n} committed copies and the {aborted_copies} aborted ones; it holds {total}")
    ends = {}
    c = Consumer({"bootstrap.servers": bootstrap(), "group.id": f"compat-rdk-probe-{RUN}"})
    try:
        for q in range(PARTITIONS):
            ends[q] = c.get_watermark_offsets(TopicPartition(src, q), timeout=READ_TIMEOUT)[1]
    finally:
        c.close()
    assert committed_offsets(group, src) == ends, (
        f"the group's committed offsets must be the input's end offsets {ends}; "
        f"they are {committed_offsets(group, src)}")
