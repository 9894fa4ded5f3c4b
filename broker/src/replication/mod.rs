//! The per-replica state of replication between brokers, free of network
//! I/O: what each partition replica keeps to act as a leader or follower.
//!
//! - [`epochs`]: the leader epoch cache (epoch -> start offset) of each
//!   partition replica, persisted beside its log, used to find where a
//!   follower's log diverges.
//! - [`leader`]: pure leader-side state: follower LEOs, high watermark, ISR
//!   shrink/expand decisions.
//!
//! Followers pull: each keeps a long-lived `ReplicaFetch` stream to every
//! leader it follows (proto/replication.proto). The follower side of that
//! stream is the cluster link's fetcher (`cluster/fetcher.rs`), the leader
//! side the gRPC adapter (`grpc/replication.rs`); both sit above the
//! partition layer that uses this module. A leader's HW is the minimum LEO
//! over its ISR; consumers only see records below it, and an acks=all
//! produce completes when the HW passes its last record.

pub mod epochs;
pub mod leader;
