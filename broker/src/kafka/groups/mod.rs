//! The consumer-group APIs of the Kafka listener, as functions over the
//! [`GroupCoordinator`](crate::group::GroupCoordinator): FindCoordinator,
//! JoinGroup, SyncGroup, Heartbeat and LeaveGroup ([`membership`]),
//! OffsetCommit and OffsetFetch
//! ([`offsets`]), ListGroups, DescribeGroups and DeleteGroups ([`admin`]),
//! and the consumer protocol of KIP-848, ConsumerGroupHeartbeat and
//! ConsumerGroupDescribe ([`consumer`]).
//!
//! Each takes the decoded `kafka-protocol` request and its version and
//! returns the response to encode at that same version. Version
//! differences are resolved here (JoinGroup v0 has no rebalance timeout,
//! v4+ requires a known member id, LeaveGroup v3+ and OffsetFetch v8+ are
//! batched, FindCoordinator v4+ takes several keys, ...), and every
//! response only sets fields that exist at its version. The coordinator
//! itself (`crate::group`) takes and returns Rill's own types; its
//! [`GroupError`]s become Kafka error codes in one place,
//! [`GroupErrorCode::code`].

pub mod admin;
pub mod consumer;
pub mod membership;
pub mod offsets;
pub mod share;

use kafka_protocol::messages::RequestHeader;
use kafka_protocol::protocol::StrBytes;

use crate::group::{ClientInfo, GroupError};

pub use admin::{delete_groups, describe_groups, list_groups, offset_delete};
pub use consumer::{consumer_group_describe, consumer_group_heartbeat};
pub use membership::{
    Coordinators, find_coordinator, find_coordinator_in, heartbeat, join_group, leave_group,
    sync_group,
};
pub use offsets::{offset_commit, offset_fetch, txn_offset_commit};
pub use share::{
    alter_share_group_offsets, delete_share_group_offsets, describe_share_group_offsets,
    share_group_describe, share_group_heartbeat,
};

pub use crate::group::error::GroupErrorCode;

/// Who sent the request: its client id, and its address as Kafka prints
/// it (`/10.0.0.7`; empty when unknown).
pub fn client(header: &RequestHeader, listener: Option<&str>, host: &str) -> ClientInfo {
    ClientInfo {
        client_id: header
            .client_id
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_default(),
        client_host: if host.is_empty() {
            String::new()
        } else {
            format!("/{host}")
        },
        listener: listener.map(str::to_owned),
    }
}

fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

fn code(e: &Option<GroupError>) -> i16 {
    e.as_ref().map_or(0, GroupError::code)
}

fn result_code(r: Result<(), GroupError>) -> i16 {
    r.err().map_or(0, |e| e.code())
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod error_tests {
    use super::*;
    use crate::partition::Error as PartitionError;

    #[test]
    fn given_group_errors_when_mapped_should_give_kafka_codes() {
        assert_eq!(GroupError::NotCoordinator.code(), 16);
        assert_eq!(GroupError::LoadInProgress.code(), 14);
        assert_eq!(
            GroupError::CoordinatorNotAvailable(String::new()).code(),
            15
        );
        assert_eq!(
            GroupError::IllegalGeneration {
                given: 1,
                current: 2
            }
            .code(),
            22
        );
        assert_eq!(GroupError::UnknownMemberId(String::new()).code(), 25);
        assert_eq!(GroupError::RebalanceInProgress.code(), 27);
        assert_eq!(GroupError::MemberIdRequired.code(), 79);
        assert_eq!(GroupError::FencedInstanceId(String::new()).code(), 82);
    }

    #[test]
    fn given_too_few_replicas_when_a_write_fails_should_answer_coordinator_not_available() {
        let few = PartitionError::NotEnoughReplicas {
            topic: "__consumer_offsets".into(),
            partition: 0,
            isr: 1,
            min: 2,
        };
        assert_eq!(GroupError::from_write(&few).code(), 15);
    }
}
