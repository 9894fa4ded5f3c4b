import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * The side-by-side benchmark's own client programs (bench/README.md), on the
 * Apache Kafka Java client, the same jar against Kafka and Rill:
 *
 * <pre>
 *   java -cp ... BenchTool e2e --bootstrap B --topic T [--rate 1000] [--seconds 30]
 *        [--warmup-seconds 5] [--record-size 1024] [--linger-ms 0] [--acks all]
 *        [--transactional-id ID --commit-interval-ms 10]
 *   java -cp ... BenchTool count --bootstrap B --topic T
 *   java -cp ... BenchTool create --bootstrap B --topic T --partitions P --replication-factor R
 *        [--config k=v,k=v] [--wait-seconds 60]   (waits that long for every partition's leader)
 * </pre>
 *
 * <p>Every command also takes {@code --client-config FILE}: client properties
 * (security settings) loaded into every client it makes.
 *
 * <p>{@code e2e}: end-to-end latency with a producer and a consumer in one
 * process. The producer sends records of {@code record-size} bytes at a fixed
 * rate, round-robin over the partitions, each carrying {@link System#nanoTime()}
 * of its send; the consumer (assigned every partition, positioned at the end
 * before the first send) takes the difference when it receives the record.
 * Records sent during the warm-up are not counted. Prints one JSON object:
 * end-to-end and acknowledgement (send to producer callback) latency
 * percentiles in microseconds.
 *
 * <p>With {@code --transactional-id}, {@code e2e} measures transactions: the
 * producer uses that transactional id, begins a transaction before its first
 * send and, at the first send due at least {@code commit-interval-ms} after
 * the transaction began, commits it and begins the next one before sending
 * (so each transaction holds the records of about one interval, round-robin
 * over every partition); the consumer reads with
 * {@code isolation.level=read_committed}. A record's latency is still from
 * its {@code send()} call to its receipt, which under read_committed
 * includes waiting for the rest of its transaction, the commit, and the
 * markers that move the partition's last stable offset past it. Sends due
 * while a commit runs wait for it (the producer cannot send meanwhile), and
 * are timed from their actual {@code send()}: the JSON gives how late sends
 * were against the fixed-rate schedule ({@code lag_*}) and how long
 * {@code commitTransaction()} took ({@code commit_*}). Any error of the
 * transactional producer ends the program with a non-zero status.
 *
 * <p>{@code count}: records stored in the topic (sum over its partitions of
 * end offset minus beginning offset), printed as one number.
 *
 * <p>{@code create}: creates a topic through the Admin API with the configs
 * given, unchecked by the client (kafka-topics refuses config names Kafka does
 * not know, such as Rill's {@code flush}), and waits until every partition has
 * a leader.
 */
public final class BenchTool {
    private BenchTool() {}

    public static void main(String[] argv) throws Exception {
        if (argv.length == 0) {
            usage();
        }
        Map<String, String> a = parse(Arrays.copyOfRange(argv, 1, argv.length));
        switch (argv[0]) {
            case "e2e" -> e2e(a);
            case "count" -> System.out.println(count(a));
            case "create" -> create(a);
            default -> usage();
        }
    }

    private static void usage() {
        System.err.println("usage: BenchTool e2e|count --bootstrap B --topic T [...] (see the source)");
        System.exit(2);
    }

    private static Map<String, String> parse(String[] argv) {
        Map<String, String> m = new HashMap<>();
        for (int i = 0; i < argv.length; i += 2) {
            if (!argv[i].startsWith("--") || i + 1 >= argv.length) {
                throw new IllegalArgumentException("expected --name value pairs, got " + argv[i]);
            }
            m.put(argv[i].substring(2), argv[i + 1]);
        }
        return m;
    }

    private static String need(Map<String, String> a, String k) {
        String v = a.get(k);
        if (v == null) {
            throw new IllegalArgumentException("missing --" + k);
        }
        return v;
    }

    /** The bootstrap servers and the properties of {@code --client-config}. */
    private static Properties clientProps(Map<String, String> a) throws java.io.IOException {
        Properties p = new Properties();
        String file = a.get("client-config");
        if (file != null) {
            try (java.io.Reader r = java.nio.file.Files.newBufferedReader(java.nio.file.Path.of(file))) {
                p.load(r);
            }
        }
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, need(a, "bootstrap"));
        return p;
    }

    private static Properties consumerProps(Map<String, String> a) throws java.io.IOException {
        Properties p = clientProps(a);
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        return p;
    }

    private static List<TopicPartition> partitions(KafkaConsumer<byte[], byte[]> c, String topic) {
        List<TopicPartition> out = new ArrayList<>();
        long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
        while (true) {
            List<PartitionInfo> infos = c.partitionsFor(topic, Duration.ofSeconds(10));
            if (infos != null && !infos.isEmpty()) {
                for (PartitionInfo i : infos) {
                    out.add(new TopicPartition(topic, i.partition()));
                }
                return out;
            }
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException("topic " + topic + " has no partitions");
            }
            LockSupport.parkNanos(100_000_000L);
        }
    }

    static void create(Map<String, String> a) throws Exception {
        String topic = need(a, "topic");
        Map<String, String> configs = new HashMap<>();
        for (String kv : a.getOrDefault("config", "").split(",")) {
            if (!kv.isEmpty()) {
                String[] p = kv.split("=", 2);
                configs.put(p[0], p[1]);
            }
        }
        try (Admin admin = Admin.create(clientProps(a))) {
            NewTopic t = new NewTopic(topic, Integer.parseInt(need(a, "partitions")),
                    Short.parseShort(need(a, "replication-factor"))).configs(configs);
            admin.createTopics(List.of(t)).all().get();
            long wait = Long.parseLong(a.getOrDefault("wait-seconds", "60"));
            long deadline = System.nanoTime() + Duration.ofSeconds(wait).toNanos();
            while (true) {
                boolean led = false;
                try {
                    TopicDescription d = admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic);
                    led = d.partitions().stream().allMatch(x -> x.leader() != null && x.leader().id() >= 0);
                } catch (ExecutionException e) {
                    // The broker answering has not seen the new topic yet.
                    if (!(e.getCause() instanceof UnknownTopicOrPartitionException)) {
                        throw e;
                    }
                }
                if (led) {
                    break;
                }
                if (System.nanoTime() > deadline) {
                    throw new IllegalStateException("topic " + topic + " has partitions without a leader");
                }
                LockSupport.parkNanos(50_000_000L);
            }
        }
    }

    static long count(Map<String, String> a) throws java.io.IOException {
        String topic = need(a, "topic");
        try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(consumerProps(a))) {
            List<TopicPartition> tps = partitions(c, topic);
            Map<TopicPartition, Long> end = c.endOffsets(tps, Duration.ofSeconds(30));
            Map<TopicPartition, Long> begin = c.beginningOffsets(tps, Duration.ofSeconds(30));
            long n = 0;
            for (TopicPartition tp : tps) {
                n += end.get(tp) - begin.get(tp);
            }
            return n;
        }
    }

    /** Latencies in nanoseconds, appended by one thread. */
    private static final class Samples {
        long[] v = new long[1 << 16];
        int n;

        void add(long x) {
            if (n == v.length) {
                v = Arrays.copyOf(v, n * 2);
            }
            v[n++] = x;
        }

        /** Nearest-rank percentile in microseconds (-1 when empty). */
        static double pct(long[] sorted, int n, double p) {
            if (n == 0) {
                return -1;
            }
            int rank = (int) Math.ceil(p / 100.0 * n);
            return sorted[Math.max(0, Math.min(n - 1, rank - 1))] / 1000.0;
        }

        String json(String prefix) {
            long[] s = Arrays.copyOf(v, n);
            Arrays.sort(s);
            return String.format(
                    "\"%s_samples\": %d, \"%s_p50_us\": %.1f, \"%s_p99_us\": %.1f, \"%s_p999_us\": %.1f, \"%s_max_us\": %.1f",
                    prefix, n, prefix, pct(s, n, 50), prefix, pct(s, n, 99), prefix, pct(s, n, 99.9),
                    prefix, n == 0 ? -1.0 : s[n - 1] / 1000.0);
        }
    }

    static void e2e(Map<String, String> a) throws Exception {
        String topic = need(a, "topic");
        long rate = Long.parseLong(a.getOrDefault("rate", "1000"));
        double seconds = Double.parseDouble(a.getOrDefault("seconds", "30"));
        double warmup = Double.parseDouble(a.getOrDefault("warmup-seconds", "5"));
        int size = Integer.parseInt(a.getOrDefault("record-size", "1024"));
        String txnId = a.get("transactional-id");
        boolean txn = txnId != null;
        long commitNanos = Long.parseLong(a.getOrDefault("commit-interval-ms", "10")) * 1_000_000L;

        Properties cp = consumerProps(a);
        if (txn) {
            cp.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        }
        KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(cp);
        List<TopicPartition> tps = partitions(consumer, topic);
        consumer.assign(tps);
        consumer.seekToEnd(tps);
        for (TopicPartition tp : tps) {
            consumer.position(tp, Duration.ofSeconds(30)); // resolve the end offsets now
        }

        Properties pp = clientProps(a);
        pp.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        pp.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        pp.put(ProducerConfig.ACKS_CONFIG, a.getOrDefault("acks", "all"));
        pp.put(ProducerConfig.LINGER_MS_CONFIG, a.getOrDefault("linger-ms", "0"));
        if (txn) {
            pp.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, txnId);
        }
        KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(pp);
        // Metadata (and the producer id) before the clock starts.
        producer.partitionsFor(topic);
        if (txn) {
            producer.initTransactions();
        }

        final long start = System.nanoTime();
        final long measureFrom = start + (long) (warmup * 1e9);
        final long total = (long) Math.ceil((warmup + seconds) * rate);
        final long interval = 1_000_000_000L / rate;
        final AtomicLong measuredSent = new AtomicLong();
        final AtomicLong sendErrors = new AtomicLong();
        final AtomicBoolean producing = new AtomicBoolean(true);
        final Samples acks = new Samples(); // appended by the producer's I/O thread only
        final AtomicInteger acked = new AtomicInteger();
        // Appended by the sender thread only; read after it ended.
        final Samples lags = new Samples();
        final Samples commits = new Samples();
        final AtomicLong transactions = new AtomicLong();
        final java.util.concurrent.atomic.AtomicReference<Throwable> failure =
                new java.util.concurrent.atomic.AtomicReference<>();

        Thread sender = new Thread(() -> {
            try {
                int parts = tps.size();
                long txnStart = 0;
                if (txn) {
                    producer.beginTransaction();
                    txnStart = System.nanoTime();
                }
                for (long i = 0; i < total; i++) {
                    long due = start + i * interval;
                    long now;
                    while ((now = System.nanoTime()) < due) {
                        long left = due - now;
                        if (left > 200_000) {
                            LockSupport.parkNanos(left - 100_000);
                        } else {
                            Thread.onSpinWait();
                        }
                    }
                    if (txn && now - txnStart >= commitNanos) {
                        producer.commitTransaction();
                        long committed = System.nanoTime();
                        if (now >= measureFrom) {
                            commits.add(committed - now);
                        }
                        transactions.incrementAndGet();
                        producer.beginTransaction();
                        txnStart = System.nanoTime();
                    }
                    byte[] value = new byte[size];
                    long sentAt = System.nanoTime();
                    if (sentAt >= measureFrom) {
                        lags.add(sentAt - due);
                    }
                    putLong(value, sentAt);
                    boolean measured = sentAt >= measureFrom;
                    if (measured) {
                        measuredSent.incrementAndGet();
                    }
                    producer.send(new ProducerRecord<>(topic, (int) (i % parts), null, value), (md, e) -> {
                        if (e != null) {
                            sendErrors.incrementAndGet();
                        } else if (measured) {
                            acks.add(System.nanoTime() - sentAt);
                        }
                        acked.incrementAndGet();
                    });
                }
                if (txn) {
                    producer.commitTransaction();
                    transactions.incrementAndGet();
                } else {
                    producer.flush();
                }
            } catch (Throwable t) {
                failure.set(t);
            } finally {
                producing.set(false);
            }
        }, "bench-sender");
        sender.start();

        Samples e2e = new Samples();
        long received = 0;
        long lastProgress = System.nanoTime();
        while (true) {
            ConsumerRecords<byte[], byte[]> records = consumer.poll(Duration.ofMillis(100));
            long now = System.nanoTime();
            for (ConsumerRecord<byte[], byte[]> r : records) {
                long sentAt = getLong(r.value());
                if (sentAt >= measureFrom) {
                    e2e.add(now - sentAt);
                }
            }
            if (!records.isEmpty()) {
                received += records.count();
                lastProgress = now;
            }
            if (!producing.get() && (failure.get() != null || e2e.n >= measuredSent.get() - sendErrors.get()
                    || now - lastProgress > 10_000_000_000L)) {
                break;
            }
        }
        sender.join();
        producer.close();
        consumer.close();
        if (failure.get() != null) {
            throw new IllegalStateException("the " + (txn ? "transactional " : "") + "producer failed after "
                    + transactions.get() + " committed transactions", failure.get());
        }
        if (txn && sendErrors.get() > 0) {
            throw new IllegalStateException(sendErrors.get() + " sends of the transactional producer failed");
        }
        if (txn && e2e.n != measuredSent.get()) {
            // Every transaction was committed: read_committed must see each measured record once.
            throw new IllegalStateException("the read_committed consumer received " + e2e.n
                    + " of the measured records, expected " + measuredSent.get() + " (all committed, in "
                    + transactions.get() + " transactions; " + received + " records received in all)");
        }
        String txnJson = !txn ? "" : String.format(
                ", \"transactional\": true, \"commit_interval_ms\": %d, \"transactions\": %d, %s, %s",
                commitNanos / 1_000_000L, transactions.get(), commits.json("commit"), lags.json("lag"));
        System.out.printf("{\"rate\": %d, \"seconds\": %.1f, \"sent\": %d, \"received\": %d, \"send_errors\": %d, %s, %s%s}%n",
                rate, seconds, measuredSent.get(), received, sendErrors.get(), e2e.json("e2e"), acks.json("ack"), txnJson);
    }

    private static void putLong(byte[] b, long v) {
        for (int i = 7; i >= 0; i--) {
            b[i] = (byte) v;
            v >>>= 8;
        }
    }

    private static long getLong(byte[] b) {
        long v = 0;
        for (int i = 0; i < 8; i++) {
            v = (v << 8) | (b[i] & 0xff);
        }
        return v;
    }
}
