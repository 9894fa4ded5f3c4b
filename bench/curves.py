"""The client and consumer-group curves: Rill and Apache Kafka side by side
on 3 brokers (the clusters of bench/bench.py), in one run, with the same
client (rill-load, bench/load). Each point runs on a fresh cluster of each
system.

--curve clients, points = clients (10, 100, 1,000): a tenth of them produce
(--producer-share), a tenth consume (--consumer-share), the rest are idle.

1. A topic of --partitions (100) partitions, RF=3, min.insync.replicas=2.
2. The idle clients (--per-process to a rill-load process) connect: each a
   librdkafka handle on one broker (in turn) that asks for the topic's
   metadata at start and every --metadata-ms (10 s) and sends nothing else.
3. The producers send --rate (1,000) records/s of 1 KiB in total, keyed
   over every partition (acks=all), for --warmup-seconds (10) and then
   --seconds (30), measured: produce p50/p99/p99.9, the brokers' CPU
   (cores), the load client's CPU (every rill-load process), each broker's
   resident set (VmRSS) at the end, and the connections the clients hold
   to each broker. The consumers (without a group, each assigned an equal
   share of the partitions) read every record from the start; the point
   fails if any is missing.

--curve groups, points = consumer groups (10, 100, 1,000):

1. A topic of --group-partitions (6) partitions, RF=3.
2. Each group has one member (a librdkafka consumer in its own thread),
   which joins and is assigned every partition of the topic, paused (it
   never fetches).
3. Each group commits offsets for its partitions every --interval-ms
   (1,000 ms; the groups spread evenly over the interval), synchronously,
   for --warmup-seconds and then --seconds, measured: commit p50/p99/p99.9
   (latency of rd_kafka_commit), commits per second, each broker's CPU
   (cores) with the number of groups it coordinates (the leader of the
   group's __consumer_offsets partition), the load client's CPU.

Figures are printed and written, never asserted; a point that fails is
reported with its error and the run goes on. Writes OUT/CURVE.json,
OUT/CURVE.md and OUT/CURVE.png; bench/curves.sh runs it.
`curves.py --report-from OUT/CURVE.json` writes the report and chart of
a run again (after a change to them).
"""

import argparse
import json
import os
import select
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench as B  # noqa: E402
import scale  # noqa: E402

TOPIC = "curve"
# How long a rill-load process may take to connect its clients (or join
# its groups), and to finish after its measured seconds.
READY_TIMEOUT_S = 600
FINISH_TIMEOUT_S = 300


# --------------------------------------------------------------------------
# rill-load processes started together


class Loader:
    """A rill-load process run with --sync: it says "phase=ready" once its
    clients are connected, starts on a line on its standard input and says
    "phase=measure" and "phase=end" around its measured seconds. Idle-only
    processes hold their clients until their standard input closes."""

    def __init__(self, cfg, mode, args, log, holds_only=False):
        self.argv = [cfg.rill_load, mode] + args + ["--sync"]
        # Holds idle clients: waits for no start.
        self.holds_only = holds_only
        with open(log, "ab") as err:
            err.write(("\n$ " + " ".join(self.argv) + "\n").encode())
            err.flush()
            self.popen = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err)
        self.pid = self.popen.pid
        self.log = log
        self.lines = []

    def error(self, what):
        """`what`, with the last thing rill-load said on its standard error."""
        said = [ln for ln in B.tail(self.log, 40).splitlines() if ln.startswith("rill-load:")]
        return RuntimeError(f"{what}: {said[-1] if said else B.tail(self.log, 5)}")

    def wait_line(self, line, timeout):
        """Reads its output until `line`; raises after `timeout` or an exit."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.popen.stdout], [], [], left)[0]:
                raise self.error(f"rill-load said no {line!r} in {timeout} s")
            got = self.popen.stdout.readline().decode(errors="replace")
            if not got:
                self.popen.wait()
                raise self.error(f"rill-load exited {self.popen.returncode} before {line!r}")
            self.lines.append(got)
            if got.strip() == line:
                return

    def go(self):
        self.popen.stdin.write(b"go\n")
        self.popen.stdin.flush()

    def finish(self, timeout=FINISH_TIMEOUT_S):
        """Closes its standard input, waits for its exit; returns its last
        line, parsed (its JSON figures)."""
        try:
            out, _ = self.popen.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
            raise self.error(f"rill-load still running {timeout} s after its end")
        self.lines += out.decode(errors="replace").splitlines(keepends=True)
        with open(self.log, "a") as f:
            f.writelines(self.lines)
        if self.popen.returncode != 0:
            raise self.error(f"rill-load exited {self.popen.returncode}")
        return json.loads(self.lines[-1])

    def kill(self):
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()


def chunks(n, size):
    """`n` split into parts of at most `size`."""
    return [min(size, n - i) for i in range(0, n, size)]


def cpu_of(pids):
    return [B.proc_cpu_seconds(pid) for pid in pids]


class Window:
    """CPU seconds of the brokers, the load client and the whole machine
    between start() and end(), as cores."""

    def __init__(self, cluster, loaders):
        self.brokers = [p.pid for p in cluster.brokers]
        self.clients = [ld.pid for ld in loaders]

    def start(self):
        self.t0, self.machine0 = time.monotonic(), B.machine_busy_seconds()
        self.b0, self.c0 = cpu_of(self.brokers), cpu_of(self.clients)
        self.load_start = B.loadavg()

    def end(self):
        wall = time.monotonic() - self.t0
        b1, c1 = cpu_of(self.brokers), cpu_of(self.clients)
        broker = [(b - a) / wall for a, b in zip(self.b0, b1)]
        client = sum(c1) - sum(self.c0)
        machine = B.machine_busy_seconds() - self.machine0
        return {
            "seconds": wall,
            "broker_cores": broker,
            "client_cores": client / wall,
            # Everything else: the controller, other work on the machine,
            # kernel threads (writeback).
            "other_cores": max(0.0, machine - sum(broker) * wall - client) / wall,
            "load_start": self.load_start,
            "load_end": B.loadavg(),
        }


def connections(pids, ports):
    """Established TCP connections from the processes `pids` to each of
    `ports` (the brokers' Kafka ports)."""
    inodes = set()
    for pid in pids:
        fd_dir = f"/proc/{pid}/fd"
        for fd in os.listdir(fd_dir):
            try:
                link = os.readlink(os.path.join(fd_dir, fd))
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    counts = dict.fromkeys(ports, 0)
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            next(f)
            for line in f:
                fields = line.split()
                port = int(fields[2].rsplit(":", 1)[1], 16)
                if fields[3] == "01" and port in counts and fields[9] in inodes:
                    counts[port] += 1
    return [counts[p] for p in ports]


def broker_ports(cluster):
    return [int(addr.rsplit(":", 1)[1]) for addr in cluster.bootstrap.split(",")]


def run_together(loaders, on_measure, on_end):
    """Starts every loader at once (the first is the one that reports its
    phases), calls on_measure() and on_end() at its phases; returns the
    first loader's figures and the others'."""
    for ld in loaders:
        ld.wait_line("phase=ready", READY_TIMEOUT_S)
    for ld in loaders:
        if not ld.holds_only:
            ld.go()
    lead = loaders[0]
    lead.wait_line("phase=measure", READY_TIMEOUT_S)
    on_measure()
    lead.wait_line("phase=end", READY_TIMEOUT_S)
    on_end()
    return [ld.finish() for ld in loaders]


# --------------------------------------------------------------------------
# The curves


def create_topic(cfg, cluster, partitions, log):
    B.create_topic(cfg, cluster.bootstrap, TOPIC, {"min.insync.replicas": "2"}, log, partitions=partitions)


def clients_point(cfg, cluster, n, log):
    producers = max(1, round(n * cfg.producer_share))
    consumers = max(1, round(n * cfg.consumer_share))
    idle = n - producers - consumers
    if idle < 0:
        raise RuntimeError(f"{n} clients are fewer than {producers} producers and {consumers} consumers")
    out = {"producers": producers, "consumers": consumers, "idle": idle}
    create_topic(cfg, cluster, cfg.partitions, log)
    common = ["--bootstrap", cluster.bootstrap, "--topic", TOPIC, "--metadata-ms", str(cfg.metadata_ms)]
    loaders = []
    try:
        # The active clients' process first: it reports the phases. The idle
        # clients' processes connect while it waits.
        loaders.append(Loader(cfg, "clients", common + [
            "--producers", str(producers), "--consumers", str(consumers), "--idle", "0",
            "--throughput", str(cfg.rate), "--record-size", str(B.RECORD_SIZE),
            "--warmup-seconds", str(cfg.warmup_seconds), "--seconds", str(cfg.seconds)], log))
        for part in chunks(idle, cfg.per_process):
            loaders.append(Loader(cfg, "clients", common + ["--producers", "0", "--idle", str(part)], log,
                                  holds_only=True))
        window = Window(cluster, loaders)
        ports = broker_ports(cluster)

        def on_end():
            out.update(window.end())
            out["rss_bytes"] = [scale.rss_bytes(p.pid) for p in cluster.brokers]
            out["connections"] = connections([ld.pid for ld in loaders], ports)

        lead, *_ = run_together(loaders, window.start, on_end)
    finally:
        for ld in loaders:
            ld.kill()
    out["produce"] = {k: lead[k] for k in ("records", "measured", "records_per_s", "lat_p50_ms", "lat_p99_ms",
                                           "lat_p999_ms", "lat_max_ms", "consumed")}
    B.say(f"{cluster.system} {n} clients ({producers} producing, {consumers} consuming, {idle} idle): "
          f"{sum(out['connections'])} connections, produce p99 {lead['lat_p99_ms']:.1f} ms, brokers "
          f"{sum(out['broker_cores']):.2f} cores, client {out['client_cores']:.2f} cores, RSS "
          f"{', '.join(f'{r / 2**20:.0f}' for r in out['rss_bytes'])} MiB")
    return out


def groups_point(cfg, cluster, n, log):
    out = {}
    create_topic(cfg, cluster, cfg.group_partitions, log)
    loaders = []
    try:
        base = 0
        for part in chunks(n, cfg.per_process):
            args = ["--bootstrap", cluster.bootstrap, "--topic", TOPIC, "--groups", str(part),
                    "--group-base", str(base), "--interval-ms", str(cfg.interval_ms),
                    "--warmup-seconds", str(cfg.warmup_seconds), "--seconds", str(cfg.seconds),
                    "--timeout", str(READY_TIMEOUT_S * 1000),
                    "--latency-out", os.path.join(cfg.out, "logs", f"{cluster.system}-groups-{n}-{base}.lat")]
            loaders.append(Loader(cfg, "commit", args, log))
            base += part
        window = Window(cluster, loaders)
        figures = run_together(loaders, window.start, lambda: out.update(window.end()))
    finally:
        for ld in loaders:
            ld.kill()
    lat = []
    for ld in loaders:
        path = ld.argv[ld.argv.index("--latency-out") + 1]
        with open(path) as f:
            lat += [int(x) for x in f]
        os.remove(path)
    lat.sort()

    def pct(p):
        return lat[min(len(lat) - 1, int(p * len(lat)))] / 1000 if lat else None
    coordinated = {}
    for fig in figures:
        for c in fig["coordinators"]:
            coordinated[c["broker"]] = coordinated.get(c["broker"], 0) + c["groups"]
    out["commit"] = {
        "joined": sum(f["joined"] for f in figures),
        "join_s": max(f["join_s"] for f in figures),
        "commits": sum(f["commits"] for f in figures),
        "failed": sum(f["failed"] for f in figures),
        "late": sum(f["late"] for f in figures),
        "commits_per_s": sum(f["commits"] for f in figures) / cfg.seconds,
        "p50_ms": pct(0.5), "p99_ms": pct(0.99), "p999_ms": pct(0.999), "max_ms": lat[-1] / 1000 if lat else None,
    }
    # Broker i of the cluster is broker id i on both systems.
    out["coordinated"] = [coordinated.get(i, 0) for i in range(len(cluster.brokers))]
    c = out["commit"]
    B.say(f"{cluster.system} {n} groups: joined in {c['join_s']:.1f} s, {c['commits_per_s']:.0f} commits/s, "
          f"p99 {c['p99_ms']} ms; brokers {', '.join(f'{x:.2f}' for x in out['broker_cores'])} cores "
          f"coordinating {out['coordinated']} groups; client {out['client_cores']:.2f} cores")
    return out


CURVES = {
    "clients": {"point": clients_point, "unit": "clients", "default_points": "10,100,1000"},
    "groups": {"point": groups_point, "unit": "groups", "default_points": "10,100,1000"},
}


def measure(cfg, system, n, log):
    point = CURVES[cfg.curve]["point"]
    nodes_log = os.path.join(cfg.out, "logs", f"{system}-{cfg.curve}-{n}-nodes")
    with scale.fresh_cluster(cfg, system, os.path.join(cfg.work, system), keep_logs=nodes_log) as (cluster, _):
        out = point(cfg, cluster, n, log)
    return {"system": system, "points": n, **out}


# --------------------------------------------------------------------------
# Report


def fmt(x, digits=1):
    return "-" if x is None else f"{x:,.{digits}f}"


def mib(values):
    return ", ".join(f"{x / 2**20:.0f}" for x in values)


def load(r):
    return f"{r['load_start'][0]:.1f} → {r['load_end'][0]:.1f}"


def report(cfg, results, meta, path_md, path_png):
    ok = [r for r in results if "error" not in r]
    lines = []
    w = lines.append
    w(f"# {cfg.curve.capitalize()} scale: Rill and Apache Kafka")
    w("")
    w(f"{meta['date']} · Rill commit `{meta['commit']}` ({meta['rill_profile']}) · Kafka {meta['kafka_version']} · "
      f"command: `{cfg.command}`")
    w("")
    w(f"Machine: {meta['cpus']} cores ({meta['cpu_model']}), {meta['mem_gb']:.1f} GB RAM, {meta['kernel']}, data on "
      f"{meta['data_fs']}; Java {meta['java']}. The machine is shared: \"other\" is the CPU used during the "
      f"measured window by everything but the brokers and the load client (the controller, other work, kernel "
      f"threads), in cores. The load average (1 min, at the start and end of the window) also counts the load "
      f"client's own threads (thousands at 1,000 clients or groups), so there it is high whatever else runs.")
    w("")
    if cfg.curve == "clients":
        w(f"3 brokers on loopback, one topic of {cfg.partitions} partitions (RF=3, min.insync.replicas=2). Of N "
          f"clients (each a librdkafka handle of rill-load), {cfg.producer_share:.0%} produce {cfg.rate} records/s "
          f"of 1 KiB in total (acks=all, linger.ms=5, keyed over every partition), {cfg.consumer_share:.0%} "
          f"consume (no group, the partitions shared out, every record read), the rest are idle (one connection "
          f"to one broker each, a metadata request every {cfg.metadata_ms / 1000:g} s). Measured over "
          f"{cfg.seconds:g} s after {cfg.warmup_seconds:g} s of the same: produce latency (send to "
          f"acknowledgement), CPU in cores (brokers summed; the load client's rill-load processes), each "
          f"broker's resident set at the end, the clients' connections to the brokers.")
        w("")
        w("| clients | system | producing / consuming / idle | connections | produce p50 / p99 / p99.9 ms | "
          "brokers' cores | client cores | other | RSS MiB per broker | load avg |")
        w("|---|---|---|---|---|---|---|---|---|---|")
        for r in ok:
            p = r["produce"]
            w(f"| {r['points']:,} | {r['system']} | {r['producers']} / {r['consumers']} / {r['idle']} | "
              f"{sum(r['connections']):,} | {fmt(p['lat_p50_ms'])} / {fmt(p['lat_p99_ms'])} / "
              f"{fmt(p['lat_p999_ms'])} | {sum(r['broker_cores']):.2f} | {r['client_cores']:.2f} | "
              f"{r['other_cores']:.2f} | {mib(r['rss_bytes'])} | {load(r)} |")
        figs = [("produce p99 ms", lambda r: r["produce"]["lat_p99_ms"]),
                ("RSS per broker MiB", lambda r: sum(r["rss_bytes"]) / 3 / 2**20),
                ("brokers' cores", lambda r: sum(r["broker_cores"])),
                ("load client's cores", lambda r: r["client_cores"])]
    else:
        w(f"3 brokers on loopback, one topic of {cfg.group_partitions} partitions (RF=3). N consumer groups of "
          f"one member each (a librdkafka consumer of rill-load in its own thread, assigned every partition, "
          f"paused: it never fetches), each committing offsets for its partitions every {cfg.interval_ms} ms "
          f"(rd_kafka_commit, synchronous; the groups spread evenly over the interval). Measured over "
          f"{cfg.seconds:g} s after {cfg.warmup_seconds:g} s of the same: commit latency (the call), commits "
          f"per second (late: started an interval or more after due), CPU in cores per broker with the groups "
          f"it coordinates (leader of the group's `__consumer_offsets` partition), the load client's CPU.")
        w("")
        w("| groups | system | join s | commits/s (late, failed) | commit p50 / p99 / p99.9 ms | "
          "cores per broker (groups coordinated) | brokers' cores | client cores | other | load avg |")
        w("|---|---|---|---|---|---|---|---|---|---|")
        for r in ok:
            c = r["commit"]
            per = ", ".join(f"{x:.2f} ({g})" for x, g in zip(r["broker_cores"], r["coordinated"]))
            w(f"| {r['points']:,} | {r['system']} | {fmt(c['join_s'])} | {c['commits_per_s']:,.0f} ({c['late']}, "
              f"{c['failed']}) | {fmt(c['p50_ms'], 2)} / {fmt(c['p99_ms'], 2)} / {fmt(c['p999_ms'], 2)} | {per} | "
              f"{sum(r['broker_cores']):.2f} | {r['client_cores']:.2f} | {r['other_cores']:.2f} | {load(r)} |")
        figs = [("commit p99 ms", lambda r: r["commit"]["p99_ms"]),
                ("brokers' cores", lambda r: sum(r["broker_cores"])),
                ("busiest broker's cores", lambda r: max(r["broker_cores"])),
                ("load client's cores", lambda r: r["client_cores"])]
    if cfg.curve == "clients":
        for r in ok:
            p = r["produce"]
            if p["consumed"] != p["records"]:
                w("")
                w(f"{r['system']} at {r['points']:,} clients: the consumers read {p['consumed']:,} records for "
                  f"{p['records']:,} acknowledged: some records were written twice (a producer retry; rill-load "
                  f"produces without idempotence) or read twice.")
    failed = [r for r in results if "error" in r]
    if failed:
        w("")
        for r in failed:
            w(f"- {r['system']} at {r['points']:,} {cfg.curve}: failed: {r['error'].splitlines()[0][:300]}")
    w("")
    w(f"![chart]({os.path.basename(path_png)})")
    with open(path_md, "w") as f:
        f.write("\n".join(lines) + "\n")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, axes = plt.subplots(1, len(figs), figsize=(4 * len(figs), 3.5))
    for ax, (title, get) in zip(axes, figs):
        for system in ("kafka", "rill"):
            pts = [(r["points"], get(r)) for r in ok if r["system"] == system and get(r) is not None]
            if pts:
                ax.plot([x for x, _ in pts], [y for _, y in pts], marker="o", label=system)
        ax.set_xscale("log")
        if "ms" in title:
            ax.set_yscale("log")
        ax.set_title(title)
        ax.set_xlabel(CURVES[cfg.curve]["unit"])
        if ax.lines:
            ax.legend()
    fig.tight_layout()
    fig.savefig(path_png, dpi=90)


def settings(cfg):
    """The options a report describes."""
    return {k: getattr(cfg, k) for k in REPORTED}


REPORTED = ["command", "seconds", "warmup_seconds", "partitions", "rate", "producer_share", "consumer_share",
            "metadata_ms", "group_partitions", "interval_ms"]


def report_from(path):
    """Writes the report and chart of a run's JSON next to it again."""
    with open(path) as f:
        run = json.load(f)
    cfg = argparse.Namespace(curve=run["curve"], **run["settings"])
    base = os.path.splitext(path)[0]
    report(cfg, run["results"], run["meta"], base + ".md", base + ".png")
    print(open(base + ".md").read())
    return 0


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--report-from":
        return report_from(sys.argv[2])
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--curve", choices=sorted(CURVES), required=True)
    ap.add_argument("--points", help="clients or groups per point (default 10,100,1000)")
    ap.add_argument("--systems", default="kafka,rill")
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--warmup-seconds", type=float, default=10, help="unmeasured load first")
    ap.add_argument("--per-process", type=int, default=250,
                    help="clients or groups per rill-load process (each handle takes threads and descriptors)")
    ap.add_argument("--partitions", type=int, default=100, help="clients: partitions of the topic")
    ap.add_argument("--rate", type=int, default=1000, help="clients: records/s of 1 KiB, in total")
    ap.add_argument("--producer-share", type=float, default=0.1, help="clients: fraction producing")
    ap.add_argument("--consumer-share", type=float, default=0.1, help="clients: fraction consuming")
    ap.add_argument("--metadata-ms", type=int, default=10000, help="clients: idle clients' metadata interval")
    ap.add_argument("--group-partitions", type=int, default=B.PARTITIONS, help="groups: partitions of the topic")
    ap.add_argument("--interval-ms", type=int, default=1000, help="groups: each group commits this often")
    ap.add_argument("--out", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--rill-bin", required=True)
    ap.add_argument("--kafka-port", type=int, default=19500)
    ap.add_argument("--rill-port", type=int, default=21500)
    ap.add_argument("--command", default="bench/curves.sh")
    cfg = ap.parse_args()
    scale.client_config(cfg)
    os.makedirs(cfg.work, exist_ok=True)
    points = [int(x) for x in (cfg.points or CURVES[cfg.curve]["default_points"]).split(",")]
    meta = B.machine_meta(cfg)
    results = []
    path_json = os.path.join(cfg.out, f"{cfg.curve}.json")
    try:
        for n in points:
            for system in cfg.systems.split(","):
                log = os.path.join(cfg.out, "logs", f"{system}-{cfg.curve}-{n}.log")
                B.say(f"--- {system}: {n} {cfg.curve}")
                t0 = time.monotonic()
                try:
                    results.append(measure(cfg, system, n, log))
                except Exception as e:  # a point that fails is reported, the run goes on
                    B.say(f"{system} {n} {cfg.curve} failed: {e}")
                    results.append({"system": system, "points": n, "error": str(e)})
                results[-1]["wall_s"] = time.monotonic() - t0
                with open(path_json, "w") as f:
                    json.dump({"curve": cfg.curve, "meta": meta, "settings": settings(cfg), "results": results},
                              f, indent=1)
    finally:
        B.Proc.kill_all()
    report(cfg, results, meta, os.path.join(cfg.out, f"{cfg.curve}.md"), os.path.join(cfg.out, f"{cfg.curve}.png"))
    print(open(os.path.join(cfg.out, f"{cfg.curve}.md")).read())
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
