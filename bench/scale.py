"""The partition-scale curve: Rill and Apache Kafka side by side with 6 to
30,000 partition replicas over 3 brokers (RF=3), in one run.

For each point (partition replicas R: a topic of R/3 partitions) and each
system, on a fresh cluster (the clusters of bench/bench.py):

1. **Create**: the topics (R/3 partitions in topics of at most 1,000,
   min.insync.replicas=2) through the Admin API, timed until every
   partition has a leader.
2. **Produce** (after --warmup-seconds of the same, unmeasured) at a fixed total rate (--rate records/s of 1 KiB, acks=all,
   for --seconds) with rill-load, each record keyed so that records spread
   over every partition: produce latency p50/p99/p99.9 and the brokers' CPU
   over the run (cores). A produce request may take --request-timeout-ms
   (default 300 s, both systems) before the client fails it, so a cluster
   that falls behind the rate shows how far instead of failing the point.
   Records the client still gives up on (message.timeout.ms) are counted
   and the point goes on: its p99 over every record sent is then at least
   that timeout, and the remaining steps measure the cluster as it is.
3. **Idle**: --idle-seconds without clients: the brokers' CPU at rest
   (what thousands of partitions cost when nothing happens).
4. **Memory**: each broker's resident set (VmRSS) after that, and per
   partition replica.
5. **Start-up**: broker 2 stopped with SIGTERM and started again: seconds
   until it is ready (Rill: RILL_READY; Kafka: "Kafka Server started").
6. **Recovery**: broker 2 SIGKILLed (unclean shutdown) and started again:
   seconds until it is ready.
7. **Failover**: once every partition has a leader again, broker 0 is
   SIGKILLed; seconds until no partition is without a leader or led by
   broker 0 (metadata polled through brokers 1 and 2 every 100 ms).

Figures are printed and written, never asserted. Writes OUT/scale.json,
OUT/scale.md and OUT/scale.png; bench/scale.sh runs it (and --publish
copies them to bench/results/scale-latest.*).
"""

import argparse
import contextlib
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench as B  # noqa: E402

POLL_S = 0.1
# Partitions per topic: Rill takes at most 1,000 per topic and Kafka refuses
# a creation of 10,000 partitions at once ("excessively large batch"), so a
# point is several topics of at most this many partitions.
TOPIC_PARTITIONS = 1000


def topics_for(partitions):
    """(name, partitions) of the topics holding `partitions` partitions."""
    n = -(-partitions // TOPIC_PARTITIONS)
    return [(f"scale-{i}", partitions // n + (1 if i < partitions % n else 0)) for i in range(n)]


@contextlib.contextmanager
def fresh_cluster(cfg, system, workdir, keep_logs=None):
    """A started 3-broker cluster of `system` in an empty `workdir`, stopped
    and removed afterwards (its nodes' logs copied into `keep_logs` first,
    when given); yields (cluster, its brokers' start-up seconds)."""
    shutil.rmtree(workdir, ignore_errors=True)
    os.makedirs(workdir)
    cluster = B.make_cluster(cfg, system, workdir)
    try:
        yield cluster, cluster.start()
    finally:
        cluster.stop()
        if keep_logs:
            # The nodes' own logs sit in the work directory or one level
            # down (data is deeper: its segments end in .log too).
            os.makedirs(keep_logs, exist_ok=True)
            for path in glob.glob(os.path.join(workdir, "*.log")) + glob.glob(os.path.join(workdir, "*", "*.log")):
                shutil.copy(path, os.path.join(keep_logs, os.path.basename(path)))
        shutil.rmtree(workdir, ignore_errors=True)


def client_config(cfg):
    """Completes parsed options with what bench.py's clusters and tools
    read: timeouts, rill-load and Kafka's classpath (from bench/lib.sh)."""
    cfg.start_timeout = 900
    cfg.stop_timeout = 120
    cfg.tool_timeout = 1800
    cfg.client = "rdkafka"
    cfg.rill_load = os.environ["RILL_LOAD"]
    cfg.classpath = os.environ["COMPAT_CLASSPATH"]
    cfg.tool_classpath = os.environ["BENCH_CLASSES"] + ":" + cfg.classpath
    os.makedirs(os.path.join(cfg.out, "logs"), exist_ok=True)


def broker_cpu(cluster):
    return [B.proc_cpu_seconds(p.pid) for p in cluster.brokers]


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def leaderless(cfg, bootstrap, dead=None):
    """(partitions, partitions without a leader or led by `dead`) from one
    metadata request; None when it fails (a broker going away)."""
    argv = [cfg.rill_load, "leaders", "--bootstrap", bootstrap, "--topic", cfg.topics]
    if dead is not None:
        argv += ["--not", str(dead)]
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return None
    if r.returncode != 0:
        return None
    fields = dict(kv.split("=") for kv in r.stdout.split())
    return int(fields["partitions"]), int(fields["leaderless"])


def wait_led(cfg, bootstrap, partitions, timeout, dead=None):
    """Seconds until metadata shows `partitions` partitions, all led (not by
    `dead`); None after `timeout`."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        got = leaderless(cfg, bootstrap, dead)
        if got and got[0] == partitions and got[1] == 0:
            return time.monotonic() - t0
        time.sleep(POLL_S)
    return None


def measure_point(cfg, out, workdir, log):
    """Measures one point into `out` (system and replicas set), step by
    step, so a point that fails keeps what it measured before."""
    system, replicas = out["system"], out["replicas"]
    partitions = replicas // 3
    out["partitions"] = partitions
    with fresh_cluster(cfg, system, workdir) as (cluster, startup):
        out["first_startup_s"] = startup
        bootstrap = cluster.bootstrap
        out["step"] = "create"
        t0 = time.monotonic()
        topics = topics_for(partitions)
        cfg.topics = ",".join(name for name, _ in topics)
        for name, n in topics:
            B.java_tool(
                cfg, "BenchTool",
                ["create", "--bootstrap", bootstrap, "--topic", name, "--partitions", str(n),
                 "--replication-factor", "3", "--config", "min.insync.replicas=2",
                 "--wait-seconds", str(cfg.create_timeout)],
                log, cfg.create_timeout + 120)
        out["create_s"] = time.monotonic() - t0
        out["topics"] = len(topics)
        B.say(f"{system} {replicas} replicas: {len(topics)} topics of {partitions} partitions led after "
              f"{out['create_s']:.1f}s")

        # Warm-up (the JIT of Kafka's brokers), then produce at the fixed rate.
        if cfg.warmup_seconds > 0:
            out["step"] = "warm-up"
            warm = produce_at_rate(cfg, bootstrap, int(cfg.rate * cfg.warmup_seconds), log)
            if warm["not_acknowledged"]:
                out["warmup_not_acknowledged"] = warm["not_acknowledged"]
                B.say(f"{system} {replicas} replicas: warm-up: {warm['not_acknowledged']} records not acknowledged "
                      f"({warm['failure']})")
        out["step"] = "produce"
        records = int(cfg.rate * cfg.seconds)
        cpu0, t0 = broker_cpu(cluster), time.monotonic()
        prod = produce_at_rate(cfg, bootstrap, records, log)
        wall = time.monotonic() - t0
        cpu1 = broker_cpu(cluster)
        out["produce"] = {
            "records_per_s": prod["records_per_s"],
            "p50_ms": prod["lat_p50_ms"], "p99_ms": prod["lat_p99_ms"], "p999_ms": prod["lat_p999_ms"],
            "broker_cores": (sum(cpu1) - sum(cpu0)) / wall,
            "client_cpu_s": prod["cpu_s"],
        }
        if prod["not_acknowledged"]:
            out["produce"].update(not_acknowledged=prod["not_acknowledged"], records=records,
                                  failure=prod["failure"])
            # A record the client gave up on after message.timeout.ms took
            # at least that long: when more than 1% did, the p99 over every
            # record sent is at least the timeout (the percentiles above
            # count only the acknowledged ones).
            if "timed out" in prod["failure"] and prod["not_acknowledged"] > records / 100:
                out["produce"]["p99_at_least_ms"] = message_timeout_ms(cfg)
        B.say(f"{system} {replicas} replicas: produce {prod['records_per_s']:.0f} rec/s, p50 {prod['lat_p50_ms']} ms, "
              f"p99 {prod['lat_p99_ms']} ms, brokers {out['produce']['broker_cores']:.2f} cores"
              + (f", {prod['not_acknowledged']} of {records} records not acknowledged ({prod['failure']})"
                 if prod["not_acknowledged"] else ""))

        # At rest.
        out["step"] = "idle"
        cpu0, t0 = broker_cpu(cluster), time.monotonic()
        time.sleep(cfg.idle_seconds)
        cpu1 = broker_cpu(cluster)
        out["idle_broker_cores"] = (sum(cpu1) - sum(cpu0)) / (time.monotonic() - t0)
        out["rss_bytes"] = [rss_bytes(p.pid) for p in cluster.brokers]
        out["rss_per_replica_kib"] = sum(out["rss_bytes"]) / replicas / 1024
        B.say(f"{system} {replicas} replicas: idle brokers {out['idle_broker_cores']:.3f} cores, RSS "
              f"{', '.join(f'{r / 2**20:.0f}' for r in out['rss_bytes'])} MiB "
              f"({out['rss_per_replica_kib']:.1f} KiB per replica)")

        # Clean restart, then unclean restart, of broker 2.
        out["step"] = "restart"
        cluster.brokers[2].stop(cfg.stop_timeout)
        out["restart_s"] = cluster.restart_broker(2)
        wait_led(cfg, bootstrap, partitions, cfg.create_timeout)
        cluster.brokers[2].popen.send_signal(signal.SIGKILL)
        cluster.brokers[2].popen.wait()
        out["recovery_s"] = cluster.restart_broker(2)
        B.say(f"{system} {replicas} replicas: broker 2 ready {out['restart_s']:.2f}s after a clean stop, "
              f"{out['recovery_s']:.2f}s after SIGKILL")

        # Failover of broker 0's leaders.
        out["step"] = "failover"
        if wait_led(cfg, bootstrap, partitions, cfg.create_timeout) is None:
            raise RuntimeError("partitions without a leader before the failover")
        # Let the restarted broker catch up into every ISR first.
        time.sleep(cfg.settle_seconds)
        survivors = ",".join(bootstrap.split(",")[1:])
        cluster.brokers[0].popen.send_signal(signal.SIGKILL)
        t0 = time.monotonic()
        cluster.brokers[0].popen.wait()
        took = wait_led(cfg, survivors, partitions, cfg.create_timeout, dead=0)
        out["failover_s"] = None if took is None else time.monotonic() - t0
        B.say(f"{system} {replicas} replicas: every partition led again {out['failover_s']} s after broker 0 was killed")
    del out["step"]  # only a failed point keeps the step it stopped in


def produce_at_rate(cfg, bootstrap, records, log):
    """rill-load producing `records` at --rate over every partition; returns
    its summary (JSON) plus `not_acknowledged` (failed or never answered)
    and `failure` (the client's first error). Records that time out are a
    result, not a failure of the point: a cluster that cannot keep up at
    this scale is measured as such, and the later steps still run. Any
    other failure of the client raises."""
    text = B.rill_load(
        cfg, "produce",
        ["--bootstrap", bootstrap, "--topic", cfg.topics, "--records", str(records),
         "--record-size", str(B.RECORD_SIZE), "--throughput", str(cfg.rate), "--keys"]
        + client_settings(cfg),
        log, timeout=records / cfg.rate * 10 + 300 + message_timeout_ms(cfg) / 1000, ok=(0, 1))
    lines = text.strip().splitlines()
    try:
        summary = json.loads(lines[-1])
    except (IndexError, ValueError):
        raise RuntimeError(f"rill-load produce printed no summary: {B.tail(log, 15)}") from None
    summary["not_acknowledged"] = summary["failed"] + summary["unacknowledged"]
    summary["failure"] = ""
    if summary["not_acknowledged"]:
        # Its verdict, on stderr: "rill-load: N records failed (REASON), M never acknowledged".
        said = [line for line in B.tail(log, 50).splitlines() if line.startswith("rill-load: ")]
        summary["failure"] = said[-1].split("(", 1)[-1].split(")", 1)[0] if said else "?"
        if summary["failed"] and "timed out" not in summary["failure"]:
            raise RuntimeError(f"rill-load produce: {said[-1] if said else B.tail(log, 15)}")
    return summary


def message_timeout_ms(cfg):
    return max(cfg.request_timeout_ms, 300000)


def client_settings(cfg):
    """librdkafka settings of both produce runs, the same for both systems:
    a produce request may take --request-timeout-ms before the client gives
    up on it, so a cluster that falls behind the rate shows its latency
    instead of failing at librdkafka's default of 30 s."""
    return ["-X", f"request.timeout.ms={cfg.request_timeout_ms}",
            "-X", f"message.timeout.ms={message_timeout_ms(cfg)}"]


def fmt(x, digits=1):
    return "-" if x is None else f"{x:.{digits}f}"


def error_summary(error):
    """The lines of a failed point's error that say what happened: for a
    rill-load run, its own verdict and figures (librdkafka's log lines are
    in the point's log); otherwise the first line."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    said = [line for line in lines if line.startswith("rill-load:") or " records sent, " in line]
    text = " ".join(said or lines[:1]) or "?"
    return text.replace("|", "/")


def p99_of_sent(produce):
    """(p99 over every record sent, "" or "≥"): the acknowledged records'
    p99, or the client's timeout when more than 1% of them timed out."""
    if "p99_at_least_ms" in produce:
        return produce["p99_at_least_ms"], "≥"
    return produce["p99_ms"], ""


def p99_ratio(kafka, rill):
    """Rill's p99 over Kafka's, "≤ x" when Kafka's is a lower bound (and
    "≥ x" the other way round; "-" when both are)."""
    (k, k_bound), (r, r_bound) = p99_of_sent(kafka), p99_of_sent(rill)
    if not k or (k_bound and r_bound):
        return "-"
    x = r / k
    return f"{'≤ ' if k_bound else '≥ ' if r_bound else ''}{f'{x:.2g}' if x < 0.01 else f'{x:.2f}'}"


def unacknowledged(produce):
    """What a produce cell adds when records were not acknowledged."""
    if not produce.get("not_acknowledged"):
        return ""
    share = produce["not_acknowledged"] / produce["records"]
    bound = f"; p99 ≥ {produce['p99_at_least_ms']}" if "p99_at_least_ms" in produce else ""
    return f" ({share:.0%} of records not acknowledged: {produce['failure']}{bound})"


def report(cfg, results, meta, path_md, path_png):
    lines = []
    w = lines.append
    w("# Partition scale: Rill and Apache Kafka")
    w("")
    w(f"{meta['date']} · Rill commit `{meta['commit']}` ({meta['rill_profile']}) · Kafka {meta['kafka_version']} · "
      f"command: `{cfg.command}`")
    w("")
    w(f"Machine: {meta['cpus']} cores ({meta['cpu_model']}), {meta['mem_gb']:.1f} GB RAM, {meta['kernel']}, data on "
      f"{meta['data_fs']}; Java {meta['java']}. Load average (1, 5, 15 min) at the start "
      f"{meta['load_start']}, at the end {meta['load_end']}.")
    w("")
    w(f"3 brokers, RF=3, min.insync.replicas=2; {cfg.rate} records/s of 1 KiB (acks=all, keyed over every "
      f"partition, rill-load, request.timeout.ms={cfg.request_timeout_ms}, "
      f"message.timeout.ms={message_timeout_ms(cfg)}) for {cfg.seconds} s; idle {cfg.idle_seconds} s. "
      "Latencies count the acknowledged records; a record the client gave up on took at least "
      "message.timeout.ms, so where more than 1% did, the p99 over every record sent is at least that "
      "(the p99 ratio then reads ≤).")
    w("")
    w("| replicas | system | create s | produce p50 / p99 / p99.9 ms | brokers' cores producing | idle | "
      "RSS MiB per broker | KiB per replica | restart s | recovery s (SIGKILL) | failover s |")
    w("|---|---|---|---|---|---|---|---|---|---|---|")
    done = [r for r in results if "error" not in r]
    failed = [r for r in results if "error" in r]
    for r in done:
        p = r.get("produce", {})
        w(f"| {r['replicas']} | {r['system']} | {fmt(r.get('create_s'))} | "
          f"{p.get('p50_ms', '-')} / {p.get('p99_ms', '-')} / {p.get('p999_ms', '-')}{unacknowledged(p)} | "
          f"{fmt(p.get('broker_cores'), 2)} | {fmt(r.get('idle_broker_cores'), 3)} | "
          f"{', '.join(f'{x / 2**20:.0f}' for x in r.get('rss_bytes', []))} | {fmt(r.get('rss_per_replica_kib'))} | "
          f"{fmt(r.get('restart_s'), 2)} | {fmt(r.get('recovery_s'), 2)} | {fmt(r.get('failover_s'), 2)} |")
    w("")
    w("Ratios (Rill / Kafka) per point:")
    w("")
    w("| replicas | p99 | RSS | idle CPU | failover |")
    w("|---|---|---|---|---|")
    by = {(r["replicas"], r["system"]): r for r in results}
    for n in sorted({r["replicas"] for r in results}):
        k, rl = by.get((n, "kafka")), by.get((n, "rill"))
        if k and rl and "error" in k and "error" not in rl:
            w(f"| {n} | Kafka failed | Kafka failed | Kafka failed | Kafka failed |")
            continue
        if not (k and rl and "error" not in k and "error" not in rl):
            continue

        def ratio(a, b):
            return "-" if not a or b is None else f"{b / a:.2f}"
        w(f"| {n} | {p99_ratio(k['produce'], rl['produce'])} | "
          f"{ratio(sum(k['rss_bytes']), sum(rl['rss_bytes']))} | "
          f"{ratio(k['idle_broker_cores'], rl['idle_broker_cores'])} | "
          f"{ratio(k.get('failover_s'), rl.get('failover_s'))} |")
    if failed:
        w("")
        w("Points that did not complete (what they measured before they failed is in scale.json):")
        w("")
        w("| replicas | system | create s | failed in | error |")
        w("|---|---|---|---|---|")
        for r in failed:
            w(f"| {r['replicas']} | {r['system']} | {fmt(r.get('create_s'))} | {r.get('step', '?')} | "
              f"{error_summary(r['error'])} |")
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
    figs = [("produce p99 ms", lambda r: p99_of_sent(r["produce"])[0]),
            ("RSS per broker MiB", lambda r: sum(r["rss_bytes"]) / 3 / 2**20),
            ("idle brokers' cores", lambda r: r["idle_broker_cores"]),
            ("failover s", lambda r: r["failover_s"])]
    fig, axes = plt.subplots(1, len(figs), figsize=(4 * len(figs), 3.5))
    for ax, (title, get) in zip(axes, figs):
        for system in ("kafka", "rill"):
            pts = [(r["replicas"], get(r)) for r in done if r["system"] == system and "produce" in r
                   and get(r) is not None]
            if pts:
                ax.plot([x for x, _ in pts], [y for _, y in pts], marker="o", label=system)
        ax.set_xscale("log")
        ax.set_title(title)
        ax.set_xlabel("partition replicas")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path_png, dpi=90)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", default="6,600,6000,30000", help="partition replicas per point")
    ap.add_argument("--systems", default="kafka,rill")
    ap.add_argument("--rate", type=int, default=5000, help="records/s of 1 KiB, in total")
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--warmup-seconds", type=float, default=10, help="unmeasured producing first")
    ap.add_argument("--idle-seconds", type=float, default=20)
    ap.add_argument("--settle-seconds", type=float, default=10)
    ap.add_argument("--create-timeout", type=int, default=600)
    ap.add_argument("--request-timeout-ms", type=int, default=300000,
                    help="librdkafka's request.timeout.ms for the produce runs (both systems)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--rill-bin", required=True)
    ap.add_argument("--kafka-port", type=int, default=19500)
    ap.add_argument("--rill-port", type=int, default=21500)
    ap.add_argument("--command", default="bench/scale.sh")
    cfg = ap.parse_args()
    client_config(cfg)
    os.makedirs(cfg.work, exist_ok=True)
    meta = B.machine_meta(cfg)
    meta["load_start"] = [round(x, 2) for x in os.getloadavg()]
    results = []
    path_json = os.path.join(cfg.out, "scale.json")
    try:
        for n in [int(x) for x in cfg.points.split(",")]:
            for system in cfg.systems.split(","):
                log = os.path.join(cfg.out, "logs", f"{system}-{n}.log")
                B.say(f"--- {system}: {n} partition replicas")
                out = {"system": system, "replicas": n}
                results.append(out)
                try:
                    measure_point(cfg, out, os.path.join(cfg.work, system), log)
                except Exception as e:  # a point that fails is reported, the run goes on
                    B.say(f"{system} {n} replicas failed: {e}")
                    out["error"] = str(e)
                with open(path_json, "w") as f:
                    json.dump(results, f, indent=1)
    finally:
        B.Proc.kill_all()
    meta["load_end"] = [round(x, 2) for x in os.getloadavg()]
    report(cfg, results, meta, os.path.join(cfg.out, "scale.md"), os.path.join(cfg.out, "scale.png"))
    for r in results:
        if "error" in r:
            print(f"FAILED: {r['system']} {r['replicas']}: {r['error']}")
    print(open(os.path.join(cfg.out, "scale.md")).read())
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
