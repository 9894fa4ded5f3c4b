"""The soak test: a 3-broker Rill cluster under a mixed workload for a given
time, sampled every minute, failing on growth that does not level off.

Workload, every minute (one "round"):

- a producer (rill-load, acks=all, keyed over the topic's partitions) at
  --rate records/s of 1 KiB for the minute: its produce p99 is the round's;
- a consumer of one of --groups groups (in turn) reads what the round
  wrote and leaves: every round a member joins and leaves a group (group
  churn), and the groups' offsets keep moving;
- every --restart-every minutes, one broker (in turn) is stopped with
  SIGTERM and started again while the round runs.

The topic keeps what its last 10 minutes wrote (retention.ms, with
segments of 32 MiB that retention can delete), as a production topic
keeps a bounded window: the run then reaches a steady state in which the
brokers' memory, descriptors and data stop growing unless something
leaks. (Without retention, the brokers' in-memory segment indexes, about
1/200 of the retained data at the workload's batch sizes, would grow with
the log.)

Every round prints and records, per broker: RSS (VmRSS), open file
descriptors, CPU (cores over the round), and the round's produce p99.

Between rounds' samples, every --sample-seconds (2) a sampler records each
broker's RSS and open descriptors, so the verdict rests on hundreds of
samples, not on the one taken at a round's end.

The run fails when, for a broker, RSS or open file descriptors in the last
half of the run grow by more than --max-growth (5%): the lowest sample of
the last quarter against the lowest of the quarter before it, samples
within --warm-seconds (120) of that broker's restart left out (a restarted
broker starts small and warms up). The lowest sample is the memory a broker
holds between bursts: a consumer catching up or a takeover needs buffers
for a few seconds, and the allocator returns them; what a leak holds is
never returned, so it lifts the lowest sample too. Also fails when a
round's producer or consumer fails. Writes OUT/soak.json (round samples,
and the dense samples) and OUT/soak.md.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench as B  # noqa: E402

TOPIC = "soak"
PARTITIONS = 12
# The window the topic keeps (see the module docs).
RETENTION_MS = 10 * 60 * 1000
SEGMENT_BYTES = 32 << 20


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def growth(samples, restarts, warm_s):
    """(value, growth) of one broker's series [(t, value)]: the lowest
    value in the last quarter of the run over the lowest in the quarter
    before, leaving out samples within `warm_s` after a restart."""
    if len(samples) < 4:
        return None
    t_end = samples[-1][0]
    t_start = samples[0][0]
    q = (t_end - t_start) / 4

    def ok(t):
        return all(not (0 <= t - r < warm_s) for r in restarts)

    last = [v for t, v in samples if t >= t_end - q and ok(t)]
    before = [v for t, v in samples if t_end - 2 * q <= t < t_end - q and ok(t)]
    if not last or not before:
        return None
    return min(last), min(last) / min(before) - 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=60)
    ap.add_argument("--round-seconds", type=float, default=60)
    ap.add_argument("--rate", type=int, default=2000, help="records/s of 1 KiB")
    ap.add_argument("--groups", type=int, default=3)
    ap.add_argument("--restart-every", type=float, default=10, help="minutes between broker restarts")
    ap.add_argument("--max-growth", type=float, default=0.05)
    ap.add_argument("--sample-seconds", type=float, default=2, help="seconds between RSS and descriptor samples")
    ap.add_argument("--warm-seconds", type=float, default=120,
                    help="samples of a broker this soon after its restart are left out of the verdict")
    ap.add_argument("--out", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--rill-bin", required=True)
    ap.add_argument("--rill-port", type=int, default=23500)
    cfg = ap.parse_args()
    cfg.start_timeout = 300
    cfg.stop_timeout = 60
    cfg.tool_timeout = 600
    cfg.client = "rdkafka"
    cfg.rill_load = os.environ["RILL_LOAD"]
    cfg.classpath = os.environ["COMPAT_CLASSPATH"]
    cfg.tool_classpath = os.environ["BENCH_CLASSES"] + ":" + cfg.classpath
    os.makedirs(cfg.out, exist_ok=True)
    log = os.path.join(cfg.out, "soak.log")
    shutil.rmtree(cfg.work, ignore_errors=True)
    os.makedirs(cfg.work)
    cluster = B.RillCluster(cfg, cfg.work)
    rounds, failures = [], []
    restarts = {0: [], 1: [], 2: []}
    dense = {"t_s": [], "rss_bytes": [], "fds": []}
    stop_sampling = threading.Event()
    t_start = time.monotonic()

    def sample_brokers():
        while not stop_sampling.wait(cfg.sample_seconds):
            try:
                rss = [rss_bytes(p.pid) for p in cluster.brokers]
                fds = [open_fds(p.pid) for p in cluster.brokers]
            except OSError:  # a broker between its stop and its restart
                continue
            dense["t_s"].append(time.monotonic() - t_start)
            dense["rss_bytes"].append(rss)
            dense["fds"].append(fds)

    sampler = threading.Thread(target=sample_brokers, daemon=True)
    try:
        cluster.start()
        B.java_tool(cfg, "BenchTool",
                    ["create", "--bootstrap", cluster.bootstrap, "--topic", TOPIC, "--partitions", str(PARTITIONS),
                     "--replication-factor", "3", "--config",
                     f"min.insync.replicas=2,retention.ms={RETENTION_MS},segment.bytes={SEGMENT_BYTES}"],
                    log, 180)
        t_start = time.monotonic()
        sampler.start()
        n_rounds = max(1, int(cfg.minutes * 60 / cfg.round_seconds))
        next_restart = cfg.restart_every * 60
        for r in range(n_rounds):
            t0 = time.monotonic()
            cpu0 = [B.proc_cpu_seconds(p.pid) for p in cluster.brokers]
            records = int(cfg.rate * cfg.round_seconds)
            result = {}

            def produce():
                try:
                    out = B.rill_load(cfg, "produce",
                                      ["--bootstrap", cluster.bootstrap, "--topic", TOPIC, "--records", str(records),
                                       "--record-size", str(B.RECORD_SIZE), "--throughput", str(cfg.rate), "--keys"],
                                      log, timeout=cfg.round_seconds * 5 + 120)
                    result["produce"] = json.loads(out.strip().splitlines()[-1])
                except Exception as e:  # reported below
                    result["produce_error"] = str(e)

            def consume():
                try:
                    out = B.rill_load(cfg, "consume",
                                      ["--bootstrap", cluster.bootstrap, "--topic", TOPIC, "--records", str(records),
                                       "--group", f"soak-{r % cfg.groups}", "--timeout", "20000"],
                                      log, timeout=cfg.round_seconds * 5 + 120)
                    result["consume"] = json.loads(out.strip().splitlines()[-1])
                except Exception as e:
                    result["consume_error"] = str(e)

            threads = [threading.Thread(target=produce), threading.Thread(target=consume)]
            for t in threads:
                t.start()
            elapsed = time.monotonic() - t_start
            if cfg.restart_every > 0 and elapsed >= next_restart:
                b = len(sum(restarts.values(), [])) % 3
                time.sleep(cfg.round_seconds / 3)
                B.say(f"round {r}: restarting broker {b}")
                cluster.brokers[b].stop(cfg.stop_timeout)
                took = cluster.restart_broker(b)
                restarts[b].append(time.monotonic() - t_start)
                result["restarted"] = {"broker": b, "ready_s": took}
                next_restart += cfg.restart_every * 60
            for t in threads:
                t.join()
            wall = time.monotonic() - t0
            if wall < cfg.round_seconds:
                time.sleep(cfg.round_seconds - wall)
                wall = time.monotonic() - t0
            cpu1 = [B.proc_cpu_seconds(p.pid) for p in cluster.brokers]
            sample = {
                "round": r,
                "t_s": time.monotonic() - t_start,
                "rss_bytes": [rss_bytes(p.pid) for p in cluster.brokers],
                "fds": [open_fds(p.pid) for p in cluster.brokers],
                "cores": [(c1 - c0) / wall if "restarted" not in result or result["restarted"]["broker"] != i else None
                          for i, (c0, c1) in enumerate(zip(cpu0, cpu1))],
                **result,
            }
            rounds.append(sample)
            p99 = sample.get("produce", {}).get("lat_p99_ms")
            B.say(f"round {r} at {sample['t_s'] / 60:.1f} min: RSS "
                  f"{', '.join(f'{x / 2**20:.0f}' for x in sample['rss_bytes'])} MiB, fds {sample['fds']}, cores "
                  f"{', '.join('-' if c is None else f'{c:.2f}' for c in sample['cores'])}, produce p99 {p99} ms"
                  + (f", broker {result['restarted']['broker']} restarted" if "restarted" in result else ""))
            for k in ("produce_error", "consume_error"):
                if k in result:
                    failures.append(f"round {r}: {k.split('_')[0]} failed: {result[k]}")
            produce_result = result.get("produce", {})
            if produce_result.get("failed") or produce_result.get("unacknowledged"):
                failures.append(f"round {r}: {produce_result['failed']} records failed, "
                                f"{produce_result['unacknowledged']} unacknowledged")
            with open(os.path.join(cfg.out, "soak.json"), "w") as f:
                json.dump({"rounds": rounds, "samples": dense}, f)
    finally:
        stop_sampling.set()
        if sampler.is_alive():
            sampler.join()
        cluster.stop()
        B.Proc.kill_all()
        shutil.rmtree(cfg.work, ignore_errors=True)

    lines = ["# Soak", "", f"{len(rounds)} rounds of {cfg.round_seconds:.0f} s at {cfg.rate} records/s, "
             f"{cfg.groups} groups, a broker restart every {cfg.restart_every} min; "
             f"{len(dense['t_s'])} samples, one every {cfg.sample_seconds:g} s.", "",
             "| broker | RSS MiB (lowest, last quarter) | RSS growth | fds (lowest, last quarter) | fd growth |",
             "|---|---|---|---|---|"]
    for b in range(3):
        rss = growth(list(zip(dense["t_s"], (x[b] for x in dense["rss_bytes"]))), restarts[b], cfg.warm_seconds)
        fds = growth(list(zip(dense["t_s"], (x[b] for x in dense["fds"]))), restarts[b], cfg.warm_seconds)
        lines.append(f"| {b} | {'-' if not rss else f'{rss[0] / 2**20:.0f}'} | "
                     f"{'-' if not rss else f'{rss[1] * 100:+.1f}%'} | {'-' if not fds else fds[0]} | "
                     f"{'-' if not fds else f'{fds[1] * 100:+.1f}%'} |")
        for name, g in (("RSS", rss), ("open file descriptors", fds)):
            if g and g[1] > cfg.max_growth:
                failures.append(f"broker {b}: {name} grew {g[1] * 100:.1f}% over the last quarter of the run "
                                f"(limit {cfg.max_growth * 100:.0f}%)")
    p99s = [s["produce"]["lat_p99_ms"] for s in rounds if "produce" in s]
    if p99s:
        lines += ["", f"Produce p99 per round: min {min(p99s)} ms, median {sorted(p99s)[len(p99s) // 2]} ms, "
                  f"max {max(p99s)} ms."]
    lines += [""] + [f"FAILED: {f}" for f in failures]
    with open(os.path.join(cfg.out, "soak.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 1 if failures else 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    sys.exit(main())
