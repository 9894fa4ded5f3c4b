//! Rill's client crate: what a Rust program (and the `rill` CLI) needs to
//! talk to Rill brokers and to write and read Rill's record data, without
//! compiling the broker.
//!
//! It owns:
//! - [`Client`] (module `client`): the typed client of the brokers' gRPC
//!   client API, with [`ClientError`]s that say what to do;
//! - the record codec glue (module `records`): [`encode_batch`] builds the
//!   batch a produce sends, [`decode_batches`] checks (CRC-32C, bounds) and
//!   decodes fetched batches;
//! - partition choice like Kafka's default partitioner (module
//!   `partitioner`): [`partition_for_key`] (murmur2) and
//!   [`StickyPartitioner`] for records without a key;
//! - [`batch`]: the Kafka RecordBatch v2 format (header checks, CRC-32C,
//!   the one encoder), which the broker uses for storage and its group
//!   coordinator, and tests and benchmarks use to build batches.

pub mod batch;
mod client;
mod partitioner;
mod records;

pub use client::{
    Acks, Broker, CONNECT_TIMEOUT, Client, ClientError, FetchResult, MAX_RESPONSE_BYTES,
    MetadataResponse, OffsetQuery, PartitionInfo, ProduceAck, REQUEST_TIMEOUT, TopicInfo,
};
pub use partitioner::{StickyPartitioner, murmur2, partition_for_key, to_positive};
pub use records::{DecodedBatches, FetchedRecord, decode_batches, encode_batch, now_ms};
