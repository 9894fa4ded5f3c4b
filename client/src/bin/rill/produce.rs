//! `rill produce TOPIC [FILE...]`: every input line becomes one record.
//!
//! Data flows through three stages:
//! 1. a reader thread reads stdin or the files (`-` is stdin), splits lines
//!    at `\n` (the `\n` is dropped, everything else including `\r` is kept,
//!    so `rill consume` prints the input back byte for byte), splits
//!    `key<SEP>value` when `--key-separator` is given, and hands over chunks
//!    of lines whenever its buffer runs dry (so interactive input is sent at
//!    once and bulk input in large chunks);
//! 2. the accumulator picks each record's partition (`--partition`, else
//!    murmur2 of the key like Kafka's default partitioner, else sticky
//!    round-robin for keyless records) and closes batches at
//!    `--batch-bytes` or `--batch-size` records;
//! 3. the sender keeps one request in flight per partition (so records keep
//!    their input order, like Kafka's `max.in.flight=1`), each carrying every
//!    batch queued for that partition up to [`MAX_REQUEST_BYTES`], while the
//!    next ones are read and encoded; partitions proceed in parallel.
//!
//! A summary (records, bytes, elapsed, rate) goes to stderr at the end, and a
//! progress line every [`PROGRESS_EVERY`] for long inputs.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::{Bytes, BytesMut};
use clap::Args;
use futures::stream::{FuturesUnordered, StreamExt};
use rill_client::{
    Acks, Client, ClientError, ProduceAck, StickyPartitioner, encode_batch, now_ms,
    partition_for_key,
};
use tokio::sync::mpsc;

use crate::note;
use crate::offsets::select_partitions;

/// Most bytes of batches sent in one produce request.
const MAX_REQUEST_BYTES: usize = 1 << 20;
/// Stop reading input while this much is queued and unacknowledged.
const MAX_BUFFERED_BYTES: usize = 32 << 20;
/// How often the progress line is printed (after the first period).
const PROGRESS_EVERY: Duration = Duration::from_secs(2);
/// Input read buffer.
const READ_BUFFER: usize = 256 << 10;

#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// Topic to write to.
    topic: String,
    /// Files to read lines from, in order; `-` or none means stdin.
    files: Vec<PathBuf>,
    /// Write every record to this partition instead of choosing by key.
    #[arg(long, short = 'p')]
    partition: Option<i32>,
    /// Split each line at the first SEP into key and value (lines without
    /// SEP are an error).
    #[arg(long, short = 'k', value_name = "SEP")]
    key_separator: Option<String>,
    /// Acknowledgement level: 0 (none), 1 (leader) or all (every in-sync replica).
    #[arg(long, default_value = "1", value_parser = parse_acks)]
    acks: Acks,
    /// Most records per batch.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    batch_size: u32,
    /// Close a batch once its records reach this many bytes.
    #[arg(long, default_value_t = 16 * 1024, value_parser = clap::value_parser!(u32).range(1..=(1 << 20)))]
    batch_bytes: u32,
    /// No progress lines and no summary.
    #[arg(long, short = 'q')]
    quiet: bool,
}

fn parse_acks(s: &str) -> Result<Acks, String> {
    s.parse()
}

/// One input record.
type Line = (Option<Bytes>, Bytes);

/// A batch of lines handed from the reader thread, or its failure.
type Chunk = Result<Vec<Line>>;

/// Where a line came from, for error messages.
fn source_name(path: &std::path::Path) -> String {
    if path.as_os_str() == "-" {
        "stdin".to_owned()
    } else {
        path.display().to_string()
    }
}

/// Reads every input in order and sends chunks of parsed lines.
fn read_inputs(
    inputs: Vec<(String, Box<dyn Read + Send>)>,
    separator: Option<Vec<u8>>,
    tx: mpsc::Sender<Chunk>,
) {
    let send = |chunk: Chunk| tx.blocking_send(chunk).is_ok();
    for (name, input) in inputs {
        let mut reader = BufReader::with_capacity(READ_BUFFER, input);
        let mut chunk = Vec::new();
        let mut chunk_bytes = 0usize;
        let mut line_no = 0u64;
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    send(Err(anyhow::Error::new(e).context(format!("reading {name}"))));
                    return;
                }
            }
            line_no += 1;
            if buf.last() == Some(&b'\n') {
                buf.pop();
            }
            let line = match &separator {
                None => (None, Bytes::copy_from_slice(&buf)),
                Some(sep) => match find(&buf, sep) {
                    Some(i) => (
                        Some(Bytes::copy_from_slice(&buf[..i])),
                        Bytes::copy_from_slice(&buf[i + sep.len()..]),
                    ),
                    None => {
                        // Lines before the bad one are still produced.
                        if !chunk.is_empty() && !send(Ok(std::mem::take(&mut chunk))) {
                            return;
                        }
                        send(Err(anyhow::anyhow!(
                            "{name}:{line_no}: no key separator {:?} in line (every line must be KEY{}VALUE)",
                            String::from_utf8_lossy(sep),
                            String::from_utf8_lossy(sep)
                        )));
                        return;
                    }
                },
            };
            chunk_bytes += buf.len();
            chunk.push(line);
            // Hand over what we have when the next read would wait for the
            // OS (interactive input goes out at once), or the chunk is big.
            if reader.buffer().is_empty() || chunk_bytes >= READ_BUFFER {
                if !send(Ok(std::mem::take(&mut chunk))) {
                    return;
                }
                chunk_bytes = 0;
            }
        }
        if !chunk.is_empty() && !send(Ok(chunk)) {
            return;
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || needle.len() > haystack.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A closed, encoded batch waiting to be sent.
struct Encoded {
    bytes: Bytes,
    records: u64,
    /// Key + value bytes, for the summary.
    payload: u64,
}

/// Per-partition accumulator and send state.
#[derive(Default)]
struct PartitionQueue {
    open: Vec<Line>,
    open_bytes: usize,
    ready: VecDeque<Encoded>,
    in_flight: bool,
}

/// Totals for progress and the summary.
#[derive(Default)]
struct Totals {
    records: u64,
    payload: u64,
}

struct Producer<'a> {
    client: &'a Client,
    topic: String,
    acks: Acks,
    batch_size: usize,
    batch_bytes: usize,
    queues: Vec<PartitionQueue>,
    /// Bytes in open and ready batches, for back-pressure.
    buffered: usize,
    sticky: StickyPartitioner,
    fixed: Option<i32>,
    acked: Totals,
}

type InFlight<'a> = FuturesUnordered<
    std::pin::Pin<
        Box<
            dyn std::future::Future<Output = (usize, u64, u64, Result<ProduceAck, ClientError>)>
                + 'a,
        >,
    >,
>;

impl<'a> Producer<'a> {
    fn add(&mut self, line: Line) -> Result<()> {
        let partitions = self.queues.len() as i32;
        let (p, sticky) = match (self.fixed, &line.0) {
            (Some(p), _) => (p, false),
            (None, Some(key)) => (partition_for_key(key, partitions), false),
            (None, None) => (self.sticky.current(), true),
        };
        let size = line.0.as_ref().map_or(0, Bytes::len) + line.1.len();
        let q = &mut self.queues[p as usize];
        q.open.push(line);
        q.open_bytes += size;
        self.buffered += size;
        if q.open.len() >= self.batch_size || q.open_bytes >= self.batch_bytes {
            self.close(p as usize)?;
            if sticky {
                self.sticky.batch_done();
            }
        }
        Ok(())
    }

    /// Encodes the open batch of partition `p` into its ready queue.
    fn close(&mut self, p: usize) -> Result<()> {
        let q = &mut self.queues[p];
        if q.open.is_empty() {
            return Ok(());
        }
        let bytes = encode_batch(&q.open, now_ms())?;
        q.ready.push_back(Encoded {
            bytes,
            records: q.open.len() as u64,
            payload: q.open_bytes as u64,
        });
        q.open.clear();
        q.open_bytes = 0;
        Ok(())
    }

    /// Starts a request for every partition that has nothing in flight and
    /// something to send. Open batches go out only when `flush_open` (the
    /// input is idle or finished); otherwise they keep filling.
    fn dispatch(&mut self, in_flight: &mut InFlight<'a>, flush_open: bool) -> Result<()> {
        for p in 0..self.queues.len() {
            if self.queues[p].in_flight {
                continue;
            }
            if self.queues[p].ready.is_empty() && flush_open && !self.queues[p].open.is_empty() {
                self.close(p)?;
                if self.fixed.is_none() && self.sticky.current() == p as i32 {
                    self.sticky.batch_done();
                }
            }
            let q = &mut self.queues[p];
            if q.ready.is_empty() {
                continue;
            }
            let mut body = BytesMut::new();
            let (mut records, mut payload) = (0u64, 0u64);
            while let Some(next) = q.ready.front() {
                if !body.is_empty() && body.len() + next.bytes.len() > MAX_REQUEST_BYTES {
                    break;
                }
                let next = q.ready.pop_front().expect("front exists");
                body.extend_from_slice(&next.bytes);
                records += next.records;
                payload += next.payload;
            }
            q.in_flight = true;
            let client = self.client;
            let topic = self.topic.clone();
            let acks = self.acks;
            in_flight.push(Box::pin(async move {
                let r = client
                    .produce_batches(&topic, p as i32, body.freeze(), acks)
                    .await;
                (p, records, payload, r)
            }));
        }
        Ok(())
    }

    fn pending(&self) -> bool {
        self.queues
            .iter()
            .any(|q| q.in_flight || !q.ready.is_empty() || !q.open.is_empty())
    }
}

/// `N records (X MiB)` and, with `target`, where they went.
fn amount(records: u64, payload: u64) -> String {
    let s = if records == 1 { "" } else { "s" };
    format!("{records} record{s} ({})", human_bytes(payload as f64))
}

/// `in S s: R records/s, B/s`.
fn rate(records: u64, payload: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(1e-9);
    format!(
        "in {:.2} s: {:.0} records/s, {}/s",
        secs,
        records as f64 / secs,
        human_bytes(payload as f64 / secs)
    )
}

/// Binary-prefixed byte count, e.g. `12.3 MiB`.
pub fn human_bytes(n: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{v:.0} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

pub async fn run(client: &Client, args: ProduceArgs) -> Result<()> {
    let topic = client.topic(&args.topic).await?;
    let partitions = topic.partitions.len();
    if partitions == 0 {
        bail!("topic {:?} has no partitions", args.topic);
    }
    if let Some(p) = args.partition {
        select_partitions(&args.topic, partitions, Some(p))?;
    }

    // Open every input up front so a typo fails before anything is sent.
    let files = if args.files.is_empty() {
        vec![PathBuf::from("-")]
    } else {
        args.files.clone()
    };
    let mut inputs: Vec<(String, Box<dyn Read + Send>)> = Vec::new();
    for path in &files {
        let name = source_name(path);
        if path.as_os_str() == "-" {
            inputs.push((name, Box::new(io::stdin())));
        } else {
            let f = File::open(path).with_context(|| format!("cannot open {name}"))?;
            inputs.push((name, Box::new(f)));
        }
    }
    let separator = match &args.key_separator {
        Some(s) if s.is_empty() => bail!("--key-separator must not be empty"),
        Some(s) => Some(s.as_bytes().to_vec()),
        None => None,
    };
    let (tx, mut rx) = mpsc::channel::<Chunk>(8);
    let reader = std::thread::spawn(move || read_inputs(inputs, separator, tx));

    let start_partition = (now_ms() % partitions as i64) as i32;
    let mut producer = Producer {
        client,
        topic: args.topic.clone(),
        acks: args.acks,
        batch_size: args.batch_size as usize,
        batch_bytes: args.batch_bytes as usize,
        queues: (0..partitions).map(|_| PartitionQueue::default()).collect(),
        buffered: 0,
        sticky: StickyPartitioner::new(partitions as i32, start_partition),
        fixed: args.partition,
        acked: Totals::default(),
    };
    let mut in_flight: InFlight<'_> = FuturesUnordered::new();
    let start = Instant::now();
    let mut ticker =
        tokio::time::interval_at(tokio::time::Instant::now() + PROGRESS_EVERY, PROGRESS_EVERY);
    let mut input_done = false;
    let mut input_error: Option<anyhow::Error> = None;
    loop {
        let idle = input_done || rx.is_empty();
        producer.dispatch(&mut in_flight, idle)?;
        if input_done && !producer.pending() {
            break;
        }
        let accept_input = !input_done && producer.buffered < MAX_BUFFERED_BYTES;
        tokio::select! {
            chunk = rx.recv(), if accept_input => match chunk {
                Some(Ok(lines)) => {
                    for line in lines {
                        producer.add(line)?;
                    }
                }
                Some(Err(e)) => {
                    // Send what was read before the failure, then report it.
                    input_error = Some(e);
                    input_done = true;
                }
                None => input_done = true,
            },
            Some((p, records, payload, result)) = in_flight.next(), if !in_flight.is_empty() => {
                producer.queues[p].in_flight = false;
                producer.buffered = producer.buffered.saturating_sub(payload as usize);
                if let Err(e) = result {
                    return Err(anyhow::Error::new(e).context(format!(
                        "producing to {}/{p} failed ({} records were acknowledged before; \
                         the failed request held {records})",
                        args.topic, producer.acked.records
                    )));
                }
                producer.acked.records += records;
                producer.acked.payload += payload;
            }
            _ = ticker.tick() => {
                if !args.quiet {
                    let (r, b) = (producer.acked.records, producer.acked.payload);
                    note!("progress: {} acknowledged {}", amount(r, b), rate(r, b, start.elapsed()));
                }
            }
        }
    }
    drop(rx);
    let _ = reader.join();
    if let Some(e) = input_error {
        let before = producer.acked.records;
        bail!(
            "{e:#} ({before} record{} before it {} produced)",
            if before == 1 { "" } else { "s" },
            if before == 1 { "was" } else { "were" }
        );
    }
    if !args.quiet {
        let target = match args.partition {
            Some(p) => format!("{}/{p}", args.topic),
            None if partitions == 1 => format!("{}/0", args.topic),
            None => format!("{} ({partitions} partitions)", args.topic),
        };
        let (r, b) = (producer.acked.records, producer.acked.payload);
        note!(
            "produced {} to {target} {}{}",
            amount(r, b),
            rate(r, b, start.elapsed()),
            if args.acks == Acks::None {
                " (acks=0: not confirmed)"
            } else {
                ""
            }
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separator_search_finds_the_first_occurrence() {
        assert_eq!(find(b"k::v::w", b"::"), Some(1));
        assert_eq!(find(b"kv", b":"), None);
        assert_eq!(find(b"", b":"), None);
    }

    #[test]
    fn human_bytes_uses_binary_units() {
        assert_eq!(human_bytes(512.0), "512 B");
        assert_eq!(human_bytes(1536.0), "1.5 KiB");
        assert_eq!(human_bytes(3.0 * 1024.0 * 1024.0), "3.0 MiB");
    }

    fn lines_of(input: &'static [u8], sep: Option<&str>) -> Vec<Chunk> {
        let (tx, mut rx) = mpsc::channel(64);
        read_inputs(
            vec![("stdin".into(), Box::new(input))],
            sep.map(|s| s.as_bytes().to_vec()),
            tx,
        );
        let mut out = Vec::new();
        while let Ok(c) = rx.try_recv() {
            out.push(c);
        }
        out
    }

    #[test]
    fn lines_keep_every_byte_but_the_newline() {
        let chunks = lines_of(b"a\r\n\nlast", None);
        let lines: Vec<Line> = chunks.into_iter().flat_map(|c| c.unwrap()).collect();
        assert_eq!(
            lines,
            vec![
                (None, Bytes::from_static(b"a\r")),
                (None, Bytes::new()),
                (None, Bytes::from_static(b"last")),
            ]
        );
    }

    #[test]
    fn keyed_lines_split_at_the_first_separator_and_missing_ones_name_the_line() {
        let chunks = lines_of(b"k1:v:1\nk2:v2\n", Some(":"));
        let lines: Vec<Line> = chunks.into_iter().flat_map(|c| c.unwrap()).collect();
        assert_eq!(
            lines[0],
            (Some(Bytes::from_static(b"k1")), Bytes::from_static(b"v:1"))
        );
        assert_eq!(
            lines[1],
            (Some(Bytes::from_static(b"k2")), Bytes::from_static(b"v2"))
        );
        let mut chunks = lines_of(b"k1:v1\nnokey\n", Some(":")).into_iter();
        assert_eq!(
            chunks.next().unwrap().unwrap().len(),
            1,
            "line 1 is still sent"
        );
        let err = chunks.next().unwrap().expect_err("an error for line 2");
        assert!(
            err.to_string().contains("stdin:2: no key separator"),
            "{err}"
        );
    }
}
