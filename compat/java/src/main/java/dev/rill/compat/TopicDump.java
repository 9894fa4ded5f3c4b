package dev.rill.compat;

import java.time.Duration;
import org.apache.kafka.common.serialization.StringDeserializer;

/**
 * Prints "partition<TAB>offset<TAB>key<TAB>value" for every record of a
 * topic, each partition in log order, read without a group from the first
 * offset to the end offsets it had when reading started. --isolation
 * read_committed (default) reads up to the last stable offsets and skips
 * aborted transactions; read_uncommitted reads every record. Ends with
 * "END records=N" on stderr. --wait-stable-s S first waits up to S seconds
 * until no transaction is open on the topic (its last stable offsets equal
 * its high watermarks), so that every committed transaction is read, and
 * exits 1 if that does not happen.
 */
public final class TopicDump {
    public static void main(String[] argv) {
        Args a = new Args(argv);
        long stableWait = a.getLong("wait-stable-s", 0);
        if (stableWait > 0) {
            try {
                long ms = TopicReader.waitStable(a.get("topic"), Duration.ofSeconds(stableWait));
                System.err.println("STABLE after " + ms + " ms");
            } catch (IllegalStateException e) {
                System.err.println("FAIL: " + e.getMessage());
                System.exit(1);
            }
        }
        StringBuilder out = new StringBuilder();
        long n = TopicReader.readAll(a.get("topic"), new StringDeserializer(),
                Duration.ofSeconds(a.getLong("timeout-s", 60)), a.get("isolation", "read_committed"),
                r -> out.append(r.partition()).append('\t').append(r.offset()).append('\t')
                        .append(r.key()).append('\t').append(r.value()).append('\n'));
        System.out.print(out);
        System.out.flush();
        System.err.println("END records=" + n);
    }
}
