//! Kafka RecordBatch v2 headers: bounds-checked parsing, CRC-32C validation,
//! and in-place stamping of the two fields the CRC does not cover (base
//! offset and partition leader epoch).
//!
//! Layout of a v2 batch (all integers big-endian):
//!
//! ```text
//!  0 baseOffset i64        | 12 partitionLeaderEpoch i32 | 17 crc u32 (covers 21..end)
//!  8 batchLength i32       | 16 magic i8                 | 21 attributes i16
//! 23 lastOffsetDelta i32   | 27 baseTimestamp i64        | 35 maxTimestamp i64
//! 43 producerId i64        | 51 producerEpoch i16        | 53 baseSequence i32
//! 57 recordsCount i32      | 61 records...
//! ```
//!
//! `batchLength` counts the bytes after itself, so a batch occupies
//! `12 + batchLength` bytes. Nothing here decodes the records themselves:
//! the hot path never looks inside untrusted record data.

use thiserror::Error;

/// Bytes before `batchLength`'s payload: baseOffset + batchLength.
pub const LOG_OVERHEAD: usize = 12;
/// Size of the fixed v2 header, up to and including `recordsCount`.
pub const HEADER_LEN: usize = 61;
/// The only record format Rill stores.
pub const MAGIC_V2: i8 = 2;
/// Hard cap on one stored batch, whatever a topic's `max.message.bytes`:
/// followers accept what leaders stored, recovery bounds reads by it, and
/// clients check fetched batches against it.
pub const MAX_STORED_BATCH: usize = 64 << 20;

const BATCH_LENGTH: usize = 8;
const LEADER_EPOCH: usize = 12;
const MAGIC: usize = 16;
const CRC: usize = 17;
const ATTRIBUTES: usize = 21;
const LAST_OFFSET_DELTA: usize = 23;
const BASE_TIMESTAMP: usize = 27;
const MAX_TIMESTAMP: usize = 35;
const PRODUCER_ID: usize = 43;
const PRODUCER_EPOCH: usize = 51;
const BASE_SEQUENCE: usize = 53;
const RECORDS_COUNT: usize = 57;

/// Attribute bits (Kafka's `RecordBatch` attributes).
const COMPRESSION_MASK: i16 = 0x07;
const TRANSACTIONAL_FLAG: i16 = 0x10;
const CONTROL_FLAG: i16 = 0x20;

/// Why a batch was refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum BatchError {
    #[error("record batch truncated: {needed} bytes needed, {available} available")]
    Truncated { needed: usize, available: usize },
    #[error("record batch length {length} is outside the allowed range {min}..={max}")]
    BadLength { length: i64, min: usize, max: usize },
    #[error("unsupported record batch magic {0}: Rill stores only RecordBatch v2")]
    BadMagic(i8),
    #[error(
        "record batch CRC-32C mismatch: header says {stored:#010x}, data gives {computed:#010x}"
    )]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("record batch claims {count} records with lastOffsetDelta {last_offset_delta}")]
    BadRecordCount { count: i32, last_offset_delta: i32 },
    #[error("empty produce request: no record batch")]
    Empty,
}

/// The parsed fixed header of one RecordBatch v2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn be_i64(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Reads `baseOffset` and `batchLength` from the first 12 bytes, checking
/// the length against `max_len` (the largest whole batch allowed).
/// Returns the batch's total size in bytes.
pub fn frame_len(buf: &[u8], max_len: usize) -> Result<usize, BatchError> {
    if buf.len() < LOG_OVERHEAD {
        return Err(BatchError::Truncated {
            needed: LOG_OVERHEAD,
            available: buf.len(),
        });
    }
    let length = i64::from(be_i32(buf, BATCH_LENGTH));
    let min = HEADER_LEN - LOG_OVERHEAD;
    let max = max_len.saturating_sub(LOG_OVERHEAD);
    if length < min as i64 || length > max as i64 {
        return Err(BatchError::BadLength {
            length,
            min: min + LOG_OVERHEAD,
            max: max_len,
        });
    }
    Ok(LOG_OVERHEAD + length as usize)
}

impl BatchHeader {
    /// Parses the fixed header. `buf` must hold at least [`HEADER_LEN`]
    /// bytes; lengths are not checked against anything (see [`validate`]).
    pub fn parse(buf: &[u8]) -> Result<Self, BatchError> {
        if buf.len() < HEADER_LEN {
            return Err(BatchError::Truncated {
                needed: HEADER_LEN,
                available: buf.len(),
            });
        }
        Ok(Self {
            base_offset: be_i64(buf, 0),
            batch_length: be_i32(buf, BATCH_LENGTH),
            partition_leader_epoch: be_i32(buf, LEADER_EPOCH),
            magic: buf[MAGIC] as i8,
            crc: u32::from_be_bytes(buf[CRC..CRC + 4].try_into().expect("4 bytes")),
            attributes: be_i16(buf, ATTRIBUTES),
            last_offset_delta: be_i32(buf, LAST_OFFSET_DELTA),
            base_timestamp: be_i64(buf, BASE_TIMESTAMP),
            max_timestamp: be_i64(buf, MAX_TIMESTAMP),
            producer_id: be_i64(buf, PRODUCER_ID),
            producer_epoch: be_i16(buf, PRODUCER_EPOCH),
            base_sequence: be_i32(buf, BASE_SEQUENCE),
            records_count: be_i32(buf, RECORDS_COUNT),
        })
    }

    /// Bytes this batch occupies in the log.
    pub fn total_len(&self) -> usize {
        LOG_OVERHEAD + self.batch_length as usize
    }

    /// Offset of the batch's last record.
    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    /// Offset right after the batch.
    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }

    /// Kafka compression codec id (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
    pub fn compression(&self) -> i16 {
        self.attributes & COMPRESSION_MASK
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_FLAG != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_FLAG != 0
    }
}

/// Validates the batch at the start of `buf`: length within `max_len` and
/// within `buf`, magic 2, sane record count, CRC-32C. Returns its header.
pub fn validate(buf: &[u8], max_len: usize) -> Result<BatchHeader, BatchError> {
    let total = frame_len(buf, max_len)?;
    if buf.len() < total {
        return Err(BatchError::Truncated {
            needed: total,
            available: buf.len(),
        });
    }
    let header = BatchHeader::parse(buf)?;
    if header.magic != MAGIC_V2 {
        return Err(BatchError::BadMagic(header.magic));
    }
    // A compacted batch may hold fewer records than its offset span, even
    // none, but never more.
    if header.records_count < 0
        || header.last_offset_delta < 0
        || i64::from(header.records_count) > i64::from(header.last_offset_delta) + 1
    {
        return Err(BatchError::BadRecordCount {
            count: header.records_count,
            last_offset_delta: header.last_offset_delta,
        });
    }
    let computed = crc32c::crc32c(&buf[ATTRIBUTES..total]);
    if computed != header.crc {
        return Err(BatchError::CrcMismatch {
            stored: header.crc,
            computed,
        });
    }
    Ok(header)
}

/// Validates a producer's batch: everything [`validate`] checks, plus the
/// rule that a freshly produced batch has one record per offset.
pub fn validate_produced(buf: &[u8], max_len: usize) -> Result<BatchHeader, BatchError> {
    let header = validate(buf, max_len)?;
    if header.records_count < 1 || header.records_count != header.last_offset_delta + 1 {
        return Err(BatchError::BadRecordCount {
            count: header.records_count,
            last_offset_delta: header.last_offset_delta,
        });
    }
    Ok(header)
}

/// Walks concatenated batches, validating each with `check`. Stops with an
/// error at the first bad batch or trailing partial bytes.
pub fn validate_all(
    buf: &[u8],
    max_len: usize,
    check: fn(&[u8], usize) -> Result<BatchHeader, BatchError>,
) -> Result<Vec<(usize, BatchHeader)>, BatchError> {
    if buf.is_empty() {
        return Err(BatchError::Empty);
    }
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let header = check(&buf[pos..], max_len)?;
        out.push((pos, header));
        pos += header.total_len();
    }
    Ok(out)
}

/// Overwrites `baseOffset` of the batch at the start of `buf` (not covered
/// by the CRC).
pub fn set_base_offset(buf: &mut [u8], offset: i64) {
    buf[0..8].copy_from_slice(&offset.to_be_bytes());
}

/// Overwrites `partitionLeaderEpoch` of the batch at the start of `buf`
/// (not covered by the CRC).
pub fn set_leader_epoch(buf: &mut [u8], epoch: i32) {
    buf[LEADER_EPOCH..LEADER_EPOCH + 4].copy_from_slice(&epoch.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::test_batch as batch;

    const MAX: usize = 1 << 20;

    #[test]
    fn given_encoded_batch_when_validated_then_header_matches() {
        let b = batch(&[b"a", b"bb", b"ccc"]);
        let h = validate_produced(&b, MAX).unwrap();
        assert_eq!(h.records_count, 3);
        assert_eq!(h.last_offset_delta, 2);
        assert_eq!(h.total_len(), b.len());
        assert_eq!(h.magic, 2);
    }

    #[test]
    fn given_any_flipped_byte_in_crc_range_then_crc_mismatch() {
        let b = batch(&[b"hello", b"world"]);
        for i in ATTRIBUTES..b.len() {
            let mut c = b.clone();
            c[i] ^= 0x40;
            let err = validate(&c, MAX).unwrap_err();
            assert!(
                matches!(
                    err,
                    BatchError::CrcMismatch { .. } | BatchError::BadRecordCount { .. }
                ),
                "byte {i}: {err}"
            );
        }
    }

    #[test]
    fn given_stamped_offset_and_epoch_then_crc_still_valid() {
        let mut b = batch(&[b"x"]);
        set_base_offset(&mut b, 123_456);
        set_leader_epoch(&mut b, 7);
        let h = validate(&b, MAX).unwrap();
        assert_eq!(h.base_offset, 123_456);
        assert_eq!(h.partition_leader_epoch, 7);
    }

    #[test]
    fn given_bad_lengths_then_rejected_before_allocation() {
        let b = batch(&[b"x"]);
        for bad in [-1i32, 0, 10, i32::MAX] {
            let mut c = b.clone();
            c[8..12].copy_from_slice(&bad.to_be_bytes());
            assert!(matches!(
                validate(&c, MAX),
                Err(BatchError::BadLength { .. }) | Err(BatchError::Truncated { .. })
            ));
        }
        // Longer than the allowed maximum.
        assert!(matches!(
            validate(&b, 64),
            Err(BatchError::BadLength { .. })
        ));
        // Shorter buffer than the batch claims.
        assert!(matches!(
            validate(&b[..b.len() - 1], MAX),
            Err(BatchError::Truncated { .. })
        ));
    }

    #[test]
    fn given_wrong_magic_then_rejected() {
        let mut b = batch(&[b"x"]);
        b[MAGIC] = 1;
        assert_eq!(validate(&b, MAX), Err(BatchError::BadMagic(1)));
    }

    #[test]
    fn given_concatenated_batches_then_all_validated_and_trailing_garbage_rejected() {
        let mut b = batch(&[b"a"]);
        b.extend(batch(&[b"b", b"c"]));
        let all = validate_all(&b, MAX, validate_produced).unwrap();
        assert_eq!(all.len(), 2);
        b.extend_from_slice(&[0, 1, 2]);
        assert!(validate_all(&b, MAX, validate_produced).is_err());
        assert_eq!(validate_all(&[], MAX, validate), Err(BatchError::Empty));
    }
}
