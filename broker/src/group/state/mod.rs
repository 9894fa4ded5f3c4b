//! The classic group protocol as a pure state machine: no I/O, no clock,
//! no tasks. Every call takes `now` (ms) and returns what the caller must
//! do: answer parked requests ([`Effects::replies`]) and write records to
//! the offsets topic ([`Effects::stores`], [`Effects::tombstones`]).
//!
//! A [`GroupTable`] holds the groups of one `__consumer_offsets` partition.
//! Each [`Group`] moves through Kafka's states:
//!
//! ```text
//!            join                    all joined / timeout         leader's SyncGroup stored
//!  Empty ----------> PreparingRebalance ----------> CompletingRebalance ----------> Stable
//!    ^                ^   |  (no member left)            |  join / leave / expiry      |
//!    +----------------|---+                              v                             |
//!                     +------------------------------ (rebalance) <--------------------+
//! ```
//!
//! JoinGroup requests are parked (their [`RequestId`] is kept on the
//! member) until the rebalance completes: when every member has rejoined,
//! or when the rebalance timeout (the largest of the members') passes, or,
//! for a group that was Empty, after `group.initial.rebalance.delay.ms`,
//! extended by the same delay while new members keep arriving (never past
//! the rebalance timeout). Members that did not rejoin are removed (static
//! members are kept until their session expires). The new generation's
//! leader gets every member's metadata, computes the assignment and sends it
//! with its SyncGroup; the assignment is written to the offsets topic, and
//! only then does every member's parked SyncGroup get its share.
//!
//! Sessions: a member that neither heartbeats nor commits within its
//! session timeout is removed, which starts a rebalance. Members with a
//! parked JoinGroup or SyncGroup are not expired (the rebalance and sync
//! deadlines bound those waits). A member that does not send SyncGroup
//! within the rebalance timeout after the join completed is removed too.
//!
//! Static membership (KIP-345): a member with a `group.instance.id` keeps
//! its place across restarts. When it rejoins with an unknown member id, it
//! takes over the old member id's place; in a Stable group whose selected
//! protocol does not change this causes no rebalance (the new member id is
//! written to the offsets topic first). Requests that name the instance id
//! with another member id get FENCED_INSTANCE_ID.

pub mod assignor;
mod consumer;
mod consumer_classic;
mod consumer_table;
mod group;
mod join;
mod membership;
mod model;
mod offsets;
mod share;
mod table;
mod timers;

pub use assignor::Partitions;
pub use consumer::{
    ConsumerGroup, ConsumerGroupDescription, ConsumerHeartbeat, ConsumerHeartbeatReply,
    ConsumerMember, ConsumerMemberDescription, MemberState, TopicCatalog,
};
pub use consumer_classic::ClassicMember;
pub use group::*;
pub use model::*;
pub use share::{
    SHARE_ASSIGNOR, SHARE_PROTOCOL_TYPE, ShareConfig, ShareGroup, ShareGroupDescription,
    ShareHeartbeat, ShareHeartbeatReply, ShareMemberDescription, ShareWrite,
};
pub use table::*;

#[cfg(test)]
mod tests;
