package dev.rill.compat;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.function.Consumer;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.Deserializer;
import org.apache.kafka.common.serialization.StringDeserializer;

/**
 * Reads every partition of a topic from its first offset up to the end offsets
 * it had when reading started, without a consumer group (assign + seek), so
 * the result is a snapshot of what the brokers hold. With read_committed a
 * partition is read up to its last stable offset: records of transactions
 * still open are not reached, aborted ones are skipped.
 */
final class TopicReader {
    private TopicReader() {}

    static <V> long readAll(String topic, Deserializer<V> valueDeserializer, Duration timeout,
                            Consumer<ConsumerRecord<String, V>> sink) {
        return readAll(topic, valueDeserializer, timeout, "read_uncommitted", sink);
    }

    /**
     * As above with the consumer's isolation.level: with "read_committed" the
     * end offsets are the last stable offsets and aborted records are skipped.
     */
    static <V> long readAll(String topic, Deserializer<V> valueDeserializer, Duration timeout, String isolation,
                            Consumer<ConsumerRecord<String, V>> sink) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, Args.bootstrap());
        p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation);
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        p.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, "2000");
        try (KafkaConsumer<String, V> c = new KafkaConsumer<>(p, new StringDeserializer(), valueDeserializer)) {
            List<TopicPartition> parts = new ArrayList<>();
            for (PartitionInfo pi : c.partitionsFor(topic, timeout)) {
                parts.add(new TopicPartition(topic, pi.partition()));
            }
            if (parts.isEmpty()) {
                throw new IllegalStateException("topic " + topic + " has no partitions");
            }
            c.assign(parts);
            c.seekToBeginning(parts);
            Map<TopicPartition, Long> end = c.endOffsets(parts, timeout);
            long deadline = System.nanoTime() + timeout.toNanos();
            long n = 0;
            while (true) {
                boolean done = true;
                for (TopicPartition tp : parts) {
                    if (c.position(tp, timeout) < end.get(tp)) {
                        done = false;
                        break;
                    }
                }
                if (done) {
                    return n;
                }
                if (System.nanoTime() > deadline) {
                    throw new IllegalStateException("timed out after " + timeout + " reading " + topic
                            + " to end offsets " + end);
                }
                for (ConsumerRecord<String, V> r : c.poll(Duration.ofMillis(500))) {
                    if (r.offset() < end.get(new TopicPartition(r.topic(), r.partition()))) {
                        sink.accept(r);
                        n++;
                    }
                }
            }
        }
    }

    /**
     * Waits until no transaction holds a partition of the topic back: until
     * the read_committed end offsets (the last stable offsets) equal the
     * read_uncommitted ones (the high watermarks). A commit returns to the
     * producer before its markers are written, so a reader that wants every
     * committed transaction waits for this first. Returns the milliseconds
     * waited; throws after the timeout, naming both sets of offsets.
     */
    static long waitStable(String topic, Duration timeout) {
        long started = System.nanoTime();
        long deadline = started + timeout.toNanos();
        Map<TopicPartition, Long> lso = null;
        Map<TopicPartition, Long> hw = null;
        while (System.nanoTime() < deadline) {
            lso = endOffsets(topic, "read_committed", timeout);
            hw = endOffsets(topic, "read_uncommitted", timeout);
            if (lso.equals(hw)) {
                return (System.nanoTime() - started) / 1_000_000;
            }
            try {
                Thread.sleep(100);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                break;
            }
        }
        throw new IllegalStateException("the last stable offsets of " + topic + " did not reach the high watermarks "
                + "within " + timeout + ": read_committed end offsets " + lso + ", read_uncommitted " + hw);
    }

    static Map<TopicPartition, Long> endOffsets(String topic, String isolation, Duration timeout) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, Args.bootstrap());
        p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation);
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(p, new StringDeserializer(), new StringDeserializer())) {
            List<TopicPartition> parts = new ArrayList<>();
            for (PartitionInfo pi : c.partitionsFor(topic, timeout)) {
                parts.add(new TopicPartition(topic, pi.partition()));
            }
            return new java.util.HashMap<>(c.endOffsets(parts, timeout));
        }
    }
}
