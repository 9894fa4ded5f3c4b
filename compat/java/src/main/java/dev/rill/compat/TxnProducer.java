package dev.rill.compat;

import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.Future;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.errors.TimeoutException;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * A transactional producer (transactional.id, acks=all). Transaction i, from
 * --first-txn on, writes --records K records with key "t<i>" and values
 * "t<i>-r<j>", record j to partition --partition-base (default 0) plus
 * j % --partitions of --topic; it is
 * committed, or aborted when --abort-every A is above 0 and i % A == A - 1
 * (after its records are flushed and acknowledged, so they are in the log).
 * Once a transaction's end returned it prints "COMMITTED t<i> began=MS
 * ended=MS" (wall-clock milliseconds of its begin and of the commit's
 * return) or "ABORTED t<i>". --txns N transactions (0: until SIGTERM, which ends the
 * current transaction first), --pause-ms between them.
 *
 * --hold true leaves the last transaction open: its records are sent and
 * flushed, "OPEN t<i> <partition>@<offset> ..." is printed and the program
 * waits to be killed. --timeout-ms sets transaction.timeout.ms.
 *
 * A send or commit that fails with an error the producer can recover from
 * aborts the transaction ("ABORTED t<i> after <error>") and the next one
 * follows; a commit or abort that times out is retried (the client resumes
 * the same end). A fatal error (the producer fenced, for example) prints
 * "FATAL <error>" and exits 3: the caller restarts it with the same
 * transactional.id. Prints "READY" after initTransactions and
 * "RESULT committed=.. aborted=.." at the end.
 */
public final class TxnProducer {
    private static volatile boolean stopping;
    /** Set before System.exit and while holding a transaction open: SIGTERM then ends at once. */
    private static volatile boolean noWait;

    public static void main(String[] argv) throws Exception {
        Args a = new Args(argv);
        String topic = a.get("topic");
        long firstTxn = a.getLong("first-txn", 0);
        long txns = a.getLong("txns", 10);
        int records = (int) a.getLong("records", 6);
        int partitions = (int) a.getLong("partitions", 3);
        int partitionBase = (int) a.getLong("partition-base", 0);
        long abortEvery = a.getLong("abort-every", 0);
        long pauseMs = a.getLong("pause-ms", 0);
        boolean hold = Boolean.parseBoolean(a.get("hold", "false"));
        // How long a commit or abort is retried after client timeouts.
        long endRetryMs = a.getLong("end-retry-ms", 120_000);

        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, Args.bootstrap());
        p.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, a.get("transactional-id"));
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        p.put(ProducerConfig.TRANSACTION_TIMEOUT_CONFIG, a.get("timeout-ms", "60000"));
        p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, a.get("max-block-ms", "30000"));
        p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "60000");
        p.put(ProducerConfig.LINGER_MS_CONFIG, "0");
        p.put(ProducerConfig.CLIENT_ID_CONFIG, "rill-compat-txn-producer");

        Thread main = Thread.currentThread();
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            stopping = true;
            if (noWait) {
                return;
            }
            try {
                main.join(30_000);
            } catch (InterruptedException ignored) {
                Thread.currentThread().interrupt();
            }
        }));

        long committed = 0;
        long aborted = 0;
        long started = System.nanoTime();
        KafkaProducer<String, String> producer = new KafkaProducer<>(p, new StringSerializer(), new StringSerializer());
        try {
            producer.initTransactions();
            System.out.println("READY");
            System.out.flush();
            for (long i = firstTxn; (txns == 0 || i < firstTxn + txns) && !stopping; i++) {
                boolean last = txns != 0 && i == firstTxn + txns - 1;
                String txn = "t" + i;
                boolean abort = abortEvery > 0 && i % abortEvery == abortEvery - 1;
                List<Future<RecordMetadata>> sent = new ArrayList<>();
                long began = System.currentTimeMillis();
                try {
                    producer.beginTransaction();
                    for (int j = 0; j < records; j++) {
                        sent.add(producer.send(new ProducerRecord<>(topic, partitionBase + j % partitions, txn, txn + "-r" + j)));
                    }
                    if (hold && last) {
                        producer.flush();
                        StringBuilder where = new StringBuilder("OPEN " + txn);
                        for (Future<RecordMetadata> f : sent) {
                            RecordMetadata md = f.get();
                            where.append(' ').append(md.partition()).append('@').append(md.offset());
                        }
                        System.out.println(where);
                        System.out.flush();
                        noWait = true;
                        Thread.sleep(Long.MAX_VALUE);
                    }
                    if (abort) {
                        // Written, then aborted: without the flush the client
                        // drops batches it has not sent yet.
                        producer.flush();
                        for (Future<RecordMetadata> f : sent) {
                            f.get();
                        }
                        endWithRetry(producer::abortTransaction, endRetryMs);
                        aborted++;
                        System.out.println("ABORTED " + txn);
                    } else {
                        endWithRetry(producer::commitTransaction, endRetryMs);
                        committed++;
                        System.out.println("COMMITTED " + txn + " began=" + began + " ended=" + System.currentTimeMillis());
                    }
                } catch (InterruptedException e) {
                    throw e;
                } catch (Exception e) {
                    // Recoverable: abort and go on. Fatal: the abort fails too.
                    try {
                        endWithRetry(producer::abortTransaction, endRetryMs);
                    } catch (Exception fatal) {
                        System.out.println("FATAL " + fatal + " (after " + e + ")");
                        System.out.flush();
                        noWait = true;
                        producer.close(java.time.Duration.ZERO);
                        System.exit(3);
                    }
                    aborted++;
                    System.out.println("ABORTED " + txn + " after " + e);
                }
                System.out.flush();
                if (pauseMs > 0) {
                    Thread.sleep(pauseMs);
                }
            }
        } catch (Exception e) {
            System.out.println("FATAL " + e);
            System.out.flush();
            noWait = true;
            producer.close(java.time.Duration.ZERO);
            System.exit(3);
        }
        producer.close();
        System.out.printf("RESULT committed=%d aborted=%d seconds=%.1f%n", committed, aborted,
                (System.nanoTime() - started) / 1e9);
        System.out.flush();
    }

    /** Runs a commit or abort, again while it times out, for at most retryMs. */
    static void endWithRetry(Runnable end, long retryMs) {
        long deadline = System.nanoTime() + retryMs * 1_000_000;
        while (true) {
            try {
                end.run();
                return;
            } catch (TimeoutException e) {
                if (System.nanoTime() > deadline) {
                    throw e;
                }
                System.out.println("RETRY after " + e);
                System.out.flush();
            }
        }
    }
}
