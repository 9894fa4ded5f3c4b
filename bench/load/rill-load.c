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
 * Both also print one JSON line last with the same figures and the
 * client's own CPU time (user and system seconds, getrusage), so a run can
 * report client CPU next to broker CPU.
 *
 * Build: bench/load/build.sh (gcc and librdkafka-dev from Debian).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define MAX_CONFIG 64
#define MAX_TOPICS 256

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
            "       rill-load leaders --bootstrap B --topic T [--not BROKER]\n");
    exit(2);
}

static long long number(const char *flag, const char *v) {
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (errno || *end || end == v) die("%s needs a number", flag);
    return n;
}

static void parse(int argc, char **argv, struct options *o) {
    memset(o, 0, sizeof *o);
    o->throughput = -1;
    o->timeout_ms = 30000;
    o->not_broker = -1;
    if (argc < 2) usage();
    o->mode = argv[1];
    for (int i = 2; i < argc; i++) {
        const char *f = argv[i];
        if (!strcmp(f, "--keys")) {
            o->keys = 1;
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
        else if (!strcmp(f, "-X")) {
            char *eq = strchr(v, '=');
            if (!eq || o->n_config == MAX_CONFIG) die("-X takes key=value (at most 64): %s", v);
            *eq = '\0';
            o->config[o->n_config][0] = v;
            o->config[o->n_config][1] = eq + 1;
            o->n_config++;
        } else die("unknown option %s", f);
    }
    if (!o->bootstrap || !o->topic || (o->records <= 0 && strcmp(o->mode, "leaders"))) usage();
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
    rd_kafka_flush(rk, 120000);
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

int main(int argc, char **argv) {
    struct options o;
    parse(argc, argv, &o);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    if (!strcmp(o.mode, "produce")) return produce(&o);
    if (!strcmp(o.mode, "consume")) return consume(&o);
    if (!strcmp(o.mode, "leaders")) return leaders(&o);
    usage();
    return 2;
}
