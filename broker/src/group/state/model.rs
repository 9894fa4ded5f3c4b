//! What goes into and out of the group state machine: limits, group
//! states, requests, replies, the effects a call asks the caller to carry
//! out, and what DescribeGroups and ListGroups show.

use bytes::Bytes;

use crate::group::error::GroupError;
use crate::group::records::{CommittedOffset, ConsumerKey, ConsumerValue, GroupValue, RecordKey};

/// Committed offsets by topic: (partition, offset if any).
pub type TopicOffsets = Vec<(String, Vec<(i32, Option<CommittedOffset>)>)>;

/// Identifies a parked request so that its answer reaches it.
pub type RequestId = u64;

/// Limits and delays of the coordinator (broker flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// `group.initial.rebalance.delay.ms`: how long the first rebalance of
    /// an empty group waits for more members.
    pub initial_rebalance_delay_ms: i64,
    /// `group.min.session.timeout.ms`.
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`.
    pub max_session_timeout_ms: i32,
    /// `group.max.size`.
    pub max_size: usize,
    /// `offset.metadata.max.bytes`.
    pub max_metadata_bytes: usize,
    /// `group.consumer.session.timeout.ms`: a consumer-protocol member
    /// that does not heartbeat this long is removed.
    pub consumer_session_timeout_ms: i32,
    /// `group.consumer.heartbeat.interval.ms`: the heartbeat interval of a
    /// consumer-protocol member of a stable group.
    pub consumer_heartbeat_interval_ms: i32,
    /// The heartbeat interval while some member of the group is not
    /// reconciled, so partitions move as soon as their owners let go.
    pub consumer_reconcile_heartbeat_interval_ms: i32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            initial_rebalance_delay_ms: 3_000,
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            max_size: i32::MAX as usize,
            max_metadata_bytes: 4_096,
            consumer_session_timeout_ms: 45_000,
            consumer_heartbeat_interval_ms: 250,
            consumer_reconcile_heartbeat_interval_ms: 50,
        }
    }
}

/// Kafka's group states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// Every state, for metrics.
    pub const ALL: [GroupState; 5] = [
        Self::Empty,
        Self::PreparingRebalance,
        Self::CompletingRebalance,
        Self::Stable,
        Self::Dead,
    ];

    /// The name Kafka tools print and ListGroups filters on.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Empty => "Empty",
            Self::PreparingRebalance => "PreparingRebalance",
            Self::CompletingRebalance => "CompletingRebalance",
            Self::Stable => "Stable",
            Self::Dead => "Dead",
        }
    }
}

/// One protocol a member supports (for consumers: an assignor and its
/// subscription).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protocol {
    pub name: String,
    pub metadata: Bytes,
}

/// A JoinGroup request, version differences already resolved.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    /// Empty for a member joining for the first time.
    pub member_id: String,
    pub instance_id: Option<String>,
    pub protocol_type: String,
    pub protocols: Vec<Protocol>,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub client_id: String,
    pub client_host: String,
    /// JoinGroup v4+: a member without an id first gets one with
    /// MEMBER_ID_REQUIRED and must join again with it.
    pub require_known_member_id: bool,
    /// JoinGroup v9+: a static leader that rejoins a stable group is told
    /// to skip the assignment.
    pub supports_skip_assignment: bool,
}

/// A SyncGroup request.
#[derive(Debug, Clone)]
pub struct SyncRequest {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub generation: i32,
    /// v5+: must match the group's when given.
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    /// Sent by the leader: member id -> assignment.
    pub assignments: Vec<(String, Bytes)>,
}

/// A member in a JoinGroup answer to the leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub metadata: Bytes,
}

/// The answer to a JoinGroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinReply {
    pub error: Option<GroupError>,
    pub member_id: String,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: String,
    pub skip_assignment: bool,
    /// Every member's metadata, for the leader only.
    pub members: Vec<JoinedMember>,
}

impl JoinReply {
    pub fn error(error: GroupError, member_id: impl Into<String>) -> Self {
        Self {
            error: Some(error),
            member_id: member_id.into(),
            generation: -1,
            protocol_type: None,
            protocol: None,
            leader: String::new(),
            skip_assignment: false,
            members: Vec::new(),
        }
    }
}

/// The answer to a SyncGroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncReply {
    pub error: Option<GroupError>,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub assignment: Bytes,
}

impl SyncReply {
    pub fn error(error: GroupError) -> Self {
        Self {
            error: Some(error),
            protocol_type: None,
            protocol: None,
            assignment: Bytes::new(),
        }
    }
}

/// An answer to a parked request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Join(JoinReply),
    Sync(SyncReply),
}

impl Reply {
    /// The same kind of answer, carrying `error` instead.
    pub fn failed(&self, error: GroupError) -> Self {
        match self {
            Self::Join(j) => Self::Join(JoinReply::error(error, j.member_id.clone())),
            Self::Sync(_) => Self::Sync(SyncReply::error(error)),
        }
    }
}

/// What to do once a group's metadata is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterStore {
    /// Nothing waits for it.
    Nothing,
    /// The leader's assignment of `generation`: call
    /// [`GroupTable::assignment_stored`](super::GroupTable::assignment_stored).
    Assignment { generation: i32 },
    /// A static member took over another member id: call
    /// [`GroupTable::static_member_stored`](super::GroupTable::static_member_stored), which answers its JoinGroup.
    StaticMember(Box<StaticReplace>),
}

/// A static member replacement waiting for its write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticReplace {
    pub request: RequestId,
    pub reply: JoinReply,
    pub(super) instance_id: String,
    pub(super) old_member_id: String,
    pub(super) new_member_id: String,
    pub(super) old_protocols: Vec<Protocol>,
    pub(super) old_session_timeout_ms: i32,
    pub(super) old_rebalance_timeout_ms: i32,
}

/// A group metadata record to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Store {
    pub group: String,
    pub value: GroupValue,
    pub after: AfterStore,
}

/// What the caller must do after a call.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Effects {
    /// Answers to parked requests.
    pub replies: Vec<(RequestId, Reply)>,
    /// Group metadata to write.
    pub stores: Vec<Store>,
    /// Keys to delete (tombstones).
    pub tombstones: Vec<RecordKey>,
    /// Rebalances completed (new generations).
    pub rebalances: u64,
    /// Records of consumer-protocol groups to write (`None`: tombstone).
    pub consumer: Vec<(ConsumerKey, Option<ConsumerValue>)>,
}

impl Effects {
    pub(super) fn reply(&mut self, request: RequestId, reply: Reply) {
        self.replies.push((request, reply));
    }

    pub(super) fn join_error(&mut self, request: RequestId, error: GroupError, member_id: &str) {
        self.reply(request, Reply::Join(JoinReply::error(error, member_id)));
    }

    pub(super) fn sync_error(&mut self, request: RequestId, error: GroupError) {
        self.reply(request, Reply::Sync(SyncReply::error(error)));
    }
}

/// A member as DescribeGroups shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

/// A group as DescribeGroups shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub state: GroupState,
    pub protocol_type: String,
    /// The selected protocol when Stable, else empty.
    pub protocol: String,
    pub generation: i32,
    pub members: Vec<MemberDescription>,
}

/// A group as ListGroups shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    /// The state as Kafka names it for the group's type.
    pub state: &'static str,
    /// `classic` or `consumer` (ListGroups v5).
    pub group_type: &'static str,
}

/// A member leaving (LeaveGroup).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaving {
    /// Empty with an instance id: remove whichever member holds it.
    pub member_id: String,
    pub instance_id: Option<String>,
}
