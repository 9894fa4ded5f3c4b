"""Restart time of a broker holding large active segments.

A 3-broker Rill cluster gets one topic of --partitions partitions (RF=3,
segment.bytes 1 GiB, so everything stays in the active segments) and
--records records of 1 KiB from rill-load (--segment-bytes smaller puts
them in sealed segments). Broker 0 is then stopped with
SIGTERM (SIGKILL with --kill) and started again --repeats times, with the page cache dropped
before each start unless --warm-cache (dropping it needs root), and the
seconds from launch to ready are printed, with broker 0's RSS. A broker that opens its logs
reads what it does not trust from disk, so this shows what a restart costs
per byte held in active segments.
"""

import argparse
import os
import shutil
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench as B  # noqa: E402


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=2_000_000)
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--throughput", type=int, default=0,
                    help="records/s the producer keeps to (0: as fast as it can); a low rate makes small batches")
    ap.add_argument("--segment-bytes", type=int, default=1 << 30,
                    help="segment.bytes of the topic (smaller: the data is in sealed segments)")
    ap.add_argument("--warm-cache", action="store_true", help="keep the page cache between stop and start")
    ap.add_argument("--kill", action="store_true", help="stop broker 0 with SIGKILL (a crash) instead of SIGTERM")
    ap.add_argument("--work", required=True)
    ap.add_argument("--rill-bin", required=True)
    ap.add_argument("--rill-port", type=int, default=25500)
    cfg = ap.parse_args()
    cfg.start_timeout, cfg.stop_timeout, cfg.tool_timeout = 300, 120, 900
    cfg.client = "rdkafka"
    cfg.rill_load = os.environ["RILL_LOAD"]
    cfg.classpath = os.environ["COMPAT_CLASSPATH"]
    cfg.tool_classpath = os.environ["BENCH_CLASSES"] + ":" + cfg.classpath
    cold = not cfg.warm_cache
    if cold and os.geteuid() != 0:
        sys.exit("dropping the page cache needs root: run as root or pass --warm-cache")
    shutil.rmtree(cfg.work, ignore_errors=True)
    os.makedirs(cfg.work)
    log = os.path.join(cfg.work, "tools.log")
    cluster = B.RillCluster(cfg, os.path.join(cfg.work, "cluster"))
    try:
        cluster.start()
        B.java_tool(cfg, "BenchTool",
                    ["create", "--bootstrap", cluster.bootstrap, "--topic", "restart", "--partitions",
                     str(cfg.partitions), "--replication-factor", "3", "--config",
                     f"min.insync.replicas=2,segment.bytes={cfg.segment_bytes}"], log, 180)
        B.say(f"producing {cfg.records} records of 1 KiB")
        B.rill_load(cfg, "produce", ["--bootstrap", cluster.bootstrap, "--topic", "restart", "--records",
                                     str(cfg.records), "--record-size", str(B.RECORD_SIZE), "--keys"]
                    + (["--throughput", str(cfg.throughput)] if cfg.throughput else []),
                    log, timeout=cfg.tool_timeout)
        held = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in
                   os.walk(os.path.join(cluster.dir, "broker-0")) for f in fs if f.endswith(".log"))
        print(f"after producing: broker 0 RSS {rss_mib(cluster.brokers[0].pid):.1f} MiB", flush=True)
        for i in range(cfg.repeats):
            if cfg.kill:
                cluster.brokers[0].popen.kill()
            cluster.brokers[0].stop(cfg.stop_timeout)
            if cold:
                os.sync()
                with open("/proc/sys/vm/drop_caches", "w") as f:
                    f.write("3\n")
            took = cluster.restart_broker(0)
            print(f"restart {i + 1} after {'SIGKILL' if cfg.kill else 'SIGTERM'}: broker 0, "
                  f"{held / 1e9:.2f} GB in segment files, "
                  f"{'cold' if cold else 'warm'} page cache: ready {took:.3f} s after launch, "
                  f"RSS {rss_mib(cluster.brokers[0].pid):.1f} MiB", flush=True)
    finally:
        cluster.stop()
        B.Proc.kill_all()
        shutil.rmtree(cfg.work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    sys.exit(main())
