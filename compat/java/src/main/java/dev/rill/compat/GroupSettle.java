package dev.rill.compat;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.ListOffsetsResult;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.consumer.CommitFailedException;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.CooperativeStickyAssignor;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.consumer.RangeAssignor;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.RebalanceInProgressException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * A consumer group whose membership changes while a producer writes, with the
 * Java consumer in either group protocol: measures how long the group takes
 * to settle after each change and checks that every record is processed
 * exactly once.
 *
 * A producer (idempotent, acks=all) writes to each of the --partitions
 * partitions of --topic in turn, --rate records/s in all, for the whole run;
 * a record's value is its sequence number within its partition. Members are
 * KafkaConsumers of group --group, each on its own thread, subscribed to the
 * topic (auto.offset.reset=earliest, no auto commit). A member processes a
 * polled batch (counts each record's delivery), then commits the offsets after
 * it with commitSync; a member whose partitions are revoked commits the
 * offsets after what it processed of them in onPartitionsRevoked. So no
 * record may be delivered twice: a partition's next owner starts at the
 * offset its previous owner committed on revocation, and records fetched but
 * not yet returned by poll when the partition moves are dropped by the old
 * owner and fetched again by the new one.
 *
 * --plan join: members m1 and m2 join (--protocol consumer|classic); once
 * settled, m3 joins and the settle time is measured.
 * --plan upgrade: m1 and m2 join with group.protocol=classic; m3 joins with
 * group.protocol=consumer (the group becomes a consumer group); then m1 and
 * m2 are restarted, one at a time, with group.protocol=consumer (closed, then
 * a new consumer takes the name). Each step's settle time is measured.
 *
 * Settled means: the partitions owned by the members (as their rebalance
 * listeners report: owned from onPartitionsAssigned until onPartitionsRevoked
 * or onPartitionsLost) are pairwise disjoint and cover every partition, each
 * member owns partitions/members rounded down or up (balanced), and each
 * member has received at least one record from each partition it owns since
 * it was assigned it; and this holds for --stable-ms. The settle time of a
 * step runs from just before the new member's subscribe() to the moment this
 * began to hold (the stable window is not counted). Two members owning one
 * partition at the same time is an error.
 *
 * After the last step "SETTLED ..." lines give each member's partitions; with
 * --hold-file the program then prints "HOLD" and keeps the group running
 * (producing and consuming) until that file exists, so a caller can inspect
 * the group. Then the producer stops; the members read until every
 * acknowledged record is delivered, then --quiet-ms longer (a late duplicate
 * would show), commit and close. The checks: every acknowledged record
 * delivered exactly once, nothing delivered that was not acknowledged, the
 * group's committed offsets at the partitions' end offsets, and no member's
 * assignment changed after the last step settled. Prints
 * "RESULT ..." and "OK", or "FAIL: ..." and exits 1.
 *
 * Options: --classic-assignor range|cooperative-sticky (classic members;
 * default: the client's default list, range then cooperative-sticky, which
 * makes the group use range); --remote-assignor NAME (group.remote.assignor of
 * consumer members; default: the broker's default). Timeouts: --settle-timeout-s
 * for each step, --drain-timeout-s to deliver every record after the
 * producer stops, --hold-timeout-s to wait for the hold file.
 */
public final class GroupSettle {
    private static final long START_NANOS = System.nanoTime();

    static long nowMs() {
        return (System.nanoTime() - START_NANOS) / 1_000_000;
    }

    static void out(String line) {
        synchronized (System.out) {
            System.out.println(line);
            System.out.flush();
        }
    }

    static String fmt(Collection<Integer> parts) {
        StringBuilder b = new StringBuilder();
        for (int p : new TreeSet<>(parts)) {
            b.append(b.length() == 0 ? "" : ",").append(p);
        }
        return b.length() == 0 ? "-" : b.toString();
    }

    /** What was produced and what was delivered, per partition and sequence number. */
    static final class Ledger {
        final int partitions;
        final long[] acked;          // acknowledged records per partition (sequence numbers 0..acked-1)
        final long[] sent;           // records handed to the producer per partition
        final List<int[]> delivered = new ArrayList<>();  // delivery count per sequence number
        long deliveries;
        long unexpected;
        final List<String> problems = new ArrayList<>();
        String producerError;

        Ledger(int partitions) {
            this.partitions = partitions;
            acked = new long[partitions];
            sent = new long[partitions];
            for (int p = 0; p < partitions; p++) {
                delivered.add(new int[1024]);
            }
        }

        synchronized void deliver(String member, ConsumerRecord<String, String> r) {
            deliveries++;
            int p = r.partition();
            long seq;
            try {
                seq = Long.parseLong(r.value());
            } catch (NumberFormatException e) {
                seq = -1;
            }
            if (p >= partitions || seq < 0 || seq >= sent[p]) {
                unexpected++;
                problem("unexpected record " + r.key() + "=" + r.value() + " at " + p + "@" + r.offset() + " (to " + member + ")");
                return;
            }
            int[] c = delivered.get(p);
            if (seq >= c.length) {
                c = Arrays.copyOf(c, (int) Math.max(seq + 1, c.length * 2L));
                delivered.set(p, c);
            }
            if (++c[(int) seq] > 1) {
                problem("duplicate: partition " + p + " seq " + seq + " (offset " + r.offset() + ") delivered "
                        + c[(int) seq] + " times, the last to " + member);
            }
        }

        void problem(String s) {
            if (problems.size() < 20) {
                problems.add(s);
            }
        }

        /** Whether every acknowledged record has been delivered at least once. */
        synchronized boolean allDelivered() {
            for (int p = 0; p < partitions; p++) {
                int[] c = delivered.get(p);
                for (long s = 0; s < acked[p]; s++) {
                    if (s >= c.length || c[(int) s] == 0) {
                        return false;
                    }
                }
            }
            return true;
        }
    }

    /** Who owns which partition, and whether the group has settled. */
    static final class Tracker {
        final int partitions;
        final Map<String, Set<Integer>> owned = new HashMap<>();
        final Map<String, Set<Integer>> fetched = new HashMap<>();
        final Set<String> active = new TreeSet<>();
        long settledSince = -1;
        long changes;                 // assignment changes seen (any member)
        final List<String> overlaps = new ArrayList<>();

        Tracker(int partitions) {
            this.partitions = partitions;
        }

        synchronized void join(String m) {
            active.add(m);
            owned.put(m, new HashSet<>());
            fetched.put(m, new HashSet<>());
            evaluate();
        }

        synchronized void leave(String m) {
            active.remove(m);
            Set<Integer> left = owned.remove(m);
            if (left != null && !left.isEmpty()) {
                out("NOTE " + m + " closed still owning " + fmt(left));
            }
            fetched.remove(m);
            evaluate();
        }

        synchronized void assigned(String m, Collection<TopicPartition> tps) {
            if (tps.isEmpty()) {
                return;
            }
            Set<Integer> mine = owned.get(m);
            for (TopicPartition tp : tps) {
                for (Map.Entry<String, Set<Integer>> e : owned.entrySet()) {
                    if (!e.getKey().equals(m) && e.getValue().contains(tp.partition()) && overlaps.size() < 20) {
                        overlaps.add("partition " + tp.partition() + " assigned to " + m + " at " + nowMs()
                                + " ms while " + e.getKey() + " still owns it");
                    }
                }
                mine.add(tp.partition());
                fetched.get(m).remove(tp.partition());
            }
            changes++;
            out("ASSIGNED " + m + " +" + fmt(parts(tps)) + " now " + fmt(mine) + " at=" + nowMs());
            evaluate();
        }

        synchronized void revoked(String m, Collection<TopicPartition> tps, String how) {
            if (tps.isEmpty()) {
                return;
            }
            Set<Integer> mine = owned.get(m);
            for (TopicPartition tp : tps) {
                mine.remove(tp.partition());
                fetched.get(m).remove(tp.partition());
            }
            changes++;
            out(how + " " + m + " -" + fmt(parts(tps)) + " now " + fmt(mine) + " at=" + nowMs());
            evaluate();
        }

        synchronized void fetchedFrom(String m, Set<Integer> ps) {
            Set<Integer> mine = owned.get(m);
            for (int p : ps) {
                if (mine.contains(p)) {
                    fetched.get(m).add(p);
                }
            }
            evaluate();
        }

        private void evaluate() {
            boolean ok = !active.isEmpty();
            int min = partitions / Math.max(1, active.size());
            int max = (partitions + Math.max(1, active.size()) - 1) / Math.max(1, active.size());
            Set<Integer> union = new HashSet<>();
            int total = 0;
            for (String m : active) {
                Set<Integer> mine = owned.get(m);
                total += mine.size();
                union.addAll(mine);
                ok &= mine.size() >= min && mine.size() <= max && fetched.get(m).containsAll(mine);
            }
            ok &= union.size() == partitions && total == partitions;
            if (!ok) {
                settledSince = -1;
            } else if (settledSince < 0) {
                settledSince = nowMs();
            }
        }

        synchronized long settledSince() {
            return settledSince;
        }

        synchronized String describe() {
            StringBuilder b = new StringBuilder();
            for (String m : active) {
                b.append(' ').append(m).append('=').append(fmt(owned.get(m)))
                        .append(" (fetched ").append(fmt(fetched.get(m))).append(')');
            }
            return b.toString().trim();
        }

        static Set<Integer> parts(Collection<TopicPartition> tps) {
            Set<Integer> s = new TreeSet<>();
            tps.forEach(tp -> s.add(tp.partition()));
            return s;
        }
    }

    /** One group member: a KafkaConsumer polled on its own thread. */
    static final class Member implements Runnable {
        final String name;
        final String protocol;
        final Properties props;
        final String topic;
        final Ledger ledger;
        final Tracker tracker;
        final Thread thread;
        volatile boolean running = true;
        final AtomicReference<String> error = new AtomicReference<>();
        final AtomicLong commitsRetried = new AtomicLong();
        /** Offset after the last processed record, per partition owned. */
        final Map<TopicPartition, OffsetAndMetadata> processed = new HashMap<>();

        Member(String name, String protocol, Properties props, String topic, Ledger ledger, Tracker tracker) {
            this.name = name;
            this.protocol = protocol;
            this.props = props;
            this.topic = topic;
            this.ledger = ledger;
            this.tracker = tracker;
            this.thread = new Thread(this, name);
        }

        @Override
        public void run() {
            try (KafkaConsumer<String, String> c = new KafkaConsumer<>(props, new StringDeserializer(), new StringDeserializer())) {
                c.subscribe(List.of(topic), new ConsumerRebalanceListener() {
                    @Override
                    public void onPartitionsRevoked(Collection<TopicPartition> tps) {
                        commit(c, tps, true);
                        tracker.revoked(name, tps, "REVOKED");
                        tps.forEach(processed::remove);
                    }

                    @Override
                    public void onPartitionsLost(Collection<TopicPartition> tps) {
                        tracker.revoked(name, tps, "LOST");
                        tps.forEach(processed::remove);
                    }

                    @Override
                    public void onPartitionsAssigned(Collection<TopicPartition> tps) {
                        tracker.assigned(name, tps);
                    }
                });
                while (running) {
                    ConsumerRecords<String, String> batch = c.poll(Duration.ofMillis(100));
                    if (batch.isEmpty()) {
                        continue;
                    }
                    Set<Integer> from = new HashSet<>();
                    for (ConsumerRecord<String, String> r : batch) {
                        ledger.deliver(name, r);
                        from.add(r.partition());
                        processed.put(new TopicPartition(r.topic(), r.partition()), new OffsetAndMetadata(r.offset() + 1));
                    }
                    tracker.fetchedFrom(name, from);
                    commit(c, batch.partitions(), false);
                }
                commit(c, new ArrayList<>(processed.keySet()), false);
            } catch (Exception e) {
                error.compareAndSet(null, e.toString());
                out("ERROR " + name + " (group.protocol=" + protocol + "): " + e);
            }
        }

        /**
         * Commits the processed offsets of the given partitions. After a batch a
         * commit refused because a rebalance is under way (classic) or the
         * member epoch moved on (consumer protocol: CommitFailedException) is
         * left to the revocation callback, as an application would; in the
         * callback a failure is an error.
         */
        void commit(KafkaConsumer<String, String> c, Collection<TopicPartition> tps, boolean onRevoke) {
            Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
            for (TopicPartition tp : tps) {
                OffsetAndMetadata o = processed.get(tp);
                if (o != null) {
                    offsets.put(tp, o);
                }
            }
            if (offsets.isEmpty()) {
                return;
            }
            try {
                c.commitSync(offsets);
            } catch (RebalanceInProgressException | CommitFailedException e) {
                if (onRevoke) {
                    throw e;
                }
                commitsRetried.incrementAndGet();
                out("NOTE " + name + ": commit after a batch refused (left to the revocation callback): " + e);
            }
        }
    }

    public static void main(String[] argv) throws Exception {
        Args a = new Args(argv);
        String topic = a.get("topic");
        String group = a.get("group");
        int partitions = (int) a.getLong("partitions", 12);
        String plan = a.get("plan", "join");
        String protocol = a.get("protocol", "consumer");
        String classicAssignor = a.get("classic-assignor", "");
        String remoteAssignor = a.get("remote-assignor", "");
        long rate = a.getLong("rate", 1200);
        long stableMs = a.getLong("stable-ms", 2000);
        long settleTimeoutMs = a.getLong("settle-timeout-s", 60) * 1000;
        long drainTimeoutMs = a.getLong("drain-timeout-s", 60) * 1000;
        long holdTimeoutMs = a.getLong("hold-timeout-s", 120) * 1000;
        long quietMs = a.getLong("quiet-ms", 1000);
        String holdFile = a.get("hold-file", "");
        if (!plan.equals("join") && !plan.equals("upgrade")) {
            throw new IllegalArgumentException("--plan join|upgrade");
        }

        Ledger ledger = new Ledger(partitions);
        Tracker tracker = new Tracker(partitions);
        Map<String, Member> members = new HashMap<>();
        List<Member> all = new ArrayList<>();

        // Producer: partition p's records carry 0, 1, 2, ... in turn.
        Properties pp = new Properties();
        pp.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, Args.bootstrap());
        pp.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        pp.put(ProducerConfig.ACKS_CONFIG, "all");
        pp.put(ProducerConfig.LINGER_MS_CONFIG, "5");
        pp.put(ProducerConfig.CLIENT_ID_CONFIG, group + "-producer");
        KafkaProducer<String, String> producer = new KafkaProducer<>(pp, new StringSerializer(), new StringSerializer());
        Thread producerThread = new Thread(() -> {
            long started = System.nanoTime();
            for (long i = 0; !stopProducing; i++) {
                long wait = started + i * 1_000_000_000L / rate - System.nanoTime();
                if (wait > 0) {
                    try {
                        Thread.sleep(wait / 1_000_000, (int) (wait % 1_000_000));
                    } catch (InterruptedException e) {
                        return;
                    }
                }
                int p = (int) (i % partitions);
                long seq;
                synchronized (ledger) {
                    seq = ledger.sent[p]++;
                }
                producer.send(new ProducerRecord<>(topic, p, "p" + p + "-" + seq, Long.toString(seq)), (md, e) -> {
                    synchronized (ledger) {
                        if (e != null) {
                            if (ledger.producerError == null) {
                                ledger.producerError = "send of partition " + p + " seq " + seq + " failed: " + e;
                            }
                        } else if (md.offset() != seq) {
                            if (ledger.producerError == null) {
                                ledger.producerError = "partition " + p + " seq " + seq + " stored at offset " + md.offset();
                            }
                        } else {
                            ledger.acked[p] = Math.max(ledger.acked[p], seq + 1);
                        }
                    }
                });
            }
        }, "producer");
        producerThread.start();

        String failure = null;
        try {
            if (plan.equals("join")) {
                start(members, all, "m1", protocol, classicAssignor, remoteAssignor, group, topic, ledger, tracker);
                start(members, all, "m2", protocol, classicAssignor, remoteAssignor, group, topic, ledger, tracker);
                long t0 = nowMs();
                long at = awaitSettled(tracker, all, ledger, t0, stableMs, settleTimeoutMs, "m1 and m2 joining");
                out("SETTLE step=initial members=2 ms=" + (at - t0) + " " + tracker.describe());
                long t1 = nowMs();
                start(members, all, "m3", protocol, classicAssignor, remoteAssignor, group, topic, ledger, tracker);
                at = awaitSettled(tracker, all, ledger, t1, stableMs, settleTimeoutMs, "m3 joining");
                out("SETTLE step=join protocol=" + protocol + " members=3 ms=" + (at - t1) + " " + tracker.describe());
            } else {
                start(members, all, "m1", "classic", classicAssignor, remoteAssignor, group, topic, ledger, tracker);
                start(members, all, "m2", "classic", classicAssignor, remoteAssignor, group, topic, ledger, tracker);
                long t0 = nowMs();
                long at = awaitSettled(tracker, all, ledger, t0, stableMs, settleTimeoutMs, "classic members m1 and m2 joining");
                out("SETTLE step=initial members=2 ms=" + (at - t0) + " " + tracker.describe());
                long t1 = nowMs();
                start(members, all, "m3", "consumer", classicAssignor, remoteAssignor, group, topic, ledger, tracker);
                at = awaitSettled(tracker, all, ledger, t1, stableMs, settleTimeoutMs, "consumer member m3 joining the classic group");
                out("SETTLE step=consumer-joins members=3 ms=" + (at - t1) + " " + tracker.describe());
                for (String m : List.of("m1", "m2")) {
                    long t = nowMs();
                    stop(members.get(m), tracker);
                    start(members, all, m, "consumer", classicAssignor, remoteAssignor, group, topic, ledger, tracker);
                    at = awaitSettled(tracker, all, ledger, t, stableMs, settleTimeoutMs, m + " restarted with group.protocol=consumer");
                    out("SETTLE step=restart-" + m + " members=3 ms=" + (at - t) + " " + tracker.describe());
                }
            }
            long changesAtSettle;
            synchronized (tracker) {
                changesAtSettle = tracker.changes;
                for (String m : tracker.active) {
                    out("SETTLED " + m + " protocol=" + members.get(m).protocol + " partitions=" + fmt(tracker.owned.get(m)));
                }
            }
            if (!holdFile.isEmpty()) {
                out("HOLD " + holdFile);
                long deadline = nowMs() + holdTimeoutMs;
                while (!Files.exists(Path.of(holdFile))) {
                    checkMembers(all, ledger);
                    if (nowMs() > deadline) {
                        throw new IllegalStateException("the hold file " + holdFile + " did not appear within " + holdTimeoutMs + " ms");
                    }
                    Thread.sleep(50);
                }
            }

            // Stop producing; every acknowledged record must reach a member.
            stopProducing = true;
            producerThread.join();
            producer.flush();
            producer.close();
            long[] acked;
            synchronized (ledger) {
                acked = ledger.acked.clone();
            }
            long deadline = nowMs() + drainTimeoutMs;
            while (!ledger.allDelivered()) {
                checkMembers(all, ledger);
                if (nowMs() > deadline) {
                    throw new IllegalStateException("not every acknowledged record was delivered within " + drainTimeoutMs
                            + " ms after the producer stopped; members: " + tracker.describe());
                }
                Thread.sleep(20);
            }
            Thread.sleep(quietMs);
            checkMembers(all, ledger);
            long changesAfter;
            synchronized (tracker) {
                changesAfter = tracker.changes - changesAtSettle;
            }
            for (String m : new ArrayList<>(tracker.active)) {
                stop(members.get(m), tracker);
            }
            checkMembers(all, ledger);

            // The group's committed offsets and the partitions' end offsets.
            Properties ap = new Properties();
            ap.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, Args.bootstrap());
            Map<TopicPartition, Long> committed = new HashMap<>();
            Map<TopicPartition, Long> ends = new HashMap<>();
            try (Admin admin = Admin.create(ap)) {
                admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get()
                        .forEach((tp, o) -> committed.put(tp, o == null ? null : o.offset()));
                Map<TopicPartition, OffsetSpec> req = new HashMap<>();
                for (int p = 0; p < partitions; p++) {
                    req.put(new TopicPartition(topic, p), OffsetSpec.latest());
                }
                for (Map.Entry<TopicPartition, ListOffsetsResult.ListOffsetsResultInfo> e : admin.listOffsets(req).all().get().entrySet()) {
                    ends.put(e.getKey(), e.getValue().offset());
                }
            }

            long produced = 0;
            long duplicates = 0;
            long missing = 0;
            List<String> problems = new ArrayList<>();
            synchronized (ledger) {
                for (int p = 0; p < partitions; p++) {
                    produced += acked[p];
                    int[] c = ledger.delivered.get(p);
                    for (long s = 0; s < acked[p]; s++) {
                        int n = s < c.length ? c[(int) s] : 0;
                        if (n == 0) {
                            missing++;
                            if (problems.size() < 10) {
                                problems.add("missing: partition " + p + " seq " + s);
                            }
                        } else if (n > 1) {
                            duplicates += n - 1;
                        }
                    }
                }
                problems.addAll(ledger.problems);
            }
            List<String> offsetProblems = new ArrayList<>();
            for (int p = 0; p < partitions; p++) {
                TopicPartition tp = new TopicPartition(topic, p);
                Long want = ends.get(tp);
                Long got = committed.get(tp);
                if (want == null || !want.equals(got)) {
                    offsetProblems.add(p + ": committed " + got + ", end " + want);
                }
            }
            long retried = 0;
            for (Member m : all) {
                retried += m.commitsRetried.get();
            }
            out(String.format("RESULT plan=%s produced=%d deliveries=%d duplicates=%d missing=%d unexpected=%d overlaps=%d "
                            + "changes_after_settle=%d batch_commits_refused=%d", plan, produced, ledger.deliveries, duplicates,
                    missing, ledger.unexpected, tracker.overlaps.size(), changesAfter, retried));
            problems.forEach(s -> out("  " + s));
            tracker.overlaps.forEach(s -> out("  " + s));
            if (ledger.producerError != null) {
                failure = "the producer failed: " + ledger.producerError;
            } else if (produced == 0) {
                failure = "no record was acknowledged";
            } else if (duplicates > 0 || missing > 0 || ledger.unexpected > 0) {
                failure = "each of the " + produced + " acknowledged records must be delivered exactly once; " + duplicates
                        + " duplicate deliveries, " + missing + " never delivered, " + ledger.unexpected + " unexpected";
            } else if (!tracker.overlaps.isEmpty()) {
                failure = "two members owned a partition at the same time: " + tracker.overlaps.get(0);
            } else if (changesAfter > 0) {
                failure = "the assignment changed " + changesAfter + " time(s) after the group settled (see the ASSIGNED/REVOKED lines)";
            } else if (!offsetProblems.isEmpty()) {
                failure = "the group's committed offsets must equal the end offsets once every record is processed: "
                        + String.join("; ", offsetProblems);
            }
        } catch (Exception e) {
            failure = e.getMessage() == null ? e.toString() : e.getMessage();
        }
        if (failure != null) {
            out("FAIL: " + failure);
            System.exit(1);
        }
        out("OK");
        System.exit(0);
    }

    /** Set when the producer is to stop. */
    private static volatile boolean stopProducing;

    static void start(Map<String, Member> members, List<Member> all, String name, String protocol, String classicAssignor,
                      String remoteAssignor, String group, String topic, Ledger ledger, Tracker tracker) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, Args.bootstrap());
        p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        p.put(ConsumerConfig.CLIENT_ID_CONFIG, group + "-" + name);
        p.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, protocol);
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        if (protocol.equals("classic") && !classicAssignor.isEmpty()) {
            p.put(ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG, switch (classicAssignor) {
                case "range" -> RangeAssignor.class.getName();
                case "cooperative-sticky" -> CooperativeStickyAssignor.class.getName();
                default -> throw new IllegalArgumentException("--classic-assignor range|cooperative-sticky");
            });
        }
        if (protocol.equals("consumer") && !remoteAssignor.isEmpty()) {
            p.put(ConsumerConfig.GROUP_REMOTE_ASSIGNOR_CONFIG, remoteAssignor);
        }
        Member m = new Member(name, protocol, p, topic, ledger, tracker);
        members.put(name, m);
        all.add(m);
        tracker.join(name);
        out("START " + name + " group.protocol=" + protocol + " at=" + nowMs());
        m.thread.start();
    }

    static void stop(Member m, Tracker tracker) throws InterruptedException {
        m.running = false;
        m.thread.join(30_000);
        if (m.thread.isAlive()) {
            throw new IllegalStateException(m.name + " did not close within 30 s");
        }
        tracker.leave(m.name);
        out("CLOSED " + m.name + " at=" + nowMs());
    }

    static void checkMembers(List<Member> all, Ledger ledger) {
        for (Member m : all) {
            String e = m.error.get();
            if (e != null) {
                throw new IllegalStateException("member " + m.name + " (group.protocol=" + m.protocol + ") failed: " + e);
            }
        }
        synchronized (ledger) {
            if (ledger.producerError != null) {
                throw new IllegalStateException("the producer failed: " + ledger.producerError);
            }
        }
    }

    /** Waits until the group has settled for stableMs; returns when it began to hold. */
    static long awaitSettled(Tracker tracker, List<Member> all, Ledger ledger, long since, long stableMs, long timeoutMs,
                             String step) throws InterruptedException {
        long deadline = since + timeoutMs;
        while (true) {
            checkMembers(all, ledger);
            long s = tracker.settledSince();
            long now = nowMs();
            if (s >= 0 && now - s >= stableMs) {
                return s;
            }
            if (now > deadline) {
                throw new IllegalStateException("the group did not settle within " + timeoutMs + " ms of " + step
                        + " (every partition owned by one member, balanced, each member receiving records from each of its partitions); "
                        + "members: " + tracker.describe());
            }
            Thread.sleep(10);
        }
    }
}
