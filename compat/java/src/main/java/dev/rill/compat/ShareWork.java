package dev.rill.compat;

import java.io.BufferedWriter;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;
import org.apache.kafka.clients.consumer.AcknowledgeType;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaShareConsumer;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicIdPartition;
import org.apache.kafka.common.serialization.StringDeserializer;

/**
 * A member of a share group (KIP-932) reading --topic as --group with
 * KafkaShareConsumer and explicit acknowledgement
 * (share.acknowledgement.mode=explicit). Record values are record ids.
 *
 * Every acknowledgement the broker confirms (the acknowledgement commit
 * callback without an exception) is written to --log as
 * "ACK TYPE id offset delivery-count epoch-ms", one that fails as
 * "ACKFAIL TYPE id offset delivery-count exception"; each delivery as
 * "GOT id offset delivery-count epoch-ms". The log is flushed after each
 * callback and each batch, so a SIGKILL loses no confirmed acknowledgement
 * that was already reported to this process.
 *
 * --mode accept (default): every record is acknowledged ACCEPT after
 * "processing" it (--work-us microseconds of busy work). Acknowledgements go
 * to the broker with the next poll (ShareFetch). Once --stop-file exists it
 * commits, closes and prints "DONE accepted=N unconfirmed=U seconds=S".
 * Once --hold-file exists, it holds records in two rounds: it commits what it
 * acknowledged (commitSync: ShareAcknowledge, which runs the callbacks), then
 * polls until it gets records, logs them as "HELD round id offset
 * delivery-count", prints "HOLDING round=1 n=.. accepted=.. unconfirmed=..
 * since=T" (T: when the round began, epoch ms; the records were acquired by a
 * fetch shortly before or after) and keeps them unacknowledged, connected and
 * heartbeating, until --late-ack-file exists. Then it acknowledges them ACCEPT
 * after all (their locks have expired by then, so the broker should refuse),
 * commits, prints "LATE_ACK n=.. failed=.. unconfirmed=..", and holds a
 * second round the same way (round=2) until it is killed.
 *
 * --mode release-reject: ids with id % 3 == 0 are ACCEPTed, 1 REJECTed, 2
 * RELEASEd on every delivery; each batch's acknowledgements are committed
 * with commitSync. Stops (commit, close, "DONE ...") once no record arrived
 * for --quiet-ms after at least one did, or after --timeout-s.
 *
 * Prints "READY" once subscribed and "FIRST" on its first record.
 */
public final class ShareWork {
    /** An acknowledgement sent but not yet confirmed by the broker. */
    private record Pending(String id, long offset, short deliveryCount, AcknowledgeType type) {}

    private final BufferedWriter log;
    /** Per offset, in the order sent: one offset can be acknowledged again after a redelivery. */
    private final Map<Long, ArrayDeque<Pending>> pending = new HashMap<>();
    private long accepted;
    private long failed;

    private ShareWork(BufferedWriter log) {
        this.log = log;
    }

    public static void main(String[] argv) throws Exception {
        Args a = new Args(argv);
        String topic = a.get("topic");
        String mode = a.get("mode", "accept");
        if (!mode.equals("accept") && !mode.equals("release-reject")) {
            throw new IllegalArgumentException("--mode accept|release-reject, not " + mode);
        }
        Path hold = Path.of(a.get("hold-file", "/nonexistent/hold"));
        Path stop = Path.of(a.get("stop-file", "/nonexistent/stop"));
        Path lateAck = Path.of(a.get("late-ack-file", "/nonexistent/late-ack"));
        long workUs = a.getLong("work-us", 0);
        long quietMs = a.getLong("quiet-ms", 5000);
        long timeoutMs = a.getLong("timeout-s", 120) * 1000;

        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, Args.bootstrap());
        p.put(ConsumerConfig.GROUP_ID_CONFIG, a.get("group"));
        p.put(ConsumerConfig.SHARE_ACKNOWLEDGEMENT_MODE_CONFIG, "explicit");
        p.put(ConsumerConfig.CLIENT_ID_CONFIG, a.get("client-id", "rill-compat-share"));

        try (BufferedWriter out = Files.newBufferedWriter(Path.of(a.get("log")), StandardCharsets.UTF_8);
             KafkaShareConsumer<String, String> consumer =
                     new KafkaShareConsumer<>(p, new StringDeserializer(), new StringDeserializer())) {
            ShareWork w = new ShareWork(out);
            consumer.setAcknowledgementCommitCallback(w::onComplete);
            consumer.subscribe(List.of(topic));
            System.out.println("READY");
            System.out.flush();
            long started = System.nanoTime();
            long lastRecord = 0;
            boolean any = false;
            while (true) {
                if (Files.exists(stop)) {
                    break;
                }
                if (Files.exists(hold)) {
                    List<ConsumerRecord<String, String>> held = w.hold(consumer, 1);
                    while (!Files.exists(lateAck)) {
                        Thread.sleep(100);
                    }
                    w.lateAck(consumer, held);
                    w.hold(consumer, 2);
                    Thread.sleep(Long.MAX_VALUE);
                }
                ConsumerRecords<String, String> records = consumer.poll(Duration.ofMillis(200));
                long now = System.nanoTime();
                if (records.isEmpty()) {
                    if (mode.equals("release-reject")
                            && ((any && now - lastRecord > quietMs * 1_000_000) || now - started > timeoutMs * 1_000_000)) {
                        break;
                    }
                    continue;
                }
                if (!any) {
                    any = true;
                    System.out.println("FIRST");
                    System.out.flush();
                }
                lastRecord = now;
                for (ConsumerRecord<String, String> r : records) {
                    short dc = r.deliveryCount().orElse((short) -1);
                    out.write("GOT " + r.value() + " " + r.offset() + " " + dc + " " + System.currentTimeMillis() + "\n");
                    AcknowledgeType type = AcknowledgeType.ACCEPT;
                    if (mode.equals("release-reject")) {
                        type = switch ((int) (Long.parseLong(r.value()) % 3)) {
                            case 0 -> AcknowledgeType.ACCEPT;
                            case 1 -> AcknowledgeType.REJECT;
                            default -> AcknowledgeType.RELEASE;
                        };
                    } else {
                        busy(workUs);
                    }
                    consumer.acknowledge(r, type);
                    w.pending.computeIfAbsent(r.offset(), k -> new ArrayDeque<>())
                            .add(new Pending(r.value(), r.offset(), dc, type));
                }
                out.flush();
                if (mode.equals("release-reject")) {
                    w.commit(consumer);
                }
            }
            w.commit(consumer);
            System.out.printf("DONE accepted=%d unconfirmed=%d seconds=%.1f%n", w.accepted, w.unconfirmed(),
                    (System.nanoTime() - started) / 1e9);
            System.out.flush();
        }
    }

    /** commitSync, which runs the callbacks of everything acknowledged so far. */
    private void commit(KafkaShareConsumer<String, String> consumer) throws IOException {
        Map<TopicIdPartition, Optional<KafkaException>> result = consumer.commitSync(Duration.ofSeconds(30));
        for (Map.Entry<TopicIdPartition, Optional<KafkaException>> e : result.entrySet()) {
            if (e.getValue().isPresent()) {
                System.out.println("COMMIT_ERROR " + e.getKey() + " " + e.getValue().get());
            }
        }
        log.flush();
    }

    /** Commits, then acquires records and keeps them unacknowledged (round R of holding). */
    private List<ConsumerRecord<String, String>> hold(KafkaShareConsumer<String, String> consumer, int round)
            throws IOException {
        long began = System.currentTimeMillis();
        commit(consumer);
        ConsumerRecords<String, String> records;
        do {
            records = consumer.poll(Duration.ofMillis(200));
        } while (records.isEmpty());
        List<ConsumerRecord<String, String>> held = new ArrayList<>();
        for (ConsumerRecord<String, String> r : records) {
            held.add(r);
            log.write("HELD " + round + " " + r.value() + " " + r.offset() + " " + r.deliveryCount().orElse((short) -1) + "\n");
        }
        log.flush();
        System.out.println("HOLDING round=" + round + " n=" + records.count() + " accepted=" + accepted
                + " unconfirmed=" + unconfirmed() + " since=" + began);
        System.out.flush();
        return held;
    }

    /** Acknowledges held records ACCEPT (after their locks expired) and commits; reports the outcome. */
    private void lateAck(KafkaShareConsumer<String, String> consumer, List<ConsumerRecord<String, String>> held)
            throws IOException {
        long failedBefore = failed;
        for (ConsumerRecord<String, String> r : held) {
            consumer.acknowledge(r, AcknowledgeType.ACCEPT);
            pending.computeIfAbsent(r.offset(), k -> new ArrayDeque<>())
                    .add(new Pending(r.value(), r.offset(), r.deliveryCount().orElse((short) -1), AcknowledgeType.ACCEPT));
        }
        commit(consumer);
        System.out.println("LATE_ACK n=" + held.size() + " failed=" + (failed - failedBefore) + " unconfirmed=" + unconfirmed());
        System.out.flush();
    }

    private void onComplete(Map<TopicIdPartition, Set<Long>> offsets, Exception error) {
        try {
            long now = System.currentTimeMillis();
            for (Set<Long> set : offsets.values()) {
                for (long offset : set) {
                    ArrayDeque<Pending> q = pending.get(offset);
                    Pending ack = q == null ? null : q.poll();
                    if (q != null && q.isEmpty()) {
                        pending.remove(offset);
                    }
                    if (ack == null) {
                        log.write("ACKUNKNOWN " + offset + (error == null ? "" : " " + error) + "\n");
                    } else if (error == null) {
                        log.write("ACK " + ack.type().name() + " " + ack.id() + " " + offset + " " + ack.deliveryCount() + " " + now + "\n");
                        if (ack.type() == AcknowledgeType.ACCEPT) {
                            accepted++;
                        }
                    } else {
                        failed++;
                        log.write("ACKFAIL " + ack.type().name() + " " + ack.id() + " " + offset + " " + ack.deliveryCount() + " "
                                + error.toString().replace('\n', ' ') + "\n");
                    }
                }
            }
            log.flush();
        } catch (IOException e) {
            throw new RuntimeException(e);
        }
    }

    private long unconfirmed() {
        return pending.values().stream().mapToLong(ArrayDeque::size).sum();
    }

    /** Stands for the work a real application does per record. */
    private static void busy(long micros) {
        long until = System.nanoTime() + micros * 1000;
        while (System.nanoTime() < until) {
            Thread.onSpinWait();
        }
    }
}
