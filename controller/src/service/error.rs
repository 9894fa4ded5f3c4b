//! Every way a controller request can fail, and the one place where each
//! becomes a `tonic::Status` ([`ServiceError::to_status`]).
//!
//! Status messages start with a machine-readable reason in capitals and a
//! colon, `REASON: human text`, so clients can branch without parsing
//! prose ([`reason_of`] reads it back). The reasons and codes are listed
//! in `docs/controller.md`:
//!
//! | reason | code | what the caller should do |
//! |---|---|---|
//! | `UNKNOWN_BROKER`, `STALE_BROKER_EPOCH`, `FENCED_BROKER` | FAILED_PRECONDITION | register again |
//! | `NOT_LEADER`, `FENCED_LEADER_EPOCH`, `INVALID_UPDATE_VERSION` | ABORTED | refresh metadata, retry |
//! | `INVALID_ISR`, `INVALID_ARGUMENT`, `INVALID_TOPIC_NAME`, `INVALID_CONFIG`, `PLACEMENT`, `INVALID_REPLICA_ASSIGNMENT` | INVALID_ARGUMENT | fix the request |
//! | `UNKNOWN_TOPIC`, `UNKNOWN_PARTITION`, `NO_REASSIGNMENT_IN_PROGRESS` | NOT_FOUND | - |
//! | `TOPIC_EXISTS`, `ELECTION_NOT_NEEDED` | ALREADY_EXISTS | - |
//! | `PREFERRED_LEADER_NOT_AVAILABLE` | ABORTED | retry once the preferred replica is in sync |
//! | `NOT_ACTIVE_CONTROLLER`, `SHUTTING_DOWN` | UNAVAILABLE | try another controller |
//! | `STORE_UNAVAILABLE` | UNAVAILABLE | retry later (nothing changed) |
//! | `POLICY_VIOLATION` | PERMISSION_DENIED | change it where the message says (a topic's Topic resource) |

use thiserror::Error;
use tonic::{Code, Status};

use crate::controller::ControllerError;
use crate::store::StoreError;

/// Why a controller RPC failed.
#[derive(Debug, Error)]
pub enum ServiceError {
    /// The core refused the operation.
    #[error(transparent)]
    Controller(#[from] ControllerError),
    #[error(
        "invalid topic name {name:?}: {reason} (1 to {max} characters of a-z, A-Z, 0-9, '.', '_', '-'; not \".\" or \"..\")",
        max = rill_proto::topic::MAX_TOPIC_NAME_LEN
    )]
    InvalidTopicName { name: String, reason: &'static str },
    #[error("invalid topic config {key}={value:?}: {reason}")]
    InvalidConfig {
        key: String,
        value: String,
        reason: String,
    },
    #[error("invalid request: {0}")]
    InvalidArgument(String),
    /// The store could not persist the plan; nothing changed.
    #[error("metadata store unavailable, nothing was changed: {0}")]
    Store(StoreError),
    /// A newer controller has claimed the store.
    #[error(
        "not the active controller: this controller's epoch {ours} was superseded by {current}"
    )]
    NotActive { ours: i64, current: i64 },
    #[error("the controller is shutting down")]
    ShuttingDown,
    /// The metadata store's policy refuses the change (a topic config
    /// change from Kafka on a topic a Topic resource manages).
    #[error("{0}")]
    PolicyViolation(String),
}

impl ServiceError {
    /// The machine-readable reason at the start of the status message;
    /// also the `outcome` label of the request metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Controller(e) => match e {
                ControllerError::UnknownBroker(_) => "UNKNOWN_BROKER",
                ControllerError::StaleBrokerEpoch { .. } => "STALE_BROKER_EPOCH",
                ControllerError::Fenced(_) => "FENCED_BROKER",
                ControllerError::UnknownTopic(_) => "UNKNOWN_TOPIC",
                ControllerError::UnknownPartition { .. } => "UNKNOWN_PARTITION",
                ControllerError::TopicExists(_) => "TOPIC_EXISTS",
                ControllerError::NotLeader { .. } => "NOT_LEADER",
                ControllerError::FencedLeaderEpoch { .. } => "FENCED_LEADER_EPOCH",
                ControllerError::InvalidUpdateVersion { .. } => "INVALID_UPDATE_VERSION",
                ControllerError::InvalidIsr { .. } => "INVALID_ISR",
                ControllerError::Invalid(_) => "INVALID_ARGUMENT",
                ControllerError::Placement(_) => "PLACEMENT",
                ControllerError::InvalidAssignment { .. } => "INVALID_REPLICA_ASSIGNMENT",
                ControllerError::NoReassignment { .. } => "NO_REASSIGNMENT_IN_PROGRESS",
                ControllerError::ElectionNotNeeded { .. } => "ELECTION_NOT_NEEDED",
                ControllerError::PreferredLeaderNotAvailable { .. } => {
                    "PREFERRED_LEADER_NOT_AVAILABLE"
                }
            },
            Self::InvalidTopicName { .. } => "INVALID_TOPIC_NAME",
            Self::InvalidConfig { .. } => "INVALID_CONFIG",
            Self::InvalidArgument(_) => "INVALID_ARGUMENT",
            Self::Store(_) => "STORE_UNAVAILABLE",
            Self::NotActive { .. } => "NOT_ACTIVE_CONTROLLER",
            Self::ShuttingDown => "SHUTTING_DOWN",
            Self::PolicyViolation(_) => "POLICY_VIOLATION",
        }
    }

    /// The gRPC code; see the module docs for the table.
    pub fn code(&self) -> Code {
        match self {
            Self::Controller(e) => match e {
                ControllerError::UnknownBroker(_)
                | ControllerError::StaleBrokerEpoch { .. }
                | ControllerError::Fenced(_) => Code::FailedPrecondition,
                ControllerError::NotLeader { .. }
                | ControllerError::FencedLeaderEpoch { .. }
                | ControllerError::InvalidUpdateVersion { .. } => Code::Aborted,
                ControllerError::UnknownTopic(_) | ControllerError::UnknownPartition { .. } => {
                    Code::NotFound
                }
                ControllerError::TopicExists(_) => Code::AlreadyExists,
                ControllerError::InvalidIsr { .. }
                | ControllerError::Invalid(_)
                | ControllerError::Placement(_)
                | ControllerError::InvalidAssignment { .. } => Code::InvalidArgument,
                ControllerError::NoReassignment { .. } => Code::NotFound,
                ControllerError::ElectionNotNeeded { .. } => Code::AlreadyExists,
                ControllerError::PreferredLeaderNotAvailable { .. } => Code::Aborted,
            },
            Self::InvalidTopicName { .. }
            | Self::InvalidConfig { .. }
            | Self::InvalidArgument(_) => Code::InvalidArgument,
            Self::Store(_) | Self::NotActive { .. } | Self::ShuttingDown => Code::Unavailable,
            Self::PolicyViolation(_) => Code::PermissionDenied,
        }
    }

    /// The status a client sees: `REASON: message`.
    pub fn to_status(&self) -> Status {
        let mut message = format!("{}: {self}", self.reason());
        if let Self::Controller(ControllerError::UnknownBroker(_)) = self {
            message.push_str(": register first");
        }
        Status::new(self.code(), message)
    }
}

/// The reason prefix of a status message produced by [`ServiceError::to_status`],
/// if it has one.
pub fn reason_of(message: &str) -> Option<&str> {
    let (reason, _) = message.split_once(": ")?;
    (!reason.is_empty() && reason.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'))
        .then_some(reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_each_error_when_converted_should_carry_its_reason_prefix_and_code() {
        let cases = [
            (
                ServiceError::Controller(ControllerError::Fenced(2)),
                Code::FailedPrecondition,
                "FENCED_BROKER",
            ),
            (
                ServiceError::Controller(ControllerError::FencedLeaderEpoch {
                    topic: "t".into(),
                    partition: 0,
                    got: 1,
                    current: 2,
                }),
                Code::Aborted,
                "FENCED_LEADER_EPOCH",
            ),
            (
                ServiceError::Controller(ControllerError::TopicExists("t".into())),
                Code::AlreadyExists,
                "TOPIC_EXISTS",
            ),
            (
                ServiceError::NotActive {
                    ours: 1,
                    current: 2,
                },
                Code::Unavailable,
                "NOT_ACTIVE_CONTROLLER",
            ),
            (
                ServiceError::PolicyViolation("edit Topic data/orders".into()),
                Code::PermissionDenied,
                "POLICY_VIOLATION",
            ),
        ];
        for (err, code, reason) in cases {
            let status = err.to_status();
            assert_eq!(status.code(), code, "{err}");
            assert_eq!(reason_of(status.message()), Some(reason), "{err}");
        }
    }

    #[test]
    fn given_stale_broker_epoch_when_converted_should_tell_to_register_again() {
        let s = ServiceError::Controller(ControllerError::StaleBrokerEpoch {
            broker: 1,
            got: 1,
            current: 3,
        })
        .to_status();
        assert!(s.message().contains("register again"), "{}", s.message());
        let s = ServiceError::Controller(ControllerError::UnknownBroker(9)).to_status();
        assert!(s.message().contains("register"), "{}", s.message());
    }

    #[test]
    fn given_not_active_when_converted_should_say_not_the_active_controller() {
        let s = ServiceError::NotActive {
            ours: 3,
            current: 4,
        }
        .to_status();
        assert!(s.message().contains("not the active controller"));
    }

    #[test]
    fn given_prose_without_prefix_when_reason_read_should_be_none() {
        assert_eq!(reason_of("transport error: connection refused"), None);
        assert_eq!(reason_of("no colon"), None);
    }
}
