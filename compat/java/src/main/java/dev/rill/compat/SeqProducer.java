package dev.rill.compat;

import java.util.Properties;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * Writes records whose values are the sequence numbers first..first+count-1
 * (--first, default 0) with an idempotent producer (enable.idempotence=true,
 * acks=all), keyed so they spread over the topic's partitions. Paced at --rate records/s so a test can kill a
 * broker while it runs: it prints "MIDPOINT" once --midpoint records are
 * acknowledged, and "RESULT sent=.. acked=.. errors=.." at the end. Exits 1 if
 * any send failed. SeqVerifier checks what the brokers kept.
 */
public final class SeqProducer {
    public static void main(String[] argv) throws Exception {
        Args a = new Args(argv);
        String topic = a.get("topic");
        long count = a.getLong("count", 50_000);
        long first = a.getLong("first", 0);
        long rate = a.getLong("rate", 0);
        long midpoint = a.getLong("midpoint", count / 2);
        long keys = a.getLong("keys", 64);

        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, Args.bootstrap());
        p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        p.put(ProducerConfig.MAX_IN_FLIGHT_REQUESTS_PER_CONNECTION, "5");
        p.put(ProducerConfig.LINGER_MS_CONFIG, "5");
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, a.get("delivery-timeout-ms", "120000"));
        p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
        p.put(ProducerConfig.CLIENT_ID_CONFIG, "rill-compat-seq-producer");

        AtomicLong acked = new AtomicLong();
        AtomicLong errors = new AtomicLong();
        AtomicReference<String> firstError = new AtomicReference<>();
        long step = Math.max(1, count / 10);
        long started = System.nanoTime();
        boolean[] midpointPrinted = {false};
        try (KafkaProducer<String, String> producer =
                     new KafkaProducer<>(p, new StringSerializer(), new StringSerializer())) {
            for (long seq = 0; seq < count; seq++) {
                if (rate > 0) {
                    long due = started + seq * 1_000_000_000L / rate;
                    long wait = due - System.nanoTime();
                    if (wait > 0) {
                        Thread.sleep(wait / 1_000_000, (int) (wait % 1_000_000));
                    }
                }
                String key = "k" + (seq % keys);
                producer.send(new ProducerRecord<>(topic, key, Long.toString(first + seq)), (md, e) -> {
                    if (e != null) {
                        errors.incrementAndGet();
                        firstError.compareAndSet(null, e.toString());
                        return;
                    }
                    long n = acked.incrementAndGet();
                    if (n % step == 0) {
                        System.out.println("ACKED " + n);
                    }
                    if (n >= midpoint) {
                        synchronized (midpointPrinted) {
                            if (!midpointPrinted[0]) {
                                midpointPrinted[0] = true;
                                System.out.println("MIDPOINT acked=" + n);
                            }
                        }
                    }
                });
            }
            producer.flush();
        }
        double secs = (System.nanoTime() - started) / 1e9;
        System.out.printf("RESULT sent=%d acked=%d errors=%d seconds=%.1f%n", count, acked.get(), errors.get(), secs);
        if (firstError.get() != null) {
            System.out.println("FIRST_ERROR " + firstError.get());
        }
        System.exit(errors.get() == 0 && acked.get() == count ? 0 : 1);
    }
}
