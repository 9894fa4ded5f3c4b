package dev.rill.compat;

import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * Consume-transform-produce with exactly-once delivery: reads --input with
 * isolation.level=read_committed as a member of --group (subscribe), and for
 * each poll (at most --batch records) writes "copy:<value>" with the same key
 * to --output inside one transaction of --transactional-id, together with the
 * consumed offsets (sendOffsetsToTransaction with the consumer's group
 * metadata), then commits. Prints "COMMITTED txns=N records=M" after each
 * commit (counts of this process) and, once its position is at the end offset
 * of every input partition (all assigned to it), "DONE" and exits 0.
 *
 * A recoverable error aborts the transaction and rewinds the consumer to the
 * group's committed offsets; a fatal one (fenced) prints "FATAL" and exits 3.
 * --pause-ms P: each transaction's copies are flushed (so they are in the
 * log), "SENT txn=N records=M" printed, and P ms pass before its offsets are
 * added and it commits: the window in which a test kills it mid-transaction.
 * --session-timeout-ms (default 6000, the brokers' usual minimum) bounds how
 * long a killed instance holds up the group's next rebalance.
 */
public final class TxnCopier {
    public static void main(String[] argv) throws Exception {
        Args a = new Args(argv);
        String input = a.get("input");
        String output = a.get("output");
        int batch = (int) a.getLong("batch", 20);
        long pauseMs = a.getLong("pause-ms", 0);

        Properties pp = new Properties();
        pp.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, Args.bootstrap());
        pp.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, a.get("transactional-id"));
        pp.put(ProducerConfig.ACKS_CONFIG, "all");
        pp.put(ProducerConfig.LINGER_MS_CONFIG, "0");
        pp.put(ProducerConfig.CLIENT_ID_CONFIG, "rill-compat-txn-copier");

        Properties cp = new Properties();
        cp.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, Args.bootstrap());
        cp.put(ConsumerConfig.GROUP_ID_CONFIG, a.get("group"));
        cp.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        cp.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        cp.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        cp.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, Integer.toString(batch));
        cp.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, a.get("session-timeout-ms", "6000"));
        cp.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, "1000");
        cp.put(ConsumerConfig.CLIENT_ID_CONFIG, "rill-compat-txn-copier");

        long txns = 0;
        long copied = 0;
        long aborts = 0;
        long started = System.nanoTime();
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(pp, new StringSerializer(), new StringSerializer());
             KafkaConsumer<String, String> consumer = new KafkaConsumer<>(cp, new StringDeserializer(), new StringDeserializer())) {
            // First: fences an earlier instance and aborts its open transaction,
            // so the offsets this consumer starts from are stable.
            producer.initTransactions();
            int inputPartitions = consumer.partitionsFor(input, Duration.ofSeconds(30)).size();
            consumer.subscribe(List.of(input));
            System.out.println("READY");
            System.out.flush();
            while (true) {
                ConsumerRecords<String, String> records = consumer.poll(Duration.ofMillis(200));
                if (records.isEmpty()) {
                    Set<TopicPartition> assigned = consumer.assignment();
                    if (assigned.size() == inputPartitions) {
                        Map<TopicPartition, Long> end = consumer.endOffsets(assigned, Duration.ofSeconds(30));
                        boolean done = true;
                        for (TopicPartition tp : assigned) {
                            done &= consumer.position(tp) >= end.get(tp);
                        }
                        if (done) {
                            System.out.printf("DONE txns=%d records=%d aborted=%d seconds=%.1f%n", txns, copied, aborts,
                                    (System.nanoTime() - started) / 1e9);
                            return;
                        }
                    }
                    continue;
                }
                Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
                try {
                    producer.beginTransaction();
                    for (ConsumerRecord<String, String> r : records) {
                        producer.send(new ProducerRecord<>(output, r.key(), "copy:" + r.value()));
                        offsets.put(new TopicPartition(r.topic(), r.partition()), new OffsetAndMetadata(r.offset() + 1));
                    }
                    if (pauseMs > 0) {
                        producer.flush();
                        System.out.println("SENT txn=" + (txns + 1) + " records=" + records.count());
                        System.out.flush();
                        Thread.sleep(pauseMs);
                    }
                    producer.sendOffsetsToTransaction(offsets, consumer.groupMetadata());
                    producer.commitTransaction();
                    txns++;
                    copied += records.count();
                    System.out.println("COMMITTED txns=" + txns + " records=" + copied);
                    System.out.flush();
                } catch (Exception e) {
                    try {
                        producer.abortTransaction();
                    } catch (Exception fatal) {
                        System.out.println("FATAL " + fatal + " (after " + e + ")");
                        System.out.flush();
                        System.exit(3);
                    }
                    aborts++;
                    System.out.println("ABORTED after " + e + "; rewinding to the committed offsets");
                    System.out.flush();
                    Set<TopicPartition> assigned = consumer.assignment();
                    Map<TopicPartition, OffsetAndMetadata> committed = consumer.committed(assigned, Duration.ofSeconds(30));
                    for (TopicPartition tp : assigned) {
                        OffsetAndMetadata o = committed.get(tp);
                        if (o == null) {
                            consumer.seekToBeginning(List.of(tp));
                        } else {
                            consumer.seek(tp, o.offset());
                        }
                    }
                }
            }
        }
    }
}
