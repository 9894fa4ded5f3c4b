package dev.rill.compat;

import java.nio.file.Files;
import java.util.Arrays;
import java.util.Locale;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;

/**
 * A Kafka Streams word count: lines from --input, split on non-letters and
 * lower-cased, counted per word (through a repartition topic and a changelog
 * the application creates itself) and written as word -> Long count to
 * --output. Runs until SIGTERM; prints "STATE <new>" on each state change and
 * exits 1 if the application fails.
 *
 * --eos true runs it with processing.guarantee=exactly_once_v2 (transactions,
 * read_committed; commits every 100 ms) and a 6 s consumer session timeout,
 * so an instance that was killed leaves the group soon. --state-dir keeps
 * the state directory (and with it the instance's process id, hence its
 * transactional id) across restarts; by default each run gets a new one.
 */
public final class WordCount {
    public static void main(String[] argv) throws Exception {
        Args a = new Args(argv);
        Properties p = new Properties();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, a.get("app-id"));
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, Args.bootstrap());
        p.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, a.get("replication-factor", "-1"));
        p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, "200");
        if (Boolean.parseBoolean(a.get("eos", "false"))) {
            p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
            p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, "100");
            p.put(StreamsConfig.consumerPrefix(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG), "6000");
            p.put(StreamsConfig.consumerPrefix(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG), "1000");
        }
        p.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, "0");
        String stateDir = a.get("state-dir", "");
        p.put(StreamsConfig.STATE_DIR_CONFIG,
                stateDir.isEmpty() ? Files.createTempDirectory("rill-compat-streams").toString() : stateDir);
        p.put(StreamsConfig.consumerPrefix("auto.offset.reset"), "earliest");

        StreamsBuilder b = new StreamsBuilder();
        b.stream(a.get("input"), Consumed.with(Serdes.String(), Serdes.String()))
                .flatMapValues(line -> Arrays.asList(line.toLowerCase(Locale.ROOT).split("[^a-z]+")))
                .filter((k, w) -> !w.isEmpty())
                .groupBy((k, w) -> w, Grouped.with(Serdes.String(), Serdes.String()))
                .count(Materialized.as("word-counts"))
                .toStream()
                .to(a.get("output"), Produced.with(Serdes.String(), Serdes.Long()));

        KafkaStreams streams = new KafkaStreams(b.build(), p);
        CountDownLatch stopped = new CountDownLatch(1);
        int[] exit = {0};
        streams.setStateListener((now, before) -> {
            System.out.println("STATE " + now);
            System.out.flush();
            if (now == KafkaStreams.State.ERROR) {
                exit[0] = 1;
            }
            if (now == KafkaStreams.State.NOT_RUNNING || now == KafkaStreams.State.ERROR) {
                stopped.countDown();
            }
        });
        streams.setUncaughtExceptionHandler(e -> {
            System.out.println("FAILED " + e);
            exit[0] = 1;
            return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            streams.close();
            stopped.countDown();
        }));
        streams.start();
        stopped.await();
        streams.close();
        System.exit(exit[0]);
    }
}
