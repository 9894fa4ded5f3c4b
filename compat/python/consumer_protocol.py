"""librdkafka (confluent-kafka) with the consumer group protocol of KIP-848
(group.protocol=consumer): two members share a topic's partitions, one
leaves and the other takes them all, and every record is processed exactly
once.

    python consumer_protocol.py

A producer (idempotent, acks=all) writes RATE records/s over the PARTITIONS
partitions of a new topic, in turn, for the whole run; a record's value is its
sequence number within its partition. Members are Consumers of one group
(group.protocol=consumer, the broker's default assignor, no auto commit,
auto.offset.reset=earliest), polled in turn by one thread. A member processes
a batch (counts each record's delivery), then commits the offsets after it
synchronously; for partitions being revoked it commits what it processed of
them in its on_revoke callback. So a partition's next owner starts where the
previous one stopped, and no record may be delivered twice.

Steps, each measured from its start until the group has settled: member a
joins alone; member b joins; member a closes (committing first). Settled
means: the members' partitions (owned from on_assign until on_revoke or
on_lost) are pairwise disjoint and cover every partition, each member owns
PARTITIONS/members of them, and each member has received a record from each
partition it owns since it got it; and this holds for STABLE seconds (not
counted). Two members owning a partition at once is an error.

Then the producer stops; b reads until every acknowledged record is
delivered, QUIET seconds longer, commits and closes. Checks: every
acknowledged record delivered exactly once and nothing else; a and b each
owned a non-empty share (3 partitions each) while both were members; b
owned all partitions after a left; the group's committed offsets equal the
end offsets. Prints "SETTLE ..." per step and "RESULT ...", then "OK", or
"FAIL: ..." and exits 1.

Environment: KAFKA_BOOTSTRAP, COMPAT_RF; COMPAT_CPR_RATE (records/s, default
600), COMPAT_CPR_PARTITIONS (default 6). Timeouts (s): COMPAT_CPR_SETTLE_TIMEOUT
(each step, default 60), COMPAT_CPR_DRAIN_TIMEOUT (delivering every record
after the producer stops, default 60); COMPAT_CPR_STABLE (default 2) and
COMPAT_CPR_QUIET (default 1).
"""

import os
import sys
import threading
import time
import uuid

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from admin import admin_client, bootstrap, create_topic, default_rf

PARTITIONS = int(os.environ.get("COMPAT_CPR_PARTITIONS", "6"))
RATE = float(os.environ.get("COMPAT_CPR_RATE", "600"))
SETTLE_TIMEOUT = float(os.environ.get("COMPAT_CPR_SETTLE_TIMEOUT", "60"))
DRAIN_TIMEOUT = float(os.environ.get("COMPAT_CPR_DRAIN_TIMEOUT", "60"))
STABLE = float(os.environ.get("COMPAT_CPR_STABLE", "2"))
QUIET = float(os.environ.get("COMPAT_CPR_QUIET", "1"))
RUN = f"{int(time.time())}-{uuid.uuid4().hex[:6]}"
T0 = time.monotonic()


def now_ms():
    return int((time.monotonic() - T0) * 1000)


def out(line):
    print(line, flush=True)


def fmt(parts):
    return ",".join(str(p) for p in sorted(parts)) or "-"


class Ledger:
    """What was produced (acknowledged) and delivered, per partition and sequence number."""

    def __init__(self):
        self.lock = threading.Lock()
        self.sent = [0] * PARTITIONS
        self.acked = [0] * PARTITIONS
        self.delivered = {}
        self.deliveries = 0
        self.unexpected = 0
        self.problems = []
        self.producer_error = None

    def deliver(self, member, msg):
        with self.lock:
            self.deliveries += 1
            p = msg.partition()
            try:
                seq = int(msg.value())
            except ValueError:
                seq = -1
            if p >= PARTITIONS or seq < 0 or seq >= self.sent[p]:
                self.unexpected += 1
                self.problem(f"unexpected record {msg.value()!r} at {p}@{msg.offset()} (to {member})")
                return
            n = self.delivered.get((p, seq), 0) + 1
            self.delivered[(p, seq)] = n
            if n > 1:
                self.problem(f"duplicate: partition {p} seq {seq} (offset {msg.offset()}) delivered {n} times, the last to {member}")

    def problem(self, s):
        if len(self.problems) < 20:
            self.problems.append(s)

    def all_delivered(self, acked):
        with self.lock:
            return all((p, s) in self.delivered for p in range(PARTITIONS) for s in range(acked[p]))


class Tracker:
    """Who owns which partition, and since when the group has been settled."""

    def __init__(self):
        self.owned = {}
        self.fetched = {}
        self.settled_since = None
        self.overlaps = []

    def join(self, m):
        self.owned[m] = set()
        self.fetched[m] = set()
        self.evaluate()

    def leave(self, m):
        left = self.owned.pop(m)
        self.fetched.pop(m)
        if left:
            out(f"NOTE {m} closed still owning {fmt(left)}")
        self.evaluate()

    def assigned(self, m, parts):
        if not parts:
            return
        for p in parts:
            for other, theirs in self.owned.items():
                if other != m and p in theirs:
                    self.overlaps.append(f"partition {p} assigned to {m} at {now_ms()} ms while {other} still owns it")
            self.owned[m].add(p)
            self.fetched[m].discard(p)
        out(f"ASSIGNED {m} +{fmt(parts)} now {fmt(self.owned[m])} at={now_ms()}")
        self.evaluate()

    def revoked(self, m, parts, how):
        if not parts:
            return
        for p in parts:
            self.owned[m].discard(p)
            self.fetched[m].discard(p)
        out(f"{how} {m} -{fmt(parts)} now {fmt(self.owned[m])} at={now_ms()}")
        self.evaluate()

    def fetched_from(self, m, parts):
        self.fetched[m].update(p for p in parts if p in self.owned[m])
        self.evaluate()

    def evaluate(self):
        n = len(self.owned)
        ok = n > 0
        if ok:
            lo, hi = PARTITIONS // n, -(-PARTITIONS // n)
            union = set()
            total = 0
            for m, mine in self.owned.items():
                union |= mine
                total += len(mine)
                ok = ok and lo <= len(mine) <= hi and self.fetched[m] >= mine
            ok = ok and len(union) == PARTITIONS and total == PARTITIONS
        if not ok:
            self.settled_since = None
        elif self.settled_since is None:
            self.settled_since = time.monotonic()

    def describe(self):
        return " ".join(f"{m}={fmt(mine)} (fetched {fmt(self.fetched[m])})" for m, mine in sorted(self.owned.items()))


class Member:
    """One group member: a Consumer polled by the main thread."""

    def __init__(self, name, group, topic, ledger, tracker):
        self.name, self.topic, self.ledger, self.tracker = name, topic, ledger, tracker
        self.processed = {}  # partition -> offset after the last processed record
        self.batch_commit_errors = 0
        self.revoke_commit_errors = []
        self.c = Consumer({
            "bootstrap.servers": bootstrap(),
            "group.id": group,
            "group.protocol": "consumer",
            "client.id": f"{group}-{name}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        })
        tracker.join(name)
        out(f"START {name} group.protocol=consumer at={now_ms()}")
        self.c.subscribe([topic], on_assign=self.on_assign, on_revoke=self.on_revoke, on_lost=self.on_lost)

    def on_assign(self, c, parts):
        self.tracker.assigned(self.name, {tp.partition for tp in parts})

    def on_revoke(self, c, parts):
        ps = {tp.partition for tp in parts}
        try:
            self.commit(ps)
        except KafkaException as e:
            self.revoke_commit_errors.append(str(e))
            out(f"NOTE {self.name}: commit on revoke of {fmt(ps)} failed: {e}")
        self.tracker.revoked(self.name, ps, "REVOKED")
        for p in ps:
            self.processed.pop(p, None)

    def on_lost(self, c, parts):
        ps = {tp.partition for tp in parts}
        self.tracker.revoked(self.name, ps, "LOST")
        for p in ps:
            self.processed.pop(p, None)

    def commit(self, parts):
        offsets = [TopicPartition(self.topic, p, self.processed[p]) for p in parts if p in self.processed]
        if offsets:
            self.c.commit(offsets=offsets, asynchronous=False)

    def poll(self):
        msgs = self.c.consume(num_messages=500, timeout=0.05)
        parts = set()
        for m in msgs:
            if m.error():
                raise KafkaException(m.error())
            self.ledger.deliver(self.name, m)
            parts.add(m.partition())
            self.processed[m.partition()] = m.offset() + 1
        if parts:
            self.tracker.fetched_from(self.name, parts)
            try:
                self.commit(parts)
            except KafkaException as e:
                # Left to the revocation callback (a rebalance under way).
                self.batch_commit_errors += 1
                out(f"NOTE {self.name}: commit after a batch failed: {e}")

    def close(self):
        self.commit(list(self.processed))
        self.c.close()
        self.tracker.leave(self.name)
        out(f"CLOSED {self.name} at={now_ms()}")


def produce(topic, ledger, stop):
    p = Producer({
        "bootstrap.servers": bootstrap(),
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "client.id": f"compat-cpr-producer-{RUN}",
    })

    def report(part, seq):
        def cb(err, msg):
            with ledger.lock:
                if err is not None:
                    ledger.producer_error = ledger.producer_error or f"send of partition {part} seq {seq} failed: {err}"
                elif msg.offset() != seq:
                    ledger.producer_error = ledger.producer_error or f"partition {part} seq {seq} stored at offset {msg.offset()}"
                else:
                    ledger.acked[part] = max(ledger.acked[part], seq + 1)
        return cb

    started = time.monotonic()
    i = 0
    while not stop.is_set():
        wait = started + i / RATE - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        part = i % PARTITIONS
        with ledger.lock:
            seq = ledger.sent[part]
            ledger.sent[part] += 1
        p.produce(topic, key=f"p{part}-{seq}", value=str(seq), partition=part, on_delivery=report(part, seq))
        p.poll(0)
        i += 1
    left = p.flush(30)
    if left:
        with ledger.lock:
            ledger.producer_error = ledger.producer_error or f"{left} records still unacknowledged 30 s after the producer stopped"


def main():
    topic = f"compat-cpr-{RUN}"
    group = f"compat-cpr-{RUN}"
    create_topic(admin_client(), topic, PARTITIONS, default_rf())
    ledger, tracker = Ledger(), Tracker()
    stop = threading.Event()
    producer = threading.Thread(target=produce, args=(topic, ledger, stop), daemon=True)
    producer.start()
    members = {}
    everyone = []

    def poll_all():
        for m in list(members.values()):
            m.poll()
        with ledger.lock:
            if ledger.producer_error:
                raise RuntimeError(f"the producer failed: {ledger.producer_error}")

    def await_settled(since, step):
        deadline = since + SETTLE_TIMEOUT
        while True:
            poll_all()
            s = tracker.settled_since
            if s is not None and time.monotonic() - s >= STABLE:
                ms = int((s - since) * 1000)
                out(f"SETTLE step={step} members={len(members)} ms={ms} {tracker.describe()}")
                return ms
            if time.monotonic() > deadline:
                raise RuntimeError(f"the group did not settle within {SETTLE_TIMEOUT:.0f}s of {step} (every partition owned "
                                   f"by one member, balanced, each member receiving records from each of its partitions); "
                                   f"members: {tracker.describe()}")

    failure = None
    try:
        t = time.monotonic()
        members["a"] = Member("a", group, topic, ledger, tracker)
        everyone.append(members["a"])
        await_settled(t, "a-joins")
        t = time.monotonic()
        members["b"] = Member("b", group, topic, ledger, tracker)
        everyone.append(members["b"])
        await_settled(t, "b-joins")
        shares = {m: set(ps) for m, ps in tracker.owned.items()}
        out("SHARES " + " ".join(f"{m}={fmt(ps)}" for m, ps in sorted(shares.items())))
        t = time.monotonic()
        members.pop("a").close()
        await_settled(t, "a-leaves")
        if tracker.owned.get("b") != set(range(PARTITIONS)):
            raise RuntimeError(f"after a left, b must own every partition; owns {fmt(tracker.owned.get('b', set()))}")

        stop.set()
        producer.join()
        with ledger.lock:
            acked = list(ledger.acked)
            if ledger.producer_error:
                raise RuntimeError(f"the producer failed: {ledger.producer_error}")
        deadline = time.monotonic() + DRAIN_TIMEOUT
        while not ledger.all_delivered(acked):
            poll_all()
            if time.monotonic() > deadline:
                raise RuntimeError(f"not every acknowledged record was delivered within {DRAIN_TIMEOUT:.0f}s after the "
                                   f"producer stopped; members: {tracker.describe()}")
        quiet_until = time.monotonic() + QUIET
        while time.monotonic() < quiet_until:
            poll_all()
        b = members["b"]
        b.commit(list(b.processed))
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        committed = {tp.partition: tp.offset for tp in b.c.committed(tps, timeout=10)}
        ends = {p: b.c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(PARTITIONS)}
        members.pop("b").close()

        produced = sum(acked)
        with ledger.lock:
            missing = [(p, s) for p in range(PARTITIONS) for s in range(acked[p]) if (p, s) not in ledger.delivered]
            duplicates = sum(n - 1 for n in ledger.delivered.values() if n > 1)
            problems = list(ledger.problems)
        out(f"RESULT produced={produced} deliveries={ledger.deliveries} duplicates={duplicates} missing={len(missing)} "
            f"unexpected={ledger.unexpected} overlaps={len(tracker.overlaps)} "
            f"batch_commits_failed={sum(m.batch_commit_errors for m in everyone)} "
            f"revoke_commits_failed={sum(len(m.revoke_commit_errors) for m in everyone)}")
        for s in problems + [f"missing: partition {p} seq {s}" for p, s in missing[:10]] + tracker.overlaps:
            out("  " + s)
        bad_offsets = [f"{p}: committed {committed.get(p)}, end {ends[p]}" for p in range(PARTITIONS) if committed.get(p) != ends[p]]
        if produced == 0:
            failure = "no record was acknowledged"
        elif duplicates or missing or ledger.unexpected:
            failure = (f"each of the {produced} acknowledged records must be delivered exactly once; {duplicates} duplicate "
                       f"deliveries, {len(missing)} never delivered, {ledger.unexpected} unexpected")
        elif tracker.overlaps:
            failure = f"two members owned a partition at the same time: {tracker.overlaps[0]}"
        elif len(shares) != 2 or any(len(ps) != PARTITIONS // 2 for ps in shares.values()):
            failure = f"with two members each must own {PARTITIONS // 2} partitions; owned {shares}"
        elif bad_offsets:
            failure = "the group's committed offsets must equal the end offsets: " + "; ".join(bad_offsets)
    except Exception as e:  # a client error or a timeout: the verdict names it
        failure = str(e)
        for m in members.values():
            try:
                m.c.close()
            except Exception:
                pass
    stop.set()
    if failure:
        out(f"FAIL: {failure}")
        sys.exit(1)
    out("OK")


if __name__ == "__main__":
    main()
