//! The one RecordBatch v2 encoder of Rill: turns records (key, value,
//! timestamp) into Kafka RecordBatch v2 bytes with `kafka-protocol`'s
//! encoder, at base offset 0 (a broker assigns real offsets on append).
//!
//! The client, the `rill` CLI, the broker's group coordinator (records of
//! `__consumer_offsets`), tests and benchmarks all build batches here.

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
use thiserror::Error;

pub use kafka_protocol::records::Compression;

/// One record to encode.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewRecord {
    pub key: Option<Bytes>,
    /// `None` is a tombstone.
    pub value: Option<Bytes>,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
}

/// The idempotent producer a batch comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Producer {
    pub id: i64,
    pub epoch: i16,
    /// Sequence number of the first record; the others follow it.
    pub first_sequence: i32,
}

/// How records are grouped into batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Batching {
    /// All records in one batch, at offsets 0, 1, ...
    #[default]
    One,
    /// Every record in a batch of its own, the batches one after the other
    /// at base offsets 0, 1, ... (how the group coordinator writes its
    /// records, and what some integration tests send).
    PerRecord,
}

/// Settings of [`encode`]; the default is one uncompressed batch without
/// a producer.
#[derive(Debug, Clone, Copy)]
pub struct EncodeOptions {
    pub compression: Compression,
    /// `None`: no idempotent producer (producer id and epoch -1, base
    /// sequence -1).
    pub producer: Option<Producer>,
    pub batching: Batching,
    /// Part of the producer's open transaction (the batch's transactional
    /// attribute); needs `producer`.
    pub transactional: bool,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        Self {
            compression: Compression::None,
            producer: None,
            batching: Batching::One,
            transactional: false,
        }
    }
}

/// The encoder refused the records (a compression codec failed).
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("cannot encode record batch: {0}")]
pub struct EncodeError(pub String);

/// Encodes `records` as RecordBatch v2 bytes (nothing for no records).
pub fn encode(records: &[NewRecord], options: &EncodeOptions) -> Result<Bytes, EncodeError> {
    let (producer_id, producer_epoch) = options.producer.map_or((-1, -1), |p| (p.id, p.epoch));
    let to_record = |i: usize, r: &NewRecord| Record {
        transactional: options.transactional && options.producer.is_some(),
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id,
        producer_epoch,
        timestamp_type: TimestampType::Creation,
        offset: i as i64,
        // kafka-protocol's encoder keeps records in one batch only while
        // offset - sequence stays the same, and derives the batch's base
        // sequence from them.
        sequence: match (options.producer, options.batching) {
            (Some(p), _) => p.first_sequence.wrapping_add(i as i32),
            (None, Batching::One) => i as i32 - 1,
            (None, Batching::PerRecord) => -1,
        },
        timestamp: r.timestamp,
        key: r.key.clone(),
        value: r.value.clone(),
        headers: Default::default(),
    };
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, r)| to_record(i, r))
        .collect();
    let kafka_options = RecordEncodeOptions {
        version: 2,
        compression: options.compression,
    };
    let mut buf = BytesMut::new();
    let mut put = |records: &[Record]| {
        RecordBatchEncoder::encode(&mut buf, records, &kafka_options)
            .map_err(|e| EncodeError(e.to_string()))
    };
    match options.batching {
        Batching::One => put(&records)?,
        Batching::PerRecord => {
            for record in &records {
                put(std::slice::from_ref(record))?;
            }
        }
    }
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{BatchHeader, validate_all, validate_produced};

    fn values(n: usize) -> Vec<NewRecord> {
        (0..n)
            .map(|i| NewRecord {
                key: (i % 2 == 0).then(|| Bytes::from(format!("k{i}"))),
                value: Some(Bytes::from(format!("v{i}"))),
                timestamp: 1_700_000_000_000 + i as i64,
            })
            .collect()
    }

    fn headers(bytes: &Bytes) -> Vec<BatchHeader> {
        validate_all(bytes, 1 << 20, validate_produced)
            .unwrap()
            .into_iter()
            .map(|(_, h)| h)
            .collect()
    }

    #[test]
    fn given_default_options_then_one_batch_without_producer() {
        let bytes = encode(&values(3), &EncodeOptions::default()).unwrap();
        let h = headers(&bytes);
        assert_eq!(h.len(), 1);
        assert_eq!((h[0].base_offset, h[0].records_count), (0, 3));
        assert_eq!((h[0].producer_id, h[0].producer_epoch), (-1, -1));
        assert_eq!(h[0].base_sequence, -1);
        assert_eq!(h[0].compression(), 0);
    }

    #[test]
    fn given_per_record_batching_then_one_batch_per_record_at_consecutive_offsets() {
        let options = EncodeOptions {
            batching: Batching::PerRecord,
            ..Default::default()
        };
        let bytes = encode(&values(3), &options).unwrap();
        let h = headers(&bytes);
        let got: Vec<_> = h.iter().map(|h| (h.base_offset, h.records_count)).collect();
        assert_eq!(got, vec![(0, 1), (1, 1), (2, 1)]);
        assert!(h.iter().all(|h| h.base_sequence == -1));
    }

    #[test]
    fn given_a_producer_then_its_ids_and_first_sequence_are_in_the_header() {
        let options = EncodeOptions {
            producer: Some(Producer {
                id: 42,
                epoch: 3,
                first_sequence: 7,
            }),
            compression: Compression::Gzip,
            ..Default::default()
        };
        let h = headers(&encode(&values(4), &options).unwrap());
        assert_eq!(h.len(), 1);
        assert_eq!((h[0].producer_id, h[0].producer_epoch), (42, 3));
        assert_eq!((h[0].base_sequence, h[0].records_count), (7, 4));
        assert_eq!(h[0].compression(), 1);
    }

    #[test]
    fn given_no_records_then_nothing_is_written() {
        assert!(encode(&[], &EncodeOptions::default()).unwrap().is_empty());
    }
}
