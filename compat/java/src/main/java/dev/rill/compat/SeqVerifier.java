package dev.rill.compat;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.kafka.common.serialization.StringDeserializer;

/**
 * Reads a topic written by SeqProducer and checks that every sequence number
 * 0..count-1 is there exactly once (no gap, no duplicate) and that each key's
 * sequence numbers appear in increasing order. Exits 1 otherwise.
 */
public final class SeqVerifier {
    public static void main(String[] argv) {
        Args a = new Args(argv);
        String topic = a.get("topic");
        int count = (int) a.getLong("count", 50_000);
        int[] seen = new int[count];
        Map<String, Long> lastPerKey = new HashMap<>();
        List<String> problems = new ArrayList<>();
        long[] reordered = {0};
        long[] foreign = {0};
        long records = TopicReader.readAll(topic, new StringDeserializer(), Duration.ofSeconds(a.getLong("timeout-s", 60)), r -> {
            long seq;
            try {
                seq = Long.parseLong(r.value());
            } catch (NumberFormatException e) {
                seq = -1;
            }
            if (seq < 0 || seq >= count) {
                foreign[0]++;
                if (problems.size() < 10) {
                    problems.add("unexpected value " + r.value() + " at " + r.partition() + "@" + r.offset());
                }
                return;
            }
            seen[(int) seq]++;
            Long last = lastPerKey.put(r.key(), seq);
            if (last != null && last >= seq) {
                reordered[0]++;
                if (problems.size() < 10) {
                    problems.add("key " + r.key() + ": seq " + seq + " after " + last + " at " + r.partition() + "@" + r.offset());
                }
            }
        });
        long duplicates = 0;
        long missing = 0;
        for (int s = 0; s < count; s++) {
            if (seen[s] == 0) {
                missing++;
                if (problems.size() < 20) {
                    problems.add("missing seq " + s);
                }
            } else if (seen[s] > 1) {
                duplicates += seen[s] - 1;
                if (problems.size() < 20) {
                    problems.add("seq " + s + " present " + seen[s] + " times");
                }
            }
        }
        System.out.printf("VERIFY records=%d expected=%d duplicates=%d missing=%d reordered=%d unexpected=%d%n",
                records, count, duplicates, missing, reordered[0], foreign[0]);
        problems.forEach(p -> System.out.println("  " + p));
        boolean ok = records == count && duplicates == 0 && missing == 0 && reordered[0] == 0 && foreign[0] == 0;
        System.exit(ok ? 0 : 1);
    }
}
