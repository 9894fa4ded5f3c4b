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
}
