//! Rill's gRPC protocols, generated from `proto/proto/*.proto`.
//!
//! - [`client`]: the small data API used by the `rill` CLI and Rust clients
//!   (produce, fetch, list offsets, metadata, topic admin). Record data travels
//!   as Kafka RecordBatch v2 bytes, exactly as the broker stores them.

/// `rill.client.v1`: the client data API.
pub mod client {
    tonic::include_proto!("rill.client.v1");
}
