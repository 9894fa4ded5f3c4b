//! The broker's link to the rest of the cluster (cluster mode only; a
//! standalone broker starts none of it).
//!
//! - [`link`]: the controller link. Registers this broker and keeps its
//!   lease with heartbeats, follows `WatchMetadata` and reconciles the
//!   local replicas with every update (open, role, delete), proposes ISR
//!   changes of the leaders here, forwards topic admin to the controller
//!   and moves leadership away on a controlled shutdown.
//! - [`fetcher`]: the follower side of replication: one `ReplicaFetch`
//!   stream per leader broker, whose answers are applied to the local
//!   follower replicas.
//! - [`channel`]: the fetcher's HTTP/2 connection to a leader, with frames
//!   of up to 1 MiB (plaintext or internal mutual TLS).
//! - [`throttle`]: the byte-rate limit of replicas catching up because a
//!   reassignment adds them.
//! - [`touched`]: which local replicas one metadata update may change, so
//!   an update naming one partition costs work for one partition.
//!
//! Both drive the partition layer ([`crate::partition`]) from the outside;
//! the data path never calls up into this module.

pub mod channel;
pub mod fetcher;
pub mod link;
pub mod throttle;
pub mod touched;
