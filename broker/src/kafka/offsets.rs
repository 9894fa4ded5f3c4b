//! ListOffsets, OffsetForLeaderEpoch and DeleteRecords.
//!
//! ListOffsets resolves, per partition, below the high watermark:
//! -2 earliest, -1 latest (the high watermark, or the last stable offset
//! when the request's isolation level is read_committed), -3 the first record
//! with the largest timestamp (v7+), -4 earliest local (v8+, the earliest:
//! all data is local), a timestamp >= 0 the first record at or after it.
//! -5 latest tiered (v9+) and -6 earliest pending upload (v10+) find
//! nothing (offset -1): Rill has no tiered storage. The leader epoch of
//! the found offset comes from the partition's epoch cache (v4+).
//!
//! OffsetForLeaderEpoch answers consumers validating their position after
//! a leader change: the largest epoch <= the one asked for and where it
//! ends in the leader's log. Both check `current_leader_epoch`.

use kafka_protocol::messages::ApiKey;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{
    DeleteRecordsRequest, DeleteRecordsResponse, ListOffsetsRequest, ListOffsetsResponse,
    OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse,
};

use super::KafkaContext;
use super::errors::error_code;
use crate::partition::manager::{OffsetAnswer, OffsetSpec};

/// Special timestamps of ListOffsets.
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;
const EARLIEST_PENDING_UPLOAD: i64 = -6;
/// `isolation_level` of read_committed.
const READ_COMMITTED: i8 = 1;

pub async fn list_offsets(
    ctx: &KafkaContext,
    version: i16,
    request: ListOffsetsRequest,
) -> ListOffsetsResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let name = topic.name.0.to_string();
            let partitions = topic
                .partitions
                .into_iter()
                .map(|p| {
                    let current_epoch = if version >= 4 {
                        p.current_leader_epoch
                    } else {
                        -1
                    };
                    let spec = match p.timestamp {
                        LATEST if version >= 2 && request.isolation_level == READ_COMMITTED => {
                            Some(OffsetSpec::LastStable)
                        }
                        LATEST => Some(OffsetSpec::Latest),
                        EARLIEST | EARLIEST_LOCAL => Some(OffsetSpec::Earliest),
                        MAX_TIMESTAMP => Some(OffsetSpec::MaxTimestamp),
                        LATEST_TIERED | EARLIEST_PENDING_UPLOAD => None,
                        ts => Some(OffsetSpec::Timestamp(ts.max(0))),
                    };
                    let answer = match spec {
                        Some(spec) => ctx.manager.list_offsets_for_client(
                            &name,
                            p.partition_index,
                            spec,
                            current_epoch,
                        ),
                        None => ctx
                            .manager
                            .partition(&name, p.partition_index)
                            .and_then(|part| part.check_leader_epoch(current_epoch))
                            .map(|_| OffsetAnswer {
                                offset: -1,
                                timestamp: -1,
                                leader_epoch: -1,
                            }),
                    };
                    let entry = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index);
                    match answer {
                        Ok(a) => {
                            let entry = entry.with_timestamp(a.timestamp).with_offset(a.offset);
                            if version >= 4 {
                                entry.with_leader_epoch(a.leader_epoch)
                            } else {
                                entry
                            }
                        }
                        Err(e) => {
                            let code = error_code(&e).code();
                            ctx.count_error(ApiKey::ListOffsets, code);
                            entry
                                .with_error_code(code)
                                .with_timestamp(-1)
                                .with_offset(-1)
                        }
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

pub async fn offset_for_leader_epoch(
    ctx: &KafkaContext,
    _version: i16,
    request: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let name = topic.topic.0.to_string();
            let partitions = topic
                .partitions
                .into_iter()
                .map(|p| {
                    let entry = EpochEndOffset::default().with_partition(p.partition);
                    match ctx.manager.offset_for_leader_epoch(
                        &name,
                        p.partition,
                        p.current_leader_epoch,
                        p.leader_epoch,
                    ) {
                        Ok((epoch, end_offset)) => {
                            entry.with_leader_epoch(epoch).with_end_offset(end_offset)
                        }
                        Err(e) => {
                            let code = error_code(&e).code();
                            ctx.count_error(ApiKey::OffsetForLeaderEpoch, code);
                            entry
                                .with_error_code(code)
                                .with_leader_epoch(-1)
                                .with_end_offset(-1)
                        }
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(topic.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}

/// DeleteRecords (KIP-107, `kafka-delete-records`): per partition, the
/// leader moves its log start offset to the given offset (-1: the high
/// watermark), durably, and answers once every in-sync replica has deleted
/// the records too (or REQUEST_TIMED_OUT after `timeout_ms`), with the low
/// watermark. An offset above the high watermark is OFFSET_OUT_OF_RANGE; a
/// compact-only topic POLICY_VIOLATION. Partitions run concurrently.
pub async fn delete_records(
    ctx: &KafkaContext,
    _version: i16,
    request: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let timeout = std::time::Duration::from_millis(u64::try_from(request.timeout_ms).unwrap_or(0));
    let mut topics = Vec::with_capacity(request.topics.len());
    for t in request.topics {
        let name = t.name.0.to_string();
        let runs = t.partitions.iter().map(|p| {
            let name = name.clone();
            async move {
                let result = match ctx.manager.partition(&name, p.partition_index) {
                    Ok(part) => part.delete_records(p.offset, timeout).await,
                    Err(e) => Err(e),
                };
                let answer =
                    DeleteRecordsPartitionResult::default().with_partition_index(p.partition_index);
                match result {
                    Ok(low) => answer.with_low_watermark(low),
                    Err(e) => {
                        let code = error_code(&e).code();
                        ctx.count_error(ApiKey::DeleteRecords, code);
                        answer.with_low_watermark(-1).with_error_code(code)
                    }
                }
            }
        });
        let partitions = futures::future::join_all(runs).await;
        topics.push(
            DeleteRecordsTopicResult::default()
                .with_name(t.name)
                .with_partitions(partitions),
        );
    }
    DeleteRecordsResponse::default().with_topics(topics)
}
