//! `rill consume TOPIC`: writes record values to stdout, one per line,
//! exactly as they were produced (a value is written verbatim followed by
//! `\n`), optionally prefixed by partition, offset and key.
//!
//! Without `--follow` the end of each partition is its high watermark when
//! the command starts, and partitions are read one after the other in
//! order. With `--follow` every partition is long-polled concurrently and
//! records are printed as they arrive, until `--max` records or Ctrl-C.

use std::io::{self, BufWriter, Write};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use rill_client::{Client, ClientError, FetchedRecord, OffsetQuery};
use tokio::sync::mpsc;

use crate::note;
use crate::offsets::select_partitions;

/// Bytes asked for per fetch.
const FETCH_MAX_BYTES: u32 = 1 << 20;
/// Long-poll wait per fetch when following.
const FOLLOW_WAIT: Duration = Duration::from_secs(1);

/// Where consumption starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartFrom {
    Earliest,
    Latest,
    Offset(i64),
    Timestamp(i64),
}

fn parse_start(s: &str) -> Result<StartFrom, String> {
    match s {
        "earliest" | "beginning" => Ok(StartFrom::Earliest),
        "latest" | "end" => Ok(StartFrom::Latest),
        _ => {
            if let Some(ms) = s.strip_prefix("ts:") {
                return ms
                    .parse()
                    .map(StartFrom::Timestamp)
                    .map_err(|_| format!("ts:{ms} is not a time in milliseconds since the epoch"));
            }
            match s.parse::<i64>() {
                Ok(o) if o >= 0 => Ok(StartFrom::Offset(o)),
                _ => Err(format!(
                    "{s:?} is not earliest, latest, an offset (>= 0) or ts:MILLIS"
                )),
            }
        }
    }
}

#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// Topic to read.
    topic: String,
    /// Only this partition (default: all).
    #[arg(long, short = 'p')]
    partition: Option<i32>,
    /// Where to start: earliest, latest, an offset, or ts:MILLIS (first
    /// record at or after that time).
    #[arg(long, default_value = "earliest", value_parser = parse_start)]
    from: StartFrom,
    /// Keep waiting for new records instead of stopping at the end.
    #[arg(long, short = 'f')]
    follow: bool,
    /// Stop after this many records.
    #[arg(long, short = 'n')]
    max: Option<u64>,
    /// Print the key (or `null`) before the value.
    #[arg(long)]
    print_key: bool,
    /// Print the offset before the value.
    #[arg(long)]
    print_offset: bool,
    /// Print the partition before the value.
    #[arg(long)]
    print_partition: bool,
    /// Separator between printed fields.
    #[arg(long, default_value = "\t", value_name = "SEP")]
    separator: String,
}

/// Formats records onto stdout.
struct Printer<W: Write> {
    out: W,
    args: PrintOptions,
    printed: u64,
}

struct PrintOptions {
    key: bool,
    offset: bool,
    partition: bool,
    separator: Vec<u8>,
}

impl<W: Write> Printer<W> {
    fn print(&mut self, partition: i32, r: &FetchedRecord) -> io::Result<()> {
        let sep = &self.args.separator;
        if self.args.partition {
            write!(self.out, "{partition}")?;
            self.out.write_all(sep)?;
        }
        if self.args.offset {
            write!(self.out, "{}", r.offset)?;
            self.out.write_all(sep)?;
        }
        if self.args.key {
            match &r.key {
                Some(k) => self.out.write_all(k)?,
                None => self.out.write_all(b"null")?,
            }
            self.out.write_all(sep)?;
        }
        match &r.value {
            Some(v) => self.out.write_all(v)?,
            None => self.out.write_all(b"null")?,
        }
        self.out.write_all(b"\n")?;
        self.printed += 1;
        Ok(())
    }
}

/// Resolves where each partition starts.
async fn start_offset(client: &Client, topic: &str, p: i32, from: StartFrom) -> Result<i64> {
    Ok(match from {
        StartFrom::Earliest => {
            client
                .list_offsets(topic, p, OffsetQuery::Earliest)
                .await?
                .0
        }
        StartFrom::Latest => client.list_offsets(topic, p, OffsetQuery::Latest).await?.0,
        StartFrom::Timestamp(ms) => {
            match client
                .list_offsets(topic, p, OffsetQuery::Timestamp(ms))
                .await?
                .0
            {
                // Every record is older: start at the end.
                -1 => client.list_offsets(topic, p, OffsetQuery::Latest).await?.0,
                o => o,
            }
        }
        StartFrom::Offset(o) => {
            let earliest = client
                .list_offsets(topic, p, OffsetQuery::Earliest)
                .await?
                .0;
            let latest = client.list_offsets(topic, p, OffsetQuery::Latest).await?.0;
            if o < earliest || o > latest {
                bail!(
                    "offset {o} is out of range for {topic}/{p}: it holds offsets {earliest}..{latest}"
                );
            }
            o
        }
    })
}

pub async fn run(client: &Client, args: ConsumeArgs) -> Result<()> {
    let topic = client.topic(&args.topic).await?;
    let partitions = select_partitions(&args.topic, topic.partitions.len(), args.partition)?;
    let stdout = io::stdout();
    let mut printer = Printer {
        out: BufWriter::with_capacity(64 << 10, stdout.lock()),
        args: PrintOptions {
            key: args.print_key,
            offset: args.print_offset,
            partition: args.print_partition,
            separator: args.separator.as_bytes().to_vec(),
        },
        printed: 0,
    };
    let max = args.max.unwrap_or(u64::MAX);
    if max == 0 {
        return Ok(());
    }
    let mut starts = Vec::new();
    for &p in &partitions {
        starts.push((p, start_offset(client, &args.topic, p, args.from).await?));
    }
    if args.follow {
        follow(client, &args.topic, starts, &mut printer, max).await?;
    } else {
        for (p, start) in starts {
            let end = client
                .list_offsets(&args.topic, p, OffsetQuery::Latest)
                .await?
                .0;
            read_to(client, &args.topic, p, start, end, &mut printer, max).await?;
            if printer.printed >= max {
                break;
            }
        }
    }
    printer.out.flush()?;
    Ok(())
}

/// Reads partition `p` from `offset` up to `end` (exclusive).
async fn read_to<W: Write>(
    client: &Client,
    topic: &str,
    p: i32,
    mut offset: i64,
    end: i64,
    printer: &mut Printer<W>,
    max: u64,
) -> Result<()> {
    while offset < end {
        let fetched = client
            .fetch(topic, p, offset, FETCH_MAX_BYTES, Duration::ZERO, 0)
            .await
            .with_context(|| format!("reading {topic}/{p} at offset {offset}"))?;
        if fetched.next_offset <= offset {
            // Nothing more below the high watermark (e.g. it moved back).
            break;
        }
        for r in fetched.records.iter().filter(|r| r.offset < end) {
            printer.print(p, r)?;
            if printer.printed >= max {
                return Ok(());
            }
        }
        offset = fetched.next_offset;
    }
    Ok(())
}

/// Long-polls every partition concurrently, printing records as they come.
async fn follow<W: Write>(
    client: &Client,
    topic: &str,
    starts: Vec<(i32, i64)>,
    printer: &mut Printer<W>,
    max: u64,
) -> Result<()> {
    let (tx, mut rx) = mpsc::channel::<Result<(i32, Vec<FetchedRecord>)>>(16);
    for (p, mut offset) in starts {
        let (client, topic, tx) = (client.clone(), topic.to_owned(), tx.clone());
        tokio::spawn(async move {
            loop {
                let result = client
                    .fetch(&topic, p, offset, FETCH_MAX_BYTES, FOLLOW_WAIT, 1)
                    .await;
                let fetched = match result {
                    Ok(f) => f,
                    Err(ClientError::Rpc {
                        code: tonic::Code::OutOfRange,
                        ..
                    }) => {
                        // Retention removed what we were about to read.
                        match client.list_offsets(&topic, p, OffsetQuery::Earliest).await {
                            Ok((earliest, _)) if earliest > offset => {
                                note!(
                                    "warning: {topic}/{p}: offsets {offset}..{earliest} were deleted by retention; skipping ahead"
                                );
                                offset = earliest;
                                continue;
                            }
                            _ => {}
                        }
                        let e = anyhow::anyhow!("{topic}/{p}: offset {offset} is out of range");
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                    Err(e) => {
                        let e = anyhow::Error::new(e)
                            .context(format!("following {topic}/{p} at offset {offset}"));
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                };
                offset = fetched.next_offset;
                if !fetched.records.is_empty() && tx.send(Ok((p, fetched.records))).await.is_err() {
                    return;
                }
            }
        });
    }
    drop(tx);
    while let Some(item) = rx.recv().await {
        let (p, records) = item?;
        for r in &records {
            printer.print(p, r)?;
            if printer.printed >= max {
                return Ok(());
            }
        }
        // Followers want to see records as they arrive.
        printer.out.flush()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn start_positions_parse_with_clear_errors() {
        assert_eq!(parse_start("earliest").unwrap(), StartFrom::Earliest);
        assert_eq!(parse_start("latest").unwrap(), StartFrom::Latest);
        assert_eq!(parse_start("42").unwrap(), StartFrom::Offset(42));
        assert_eq!(
            parse_start("ts:1700000000000").unwrap(),
            StartFrom::Timestamp(1_700_000_000_000)
        );
        assert!(parse_start("-3").is_err());
        assert!(
            parse_start("ts:yesterday")
                .unwrap_err()
                .contains("milliseconds")
        );
        assert!(
            parse_start("soon")
                .unwrap_err()
                .contains("earliest, latest")
        );
    }

    #[test]
    fn printed_fields_come_in_partition_offset_key_value_order() {
        let mut printer = Printer {
            out: Vec::new(),
            args: PrintOptions {
                key: true,
                offset: true,
                partition: true,
                separator: b"|".to_vec(),
            },
            printed: 0,
        };
        let record = |key: Option<&'static [u8]>, value: &'static [u8]| FetchedRecord {
            offset: 7,
            timestamp: 0,
            key: key.map(Bytes::from_static),
            value: Some(Bytes::from_static(value)),
        };
        printer.print(2, &record(Some(b"k"), b"v\r")).unwrap();
        printer.print(2, &record(None, b"")).unwrap();
        assert_eq!(printer.out, b"2|7|k|v\r\n2|7|null|\n");
        assert_eq!(printer.printed, 2);
    }
}
