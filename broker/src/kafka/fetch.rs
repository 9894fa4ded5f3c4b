//! Fetch for consumers: stored batches, verbatim, below the high
//! watermark, through [`crate::partition::manager::ReplicaManager::fetch_many`].
//!
//! - Long poll: the response waits up to `max_wait_ms` for `min_bytes`;
//!   any high watermark move of a requested partition re-reads.
//! - Sizes: `partition_max_bytes` per partition and `max_bytes` per
//!   response, except that the first partition with data returns at least
//!   one whole batch so a consumer always progresses (KIP-74).
//! - Isolation: read_uncommitted reads below the high watermark;
//!   read_committed below the last stable offset, with the aborted
//!   transactions overlapping what it returns (the consumer drops their
//!   records). Every answer carries the LSO.
//! - Leader epochs: `current_leader_epoch` older than the leader's is
//!   FENCED_LEADER_EPOCH, newer UNKNOWN_LEADER_EPOCH; with
//!   `last_fetched_epoch` (v12+) a consumer whose log diverged gets
//!   `diverging_epoch` and truncates (KIP-320).
//! - Fetch sessions (KIP-227) are not kept: every answer has session id 0,
//!   which tells clients to keep sending full fetch requests; a request
//!   naming a session gets FETCH_SESSION_ID_NOT_FOUND, after which clients
//!   start over with a full fetch.
//! - Follower fetches over the Kafka protocol are not served (replicas
//!   replicate over Rill's gRPC); `replica_id` is ignored.

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, EpochEndOffset, FetchableTopicResponse, LeaderIdAndEpoch, NodeEndpoint,
    PartitionData,
};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, ProducerId};

use super::KafkaContext;
use super::errors::error_code;
use super::frame::Reply;
use super::metadata::{LeaderHints, node_endpoints};
use super::topic_id::TopicNames;
use crate::partition::Isolation;
use crate::partition::manager::{FetchLimits, FetchPartition};

/// `isolation_level` of read_committed.
const READ_COMMITTED: i8 = 1;

pub async fn fetch(ctx: &KafkaContext, version: i16, request: FetchRequest) -> FetchResponse {
    if version >= 7 && request.session_id != 0 {
        ctx.count_error(ApiKey::Fetch, ResponseError::FetchSessionIdNotFound.code());
        return FetchResponse::default()
            .with_error_code(ResponseError::FetchSessionIdNotFound.code())
            .with_session_id(0);
    }
    if version >= 7 && request.session_epoch > 0 {
        ctx.count_error(
            ApiKey::Fetch,
            ResponseError::InvalidFetchSessionEpoch.code(),
        );
        return FetchResponse::default()
            .with_error_code(ResponseError::InvalidFetchSessionEpoch.code());
    }
    let names = TopicNames::new(&ctx.manager, version >= 13);
    let read_committed = version >= 4 && request.isolation_level == READ_COMMITTED;
    let isolation = if read_committed {
        Isolation::ReadCommitted
    } else {
        Isolation::ReadUncommitted
    };

    // Requests in order, with where each answer goes.
    let mut wanted = Vec::new();
    let mut unknown_ids = Vec::new();
    for (t, topic) in request.topics.iter().enumerate() {
        let name = names.name(&topic.topic.0, topic.topic_id);
        for p in &topic.partitions {
            match &name {
                Some(name) => wanted.push((
                    t,
                    FetchPartition {
                        topic: name.clone(),
                        partition: p.partition,
                        offset: p.fetch_offset,
                        max_bytes: usize::try_from(p.partition_max_bytes).unwrap_or(0),
                        current_leader_epoch: if version >= 9 {
                            p.current_leader_epoch
                        } else {
                            -1
                        },
                        last_fetched_epoch: if version >= 12 {
                            p.last_fetched_epoch
                        } else {
                            -1
                        },
                        isolation,
                    },
                )),
                None => unknown_ids.push((t, p.partition)),
            }
        }
    }
    let limits = FetchLimits {
        max_bytes: usize::try_from(request.max_bytes).unwrap_or(0),
        min_bytes: usize::try_from(request.min_bytes).unwrap_or(0),
        max_wait: Duration::from_millis(u64::try_from(request.max_wait_ms).unwrap_or(0)),
    };
    let partitions: Vec<FetchPartition> = wanted.iter().map(|(_, p)| p.clone()).collect();
    let reads = ctx.manager.fetch_many(&partitions, limits).await;

    let mut responses: Vec<FetchableTopicResponse> = request
        .topics
        .iter()
        .map(|topic| {
            let r = FetchableTopicResponse::default();
            if version >= 13 {
                r.with_topic_id(topic.topic_id)
            } else {
                r.with_topic(topic.topic.clone())
            }
        })
        .collect();
    let none_aborted = read_committed.then(Vec::new);
    let mut hints = LeaderHints::default();
    for ((t, p), read) in wanted.into_iter().zip(reads) {
        let mut entry = PartitionData::default()
            .with_partition_index(p.partition)
            .with_aborted_transactions(none_aborted.clone());
        match read {
            Ok(read) => {
                if read_committed {
                    entry = entry.with_aborted_transactions(Some(
                        read.aborted
                            .iter()
                            .map(|a| {
                                AbortedTransaction::default()
                                    .with_producer_id(ProducerId(a.producer_id))
                                    .with_first_offset(a.first_offset)
                            })
                            .collect(),
                    ));
                }
                entry = entry
                    .with_high_watermark(read.high_watermark)
                    .with_last_stable_offset(read.last_stable_offset)
                    .with_records(Some(read.data));
                if version >= 5 {
                    entry = entry.with_log_start_offset(read.log_start_offset);
                }
                if let (Some((epoch, end_offset)), true) = (read.diverging, version >= 12) {
                    entry = entry.with_diverging_epoch(
                        EpochEndOffset::default()
                            .with_epoch(epoch)
                            .with_end_offset(end_offset),
                    );
                }
            }
            Err(e) => {
                let code = error_code(&e);
                ctx.count_error(ApiKey::Fetch, code.code());
                entry = entry
                    .with_error_code(code.code())
                    .with_high_watermark(-1)
                    .with_last_stable_offset(-1)
                    .with_log_start_offset(-1);
                let leader_changed = matches!(
                    code,
                    ResponseError::NotLeaderOrFollower | ResponseError::FencedLeaderEpoch
                );
                if version >= 12
                    && leader_changed
                    && let Some((leader, epoch)) = hints.leader(ctx, &p.topic, p.partition)
                {
                    entry = entry.with_current_leader(
                        LeaderIdAndEpoch::default()
                            .with_leader_id(BrokerId(leader))
                            .with_leader_epoch(epoch),
                    );
                }
            }
        }
        responses[t].partitions.push(entry);
    }
    for (t, partition) in unknown_ids {
        ctx.count_error(ApiKey::Fetch, ResponseError::UnknownTopicId.code());
        responses[t].partitions.push(
            PartitionData::default()
                .with_partition_index(partition)
                .with_error_code(ResponseError::UnknownTopicId.code())
                .with_high_watermark(-1)
                .with_aborted_transactions(none_aborted.clone()),
        );
    }
    let mut response = FetchResponse::default().with_responses(responses);
    if version >= 16 {
        response = response.with_node_endpoints(node_endpoints!(hints, NodeEndpoint));
    }
    response
}

/// Runs a fetch request; its frame shares the record sets it read.
pub async fn reply(
    ctx: &KafkaContext,
    version: i16,
    request: FetchRequest,
) -> Reply<FetchResponse> {
    let response = fetch(ctx, version, request).await;
    let shared = record_sets(&response);
    Reply::Sharing(response, shared)
}

/// The record sets of a response, which its frame references rather than
/// copies (see [`super::frame::encode_response`]).
pub fn record_sets(response: &FetchResponse) -> Vec<Bytes> {
    response
        .responses
        .iter()
        .flat_map(|t| &t.partitions)
        .filter_map(|p| p.records.clone())
        .collect()
}
