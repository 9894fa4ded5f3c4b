//! The consumer-group coordinator: Kafka's classic group protocol
//! (joining, syncing, heartbeats, leaving) and committed offsets, plus
//! locating, listing, describing and deleting groups. It speaks Rill's own
//! types only; the Kafka listener (`crate::kafka::groups`) turns Kafka
//! requests into these and the answers back into Kafka responses.
//!
//! - Placement ([`placement`]): groups live in the internal compacted topic
//!   `__consumer_offsets`, created on first use through the
//!   [`ReplicaManager`](crate::partition::manager::ReplicaManager) (the
//!   controller places it in a cluster). Group `g` belongs to partition
//!   `abs(javaHashCode(g)) % partitions`, like Kafka, and its coordinator is
//!   that partition's leader.
//! - State machine ([`state`]): pure, driven by the service with an
//!   explicit clock; one [`state::GroupTable`] per offsets partition.
//! - Persistence ([`records`]): offset commits and group metadata
//!   (generation, protocol, leader, members and their assignments) are
//!   written as keyed records with acks=all before the request is answered;
//!   compaction keeps the latest per key, tombstones delete.
//! - Service ([`coordinator::GroupCoordinator`]): follows leadership of the
//!   offsets partitions. When this broker becomes leader of one, it waits
//!   until everything the previous leader wrote is committed, reads the
//!   partition to its high watermark and rebuilds the groups (requests get
//!   COORDINATOR_LOAD_IN_PROGRESS meanwhile); when it stops leading, the
//!   groups are dropped and parked requests get NOT_COORDINATOR. Writes of
//!   one partition go through one writer task, which batches whatever is
//!   queued into one record batch, so records reach the log in the order
//!   the state machine produced them.
//! - Requests ([`requests`]): what the coordinator answers (locate, join,
//!   sync, heartbeat, leave, commit, committed, list, describe, delete),
//!   with versions already resolved by the caller.
//!
//! Failures are [`GroupError`]s; the Kafka listener maps them to error codes.

pub mod coordinator;
pub mod error;
pub mod placement;
pub mod records;
pub mod requests;
pub mod state;

pub use coordinator::{ClientInfo, GroupCoordinator, GroupSettings};
pub use error::GroupError;
pub use placement::{OFFSETS_TOPIC, partition_for};
pub use requests::OffsetToCommit;
