//! Why a group request failed, and what storage errors of the offsets
//! topic mean to a group client. The Kafka listener turns these into
//! Kafka error codes ([`GroupErrorCode`]).

use kafka_protocol::ResponseError;
use thiserror::Error;

use crate::log::{BatchError, LogError};
use crate::partition::Error as PartitionError;

/// A group coordinator error, phrased for logs; the Kafka listener maps
/// each to the error code a client acts on.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum GroupError {
    /// This broker does not coordinate the group: the client looks the
    /// coordinator up again.
    #[error("this broker is not the coordinator of the group")]
    NotCoordinator,
    /// This broker became the coordinator and is still reading the group's
    /// state from the offsets topic.
    #[error("the coordinator is loading the group's state")]
    LoadInProgress,
    /// No coordinator right now (the offsets topic is being created or has no
    /// leader, or the group was just unloaded).
    #[error("the group coordinator is not available: {0}")]
    CoordinatorNotAvailable(String),
    #[error("invalid group id: {0}")]
    InvalidGroupId(String),
    #[error("the coordinator does not know member {0:?}")]
    UnknownMemberId(String),
    #[error("generation {given} is not the group's generation {current}")]
    IllegalGeneration { given: i32, current: i32 },
    #[error("the group is rebalancing; the member must join again")]
    RebalanceInProgress,
    #[error("the member's protocol type or protocols are incompatible with the group's")]
    InconsistentGroupProtocol,
    #[error("session timeout {given} ms is outside the allowed range {min}..={max} ms")]
    InvalidSessionTimeout { given: i32, min: i32, max: i32 },
    /// Join v4+: the member must join again with the member id it was given.
    #[error("the member must join again with the member id it was given")]
    MemberIdRequired,
    #[error("another member with group.instance.id {0:?} replaced this one")]
    FencedInstanceId(String),
    #[error("the group already has its maximum of {0} members")]
    GroupMaxSizeReached(usize),
    #[error("group {0:?} does not exist")]
    GroupIdNotFound(String),
    #[error("group {0:?} still has members")]
    NonEmptyGroup(String),
    #[error("the group's members are subscribed to topic {0:?}")]
    SubscribedToTopic(String),
    #[error("offset metadata of {size} bytes is larger than the limit of {max}")]
    OffsetMetadataTooLarge { size: usize, max: usize },
    #[error("unknown topic or partition {0}")]
    UnknownTopicOrPartition(String),
    #[error("the offsets topic did not acknowledge the write in time")]
    Timeout,
    #[error("the commit is too large for one write to the offsets topic")]
    CommitTooLarge,
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("member epoch {given} is not the member's epoch {current}; it must join again")]
    FencedMemberEpoch { given: i32, current: i32 },
    #[error("member epoch {given} is older than the member's epoch {current}")]
    StaleMemberEpoch { given: i32, current: i32 },
    #[error("static member {0:?} is still in the group with another member id")]
    UnreleasedInstanceId(String),
    #[error("the coordinator has no assignor {0:?} (it has uniform and range)")]
    UnsupportedAssignor(String),
    #[error("invalid regular expression {0}")]
    InvalidRegex(String),
    /// A consumer-protocol member joins a classic group that is
    /// rebalancing: it can join once the group is Stable.
    #[error("group {0:?} is rebalancing; a consumer-protocol member can join once it is stable")]
    RebalancingForUpgrade(String),
    /// The group id belongs to a group of the other protocol that has
    /// members.
    #[error("group {group:?} is a {is} group with members")]
    WrongGroupType { group: String, is: &'static str },
    /// A share partition's state was reset or deleted by an admin since
    /// its leader loaded it: the leader loads it again.
    #[error("share-partition state epoch {given} is not the stored epoch {current}")]
    FencedStateEpoch { given: i32, current: i32 },
    /// A share partition's state was written by a newer leader.
    #[error(
        "leader epoch {given} is older than the epoch {current} of the leader that stored the share-partition state"
    )]
    FencedLeaderEpoch { given: i32, current: i32 },
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    /// Anything else; the text says what.
    #[error("{0}")]
    Internal(String),
}

impl GroupError {
    /// A short stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::NotCoordinator => "not_coordinator",
            Self::LoadInProgress => "load_in_progress",
            Self::CoordinatorNotAvailable(_) => "coordinator_not_available",
            Self::InvalidGroupId(_) => "invalid_group_id",
            Self::UnknownMemberId(_) => "unknown_member_id",
            Self::IllegalGeneration { .. } => "illegal_generation",
            Self::RebalanceInProgress => "rebalance_in_progress",
            Self::InconsistentGroupProtocol => "inconsistent_group_protocol",
            Self::InvalidSessionTimeout { .. } => "invalid_session_timeout",
            Self::MemberIdRequired => "member_id_required",
            Self::FencedInstanceId(_) => "fenced_instance_id",
            Self::GroupMaxSizeReached(_) => "group_max_size_reached",
            Self::GroupIdNotFound(_) => "group_id_not_found",
            Self::NonEmptyGroup(_) => "non_empty_group",
            Self::SubscribedToTopic(_) => "group_subscribed_to_topic",
            Self::OffsetMetadataTooLarge { .. } => "offset_metadata_too_large",
            Self::UnknownTopicOrPartition(_) => "unknown_topic_or_partition",
            Self::Timeout => "timeout",
            Self::CommitTooLarge => "commit_too_large",
            Self::InvalidRequest(_) => "invalid_request",
            Self::FencedMemberEpoch { .. } => "fenced_member_epoch",
            Self::StaleMemberEpoch { .. } => "stale_member_epoch",
            Self::UnreleasedInstanceId(_) => "unreleased_instance_id",
            Self::UnsupportedAssignor(_) => "unsupported_assignor",
            Self::InvalidRegex(_) => "invalid_regular_expression",
            Self::WrongGroupType { .. } => "wrong_group_type",
            Self::RebalancingForUpgrade(_) => "rebalancing_for_upgrade",
            Self::FencedStateEpoch { .. } => "fenced_state_epoch",
            Self::FencedLeaderEpoch { .. } => "fenced_leader_epoch",
            Self::InvalidConfig(_) => "invalid_config",
            Self::Internal(_) => "internal",
        }
    }

    /// What a failed write to the offsets topic means to a group client.
    /// Like Kafka: a lost leadership sends the client to look the
    /// coordinator up again; too few in-sync replicas or a storage problem
    /// make the coordinator unavailable for now.
    pub fn from_write(e: &PartitionError) -> Self {
        match e {
            PartitionError::Timeout { .. } => Self::Timeout,
            PartitionError::RequestTooLarge { .. }
            | PartitionError::Log {
                source: LogError::InvalidBatch(BatchError::BadLength { .. }),
                ..
            } => Self::CommitTooLarge,
            PartitionError::NotLeader { .. }
            | PartitionError::LeadershipLost { .. }
            | PartitionError::TopicDeleted(_)
            | PartitionError::UnknownTopic(_)
            | PartitionError::UnknownPartition { .. } => Self::NotCoordinator,
            PartitionError::NotEnoughReplicas { .. }
            | PartitionError::NotEnoughReplicasAfterAppend { .. }
            | PartitionError::PartitionOffline { .. }
            | PartitionError::ShuttingDown
            | PartitionError::Log { .. }
            | PartitionError::Metadata(_)
            | PartitionError::Controller(_) => Self::CoordinatorNotAvailable(e.to_string()),
            other => Self::Internal(other.to_string()),
        }
    }
}

/// The Kafka error code of a [`GroupError`].
pub trait GroupErrorCode {
    /// The Kafka error code a client acts on.
    fn code(&self) -> i16;
}

impl GroupErrorCode for GroupError {
    fn code(&self) -> i16 {
        let e = match self {
            Self::NotCoordinator => ResponseError::NotCoordinator,
            Self::LoadInProgress => ResponseError::CoordinatorLoadInProgress,
            Self::CoordinatorNotAvailable(_) => ResponseError::CoordinatorNotAvailable,
            Self::InvalidGroupId(_) => ResponseError::InvalidGroupId,
            Self::UnknownMemberId(_) => ResponseError::UnknownMemberId,
            Self::IllegalGeneration { .. } => ResponseError::IllegalGeneration,
            Self::RebalanceInProgress => ResponseError::RebalanceInProgress,
            Self::InconsistentGroupProtocol => ResponseError::InconsistentGroupProtocol,
            Self::InvalidSessionTimeout { .. } => ResponseError::InvalidSessionTimeout,
            Self::MemberIdRequired => ResponseError::MemberIdRequired,
            Self::FencedInstanceId(_) => ResponseError::FencedInstanceId,
            Self::GroupMaxSizeReached(_) => ResponseError::GroupMaxSizeReached,
            Self::GroupIdNotFound(_) => ResponseError::GroupIdNotFound,
            Self::NonEmptyGroup(_) => ResponseError::NonEmptyGroup,
            Self::SubscribedToTopic(_) => ResponseError::GroupSubscribedToTopic,
            Self::OffsetMetadataTooLarge { .. } => ResponseError::OffsetMetadataTooLarge,
            Self::UnknownTopicOrPartition(_) => ResponseError::UnknownTopicOrPartition,
            Self::Timeout => ResponseError::RequestTimedOut,
            Self::CommitTooLarge => ResponseError::InvalidCommitOffsetSize,
            Self::InvalidRequest(_) => ResponseError::InvalidRequest,
            Self::FencedMemberEpoch { .. } => ResponseError::FencedMemberEpoch,
            Self::StaleMemberEpoch { .. } => ResponseError::StaleMemberEpoch,
            Self::UnreleasedInstanceId(_) => ResponseError::UnreleasedInstanceId,
            Self::UnsupportedAssignor(_) => ResponseError::UnsupportedAssignor,
            Self::InvalidRegex(_) => ResponseError::InvalidRegularExpression,
            Self::WrongGroupType { .. } => ResponseError::GroupIdNotFound,
            // Retriable for the consumer: it tries again after a backoff.
            Self::RebalancingForUpgrade(_) => ResponseError::CoordinatorLoadInProgress,
            Self::FencedStateEpoch { .. } => ResponseError::FencedStateEpoch,
            Self::FencedLeaderEpoch { .. } => ResponseError::FencedLeaderEpoch,
            Self::InvalidConfig(_) => ResponseError::InvalidConfig,
            Self::Internal(_) => ResponseError::UnknownServerError,
        };
        e.code()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_a_lost_leadership_when_a_write_fails_should_send_clients_to_find_the_coordinator() {
        let lost = PartitionError::LeadershipLost {
            topic: "__consumer_offsets".into(),
            partition: 0,
            base_offset: 3,
        };
        assert_eq!(GroupError::from_write(&lost), GroupError::NotCoordinator);
    }
}
