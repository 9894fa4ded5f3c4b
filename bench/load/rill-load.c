/*
 * rill-load: a Kafka load client on librdkafka that costs little CPU per
 * byte, so that on a small machine the brokers, not the client, are what a
 * benchmark measures. It is used the same way against Rill and Apache
 * Kafka (bench/bench.py) and prints its figures in the format of Kafka's
 * own perf tools, so the same parser reads both:
 *
 *   rill-load produce --bootstrap B --topic T --records N --record-size S
 *                     [--throughput R] [-X key=value ...]
 *       N records of S bytes with acks=all at R records/s (-1: as fast as
 *       possible). Every record's latency (send to acknowledgement) is
 *       kept; prints kafka-producer-perf-test's summary line:
 *       "N records sent, X records/sec (Y MB/sec), A ms avg latency,
 *        M ms max latency, P50 ms 50th, P95 ms 95th, P99 ms 99th,
 *        P999 ms 99.9th."
 *
 *       With --keys, record i has the key "i", so records spread over every
 *       partition (librdkafka's default partitioner hashes keys; without
 *       keys it fills one partition's batch at a time).
 *
 *   --topic takes several topics separated by commas: produce sends record i
 *   to the (i mod n)-th, consume reads them all, leaders sums over them.
 *
 *   rill-load leaders --bootstrap B --topic T [--not BROKER]
 *       One metadata request: prints "partitions=P leaderless=L", L being
 *       the partitions without a leader, or led by BROKER (a broker just
 *       killed, which metadata may still name).
 *
 *   rill-load consume --bootstrap B --topic T --records N --group G
 *                     [--timeout MS] [-X key=value ...]
 *       Reads N records in group G from the earliest offset; prints
 *       kafka-consumer-perf-test's header and data line (start.time, ...,
 *       fetch.nMsg.sec). Stops early after MS without a record.
 *
 *   rill-load clients --bootstrap B --topic T [--producers P] [--consumers C]
 *                     [--idle I] [--throughput R] [--record-size S]
 *                     [--warmup-seconds W] [--seconds D] [--metadata-ms M]
 *                     [--timeout MS] [--sync]
 *       Many clients in one process, each its own librdkafka handle (so
 *       its own connections):
 *       - I idle clients: producer handles that send nothing; each takes
 *         the (k mod n)-th --bootstrap address only, asks it for T's
 *         metadata once at start and again every M ms (default 10,000), so
 *         each holds one connection, the brokers' share alike;
 *       - P producers: R records/s of S bytes (acks=all, keyed) in total,
 *         producer j sending records j, j+P, j+2P, ... on schedule, for W
 *         then D seconds; the latency of every record sent in the last D
 *         seconds is kept;
 *       - C consumers, outside any group: consumer c is assigned the
 *         partitions p of T with p mod C == c (p mod partitions == c mod
 *         partitions when C exceeds them), from the beginning, and reads
 *         until every acknowledged record was read (or MS, default 30,000,
 *         without one).
 *       With P = 0 it only holds the idle clients: for D seconds, or with
 *       --sync until its standard input closes.
 *       Prints a line with the records acknowledged and read and the
 *       produce latency p50/p99/p99.9 of the measured records.
 *
 *   rill-load commit --bootstrap B --topic T --groups N [--group-base K]
 *                    [--interval-ms I] [--warmup-seconds W] [--seconds D]
 *                    [--timeout MS] [--latency-out FILE] [--sync]
 *       N consumer groups (named "commit-K" to "commit-(K+N-1)"), one
 *       member each in its own handle and thread: it joins (subscribes to
 *       T and is assigned all of T's partitions, paused, so it never
 *       fetches; every group within MS, default 30,000), then commits offsets for those partitions every I ms
 *       (default 1,000; the groups spread evenly over the interval),
 *       synchronously (rd_kafka_commit), the k-th commit at offset k.
 *       Commits made in the last D seconds are measured: their latency
 *       (call to return) is kept; FILE gets one per line in microseconds.
 *       At the end it looks up each group's coordinator (the leader of its
 *       __consumer_offsets partition, Kafka's hash of the group name) and
 *       prints how many groups each broker coordinates.
 *
 *   With --sync, clients and commit print "phase=ready" once every client
 *   is connected (or joined) and wait for a line on standard input before
 *   they start, so a driver can start several processes together. Both
 *   print "phase=measure" when the measured seconds begin and "phase=end"
 *   when they end.
 *
 * All modes print one JSON line last with their figures and the client's
 * own CPU time (user and system seconds, getrusage), so a run can report
 * client CPU next to broker CPU.
 *
 * Build: bench/load/build.sh (gcc and librdkafka-dev from Debian).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONFIG 64
#define MAX_TOPICS 256
#define MAX_BOOTSTRAP 16

static volatile sig_atomic_t stop;

static void on_signal(int sig) {
    (void)sig;
    stop = 1;
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static double cpu_seconds(double *user, double *sys) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    *user = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6;
    *sys = ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    return *user + *sys;
}

static void die(const char *fmt, const char *arg) {
    fprintf(stderr, "rill-load: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    exit(2);
}

struct options {
    const char *mode;
    const char *bootstrap;
    const char *topic;
    const char *group;
    long long records;
    int record_size;
    long long throughput;
    int timeout_ms;
    int keys;
    int not_broker;
    /* clients and commit */
    long long producers, consumers, idle, groups, group_base;
    double seconds, warmup_seconds;
    long long metadata_ms, interval_ms;
    const char *latency_out;
    int sync;
    /* --bootstrap split at commas (each idle client takes one). */
    char *bootstraps[MAX_BOOTSTRAP];
    int n_bootstraps;
    /* --topic split at commas (produce spreads records over them in turn;
     * leaders sums over them). */
    char *topics[MAX_TOPICS];
    int n_topics;
    const char *config[MAX_CONFIG][2];
    int n_config;
};

static void usage(void) {
    fprintf(stderr,
            "usage: rill-load produce --bootstrap B --topic T --records N --record-size S "
            "[--throughput R] [-X key=value ...]\n"
            "       rill-load consume --bootstrap B --topic T --records N --group G "
            "[--timeout MS] [-X key=value ...]\n"
            "       rill-load leaders --bootstrap B --topic T [--not BROKER]\n"
            "       rill-load clients --bootstrap B --topic T [--producers P] [--consumers C] [--idle I] "
            "[--throughput R] [--record-size S] [--warmup-seconds W] [--seconds D] [--metadata-ms M] "
            "[--timeout MS] [--sync]\n"
            "       rill-load commit --bootstrap B --topic T --groups N [--group-base K] [--interval-ms I] "
            "[--warmup-seconds W] [--seconds D] [--timeout MS] [--latency-out FILE] [--sync]\n");
    exit(2);
}

static long long number(const char *flag, const char *v) {
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (errno || *end || end == v) die("%s needs a number", flag);
    return n;
}

static double seconds_arg(const char *flag, const char *v) {
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || *end || end == v || x < 0) die("%s needs a number of seconds", flag);
    return x;
}

static void parse(int argc, char **argv, struct options *o) {
    memset(o, 0, sizeof *o);
    o->throughput = -1;
    o->timeout_ms = 30000;
    o->not_broker = -1;
    o->seconds = 30;
    o->metadata_ms = 10000;
    o->interval_ms = 1000;
    if (argc < 2) usage();
    o->mode = argv[1];
    for (int i = 2; i < argc; i++) {
        const char *f = argv[i];
        if (!strcmp(f, "--keys")) {
            o->keys = 1;
            continue;
        }
        if (!strcmp(f, "--sync")) {
            o->sync = 1;
            continue;
        }
        if (i + 1 >= argc) usage();
        const char *v = argv[++i];
        if (!strcmp(f, "--bootstrap")) o->bootstrap = v;
        else if (!strcmp(f, "--topic")) o->topic = v;
        else if (!strcmp(f, "--group")) o->group = v;
        else if (!strcmp(f, "--records")) o->records = number(f, v);
        else if (!strcmp(f, "--record-size")) o->record_size = (int)number(f, v);
        else if (!strcmp(f, "--throughput")) o->throughput = number(f, v);
        else if (!strcmp(f, "--timeout")) o->timeout_ms = (int)number(f, v);
        else if (!strcmp(f, "--not")) o->not_broker = (int)number(f, v);
        else if (!strcmp(f, "--producers")) o->producers = number(f, v);
        else if (!strcmp(f, "--consumers")) o->consumers = number(f, v);
        else if (!strcmp(f, "--idle")) o->idle = number(f, v);
        else if (!strcmp(f, "--groups")) o->groups = number(f, v);
        else if (!strcmp(f, "--group-base")) o->group_base = number(f, v);
        else if (!strcmp(f, "--seconds")) o->seconds = seconds_arg(f, v);
        else if (!strcmp(f, "--warmup-seconds")) o->warmup_seconds = seconds_arg(f, v);
        else if (!strcmp(f, "--metadata-ms")) o->metadata_ms = number(f, v);
        else if (!strcmp(f, "--interval-ms")) o->interval_ms = number(f, v);
        else if (!strcmp(f, "--latency-out")) o->latency_out = v;
        else if (!strcmp(f, "-X")) {
            char *eq = strchr(v, '=');
            if (!eq || o->n_config == MAX_CONFIG) die("-X takes key=value (at most 64): %s", v);
            *eq = '\0';
            o->config[o->n_config][0] = v;
            o->config[o->n_config][1] = eq + 1;
            o->n_config++;
        } else die("unknown option %s", f);
    }
    int counted = !strcmp(o->mode, "produce") || !strcmp(o->mode, "consume");
    if (!o->bootstrap || !o->topic || (counted && o->records <= 0)) usage();
    char *servers = strdup(o->bootstrap);
    for (char *save = NULL, *b = strtok_r(servers, ",", &save); b; b = strtok_r(NULL, ",", &save)) {
        if (o->n_bootstraps == MAX_BOOTSTRAP) die("%s", "at most 16 bootstrap addresses");
        o->bootstraps[o->n_bootstraps++] = b;
    }
    if (o->n_bootstraps == 0) usage();
    char *list = strdup(o->topic);
    for (char *save = NULL, *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (o->n_topics == MAX_TOPICS) die("%s", "at most 256 topics");
        o->topics[o->n_topics++] = t;
    }
    if (o->n_topics == 0) usage();
}

static void set(rd_kafka_conf_t *conf, const char *key, const char *value) {
    char err[512];
    if (rd_kafka_conf_set(conf, key, value, err, sizeof err) != RD_KAFKA_CONF_OK)
        die("bad client config: %s", err);
}

/* The client config: bootstrap servers, then the mode's defaults, then the
 * -X settings (which win). */
static rd_kafka_conf_t *config(const struct options *o, const char *const defaults[][2], int n) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    set(conf, "bootstrap.servers", o->bootstrap);
    for (int i = 0; i < n; i++) set(conf, defaults[i][0], defaults[i][1]);
    for (int i = 0; i < o->n_config; i++) set(conf, o->config[i][0], o->config[i][1]);
    return conf;
}

/* ---- produce ---- */

struct produce_state {
    int64_t *sent_ns;   /* per record: when it was handed to librdkafka */
    uint32_t *lat_us;   /* per acknowledged record: its latency */
    long long acked;
    long long failed;
    const char *first_error;
};

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    struct produce_state *st = opaque;
    uintptr_t i = (uintptr_t)m->_private;
    if (m->err) {
        st->failed++;
        if (!st->first_error) st->first_error = rd_kafka_err2str(m->err);
        return;
    }
    int64_t us = (now_ns() - st->sent_ns[i]) / 1000;
    st->lat_us[st->acked++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

static int by_value(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static long long percentile_ms(const uint32_t *sorted, long long n, double p) {
    if (n == 0) return 0;
    long long i = (long long)(p * (double)n);
    if (i >= n) i = n - 1;
    return sorted[i] / 1000;
}

static int produce(const struct options *o) {
    static const char *const defaults[][2] = {
        {"acks", "all"},
        {"linger.ms", "5"},
        {"batch.size", "1000000"},
        {"queue.buffering.max.messages", "1000000"},
        {"queue.buffering.max.kbytes", "1048576"},
        {"compression.type", "none"},
    };
    if (o->record_size <= 0) die("%s", "--record-size must be positive");
    struct produce_state st = {0};
    st.sent_ns = calloc((size_t)o->records, sizeof *st.sent_ns);
    st.lat_us = calloc((size_t)o->records, sizeof *st.lat_us);
    char *payload = malloc((size_t)o->record_size);
    if (!st.sent_ns || !st.lat_us || !payload) die("%s", "out of memory");
    for (int i = 0; i < o->record_size; i++) payload[i] = (char)('a' + i % 26);

    rd_kafka_conf_t *conf = config(o, defaults, (int)(sizeof defaults / sizeof defaults[0]));
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_opaque(conf, &st);
    char err[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk) die("cannot create the producer: %s", err);
    rd_kafka_topic_t *topics[MAX_TOPICS];
    for (int t = 0; t < o->n_topics; t++) topics[t] = rd_kafka_topic_new(rk, o->topics[t], NULL);

    double u0, s0;
    double cpu0 = cpu_seconds(&u0, &s0);
    int64_t start = now_ns();
    for (long long i = 0; i < o->records && !stop; i++) {
        if (o->throughput > 0) {
            /* Paced: record i goes out at start + i / throughput. */
            int64_t due = start + (int64_t)((double)i * 1e9 / (double)o->throughput);
            int64_t wait = due - now_ns();
            if (wait > 0) {
                struct timespec ts = {wait / 1000000000, wait % 1000000000};
                rd_kafka_poll(rk, 0);
                nanosleep(&ts, NULL);
            }
        }
        char key[24];
        int key_len = o->keys ? snprintf(key, sizeof key, "%lld", i) : 0;
        st.sent_ns[i] = now_ns();
        rd_kafka_topic_t *topic = topics[i % o->n_topics];
        while (rd_kafka_produce(topic, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, payload,
                                (size_t)o->record_size, o->keys ? key : NULL, (size_t)key_len,
                                (void *)(uintptr_t)i) == -1) {
            rd_kafka_resp_err_t e = rd_kafka_last_error();
            if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) die("produce failed: %s", rd_kafka_err2str(e));
            rd_kafka_poll(rk, 10);
            st.sent_ns[i] = now_ns();
        }
        if ((i & 1023) == 0) rd_kafka_poll(rk, 0);
    }
    /* Every record ends acknowledged or failed: librdkafka fails a record
     * after message.timeout.ms, so this wait is bounded by the client's own
     * settings (a run that raises request.timeout.ms waits that long). */
    while (rd_kafka_outq_len(rk) > 0 && !stop) rd_kafka_flush(rk, 1000);
    int64_t end = now_ns();
    double u1, s1;
    double cpu1 = cpu_seconds(&u1, &s1);
    long long in_flight = rd_kafka_outq_len(rk);
    for (int t = 0; t < o->n_topics; t++) rd_kafka_topic_destroy(topics[t]);
    rd_kafka_destroy(rk);

    double seconds = (double)(end - start) / 1e9;
    double rps = seconds > 0 ? (double)st.acked / seconds : 0;
    double mbps = rps * o->record_size / (1024.0 * 1024.0);
    qsort(st.lat_us, (size_t)st.acked, sizeof *st.lat_us, by_value);
    double sum = 0;
    for (long long i = 0; i < st.acked; i++) sum += st.lat_us[i];
    double avg_ms = st.acked ? sum / (double)st.acked / 1000.0 : 0;
    double max_ms = st.acked ? st.lat_us[st.acked - 1] / 1000.0 : 0;
    long long p50 = percentile_ms(st.lat_us, st.acked, 0.50), p95 = percentile_ms(st.lat_us, st.acked, 0.95),
              p99 = percentile_ms(st.lat_us, st.acked, 0.99), p999 = percentile_ms(st.lat_us, st.acked, 0.999);
    printf("%lld records sent, %.1f records/sec (%.2f MB/sec), %.2f ms avg latency, %.2f ms max latency, "
           "%lld ms 50th, %lld ms 95th, %lld ms 99th, %lld ms 99.9th.\n",
           st.acked, rps, mbps, avg_ms, max_ms, p50, p95, p99, p999);
    printf("{\"mode\":\"produce\",\"records\":%lld,\"failed\":%lld,\"unacknowledged\":%lld,\"seconds\":%.3f,"
           "\"records_per_s\":%.1f,\"mb_per_s\":%.3f,\"lat_avg_ms\":%.3f,\"lat_max_ms\":%.3f,\"lat_p50_ms\":%lld,"
           "\"lat_p95_ms\":%lld,\"lat_p99_ms\":%lld,\"lat_p999_ms\":%lld,\"cpu_user_s\":%.3f,\"cpu_sys_s\":%.3f,"
           "\"cpu_s\":%.3f}\n",
           st.acked, st.failed, in_flight, seconds, rps, rps * o->record_size / 1e6, avg_ms, max_ms, p50, p95, p99,
           p999, u1 - u0, s1 - s0, cpu1 - cpu0);
    if (st.failed || in_flight) {
        fprintf(stderr, "rill-load: %lld records failed (%s), %lld never acknowledged\n", st.failed,
                st.first_error ? st.first_error : "-", in_flight);
        return 1;
    }
    return 0;
}

/* ---- consume ---- */

static void timestamp(char *out, size_t n) {
    time_t t = time(NULL);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(out, n, "%Y-%m-%d %H:%M:%S:000", &tm);
}

static int consume(const struct options *o) {
    if (!o->group) die("%s", "consume needs --group");
    static const char *const defaults_head[][2] = {
        {"auto.offset.reset", "earliest"},
        {"enable.auto.commit", "false"},
        {"fetch.max.bytes", "52428800"},
    };
    rd_kafka_conf_t *conf = config(o, defaults_head, (int)(sizeof defaults_head / sizeof defaults_head[0]));
    set(conf, "group.id", o->group);
    char err[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (!rk) die("cannot create the consumer: %s", err);
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(o->n_topics);
    for (int t = 0; t < o->n_topics; t++)
        rd_kafka_topic_partition_list_add(topics, o->topics[t], RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (e) die("cannot subscribe: %s", rd_kafka_err2str(e));

    char start_time[64], end_time[64];
    timestamp(start_time, sizeof start_time);
    double u0, s0;
    double cpu0 = cpu_seconds(&u0, &s0);
    int64_t start = now_ns(), first = 0, last = now_ns();
    long long n = 0, bytes = 0;
    while (n < o->records && !stop) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        int64_t t = now_ns();
        if (!m) {
            if ((t - last) / 1000000 > o->timeout_ms) break;
            continue;
        }
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                fprintf(stderr, "rill-load: consumer error: %s\n", rd_kafka_message_errstr(m));
        } else {
            if (!first) first = t;
            n++;
            bytes += (long long)m->len;
            last = t;
        }
        rd_kafka_message_destroy(m);
    }
    int64_t end = now_ns();
    double u1, s1;
    double cpu1 = cpu_seconds(&u1, &s1);
    timestamp(end_time, sizeof end_time);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);

    double total_s = (double)(end - start) / 1e9;
    double fetch_s = first ? (double)(last - first) / 1e9 : 0;
    double rebalance_ms = first ? (double)(first - start) / 1e6 : 0;
    double mb = (double)bytes / (1024.0 * 1024.0);
    printf("start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, "
           "rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec\n");
    printf("%s, %s, %.4f, %.4f, %lld, %.4f, %.0f, %.0f, %.4f, %.4f\n", start_time, end_time, mb,
           total_s > 0 ? mb / total_s : 0, n, total_s > 0 ? n / total_s : 0, rebalance_ms, fetch_s * 1000,
           fetch_s > 0 ? mb / fetch_s : 0, fetch_s > 0 ? n / fetch_s : 0);
    printf("{\"mode\":\"consume\",\"records\":%lld,\"bytes\":%lld,\"seconds\":%.3f,\"fetch_seconds\":%.3f,"
           "\"cpu_user_s\":%.3f,\"cpu_sys_s\":%.3f,\"cpu_s\":%.3f}\n",
           n, bytes, total_s, fetch_s, u1 - u0, s1 - s0, cpu1 - cpu0);
    return n < o->records;
}

/* ---- leaders ---- */

static int leaders(const struct options *o) {
    rd_kafka_conf_t *conf = config(o, NULL, 0);
    char err[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk) die("cannot create the client: %s", err);
    const struct rd_kafka_metadata *md;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 1, NULL, &md, 5000);
    if (e) die("metadata: %s", rd_kafka_err2str(e));
    int partitions = 0, leaderless = 0, found = 0;
    for (int i = 0; i < md->topic_cnt; i++) {
        const rd_kafka_metadata_topic_t *t = &md->topics[i];
        int wanted = 0;
        for (int k = 0; k < o->n_topics; k++) wanted |= !strcmp(t->topic, o->topics[k]);
        if (!wanted || t->err) continue;
        found++;
        partitions += t->partition_cnt;
        for (int p = 0; p < t->partition_cnt; p++)
            if (t->partitions[p].leader < 0 || t->partitions[p].leader == o->not_broker) leaderless++;
    }
    rd_kafka_metadata_destroy(md);
    rd_kafka_destroy(rk);
    if (found != o->n_topics) {
        fprintf(stderr, "rill-load: %d of %d topics in metadata\n", found, o->n_topics);
        return 1;
    }
    printf("partitions=%d leaderless=%d\n", partitions, leaderless);
    return 0;
}

/* ---- shared by clients and commit ---- */

static void sleep_until(int64_t t) {
    struct timespec ts = {t / 1000000000, t % 1000000000};
    while (!stop && clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

static void phase(const char *name) {
    printf("phase=%s\n", name);
    fflush(stdout);
}

/* With --sync: says it is ready and waits for a line on standard input. */
static void wait_go(const struct options *o) {
    if (!o->sync) return;
    phase("ready");
    char line[64];
    if (!fgets(line, sizeof line, stdin)) die("%s", "standard input closed before the start");
}

/* A growing array of latencies in microseconds, one per thread. */
struct latencies {
    uint32_t *us;
    long long n, cap;
};

static void lat_add(struct latencies *l, int64_t ns) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 1024;
        l->us = realloc(l->us, (size_t)l->cap * sizeof *l->us);
        if (!l->us) die("%s", "out of memory");
    }
    int64_t us = ns / 1000;
    l->us[l->n++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

static void lat_merge(struct latencies *into, const struct latencies *from) {
    for (long long i = 0; i < from->n; i++) lat_add(into, (int64_t)from->us[i] * 1000);
}

static double lat_ms(const struct latencies *sorted, double p) {
    if (sorted->n == 0) return 0;
    long long i = (long long)(p * (double)sorted->n);
    if (i >= sorted->n) i = sorted->n - 1;
    return sorted->us[i] / 1000.0;
}

/* Sorted latencies: writes them to --latency-out when given, prints the
 * percentiles as fields of a JSON object. */
static void lat_report(const struct options *o, const struct latencies *l) {
    if (o->latency_out) {
        FILE *f = fopen(o->latency_out, "w");
        if (!f) die("cannot write %s", o->latency_out);
        for (long long i = 0; i < l->n; i++) fprintf(f, "%u\n", l->us[i]);
        fclose(f);
    }
    printf("\"measured\":%lld,\"lat_p50_ms\":%.3f,\"lat_p99_ms\":%.3f,\"lat_p999_ms\":%.3f,\"lat_max_ms\":%.3f", l->n,
           lat_ms(l, 0.50), lat_ms(l, 0.99), lat_ms(l, 0.999), l->n ? l->us[l->n - 1] / 1000.0 : 0);
}

static pthread_t spawn(void *(*run)(void *), void *arg) {
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    /* Hundreds of threads next to librdkafka's own: small stacks. */
    pthread_attr_setstacksize(&attr, 256 * 1024);
    pthread_t t;
    if (pthread_create(&t, &attr, run, arg)) die("%s", "cannot start a thread");
    pthread_attr_destroy(&attr);
    return t;
}

/* Metadata of one topic through a new client (*rk, for the caller to
 * destroy with the metadata); dies when there is none. */
static const struct rd_kafka_metadata *topic_metadata(const struct options *o, const char *name, rd_kafka_t **rk) {
    char err[512];
    *rk = rd_kafka_new(RD_KAFKA_PRODUCER, config(o, NULL, 0), err, sizeof err);
    if (!*rk) die("cannot create the client: %s", err);
    rd_kafka_topic_t *t = rd_kafka_topic_new(*rk, name, NULL);
    const struct rd_kafka_metadata *md;
    rd_kafka_resp_err_t e = rd_kafka_metadata(*rk, 0, t, &md, 10000);
    rd_kafka_topic_destroy(t);
    if (e) die("metadata: %s", rd_kafka_err2str(e));
    if (md->topic_cnt != 1 || md->topics[0].err || md->topics[0].partition_cnt == 0)
        die("no metadata for topic %s", name);
    return md;
}

/* ---- clients ---- */

/* Idle client k: a producer on the (k mod n)-th bootstrap address that
 * sends nothing. It asks for the topic's metadata now (so it connects) and
 * keeps the topic, whose metadata librdkafka refreshes every --metadata-ms. */
static rd_kafka_resp_err_t idle_client(const struct options *o, long long k) {
    char interval[32];
    snprintf(interval, sizeof interval, "%lld", o->metadata_ms);
    const char *const defaults[][2] = {{"topic.metadata.refresh.interval.ms", interval}};
    rd_kafka_conf_t *conf = config(o, defaults, 1);
    set(conf, "bootstrap.servers", o->bootstraps[k % o->n_bootstraps]);
    char err[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk) die("cannot create a client: %s", err);
    rd_kafka_topic_t *topic = rd_kafka_topic_new(rk, o->topics[0], NULL);
    const struct rd_kafka_metadata *md;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, topic, &md, 30000);
    if (!e) rd_kafka_metadata_destroy(md);
    /* The handle and topic live until the process exits. */
    return e;
}

struct producer {
    const struct options *o;
    rd_kafka_t *rk;
    rd_kafka_topic_t *topic;
    const char *payload;
    long long j;          /* its index: it sends records j, j+P, j+2P, ... */
    long long n_records;  /* how many of them */
    long long warm;       /* records numbered below this are not measured */
    int64_t start;        /* record i is due at start + i / throughput */
    int64_t *sent_ns;     /* per record of this producer: when it was handed over */
    struct latencies lat; /* of its measured records */
    long long acked, failed, unacked;
    const char *first_error;
    pthread_t thread;
};

static void on_delivery_of(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    struct producer *p = opaque;
    long long k = (long long)(uintptr_t)m->_private;
    if (m->err) {
        p->failed++;
        if (!p->first_error) p->first_error = rd_kafka_err2str(m->err);
        return;
    }
    p->acked++;
    if (p->j + k * p->o->producers >= p->warm) lat_add(&p->lat, now_ns() - p->sent_ns[k]);
}

static void *producer_run(void *arg) {
    struct producer *p = arg;
    const struct options *o = p->o;
    for (long long k = 0; k < p->n_records && !stop; k++) {
        long long i = p->j + k * o->producers;
        int64_t due = p->start + (int64_t)((double)i * 1e9 / (double)o->throughput);
        for (;;) {
            int64_t wait = due - now_ns();
            if (wait <= 0) break;
            if (wait >= 1000000) {
                rd_kafka_poll(p->rk, (int)(wait / 1000000));
            } else {
                sleep_until(due);
                break;
            }
        }
        char key[24];
        int key_len = snprintf(key, sizeof key, "%lld", i);
        p->sent_ns[k] = now_ns();
        while (rd_kafka_produce(p->topic, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, (void *)p->payload,
                                (size_t)o->record_size, key, (size_t)key_len, (void *)(uintptr_t)k) == -1) {
            rd_kafka_resp_err_t e = rd_kafka_last_error();
            if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) die("produce failed: %s", rd_kafka_err2str(e));
            rd_kafka_poll(p->rk, 10);
            p->sent_ns[k] = now_ns();
        }
        rd_kafka_poll(p->rk, 0);
    }
    rd_kafka_flush(p->rk, 60000);
    p->unacked = rd_kafka_outq_len(p->rk);
    return NULL;
}

struct consumer {
    rd_kafka_t *rk;
    long long records, bytes; /* read so far (atomic: the main thread watches) */
    pthread_t thread;
};

static volatile int consumers_stop;

static void *consumer_run(void *arg) {
    struct consumer *c = arg;
    while (!consumers_stop && !stop) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, 100);
        if (!m) continue;
        if (!m->err) {
            __atomic_add_fetch(&c->bytes, (long long)m->len, __ATOMIC_RELAXED);
            __atomic_add_fetch(&c->records, 1, __ATOMIC_RELAXED);
        } else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            fprintf(stderr, "rill-load: consumer error: %s\n", rd_kafka_message_errstr(m));
        }
        rd_kafka_message_destroy(m);
    }
    return NULL;
}

/* Consumer c of n over `partitions` partitions, assigned from the
 * beginning. librdkafka wants a group.id even so; it never joins nor
 * commits. */
static struct consumer *new_consumer(const struct options *o, long long c, long long n, int partitions) {
    static const char *const defaults[][2] = {
        {"enable.auto.commit", "false"},
        {"fetch.max.bytes", "52428800"},
    };
    char err[512];
    rd_kafka_conf_t *conf = config(o, defaults, 2);
    char group[64];
    snprintf(group, sizeof group, "reader-%lld", c);
    set(conf, "group.id", group);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (!rk) die("cannot create a consumer: %s", err);
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(partitions);
    if (n <= partitions) {
        for (int p = 0; p < partitions; p++)
            if (p % n == c) rd_kafka_topic_partition_list_add(list, o->topics[0], p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    } else {
        rd_kafka_topic_partition_list_add(list, o->topics[0], (int)(c % partitions))->offset =
            RD_KAFKA_OFFSET_BEGINNING;
    }
    rd_kafka_resp_err_t e = rd_kafka_assign(rk, list);
    rd_kafka_topic_partition_list_destroy(list);
    if (e) die("cannot assign: %s", rd_kafka_err2str(e));
    struct consumer *cons = calloc(1, sizeof *cons);
    if (!cons) die("%s", "out of memory");
    cons->rk = rk;
    return cons;
}

static int clients(const struct options *o) {
    if (o->producers > 0 && (o->throughput <= 0 || o->record_size <= 0))
        die("%s", "--producers needs --throughput and --record-size");
    if (o->consumers > 0 && o->producers == 0) die("%s", "--consumers needs --producers");
    double u0, s0;
    double cpu0 = cpu_seconds(&u0, &s0);
    long long idle_failed = 0;
    const char *idle_error = NULL;
    for (long long k = 0; k < o->idle && !stop; k++) {
        rd_kafka_resp_err_t e = idle_client(o, k);
        if (e) {
            idle_failed++;
            idle_error = rd_kafka_err2str(e);
        }
    }
    if (idle_failed) fprintf(stderr, "rill-load: %lld idle clients got no metadata (%s)\n", idle_failed, idle_error);

    if (o->producers == 0) {
        /* Only idle clients: hold them. */
        if (o->sync) {
            phase("ready");
            char line[64];
            while (!stop && fgets(line, sizeof line, stdin)) {
            }
        } else {
            sleep_until(now_ns() + (int64_t)(o->seconds * 1e9));
        }
        double u1, s1;
        double cpu1 = cpu_seconds(&u1, &s1);
        printf("{\"mode\":\"clients\",\"idle\":%lld,\"idle_failed\":%lld,\"cpu_user_s\":%.3f,\"cpu_sys_s\":%.3f,"
               "\"cpu_s\":%.3f}\n",
               o->idle, idle_failed, u1 - u0, s1 - s0, cpu1 - cpu0);
        fflush(stdout);
        /* Destroying hundreds of handles one by one takes long and
         * measures nothing: the process exit closes their connections. */
        _exit(idle_failed ? 1 : 0);
    }

    struct consumer **consumers = calloc((size_t)o->consumers + 1, sizeof *consumers);
    if (o->consumers > 0) {
        rd_kafka_t *rk;
        const struct rd_kafka_metadata *md = topic_metadata(o, o->topics[0], &rk);
        int partitions = md->topics[0].partition_cnt;
        rd_kafka_metadata_destroy(md);
        rd_kafka_destroy(rk);
        for (long long c = 0; c < o->consumers; c++) consumers[c] = new_consumer(o, c, o->consumers, partitions);
    }

    static const char *const defaults[][2] = {
        {"acks", "all"},
        {"linger.ms", "5"},
        {"batch.size", "1000000"},
        {"compression.type", "none"},
    };
    char *payload = malloc((size_t)o->record_size);
    struct producer *producers = calloc((size_t)o->producers, sizeof *producers);
    if (!payload || !producers || !consumers) die("%s", "out of memory");
    for (int i = 0; i < o->record_size; i++) payload[i] = (char)('a' + i % 26);
    long long total = (long long)((o->warmup_seconds + o->seconds) * (double)o->throughput);
    long long warm = (long long)(o->warmup_seconds * (double)o->throughput);
    for (long long j = 0; j < o->producers; j++) {
        struct producer *p = &producers[j];
        p->o = o;
        p->j = j;
        p->payload = payload;
        p->warm = warm;
        p->n_records = j < total ? (total - j + o->producers - 1) / o->producers : 0;
        p->sent_ns = calloc((size_t)p->n_records + 1, sizeof *p->sent_ns);
        if (!p->sent_ns) die("%s", "out of memory");
        rd_kafka_conf_t *conf = config(o, defaults, (int)(sizeof defaults / sizeof defaults[0]));
        rd_kafka_conf_set_dr_msg_cb(conf, on_delivery_of);
        rd_kafka_conf_set_opaque(conf, p);
        char err[512];
        p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
        if (!p->rk) die("cannot create a producer: %s", err);
        p->topic = rd_kafka_topic_new(p->rk, o->topics[0], NULL);
    }
    wait_go(o);

    for (long long c = 0; c < o->consumers; c++) consumers[c]->thread = spawn(consumer_run, consumers[c]);
    int64_t start = now_ns() + 100000000;
    int64_t measure_from = start + (int64_t)(o->warmup_seconds * 1e9);
    int64_t end = measure_from + (int64_t)(o->seconds * 1e9);
    for (long long j = 0; j < o->producers; j++) {
        producers[j].start = start;
        producers[j].thread = spawn(producer_run, &producers[j]);
    }
    sleep_until(measure_from);
    phase("measure");
    sleep_until(end);
    phase("end");

    struct latencies lat = {0};
    long long acked = 0, failed = 0, unacked = 0;
    const char *first_error = NULL;
    for (long long j = 0; j < o->producers; j++) {
        struct producer *p = &producers[j];
        pthread_join(p->thread, NULL);
        acked += p->acked;
        failed += p->failed;
        unacked += p->unacked;
        if (!first_error) first_error = p->first_error;
        lat_merge(&lat, &p->lat);
    }
    /* The consumers read until every acknowledged record arrived, or until
     * --timeout without a new one. */
    long long consumed = 0, last = -1;
    int64_t last_change = now_ns();
    while (o->consumers > 0 && !stop) {
        consumed = 0;
        for (long long c = 0; c < o->consumers; c++) consumed += __atomic_load_n(&consumers[c]->records, __ATOMIC_RELAXED);
        if (consumed >= acked) break;
        if (consumed != last) {
            last = consumed;
            last_change = now_ns();
        } else if ((now_ns() - last_change) / 1000000 > o->timeout_ms) {
            break;
        }
        sleep_until(now_ns() + 10000000);
    }
    consumers_stop = 1;
    for (long long c = 0; c < o->consumers; c++) {
        pthread_join(consumers[c]->thread, NULL);
        rd_kafka_consumer_close(consumers[c]->rk);
        rd_kafka_destroy(consumers[c]->rk);
    }
    for (long long j = 0; j < o->producers; j++) {
        rd_kafka_topic_destroy(producers[j].topic);
        rd_kafka_destroy(producers[j].rk);
    }
    double u1, s1;
    double cpu1 = cpu_seconds(&u1, &s1);
    printf("clients: %lld producers, %lld consumers, %lld idle; %lld records acknowledged, %lld consumed; ",
           o->producers, o->consumers, o->idle, acked, consumed);
    qsort(lat.us, (size_t)lat.n, sizeof *lat.us, by_value);
    printf("measured %lld: p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms\n", lat.n, lat_ms(&lat, 0.5), lat_ms(&lat, 0.99),
           lat_ms(&lat, 0.999));
    printf("{\"mode\":\"clients\",\"producers\":%lld,\"consumers\":%lld,\"idle\":%lld,\"idle_failed\":%lld,"
           "\"records\":%lld,\"failed\":%lld,\"unacknowledged\":%lld,\"consumed\":%lld,\"seconds\":%.3f,"
           "\"records_per_s\":%.1f,",
           o->producers, o->consumers, o->idle, idle_failed, acked, failed, unacked, consumed, o->seconds,
           o->seconds > 0 ? (double)lat.n / o->seconds : 0);
    lat_report(o, &lat);
    printf(",\"cpu_user_s\":%.3f,\"cpu_sys_s\":%.3f,\"cpu_s\":%.3f}\n", u1 - u0, s1 - s0, cpu1 - cpu0);
    int bad = failed || unacked || idle_failed || (o->consumers > 0 && consumed < acked);
    if (bad)
        fprintf(stderr, "rill-load: %lld records failed (%s), %lld never acknowledged, %lld of %lld read\n", failed,
                first_error ? first_error : "-", unacked, consumed, acked);
    return bad;
}

/* ---- commit ---- */

struct member {
    const struct options *o;
    rd_kafka_t *rk;
    long long g;                                 /* its group among this process's, 0-based */
    int assigned;                                /* set by the rebalance callback */
    rd_kafka_topic_partition_list_t *assignment; /* what it commits offsets for */
    struct latencies lat;                        /* of its measured commits */
    long long commits, failed, late;
    const char *first_error;
    pthread_t thread;
};

/* Set by the main thread: 0 until every group joined, then when the first
 * commit is due; and when the measured commits begin and end. */
static int64_t commit_start, commit_measure_from, commit_end, join_deadline;
static long long joined;

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts,
                         void *opaque) {
    struct member *m = opaque;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        rd_kafka_assign(rk, parts);
        /* It only commits: no fetching. */
        rd_kafka_pause_partitions(rk, parts);
        if (m->assignment) rd_kafka_topic_partition_list_destroy(m->assignment);
        m->assignment = rd_kafka_topic_partition_list_copy(parts);
        m->assigned = 1;
    } else {
        rd_kafka_assign(rk, NULL);
        m->assigned = 0;
    }
}

/* Serves the member's queue (rebalances) for up to `ms`. */
static void serve(struct member *m, int ms) {
    rd_kafka_message_t *msg = rd_kafka_consumer_poll(m->rk, ms);
    if (msg) rd_kafka_message_destroy(msg);
}

static void *member_run(void *arg) {
    struct member *m = arg;
    const struct options *o = m->o;
    while (!m->assigned && !stop && now_ns() < join_deadline) serve(m, 100);
    if (m->assigned) __atomic_add_fetch(&joined, 1, __ATOMIC_SEQ_CST);
    int64_t start;
    while (!(start = __atomic_load_n(&commit_start, __ATOMIC_SEQ_CST)) && !stop) serve(m, 100);
    int64_t interval = o->interval_ms * 1000000;
    int64_t first = start + m->g * interval / o->groups;
    for (long long k = 0; m->assignment && !stop; k++) {
        int64_t due = first + k * interval;
        if (due >= commit_end) break;
        for (;;) {
            int64_t wait = due - now_ns();
            if (wait <= 0) break;
            if (wait >= 1000000) {
                serve(m, wait / 1000000 > 100 ? 100 : (int)(wait / 1000000));
            } else {
                sleep_until(due);
                break;
            }
        }
        rd_kafka_topic_partition_list_t *offsets = rd_kafka_topic_partition_list_copy(m->assignment);
        for (int i = 0; i < offsets->cnt; i++) offsets->elems[i].offset = k + 1;
        int64_t t0 = now_ns();
        rd_kafka_resp_err_t e = rd_kafka_commit(m->rk, offsets, 0);
        int64_t t1 = now_ns();
        for (int i = 0; i < offsets->cnt && !e; i++) e = offsets->elems[i].err;
        rd_kafka_topic_partition_list_destroy(offsets);
        if (due < commit_measure_from) continue;
        m->commits++;
        if (t0 - due >= interval) m->late++;
        if (e) {
            m->failed++;
            if (!m->first_error) m->first_error = rd_kafka_err2str(e);
        } else {
            lat_add(&m->lat, t1 - t0);
        }
    }
    /* The list holds references to the partitions: rd_kafka_destroy would
     * wait for them forever. */
    if (m->assignment) rd_kafka_topic_partition_list_destroy(m->assignment);
    m->assignment = NULL;
    rd_kafka_consumer_close(m->rk);
    rd_kafka_destroy(m->rk);
    return NULL;
}

/* Java's String.hashCode over an ASCII name, as Kafka picks a group's
 * __consumer_offsets partition. */
static int offsets_partition(const char *group, int partitions) {
    uint32_t h = 0;
    for (const char *c = group; *c; c++) h = 31 * h + (uint32_t)(unsigned char)*c;
    int32_t s = (int32_t)h;
    return (s == INT32_MIN ? 0 : abs(s)) % partitions;
}

static void group_name(char *out, size_t n, const struct options *o, long long g) {
    snprintf(out, n, "commit-%lld", o->group_base + g);
}

static int commit(const struct options *o) {
    if (o->groups <= 0) die("%s", "commit needs --groups");
    if (o->interval_ms <= 0) die("%s", "--interval-ms must be positive");
    double u0, s0;
    double cpu0 = cpu_seconds(&u0, &s0);
    static const char *const defaults[][2] = {
        {"enable.auto.commit", "false"},
        {"auto.offset.reset", "earliest"},
    };
    struct member *members = calloc((size_t)o->groups, sizeof *members);
    if (!members) die("%s", "out of memory");
    int64_t t0 = now_ns();
    join_deadline = t0 + (int64_t)o->timeout_ms * 1000000;
    for (long long g = 0; g < o->groups; g++) {
        struct member *m = &members[g];
        m->o = o;
        m->g = g;
        rd_kafka_conf_t *conf = config(o, defaults, 2);
        char group[64];
        group_name(group, sizeof group, o, g);
        set(conf, "group.id", group);
        /* One bootstrap address each, the brokers' share alike. */
        set(conf, "bootstrap.servers", o->bootstraps[(o->group_base + g) % o->n_bootstraps]);
        rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
        rd_kafka_conf_set_opaque(conf, m);
        char err[512];
        m->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
        if (!m->rk) die("cannot create a consumer: %s", err);
        rd_kafka_poll_set_consumer(m->rk);
        rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(topics, o->topics[0], RD_KAFKA_PARTITION_UA);
        rd_kafka_resp_err_t e = rd_kafka_subscribe(m->rk, topics);
        rd_kafka_topic_partition_list_destroy(topics);
        if (e) die("cannot subscribe: %s", rd_kafka_err2str(e));
        m->thread = spawn(member_run, m);
    }
    while (__atomic_load_n(&joined, __ATOMIC_SEQ_CST) < o->groups && now_ns() < join_deadline && !stop)
        sleep_until(now_ns() + 10000000);
    long long n_joined = __atomic_load_n(&joined, __ATOMIC_SEQ_CST);
    double join_s = (double)(now_ns() - t0) / 1e9;
    if (n_joined < o->groups)
        fprintf(stderr, "rill-load: %lld of %lld groups joined in %.1f s\n", n_joined, o->groups, join_s);
    wait_go(o);
    int64_t start = now_ns() + 100000000;
    commit_measure_from = start + (int64_t)(o->warmup_seconds * 1e9);
    commit_end = commit_measure_from + (int64_t)(o->seconds * 1e9);
    __atomic_store_n(&commit_start, start, __ATOMIC_SEQ_CST);
    sleep_until(commit_measure_from);
    phase("measure");
    sleep_until(commit_end);
    phase("end");

    /* Which broker coordinates each group: the leader of its partition. */
    rd_kafka_t *rk;
    const struct rd_kafka_metadata *md = topic_metadata(o, "__consumer_offsets", &rk);
    const rd_kafka_metadata_topic_t *t = &md->topics[0];
    int *coordinated = calloc((size_t)md->broker_cnt, sizeof *coordinated);
    for (long long g = 0; g < o->groups; g++) {
        char group[64];
        group_name(group, sizeof group, o, g);
        int p = offsets_partition(group, t->partition_cnt);
        for (int i = 0; i < t->partition_cnt; i++) {
            if (t->partitions[i].id != p) continue;
            for (int b = 0; b < md->broker_cnt; b++) coordinated[b] += md->brokers[b].id == t->partitions[i].leader;
        }
    }

    struct latencies lat = {0};
    long long commits = 0, failed = 0, late = 0;
    const char *first_error = NULL;
    for (long long g = 0; g < o->groups; g++) {
        struct member *m = &members[g];
        pthread_join(m->thread, NULL);
        commits += m->commits;
        failed += m->failed;
        late += m->late;
        if (!first_error) first_error = m->first_error;
        lat_merge(&lat, &m->lat);
    }
    double u1, s1;
    double cpu1 = cpu_seconds(&u1, &s1);
    qsort(lat.us, (size_t)lat.n, sizeof *lat.us, by_value);
    printf("commit: %lld groups joined in %.1f s; %lld commits (%lld failed, %lld late): p50 %.2f ms, p99 %.2f ms, "
           "p99.9 %.2f ms\n",
           n_joined, join_s, commits, failed, late, lat_ms(&lat, 0.5), lat_ms(&lat, 0.99), lat_ms(&lat, 0.999));
    printf("{\"mode\":\"commit\",\"groups\":%lld,\"joined\":%lld,\"join_s\":%.3f,\"commits\":%lld,\"failed\":%lld,"
           "\"late\":%lld,\"seconds\":%.3f,\"commits_per_s\":%.1f,",
           o->groups, n_joined, join_s, commits, failed, late, o->seconds,
           o->seconds > 0 ? (double)commits / o->seconds : 0);
    lat_report(o, &lat);
    printf(",\"coordinators\":[");
    for (int b = 0; b < md->broker_cnt; b++)
        printf("%s{\"broker\":%d,\"groups\":%d}", b ? "," : "", md->brokers[b].id, coordinated[b]);
    printf("],\"cpu_user_s\":%.3f,\"cpu_sys_s\":%.3f,\"cpu_s\":%.3f}\n", u1 - u0, s1 - s0, cpu1 - cpu0);
    rd_kafka_metadata_destroy(md);
    rd_kafka_destroy(rk);
    if (failed || n_joined < o->groups)
        fprintf(stderr, "rill-load: %lld of %lld commits failed (%s)\n", failed, commits,
                first_error ? first_error : "-");
    return failed || n_joined < o->groups;
}

int main(int argc, char **argv) {
    struct options o;
    parse(argc, argv, &o);
    /* No SA_RESTART: a signal also ends a wait on standard input. */
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    if (!strcmp(o.mode, "produce")) return produce(&o);
    if (!strcmp(o.mode, "consume")) return consume(&o);
    if (!strcmp(o.mode, "leaders")) return leaders(&o);
    if (!strcmp(o.mode, "clients")) return clients(&o);
    if (!strcmp(o.mode, "commit")) return commit(&o);
    usage();
    return 2;
}
