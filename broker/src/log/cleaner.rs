//! Log compaction (`cleanup.policy=compact`): keeps the last record of every
//! key and removes older ones.
//!
//! A pass cleans only below `clean_below`, the last stable offset: a record
//! above the high watermark is not committed (a new leader may truncate
//! it), and one in a transaction that is still open may yet be aborted, so
//! neither may supersede a committed one. Records of aborted transactions
//! (the `aborted` index of the partition) supersede nothing and are
//! removed; their markers stay, like every control batch. The pass builds a key -> latest offset
//! map over the records below the HW (active segment included, so newer
//! committed values there supersede older ones in sealed segments), then
//! rewrites each sealed segment that lies wholly below the HW and has
//! superseded records. Batches that keep every record are copied byte for byte; batches
//! that lose some are re-encoded with the kafka-protocol encoder, keeping
//! offsets, timestamps, producer fields and compression; batches that lose
//! all are dropped. The rewrite goes to `<segment>.log.cleaned`, is fsynced,
//! then renamed over the segment, so a crash leaves the old or the new
//! segment, never a mix (leftover `.cleaned` files are removed on open).
//!
//! Records without a key, control batches and tombstones (null values) are
//! kept.

use std::collections::HashMap;
use std::fs;
use std::io::Write;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
};
use tracing::info;

use super::batch::BatchHeader;
use super::segment::{Segment, Trust};
use super::{LogError, PartitionLog, sync_dir};

/// One aborted transaction in a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    /// Offset of the transaction's first batch in this partition.
    pub first_offset: i64,
    /// Offset of its abort marker.
    pub last_offset: i64,
}

/// What a compaction pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanStats {
    pub segments_rewritten: usize,
    pub records_removed: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
}

fn corrupt(log: &PartitionLog, reason: String) -> LogError {
    LogError::Corrupt {
        dir: log.dir().display().to_string(),
        reason,
    }
}

fn decode(log: &PartitionLog, bytes: Vec<u8>, h: &BatchHeader) -> Result<Vec<Record>, LogError> {
    let mut buf = Bytes::from(bytes);
    RecordBatchDecoder::decode(&mut buf)
        .map(|set| set.records)
        .map_err(|e| {
            corrupt(
                log,
                format!("undecodable batch at offset {}: {e}", h.base_offset),
            )
        })
}

fn compression_of(h: &BatchHeader) -> Compression {
    match h.compression() {
        1 => Compression::Gzip,
        2 => Compression::Snappy,
        3 => Compression::Lz4,
        4 => Compression::Zstd,
        _ => Compression::None,
    }
}

/// Runs one compaction pass over `log`'s sealed segments below
/// `clean_below` (the high watermark).
pub fn compact(
    log: &mut PartitionLog,
    clean_below: i64,
    aborted: &[AbortedTxn],
) -> Result<CleanStats, LogError> {
    let is_aborted = |h: &BatchHeader, offset: i64| {
        h.is_transactional()
            && aborted.iter().any(|a| {
                a.producer_id == h.producer_id && a.first_offset <= offset && offset < a.last_offset
            })
    };
    let mut stats = CleanStats::default();
    if !log.config().cleanup_policy.compacts() || log.segments.len() < 2 {
        return Ok(stats);
    }
    let io = |what: &'static str| move |e| LogError::io(what.to_owned(), e);

    // 1. The latest offset of every key.
    let mut latest: HashMap<Bytes, i64> = HashMap::new();
    for seg in log.segments.values() {
        for (pos, h) in seg
            .batch_positions()
            .map_err(io("scanning for compaction"))?
        {
            if h.is_control() {
                continue;
            }
            let bytes = seg
                .read_batch(pos, &h)
                .map_err(io("reading for compaction"))?;
            for r in decode(log, bytes, &h)? {
                if is_aborted(&h, r.offset) {
                    continue;
                }
                if let Some(k) = r.key.filter(|_| r.offset < clean_below) {
                    latest.insert(k, r.offset);
                }
            }
        }
    }

    // 2. Rewrite sealed segments holding superseded records.
    let sealed: Vec<i64> = log
        .segments
        .iter()
        .rev()
        .skip(1)
        .rev()
        .filter(|(_, seg)| seg.next_offset() <= clean_below)
        .map(|(base, _)| *base)
        .collect();
    for base in sealed {
        let seg = &log.segments[&base];
        let mut out = Vec::with_capacity(seg.size() as usize);
        let mut removed = 0u64;
        for (pos, h) in seg
            .batch_positions()
            .map_err(io("scanning for compaction"))?
        {
            let bytes = seg
                .read_batch(pos, &h)
                .map_err(io("reading for compaction"))?;
            if h.is_control() {
                out.extend_from_slice(&bytes);
                continue;
            }
            let records = decode(log, bytes.clone(), &h)?;
            let total = records.len();
            let mut keep: Vec<Record> = records
                .into_iter()
                .filter(|r| {
                    !is_aborted(&h, r.offset)
                        && r.key
                            .as_ref()
                            .is_none_or(|k| latest.get(k) == Some(&r.offset))
                })
                .collect();
            removed += (total - keep.len()) as u64;
            if keep.len() == total {
                out.extend_from_slice(&bytes);
            } else if !keep.is_empty() {
                if h.producer_id < 0 {
                    // The encoder groups records into one batch while
                    // offset - sequence is constant; without a producer the
                    // batch's base sequence must stay -1.
                    let first = keep[0].offset;
                    for r in &mut keep {
                        r.sequence = (r.offset - first) as i32 - 1;
                    }
                }
                let mut buf = BytesMut::new();
                RecordBatchEncoder::encode(
                    &mut buf,
                    &keep,
                    &RecordEncodeOptions {
                        version: 2,
                        compression: compression_of(&h),
                    },
                )
                .map_err(|e| corrupt(log, format!("re-encoding compacted batch: {e}")))?;
                out.extend_from_slice(&buf);
            }
        }
        if removed == 0 {
            continue;
        }
        let path = Segment::log_path(log.dir(), base);
        let cleaned = path.with_extension("log.cleaned");
        {
            let mut f = fs::File::create(&cleaned).map_err(io("writing compacted segment"))?;
            f.write_all(&out).map_err(io("writing compacted segment"))?;
            f.sync_data().map_err(io("syncing compacted segment"))?;
        }
        // The saved indexes describe the old file's positions: they go
        // first (durably), so a crash after the rename cannot leave them
        // trusted next to the compacted file; a start without them
        // validates the segment and rebuilds them.
        // The old segment, which keeps serving reads until the compacted
        // one replaces it, must stop looking offsets up in those files.
        let old = log.segments.get_mut(&base).expect("listed");
        old.indexes_to_heap()
            .map_err(io("reading the indexes of a segment being compacted"))?;
        old.remove_saved_indexes();
        sync_dir(log.dir()).map_err(io("removing the indexes of a compacted segment"))?;
        fs::rename(&cleaned, &path).map_err(io("installing compacted segment"))?;
        let (mut fresh, _) = Segment::open(
            log.dir(),
            base,
            log.config().index_interval_bytes,
            Trust::Nothing,
            0,
        )
        .map_err(io("reopening compacted segment"))?;
        // Installed whether or not its index files can be written (a full
        // disk): unsaved, its indexes stay on the heap.
        let sealed = fresh.seal();
        stats.segments_rewritten += 1;
        stats.records_removed += removed;
        stats.bytes_before += log.segments[&base].size();
        stats.bytes_after += fresh.size();
        log.segments.insert(base, fresh);
        sealed.map_err(io("indexing compacted segment"))?;
    }
    if stats.segments_rewritten > 0 {
        info!(
            dir = %log.dir().display(), segments = stats.segments_rewritten,
            records_removed = stats.records_removed, bytes_before = stats.bytes_before,
            bytes_after = stats.bytes_after, "compaction pass done"
        );
    }
    Ok(stats)
}
