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
//! - Fetch sessions (KIP-227, [`super::fetch_session`]): a full fetch with
//!   epoch 0 starts a session; incremental fetches then name only changed
//!   and forgotten partitions, and answers carry only partitions with news.
//! - Follower fetches over the Kafka protocol are not served (replicas
//!   replicate over Rill's gRPC); `replica_id` is ignored.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, EpochEndOffset, FetchableTopicResponse, LeaderIdAndEpoch, NodeEndpoint,
    PartitionData,
};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, ProducerId, TopicName};

use super::KafkaContext;
use super::errors::error_code;
use super::fetch_session::{Sent, SessionError, SessionPartition};
use super::frame::Reply;
use super::metadata::{LeaderHints, node_endpoints};
use super::topic_id::{TopicNames, str_bytes};
use crate::partition::Isolation;
use crate::partition::manager::{FetchLimits, FetchPartition};

/// `isolation_level` of read_committed.
const READ_COMMITTED: i8 = 1;

/// How a request uses fetch sessions ([`super::fetch_session`]).
enum Mode {
    /// A full fetch without a session.
    Sessionless,
    /// A full fetch that starts a session.
    New,
    /// An incremental fetch in session (id, epoch).
    Incremental(i32, i32),
}

fn top_error(ctx: &KafkaContext, e: ResponseError) -> FetchResponse {
    ctx.count_error(ApiKey::Fetch, e.code());
    FetchResponse::default().with_error_code(e.code())
}

pub async fn fetch(ctx: &KafkaContext, version: i16, request: FetchRequest) -> FetchResponse {
    let sessions = &ctx.fetch_sessions;
    let mode = if version < 7 {
        Mode::Sessionless
    } else {
        match (request.session_id, request.session_epoch) {
            (0, -1) => Mode::Sessionless,
            (0, 0) => Mode::New,
            (0, _) => return top_error(ctx, ResponseError::InvalidFetchSessionEpoch),
            (id, -1) => {
                sessions.close(id);
                Mode::Sessionless
            }
            (id, 0) => {
                sessions.close(id);
                Mode::New
            }
            (id, epoch) => Mode::Incremental(id, epoch),
        }
    };
    let by_id = version >= 13;
    let names = TopicNames::new(&ctx.manager, by_id);
    let read_committed = version >= 4 && request.isolation_level == READ_COMMITTED;
    let isolation = if read_committed {
        Isolation::ReadCommitted
    } else {
        Isolation::ReadUncommitted
    };

    // The request's partitions, named.
    let mut requested = Vec::new();
    let mut unknown_ids = Vec::new();
    for topic in &request.topics {
        let name = names.name(&topic.topic.0, topic.topic_id);
        for p in &topic.partitions {
            match &name {
                Some(name) => requested.push(SessionPartition {
                    topic: name.clone(),
                    topic_id: topic.topic_id,
                    partition: p.partition,
                    fetch_offset: p.fetch_offset,
                    max_bytes: p.partition_max_bytes,
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
                    sent: None,
                }),
                None => unknown_ids.push((topic.topic_id, p.partition)),
            }
        }
    }
    // What to read: the request's partitions, or the whole session.
    let partitions = match mode {
        Mode::Incremental(id, epoch) => {
            let forget: HashSet<(String, i32)> = request
                .forgotten_topics_data
                .iter()
                .filter_map(|t| {
                    names
                        .name(&t.topic.0, t.topic_id)
                        .map(|n| (n, &t.partitions))
                })
                .flat_map(|(n, ps)| ps.iter().map(move |p| (n.clone(), *p)))
                .collect();
            match sessions.update(id, epoch, requested, &forget, Instant::now()) {
                Ok(all) => all,
                Err(SessionError::NotFound) => {
                    return top_error(ctx, ResponseError::FetchSessionIdNotFound);
                }
                Err(SessionError::InvalidEpoch) => {
                    return top_error(ctx, ResponseError::InvalidFetchSessionEpoch);
                }
            }
        }
        _ => requested,
    };
    let wanted: Vec<FetchPartition> = partitions
        .iter()
        .map(|p| FetchPartition {
            topic: p.topic.clone(),
            partition: p.partition,
            offset: p.fetch_offset,
            max_bytes: usize::try_from(p.max_bytes).unwrap_or(0),
            current_leader_epoch: p.current_leader_epoch,
            last_fetched_epoch: p.last_fetched_epoch,
            isolation,
        })
        .collect();
    let limits = FetchLimits {
        max_bytes: usize::try_from(request.max_bytes).unwrap_or(0),
        min_bytes: usize::try_from(request.min_bytes).unwrap_or(0),
        max_wait: Duration::from_millis(u64::try_from(request.max_wait_ms).unwrap_or(0)),
    };
    let reads = ctx.manager.fetch_many(&wanted, limits).await;

    // Answers grouped by topic, in the order topics first appear.
    let incremental = matches!(mode, Mode::Incremental(..));
    let mut responses: Vec<FetchableTopicResponse> = Vec::new();
    let mut slot: HashMap<String, usize> = HashMap::new();
    // What each answer told of its partition, for the session.
    let mut sent: Vec<Option<Sent>> = Vec::with_capacity(partitions.len());
    let none_aborted = read_committed.then(Vec::new);
    let mut hints = LeaderHints::default();
    for (p, read) in partitions.iter().zip(reads) {
        let mut entry = PartitionData::default()
            .with_partition_index(p.partition)
            .with_aborted_transactions(none_aborted.clone());
        let mut news = !incremental;
        match read {
            Ok(read) => {
                let now = Sent {
                    high_watermark: read.high_watermark,
                    last_stable_offset: read.last_stable_offset,
                    log_start_offset: read.log_start_offset,
                };
                news |= p.sent != Some(now) || !read.data.is_empty() || read.diverging.is_some();
                sent.push(Some(now));
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
                news = true;
                sent.push(None);
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
        if !news {
            continue;
        }
        let t = *slot.entry(p.topic.clone()).or_insert_with(|| {
            let r = FetchableTopicResponse::default();
            responses.push(if by_id {
                r.with_topic_id(p.topic_id)
            } else {
                r.with_topic(TopicName(str_bytes(&p.topic)))
            });
            responses.len() - 1
        });
        responses[t].partitions.push(entry);
    }
    for (topic_id, partition) in unknown_ids {
        ctx.count_error(ApiKey::Fetch, ResponseError::UnknownTopicId.code());
        responses.push(
            FetchableTopicResponse::default()
                .with_topic_id(topic_id)
                .with_partitions(vec![
                    PartitionData::default()
                        .with_partition_index(partition)
                        .with_error_code(ResponseError::UnknownTopicId.code())
                        .with_high_watermark(-1)
                        .with_aborted_transactions(none_aborted.clone()),
                ]),
        );
    }
    let session_id = match mode {
        Mode::Sessionless => 0,
        Mode::New => {
            let mut partitions = partitions;
            for (p, s) in partitions.iter_mut().zip(&sent) {
                p.sent = *s;
            }
            sessions.create(partitions, Instant::now())
        }
        Mode::Incremental(id, _) => {
            let keyed: Vec<((String, i32), Sent)> = partitions
                .iter()
                .zip(&sent)
                .filter_map(|(p, s)| s.map(|s| ((p.topic.clone(), p.partition), s)))
                .collect();
            sessions.answered(id, &keyed);
            id
        }
    };
    ctx.metrics.kafka_fetch_sessions.set(sessions.len() as i64);
    let mut response = FetchResponse::default()
        .with_responses(responses)
        .with_session_id(session_id);
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
