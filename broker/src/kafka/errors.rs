//! The one place where service errors become Kafka error codes.
//!
//! | service error | Kafka error |
//! |---|---|
//! | unknown or deleted topic, unknown partition | UNKNOWN_TOPIC_OR_PARTITION |
//! | not the leader (leader known) / no leader | NOT_LEADER_OR_FOLLOWER / LEADER_NOT_AVAILABLE |
//! | leadership lost while waiting for acks=all, shutting down | NOT_LEADER_OR_FOLLOWER |
//! | ISR smaller than min.insync.replicas | NOT_ENOUGH_REPLICAS |
//! | batch larger than `max.message.bytes`, request too large | MESSAGE_TOO_LARGE |
//! | any other invalid batch (CRC, magic, lengths, counts) | CORRUPT_MESSAGE |
//! | offset outside the log | OFFSET_OUT_OF_RANGE |
//! | out of order sequence / older producer epoch | OUT_OF_ORDER_SEQUENCE_NUMBER / INVALID_PRODUCER_EPOCH |
//! | client leader epoch older / newer | FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH |
//! | topic exists, bad name, bad partitions, bad replication factor, bad config | TOPIC_ALREADY_EXISTS, INVALID_TOPIC_EXCEPTION, INVALID_PARTITIONS, INVALID_REPLICATION_FACTOR, INVALID_CONFIG |
//! | durability wait timed out, controller unreachable | REQUEST_TIMED_OUT |
//! | disk full, I/O error, partition offline; a producer's batch behind one that failed so | KAFKA_STORAGE_ERROR |
//! | topic config refused by the controller / by the cluster's policy | INVALID_CONFIG / POLICY_VIOLATION |
//! | any other invalid request | INVALID_REQUEST |

use kafka_protocol::ResponseError;

use crate::log::{BatchError, LogError};
use crate::partition::Error;
use crate::partition::producers::SequenceError;

/// The Kafka error for a service error.
pub fn error_code(err: &Error) -> ResponseError {
    match err {
        Error::UnknownTopic(_) | Error::UnknownPartition { .. } | Error::TopicDeleted(_) => {
            ResponseError::UnknownTopicOrPartition
        }
        Error::TopicExists(_) => ResponseError::TopicAlreadyExists,
        Error::InvalidTopicName(_) => ResponseError::InvalidTopicException,
        Error::InvalidPartitions { .. } | Error::PartitionCountNotIncreased { .. } => {
            ResponseError::InvalidPartitions
        }
        Error::InvalidReplicationFactor(_) | Error::Placement(_) => {
            ResponseError::InvalidReplicationFactor
        }
        Error::InvalidConfig(_) | Error::ConfigRefused(_) => ResponseError::InvalidConfig,
        Error::PolicyViolation(_) => ResponseError::PolicyViolation,
        Error::InvalidRequest(_) => ResponseError::InvalidRequest,
        Error::InvalidTxnState(_) => ResponseError::InvalidTxnState,
        Error::RequestTooLarge { .. } => ResponseError::MessageTooLarge,
        Error::Log { source, .. } => match source {
            LogError::InvalidBatch(BatchError::BadLength { length, max, .. })
                if *length > *max as i64 =>
            {
                ResponseError::MessageTooLarge
            }
            LogError::InvalidBatch(_) => ResponseError::CorruptMessage,
            LogError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
            LogError::DiskFull { .. }
            | LogError::Io { .. }
            | LogError::NonMonotonic { .. }
            | LogError::Corrupt { .. } => ResponseError::KafkaStorageError,
        },
        Error::Metadata(_) | Error::PartitionOffline { .. } => ResponseError::KafkaStorageError,
        Error::Timeout { .. } | Error::DeleteTimeout { .. } | Error::Controller(_) => {
            ResponseError::RequestTimedOut
        }
        Error::NotLeader { leader: None, .. } => ResponseError::LeaderNotAvailable,
        Error::NotLeader { .. } | Error::LeadershipLost { .. } | Error::ShuttingDown => {
            ResponseError::NotLeaderOrFollower
        }
        Error::NotEnoughReplicas { .. } => ResponseError::NotEnoughReplicas,
        Error::NotEnoughReplicasAfterAppend { .. } => ResponseError::NotEnoughReplicasAfterAppend,
        Error::Sequence { source, .. } => match source {
            SequenceError::OutOfOrder { .. } => ResponseError::OutOfOrderSequenceNumber,
            SequenceError::StaleEpoch { .. } => ResponseError::InvalidProducerEpoch,
            // Retriable and not persisted: the client retries the failed
            // batch and then this one, with the same sequence numbers.
            SequenceError::AfterFailedAppend { .. } => ResponseError::KafkaStorageError,
        },
        Error::FencedLeaderEpoch { .. } => ResponseError::FencedLeaderEpoch,
        Error::UnknownLeaderEpoch { .. } => ResponseError::UnknownLeaderEpoch,
    }
}

/// The code and, for responses that carry one, a message.
pub fn code_and_message(err: &Error) -> (i16, String) {
    (error_code(err).code(), err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_err(source: LogError) -> Error {
        Error::Log {
            topic: "t".into(),
            partition: 0,
            source,
        }
    }

    #[test]
    fn given_service_errors_when_mapped_should_get_the_kafka_codes_clients_expect() {
        let cases = [
            (Error::UnknownTopic("x".into()), 3),
            (
                Error::NotLeader {
                    topic: "t".into(),
                    partition: 0,
                    leader: Some(1),
                },
                6,
            ),
            (
                Error::NotLeader {
                    topic: "t".into(),
                    partition: 0,
                    leader: None,
                },
                5,
            ),
            (
                Error::NotEnoughReplicas {
                    topic: "t".into(),
                    partition: 0,
                    isr: 1,
                    min: 2,
                },
                19,
            ),
            (
                Error::NotEnoughReplicasAfterAppend {
                    topic: "t".into(),
                    partition: 0,
                    base_offset: 5,
                    isr: 1,
                    min: 2,
                },
                20,
            ),
            (
                log_err(LogError::InvalidBatch(BatchError::BadLength {
                    length: 2000,
                    min: 61,
                    max: 1000,
                })),
                10,
            ),
            (
                log_err(LogError::InvalidBatch(BatchError::CrcMismatch {
                    stored: 1,
                    computed: 2,
                })),
                2,
            ),
            (
                log_err(LogError::OffsetOutOfRange {
                    offset: 9,
                    log_start: 0,
                    log_end: 1,
                }),
                1,
            ),
            (
                Error::Sequence {
                    topic: "t".into(),
                    partition: 0,
                    source: SequenceError::OutOfOrder {
                        producer_id: 1,
                        epoch: 0,
                        got: 5,
                        expected: 1,
                    },
                },
                45,
            ),
            (
                Error::Sequence {
                    topic: "t".into(),
                    partition: 0,
                    source: SequenceError::StaleEpoch {
                        producer_id: 1,
                        epoch: 0,
                        current: 1,
                    },
                },
                47,
            ),
            (
                Error::Sequence {
                    topic: "t".into(),
                    partition: 0,
                    source: SequenceError::AfterFailedAppend {
                        producer_id: 1,
                        epoch: 0,
                        got: 2,
                        failed: 1,
                    },
                },
                56,
            ),
            (
                Error::FencedLeaderEpoch {
                    topic: "t".into(),
                    partition: 0,
                    requested: 1,
                    current: 2,
                },
                74,
            ),
            (
                Error::UnknownLeaderEpoch {
                    topic: "t".into(),
                    partition: 0,
                    requested: 3,
                    current: 2,
                },
                75,
            ),
            (Error::TopicExists("t".into()), 36),
            (
                Error::InvalidPartitions {
                    requested: 0,
                    max: 1000,
                },
                37,
            ),
            (Error::Placement("rf 5 > 3 brokers".into()), 38),
        ];
        for (err, code) in cases {
            assert_eq!(error_code(&err).code(), code, "{err}");
        }
    }
}
