#!/usr/bin/env python3
"""Side-by-side benchmark of Rill and Apache Kafka on this machine.

Run through bench/run.sh, which installs what this needs and builds Rill
(bench/README.md). For each variant (Kafka at its defaults, Kafka with
flush.messages=1, Rill with flush=replicated, Rill with flush=fsync, and
Kafka and Rill with TLS and SASL SCRAM-SHA-512 on their client listeners,
Kafka and Rill with transactional producers and read_committed consumers),
and each repetition, it starts a fresh 3-broker cluster on loopback (Kafka: KRaft with
one controller node; Rill: the standalone controller), measures every broker's
start-up, then runs the same clients against it:

  1. a warm-up run of kafka-producer-perf-test, whose rate sizes the next run
     so that it lasts at least --seconds;
  2. kafka-producer-perf-test (acks=all, 1 KiB records, no throttle): records/s,
     MB/s, latency percentiles; the brokers' CPU time over this run;
  3. kafka-consumer-perf-test over what the topic retained;
  4. bench/java/BenchTool e2e: end-to-end latency at a fixed rate;
  5. peak RSS (VmHWM) of every broker;

then stops the cluster and removes its data. The transactional variants run
the same steps with a transactional id on every producer (commits every
--txn-duration-ms in the perf tool, every --e2e-commit-ms in e2e) and
isolation.level=read_committed on every consumer. Figures are medians over the
repetitions. It writes results.json, report.md and chart.png to --out.

With --compare-consumer A,B it instead compares two Rill builds (directories
holding rill-broker and rill-controller): one data set is produced once, then
each build in turn serves kafka-consumer-perf-test over it, --reps rounds,
alternating, with the brokers' and the client's CPU time per run.

Nothing here asserts on a figure: the program prints what it measured.
"""

import argparse
import datetime
import json
import math
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid

CLK_TCK = os.sysconf("SC_CLK_TCK")
RECORD_SIZE = 1024
PARTITIONS = 6
RF = 3
# The estimate of what this 2-core loopback machine can move at RF=3.
CEILING_MB_S = 650.0

VARIANTS = {
    "kafka": {"system": "kafka", "label": "Kafka (defaults)", "short": "Kafka", "topic": {}},
    "kafka-flush": {
        "system": "kafka",
        "label": "Kafka flush.messages=1",
        "short": "Kafka flush=1",
        "topic": {"flush.messages": "1"},
    },
    "rill": {
        "system": "rill",
        "label": "Rill flush=replicated",
        "short": "Rill",
        "topic": {"flush": "replicated"},
    },
    "rill-fsync": {
        "system": "rill",
        "label": "Rill flush=fsync",
        "short": "Rill fsync",
        "topic": {"flush": "fsync"},
    },
    # Clients over SASL_SSL (TLS, SCRAM-SHA-512) with the same certificates
    # and users on both (compat/security-lib.sh); brokers talk to each other
    # in plaintext on both (Rill's replication has no TLS yet).
    "kafka-tls": {
        "system": "kafka",
        "security": "sasl_ssl",
        "label": "Kafka TLS+SCRAM",
        "short": "Kafka TLS",
        "topic": {},
    },
    "rill-tls": {
        "system": "rill",
        "security": "sasl_ssl",
        "label": "Rill TLS+SCRAM",
        "short": "Rill TLS",
        "topic": {"flush": "replicated"},
    },
    # Transactional producers (a transactional id, commits on a fixed
    # interval) and read_committed consumers; topics as in `kafka` and `rill`.
    "kafka-txn": {
        "system": "kafka",
        "txn": True,
        "label": "Kafka transactional",
        "short": "Kafka txn",
        "topic": {},
    },
    "rill-txn": {
        "system": "rill",
        "txn": True,
        "label": "Rill transactional",
        "short": "Rill txn",
        "topic": {"flush": "replicated"},
    },
}

# The variants a run measures unless --variants says otherwise. The smoke
# form (the project's test command runs it) leaves out the transactional
# ones to keep its length.
FULL_VARIANTS = "kafka,kafka-flush,rill,rill-fsync,kafka-tls,rill-tls,kafka-txn,rill-txn"
SMOKE_VARIANTS = "kafka,kafka-flush,rill,rill-fsync,kafka-tls,rill-tls"

# Transactional variants: kafka-producer-perf-test commits a transaction at
# the first send at least this long after the transaction began
# (--transaction-duration-ms); at ~50-100 MB/s that is a few thousand 1 KiB
# records per transaction, over all partitions.
TXN_DURATION_MS = 100
# BenchTool e2e commits at the first send due at least this long after the
# transaction began: at 1000 records/s, about 10 records per transaction.
E2E_COMMIT_MS = 10

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def security_of(variant):
    return VARIANTS[variant].get("security", "plaintext")


def is_txn(variant):
    return VARIANTS[variant].get("txn", False)


def secure_setup(workdir):
    """A CA, a broker certificate, Rill's credentials file and the clients'
    configuration (SCRAM-SHA-512 as `admin`) in `workdir`/pki."""
    pki = os.path.join(workdir, "pki")
    subprocess.run(
        ["bash", "-c", '. "$1/compat/security-lib.sh" && make_pki "$2" && rill_credentials "$2/credentials"',
         "_", REPO, pki],
        check=True,
    )
    client = os.path.join(pki, "client.properties")
    with open(client, "w") as f:
        f.write(
            "security.protocol=SASL_SSL\n"
            "sasl.mechanism=SCRAM-SHA-512\n"
            'sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required '
            'username="admin" password="admin-secret";\n'
            "ssl.truststore.type=PEM\n"
            f"ssl.truststore.location={pki}/ca.crt\n"
        )
    return pki, client


def shell_lines(function):
    """The lines a compat/security-lib.sh function prints."""
    out = subprocess.run(["bash", "-c", '. "$1/compat/security-lib.sh" && ' + function, "_", REPO],
                         check=True, stdout=subprocess.PIPE)
    return out.stdout.decode().splitlines()

# What both systems' topics get besides their flush setting. Retention keeps
# the disk bounded during >= 30 s runs at hundreds of MB/s at RF 3; both
# systems check it every second and delete at once.
RETENTION_CHECK_MS = 1000

# Kafka's own scripts' JVM settings: kafka-server-start.sh (heap) and
# kafka-run-class.sh (KAFKA_JVM_PERFORMANCE_OPTS); the perf-test scripts give
# the tools -Xmx512M.
KAFKA_SERVER_HEAP = ["-Xmx1G", "-Xms1G"]
JVM_PERF_OPTS = [
    "-server",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-XX:MaxInlineLevel=15",
    "-Djava.awt.headless=true",
]
TOOL_HEAP = ["-Xmx512M"]

started_at = time.monotonic()


def say(msg):
    print(f"[bench +{time.monotonic() - started_at:6.0f}s] {msg}", flush=True)


# --------------------------------------------------------------------------
# /proc readings


def proc_cpu_seconds(pid):
    """utime + stime of a process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_hwm_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def machine_busy_seconds():
    """CPU time spent by everything on the machine (all cores), seconds."""
    with open("/proc/stat") as f:
        parts = f.readline().split()[1:]
    user, nice, system, idle, iowait, irq, softirq, steal = (int(x) for x in parts[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def disk_written_bytes(path):
    """Bytes written so far to the block device holding `path` (its
    /sys/dev/block stat), or None when it has none (tmpfs)."""
    dev = os.stat(path).st_dev
    try:
        with open(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}/stat") as f:
            # Field 7 counts 512-byte sectors written.
            return int(f.read().split()[6]) * 512
    except (OSError, IndexError, ValueError):
        return None


def children_cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def fmt_mb_s(v):
    return "–" if v is None else f"{v:.0f} MB/s"


def loadavg():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


def port_free(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


# --------------------------------------------------------------------------
# Processes


class Proc:
    """A server process started in its own session, output to files."""

    live = []

    def __init__(self, name, argv, workdir, env=None, stdout_name=None):
        self.name = name
        self.log = os.path.join(workdir, f"{name}.log")
        self.out = os.path.join(workdir, stdout_name or f"{name}.log")
        self.argv, self.workdir, self.env, self.stdout_name = argv, workdir, env, stdout_name
        out = open(self.out, "ab")
        # A restarted process appends: its readiness is looked for after this.
        self.start_pos = out.tell()
        err = out if self.out == self.log else open(self.log, "ab")
        self.launched = time.monotonic()
        self.popen = subprocess.Popen(
            argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env, start_new_session=True
        )
        out.close()
        if err is not out:
            err.close()
        self.pid = self.popen.pid
        Proc.live.append(self)

    def alive(self):
        return self.popen.poll() is None

    def wait_for(self, needle, timeout):
        """Polls the stdout file every 5 ms for `needle`; returns the seconds
        from launch until it appeared (None after a timeout or an exit)."""
        pos = self.start_pos
        buf = b""
        deadline = self.launched + timeout
        needle = needle.encode()
        with open(self.out, "rb") as f:
            while True:
                f.seek(pos)
                chunk = f.read()
                if chunk:
                    pos += len(chunk)
                    buf = buf[-len(needle) :] + chunk
                    if needle in buf:
                        return time.monotonic() - self.launched
                    # Keep the whole line that may hold fields after the needle.
                    buf = buf[-4096:]
                if not self.alive() or time.monotonic() > deadline:
                    return None
                time.sleep(0.005)

    def stop(self, timeout=30):
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            say(f"{self.name} still running {timeout}s after SIGTERM: SIGKILL")
            self.popen.kill()
            self.popen.wait()
        if self in Proc.live:
            Proc.live.remove(self)

    @classmethod
    def kill_all(cls):
        for p in list(cls.live):
            if p.alive():
                p.popen.kill()
                p.popen.wait()
        cls.live.clear()


def tail(path, n=30):
    try:
        with open(path, "rb") as f:
            return b"".join(f.readlines()[-n:]).decode(errors="replace")
    except OSError:
        return ""


# --------------------------------------------------------------------------
# Clusters


class Cluster:
    """Three brokers and a controller as processes in a work directory;
    `base` is the first port the subclass's nodes listen on."""

    def __init__(self, cfg, workdir, base, security="plaintext"):
        self.cfg = cfg
        self.dir = workdir
        self.base = base
        self.brokers = []
        self.controller = None
        self.bootstrap = None
        self.security = security
        # Client properties for every tool (None: plaintext).
        self.client_config = None
        self.pki = None
        if security == "sasl_ssl":
            os.makedirs(workdir, exist_ok=True)
            self.pki, self.client_config = secure_setup(workdir)

    ready_line = None  # what a broker prints once it serves (subclasses)

    def restart_broker(self, i):
        """Starts broker `i` again on its data after it stopped or was
        killed; returns the seconds from launch until it is ready."""
        old = self.brokers[i]
        proc = Proc(old.name, old.argv, old.workdir, old.env, old.stdout_name)
        took = proc.wait_for(self.ready_line, self.cfg.start_timeout)
        if took is None:
            raise RuntimeError(f"{old.name} did not start again: {tail(proc.log)}")
        if old in Proc.live:
            Proc.live.remove(old)
        self.brokers[i] = proc
        return took

    def stop(self):
        """SIGTERM to every broker at once, then waits for each (SIGKILL
        after --stop-timeout), then the controller."""
        for p in self.brokers:
            if p.alive():
                p.popen.send_signal(signal.SIGTERM)
        for p in self.brokers:
            p.stop(self.cfg.stop_timeout)
        if self.controller:
            self.controller.stop(self.cfg.stop_timeout)


class KafkaCluster(Cluster):
    """Apache Kafka in KRaft mode: one controller node (id 100) and three
    brokers (0..2), started one after the other, as kafka-server-start.sh
    would start them (heap and JVM options included)."""

    system = "kafka"
    ready_line = "Kafka Server started"

    def __init__(self, cfg, workdir, security="plaintext"):
        super().__init__(cfg, workdir, cfg.kafka_port, security)
        self.bootstrap = ",".join(f"127.0.0.1:{self.base + i}" for i in range(3))

    def props(self, node):
        nd = os.path.join(self.dir, f"node-{node}")
        voters = f"100@127.0.0.1:{self.base + 50}"
        secure = self.security == "sasl_ssl"
        inter = "INTERNAL" if secure else "PLAINTEXT"
        protocols = ("SASL_SSL:SASL_SSL,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT" if secure
                     else "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT")
        if node == 100:
            roles = "controller"
            listeners = f"CONTROLLER://127.0.0.1:{self.base + 50}"
            advertised = ""
        elif secure:
            roles = "broker"
            listeners = f"SASL_SSL://127.0.0.1:{self.base + node},INTERNAL://127.0.0.1:{self.base + 20 + node}"
            advertised = f"advertised.listeners={listeners}\n"
        else:
            roles = "broker"
            listeners = f"PLAINTEXT://127.0.0.1:{self.base + node}"
            advertised = f"advertised.listeners={listeners}\n"
        security = ""
        if secure:
            scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            security = f"""sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config={scram}
ssl.keystore.type=PEM
ssl.keystore.location={self.pki}/broker.pem
ssl.truststore.type=PEM
ssl.truststore.location={self.pki}/ca.crt
"""
        return f"""process.roles={roles}
node.id={node}
controller.quorum.voters={voters}
controller.listener.names=CONTROLLER
listeners={listeners}
{advertised}inter.broker.listener.name={inter}
listener.security.protocol.map={protocols}
{security}log.dirs={nd}/data
auto.create.topics.enable=false
offsets.topic.replication.factor=3
offsets.topic.num.partitions=12
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
group.initial.rebalance.delay.ms=0
# Retention as on the Rill side: checked every second, files removed at once.
log.retention.check.interval.ms={RETENTION_CHECK_MS}
log.segment.delete.delay.ms=0
"""

    def java(self, node):
        nd = os.path.join(self.dir, f"node-{node}")
        return (
            ["java"]
            + KAFKA_SERVER_HEAP
            + JVM_PERF_OPTS
            + [
                "-Dorg.slf4j.simpleLogger.defaultLogLevel=info",
                "-Dorg.slf4j.simpleLogger.showDateTime=true",
                "-cp",
                self.cfg.classpath,
                "kafka.Kafka",
                os.path.join(nd, "server.properties"),
            ]
        )

    def start(self):
        scram = shell_lines("kafka_scram_format_args") if self.security == "sasl_ssl" else []
        for port in [self.base + i for i in range(3)] + [self.base + 20 + i for i in range(3)] + [self.base + 50]:
            if not port_free(port):
                raise RuntimeError(f"port {port} is in use (--kafka-port)")
        nodes = [100, 0, 1, 2]
        cluster_id = (
            __import__("base64").urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        )
        formats = []
        for n in nodes:
            nd = os.path.join(self.dir, f"node-{n}")
            os.makedirs(os.path.join(nd, "data"), exist_ok=True)
            with open(os.path.join(nd, "server.properties"), "w") as f:
                f.write(self.props(n))
            formats.append(
                subprocess.Popen(
                    ["java", "-Xmx256m", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-cp",
                     self.cfg.classpath, "kafka.tools.StorageTool", "format",
                     f"--cluster-id={cluster_id}", "--config", os.path.join(nd, "server.properties")] + scram,
                    stdout=open(os.path.join(nd, "format.log"), "wb"),
                    stderr=subprocess.STDOUT,
                )
            )
        for n, p in zip(nodes, formats):
            if p.wait() != 0:
                raise RuntimeError(f"formatting Kafka node {n} failed: {tail(os.path.join(self.dir, f'node-{n}', 'format.log'))}")
        startups = []
        for n in nodes:
            proc = Proc(f"node-{n}", self.java(n), os.path.join(self.dir, f"node-{n}"))
            took = proc.wait_for("Kafka Server started", self.cfg.start_timeout)
            if took is None:
                raise RuntimeError(f"Kafka node {n} did not start: {tail(proc.log)}")
            if n == 100:
                self.controller = proc
                say(f"kafka controller ready in {took:.2f}s")
            else:
                self.brokers.append(proc)
                startups.append(took)
                say(f"kafka broker {n} ready in {took:.2f}s")
        return startups


class RillCluster(Cluster):
    """Rill: the standalone controller (file store) and three brokers,
    started one after the other, with their defaults."""

    system = "rill"
    ready_line = "RILL_READY"

    def __init__(self, cfg, workdir, security="plaintext"):
        super().__init__(cfg, workdir, cfg.rill_port, security)

    def start(self):
        bin_dir = self.cfg.rill_bin
        ports = [self.base, self.base + 1] + [self.base + 10 + 10 * i + k for i in range(3) for k in range(4)]
        for port in ports:
            if not port_free(port):
                raise RuntimeError(f"port {port} is in use (--rill-port)")
        os.makedirs(self.dir, exist_ok=True)
        self.controller = Proc(
            "controller",
            [os.path.join(bin_dir, "rill-controller"),
             "--metadata-file", os.path.join(self.dir, "controller", "metadata.json"),
             "--listen-addr", f"127.0.0.1:{self.base}",
             "--http-addr", f"127.0.0.1:{self.base + 1}"],
            self.dir,
            stdout_name="controller.ready",
        )
        took = self.controller.wait_for("RILL_READY", self.cfg.start_timeout)
        if took is None:
            raise RuntimeError(f"rill controller did not start: {tail(self.controller.log)}")
        say(f"rill controller ready in {took:.3f}s")
        startups = []
        kafka = []
        for i in range(3):
            p = self.base + 10 + 10 * i
            proc = Proc(
                f"broker-{i}",
                [os.path.join(bin_dir, "rill-broker"),
                 "--broker-id", str(i),
                 "--data-dir", os.path.join(self.dir, f"broker-{i}"),
                 "--controller-addr", f"127.0.0.1:{self.base}",
                 "--listen-addr", f"127.0.0.1:{p}",
                 "--http-addr", f"127.0.0.1:{p + 1}",
                 "--replication-addr", f"127.0.0.1:{p + 2}",
                 "--kafka-addr", f"127.0.0.1:{p + 3}",
                 "--retention-check-interval-ms", str(RETENTION_CHECK_MS),
                 "--group-initial-rebalance-delay-ms", "0"]
                + ([] if self.security != "sasl_ssl" else
                   ["--kafka-tls-cert-file", os.path.join(self.pki, "broker.crt"),
                    "--kafka-tls-key-file", os.path.join(self.pki, "broker.key"),
                    "--kafka-sasl-mechanisms", "SCRAM-SHA-512",
                    "--sasl-credentials-file", os.path.join(self.pki, "credentials")]),
                self.dir,
                stdout_name=f"broker-{i}.ready",
            )
            took = proc.wait_for("RILL_READY", self.cfg.start_timeout)
            if took is None:
                raise RuntimeError(f"rill broker {i} did not start: {tail(proc.log)}")
            self.brokers.append(proc)
            startups.append(took)
            with open(proc.out) as f:
                line = [ln for ln in f if ln.startswith("RILL_READY")][-1]
            kafka.append(re.search(r" kafka=(\S+)", line).group(1))
            say(f"rill broker {i} ready in {took * 1000:.1f} ms")
        self.bootstrap = ",".join(kafka)
        return startups



# --------------------------------------------------------------------------
# Client tools


def with_config(args, option, client_config):
    """`args` plus `option FILE` when the cluster needs client properties."""
    return args + ([option, client_config] if client_config else [])


def run_tool(argv, shown, log, timeout, ok=(0,)):
    """Runs a client program; returns its stdout. Its stderr goes to `log`
    (after the command line, `shown` of its last arguments). An exit status
    not in `ok` raises."""
    with open(log, "ab") as err:
        err.write(("\n$ " + " ".join(argv[-shown:]) + "\n").encode())
        err.flush()
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=err, timeout=timeout)
    out = r.stdout.decode(errors="replace")
    with open(log, "a") as f:
        f.write(out)
    if r.returncode not in ok:
        raise RuntimeError(f"{os.path.basename(argv[0])} {argv[1]} exited {r.returncode}: {tail(log, 15)}")
    return out


def java_tool(cfg, main, args, log, timeout):
    """Runs a Java client program; returns its stdout. Its stderr goes to `log`."""
    argv = (
        ["java"] + TOOL_HEAP + JVM_PERF_OPTS
        + ["-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-cp", cfg.tool_classpath, main]
        + args
    )
    return run_tool(argv, len(args) + 1, log, timeout)


def uses_rill_load(cfg, client_config, txn_id=None):
    """Whether a producer or consumer run uses rill-load (bench/load): the
    default client, for plaintext runs without transactions. TLS/SASL and
    transactional runs keep Kafka's Java perf tools (their client settings
    are Java properties)."""
    return cfg.client == "rdkafka" and not client_config and not txn_id


def rill_load(cfg, mode, args, log, timeout, ok=(0,)):
    """Runs rill-load; returns its stdout (the perf-tool lines, then JSON).
    An exit status not in `ok` raises (1: some records failed)."""
    argv = [cfg.rill_load, mode] + args
    return run_tool(argv, len(argv), log, timeout, ok)


def create_topic(cfg, bootstrap, topic, config, log, client_config=None, partitions=None):
    # Through the Admin API: kafka-topics refuses config names Kafka does not
    # know (Rill's `flush`).
    args = ["create", "--bootstrap", bootstrap, "--topic", topic, "--partitions", str(partitions or PARTITIONS),
            "--replication-factor", str(RF), "--config", ",".join(f"{k}={v}" for k, v in config.items())]
    java_tool(cfg, "BenchTool", with_config(args, "--client-config", client_config), log, 120)


PERF_RE = re.compile(
    r"(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg latency, "
    r"([\d.]+) ms max latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th, (\d+) ms 99.9th"
)


def producer_perf(cfg, bootstrap, topic, records, log, client_config=None, txn_id=None):
    """kafka-producer-perf-test; with `txn_id`, transactional (a transaction
    per --txn-duration-ms, the last one committed before it exits)."""
    txn = [] if not txn_id else ["--transactional-id", txn_id,
                                 "--transaction-duration-ms", str(cfg.txn_duration_ms)]
    t0 = time.monotonic()
    if uses_rill_load(cfg, client_config, txn_id):
        client = "rill-load"
        out = rill_load(
            cfg, "produce",
            ["--bootstrap", bootstrap, "--topic", topic, "--records", str(records),
             "--record-size", str(RECORD_SIZE), "--throughput", "-1"],
            log, timeout=cfg.tool_timeout)
    else:
        client = "java"
        out = java_tool(
            cfg,
            "org.apache.kafka.tools.ProducerPerformance",
            with_config(
                ["--topic", topic, "--num-records", str(records), "--record-size", str(RECORD_SIZE),
                 "--throughput", "-1", "--bootstrap-server", bootstrap,
                 "--command-property", "acks=all"] + txn,
                "--command-config", client_config),
            log,
            timeout=cfg.tool_timeout,
        )
    tool_wall = time.monotonic() - t0
    m = None
    for line in out.splitlines():
        m = PERF_RE.search(line) or m
    if not m:
        raise RuntimeError(f"no summary line in ProducerPerformance output: {out[-500:]}")
    sent, rps = int(m.group(1)), float(m.group(2))
    return {
        "records": sent,
        "records_per_s": rps,
        "mb_per_s": rps * RECORD_SIZE / 1e6,
        "seconds": sent / rps if rps else 0.0,
        "lat_avg_ms": float(m.group(4)),
        "lat_max_ms": float(m.group(5)),
        "lat_p50_ms": int(m.group(6)),
        "lat_p95_ms": int(m.group(7)),
        "lat_p99_ms": int(m.group(8)),
        "lat_p999_ms": int(m.group(9)),
        # The tool's process from launch to exit (JVM start-up included).
        "tool_wall_s": tool_wall,
        "client": client,
    }


def consumer_perf(cfg, bootstrap, topic, records, log, client_config=None, read_committed=False):
    isolation = ["--command-property", "isolation.level=read_committed"] if read_committed else []
    group = f"bench-{uuid.uuid4().hex[:8]}"
    if uses_rill_load(cfg, client_config, read_committed or None):
        client = "rill-load"
        out = rill_load(
            cfg, "consume",
            ["--bootstrap", bootstrap, "--topic", topic, "--records", str(records),
             "--timeout", str(CONSUMER_IDLE_TIMEOUT_MS), "--group", group],
            log, timeout=cfg.tool_timeout)
    else:
        client = "java"
        out = java_tool(
            cfg,
            "org.apache.kafka.tools.ConsumerPerformance",
            with_config(
                ["--bootstrap-server", bootstrap, "--topic", topic, "--num-records", str(records),
                 "--timeout", str(CONSUMER_IDLE_TIMEOUT_MS), "--group", group] + isolation,
                "--command-config", client_config),
            log,
            timeout=cfg.tool_timeout,
        )
    lines = [ln for ln in out.splitlines() if ln.strip()]
    header_i = next(i for i, ln in enumerate(lines) if ln.startswith("start.time"))
    names = [x.strip() for x in lines[header_i].split(",")]
    values = [x.strip() for x in lines[header_i + 1].split(",")]
    row = dict(zip(names, values))
    n = int(row["data.consumed.in.nMsg"])
    fetch_ms = float(row["fetch.time.ms"])
    rps = float(row["fetch.nMsg.sec"])
    return {
        "records": n,
        "expected": records,
        "fetch_seconds": fetch_ms / 1000,
        "rebalance_ms": float(row["rebalance.time.ms"]),
        "records_per_s": rps,
        "mb_per_s": rps * RECORD_SIZE / 1e6,
        "client": client,
    }


# kafka-consumer-perf-test gives up after this long without a record
# (--timeout); its fetch time then includes the wait.
CONSUMER_IDLE_TIMEOUT_MS = 30000


def count_records(cfg, bootstrap, topic, log, client_config=None):
    args = with_config(["count", "--bootstrap", bootstrap, "--topic", topic], "--client-config", client_config)
    out = java_tool(cfg, "BenchTool", args, log, 120)
    return int(out.strip().splitlines()[-1])


def e2e_latency(cfg, bootstrap, topic, log, client_config=None, txn_id=None):
    txn = [] if not txn_id else ["--transactional-id", txn_id, "--commit-interval-ms", str(cfg.e2e_commit_ms)]
    out = java_tool(
        cfg,
        "BenchTool",
        with_config(
            ["e2e", "--bootstrap", bootstrap, "--topic", topic, "--rate", str(cfg.e2e_rate),
             "--seconds", str(cfg.e2e_seconds), "--warmup-seconds", str(cfg.e2e_warmup),
             "--record-size", str(RECORD_SIZE)] + txn,
            "--client-config", client_config),
        log,
        timeout=cfg.e2e_seconds + cfg.e2e_warmup + 120,
    )
    return json.loads(out.strip().splitlines()[-1])


# --------------------------------------------------------------------------
# One repetition


def topic_config(cfg, variant):
    c = {
        "min.insync.replicas": "2",
        "retention.bytes": str(cfg.retention_bytes),
        "segment.bytes": str(cfg.segment_bytes),
    }
    c.update(VARIANTS[variant]["topic"])
    return c


def size_run(records_per_s, seconds):
    """Records for a producer run of `seconds` at `records_per_s`, rounded up."""
    return int(math.ceil(records_per_s * seconds / 10000) * 10000)


def measured_producer_run(cfg, cluster, bootstrap, topic, records, log, txn_id=None):
    """One producer run with the brokers' and the machine's CPU time around it."""
    pids = [p.pid for p in cluster.brokers]
    cpu0 = [proc_cpu_seconds(pid) for pid in pids]
    ctl0 = proc_cpu_seconds(cluster.controller.pid)
    busy0 = machine_busy_seconds()
    kids0 = children_cpu_seconds()
    disk0 = disk_written_bytes(cfg.work)
    load_before = loadavg()
    t0 = time.monotonic()
    prod = producer_perf(cfg, bootstrap, topic, records, log, cluster.client_config, txn_id)
    wall = time.monotonic() - t0
    disk1 = disk_written_bytes(cfg.work)
    cpu1 = [proc_cpu_seconds(pid) for pid in pids]
    ctl1 = proc_cpu_seconds(cluster.controller.pid)
    busy1 = machine_busy_seconds()
    kids1 = children_cpu_seconds()
    broker_cpu = sum(cpu1) - sum(cpu0)
    client_cpu = kids1 - kids0
    gb = prod["records"] * RECORD_SIZE / 1e9
    foreign = (busy1 - busy0) - broker_cpu - (ctl1 - ctl0) - client_cpu
    prod.update(
        {
            "broker_cpu_s": broker_cpu,
            "broker_cpu_s_per_gb": broker_cpu / gb if gb else 0.0,
            "client_cpu_s": client_cpu,
            "wall_s": wall,
            "machine_busy_s": busy1 - busy0,
            # CPU time spent outside the brokers, the controller and the
            # client over the run, as a share of the machine: other work and
            # kernel threads (page cache writeback among them).
            "foreign_cpu_share": max(0.0, foreign) / (wall * os.cpu_count()),
            # What the data directory's disk took over the run, from any
            # process (None on tmpfs): with RF=3 on one machine each
            # produced byte is written three times.
            "disk_write_mb_s": (disk1 - disk0) / 1e6 / wall if disk0 is not None and disk1 is not None else None,
            "load_before": load_before,
        }
    )
    return prod


def measure(cfg, cluster, variant, rep, logdir, prior_rate):
    """The client runs of one variant on a running cluster."""
    log = os.path.join(logdir, f"{variant}-rep{rep}.log")
    bootstrap = cluster.bootstrap
    topic = f"bench-{variant}-{rep}"
    e2e_topic = f"e2e-{variant}-{rep}"
    secure = cluster.client_config
    create_topic(cfg, bootstrap, topic, topic_config(cfg, variant), log, secure)
    create_topic(cfg, bootstrap, e2e_topic, topic_config(cfg, variant), log, secure)
    txn = is_txn(variant)
    # Transactional variants: each producer run is a producer of its own
    # transactional id. `txn_bound` adds up, over the runs on `topic`, an
    # upper bound of the transactions each made (one per --txn-duration-ms
    # of its process's life, plus the last).
    producer_runs = [0]
    txn_bound = [0]

    def produce(records, measured=False):
        txn_id = f"{topic}-producer-{producer_runs[0]}" if txn else None
        producer_runs[0] += 1
        if measured:
            p = measured_producer_run(cfg, cluster, bootstrap, topic, records, log, txn_id)
        else:
            p = producer_perf(cfg, bootstrap, topic, records, log, secure, txn_id)
        if txn:
            txn_bound[0] += math.ceil(p["tool_wall_s"] * 1000 / cfg.txn_duration_ms) + 1
        return p

    # Warm-up (JIT of the Kafka brokers and of the client): at least two
    # producer runs of --warmup-records, more until they add up to
    # --warmup-seconds (at most 4). The last one's rate, or the best
    # measured rate of an earlier repetition, sizes the measured run with a
    # margin, since Kafka is still speeding up after its warm-up.
    warm_s = 0.0
    for i in range(4):
        warm = produce(cfg.warmup_records)
        warm_s += warm["seconds"]
        if warm_s >= cfg.warmup_seconds and i >= (0 if cfg.mode == "smoke" else 1):
            break
    warm["total_seconds"] = warm_s
    rate = max(warm["records_per_s"], prior_rate)
    if cfg.records:
        records = cfg.records
    else:
        margin = 1.3 if prior_rate else 1.6
        records = size_run(rate * margin, cfg.seconds)
    say(f"{variant} rep {rep}: warm-up {warm['mb_per_s']:.0f} MB/s; producing {records} records")

    # A run that ends before --seconds (the system sped up past the
    # margin) is not reported: it is repeated, sized from its own rate.
    for attempt in range(3):
        prod = produce(records, measured=True)
        if cfg.records or prod["seconds"] >= cfg.seconds or attempt == 2:
            break
        records = size_run(prod["records_per_s"] * 1.25, cfg.seconds)
        say(f"{variant} rep {rep}: the run lasted {prod['seconds']:.1f}s < {cfg.seconds:.0f}s; again with {records} records")
    say(
        f"{variant} rep {rep}: producer {prod['mb_per_s']:.1f} MB/s, {prod['records_per_s']:.0f} rec/s over "
        f"{prod['seconds']:.1f}s, p99 {prod['lat_p99_ms']} ms, broker CPU {prod['broker_cpu_s_per_gb']:.2f} s/GB, "
        f"{prod['client']} client CPU {prod['client_cpu_s']:.1f} s, foreign CPU {prod['foreign_cpu_share'] * 100:.0f}%, "
        f"disk writes {fmt_mb_s(prod.get('disk_write_mb_s'))}"
    )

    # Retention settles within a check interval or two; then the topic holds
    # what the consumer reads.
    time.sleep(3 * RETENTION_CHECK_MS / 1000)
    # The producer run's dirty pages are written back first, so the
    # consumer run does not share the two cores with page-cache writeback
    # (which took up to half a core in the consumer runs otherwise).
    subprocess.run(["sync"], check=True)
    stored = count_records(cfg, bootstrap, topic, log, secure)
    to_read = stored
    if txn:
        # The offsets counted include the transactions' markers (control
        # records, never delivered): at most one per partition per
        # transaction. Reading that many fewer than the offsets leaves at
        # most a few thousand records unread, instead of waiting for
        # records that do not exist.
        to_read = stored - PARTITIONS * txn_bound[0]
        if to_read <= 0:
            raise RuntimeError(f"{variant}: {stored} offsets stored in {topic}, fewer than the "
                               f"{PARTITIONS * txn_bound[0]} markers its transactions may have written")
    cons = consumer_perf(cfg, bootstrap, topic, to_read, log, secure, read_committed=txn)
    cons["offsets_stored"] = stored
    if txn and cons["records"] < to_read:
        raise RuntimeError(
            f"{variant}: the read_committed consumer read {cons['records']} records of {topic}, expected at "
            f"least {to_read} ({stored} offsets stored, of which at most {PARTITIONS * txn_bound[0]} markers); "
            f"it stopped after {CONSUMER_IDLE_TIMEOUT_MS} ms without a record. Log: {log}")
    say(f"{variant} rep {rep}: consumer {cons['mb_per_s']:.1f} MB/s ({cons['records']} records in {cons['fetch_seconds']:.2f}s"
        + (", read_committed)" if txn else ")"))

    e2e = e2e_latency(cfg, bootstrap, e2e_topic, log, secure, f"{e2e_topic}-producer" if txn else None)
    say(
        f"{variant} rep {rep}: end-to-end p50 {e2e['e2e_p50_us']:.0f} µs, p99 {e2e['e2e_p99_us']:.0f} µs "
        f"({e2e['e2e_samples']} samples at {e2e['rate']}/s); ack p99 {e2e['ack_p99_us']:.0f} µs"
        + ("" if not txn else
           f"; {e2e['transactions']} transactions, commit p99 {e2e['commit_p99_us']:.0f} µs, "
           f"send lag p99 {e2e['lag_p99_us']:.0f} µs")
    )
    return {"warmup": warm, "producer": prod, "consumer": cons, "e2e": e2e}


def make_cluster(cfg, system, workdir, security="plaintext"):
    if system == "kafka":
        return KafkaCluster(cfg, workdir, security)
    return RillCluster(cfg, workdir, security)


def compare_consumer(cfg, bins):
    """Consumer throughput of two or more Rill builds over one data set."""
    log = os.path.join(cfg.out, "compare.log")
    work = os.path.join(cfg.work, "compare")
    shutil.rmtree(work, ignore_errors=True)
    records = cfg.records or 1_500_000
    runs = {b: [] for b in bins}
    produced = False
    for rnd in range(cfg.reps):
        for b in bins:
            cfg.rill_bin = b
            cluster = RillCluster(cfg, work)
            cluster.start()
            try:
                if not produced:
                    create_topic(cfg, cluster.bootstrap, "compare", topic_config(cfg, "rill"), log)
                    producer_perf(cfg, cluster.bootstrap, "compare", records, log)
                    produced = True
                stored = count_records(cfg, cluster.bootstrap, "compare", log)
                subprocess.run(["sync"], check=True)
                pids = [p.pid for p in cluster.brokers]
                cpu0 = sum(proc_cpu_seconds(p) for p in pids)
                kids0 = children_cpu_seconds()
                cons = consumer_perf(cfg, cluster.bootstrap, "compare", stored, log)
                cons["broker_cpu_s"] = sum(proc_cpu_seconds(p) for p in pids) - cpu0
                cons["client_cpu_s"] = children_cpu_seconds() - kids0
            finally:
                cluster.stop()
            runs[b].append(cons)
            say(f"round {rnd + 1} {b}: consumer {cons['mb_per_s']:.1f} MB/s ({cons['records']} records in "
                f"{cons['fetch_seconds']:.2f}s), broker CPU {cons['broker_cpu_s']:.2f}s, client CPU {cons['client_cpu_s']:.2f}s")
    shutil.rmtree(work, ignore_errors=True)
    with open(os.path.join(cfg.out, "compare.json"), "w") as f:
        json.dump(runs, f, indent=1)
    for b, rs in runs.items():
        med = lambda k: statistics.median(r[k] for r in rs)  # noqa: E731
        say(f"{b}: median consumer {med('mb_per_s'):.1f} MB/s, broker CPU {med('broker_cpu_s'):.2f}s, "
            f"client CPU {med('client_cpu_s'):.2f}s over {len(rs)} rounds")


def run_variants(cfg):
    results = {v: [] for v in cfg.variants}
    logdir = os.path.join(cfg.out, "logs")
    os.makedirs(logdir, exist_ok=True)
    prior = {v: 0.0 for v in cfg.variants}

    def finish_cluster(cluster, workdir, entries):
        hwm = [proc_hwm_bytes(p.pid) for p in cluster.brokers]
        ctl_hwm = proc_hwm_bytes(cluster.controller.pid) if cluster.controller else 0
        for e in entries:
            e["broker_hwm_bytes"] = hwm
            e["controller_hwm_bytes"] = ctl_hwm
        cluster.stop()
        keep = os.path.join(logdir, os.path.basename(workdir))
        os.makedirs(keep, exist_ok=True)
        for root, _, files in os.walk(workdir):
            for name in files:
                if name.endswith((".log", ".ready", ".properties")) and "data" not in root.split(os.sep) and not re.match(r"\d{20}", name):
                    rel = os.path.relpath(os.path.join(root, name), workdir).replace(os.sep, "_")
                    shutil.copy(os.path.join(root, name), os.path.join(keep, rel))
        shutil.rmtree(workdir, ignore_errors=True)

    for rep in range(1, cfg.reps + 1):
        if cfg.shared_cluster:
            # One cluster per system serves all its variants (smoke mode).
            # One cluster per system and security serves all its variants
            # (smoke mode).
            runs = [
                (system, security, f"{system}-{security}-rep{rep}", f"rep {rep}, variants {', '.join(vs)}", vs)
                for system in ("kafka", "rill")
                for security in ("plaintext", "sasl_ssl")
                for vs in [[v for v in cfg.variants
                            if VARIANTS[v]["system"] == system and security_of(v) == security]]
                if vs
            ]
        else:
            runs = [
                (VARIANTS[v]["system"], security_of(v), f"{v}-rep{rep}", f"for {v}, rep {rep} of {cfg.reps}", [v])
                for v in cfg.variants
            ]
        for system, security, name, what, vs in runs:
            workdir = os.path.join(cfg.work, name)
            shutil.rmtree(workdir, ignore_errors=True)
            os.makedirs(workdir)
            say(f"starting {system}, {security} ({what})")
            cluster = make_cluster(cfg, system, workdir, security)
            entries = []
            try:
                startups = cluster.start()
                for v in vs:
                    e = measure(cfg, cluster, v, rep, logdir, prior[v])
                    e["startup_s"] = startups
                    entries.append(e)
                    results[v].append(e)
                    if not cfg.shared_cluster:
                        # The next repetition sizes its run from the fastest rate seen.
                        prior[v] = max(prior[v], e["producer"]["records_per_s"])
            finally:
                finish_cluster(cluster, workdir, entries)
    return results


# --------------------------------------------------------------------------
# Summary, report, chart

# (key, label, unit, better, extractor over one repetition's entry -> value or list)
FIGURES = [
    ("producer_mb_s", "Producer throughput", "MB/s", "higher", lambda e: e["producer"]["mb_per_s"]),
    ("producer_rec_s", "Producer throughput", "records/s", "higher", lambda e: e["producer"]["records_per_s"]),
    ("produce_p50_ms", "Produce latency p50", "ms", "lower", lambda e: e["producer"]["lat_p50_ms"]),
    ("produce_p99_ms", "Produce latency p99", "ms", "lower", lambda e: e["producer"]["lat_p99_ms"]),
    ("produce_p999_ms", "Produce latency p99.9", "ms", "lower", lambda e: e["producer"]["lat_p999_ms"]),
    ("consumer_mb_s", "Consumer throughput", "MB/s", "higher", lambda e: e["consumer"]["mb_per_s"]),
    ("e2e_p50_ms", "End-to-end latency p50", "ms", "lower", lambda e: e["e2e"]["e2e_p50_us"] / 1000),
    ("e2e_p99_ms", "End-to-end latency p99", "ms", "lower", lambda e: e["e2e"]["e2e_p99_us"] / 1000),
    ("ack_p99_ms", "Acknowledgement latency p99 (fixed rate)", "ms", "lower", lambda e: e["e2e"]["ack_p99_us"] / 1000),
    ("cpu_s_per_gb", "Broker CPU per GB produced", "CPU s/GB", "lower", lambda e: e["producer"]["broker_cpu_s_per_gb"]),
    ("peak_rss_mb", "Peak RSS per broker (max of 3)", "MB", "lower", lambda e: max(e["broker_hwm_bytes"]) / 1e6),
    ("startup_s", "Broker start-up to ready", "s", "lower", lambda e: e["startup_s"]),
]

# The targets: (figure, Rill variant, Kafka variant, op, factor, text)
TARGETS = [
    ("producer_mb_s", "rill", "kafka", ">=", 2.0, "Rill producer ≥ 2× Kafka (acks=all, RF=3)"),
    ("producer_mb_s", "rill-fsync", "kafka", ">=", 1.0, "Rill `fsync` producer ≥ Kafka defaults"),
    ("produce_p99_ms", "rill", "kafka", "<=", 0.5, "p99 produce latency ≤ ½ Kafka's"),
    ("e2e_p99_ms", "rill", "kafka", "<=", 0.5, "p99 end-to-end latency ≤ ½ Kafka's"),
    ("consumer_mb_s", "rill", "kafka", ">=", 1.5, "consumer ≥ 1.5× Kafka"),
    ("peak_rss_mb", "rill", "kafka", "<=", 0.1, "peak RSS ≤ 1/10 of Kafka's"),
    ("startup_s", "rill", "kafka", "<=", 0.1, "start-up ≤ 1/10 of Kafka's"),
    ("producer_mb_s", "rill-tls", "kafka-tls", ">=", 2.0, "with TLS+SCRAM: Rill producer ≥ 2× Kafka"),
    ("producer_mb_s", "rill-txn", "kafka-txn", ">=", 2.0, "transactional producer ≥ 2× Kafka's"),
    ("e2e_p99_ms", "rill-txn", "kafka-txn", "<=", 0.5, "transactional p99 end-to-end latency (read_committed) ≤ ½ Kafka's"),
]

# What encryption costs each system: (system, its TLS variant, its plaintext variant).
TLS_COST = [("Kafka", "kafka-tls", "kafka"), ("Rill", "rill-tls", "rill")]
# What transactions cost each system: (system, its transactional variant, its plain variant).
TXN_COST = [("Kafka", "kafka-txn", "kafka"), ("Rill", "rill-txn", "rill")]


def summarize(results):
    """Median of each figure over repetitions (start-up: over every broker start)."""
    out = {}
    for v, entries in results.items():
        if not entries:
            continue
        figs = {}
        for key, _, _, _, get in FIGURES:
            vals = []
            for e in entries:
                x = get(e)
                vals.extend(x if isinstance(x, list) else [x])
            figs[key] = {"median": statistics.median(vals), "values": vals}
        out[v] = figs
    return out


def fmt(x, unit=""):
    if x is None:
        return "–"
    if unit == "s" and x < 1:
        return f"{x * 1000:.0f} ms" if x >= 0.01 else f"{x * 1000:.1f} ms"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    if abs(x) >= 1:
        return f"{x:.2f}"
    return f"{x:.3f}"


def ratio(summary, key, a, b):
    if a not in summary or b not in summary:
        return None
    x, y = summary[a][key]["median"], summary[b][key]["median"]
    if not y:
        return None
    return x / y


def write_report(cfg, results, summary, meta, path_md, path_png):
    variants = [v for v in cfg.variants if v in summary]
    lines = []
    w = lines.append
    w(f"# Rill vs Apache Kafka {meta['kafka_version']}: side-by-side benchmark")
    w("")
    w(f"{meta['date']} · mode `{cfg.mode}` · Rill commit `{meta['commit']}` · "
      f"{cfg.reps} repetition(s), medians · command: `{meta['command']}`")
    w("")
    w(f"Machine: {meta['cpus']} cores ({meta['cpu_model']}), {meta['mem_gb']:.1f} GB RAM, "
      f"{meta['kernel']}, data on {meta['data_fs']}; Java {meta['java']}. "
      f"Load average before the run {meta['load_start']}, after {meta['load_end']}; "
      f"CPU used outside the benchmark's processes during the producer runs "
      f"(other work on the machine and kernel threads): median {meta['foreign_median'] * 100:.0f}%, "
      f"max {meta['foreign_max'] * 100:.0f}% of the machine.")
    w("")
    w("Setup: both systems run 3 brokers on loopback, started one after the other "
      "(Kafka 4 in KRaft mode with one controller node, as `kafka-server-start.sh` runs it: "
      "`-Xmx1G -Xms1G`, G1; Rill with its standalone controller, " + meta["rill_profile"] + " build, defaults). "
      f"One topic, {PARTITIONS} partitions, RF={RF}, `min.insync.replicas=2`, "
      f"`retention.bytes={cfg.retention_bytes}` and `segment.bytes={cfg.segment_bytes}` "
      f"(retention checked every {RETENTION_CHECK_MS} ms on both; it bounds the disk), "
      "acks=all, 1 KiB records. Clients: Kafka's `kafka-producer-perf-test` (no throttle, "
      "client defaults otherwise: linger.ms=5, batch.size=16384, idempotence on), "
      "`kafka-consumer-perf-test` over what the topic retained, and `bench/java/BenchTool e2e` "
      f"({cfg.e2e_rate} records/s for {cfg.e2e_seconds} s after {cfg.e2e_warmup} s warm-up, "
      "linger.ms=0, one producer and one consumer in one JVM, System.nanoTime). "
      f"Before the measured producer run, at least two warm-up runs of {cfg.warmup_records} records, "
      f"more until {cfg.warmup_seconds:.0f} s of producing (JIT of Kafka's brokers and of the client); the measured run "
      f"is sized from the warm-up rate to last at least {cfg.seconds:.0f} s, and run again, larger, if it ended sooner. "
      "A fresh cluster per variant and repetition (smoke: one per system); MB = 10^6 bytes of record values. "
      "Broker CPU counts utime+stime of the three broker processes over the measured producer run; "
      "the client's CPU is listed per repetition, and so are the bytes per second written to the data "
      "directory's disk over that run (by every process; the page cache's writeback among them).")
    w("")
    if any(is_txn(v) for v in variants):
        w("Transactional variants (same topics as the plain ones): `kafka-producer-perf-test` with "
          f"`--transactional-id` (a new id per run) and `--transaction-duration-ms {cfg.txn_duration_ms}` "
          f"(a commit at the first send {cfg.txn_duration_ms} ms or more after the transaction began; "
          "the producer's sends wait for each commit); `kafka-consumer-perf-test` with "
          "`isolation.level=read_committed`, reading the offsets stored minus one possible marker per "
          "partition and transaction; `BenchTool e2e` with a transactional producer committing at the first "
          f"send due {cfg.e2e_commit_ms} ms or more after its transaction began (about "
          f"{max(1, cfg.e2e_rate * cfg.e2e_commit_ms // 1000)} records per transaction, over every partition) "
          "and a read_committed consumer: latency from `send()` to receipt, so it includes the rest of the "
          "record's transaction, the commit and the markers that move the last stable offset.")
        w("")
    labels = [VARIANTS[v]["label"] for v in variants]
    pairs = [("rill", "kafka"), ("rill-fsync", "kafka-flush"), ("rill-fsync", "kafka"), ("rill-tls", "kafka-tls"),
             ("rill-txn", "kafka-txn")]
    pairs = [p for p in pairs if p[0] in summary and p[1] in summary]
    head = ["Figure"] + labels + [f"{VARIANTS[a]['short']} / {VARIANTS[b]['short']}" for a, b in pairs]
    w("| " + " | ".join(head) + " |")
    w("|" + "---|" * len(head))
    for key, label, unit, better, _ in FIGURES:
        row = [f"{label} ({unit})" if unit != "s" else label]
        for v in variants:
            row.append(fmt(summary[v][key]["median"], unit))
        for a, b in pairs:
            r = ratio(summary, key, a, b)
            row.append("–" if r is None else f"{r:.2f}×")
        w("| " + " | ".join(row) + " |")
    w("")
    if "rill" in summary:
        frac = summary["rill"]["producer_mb_s"]["median"] / CEILING_MB_S
        w(f"Rill's producer throughput is {frac * 100:.0f}% of the ~{CEILING_MB_S:.0f} MB/s "
          "the issue estimates as this machine's physical limit at RF=3.")
        disk = [e["producer"].get("disk_write_mb_s") for e in results["rill"]]
        if all(d is not None for d in disk):
            w(f"During Rill's measured producer runs the data disk took a median {statistics.median(disk):.0f} MB/s "
              "of writes: each produced byte is written by three replicas on this one machine, and each "
              "partition's interval flush (`flush.ms`, 1 s) puts it on disk within a second.")
        w("")
    w("Ratios are Rill / Kafka of the medians: above 1 means Rill is higher (better for "
      "throughput, worse for latency, CPU, memory and start-up).")
    w("")
    w("## Targets")
    w("")
    w("| Target | Measured | Verdict |")
    w("|---|---|---|")
    for key, a, b, op, factor, text in TARGETS:
        r = ratio(summary, key, a, b)
        if r is None:
            w(f"| {text} | not measured | – |")
            continue
        met = r >= factor if op == ">=" else r <= factor
        w(f"| {text} | {r:.2f}× | {'met' if met else '**missed**'} |")
    w("")
    costs = [(name, tls, plain) for name, tls, plain in TLS_COST if tls in summary and plain in summary]
    if costs:
        w("## What TLS+SCRAM costs")
        w("")
        w("Each system with TLS and SCRAM-SHA-512 on its client listener, relative to itself in plaintext "
          "(brokers replicate in plaintext in both cases).")
        w("")
        w("| System | Producer MB/s | Consumer MB/s | Produce p99 | End-to-end p99 | Broker CPU per GB |")
        w("|---|---|---|---|---|---|")
        for name, tls, plain in costs:
            cells = []
            for key in ("producer_mb_s", "consumer_mb_s", "produce_p99_ms", "e2e_p99_ms", "cpu_s_per_gb"):
                r = ratio(summary, key, tls, plain)
                cells.append("–" if r is None else f"{r:.2f}×")
            w(f"| {name} | " + " | ".join(cells) + " |")
        w("")
    costs = [(name, t, plain) for name, t, plain in TXN_COST if t in summary and plain in summary]
    if costs:
        w("## What transactions cost")
        w("")
        w("Each system's transactional variant relative to its plain one (same topics; "
          "read_committed consumers).")
        w("")
        w("| System | Producer MB/s | Consumer MB/s | Produce p99 | End-to-end p50 | End-to-end p99 | Broker CPU per GB |")
        w("|---|---|---|---|---|---|---|")
        for name, t, plain in costs:
            cells = []
            for key in ("producer_mb_s", "consumer_mb_s", "produce_p99_ms", "e2e_p50_ms", "e2e_p99_ms", "cpu_s_per_gb"):
                r = ratio(summary, key, t, plain)
                cells.append("–" if r is None else f"{r:.2f}×")
            w(f"| {name} | " + " | ".join(cells) + " |")
        w("")
    txn_variants = [v for v in variants if is_txn(v)]
    if txn_variants:
        w("Transactions of the end-to-end runs, per repetition: how many were committed, how long "
          "`commitTransaction()` took, and how late sends were against the fixed-rate schedule "
          "(sends wait for a running commit).")
        w("")
        w("| Variant | Rep | Transactions | Commit p50/p99 ms | Send lag p99/max ms |")
        w("|---|---|---|---|---|")
        for v in txn_variants:
            for i, e in enumerate(results[v], 1):
                x = e["e2e"]
                w(f"| {VARIANTS[v]['label']} | {i} | {x['transactions']} | "
                  f"{x['commit_p50_us'] / 1000:.2f}/{x['commit_p99_us'] / 1000:.2f} | "
                  f"{x['lag_p99_us'] / 1000:.2f}/{x['lag_max_us'] / 1000:.2f} |")
        w("")
    w("## Per repetition")
    w("")
    w("| Variant | Rep | Producer MB/s | records | run s | p99 ms | Broker CPU s/GB | client | client CPU s | foreign CPU | "
      "disk writes | Consumer MB/s (records) | e2e p50/p99 µs | Peak RSS MB (3 brokers) | Start-up s (3 brokers) |")
    w("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for v in variants:
        for i, e in enumerate(results[v], 1):
            p, c, x = e["producer"], e["consumer"], e["e2e"]
            w(f"| {VARIANTS[v]['label']} | {i} | {p['mb_per_s']:.1f} | {p['records']} | {p['seconds']:.1f} | "
              f"{p['lat_p99_ms']} | {p['broker_cpu_s_per_gb']:.2f} | {p.get('client', 'java')} | {p['client_cpu_s']:.1f} | "
              f"{p['foreign_cpu_share'] * 100:.0f}% | {fmt_mb_s(p.get('disk_write_mb_s'))} | "
              f"{c['mb_per_s']:.1f} ({c['records']}) | {x['e2e_p50_us']:.0f}/{x['e2e_p99_us']:.0f} | "
              f"{', '.join(f'{h / 1e6:.0f}' for h in e['broker_hwm_bytes'])} | "
              f"{', '.join(f'{s:.3f}' for s in e['startup_s'])} |")
    w("")
    w(f"![chart]({os.path.basename(path_png)})")
    w("")
    with open(path_md, "w") as f:
        f.write("\n".join(lines))
    chart(cfg, summary, variants, path_png, meta)


def chart(cfg, summary, variants, path, meta):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        say("matplotlib is not installed: no chart")
        return
    colors = {"kafka": "#7f7f7f", "kafka-flush": "#bcbcbc", "rill": "#1f77b4", "rill-fsync": "#9ecae1",
              "kafka-tls": "#5a5a5a", "rill-tls": "#08519c", "kafka-txn": "#d4a017", "rill-txn": "#2ca02c"}
    figs = FIGURES
    cols = 4
    rows = math.ceil(len(figs) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows))
    for ax, (key, label, unit, better, _) in zip(axes.flat, figs):
        vals = [summary[v][key]["median"] for v in variants]
        bars = ax.bar(range(len(variants)), vals, color=[colors[v] for v in variants])
        ax.set_xticks(range(len(variants)))
        ax.set_xticklabels([VARIANTS[v]["short"] for v in variants], fontsize=7)
        ax.set_title(f"{label}\n({unit}, {better} is better)", fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
        for b, x in zip(bars, vals):
            ax.annotate(fmt(x), (b.get_x() + b.get_width() / 2, b.get_height()), ha="center",
                        va="bottom", fontsize=6)
        r = ratio(summary, key, "rill", "kafka")
        if r is not None:
            ax.text(0.98, 0.95, f"Rill/Kafka {r:.2f}×", transform=ax.transAxes, ha="right", va="top",
                    fontsize=7, color="#1f77b4")
        ax.set_ylim(0, max(vals) * 1.2 if max(vals) > 0 else 1)
    for ax in list(axes.flat)[len(figs):]:
        ax.axis("off")
    fig.suptitle(f"Rill vs Apache Kafka {meta['kafka_version']} — 3 brokers, RF=3, acks=all, 1 KiB "
                 f"({meta['date']}, {cfg.mode}, medians of {cfg.reps})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def machine_meta(cfg):
    def first(path, prefix):
        try:
            with open(path) as f:
                for line in f:
                    if line.startswith(prefix):
                        return line.split(":", 1)[1].strip()
        except OSError:
            pass
        return "?"

    mem_kb = int(first("/proc/meminfo", "MemTotal").split()[0])
    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    commit = subprocess.run(["git", "-C", repo, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", repo, "status", "--porcelain", "--", "broker", "controller", "proto"],
                           capture_output=True, text=True).stdout.strip()
    df = subprocess.run(["df", "-T", cfg.work], capture_output=True, text=True).stdout.splitlines()[-1].split()
    return {
        "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "commit": commit + ("+local changes" if dirty else ""),
        "kafka_version": os.environ.get("KAFKA_VERSION", "?"),
        "cpus": os.cpu_count(),
        "cpu_model": first("/proc/cpuinfo", "model name"),
        "mem_gb": mem_kb / 1e6,
        "kernel": platform.release(),
        "data_fs": f"{df[1]} ({df[0]})",
        "java": java[0].split('"')[1] if java and '"' in java[0] else "?",
        "command": cfg.command,
        "rill_profile": "debug" if os.path.basename(os.path.normpath(cfg.rill_bin)) == "debug" else "release",
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=["full", "smoke"], default="full")
    ap.add_argument("--variants", help=f"comma-separated (full: {FULL_VARIANTS}; smoke: {SMOKE_VARIANTS})")
    ap.add_argument("--reps", type=int)
    ap.add_argument("--seconds", type=float, help="minimum producer run length (full: 30)")
    ap.add_argument("--records", type=int, help="producer records per run (instead of sizing by --seconds)")
    ap.add_argument("--warmup-records", type=int)
    ap.add_argument("--warmup-seconds", type=float, help="minimum warm-up producing time (full: 15)")
    ap.add_argument("--retention-bytes", type=int, help="per partition (full: 384 MiB)")
    ap.add_argument("--segment-bytes", type=int, help="full: 64 MiB")
    ap.add_argument("--e2e-rate", type=int)
    ap.add_argument("--e2e-seconds", type=float)
    ap.add_argument("--e2e-warmup", type=float)
    ap.add_argument("--txn-duration-ms", type=int, default=TXN_DURATION_MS,
                    help="transactional variants: kafka-producer-perf-test --transaction-duration-ms")
    ap.add_argument("--e2e-commit-ms", type=int, default=E2E_COMMIT_MS,
                    help="transactional variants: BenchTool e2e commit interval")
    ap.add_argument("--out", required=True, help="directory for results.json, report.md, chart.png, logs/")
    ap.add_argument("--work", required=True, help="cluster data directory (removed after each repetition)")
    ap.add_argument("--rill-bin", required=True)
    ap.add_argument("--kafka-port", type=int, default=19500)
    ap.add_argument("--rill-port", type=int, default=21500)
    ap.add_argument("--shared-cluster", action="store_true",
                    help="one cluster per system for all its variants (smoke default)")
    ap.add_argument("--command", default="bench/run.sh")
    ap.add_argument("--client", choices=["rdkafka", "java"], default="rdkafka",
                    help="producer and consumer runs: rill-load on librdkafka (bench/load; plaintext, "
                         "non-transactional runs) or Kafka's Java perf tools")
    ap.add_argument("--compare-consumer", metavar="BIN_A,BIN_B",
                    help="compare the consumer throughput of Rill builds (directories) instead of the side-by-side run")
    cfg = ap.parse_args()
    smoke = cfg.mode == "smoke"
    defaults = {
        "reps": 1 if smoke else 3,
        "seconds": 30.0,
        "records": 20000 if smoke else None,
        "warmup_records": 5000 if smoke else 150000,
        "warmup_seconds": 0.0 if smoke else 15.0,
        "retention_bytes": (384 << 20),
        "segment_bytes": (64 << 20),
        "e2e_rate": 200 if smoke else 1000,
        "e2e_seconds": 2.0 if smoke else 30.0,
        "e2e_warmup": 1.0 if smoke else 5.0,
        "variants": SMOKE_VARIANTS if smoke else FULL_VARIANTS,
    }
    for k, v in defaults.items():
        if getattr(cfg, k) is None:
            setattr(cfg, k, v)
    cfg.shared_cluster = cfg.shared_cluster or smoke
    cfg.variants = [v.strip() for v in cfg.variants.split(",") if v.strip()]
    for v in cfg.variants:
        if v not in VARIANTS:
            ap.error(f"unknown variant {v} (known: {', '.join(VARIANTS)})")
    cfg.start_timeout = 180
    cfg.stop_timeout = 30
    cfg.tool_timeout = 1800
    cfg.rill_load = os.environ.get("RILL_LOAD", "")
    if cfg.client == "rdkafka" and not os.access(cfg.rill_load, os.X_OK):
        ap.error("--client rdkafka needs RILL_LOAD, the rill-load binary (bench/load/build.sh; bench/run.sh sets it)")
    cfg.classpath = os.environ["COMPAT_CLASSPATH"]
    cfg.tool_classpath = os.environ["BENCH_CLASSES"] + ":" + cfg.classpath
    os.makedirs(cfg.out, exist_ok=True)
    os.makedirs(cfg.work, exist_ok=True)
    cfg.out = os.path.abspath(cfg.out)
    cfg.work = os.path.abspath(cfg.work)

    def on_signal(signum, _frame):
        Proc.kill_all()
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if cfg.compare_consumer:
        try:
            compare_consumer(cfg, [os.path.abspath(b) for b in cfg.compare_consumer.split(",")])
        finally:
            Proc.kill_all()
        return
    meta = machine_meta(cfg)
    meta["load_start"] = loadavg()
    say(f"{cfg.mode} run: variants {', '.join(cfg.variants)}, {cfg.reps} repetition(s); load average {meta['load_start']}")
    try:
        results = run_variants(cfg)
    finally:
        Proc.kill_all()
    meta["load_end"] = loadavg()
    shares = [e["producer"]["foreign_cpu_share"] for es in results.values() for e in es]
    meta["foreign_median"] = statistics.median(shares) if shares else 0.0
    meta["foreign_max"] = max(shares) if shares else 0.0
    summary = summarize(results)
    with open(os.path.join(cfg.out, "results.json"), "w") as f:
        json.dump({"meta": meta, "config": {k: v for k, v in vars(cfg).items() if isinstance(v, (int, float, str, list, bool))},
                   "results": results, "summary": summary}, f, indent=1)
    md = os.path.join(cfg.out, "report.md")
    write_report(cfg, results, summary, meta, md, os.path.join(cfg.out, "chart.png"))
    print()
    with open(md) as f:
        print(f.read())
    say(f"report: {md}")


if __name__ == "__main__":
    main()
