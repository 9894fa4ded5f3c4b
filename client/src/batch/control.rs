//! Transaction markers: the control batches that end a producer's
//! transaction in one partition (Kafka's `EndTransactionMarker`).
//!
//! A marker is a batch with the control and transactional attributes, the
//! producer's id and epoch, base sequence -1 and one record whose key is
//! `version: i16 = 0, type: i16` (0 abort, 1 commit) and whose value is
//! `version: i16 = 0, coordinator_epoch: i32`. Consumers never see it as a
//! record: clients skip control batches, and a read_committed consumer
//! uses an abort marker to stop dropping the producer's records.

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::records::{Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};

use super::header::{BatchHeader, HEADER_LEN};

/// How a transaction ended in a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ControlType {
    Abort,
    Commit,
}

impl ControlType {
    /// The marker's key type.
    pub fn code(self) -> i16 {
        match self {
            Self::Abort => 0,
            Self::Commit => 1,
        }
    }

    pub fn from_commit(commit: bool) -> Self {
        if commit { Self::Commit } else { Self::Abort }
    }
}

/// The marker batch of `producer_id` at `producer_epoch`, at base offset 0
/// (the log assigns the real one).
pub fn marker_batch(
    producer_id: i64,
    producer_epoch: i16,
    kind: ControlType,
    coordinator_epoch: i32,
    timestamp: i64,
) -> Bytes {
    let mut key = BytesMut::with_capacity(4);
    key.extend_from_slice(&0i16.to_be_bytes());
    key.extend_from_slice(&kind.code().to_be_bytes());
    let mut value = BytesMut::with_capacity(6);
    value.extend_from_slice(&0i16.to_be_bytes());
    value.extend_from_slice(&coordinator_epoch.to_be_bytes());
    let record = Record {
        transactional: true,
        control: true,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id,
        producer_epoch,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp,
        key: Some(key.freeze()),
        value: Some(value.freeze()),
        headers: Default::default(),
    };
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        std::slice::from_ref(&record),
        &RecordEncodeOptions {
            version: 2,
            compression: kafka_protocol::records::Compression::None,
        },
    )
    .expect("an uncompressed one-record batch always encodes");
    buf.freeze()
}

/// The type of the control batch at the start of `batch` (header and
/// records): `None` for a data batch, or a control record this version
/// does not know (Kafka skips those too).
pub fn control_type(header: &BatchHeader, batch: &[u8]) -> Option<ControlType> {
    if !header.is_control() || header.compression() != 0 {
        return None;
    }
    let mut rest = batch.get(HEADER_LEN..)?;
    // Record: length, attributes, timestamp delta, offset delta, key.
    read_varint(&mut rest)?;
    if rest.is_empty() {
        return None;
    }
    rest.advance(1);
    read_varint(&mut rest)?;
    read_varint(&mut rest)?;
    let key_len = read_varint(&mut rest)?;
    if key_len < 4 || rest.len() < 4 {
        return None;
    }
    match i16::from_be_bytes([rest[2], rest[3]]) {
        0 => Some(ControlType::Abort),
        1 => Some(ControlType::Commit),
        _ => None,
    }
}

/// A zig-zag varint (Kafka's record fields).
fn read_varint(buf: &mut &[u8]) -> Option<i64> {
    let mut raw: u64 = 0;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = buf.split_first()?;
        *buf = rest;
        raw |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some((raw >> 1) as i64 ^ -((raw & 1) as i64));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::validate;
    use kafka_protocol::records::RecordBatchDecoder;

    #[test]
    fn given_a_marker_when_decoded_then_kafka_reads_a_control_record_of_its_type() {
        for kind in [ControlType::Abort, ControlType::Commit] {
            let bytes = marker_batch(77, 3, kind, 9, 1_700_000_000_000);
            let h = validate(&bytes, 1 << 20).expect("valid batch");
            assert!(h.is_control() && h.is_transactional());
            assert_eq!(
                (h.producer_id, h.producer_epoch, h.base_sequence),
                (77, 3, -1)
            );
            assert_eq!(control_type(&h, &bytes), Some(kind));
            let mut buf = bytes.clone();
            let set = RecordBatchDecoder::decode(&mut buf).expect("decodes");
            let r = &set.records[0];
            assert!(r.control && r.transactional);
            let key = r.key.clone().expect("key");
            assert_eq!(&key[..], &[0, 0, 0, kind.code() as u8]);
            let value = r.value.clone().expect("value");
            assert_eq!(&value[2..], &9i32.to_be_bytes());
        }
    }

    #[test]
    fn given_a_data_batch_then_it_has_no_control_type() {
        let bytes = crate::batch::test_batch(&[b"a"]);
        let h = validate(&bytes, 1 << 20).unwrap();
        assert_eq!(control_type(&h, &bytes), None);
    }
}
