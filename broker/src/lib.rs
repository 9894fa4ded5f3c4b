//! The Rill broker: stores partition logs, replicates them to other
//! brokers, and serves Kafka clients and Rill's own gRPC API.
//!
//! # Layers
//!
//! Each module imports only from the layers below it (checked by
//! `tests/layers.rs`; `docs/architecture.md` draws the map):
//!
//! ```text
//! server, config, http        the process: wiring, flags, probes
//! kafka                       Kafka listener: frames, the API table, handlers
//! txn | share                 transaction coordinator | share-group partitions
//! group | grpc | cluster      group coordinator | gRPC adapters | link to the cluster
//! partition                   local replicas: produce, fetch, acks, topics
//! replication | security      leader/follower state without I/O | TLS, SASL, ACLs
//!   | quota                      | client quotas: rates and throttle times
//! log                         segments, indexes, retention, compaction
//! metrics                     counters every layer updates
//! ```
//!
//! # A produce request
//!
//! [`kafka::connection`] reads a frame, [`kafka::apis`] decodes it and calls
//! [`kafka::produce`], which hands each partition's batch to
//! [`partition::manager::ReplicaManager::produce`]. The [`partition::Partition`]
//! appends it under its log lock ([`log::PartitionLog::append`] writes the
//! segment) and then waits for the acknowledgement `acks` asks for: with
//! `acks=all`, until followers (each driven by [`cluster::fetcher`], served
//! by [`grpc::replication`]) have fetched past it and
//! [`replication::leader::LeaderState`] moves the high watermark over it.
//!
//! # A fetch
//!
//! A consumer's Fetch takes the same road down: [`kafka::fetch`] calls
//! [`partition::manager::ReplicaManager::fetch_many`], which reads whole
//! batches below the high watermark from each partition's log and
//! long-polls on its high-watermark watch until enough data arrives. A
//! follower's fetch enters through [`grpc::replication`] instead and reads
//! up to the log end, recording the follower's position as it goes.
//!
//! The gRPC client API ([`grpc`]) calls the same
//! [`partition::manager::ReplicaManager`] methods as the Kafka handlers.
pub mod cluster;
pub mod config;
pub mod group;
pub mod grpc;
pub mod http;
pub mod kafka;
pub mod log;
pub mod metrics;
pub mod partition;
pub mod quota;
pub mod replication;
pub mod security;
pub mod server;
pub mod share;
pub mod txn;

pub use server::{Broker, BrokerHandle, ServerError, run};
