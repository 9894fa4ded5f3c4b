//! [`Error`](enum@Error): why a request on the partition layer failed, free of any
//! protocol: unknown or deleted topics and partitions, refused requests,
//! log and topic-store I/O (with the full disk told apart), leadership and
//! ISR refusals (not the leader, not enough replicas before or after the
//! append, leadership lost while waiting, fenced or unknown leader
//! epochs), idempotent-producer sequence errors, controller and placement
//! failures, timeouts and shutdown. Each variant has a stable metrics
//! label. The protocol adapters above this layer map these errors to
//! their own codes, each in one place (the gRPC adapter to `tonic::Status`,
//! the Kafka listener to Kafka error codes).

use thiserror::Error;

use super::producers::SequenceError;
use super::store::{InvalidTopicName, StoreError};
use crate::log::{ConfigError, LogError};

/// Why a client request failed.
#[derive(Debug, Error)]
pub enum Error {
    #[error("unknown topic {0:?}")]
    UnknownTopic(String),
    #[error("topic {topic:?} has no partition {partition} (it has partitions 0..{count})")]
    UnknownPartition {
        topic: String,
        partition: i32,
        count: i32,
    },
    #[error("topic {0:?} was deleted")]
    TopicDeleted(String),
    #[error("topic {0:?} already exists")]
    TopicExists(String),
    #[error(transparent)]
    InvalidTopicName(#[from] InvalidTopicName),
    #[error("invalid partition count {requested}: must be between 1 and {max}")]
    InvalidPartitions { requested: i32, max: i32 },
    #[error(
        "topic {topic:?} has {current} partitions; partitions can only be added, so ask for more than {current} (asked for {requested})"
    )]
    PartitionCountNotIncreased {
        topic: String,
        current: i32,
        requested: i32,
    },
    #[error(
        "replication factor {0} is not possible: this broker runs as a single-node cluster, so it must be 1"
    )]
    InvalidReplicationFactor(i32),
    #[error("invalid topic config: {0}")]
    InvalidConfig(#[from] ConfigError),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A transactional batch for a partition that is not (or no longer)
    /// part of the producer's ongoing transaction.
    #[error("{0}")]
    InvalidTxnState(String),
    #[error("request of {size} bytes is larger than the limit of {max} bytes")]
    RequestTooLarge { size: usize, max: usize },
    /// The storage layer refused or failed.
    #[error("{topic}-{partition}: {source}")]
    Log {
        topic: String,
        partition: i32,
        #[source]
        source: LogError,
    },
    /// Topic metadata could not be read or written.
    #[error("topic metadata: {0}")]
    Metadata(#[from] StoreError),
    #[error(
        "{topic}-{partition} is offline after an fsync failure; restart the broker to recover the log"
    )]
    PartitionOffline { topic: String, partition: i32 },
    #[error(
        "timed out after {timeout_ms} ms waiting for durability; the batch was appended at offset {base_offset} but is not yet acknowledged"
    )]
    Timeout { timeout_ms: u64, base_offset: i64 },
    /// DeleteRecords: the leader deleted below `offset`, but some in-sync
    /// replica had not within the request's timeout.
    #[error(
        "timed out after {timeout_ms} ms waiting for every in-sync replica to delete the records below {offset} (low watermark {low_watermark}); the leader has deleted them"
    )]
    DeleteTimeout {
        timeout_ms: u64,
        offset: i64,
        low_watermark: i64,
    },
    #[error("the broker is shutting down")]
    ShuttingDown,
    /// This broker does not lead the partition (clients refresh metadata
    /// and go to the leader).
    #[error("this broker is not the leader of {topic}-{partition}{}", leader_hint(*leader))]
    NotLeader {
        topic: String,
        partition: i32,
        leader: Option<i32>,
    },
    /// acks=all with fewer in-sync replicas than min.insync.replicas:
    /// nothing was appended.
    #[error(
        "not enough in-sync replicas for {topic}-{partition}: {isr} in sync, min.insync.replicas is {min}; nothing was written"
    )]
    NotEnoughReplicas {
        topic: String,
        partition: i32,
        isr: usize,
        min: u32,
    },
    /// acks=all: the write reached every in-sync replica, but the ISR had
    /// shrunk below min.insync.replicas by then. It was appended and may be
    /// read, but it is not acknowledged (Kafka's
    /// NOT_ENOUGH_REPLICAS_AFTER_APPEND).
    #[error(
        "{topic}-{partition}: offset {base_offset} was appended, but only {isr} replicas are in sync (min.insync.replicas is {min}); the write is not acknowledged"
    )]
    NotEnoughReplicasAfterAppend {
        topic: String,
        partition: i32,
        base_offset: i64,
        isr: usize,
        min: u32,
    },
    /// The partition's leadership changed while an acks=all write waited:
    /// it may or may not survive, so it is not acknowledged.
    #[error(
        "leadership of {topic}-{partition} changed before offset {base_offset} was replicated; the write is not acknowledged"
    )]
    LeadershipLost {
        topic: String,
        partition: i32,
        base_offset: i64,
    },
    #[error("controller: {0}")]
    Controller(String),
    /// The controller refused a topic config (a rule that needs the
    /// topic, such as `min.insync.replicas` above the replication factor).
    #[error("{0}")]
    ConfigRefused(String),
    /// The change is against the cluster's policy; the message says where
    /// to make it instead (a topic's Topic resource).
    #[error("{0}")]
    PolicyViolation(String),
    /// The controller could not place the replicas (replication factor
    /// larger than the brokers available).
    #[error("{0}")]
    Placement(String),
    /// An idempotent producer's batch was refused; nothing was written.
    #[error("{topic}-{partition}: {source}")]
    Sequence {
        topic: String,
        partition: i32,
        #[source]
        source: SequenceError,
    },
    /// The client knows an older leader epoch than this leader: its
    /// metadata is stale.
    #[error(
        "{topic}-{partition}: leader epoch {requested} is older than the current epoch {current}; refresh metadata"
    )]
    FencedLeaderEpoch {
        topic: String,
        partition: i32,
        requested: i32,
        current: i32,
    },
    /// The client knows a newer leader epoch than this broker: this
    /// broker's metadata lags behind.
    #[error(
        "{topic}-{partition}: leader epoch {requested} is newer than this broker's {current}; retry shortly"
    )]
    UnknownLeaderEpoch {
        topic: String,
        partition: i32,
        requested: i32,
        current: i32,
    },
}

fn leader_hint(leader: Option<i32>) -> String {
    match leader {
        Some(id) => format!(" (broker {id} is)"),
        None => " (it has no leader right now)".to_owned(),
    }
}

impl Error {
    /// Short stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::UnknownTopic(_) => "unknown_topic",
            Self::UnknownPartition { .. } => "unknown_partition",
            Self::TopicDeleted(_) => "topic_deleted",
            Self::TopicExists(_) => "topic_exists",
            Self::InvalidTopicName(_) => "invalid_topic_name",
            Self::InvalidPartitions { .. } | Self::PartitionCountNotIncreased { .. } => {
                "invalid_partitions"
            }
            Self::InvalidReplicationFactor(_) => "invalid_replication_factor",
            Self::InvalidConfig(_) | Self::ConfigRefused(_) => "invalid_config",
            Self::PolicyViolation(_) => "policy_violation",
            Self::InvalidRequest(_) => "invalid_request",
            Self::InvalidTxnState(_) => "invalid_txn_state",
            Self::RequestTooLarge { .. } => "request_too_large",
            Self::Log { source, .. } => source.metric_label(),
            Self::Metadata(e) if is_disk_full(&e.source) => "disk_full",
            Self::Metadata(_) => "metadata_io",
            Self::PartitionOffline { .. } => "partition_offline",
            Self::NotLeader { .. } => "not_leader",
            Self::NotEnoughReplicas { .. } => "not_enough_replicas",
            Self::NotEnoughReplicasAfterAppend { .. } => "not_enough_replicas_after_append",
            Self::LeadershipLost { .. } => "leadership_lost",
            Self::Controller(_) => "controller",
            Self::Placement(_) => "placement",
            Self::Sequence {
                source: SequenceError::OutOfOrder { .. },
                ..
            } => "out_of_order_sequence",
            Self::Sequence {
                source: SequenceError::StaleEpoch { .. },
                ..
            } => "invalid_producer_epoch",
            Self::Sequence {
                source: SequenceError::AfterFailedAppend { .. },
                ..
            } => "after_failed_append",
            Self::FencedLeaderEpoch { .. } => "fenced_leader_epoch",
            Self::UnknownLeaderEpoch { .. } => "unknown_leader_epoch",
            Self::Timeout { .. } => "timeout",
            Self::DeleteTimeout { .. } => "delete_timeout",
            Self::ShuttingDown => "shutting_down",
        }
    }

    /// Whether the failure came from a full disk.
    pub fn is_disk_full(&self) -> bool {
        match self {
            Self::Log {
                source: LogError::DiskFull { .. },
                ..
            } => true,
            Self::Metadata(e) => is_disk_full(&e.source),
            _ => false,
        }
    }
}

fn is_disk_full(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::StorageFull || e.raw_os_error() == Some(28)
}
