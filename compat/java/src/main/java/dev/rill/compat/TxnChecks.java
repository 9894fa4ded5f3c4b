package dev.rill.compat;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.InvalidProducerEpochException;
import org.apache.kafka.common.errors.ProducerFencedException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * Transaction checks that interleave producers and consumers, against a
 * topic of --partitions partitions. Each prints what it sees and exits 1 with
 * "FAIL: expected ..., saw ..." when a check does not hold.
 *
 * --check open: a committed transaction, then one sent and flushed but not
 * committed. With isolation.level=read_committed the end offsets of every
 * partition stay at the open transaction's first offset (the last stable
 * offset) and polling past them returns none of its records; with
 * read_uncommitted its records are there. After the commit, read_committed
 * end offsets pass it and its records are read.
 *
 * --check fencing: producer A (transactional id T) begins a transaction and
 * sends; producer B with the same T calls initTransactions; A's next send or
 * commit must fail with ProducerFencedException or
 * InvalidProducerEpochException. A's records are in the log
 * (read_uncommitted) but never read by read_committed; B's transaction
 * commits and is read.
 *
 * Timeouts: --quiet-ms (default 3000), how long a read_committed consumer
 * keeps polling past the last stable offset to see that nothing more comes;
 * --timeout-s (default 60), any single read or client call.
 */
public final class TxnChecks {
    private static String topic;
    private static int partitions;
    private static Duration timeout;
    private static long quietMs;

    public static void main(String[] argv) throws Exception {
        Args a = new Args(argv);
        topic = a.get("topic");
        partitions = (int) a.getLong("partitions", 3);
        timeout = Duration.ofSeconds(a.getLong("timeout-s", 60));
        quietMs = a.getLong("quiet-ms", 3000);
        String id = a.get("transactional-id");
        switch (a.get("check")) {
            case "open" -> checkOpen(id);
            case "fencing" -> checkFencing(id);
            default -> throw new IllegalArgumentException("--check open|fencing");
        }
        System.out.println("OK");
    }

    static void fail(String msg) {
        System.out.println("FAIL: " + msg);
        System.out.flush();
        System.exit(1);
    }

    static KafkaProducer<String, String> producer(String transactionalId) {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, Args.bootstrap());
        p.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, transactionalId);
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, Long.toString(timeout.toMillis()));
        p.put(ProducerConfig.LINGER_MS_CONFIG, "0");
        return new KafkaProducer<>(p, new StringSerializer(), new StringSerializer());
    }

    static KafkaConsumer<String, String> consumer(String isolation) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, Args.bootstrap());
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation);
        return new KafkaConsumer<>(p, new StringDeserializer(), new StringDeserializer());
    }

    static List<TopicPartition> parts() {
        List<TopicPartition> l = new ArrayList<>();
        for (int i = 0; i < partitions; i++) {
            l.add(new TopicPartition(topic, i));
        }
        return l;
    }

    /** End offsets as a consumer with this isolation level sees them (ListOffsets). */
    static Map<Integer, Long> endOffsets(String isolation) {
        try (KafkaConsumer<String, String> c = consumer(isolation)) {
            Map<Integer, Long> m = new TreeMap<>();
            c.endOffsets(parts(), timeout).forEach((tp, o) -> m.put(tp.partition(), o));
            return m;
        }
    }

    /**
     * Reads every partition from the start until the consumer's positions
     * reach its end offsets, then polls quietMs longer: returns each record
     * as "partition@offset value".
     */
    static List<String> readAll(String isolation) {
        List<String> got = new ArrayList<>();
        try (KafkaConsumer<String, String> c = consumer(isolation)) {
            List<TopicPartition> tps = parts();
            c.assign(tps);
            c.seekToBeginning(tps);
            Map<TopicPartition, Long> end = c.endOffsets(tps, timeout);
            long deadline = System.nanoTime() + timeout.toNanos();
            long quietUntil = Long.MAX_VALUE;
            while (System.nanoTime() < quietUntil) {
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
                    got.add(r.partition() + "@" + r.offset() + " " + r.value());
                }
                if (quietUntil == Long.MAX_VALUE) {
                    boolean reached = true;
                    for (TopicPartition tp : tps) {
                        reached &= c.position(tp, timeout) >= end.get(tp);
                    }
                    if (reached) {
                        quietUntil = System.nanoTime() + quietMs * 1_000_000;
                    } else if (System.nanoTime() > deadline) {
                        fail("a " + isolation + " consumer did not reach end offsets " + end + " within " + timeout
                                + "; read " + got);
                    }
                }
            }
        }
        return got;
    }

    static List<String> values(List<String> records) {
        List<String> v = new ArrayList<>();
        for (String r : records) {
            v.add(r.substring(r.indexOf(' ') + 1));
        }
        return v;
    }

    /**
     * Waits (up to the timeout) until no transaction is open on the topic:
     * read_committed end offsets equal read_uncommitted ones. Returns them.
     */
    static Map<Integer, Long> waitStable() {
        long started = System.nanoTime();
        try {
            TopicReader.waitStable(topic, timeout);
        } catch (IllegalStateException e) {
            fail("no transaction left open once the commits returned: " + e.getMessage());
        }
        System.out.println("no transaction open after " + (System.nanoTime() - started) / 1_000_000 + " ms");
        return endOffsets("read_committed");
    }

    /** Sends one record "txn-r<j>" to each partition j; returns their metadata futures. */
    static List<Future<RecordMetadata>> sendAll(KafkaProducer<String, String> p, String txn) {
        List<Future<RecordMetadata>> l = new ArrayList<>();
        for (int j = 0; j < partitions; j++) {
            l.add(p.send(new ProducerRecord<>(topic, j, txn, txn + "-r" + j)));
        }
        return l;
    }

    static List<String> names(String txn) {
        List<String> l = new ArrayList<>();
        for (int j = 0; j < partitions; j++) {
            l.add(txn + "-r" + j);
        }
        return l;
    }

    static void checkOpen(String id) throws Exception {
        try (KafkaProducer<String, String> p = producer(id)) {
            p.initTransactions();
            p.beginTransaction();
            sendAll(p, "committed");
            p.commitTransaction();
            p.beginTransaction();
            List<Future<RecordMetadata>> open = sendAll(p, "open");
            p.flush();
            Map<Integer, Long> first = new TreeMap<>();
            for (Future<RecordMetadata> f : open) {
                RecordMetadata md = f.get();
                first.put(md.partition(), md.offset());
            }
            System.out.println("open transaction sent and flushed, first offset per partition " + first);

            Map<Integer, Long> lso = endOffsets("read_committed");
            Map<Integer, Long> hw = endOffsets("read_uncommitted");
            System.out.println("while open: read_committed end offsets " + lso + ", read_uncommitted " + hw);
            if (!lso.equals(first)) {
                fail("read_committed end offsets (the last stable offsets) " + first
                        + ", the open transaction's first offsets; saw " + lso);
            }
            for (var e : first.entrySet()) {
                if (hw.get(e.getKey()) != e.getValue() + 1) {
                    fail("read_uncommitted end offset of partition " + e.getKey() + " " + (e.getValue() + 1)
                            + " (past the open record at " + e.getValue() + "); saw " + hw.get(e.getKey()));
                }
            }
            List<String> rc = values(readAll("read_committed"));
            System.out.println("while open, read_committed reads " + rc);
            if (!sorted(rc).equals(names("committed"))) {
                fail("read_committed reads exactly " + names("committed") + " while the transaction is open; saw " + rc);
            }
            List<String> ru = values(readAll("read_uncommitted"));
            System.out.println("while open, read_uncommitted reads " + ru);
            List<String> all = new ArrayList<>(names("committed"));
            all.addAll(names("open"));
            if (!sorted(ru).equals(sorted(all))) {
                fail("read_uncommitted reads " + sorted(all) + " while the transaction is open; saw " + sorted(ru));
            }

            p.commitTransaction();
            // The commit returns before its markers are written: the last
            // stable offsets move past it soon after.
            Map<Integer, Long> after = waitStable();
            System.out.println("after commit: read_committed end offsets " + after);
            for (var e : first.entrySet()) {
                if (after.get(e.getKey()) <= e.getValue()) {
                    fail("after the commit the read_committed end offset of partition " + e.getKey()
                            + " past the committed record at " + e.getValue() + "; saw " + after.get(e.getKey()));
                }
            }
            rc = values(readAll("read_committed"));
            System.out.println("after commit, read_committed reads " + rc);
            if (!sorted(rc).equals(sorted(all))) {
                fail("after the commit read_committed reads " + sorted(all) + "; saw " + sorted(rc));
            }
        }
    }

    static List<String> sorted(List<String> l) {
        List<String> s = new ArrayList<>(l);
        s.sort(null);
        return s;
    }

    static boolean fenced(Throwable e) {
        for (Throwable t = e; t != null; t = t.getCause()) {
            if (t instanceof ProducerFencedException || t instanceof InvalidProducerEpochException) {
                return true;
            }
        }
        return false;
    }

    static void checkFencing(String id) throws Exception {
        KafkaProducer<String, String> a = producer(id);
        KafkaProducer<String, String> b = producer(id);
        try {
            a.initTransactions();
            a.beginTransaction();
            List<Future<RecordMetadata>> first = sendAll(a, "zombie");
            a.flush();
            for (Future<RecordMetadata> f : first) {
                f.get();
            }
            System.out.println("producer A: transaction begun, " + partitions + " records sent and flushed");
            b.initTransactions();
            System.out.println("producer B: initTransactions with the same transactional.id returned");

            Throwable seen = null;
            String where = null;
            try {
                Future<RecordMetadata> late = a.send(new ProducerRecord<>(topic, 0, "zombie", "zombie-late"));
                try {
                    late.get();
                } catch (ExecutionException e) {
                    seen = e.getCause();
                    where = "send";
                }
                if (seen == null) {
                    a.commitTransaction();
                }
            } catch (Exception e) {
                if (seen == null) {
                    seen = e;
                    where = where == null ? "send or commit" : where;
                }
            }
            if (seen == null) {
                fail("producer A's send and commit after producer B's initTransactions to fail with "
                        + "ProducerFencedException or InvalidProducerEpochException; both succeeded");
            }
            if (!fenced(seen)) {
                fail("producer A's " + where + " to fail with ProducerFencedException or InvalidProducerEpochException;"
                        + " saw " + chain(seen));
            }
            System.out.println("producer A fenced on " + where + ": " + chain(seen));
            if (where.equals("send")) {
                try {
                    a.commitTransaction();
                    fail("producer A's commitTransaction after its fenced send to fail; it returned");
                } catch (Exception e) {
                    System.out.println("producer A's commit then fails too: " + chain(e));
                }
            }

            b.beginTransaction();
            sendAll(b, "successor");
            b.commitTransaction();
            System.out.println("producer B committed its transaction");
        } finally {
            a.close(Duration.ZERO);
            b.close();
        }
        waitStable();
        List<String> rc = values(readAll("read_committed"));
        List<String> ru = values(readAll("read_uncommitted"));
        System.out.println("read_committed reads " + rc);
        System.out.println("read_uncommitted reads " + ru);
        if (!ru.containsAll(names("zombie"))) {
            fail("the fenced producer's flushed records " + names("zombie") + " in the log (read_uncommitted); saw " + ru);
        }
        if (!sorted(rc).equals(names("successor"))) {
            fail("read_committed reads exactly producer B's records " + names("successor")
                    + " and none of the fenced producer's; saw " + rc);
        }
    }

    static String chain(Throwable e) {
        StringBuilder s = new StringBuilder();
        Map<Throwable, Boolean> seen = new HashMap<>();
        for (Throwable t = e; t != null && seen.put(t, true) == null; t = t.getCause()) {
            s.append(s.length() == 0 ? "" : " <- ").append(t.getClass().getSimpleName()).append(": ").append(t.getMessage());
        }
        return s.toString();
    }
}
