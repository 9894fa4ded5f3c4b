//! Storage benchmark: a program that prints figures, never a timed test.
//!
//! It pins the numbers issue 2 asks for, measured on the storage engine
//! (`rill_broker::log`) without network or gRPC in the way:
//! - append throughput (MB/s, records/s) and p50/p99/max append latency for
//!   1 KiB records in 16 KiB batches (16 records per batch, encoded once with
//!   `rill_client::batch::encode` and re-appended: the log restamps
//!   base offsets in place, the CRC does not cover them), with
//!   `flush=replicated` (a background thread fsyncs every `flush.ms`, as the
//!   broker does) and with `flush=fsync` (several concurrent appenders on a
//!   tokio runtime sharing fsyncs through `GroupCommit`);
//! - fetch throughput from the page cache: the whole replicated log read
//!   sequentially with 1 MiB reads;
//! - the machine's ceilings for context: cores, memory, filesystem, raw
//!   CRC-32C speed, raw buffered 16 KiB writes and fdatasync'd 1 MiB writes.
//!
//! Run: `cargo bench -p rill-broker --bench log_throughput [-- --quick | --bytes 4G]`.
//! MB and GB are decimal (10^6, 10^9 bytes); MiB/GiB are binary.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use clap::Parser;
use parking_lot::Mutex;
use rill_broker::log::{FlushPolicy, GroupCommit, LogConfig, PartitionLog};
use rill_client::batch::{self, EncodeOptions, NewRecord};

/// Size of one record's value.
const RECORD_BYTES: usize = 1024;
/// Records per batch: 16 x 1 KiB = a 16 KiB batch.
const RECORDS_PER_BATCH: usize = 16;
/// Size of each fetch.
const READ_BYTES: usize = 1 << 20;
/// Appends at least this slow are counted separately (segment rolls).
const SLOW_APPEND_NS: u64 = 10_000_000;
/// How often a progress line is printed during long phases.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Storage engine benchmark for Rill.
#[derive(Debug, Parser)]
#[command(name = "log_throughput")]
struct Args {
    /// Bytes to append with flush=replicated (also what the fetch phase
    /// reads); suffixes K, M, G (binary) are accepted.
    #[arg(long, env = "RILL_BENCH_BYTES", default_value = "2G", value_parser = parse_size)]
    bytes: u64,
    /// Bytes to append with flush=fsync.
    #[arg(long, env = "RILL_BENCH_FSYNC_BYTES", default_value = "512M", value_parser = parse_size)]
    fsync_bytes: u64,
    /// Concurrent appenders in the flush=fsync phase; a comma-separated
    /// list runs the phase once per value.
    #[arg(long, value_delimiter = ',', default_value = "8,64")]
    fsync_tasks: Vec<usize>,
    /// Segment size (the broker's default is 1 GiB); rolling fsyncs the
    /// sealed segment inside the append that triggers it.
    #[arg(long, default_value = "1G", value_parser = parse_size)]
    segment_bytes: u64,
    /// Phases to run, comma-separated: ceilings, replicated, fetch, fsync
    /// (fetch reads what replicated wrote and needs it).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "ceilings,replicated,fetch,fsync"
    )]
    phases: Vec<Phase>,
    /// Small sizes (64 MiB / 16 MiB) that run in a few seconds; for smoke tests.
    #[arg(long)]
    quick: bool,
    /// Parent directory for the data (a temp dir is made inside and removed
    /// afterwards). Use a real disk, not tmpfs.
    #[arg(long, env = "RILL_BENCH_DIR")]
    dir: Option<PathBuf>,
    /// Passed by `cargo bench`. Without it (e.g. under `cargo test
    /// --all-targets`) the program runs as if `--quick` were given.
    #[arg(long, hide = true)]
    bench: bool,
}

/// A part of the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Phase {
    Ceilings,
    Replicated,
    Fetch,
    Fsync,
}

fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => {
            let unit = s[i..].to_ascii_uppercase();
            let mult = match unit.trim_end_matches("IB").trim_end_matches('B') {
                "" => 1,
                "K" => 1 << 10,
                "M" => 1 << 20,
                "G" => 1 << 30,
                _ => return Err(format!("unknown size unit in {s:?} (use K, M or G)")),
            };
            (&s[..i], mult)
        }
        None => (s, 1),
    };
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a size like 512M or 2G"))?;
    if n <= 0.0 {
        return Err("size must be positive".into());
    }
    Ok((n * mult as f64) as u64)
}

fn main() -> Result<()> {
    let mut args = Args::parse();
    if !args.bench && !args.quick {
        // `cargo test --all-targets` runs bench programs without `--bench`:
        // keep that a smoke run.
        eprintln!("not started by `cargo bench` (no --bench flag): running with --quick");
        args.quick = true;
    }
    if args.quick {
        args.bytes = 64 << 20;
        args.fsync_bytes = 16 << 20;
    }
    if args.fsync_tasks.contains(&0) {
        bail!("--fsync-tasks values must be at least 1");
    }
    if args.phases.contains(&Phase::Fetch) && !args.phases.contains(&Phase::Replicated) {
        bail!("the fetch phase reads what the replicated phase wrote: add replicated to --phases");
    }
    let parent = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix("rill-bench-")
        .tempdir_in(&parent)
        .with_context(|| format!("creating a temp dir in {}", parent.display()))?;
    let batch = build_batch()?;
    let records_per_byte = RECORDS_PER_BATCH as f64 / batch.len() as f64;

    println!(
        "rill storage benchmark: {RECORDS_PER_BATCH} x {RECORD_BYTES} B records per batch \
         ({} B batches incl. headers); MB = 10^6 bytes",
        batch.len()
    );
    print_machine(tmp.path());
    let run = |phase| args.phases.contains(&phase);
    if run(Phase::Ceilings) {
        ceilings(tmp.path(), &batch, args.quick)?;
    }
    if run(Phase::Replicated) {
        let replicated_dir = tmp.path().join("replicated-0");
        let mut rep = append_replicated(&replicated_dir, &batch, args.bytes, args.segment_bytes)?;
        rep.print("append flush=replicated (1 appender)", records_per_byte);
        if run(Phase::Fetch) {
            fetch(&replicated_dir, rep.bytes)?;
        }
        fs::remove_dir_all(&replicated_dir).ok();
    }
    if run(Phase::Fsync) {
        for &tasks in &args.fsync_tasks {
            let fsync_dir = tmp.path().join(format!("fsync-{tasks}"));
            let (mut stats, syncs) = append_fsync(
                &fsync_dir,
                &batch,
                args.fsync_bytes,
                tasks,
                args.segment_bytes,
            )?;
            stats.print(
                &format!("append flush=fsync ({tasks} appenders)"),
                records_per_byte,
            );
            let records = stats.batches * RECORDS_PER_BATCH as u64;
            println!(
                "  group commit: {syncs} fsyncs, {:.1} records ({:.1} batches, {:.0} KiB) per fsync",
                records as f64 / syncs.max(1) as f64,
                stats.batches as f64 / syncs.max(1) as f64,
                stats.bytes as f64 / syncs.max(1) as f64 / 1024.0
            );
            fs::remove_dir_all(&fsync_dir).ok();
        }
    }
    Ok(())
}

/// One 16 KiB batch of 16 x 1 KiB records, encoded by Rill's encoder
/// (`rill_client::batch`, on kafka-protocol's).
fn build_batch() -> Result<Vec<u8>> {
    let records: Vec<NewRecord> = (0..RECORDS_PER_BATCH)
        .map(|i| NewRecord {
            key: None,
            // Not all zeros, so nothing below can take a shortcut.
            value: Some(Bytes::from(
                (0..RECORD_BYTES)
                    .map(|j| (j * 31 + i * 7) as u8)
                    .collect::<Vec<u8>>(),
            )),
            timestamp: 1_700_000_000_000,
        })
        .collect();
    Ok(batch::encode(&records, &EncodeOptions::default())?.to_vec())
}

fn print_machine(dir: &Path) {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown cpu".into());
    let mem_gib = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / (1 << 20) as f64);
    let (fs_type, device) = filesystem_of(dir);
    println!(
        "machine: {cores} cores ({cpu}), {mem_gib:.1} GiB RAM; data in {} on {fs_type} ({device})",
        dir.display()
    );
    if fs_type == "tmpfs" {
        println!(
            "  warning: the data dir is on tmpfs; fsync figures mean nothing there (set RILL_BENCH_DIR)"
        );
    }
}

/// Filesystem type and device of the mount holding `dir` (longest prefix).
fn filesystem_of(dir: &Path) -> (String, String) {
    let canon = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let mounts = fs::read_to_string("/proc/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 3 && canon.starts_with(f[1])).then(|| (f[1].len(), f[2], f[0]))
        })
        .max_by_key(|(len, _, _)| *len)
        .map_or(("unknown".into(), "unknown".into()), |(_, t, d)| {
            (t.to_owned(), d.to_owned())
        })
}

fn mb_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e6
}

/// Raw numbers the engine is measured against.
fn ceilings(dir: &Path, batch: &[u8], quick: bool) -> Result<()> {
    // CRC-32C over the batch body, as append validation does.
    let rounds = if quick { 20_000 } else { 100_000 };
    let start = Instant::now();
    let mut acc = 0u32;
    for _ in 0..rounds {
        acc ^= crc32c::crc32c(std::hint::black_box(&batch[21..]));
    }
    std::hint::black_box(acc);
    let crc = mb_s((rounds * (batch.len() - 21)) as u64, start.elapsed());

    // Buffered 16 KiB writes to a plain file (the page-cache ceiling).
    let path = dir.join("ceiling.raw");
    let total: u64 = if quick { 64 << 20 } else { 512 << 20 };
    let chunk = vec![7u8; 16 << 10];
    let mut f = File::create(&path)?;
    let start = Instant::now();
    let mut written = 0u64;
    while written < total {
        f.write_all(&chunk)?;
        written += chunk.len() as u64;
    }
    let buffered = mb_s(written, start.elapsed());
    drop(f);
    fs::remove_file(&path).ok();

    // 1 MiB writes, each followed by fdatasync.
    let total: u64 = if quick { 16 << 20 } else { 256 << 20 };
    let chunk = vec![9u8; 1 << 20];
    let mut f = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(&path)?;
    let start = Instant::now();
    let mut written = 0u64;
    while written < total {
        f.write_all(&chunk)?;
        f.sync_data()?;
        written += chunk.len() as u64;
    }
    let synced = mb_s(written, start.elapsed());
    drop(f);
    fs::remove_file(&path).ok();
    println!(
        "ceilings: CRC-32C {:.1} GB/s on one core; buffered 16 KiB writes {:.0} MB/s; \
         1 MiB write+fdatasync {:.0} MB/s",
        crc / 1000.0,
        buffered,
        synced
    );
    Ok(())
}

/// What an append phase measured.
struct AppendStats {
    bytes: u64,
    batches: u64,
    elapsed: Duration,
    /// Per-append latency in nanoseconds.
    latencies: Vec<u64>,
    /// Extra line (e.g. interval fsyncs).
    note: String,
    /// Concurrent appenders (latencies overlap).
    parallelism: usize,
}

impl AppendStats {
    fn print(&mut self, label: &str, records_per_byte: f64) {
        self.latencies.sort_unstable();
        let pct = |p: f64| {
            let n = self.latencies.len();
            if n == 0 {
                return 0;
            }
            self.latencies[((n as f64 * p) as usize).min(n - 1)]
        };
        let secs = self.elapsed.as_secs_f64();
        println!(
            "{label}: {:.2} GiB in {:.2} s = {:.0} MB/s, {:.0} records/s; \
             latency p50 {}, p99 {}, max {}",
            self.bytes as f64 / (1u64 << 30) as f64,
            secs,
            mb_s(self.bytes, self.elapsed),
            self.bytes as f64 * records_per_byte / secs,
            fmt_ns(pct(0.50)),
            fmt_ns(pct(0.99)),
            fmt_ns(self.latencies.last().copied().unwrap_or(0)),
        );
        let slow: Vec<u64> = self
            .latencies
            .iter()
            .copied()
            .filter(|&ns| ns >= SLOW_APPEND_NS)
            .collect();
        if !slow.is_empty() {
            println!(
                "  {} appends took >= {} ms, {:.2} s in total ({:.0}% of the run)",
                slow.len(),
                SLOW_APPEND_NS / 1_000_000,
                slow.iter().sum::<u64>() as f64 / 1e9,
                slow.iter().sum::<u64>() as f64 / 1e9 / secs * 100.0 / self.parallelism as f64
            );
        }
        if !self.note.is_empty() {
            println!("  {}", self.note);
        }
    }
}

fn fmt_ns(ns: u64) -> String {
    if ns < 1_000 {
        format!("{ns} ns")
    } else if ns < 1_000_000 {
        format!("{:.1} µs", ns as f64 / 1e3)
    } else {
        format!("{:.2} ms", ns as f64 / 1e6)
    }
}

/// Prints a progress line to stderr at most every [`PROGRESS_EVERY`].
struct Progress {
    label: String,
    total: u64,
    last: Instant,
}

impl Progress {
    fn new(label: String, total: u64) -> Self {
        eprintln!("{label}: {:.0} MiB ...", total as f64 / (1 << 20) as f64);
        Self {
            label,
            total,
            last: Instant::now(),
        }
    }
    fn tick(&mut self, done: u64) {
        if self.last.elapsed() >= PROGRESS_EVERY {
            self.last = Instant::now();
            eprintln!(
                "  {}: {:.0}% ({:.0} / {:.0} MiB)",
                self.label,
                done as f64 * 100.0 / self.total as f64,
                done as f64 / (1 << 20) as f64,
                self.total as f64 / (1 << 20) as f64
            );
        }
    }
}

fn append_replicated(
    dir: &Path,
    template: &[u8],
    total: u64,
    segment_bytes: u64,
) -> Result<AppendStats> {
    let config = LogConfig {
        flush: FlushPolicy::Replicated,
        segment_bytes,
        ..LogConfig::default()
    };
    let interval = config.flush_interval;
    let log = Arc::new(Mutex::new(PartitionLog::open(dir, config)?));
    // The broker's interval flusher: take a sync handle under the lock,
    // fsync outside it.
    let stop = Arc::new(AtomicBool::new(false));
    let flushes = Arc::new(AtomicU64::new(0));
    let flusher = {
        let (log, stop, flushes) = (Arc::clone(&log), Arc::clone(&stop), Arc::clone(&flushes));
        std::thread::spawn(move || -> std::io::Result<()> {
            let mut next = Instant::now() + interval;
            while !stop.load(Ordering::Relaxed) {
                std::thread::park_timeout(next.saturating_duration_since(Instant::now()));
                if Instant::now() < next {
                    continue;
                }
                next += interval;
                let handle = log.lock().sync_handle();
                if !handle.is_done() {
                    handle.sync()?;
                    flushes.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(())
        })
    };
    let buf = template.to_vec();
    let appends = total.div_ceil(buf.len() as u64);
    let mut latencies = Vec::with_capacity(appends as usize);
    let mut progress = Progress::new("append flush=replicated".to_owned(), total);
    let start = Instant::now();
    let mut bytes = 0u64;
    for _ in 0..appends {
        let t = Instant::now();
        log.lock().append(&buf, 0)?;
        latencies.push(t.elapsed().as_nanos() as u64);
        bytes += buf.len() as u64;
        progress.tick(bytes);
    }
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    flusher.thread().unpark();
    flusher
        .join()
        .map_err(|_| anyhow::anyhow!("flusher thread panicked"))??;
    let t = Instant::now();
    log.lock().flush()?;
    let final_flush = t.elapsed();
    Ok(AppendStats {
        bytes,
        batches: appends,
        elapsed,
        latencies,
        parallelism: 1,
        note: format!(
            "{} interval fsyncs during the run (flush.ms = {} ms); final fsync of the tail took {:.0} ms",
            flushes.load(Ordering::Relaxed),
            interval.as_millis(),
            final_flush.as_secs_f64() * 1e3
        ),
    })
}

fn append_fsync(
    dir: &Path,
    template: &[u8],
    total: u64,
    tasks: usize,
    segment_bytes: u64,
) -> Result<(AppendStats, u64)> {
    let config = LogConfig {
        flush: FlushPolicy::Fsync,
        segment_bytes,
        ..LogConfig::default()
    };
    let log = Arc::new(Mutex::new(PartitionLog::open(dir, config)?));
    let commit = Arc::new(GroupCommit::default());
    let appends = total.div_ceil(template.len() as u64);
    let remaining = Arc::new(AtomicU64::new(appends));
    let done_bytes = Arc::new(AtomicU64::new(0));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let start = Instant::now();
    let results: Vec<Result<Vec<u64>>> = runtime.block_on(async {
        let mut handles = Vec::new();
        for _ in 0..tasks {
            let (log, commit, remaining, done_bytes) = (
                Arc::clone(&log),
                Arc::clone(&commit),
                Arc::clone(&remaining),
                Arc::clone(&done_bytes),
            );
            let buf = template.to_vec();
            handles.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                // Claim one append at a time until the budget is spent.
                while remaining
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
                    .is_ok()
                {
                    let t = Instant::now();
                    let info = log.lock().append(&buf, 0)?;
                    commit
                        .wait_durable(info.next_offset, || log.lock().sync_handle())
                        .await?;
                    latencies.push(t.elapsed().as_nanos() as u64);
                    done_bytes.fetch_add(buf.len() as u64, Ordering::Relaxed);
                }
                Ok(latencies)
            }));
        }
        let mut progress = Progress::new(format!("append flush=fsync ({tasks} appenders)"), total);
        let mut out = Vec::new();
        for h in handles {
            while !h.is_finished() {
                tokio::time::sleep(Duration::from_millis(100)).await;
                progress.tick(done_bytes.load(Ordering::Relaxed));
            }
            out.push(h.await.unwrap_or_else(|e| Err(anyhow::anyhow!(e))));
        }
        out
    });
    let elapsed = start.elapsed();
    let mut latencies = Vec::with_capacity(appends as usize);
    for r in results {
        latencies.extend(r?);
    }
    Ok((
        AppendStats {
            bytes: done_bytes.load(Ordering::Relaxed),
            batches: appends,
            elapsed,
            latencies,
            note: String::new(),
            parallelism: tasks,
        },
        commit.syncs(),
    ))
}

/// Reads the whole log sequentially with 1 MiB reads, twice; the data was
/// just written, so it comes from the page cache.
fn fetch(dir: &Path, expected: u64) -> Result<()> {
    let log = PartitionLog::open(dir, LogConfig::default())?;
    for pass in 1..=2 {
        let start = Instant::now();
        let mut offset = log.log_start_offset();
        let end = log.next_offset();
        let mut bytes = 0u64;
        while offset < end {
            let r = log.read(offset, READ_BYTES, end)?;
            if r.data.is_empty() {
                bail!("read at offset {offset} returned nothing before the log end {end}");
            }
            bytes += r.data.len() as u64;
            offset = r.next_offset;
        }
        let elapsed = start.elapsed();
        if bytes != expected {
            bail!("fetch read {bytes} bytes but {expected} were appended");
        }
        println!(
            "fetch pass {pass} (page cache, 1 MiB reads): {:.2} GiB in {:.2} s = {:.0} MB/s",
            bytes as f64 / (1u64 << 30) as f64,
            elapsed.as_secs_f64(),
            mb_s(bytes, elapsed)
        );
    }
    Ok(())
}
