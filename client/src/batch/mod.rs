//! The Kafka RecordBatch v2 format as Rill reads and writes it: header
//! parsing and checks ([`validate`], CRC-32C, bounds), in-place stamping of
//! base offset and leader epoch, and the one encoder ([`encode`]).
//!
//! The broker's storage and Kafka listener check and stamp batches with
//! these functions; the client checks what it fetches with them.

mod control;
mod encode;
mod header;

pub use control::{ControlType, control_type, marker_batch};
pub use encode::{Batching, Compression, EncodeError, EncodeOptions, NewRecord, Producer, encode};
pub use header::{
    BatchError, BatchHeader, HEADER_LEN, LOG_OVERHEAD, MAGIC_V2, MAX_STORED_BATCH, frame_len,
    set_base_offset, set_leader_epoch, validate, validate_all, validate_produced,
};

/// One uncompressed batch of unkeyed `values` stamped 2023-11-14, for tests.
#[cfg(test)]
pub(crate) fn test_batch(values: &[&[u8]]) -> Vec<u8> {
    let records: Vec<NewRecord> = values
        .iter()
        .map(|v| NewRecord {
            key: None,
            value: Some(bytes::Bytes::copy_from_slice(v)),
            timestamp: 1_700_000_000_000,
        })
        .collect();
    encode(&records, &EncodeOptions::default())
        .expect("an uncompressed batch encodes")
        .to_vec()
}
