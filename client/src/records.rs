//! The client's record codec glue: [`encode_batch`] builds the batch a
//! produce sends (with [`crate::batch::encode`]), [`decode_batches`] checks
//! every fetched batch (bounds, CRC-32C) and decodes its records with
//! `kafka-protocol`'s decoder (never hand-written).

use bytes::Bytes;
use kafka_protocol::records::RecordBatchDecoder;

use crate::ClientError;
use crate::batch::{self, EncodeOptions, NewRecord};

/// One record read back from a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedRecord {
    pub offset: i64,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Encodes `records` as one uncompressed RecordBatch v2 at base offset 0
/// (the broker assigns offsets), every record stamped `timestamp_ms`.
pub fn encode_batch<K: AsRef<[u8]>, V: AsRef<[u8]>>(
    records: &[(Option<K>, V)],
    timestamp_ms: i64,
) -> Result<Bytes, ClientError> {
    if records.is_empty() {
        return Err(ClientError::Encode(
            "a batch needs at least one record".into(),
        ));
    }
    let records: Vec<NewRecord> = records
        .iter()
        .map(|(key, value)| NewRecord {
            key: key.as_ref().map(|k| Bytes::copy_from_slice(k.as_ref())),
            value: Some(Bytes::copy_from_slice(value.as_ref())),
            timestamp: timestamp_ms,
        })
        .collect();
    batch::encode(&records, &EncodeOptions::default()).map_err(|e| ClientError::Encode(e.0))
}

/// Records decoded from concatenated batches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecodedBatches {
    /// Every non-control record, in stored order.
    pub records: Vec<FetchedRecord>,
    /// Offset after the last batch (covers records removed by compaction);
    /// `None` when there were no batches.
    pub next_offset: Option<i64>,
    /// Number of batches.
    pub batches: usize,
}

/// Validates (bounds and CRC-32C) and decodes concatenated RecordBatch v2
/// bytes as a fetch returns them. Any bad batch is an error: a client never
/// sees bytes that fail their checks.
pub fn decode_batches(data: &Bytes) -> Result<DecodedBatches, ClientError> {
    let mut out = DecodedBatches::default();
    let mut pos = 0;
    while pos < data.len() {
        let corrupt = |reason: String| ClientError::Corrupt {
            position: pos,
            reason,
        };
        // Bounds, magic and CRC-32C first, so the decoder only sees sane bytes.
        let header = batch::validate(&data[pos..], batch::MAX_STORED_BATCH)
            .map_err(|e| corrupt(e.to_string()))?;
        let len = header.total_len();
        let mut slice = data.slice(pos..pos + len);
        let set = RecordBatchDecoder::decode(&mut slice).map_err(|e| corrupt(e.to_string()))?;
        if set.records.len() != header.records_count as usize {
            return Err(corrupt(format!(
                "header says {} records, decoded {}",
                header.records_count,
                set.records.len()
            )));
        }
        out.records.extend(
            set.records
                .into_iter()
                .filter(|r| !r.control)
                .map(|r| FetchedRecord {
                    offset: r.offset,
                    timestamp: r.timestamp,
                    key: r.key,
                    value: r.value,
                }),
        );
        out.next_offset = Some(header.next_offset());
        out.batches += 1;
        pos += len;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::BatchHeader;

    #[test]
    fn encoded_batch_decodes_to_the_same_records() {
        let records = vec![
            (Some(b"k1".to_vec()), b"v1".to_vec()),
            (None, b"".to_vec()),
            (Some(b"".to_vec()), vec![0u8, 255, 10, 13]),
        ];
        let batch = encode_batch(&records, 1_700_000_000_000).unwrap();
        let header = BatchHeader::parse(&batch).unwrap();
        assert_eq!(header.records_count, 3);
        let decoded = decode_batches(&batch).unwrap();
        assert_eq!(decoded.batches, 1);
        assert_eq!(decoded.next_offset, Some(3));
        let got: Vec<_> = decoded
            .records
            .iter()
            .map(|r| (r.offset, r.key.clone(), r.value.clone().unwrap()))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    0,
                    Some(Bytes::from_static(b"k1")),
                    Bytes::from_static(b"v1")
                ),
                (1, None, Bytes::new()),
                (2, Some(Bytes::new()), Bytes::from_static(&[0, 255, 10, 13])),
            ]
        );
    }

    #[test]
    fn given_a_flipped_byte_decode_reports_corruption() {
        let batch = encode_batch(&[(None::<&[u8]>, b"hello world")], 1).unwrap();
        let mut bad = batch.to_vec();
        let last = bad.len() - 1;
        bad[last] ^= 0x40;
        let err = decode_batches(&Bytes::from(bad)).unwrap_err();
        assert!(matches!(err, ClientError::Corrupt { .. }), "{err}");
        let truncated = batch.slice(..batch.len() - 3);
        assert!(decode_batches(&truncated).is_err());
    }

    #[test]
    fn empty_batch_is_refused() {
        let none: &[(Option<&[u8]>, &[u8])] = &[];
        assert!(encode_batch(none, 0).is_err());
    }
}
