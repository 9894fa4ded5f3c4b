"""Rill with librdkafka (confluent-kafka): an idempotent acks=all producer and
consumer groups whose members join, leave and crash while they consume.

Environment: KAFKA_BOOTSTRAP (required), COMPAT_RF (replication factor,
default 3), COMPAT_RECORDS (default 100000), COMPAT_PARTITIONS (default 6),
COMPAT_GROUP_TIMEOUT (seconds a group scenario may take, default 120).

Delivery guarantees the tests hold the brokers to:
- The producer must get every record acknowledged, and a plain read-back must
  find each one exactly once (idempotence: retries write no duplicate).
- Consumers commit offsets by hand, synchronously, after processing each batch
  and, for partitions being revoked, in the revoke callback. With that
  discipline nothing is processed twice even across rebalances, so the strict
  test demands zero duplicates and zero losses, and that the group's committed
  offsets end at the partitions' end offsets.
- At-least-once allows duplicates only for records a member processed but had
  not committed when it died: the crash test kills a member (closes it
  without committing its last batch) and demands that the duplicates are
  exactly that uncommitted batch, nothing else, and that nothing is lost.
"""

import os
import threading
import time
import uuid
from collections import Counter, defaultdict

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from admin import admin_client, bootstrap, create_topic, default_rf

RECORDS = int(os.environ.get("COMPAT_RECORDS", "100000"))
PARTITIONS = int(os.environ.get("COMPAT_PARTITIONS", "6"))
GROUP_TIMEOUT = float(os.environ.get("COMPAT_GROUP_TIMEOUT", "120"))
# A member waits this long for its first record after joining.
JOIN_TIMEOUT = float(os.environ.get("COMPAT_JOIN_TIMEOUT", "45"))
RUN = uuid.uuid4().hex[:8]
RETRY_AFTER_REBALANCE = {KafkaError.ILLEGAL_GENERATION, KafkaError.REBALANCE_IN_PROGRESS}


def value_of(i):
    return f"v{i:07d}".encode()


def key_of(i):
    return f"key-{i % 5000}".encode()


@pytest.fixture(scope="module")
def topic():
    """A 6-partition topic holding RECORDS keyed records written by an
    idempotent acks=all producer; every delivery report must be a success."""
    name = f"compat-rdk-{RUN}"
    create_topic(admin_client(), name, PARTITIONS, default_rf())
    p = Producer({
        "bootstrap.servers": bootstrap(),
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "compression.type": "lz4",
    })
    errors = []
    acked = [0]

    def report(err, msg):
        if err is not None:
            errors.append(f"{msg.key()}: {err}")
        else:
            acked[0] += 1

    for i in range(RECORDS):
        while True:
            try:
                p.produce(name, key=key_of(i), value=value_of(i), on_delivery=report)
                break
            except BufferError:
                p.poll(0.05)
        if i % 1000 == 0:
            p.poll(0)
    remaining = p.flush(60)
    assert remaining == 0, f"{remaining} records still in flight after flush(60)"
    assert not errors, f"{len(errors)} failed deliveries, first: {errors[:5]}"
    assert acked[0] == RECORDS
    return name


def end_offsets(topic_name):
    c = Consumer({"bootstrap.servers": bootstrap(), "group.id": f"compat-probe-{RUN}"})
    try:
        out = {}
        for p in range(PARTITIONS):
            lo, hi = c.get_watermark_offsets(TopicPartition(topic_name, p), timeout=10)
            out[p] = hi
        return out
    finally:
        c.close()


def committed_offsets(group, topic_name):
    """The group's committed offsets, read with OffsetFetch (no join)."""
    c = Consumer({"bootstrap.servers": bootstrap(), "group.id": group})
    try:
        tps = c.committed([TopicPartition(topic_name, p) for p in range(PARTITIONS)], timeout=10)
        return {tp.partition: tp.offset for tp in tps}
    finally:
        c.close()


class Ledger:
    """Every record any member processed, and by whom."""

    def __init__(self):
        self.lock = threading.Lock()
        self.deliveries = []  # (partition, offset, value, member)
        self.errors = []
        # While a member joins, the others hold: they drop what they consume
        # unprocessed and seek back, so the newcomer is sure to find records.
        self.hold_except = None
        self.notes = Counter()

    def note(self, text):
        with self.lock:
            self.notes[text] += 1

    def add(self, batch, member):
        with self.lock:
            for m in batch:
                self.deliveries.append((m.partition(), m.offset(), m.value(), member))

    def count(self):
        with self.lock:
            return len(self.deliveries)

    def drained(self, partitions, ends):
        """True if every record of these partitions has been processed."""
        with self.lock:
            nxt = {}
            for p, o, _, _ in self.deliveries:
                nxt[p] = max(nxt.get(p, 0), o + 1)
        return all(nxt.get(p, 0) >= ends[p] for p in partitions)

    def unique(self):
        with self.lock:
            return len({(p, o) for p, o, _, _ in self.deliveries})


class Member(threading.Thread):
    """One group member: consume a batch, process it (into the ledger),
    commit its offsets synchronously; on revoke, commit what was processed.
    crash() makes it stop after processing its next batch without committing
    it, as a process dying mid-batch would."""

    def __init__(self, name, group, topic_name, ledger, strategy, pace):
        super().__init__(name=name, daemon=True)
        self.member = name
        self.ledger = ledger
        self.topic_name = topic_name
        self.pace = pace
        self.stop_flag = threading.Event()
        self.crash_flag = threading.Event()
        self.crashed_batch = None
        self.first_record = threading.Event()
        self.owned = set()  # partitions currently assigned
        self.assignments = []
        self.pending = {}  # partition -> next offset to commit
        self.consumer = Consumer({
            "bootstrap.servers": bootstrap(),
            "group.id": group,
            "client.id": name,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "partition.assignment.strategy": strategy,
            "session.timeout.ms": 10000,
            "heartbeat.interval.ms": 1000,
            "error_cb": lambda err: ledger.note(f"{name}: client error: {err}"),
        })

    def _commit(self, partitions=None):
        """Commits processed offsets synchronously: of the given partitions,
        or of all partitions still owned. A commit refused because a rebalance
        moved the group to a new generation (ILLEGAL_GENERATION,
        REBALANCE_IN_PROGRESS: the cooperative protocol keeps consuming while
        it rebalances) stays pending and is retried after the next poll, but
        only for partitions the member still owns, so it never moves another
        member's commit backwards. Returns False if it stayed pending."""
        offsets = [TopicPartition(self.topic_name, p, o) for p, o in self.pending.items()
                   if (p in self.owned if partitions is None else p in partitions)]
        if not offsets:
            return True
        try:
            self.consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as e:
            if e.args[0].code() in RETRY_AFTER_REBALANCE:
                self.ledger.note(f"{self.member}: commit retried after rebalance: {e.args[0].name()}")
                return False
            self.ledger.errors.append(f"{self.member}: commit {offsets}: {e}")
            raise
        for tp in offsets:
            if self.pending.get(tp.partition) == tp.offset:
                del self.pending[tp.partition]
        return True

    def _assigned(self):
        try:
            return {tp.partition for tp in self.consumer.assignment()}
        except KafkaException:
            return set()

    def _on_assign(self, consumer, partitions):
        self.assignments.append(("assign", sorted(p.partition for p in partitions)))
        self.owned = self.owned | {p.partition for p in partitions}

    def _on_revoke(self, consumer, partitions):
        revoked = {p.partition for p in partitions}
        self.assignments.append(("revoke", sorted(revoked)))
        if not self.crash_flag.is_set() and not self._commit(revoked):
            uncommitted = {p: o for p, o in self.pending.items() if p in revoked}
            self.ledger.errors.append(f"{self.member}: the commit of revoked partitions failed: {uncommitted}")
        self.owned = self.owned - revoked
        for p in revoked:
            self.pending.pop(p, None)

    def run(self):
        c = self.consumer
        try:
            c.subscribe([self.topic_name], on_assign=self._on_assign, on_revoke=self._on_revoke)
            while not self.stop_flag.is_set():
                batch = c.consume(num_messages=200, timeout=0.2)
                good = []
                for m in batch:
                    if m.error():
                        if m.error().code() != KafkaError._PARTITION_EOF:
                            self.ledger.errors.append(f"{self.member}: consume: {m.error()}")
                        continue
                    good.append(m)
                if not good:
                    if self.crash_flag.is_set():
                        return  # nothing in hand to crash with; the test reports it
                    continue
                hold = self.ledger.hold_except
                if hold is not None and hold != self.member:
                    firsts = {}
                    for m in good:
                        firsts.setdefault(m.partition(), m.offset())
                    for p, o in firsts.items():
                        try:
                            c.seek(TopicPartition(self.topic_name, p, o))
                        except KafkaException as e:
                            if p in self._assigned():
                                self.ledger.errors.append(f"{self.member}: seek {p}@{o}: {e}")
                    time.sleep(0.05)
                    continue
                self.ledger.add(good, self.member)
                self.first_record.set()
                for m in good:
                    self.pending[m.partition()] = m.offset() + 1
                if self.crash_flag.is_set():
                    self.crashed_batch = [(m.partition(), m.offset()) for m in good]
                    return  # no commit: the batch was processed, then the process "died"
                self._commit()
                if self.pace:
                    time.sleep(self.pace)
        except Exception as e:  # noqa: BLE001 - reported through the ledger
            self.ledger.errors.append(f"{self.member}: {type(e).__name__}: {e}")
        finally:
            if not self.crash_flag.is_set():
                self._commit()
            c.close()

    def leave(self):
        self.stop_flag.set()
        self.join(30)
        assert not self.is_alive(), f"{self.member} did not stop"

    def crash(self):
        self.crash_flag.set()
        self.join(30)
        assert not self.is_alive(), f"{self.member} did not stop"


def wait_for(what, cond, timeout, ledger):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ledger.errors:
            pytest.fail(f"while waiting for {what}: member errors: {ledger.errors[:5]}")
        if cond():
            return
        time.sleep(0.05)
    notes = "; ".join(f"{n} x {t}" for t, n in ledger.notes.most_common(5))
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}; "
                f"processed {ledger.count()} ({ledger.unique()} unique) of {RECORDS}"
                + (f"; client reports: {notes}" if notes else ""))


def analyse(ledger, expect_values):
    per_offset = Counter((p, o) for p, o, _, _ in ledger.deliveries)
    dups = {k: n for k, n in per_offset.items() if n > 1}
    seen_values = {v for _, _, v, _ in ledger.deliveries}
    missing = expect_values - seen_values
    return dups, missing


def run_scenario(topic_name, group, strategy, plan, pace=0.02):
    """plan: list of (fraction of RECORDS processed, action, member name).
    action is 'join', 'leave' or 'crash'."""
    ledger = Ledger()
    members = {}
    ends = end_offsets(topic_name)
    deadline = time.monotonic() + GROUP_TIMEOUT
    for fraction, action, name in plan:
        wait_for(f"{fraction:.0%} processed before '{action} {name}'",
                 lambda: ledger.unique() >= fraction * RECORDS,
                 max(1, deadline - time.monotonic()), ledger)
        if action == "join":
            m = Member(name, group, topic_name, ledger, strategy, pace)
            members[name] = m
            ledger.hold_except = name if len(members) > 1 else None
            m.start()
            # Joined: it processed a record, or it owns partitions that have
            # nothing left to process (consumption is uneven across them).
            wait_for(f"{name} to join and get its first record",
                     lambda: m.first_record.is_set() or (m.owned and ledger.drained(set(m.owned), ends)),
                     JOIN_TIMEOUT, ledger)
            ledger.hold_except = None
        elif action == "leave":
            members[name].leave()
        elif action == "crash":
            members[name].crash()
    wait_for("every record processed", lambda: ledger.unique() >= RECORDS,
             max(1, deadline - time.monotonic()), ledger)
    for m in members.values():
        if m.is_alive():
            m.leave()
    assert not ledger.errors, f"member errors: {ledger.errors[:5]}"
    for text, n in sorted(ledger.notes.items()):
        print(f"{n} x {text}")
    return ledger, members


def test_idempotent_produce_readback(topic):
    """Every acknowledged record is on the brokers exactly once."""
    ends = end_offsets(topic)
    assert sum(ends.values()) == RECORDS, f"end offsets {ends} do not add up to {RECORDS}"
    c = Consumer({"bootstrap.servers": bootstrap(), "group.id": f"compat-readback-{RUN}",
                  "enable.auto.commit": False, "enable.partition.eof": True})
    c.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    values = Counter()
    key_partition = {}
    eof = set()
    deadline = time.monotonic() + 60
    try:
        while len(eof) < PARTITIONS and time.monotonic() < deadline:
            for m in c.consume(num_messages=1000, timeout=0.5):
                if m.error():
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        eof.add(m.partition())
                        continue
                    pytest.fail(f"consume error: {m.error()}")
                values[m.value()] += 1
                prev = key_partition.setdefault(m.key(), m.partition())
                assert prev == m.partition(), f"key {m.key()} in partitions {prev} and {m.partition()}"
    finally:
        c.close()
    assert len(eof) == PARTITIONS, "did not reach the end of every partition within 60s"
    dups = {v: n for v, n in values.items() if n > 1}
    missing = {value_of(i) for i in range(RECORDS)} - set(values)
    assert not dups, f"{len(dups)} duplicated values, e.g. {list(dups.items())[:5]}"
    assert not missing, f"{len(missing)} missing values, e.g. {sorted(missing)[:5]}"


@pytest.mark.parametrize("strategy", ["range", "cooperative-sticky"])
def test_group_rebalance_strict(topic, strategy):
    """Three to four members join and leave while consuming; synchronous
    commits per batch and on revoke: zero duplicates, zero losses."""
    group = f"compat-strict-{strategy}-{RUN}"
    plan = [
        (0.0, "join", "a"),
        (0.10, "join", "b"),
        (0.20, "join", "c"),
        (0.35, "leave", "a"),
        (0.50, "join", "d"),
        (0.65, "leave", "b"),
        (0.80, "join", "e"),
    ]
    ledger, members = run_scenario(topic, group, strategy, plan)
    dups, missing = analyse(ledger, {value_of(i) for i in range(RECORDS)})
    history = {n: m.assignments for n, m in members.items()}
    assert not missing, f"{len(missing)} records never processed, e.g. {sorted(missing)[:5]}; history {history}"
    assert not dups, (f"{len(dups)} records processed twice although every batch was committed "
                      f"synchronously before the next poll and on revoke, e.g. {list(dups.items())[:5]}; "
                      f"history {history}")
    assert committed_offsets(group, topic) == end_offsets(topic)
    joined = {n for n, m in members.items() if any(kind == "assign" and parts for kind, parts in m.assignments)}
    assert joined == set(members), f"members never assigned a partition: {set(members) - joined}; history {history}"


def test_group_crash_at_least_once(topic):
    """A member dies after processing a batch it never committed: that batch,
    and nothing else, is processed again by the member that takes over."""
    group = f"compat-crash-{RUN}"
    plan = [
        (0.0, "join", "a"),
        (0.0, "join", "b"),
        (0.30, "crash", "a"),
        (0.60, "join", "c"),
    ]
    ledger, members = run_scenario(topic, group, "range", plan)
    dups, missing = analyse(ledger, {value_of(i) for i in range(RECORDS)})
    crashed = set(members["a"].crashed_batch or [])
    assert crashed, "member a processed no batch before it crashed"
    assert not missing, f"{len(missing)} records never processed, e.g. {sorted(missing)[:5]}"
    assert set(dups) == crashed, (
        f"duplicates must be exactly the {len(crashed)} records of the uncommitted batch: "
        f"{len(set(dups) - crashed)} other duplicates (e.g. {sorted(set(dups) - crashed)[:5]}), "
        f"{len(crashed - set(dups))} uncommitted records not redelivered (e.g. {sorted(crashed - set(dups))[:5]})")
    assert all(n == 2 for n in dups.values()), f"records processed more than twice: {dups}"
    assert committed_offsets(group, topic) == end_offsets(topic)


def test_commit_and_resume(topic):
    """A consumer commits part of the topic and closes; a new one with the
    same group id resumes at exactly the committed offsets."""
    group = f"compat-resume-{RUN}"
    ledger = Ledger()
    first = Member("first", group, topic, ledger, "range", pace=0.0)
    first.start()
    wait_for("the first consumer to join and get a record", first.first_record.is_set, JOIN_TIMEOUT, ledger)
    wait_for("30% processed", lambda: ledger.unique() >= 0.3 * RECORDS, GROUP_TIMEOUT, ledger)
    first.leave()
    processed_first = ledger.count()
    assert processed_first < RECORDS, "the first consumer read everything: nothing left to resume"
    committed = committed_offsets(group, topic)
    next_per_partition = defaultdict(int)
    for p, o, _, _ in ledger.deliveries:
        next_per_partition[p] = max(next_per_partition[p], o + 1)
    for p in range(PARTITIONS):
        if p in next_per_partition:
            assert committed[p] == next_per_partition[p], (
                f"partition {p}: committed {committed[p]}, processed up to {next_per_partition[p]}")
        else:
            assert committed[p] < 0, f"partition {p}: committed {committed[p]} but nothing was processed"

    second = Member("second", group, topic, ledger, "range", pace=0.0)
    second.start()
    wait_for("every record processed", lambda: ledger.unique() >= RECORDS, GROUP_TIMEOUT, ledger)
    second.leave()
    assert not ledger.errors, ledger.errors[:5]
    resumed = {}
    for p, o, _, m in ledger.deliveries[processed_first:]:
        resumed.setdefault(p, o)
    for p, first_offset in resumed.items():
        expected = committed[p] if committed[p] >= 0 else 0
        assert first_offset == expected, (
            f"partition {p}: resumed at {first_offset}, committed offset was {committed[p]}")
    dups, missing = analyse(ledger, {value_of(i) for i in range(RECORDS)})
    assert not dups, f"{len(dups)} duplicates after resume, e.g. {list(dups.items())[:5]}"
    assert not missing, f"{len(missing)} missing after resume"
    assert committed_offsets(group, topic) == end_offsets(topic)
