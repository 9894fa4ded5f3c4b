"""Orchestrator of Rill's fault-injection suite (run it through faults/run.sh).

Builds the network namespaces, starts the cluster (Rill or Apache Kafka) as
real processes, runs each scenario's workload and faults, heals, makes the
final read, runs the checker and writes the results. See faults/README.md.
"""

import argparse
import datetime
import glob
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import checker  # noqa: E402

# Namespaces are rillf-<target>-<node>: a Rill and a Kafka run can coexist
# (their namespaces are separate network stacks, the same subnet in each).
PREFIX = "rillf-rill-"
NET_NS = PREFIX + "net"
CLIENT_NS = PREFIX + "client"


def set_prefix(target):
    global PREFIX, NET_NS, CLIENT_NS
    PREFIX = f"rillf-{target}-"
    NET_NS = PREFIX + "net"
    CLIENT_NS = PREFIX + "client"
SUBNET = "10.213.0"
CTL_IP = f"{SUBNET}.10"
CLIENT_IP = f"{SUBNET}.100"
KAFKA_PORT = 9092
PARTITIONS = 3
# How long the read_committed final read waits for every partition's last
# stable offset to reach its high watermark once the transactional producers
# have stopped: the workload's transaction.timeout.ms (20 s) plus Kafka's
# abort-timed-out-transactions scan interval (10 s) and a margin.
FINAL_LSO_WAIT_S = 45


def log(msg):
    print(f"faults [{time.strftime('%H:%M:%S')}]: {msg}", flush=True)


def sh(*cmd, check=True, timeout=60, capture=True):
    r = subprocess.run(list(cmd), stdout=subprocess.PIPE if capture else None,
                       stderr=subprocess.PIPE if capture else None, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit {r.returncode}: {r.stderr.strip()}")
    return r


def broker_ip(i):
    return f"{SUBNET}.{11 + i}"


# --------------------------------------------------------------------------- cleanup

def stale_cleanup(run_root):
    """Removes whatever a previous run left: processes inside rillf-*
    namespaces (ours: nothing else runs there), the namespaces, our tmpfs mounts."""
    out = sh("ip", "netns", "list", check=False).stdout
    names = [line.split()[0] for line in out.splitlines() if line.startswith(PREFIX)]
    for ns in names:
        pids = sh("ip", "netns", "pids", ns, check=False).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
    if names:
        time.sleep(0.5)
    for ns in names:
        sh("ip", "netns", "del", ns, check=False)
    # stale strace injectors we started (their pid files)
    for pf in glob.glob(os.path.join(run_root, "strace-*.pid")):
        try:
            os.kill(int(open(pf).read().strip()), signal.SIGKILL)
        except (ProcessLookupError, ValueError, OSError):
            pass
        os.unlink(pf)
    unmount_under(run_root)
    if names:
        log(f"cleaned stale namespaces: {' '.join(names)}")


def unmount_under(root):
    root = os.path.realpath(root)
    mounts = []
    with open("/proc/mounts") as f:
        for line in f:
            mp = line.split()[1]
            if mp == root or mp.startswith(root + "/"):
                mounts.append(mp)
    for mp in sorted(mounts, key=len, reverse=True):
        sh("umount", "-l", mp, check=False)


# --------------------------------------------------------------------------- network

class Net:
    def __init__(self, n_brokers):
        self.n = n_brokers
        self.nodes = {"ctl": CTL_IP, "client": CLIENT_IP}
        for i in range(n_brokers):
            self.nodes[f"b{i}"] = broker_ip(i)
        self.created = []

    @staticmethod
    def ns(node):
        return PREFIX + node

    def setup(self):
        sh("ip", "netns", "add", NET_NS)
        self.created.append(NET_NS)
        sh("ip", "-n", NET_NS, "link", "set", "lo", "up")
        sh("ip", "-n", NET_NS, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", NET_NS, "link", "set", "br0", "up")
        for node, ip in self.nodes.items():
            ns = self.ns(node)
            sh("ip", "netns", "add", ns)
            self.created.append(ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            # Created inside the bridge namespace; the peer goes straight into
            # the node's namespace. The root namespace is never touched.
            sh("ip", "-n", NET_NS, "link", "add", f"v-{node}", "type", "veth", "peer", "name", "eth0",
               "netns", ns)
            sh("ip", "-n", NET_NS, "link", "set", f"v-{node}", "master", "br0")
            sh("ip", "-n", NET_NS, "link", "set", f"v-{node}", "up")
            sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
        # Reachability check from the client namespace.
        for node, ip in self.nodes.items():
            if node != "client":
                sh("ip", "netns", "exec", CLIENT_NS, "ping", "-c1", "-W2", ip, check=False)

    def teardown(self):
        for ns in reversed(self.created):
            sh("ip", "netns", "del", ns, check=False)
        self.created = []

    # faults: blackhole routes (drop what `src` sends to `dst`), link down
    def drop(self, src, dst):
        sh("ip", "-n", self.ns(src), "route", "replace", "blackhole", f"{self.nodes[dst]}/32")

    def cut(self, a, b):
        self.drop(a, b)
        self.drop(b, a)

    def link(self, node, up):
        sh("ip", "-n", NET_NS, "link", "set", f"v-{node}", "up" if up else "down")

    def heal(self):
        for node in self.nodes:
            ns = self.ns(node)
            out = sh("ip", "-n", ns, "route", "show", "type", "blackhole", check=False).stdout
            for line in out.splitlines():
                parts = line.split()
                if len(parts) >= 2:
                    sh("ip", "-n", ns, "route", "del", "blackhole", parts[1], check=False)
            sh("ip", "-n", NET_NS, "link", "set", f"v-{node}", "up", check=False)


# --------------------------------------------------------------------------- processes

class Proc:
    """One server process in its namespace, started by us (pid tracked)."""

    def __init__(self, name, ns, cmd, logdir, ready, env=None):
        self.name, self.ns, self.cmd, self.ready = name, ns, cmd, ready
        self.out = os.path.join(logdir, f"{name}.out")
        self.err = os.path.join(logdir, f"{name}.log")
        self.env = env
        self.p = None

    def start(self, timeout):
        before = self._ready_count()
        with open(self.out, "a") as o, open(self.err, "a") as e:
            self.p = subprocess.Popen(["ip", "netns", "exec", self.ns] + self.cmd, stdout=o, stderr=e,
                                      stdin=subprocess.DEVNULL, start_new_session=True, env=self.env)
        deadline = time.monotonic() + timeout
        while self._ready_count() <= before:
            if self.p.poll() is not None:
                raise RuntimeError(f"{self.name} exited during startup (see {self.err})")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} not ready within {timeout}s (see {self.err})")
            time.sleep(0.2)

    def _ready_count(self):
        n = 0
        for path in (self.out, self.err):
            try:
                with open(path, errors="replace") as f:
                    n += f.read().count(self.ready)
            except FileNotFoundError:
                pass
        return n

    @property
    def pid(self):
        return self.p.pid if self.p else None

    def alive(self):
        return self.p is not None and self.p.poll() is None

    def signal(self, sig):
        if self.alive():
            os.kill(self.p.pid, sig)

    def kill(self):
        if self.alive():
            os.kill(self.p.pid, signal.SIGCONT)
            os.kill(self.p.pid, signal.SIGKILL)
            self.p.wait(timeout=30)

    def stop(self, timeout=20):
        if not self.alive():
            return
        os.kill(self.p.pid, signal.SIGCONT)
        os.kill(self.p.pid, signal.SIGTERM)
        try:
            self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()


class Cluster:
    """Controller 'ctl' + brokers 'b0'..; broker i has id i and IP broker_ip(i)."""

    def __init__(self, target, net, run_dir, n_brokers, tmpfs_mb):
        self.target, self.net, self.run_dir, self.n = target, net, run_dir, n_brokers
        self.logdir = os.path.join(run_dir, "logs")
        os.makedirs(self.logdir, exist_ok=True)
        self.mnt = {f"b{i}": os.path.join(run_dir, "disk", f"b{i}") for i in range(n_brokers)}
        self.tmpfs_mb = tmpfs_mb
        self.procs = {}
        self.bootstrap = ",".join(f"{broker_ip(i)}:{KAFKA_PORT}" for i in range(n_brokers))
        self.timeout = 180 if target == "kafka" else 90

    def data_dir(self, node):
        return os.path.join(self.mnt[node], "data")

    def mount(self):
        for node, mp in self.mnt.items():
            os.makedirs(mp, exist_ok=True)
            sh("mount", "-t", "tmpfs", "-o", f"size={self.tmpfs_mb}m", f"rillf-{node}", mp)
            os.makedirs(self.data_dir(node), exist_ok=True)

    def unmount(self):
        for mp in self.mnt.values():
            sh("umount", "-l", mp, check=False)

    def start(self):
        self.mount()
        if self.target == "rill":
            self._rill_procs()
        else:
            self._kafka_procs()
        self.procs["ctl"].start(self.timeout)
        for i in range(self.n):
            self.procs[f"b{i}"].start(self.timeout)

    def brokers(self):
        return [f"b{i}" for i in range(self.n)]

    # --- Rill
    def _rill_procs(self):
        bindir = os.environ.get("RILL_BIN_DIR") or os.path.join(
            os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/rill/target")), "debug")
        for b in ("rill-controller", "rill-broker"):
            if not os.access(os.path.join(bindir, b), os.X_OK):
                raise SystemExit(f"faults: {bindir}/{b} is not built "
                                 "(cargo build --workspace --all-targets)")
        # A copy, so that a rebuild during the run does not change the binary
        # a restarted broker runs.
        own = os.path.join(self.run_dir, "bin")
        os.makedirs(own, exist_ok=True)
        for b in ("rill-controller", "rill-broker"):
            shutil.copy2(os.path.join(bindir, b), os.path.join(own, b))
        log(f"rill binaries from {bindir} ({time.ctime(os.path.getmtime(os.path.join(bindir, 'rill-broker')))})")
        bindir = own
        env = dict(os.environ)
        env.setdefault("RILL_LOG", "info")
        ctl_dir = os.path.join(self.run_dir, "controller")
        os.makedirs(ctl_dir, exist_ok=True)
        self.procs["ctl"] = Proc("ctl", Net.ns("ctl"), [
            os.path.join(bindir, "rill-controller"),
            "--metadata-file", os.path.join(ctl_dir, "metadata.json"),
            "--listen-addr", f"{CTL_IP}:9095", "--http-addr", f"{CTL_IP}:9645",
        ] + os.environ.get("FAULTS_RILL_CONTROLLER_ARGS", "").split(), self.logdir, "RILL_READY", env)
        for i in range(self.n):
            ip = broker_ip(i)
            node = f"b{i}"
            self.procs[node] = Proc(node, Net.ns(node), [
                os.path.join(bindir, "rill-broker"), "--broker-id", str(i),
                "--data-dir", self.data_dir(node),
                "--controller-addr", f"http://{CTL_IP}:9095",
                "--listen-addr", f"{ip}:9093", "--http-addr", f"{ip}:9644",
                "--replication-addr", f"{ip}:9094", "--kafka-addr", f"{ip}:{KAFKA_PORT}",
                "--advertised-host", ip, "--replica-lag-time-max-ms", "10000",
                "--log-segment-bytes", "8388608",
            ] + os.environ.get("FAULTS_RILL_BROKER_ARGS", "").split(), self.logdir, "RILL_READY", env)

    # --- Apache Kafka (KRaft): node 100 is the controller, brokers 0..n-1
    def _kafka_procs(self):
        cp = os.environ.get("COMPAT_CLASSPATH")
        if not cp:
            raise SystemExit("faults: COMPAT_CLASSPATH unset (faults/install.sh, then source env.sh)")
        import uuid
        import base64
        self.cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        heap = os.environ.get("FAULTS_KAFKA_HEAP", "-Xmx512m -Xms128m").split()
        self.java_base = ["java"] + heap + ["-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                                            "-Dorg.slf4j.simpleLogger.defaultLogLevel=info",
                                            "-Dorg.slf4j.simpleLogger.showDateTime=true", "-cp", cp]
        self.props = {}
        ctl_dir = os.path.join(self.run_dir, "controller")
        os.makedirs(ctl_dir, exist_ok=True)
        common = [
            f"controller.quorum.voters=100@{CTL_IP}:9093",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "auto.create.topics.enable=false",
            "num.partitions=1", "default.replication.factor=3", "min.insync.replicas=2",
            "offsets.topic.replication.factor=3", "offsets.topic.num.partitions=12",
            "transaction.state.log.replication.factor=3", "transaction.state.log.min.isr=2",
            "share.coordinator.state.topic.replication.factor=3", "share.coordinator.state.topic.min.isr=2",
            "group.initial.rebalance.delay.ms=3000",
            "broker.heartbeat.interval.ms=500", "broker.session.timeout.ms=4000",
            "replica.lag.time.max.ms=10000",
            "log.segment.bytes=8388608",
        ]
        nodes = {"ctl": (100, "controller", [f"listeners=CONTROLLER://{CTL_IP}:9093"], ctl_dir)}
        for i in range(self.n):
            ip = broker_ip(i)
            nodes[f"b{i}"] = (i, "broker", [f"listeners=PLAINTEXT://{ip}:{KAFKA_PORT}",
                                            f"advertised.listeners=PLAINTEXT://{ip}:{KAFKA_PORT}",
                                            "inter.broker.listener.name=PLAINTEXT"], self.data_dir(f"b{i}"))
        for node, (nid, role, extra, data) in nodes.items():
            path = os.path.join(self.run_dir, f"{node}.properties")
            with open(path, "w") as f:
                f.write("\n".join([f"process.roles={role}", f"node.id={nid}", f"log.dirs={data}"]
                                  + common + extra) + "\n")
            self.props[node] = path
            self.format(node)
            ready = "Kafka Server started" if role == "broker" else "Kafka Server started"
            self.procs[node] = Proc(node, Net.ns(node), self.java_base + ["kafka.Kafka", path],
                                    self.logdir, ready)

    def format(self, node):
        sh(*(self.java_base[:1] + ["-Xmx256m", "-cp", os.environ["COMPAT_CLASSPATH"],
                                   "kafka.tools.StorageTool", "format", f"--cluster-id={self.cluster_id}",
                                   "--config", self.props[node], "--ignore-formatted"]), timeout=120)

    # --- operations used by faults
    def restart(self, node):
        p = self.procs[node]
        if p.alive():
            return
        p.start(self.timeout)

    def wipe(self, node):
        d = self.data_dir(node)
        for entry in os.listdir(d):
            path = os.path.join(d, entry)
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.unlink(path)
        if self.target == "kafka":
            self.format(node)

    def stop(self):
        for node in self.brokers():
            if node in self.procs:
                self.procs[node].stop()
        if "ctl" in self.procs:
            self.procs["ctl"].stop()


# --------------------------------------------------------------------------- workload

class Workload:
    def __init__(self, suite, sdir, topic, group):
        self.s, self.dir, self.topic, self.group = suite, sdir, topic, group
        self.stop_prod = os.path.join(sdir, "stop-producers")
        self.stop_cons = os.path.join(sdir, "stop-consumers")
        self.stop_offs = os.path.join(sdir, "stop-offsets")
        self.procs = {}

    def client(self, *args, out=None):
        cmd = ["ip", "netns", "exec", CLIENT_NS, self.s.python, os.path.join(HERE, "workload.py"),
               *args, "--bootstrap", self.s.cluster.bootstrap, "--topic", self.topic]
        return cmd

    def spawn(self, name, *args):
        logf = open(os.path.join(self.dir, f"{name}.stderr"), "w")
        self.procs[name] = subprocess.Popen(self.client(*args), stdout=logf, stderr=logf,
                                            stdin=subprocess.DEVNULL, start_new_session=True)

    def start(self, max_seconds):
        ms = str(max_seconds)
        for i in range(self.s.args.producers):
            self.spawn(f"producer-{i}", "produce", "--id", str(i), "--run", self.s.run_id,
                       "--out", os.path.join(self.dir, f"producer-{i}.jsonl"),
                       "--stop-file", self.stop_prod, "--max-seconds", ms,
                       "--rate", str(self.s.args.rate))
        for i in range(self.s.args.consumers):
            self.spawn(f"consumer-{i}", "consume", "--id", str(i), "--group", self.group,
                       "--out", os.path.join(self.dir, f"consumer-{i}.jsonl"),
                       "--stop-file", self.stop_cons, "--max-seconds", str(max_seconds + 200))
        self.spawn("offsets", "offsets", "--group", self.group, "--partitions", str(PARTITIONS),
                   "--out", os.path.join(self.dir, "offsets.jsonl"), "--stop-file", self.stop_offs,
                   "--max-seconds", str(max_seconds + 260))

    def acks(self):
        n = 0
        for p in glob.glob(os.path.join(self.dir, "producer-*.jsonl")):
            with open(p) as f:
                n += f.read().count('"type":"ack"')
        return n

    def reads(self):
        n = 0
        for p in glob.glob(os.path.join(self.dir, "consumer-*.jsonl")):
            with open(p) as f:
                n += f.read().count('"type":"read"')
        return n

    def wait(self, prefix, timeout):
        deadline = time.monotonic() + timeout
        for name, p in self.procs.items():
            if not name.startswith(prefix):
                continue
            try:
                p.wait(timeout=max(1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log(f"{name} still running after {timeout}s: SIGKILL (its stack: {name}.stderr)")
                os.killpg(p.pid, signal.SIGUSR1)  # workload.py writes its threads' stacks
                time.sleep(1)
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()

    def finish(self):
        open(self.stop_prod, "w").close()
        self.wait("producer", 90)
        # Consumers catch up: stop when no new read for 6 s (at most 90 s).
        last, since = self.reads(), time.monotonic()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and time.monotonic() - since < 6:
            time.sleep(1)
            n = self.reads()
            if n != last:
                last, since = n, time.monotonic()
        open(self.stop_cons, "w").close()
        self.wait("consumer", 60)
        time.sleep(3)
        open(self.stop_offs, "w").close()
        self.wait("offsets", 30)

    def final_read(self):
        r = subprocess.run(self.client("final", "--partitions", str(PARTITIONS),
                                       "--out", os.path.join(self.dir, "final.jsonl"),
                                       "--max-seconds", "120"),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=200)
        return r.returncode

    def kill_all(self):
        for p in self.procs.values():
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


class TxnWorkload(Workload):
    """The transactional workload: transactional producers (txn-produce),
    read_committed group members, the offsets poller, and two final reads:
    read_committed (final.jsonl, what the checker judges) and
    read_uncommitted (final-uncommitted.jsonl, which says whether a missing
    record is in the log at all)."""

    def start(self, max_seconds):
        ms = str(max_seconds)
        a = self.s.args
        for i in range(a.producers):
            self.spawn(f"producer-{i}", "txn-produce", "--id", str(i), "--run", self.s.run_id,
                       "--seed", f"{a.seed}:{os.path.basename(self.dir)}", "--partitions", str(PARTITIONS),
                       "--out", os.path.join(self.dir, f"txn-producer-{i}.jsonl"),
                       "--stop-file", self.stop_prod, "--max-seconds", ms, "--rate", str(a.rate))
        for i in range(a.consumers):
            self.spawn(f"consumer-{i}", "txn-consume", "--id", str(i), "--group", self.group,
                       "--out", os.path.join(self.dir, f"consumer-{i}.jsonl"),
                       "--stop-file", self.stop_cons, "--max-seconds", str(max_seconds + 200))
        self.spawn("offsets", "offsets", "--group", self.group, "--partitions", str(PARTITIONS),
                   "--out", os.path.join(self.dir, "offsets.jsonl"), "--stop-file", self.stop_offs,
                   "--max-seconds", str(max_seconds + 260))

    def acks(self):
        """Committed transactions so far (the warm-up and settle phases wait on them)."""
        n = 0
        for p in glob.glob(os.path.join(self.dir, "txn-producer-*.jsonl")):
            with open(p) as f:
                n += f.read().count('"type":"commit_ok"')
        return n

    def final_read(self):
        rc = None
        for isolation, out in (("read_committed", "final.jsonl"), ("read_uncommitted", "final-uncommitted.jsonl")):
            r = subprocess.run(self.client("final", "--partitions", str(PARTITIONS), "--isolation", isolation,
                                           "--lso-wait", str(FINAL_LSO_WAIT_S),
                                           "--out", os.path.join(self.dir, out), "--max-seconds", "120"),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=200)
            rc = r.returncode if rc is None else rc
        return rc


# --------------------------------------------------------------------------- faults

class Nemesis:
    """Fault primitives on the running cluster; records what it does."""

    def __init__(self, suite, sdir, topic, rng):
        self.s, self.c, self.net = suite, suite.cluster, suite.net
        self.topic, self.rng = topic, rng
        self.hist = open(os.path.join(sdir, "nemesis.jsonl"), "a", buffering=1)
        self.sdir = sdir
        self.stracers = []
        self.fillers = []

    def note(self, type_, **kw):
        kw.update(t=time.monotonic(), type=type_)
        self.hist.write(json.dumps(kw) + "\n")
        log(f"  {type_}: {json.dumps({k: v for k, v in kw.items() if k not in ('t', 'type')})}")

    def sleep(self, secs):
        end = time.monotonic() + secs
        while time.monotonic() < end:
            if self.s.interrupted:
                raise KeyboardInterrupt
            time.sleep(min(0.5, end - time.monotonic()))

    def metadata(self, timeout=20):
        r = subprocess.run(["ip", "netns", "exec", CLIENT_NS, self.s.python, os.path.join(HERE, "workload.py"),
                            "leaders", "--bootstrap", self.c.bootstrap, "--topic", self.topic,
                            "--need-leader", "0", "--max-seconds", str(timeout)],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, timeout=timeout + 30)
        try:
            return json.loads(r.stdout.strip().splitlines()[-1])
        except (json.JSONDecodeError, IndexError):
            return {}

    def leader(self):
        """The broker leading partition 0 (from Metadata in the client namespace)."""
        md = self.metadata()
        lid = md.get("0", {}).get("leader", -1)
        if lid is None or lid < 0 or f"b{lid}" not in self.c.procs:
            live = [b for b in self.c.brokers() if self.c.procs[b].alive()]
            node = self.rng.choice(live)
            self.note("leader_unknown", guess=node)
            return node
        return f"b{lid}"

    def follower(self, leader):
        return self.rng.choice([b for b in self.c.brokers() if b != leader])

    # network
    def cut(self, a, bs):
        for b in bs:
            self.net.cut(a, b)
        self.note("fault", kind="cut", node=a, peers=list(bs))

    def drop_to(self, srcs, dst):
        for s in srcs:
            self.net.drop(s, dst)
        self.note("fault", kind="one-way", dropped_from=list(srcs), to=dst)

    def link_down(self, node):
        self.net.link(node, False)
        self.note("fault", kind="link-down", node=node)

    def heal_net(self):
        self.net.heal()
        self.note("heal", kind="network")

    # processes
    def kill(self, node):
        self.c.procs[node].kill()
        self.note("fault", kind="sigkill", node=node)

    def pause(self, node):
        self.c.procs[node].signal(signal.SIGSTOP)
        self.note("fault", kind="sigstop", node=node)

    def resume(self, node):
        self.c.procs[node].signal(signal.SIGCONT)
        self.note("heal", kind="sigcont", node=node)

    def restart(self, node):
        try:
            self.c.restart(node)
            self.note("heal", kind="restart", node=node)
        except RuntimeError as e:
            self.note("restart_failed", node=node, error=str(e))

    def wipe(self, node):
        self.c.wipe(node)
        self.note("fault", kind="wipe", node=node)

    def tear_tail(self, node):
        """Cuts or garbles the tail of the newest .log segment of every
        partition of the scenario's topic on `node` (killed beforehand)."""
        data = self.c.data_dir(node)
        torn = []
        dirs = {}
        for path in glob.glob(os.path.join(data, "**", "*.log"), recursive=True):
            if self.topic not in path:
                continue
            dirs.setdefault(os.path.dirname(path), []).append(path)
        for d, logs in sorted(dirs.items()):
            newest = max(logs, key=lambda p: os.path.basename(p))
            size = os.path.getsize(newest)
            if size == 0:
                continue
            mode = self.rng.choice(["truncate", "garble"])
            n = min(size, self.rng.randint(1, 200))
            if mode == "truncate":
                os.truncate(newest, size - n)
            else:
                with open(newest, "r+b") as f:
                    f.seek(size - n)
                    f.write(bytes(self.rng.randrange(256) for _ in range(n)))
            torn.append({"file": os.path.relpath(newest, data), "size": size, "bytes": n, "mode": mode})
        self.note("fault", kind="torn-tail", node=node, segments=torn)

    # disk
    def fill_disk(self, node):
        mp = self.c.mnt[node]
        path = os.path.join(mp, "filler")
        st = os.statvfs(mp)
        free = st.f_bavail * st.f_frsize
        with open(path, "wb") as f:
            try:
                os.posix_fallocate(f.fileno(), 0, free)
            except OSError:
                pass
        # whatever is left, byte by byte blocks
        try:
            with open(path, "ab") as f:
                while True:
                    f.write(b"\0" * 4096)
                    f.flush()
        except OSError:
            pass
        self.fillers.append(path)
        st = os.statvfs(mp)
        self.note("fault", kind="disk-full", node=node, free_bytes=st.f_bavail * st.f_frsize)

    def free_disk(self):
        for p in self.fillers:
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass
        if self.fillers:
            self.note("heal", kind="disk-freed")
        self.fillers = []

    def fsync_errors(self, node):
        pid = self.c.procs[node].pid
        out = open(os.path.join(self.sdir, f"strace-{node}.log"), "w")
        p = subprocess.Popen(["strace", "-f", "-qq", "-p", str(pid), "-e", "trace=fsync,fdatasync,sync_file_range",
                              "-e", "inject=fsync,fdatasync,sync_file_range:error=EIO"],
                             stdout=out, stderr=out, stdin=subprocess.DEVNULL, start_new_session=True)
        with open(os.path.join(self.s.run_dir, f"strace-{p.pid}.pid"), "w") as f:
            f.write(str(p.pid))
        self.stracers.append(p)
        self.note("fault", kind="fsync-eio", node=node, strace_pid=p.pid)

    def stop_fsync_errors(self):
        for p in self.stracers:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            try:
                os.unlink(os.path.join(self.s.run_dir, f"strace-{p.pid}.pid"))
            except FileNotFoundError:
                pass
        if self.stracers:
            self.note("heal", kind="strace-detached")
        self.stracers = []

    def heal_all(self):
        """Everything back: network, paused processes, strace, disk, dead processes."""
        self.stop_fsync_errors()
        self.heal_net()
        for node, p in self.c.procs.items():
            p.signal(signal.SIGCONT)
        self.free_disk()
        for node in ["ctl"] + self.c.brokers():
            if not self.c.procs[node].alive():
                self.restart(node)
        self.note("healed")


# Scenarios: fn(nemesis, duration). Each leaves faults active only within its
# duration; the suite heals everything afterwards in any case.

def sc_leader_isolated_controller(n, d):
    ld = n.leader()
    n.cut(ld, ["ctl"])
    n.sleep(d)
    n.heal_net()


def sc_leader_isolated_followers(n, d):
    ld = n.leader()
    n.cut(ld, [b for b in n.c.brokers() if b != ld])
    n.sleep(d)
    n.heal_net()


def sc_leader_isolated(n, d):
    ld = n.leader()
    n.link_down(ld)
    n.sleep(d)
    n.heal_net()


def sc_controller_isolated(n, d):
    n.cut("ctl", n.c.brokers())
    n.sleep(d)
    n.heal_net()


def sc_one_way(n, d):
    ld = n.leader()
    n.drop_to(["ctl"] + [b for b in n.c.brokers() if b != ld], ld)
    n.sleep(d)
    n.heal_net()


def sc_flapping(n, d):
    end = time.monotonic() + d
    while time.monotonic() < end - 1:
        ld = n.leader()
        kind = n.rng.choice(["link", "followers", "controller"])
        if kind == "link":
            n.link_down(ld)
        elif kind == "followers":
            n.cut(ld, [b for b in n.c.brokers() if b != ld])
        else:
            n.cut(ld, ["ctl"])
        n.sleep(min(n.rng.uniform(2, 4), max(0.5, end - time.monotonic())))
        n.heal_net()
        n.sleep(min(n.rng.uniform(1, 3), max(0.0, end - time.monotonic())))


def _kill_cycle(n, d, pick):
    end = time.monotonic() + d
    while time.monotonic() < end - 2:
        node = pick()
        n.kill(node)
        n.sleep(min(6, max(1, end - time.monotonic())))
        n.restart(node)
        n.sleep(min(4, max(0, end - time.monotonic())))


def _pause_cycle(n, d, pick):
    end = time.monotonic() + d
    while time.monotonic() < end - 2:
        node = pick()
        n.pause(node)
        n.sleep(min(8, max(1, end - time.monotonic())))
        n.resume(node)
        n.sleep(min(4, max(0, end - time.monotonic())))


def sc_kill_leader(n, d):
    _kill_cycle(n, d, n.leader)


def sc_kill_follower(n, d):
    _kill_cycle(n, d, lambda: n.follower(n.leader()))


def sc_kill_controller(n, d):
    _kill_cycle(n, d, lambda: "ctl")


def sc_pause_leader(n, d):
    _pause_cycle(n, d, n.leader)


def sc_pause_follower(n, d):
    _pause_cycle(n, d, lambda: n.follower(n.leader()))


def sc_pause_controller(n, d):
    _pause_cycle(n, d, lambda: "ctl")


def sc_wiped_disk(n, d):
    ld = n.leader()
    n.kill(ld)
    n.wipe(ld)
    n.sleep(min(5, d / 3))
    n.restart(ld)
    n.sleep(max(0, d - 5))


def sc_disk_full(n, d):
    ld = n.leader()
    n.fill_disk(ld)
    n.sleep(d)
    n.free_disk()


def sc_fsync_error(n, d):
    ld = n.leader()
    n.fsync_errors(ld)
    n.sleep(d)
    n.stop_fsync_errors()


def sc_torn_tail(n, d):
    end = time.monotonic() + d
    while time.monotonic() < end - 2:
        ld = n.leader()
        n.kill(ld)
        n.tear_tail(ld)
        n.sleep(2)
        n.restart(ld)
        n.sleep(min(8, max(0, end - time.monotonic())))


SCENARIOS = {
    "leader-isolated-controller": sc_leader_isolated_controller,
    "leader-isolated-followers": sc_leader_isolated_followers,
    "leader-isolated": sc_leader_isolated,
    "controller-isolated": sc_controller_isolated,
    "one-way": sc_one_way,
    "flapping": sc_flapping,
    "kill-leader": sc_kill_leader,
    "kill-follower": sc_kill_follower,
    "kill-controller": sc_kill_controller,
    "pause-leader": sc_pause_leader,
    "pause-follower": sc_pause_follower,
    "pause-controller": sc_pause_controller,
    "wiped-disk": sc_wiped_disk,
    "disk-full": sc_disk_full,
    "fsync-error": sc_fsync_error,
    "torn-tail": sc_torn_tail,
}


def sc_mix(n, d):
    """A random sequence of the other scenarios' faults (from the seed),
    each for 6-12 s, healed in between."""
    end = time.monotonic() + d
    names = sorted(SCENARIOS)
    while time.monotonic() < end - 4:
        name = n.rng.choice(names)
        piece = min(n.rng.uniform(6, 12), max(3, end - time.monotonic()))
        n.note("mix_step", scenario=name, seconds=round(piece, 1))
        SCENARIOS[name](n, piece)
        n.heal_all()
        n.sleep(min(3, max(0, end - time.monotonic())))


SCENARIOS["mix"] = sc_mix

# A run entry is a scenario name, or NAME+txn: the same faults under the
# transactional workload (TxnWorkload) instead of the plain one.
WORKLOADS = {"plain": ["plain"], "txn": ["txn"], "both": ["plain", "txn"]}
SHORT_BASES = ["kill-leader", "leader-isolated", "flapping", "disk-full", "torn-tail"]
SHORT = SHORT_BASES + ["kill-leader+txn"]
LONG = list(SCENARIOS) + [f"{s}+txn" for s in SCENARIOS]


def variants(bases, workloads):
    return [b if w == "plain" else f"{b}+{w}" for b in bases for w in workloads]


def split_name(name):
    """'kill-leader+txn' -> ('kill-leader', 'txn'); 'kill-leader' -> ('kill-leader', 'plain')."""
    base, _, wl = name.partition("+")
    return base, wl or "plain"


# --------------------------------------------------------------------------- suite

class Suite:
    def __init__(self, args):
        self.args = args
        self.interrupted = False
        self.python = os.environ.get("FAULTS_PYTHON", sys.executable)
        self.run_root = os.path.join(HERE, ".run")
        self.run_dir = os.path.join(self.run_root, args.target)
        self.run_id = f"{args.target[0]}{int(time.time()) % 100000}"
        self.net = None
        self.cluster = None

    def setup(self):
        os.makedirs(self.run_root, exist_ok=True)
        stale_cleanup(self.run_dir)
        if os.path.exists(self.run_dir):
            shutil.rmtree(self.run_dir)
        os.makedirs(self.run_dir)
        self.net = Net(self.args.brokers)
        self.net.setup()
        self.cluster = Cluster(self.args.target, self.net, self.run_dir, self.args.brokers, self.args.tmpfs_mb)
        t0 = time.monotonic()
        self.cluster.start()
        log(f"{self.args.target} cluster up in {time.monotonic() - t0:.1f}s: bootstrap {self.cluster.bootstrap}")

    def teardown(self):
        if self.cluster:
            try:
                self.cluster.stop()
            except Exception as e:  # noqa: BLE001
                log(f"stop: {e}")
            for p in self.cluster.procs.values():
                try:
                    p.kill()
                except Exception:  # noqa: BLE001
                    pass
            self.cluster.unmount()
        if self.net:
            self.net.teardown()
        stale_cleanup(self.run_dir)

    def run_scenario(self, name, index):
        a = self.args
        base, workload = split_name(name)
        sdir = os.path.join(self.run_dir, name)
        os.makedirs(sdir, exist_ok=True)
        slug = name.replace("+", "-")  # '+' is not allowed in topic names
        topic = f"f-{slug}-{index}"
        group = f"g-{slug}-{index}"
        rng = random.Random(f"{a.seed}:{name}")
        log(f"scenario {name} (seed {a.seed}, faults {a.duration}s, topic {topic}, {workload} workload)")
        t0 = time.monotonic()
        n = Nemesis(self, sdir, topic, rng)
        wl = (TxnWorkload if workload == "txn" else Workload)(self, sdir, topic, group)
        status = "ok"
        try:
            n.heal_all()
            r = subprocess.run(wl.client("create", "--partitions", str(PARTITIONS), "--rf", "3",
                                         "--min-isr", "2", "--max-seconds", "120"),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=200)
            if r.returncode != 0:
                raise RuntimeError(f"topic creation failed: {r.stdout.strip()[-500:]}")
            budget = a.warmup + a.duration + a.settle + 120
            wl.start(budget)
            # warm-up: wait until writes are acknowledged
            deadline = time.monotonic() + 60
            while wl.acks() < 20 and time.monotonic() < deadline:
                n.sleep(0.5)
            n.sleep(a.warmup)
            n.note("phase", phase="faults")
            SCENARIOS[base](n, a.duration)
            n.heal_all()
            n.note("phase", phase="settle")
            # settle: writes acknowledged again after the heal (bounded)
            base = wl.acks()
            deadline = time.monotonic() + a.settle + 60
            while wl.acks() < base + 50 and time.monotonic() < deadline:
                n.sleep(1)
            n.sleep(a.settle)
            n.note("phase", phase="finish")
            wl.finish()
            rc = wl.final_read()
            n.note("phase", phase="checked", final_read_rc=rc)
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        except Exception as e:  # noqa: BLE001
            status = f"error: {e}"
            log(f"  scenario {name} error: {e}")
        finally:
            wl.kill_all()
            try:
                n.heal_all()
            except Exception as e:  # noqa: BLE001
                log(f"  heal: {e}")
        res = checker.check_dir(sdir)
        res["scenario"] = name
        res["status"] = status
        res["seconds"] = round(time.monotonic() - t0, 1)
        res["passed"] = res["safety_failures"] == 0 and status == "ok"
        with open(os.path.join(sdir, "result.json"), "w") as f:
            json.dump(res, f, indent=2)
        txns = (f" txns committed/aborted/indeterminate={txn_counts(res)}" if res["workload"] == "txn" else "")
        log(f"  {name}: {'PASS' if res['passed'] else 'FAIL'} " + ", ".join(
            f"{k}={res[k]}" for k in checker.ALL_SAFETY if res[k]) +
            f" acked={res['acked']}{txns} unavailable={res['longest_unavailable_s']}s ({res['seconds']}s)")
        return res


COLS = [("lost", "lost"), ("duplicates", "dup"), ("moved", "moved"), ("phantom", "phantom"),
        ("dirty_reads", "dirty"), ("order_violations", "order"), ("committed_regressions", "commit-back"),
        ("skipped", "skipped"), ("final_incomplete", "incomplete"), ("aborted_reads", "aborted-read"),
        ("intermediate_reads", "intermediate"), ("lost_commits", "lost-commit"), ("no_commits", "no-commit")]


def txn_counts(r):
    return f"{r['txns_committed']}/{r['txns_aborted']}/{r['txns_indeterminate']}"


def table(results):
    head = ["scenario", "result"] + [c[1] for c in COLS] + ["acked", "failed", "pending", "txns c/a/i", "reads",
                                                            "unavail s", "secs"]
    rows = []
    for r in results:
        rows.append([r["scenario"], "pass" if r["passed"] else ("FAIL" if r["status"] == "ok" else "ERROR")]
                    + [str(r.get(c[0], "-")) for c in COLS]
                    + [str(r["acked"]), str(r["failed"]), str(r["pending"]),
                       txn_counts(r) if r.get("workload") == "txn" else "-", str(r["reads"]),
                       str(r["longest_unavailable_s"]), str(r["seconds"])])
    return head, rows


def human(results):
    head, rows = table(results)
    w = [max(len(x) for x in col) for col in zip(head, *rows)]
    lines = ["  ".join(h.ljust(n) for h, n in zip(head, w))]
    lines += ["  ".join(c.ljust(n) for c, n in zip(row, w)) for row in rows]
    return "\n".join(lines)


def markdown(results, meta):
    head, rows = table(results)
    out = [f"# Fault-injection results: {meta['target']}", "",
           f"- commit: `{meta['commit']}`", f"- date: {meta['date']}", f"- seed: {meta['seed']}",
           f"- form: {meta['form']}, faults {meta['duration']} s per scenario, "
           f"{meta['brokers']} brokers + 1 controller, RF 3, min.insync.replicas 2, "
           f"{meta['producers']} idempotent acks=all producers, {meta['consumers']} group members; "
           f"`+txn` rows: {meta['producers']} transactional producers, {meta['consumers']} read_committed "
           "group members",
           f"- wall clock: {meta['wall_s']} s; {meta['passed']} passed, {meta['failed']} failed", "",
           "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    out += ["", "Columns: safety counts from faults/checker.py (any non-zero fails the scenario); "
            "`unavail s` is the longest time without an acknowledged write (`+txn`: a committed "
            "transaction) while producers were sending; `failed`/`pending` are writes that got an error "
            "or no answer (indeterminate, allowed); `txns c/a/i`: transactions committed, aborted, and "
            "indeterminate (commit requested, not acknowledged: all or nothing may be visible).", ""]
    for r in results:
        if r.get("examples") or r["status"] != "ok":
            out.append(f"## {r['scenario']}")
            if r["status"] != "ok":
                out.append(f"status: {r['status']}")
            out.append("```json")
            out.append(json.dumps(r.get("examples", {}), indent=1)[:4000])
            out.append("```")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", choices=["rill", "kafka"], default="rill")
    ap.add_argument("--scenario", action="append",
                    help="scenario name, or NAME+txn for its transactional variant (repeatable); "
                         "default: the form's set")
    ap.add_argument("--workload", choices=sorted(WORKLOADS),
                    help="plain, txn or both: the variants of the chosen scenarios (or of the form's "
                         "scenarios) to run; default: plain for --scenario, the form's own list otherwise")
    ap.add_argument("--short", action="store_true")
    ap.add_argument("--long", action="store_true")
    ap.add_argument("--seed", type=int)
    ap.add_argument("--brokers", type=int, default=3, choices=[3, 5])
    ap.add_argument("--duration", type=float)
    ap.add_argument("--warmup", type=float, default=3)
    ap.add_argument("--settle", type=float, default=5)
    ap.add_argument("--producers", type=int, default=3)
    ap.add_argument("--consumers", type=int, default=2)
    ap.add_argument("--rate", type=float, default=50, help="records/s per producer")
    ap.add_argument("--tmpfs-mb", type=int, default=256)
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--recheck", choices=["short", "long"],
                    help="re-check the stored histories of the latest run of that form")
    args = ap.parse_args()
    if args.recheck:
        # Re-runs the checker over the stored histories of the latest
        # --short/--long run (faults/.run/<target>/) and rewrites its results.
        name = f"{args.target}-latest" if args.recheck == "long" else f"{args.target}-short-latest"
        path = os.path.join(HERE, "results", name + ".json")
        data = json.load(open(path))
        new = []
        for r in data["results"]:
            res = checker.check_dir(os.path.join(HERE, ".run", args.target, r["scenario"]))
            for k in ("scenario", "status", "seconds"):
                res[k] = r[k]
            res["passed"] = res["safety_failures"] == 0 and res["status"] == "ok"
            new.append(res)
        meta = data["meta"]
        meta["passed"] = sum(1 for r in new if r["passed"])
        meta["failed"] = len(new) - meta["passed"]
        meta["rechecked"] = datetime.datetime.now().isoformat(timespec="seconds")
        json.dump({"meta": meta, "results": new}, open(path, "w"), indent=1)
        open(path[:-5] + ".md", "w").write(markdown(new, meta))
        print(human(new))
        print(f"faults: {meta['passed']} passed, {meta['failed']} failed")
        return 0 if meta["failed"] == 0 else 1
    if args.list:
        print("\n".join(SCENARIOS))
        print("(each also as NAME+txn: the transactional workload; --short adds kill-leader+txn)")
        return 0
    if os.geteuid() != 0:
        raise SystemExit("faults: must run as root (network namespaces, tmpfs, ptrace)")
    form = "long" if args.long else "short" if args.short else "custom"
    if args.seed is None:
        args.seed = random.randrange(1, 1_000_000)
    if args.duration is None:
        args.duration = 30 if form == "long" else 25
    if args.scenario:
        names = []
        for s in args.scenario:
            names += [s] if "+" in s else variants([s], WORKLOADS[args.workload or "plain"])
    elif args.workload:
        names = variants(SHORT_BASES if form == "short" else list(SCENARIOS), WORKLOADS[args.workload])
    else:
        names = SHORT if form == "short" else LONG
    for s in names:
        base, wl = split_name(s)
        if base not in SCENARIOS or wl not in ("plain", "txn"):
            raise SystemExit(f"faults: unknown scenario {s} (--list)")
    set_prefix(args.target)
    log(f"target {args.target}, {form} form, seed {args.seed}, scenarios: {' '.join(names)}")
    suite = Suite(args)
    results = []
    started = time.monotonic()

    def on_signal(sig, _frame):
        suite.interrupted = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    rc = 0
    try:
        suite.setup()
        for i, s in enumerate(names):
            dur = args.duration * (4 if split_name(s)[0] == "mix" and form == "long" else 1)
            a_dur, args.duration = args.duration, dur
            try:
                results.append(suite.run_scenario(s, i))
            finally:
                args.duration = a_dur
    except KeyboardInterrupt:
        log("interrupted: cleaning up")
        rc = 130
    except Exception as e:  # noqa: BLE001
        log(f"error: {e}")
        rc = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        suite.teardown()
    wall = round(time.monotonic() - started, 1)
    passed = sum(1 for r in results if r["passed"])
    failed = len(names) - passed
    if results:
        print(human(results), flush=True)
    commit = sh("git", "-C", REPO, "rev-parse", "--short", "HEAD", check=False).stdout.strip()
    meta = {"target": args.target, "commit": commit, "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "seed": args.seed, "form": form, "duration": args.duration, "brokers": args.brokers,
            "producers": args.producers, "consumers": args.consumers, "wall_s": wall,
            "passed": passed, "failed": failed}
    # Short and long forms publish to faults/results/; single scenarios stay in the run directory.
    resdir = os.path.join(HERE, "results") if form != "custom" else suite.run_dir
    os.makedirs(resdir, exist_ok=True)
    # A long run of one workload only (--workload plain|txn) publishes
    # beside the full one, not over it.
    only = f"-{args.workload}" if args.workload in ("plain", "txn") else ""
    name = f"{args.target}{only}-latest" if form == "long" else f"{args.target}-{form}-latest"
    with open(os.path.join(resdir, name + ".json"), "w") as f:
        json.dump({"meta": meta, "results": results}, f, indent=1)
    with open(os.path.join(resdir, name + ".md"), "w") as f:
        f.write(markdown(results, meta))
    log(f"seed {args.seed}; wall clock {wall}s; results in {os.path.relpath(os.path.join(resdir, name + '.md'), REPO)}")
    print(f"faults: {passed} passed, {failed} failed", flush=True)
    if rc:
        return rc
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
