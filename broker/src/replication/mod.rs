//! Replication between brokers.
//!
//! - [`epochs`]: the leader epoch cache (epoch -> start offset) of each
//!   partition replica, used to find where a follower's log diverges.
//! - [`leader`]: pure leader-side state: follower LEOs, high watermark, ISR
//!   shrink/expand decisions.
//! - [`fetcher`]: the follower side: one fetch stream per leader broker.
//!
//! Followers pull: each keeps a long-lived `ReplicaFetch` stream to every
//! leader it follows (proto/replication.proto). A leader's HW is the
//! minimum LEO over its ISR; consumers only see records below it, and an
//! acks=all produce completes when the HW passes its last record.

pub mod epochs;
pub mod fetcher;
pub mod leader;
