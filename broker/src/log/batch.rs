//! Kafka RecordBatch v2 headers as the log uses them: parsing, CRC-32C
//! validation and stamping of base offset and leader epoch. The
//! format lives in [`rill_client::batch`], shared with the client; this
//! module names it for the broker and holds the broker's test helpers.

pub use rill_client::batch::{
    BatchError, BatchHeader, HEADER_LEN, LOG_OVERHEAD, MAGIC_V2, frame_len, set_base_offset,
    set_leader_epoch, validate, validate_all, validate_produced,
};

#[cfg(test)]
pub(crate) mod test_util {
    //! Builds batches with the shared encoder and reads them with the
    //! kafka-protocol decoder.
    use bytes::Bytes;
    use kafka_protocol::records::{Compression, RecordBatchDecoder};
    use rill_client::batch::{EncodeOptions, NewRecord, Producer, encode as encode_records};

    /// One record to encode: key, value, timestamp.
    pub type Rec<'a> = (Option<&'a [u8]>, &'a [u8], i64);

    /// Encodes records as one RecordBatch v2 (offsets from 0, no producer).
    pub fn encode(records: &[Rec<'_>], compression: Compression) -> Vec<u8> {
        let records: Vec<NewRecord> = records
            .iter()
            .map(|(k, v, ts)| NewRecord {
                key: k.map(Bytes::copy_from_slice),
                value: Some(Bytes::copy_from_slice(v)),
                timestamp: *ts,
            })
            .collect();
        let options = EncodeOptions {
            compression,
            ..EncodeOptions::default()
        };
        encode_records(&records, &options).expect("encode").to_vec()
    }

    /// Decodes stored batches into (offset, key, value, timestamp).
    pub fn decode(data: &Bytes) -> Vec<(i64, Option<Bytes>, Bytes, i64)> {
        let mut buf = data.clone();
        RecordBatchDecoder::decode_all(&mut buf)
            .expect("stored batches decode")
            .into_iter()
            .flat_map(|set| set.records)
            .map(|r| (r.offset, r.key, r.value.unwrap_or_default(), r.timestamp))
            .collect()
    }

    /// One batch of an idempotent producer: `values` with sequences from
    /// `first_sequence`, all with `timestamp`.
    pub fn idempotent(
        values: &[&[u8]],
        producer_id: i64,
        producer_epoch: i16,
        first_sequence: i32,
        timestamp: i64,
    ) -> Vec<u8> {
        let records: Vec<NewRecord> = values
            .iter()
            .map(|v| NewRecord {
                key: None,
                value: Some(Bytes::copy_from_slice(v)),
                timestamp,
            })
            .collect();
        let options = EncodeOptions {
            producer: Some(Producer {
                id: producer_id,
                epoch: producer_epoch,
                first_sequence,
            }),
            ..EncodeOptions::default()
        };
        encode_records(&records, &options).expect("encode").to_vec()
    }

    /// One batch of a transactional producer (sequences from 0).
    pub fn transactional(values: &[&[u8]], producer_id: i64, producer_epoch: i16) -> Vec<u8> {
        let records: Vec<NewRecord> = values
            .iter()
            .map(|v| NewRecord {
                key: None,
                value: Some(Bytes::copy_from_slice(v)),
                timestamp: 1_700_000_000_000,
            })
            .collect();
        let options = EncodeOptions {
            producer: Some(Producer {
                id: producer_id,
                epoch: producer_epoch,
                first_sequence: 0,
            }),
            transactional: true,
            ..EncodeOptions::default()
        };
        encode_records(&records, &options).expect("encode").to_vec()
    }

    /// One uncompressed batch of unkeyed `values`.
    pub fn batch(values: &[&[u8]]) -> Vec<u8> {
        let recs: Vec<Rec<'_>> = values
            .iter()
            .map(|v| (None, *v, 1_700_000_000_000))
            .collect();
        encode(&recs, Compression::None)
    }
}
