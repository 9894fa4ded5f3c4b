//! The replication role of a partition replica and the values its
//! replication calls exchange: [`Role`] (standalone, leader with its ISR
//! state, follower, no leader), [`RoleView`] for metadata and metrics,
//! [`ReplicaRead`] (a follower's fetch as the leader answers it) and
//! [`IsrProposal`] (an ISR change a leader asks the controller for). The
//! behaviour behind them is in `replica/`.

use bytes::Bytes;

use crate::replication::leader::LeaderState;

/// What this replica does for its partition.
#[derive(Debug, Clone)]
pub enum Role {
    /// No controller: this broker alone owns the partition; the HW follows
    /// the flush policy.
    Standalone,
    /// Leader at an epoch, tracking its followers.
    Leader(LeaderState),
    /// Follower of `leader` at `leader_epoch`.
    Follower { leader: i32, leader_epoch: i32 },
    /// Assigned here, but the partition has no leader right now.
    NoLeader { leader_epoch: i32 },
}

/// A copy of the role for metadata answers and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleView {
    pub leader: Option<i32>,
    pub leader_epoch: i32,
    pub is_leader: bool,
    pub isr: Vec<i32>,
    pub replicas: Vec<i32>,
}

/// Outcome of a follower's fetch at the leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplicaRead {
    Data {
        records: Bytes,
        high_watermark: i64,
        log_start_offset: i64,
    },
    /// The follower's log diverged: it must truncate to the end of `epoch`
    /// (at most `end_offset`).
    Diverging {
        epoch: i32,
        end_offset: i64,
        high_watermark: i64,
        log_start_offset: i64,
    },
    /// The fetch offset is below the leader's log start.
    OutOfRange {
        log_start_offset: i64,
    },
    NotLeader,
    /// The follower's leader epoch is older than the leader's.
    FencedEpoch,
    /// The follower's leader epoch is newer than the leader's.
    UnknownEpoch,
}

/// An ISR change a leader asks the controller for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrProposal {
    pub leader_epoch: i32,
    /// The partition epoch of the state the change is based on.
    pub partition_epoch: i32,
    pub isr: Vec<i32>,
    /// Broker epochs of the members it adds, as seen in their fetches.
    pub joining_epochs: Vec<(i32, i64)>,
}
