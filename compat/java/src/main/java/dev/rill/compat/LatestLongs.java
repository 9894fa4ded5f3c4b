package dev.rill.compat;

import java.time.Duration;
import java.util.Map;
import java.util.TreeMap;
import org.apache.kafka.common.serialization.LongDeserializer;

/**
 * Prints "key<TAB>value" for the latest Long value of every key in a topic
 * (what a compacted changelog converges to), sorted by key. --isolation
 * read_committed reads only committed transactions (default read_uncommitted).
 */
public final class LatestLongs {
    public static void main(String[] argv) {
        Args a = new Args(argv);
        Map<String, Long> latest = new TreeMap<>();
        TopicReader.readAll(a.get("topic"), new LongDeserializer(), Duration.ofSeconds(a.getLong("timeout-s", 60)),
                a.get("isolation", "read_uncommitted"), r -> latest.put(r.key(), r.value()));
        latest.forEach((k, v) -> System.out.println(k + "\t" + v));
    }
}
