//! ShareFetch and ShareAcknowledge (KIP-932) over the
//! [`ShareManager`]: the share session step,
//! then the acknowledgements the request carries (stored before they are
//! confirmed), then, for ShareFetch, records acquired for the member.
//! Topics travel by id.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::share_acknowledge_response::{
    PartitionData as AckPartitionData, ShareAcknowledgeTopicResponse,
};
use kafka_protocol::messages::share_fetch_response::{
    AcquiredRecords, PartitionData, ShareFetchableTopicResponse,
};
use kafka_protocol::messages::{
    ShareAcknowledgeRequest, ShareAcknowledgeResponse, ShareFetchRequest, ShareFetchResponse,
};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::KafkaContext;
use super::authz::Caller;
use super::errors::code_and_message;
use super::topic_id::known_topics;
use crate::group::error::GroupErrorCode;
use crate::share::partition::AckBatch;
use crate::share::session::{SessionError, SessionPartition};
use crate::share::{ShareError, ShareManager, SharePart};

/// The lock duration told to clients before any share partition is loaded.
const DEFAULT_LOCK_MS: i32 = 30_000;

fn s(text: String) -> Option<StrBytes> {
    Some(StrBytes::from_string(text))
}

/// The Kafka error code and message of a share failure.
fn share_code(e: &ShareError) -> (i16, String) {
    let code = match e {
        ShareError::Partition(p) => return code_and_message(p),
        ShareError::Group(g) => g.code(),
        ShareError::InvalidRecordState(_) => ResponseError::InvalidRecordState.code(),
        ShareError::InvalidRequest(_) => ResponseError::InvalidRequest.code(),
        ShareError::Session(SessionError::NotFound) => ResponseError::ShareSessionNotFound.code(),
        ShareError::Session(SessionError::InvalidEpoch { .. }) => {
            ResponseError::InvalidShareSessionEpoch.code()
        }
        ShareError::Session(SessionError::LimitReached) => {
            ResponseError::ShareSessionLimitReached.code()
        }
    };
    (code, e.to_string())
}

/// The share manager and the group and member a share request names
/// (both must be set).
fn who<'a>(
    ctx: &'a KafkaContext,
    group: Option<&str>,
    member: Option<&str>,
) -> Result<(&'a ShareManager, String, String), (i16, String)> {
    let shares = ctx.shares.as_deref().ok_or_else(|| {
        (
            ResponseError::UnsupportedVersion.code(),
            "share groups are not served by this broker".to_owned(),
        )
    })?;
    let invalid = |m: &str| (ResponseError::InvalidRequest.code(), m.to_owned());
    let group = group
        .filter(|g| !g.is_empty())
        .ok_or_else(|| invalid("the group id must be set"))?;
    let member = member
        .filter(|m| !m.is_empty())
        .ok_or_else(|| invalid("the member id must be set"))?;
    Ok((shares, group.to_owned(), member.to_owned()))
}

/// Names of the topic ids a request uses (unknown ids are left out).
fn names(ctx: &KafkaContext, ids: impl Iterator<Item = Uuid>) -> BTreeMap<Uuid, String> {
    let wanted: BTreeSet<Uuid> = ids.collect();
    if wanted.is_empty() {
        return BTreeMap::new();
    }
    known_topics(&ctx.manager)
        .into_iter()
        .filter(|(_, id)| wanted.contains(id))
        .map(|(n, id)| (id, n))
        .collect()
}

fn batches_of(acks: impl Iterator<Item = (i64, i64, Vec<i8>)>) -> Vec<AckBatch> {
    acks.map(|(first, last, types)| AckBatch { first, last, types })
        .collect()
}

/// Applies the acknowledgements of one request: per partition, `None`
/// when stored, else the error.
async fn acknowledge_all(
    shares: &ShareManager,
    group: &str,
    member: &str,
    acks: Vec<(SessionPartition, Vec<AckBatch>)>,
    names: &BTreeMap<Uuid, String>,
) -> BTreeMap<SessionPartition, Option<(i16, String)>> {
    let mut out = BTreeMap::new();
    for ((topic_id, partition), batches) in acks {
        let result = match names.get(&topic_id) {
            None => Some((
                ResponseError::UnknownTopicId.code(),
                format!("unknown topic id {topic_id}"),
            )),
            Some(topic) => {
                let part = SharePart {
                    topic: topic.clone(),
                    topic_id,
                    partition,
                };
                shares
                    .acknowledge(group, member, &part, &batches)
                    .await
                    .err()
                    .map(|e| share_code(&e))
            }
        };
        out.insert((topic_id, partition), result);
    }
    out
}

/// ShareFetch: the session step, the acknowledgements, then acquired
/// records (waiting up to MaxWaitMs for some).
pub async fn share_fetch(
    ctx: &KafkaContext,
    _version: i16,
    req: ShareFetchRequest,
    caller: &Caller,
) -> ShareFetchResponse {
    let fail = |(code, text): (i16, String)| {
        ShareFetchResponse::default()
            .with_error_code(code)
            .with_error_message(s(text))
    };
    let (shares, group, member) = match who(
        ctx,
        req.group_id.as_ref().map(|g| g.0.as_str()),
        req.member_id.as_deref(),
    ) {
        Ok(w) => w,
        Err(e) => return fail(e),
    };
    let epoch = req.share_session_epoch;
    let mut add = Vec::new();
    let mut acks = Vec::new();
    for t in &req.topics {
        for p in &t.partitions {
            add.push((t.topic_id, p.partition_index));
            if !p.acknowledgement_batches.is_empty() {
                acks.push((
                    (t.topic_id, p.partition_index),
                    batches_of(
                        p.acknowledgement_batches
                            .iter()
                            .map(|b| (b.first_offset, b.last_offset, b.acknowledge_types.clone())),
                    ),
                ));
            }
        }
    }
    if epoch == 0 && !acks.is_empty() {
        return fail((
            ResponseError::InvalidRequest.code(),
            "a ShareFetch that opens a session (epoch 0) cannot carry acknowledgements".to_owned(),
        ));
    }
    let forget: Vec<SessionPartition> = req
        .forgotten_topics_data
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |p| (t.topic_id, *p)))
        .collect();
    let view = match shares
        .fetch_session(&group, &member, epoch, &add, &forget, caller.peer)
        .await
    {
        Ok(v) => v,
        Err(e) => return fail(share_code(&e)),
    };
    let names = names(
        ctx,
        view.partitions
            .iter()
            .chain(acks.iter().map(|(p, _)| p))
            .map(|(t, _)| *t),
    );
    let ack_results = acknowledge_all(shares, &group, &member, acks, &names).await;
    let mut partitions: BTreeMap<SessionPartition, PartitionData> = BTreeMap::new();
    for (tp, result) in &ack_results {
        let mut d = PartitionData::default()
            .with_partition_index(tp.1)
            .with_records(Some(Default::default()));
        if let Some((code, text)) = result {
            d.acknowledge_error_code = *code;
            d.acknowledge_error_message = s(text.clone());
        }
        partitions.insert(*tp, d);
    }
    let mut lock_ms = DEFAULT_LOCK_MS;
    if view.closed {
        shares
            .release(&group, &member, view.partitions.iter())
            .await;
    } else {
        let mut parts = Vec::new();
        for &(topic_id, partition) in &view.partitions {
            match names.get(&topic_id) {
                Some(topic) => parts.push(SharePart {
                    topic: topic.clone(),
                    topic_id,
                    partition,
                }),
                None => {
                    let d = partitions.entry((topic_id, partition)).or_insert_with(|| {
                        PartitionData::default()
                            .with_partition_index(partition)
                            .with_records(Some(Default::default()))
                    });
                    d.error_code = ResponseError::UnknownTopicId.code();
                    d.error_message = s(format!("unknown topic id {topic_id}"));
                }
            }
        }
        let max_records = usize::try_from(req.max_records.max(1)).unwrap_or(500);
        let max_bytes = usize::try_from(req.max_bytes.max(1)).unwrap_or(usize::MAX);
        let wait = Duration::from_millis(u64::try_from(req.max_wait_ms.max(0)).unwrap_or(0));
        let results = shares
            .fetch(&group, &member, &parts, max_records, max_bytes, wait)
            .await;
        lock_ms = shares.lock_ms(&group, &parts).unwrap_or(DEFAULT_LOCK_MS);
        for (part, result) in parts.iter().zip(results) {
            let key = (part.topic_id, part.partition);
            match result {
                Ok(None) => {}
                Ok(Some(f)) => {
                    let d = partitions.entry(key).or_insert_with(|| {
                        PartitionData::default().with_partition_index(part.partition)
                    });
                    d.records = Some(f.data);
                    d.acquired_records = f
                        .acquired
                        .iter()
                        .map(|a| {
                            AcquiredRecords::default()
                                .with_first_offset(a.first)
                                .with_last_offset(a.last)
                                .with_delivery_count(a.delivery_count)
                        })
                        .collect();
                }
                Err(e) => {
                    let (code, text) = share_code(&e);
                    let d = partitions.entry(key).or_insert_with(|| {
                        PartitionData::default()
                            .with_partition_index(part.partition)
                            .with_records(Some(Default::default()))
                    });
                    d.error_code = code;
                    d.error_message = s(text);
                }
            }
        }
    }
    let mut topics: BTreeMap<Uuid, Vec<PartitionData>> = BTreeMap::new();
    for ((topic_id, _), d) in partitions {
        topics.entry(topic_id).or_default().push(d);
    }
    ShareFetchResponse::default()
        .with_acquisition_lock_timeout_ms(lock_ms)
        .with_responses(
            topics
                .into_iter()
                .map(|(topic_id, partitions)| {
                    ShareFetchableTopicResponse::default()
                        .with_topic_id(topic_id)
                        .with_partitions(partitions)
                })
                .collect(),
        )
}

/// ShareAcknowledge: the session step (epoch -1 closes the session and
/// releases what the member still holds), then the acknowledgements.
pub async fn share_acknowledge(
    ctx: &KafkaContext,
    _version: i16,
    req: ShareAcknowledgeRequest,
    caller: &Caller,
) -> ShareAcknowledgeResponse {
    let fail = |(code, text): (i16, String)| {
        ShareAcknowledgeResponse::default()
            .with_error_code(code)
            .with_error_message(s(text))
    };
    let (shares, group, member) = match who(
        ctx,
        req.group_id.as_ref().map(|g| g.0.as_str()),
        req.member_id.as_deref(),
    ) {
        Ok(w) => w,
        Err(e) => return fail(e),
    };
    let view =
        match shares.acknowledge_session(&group, &member, req.share_session_epoch, caller.peer) {
            Ok(v) => v,
            Err(e) => return fail(share_code(&e)),
        };
    let acks: Vec<(SessionPartition, Vec<AckBatch>)> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(move |p| {
                (
                    (t.topic_id, p.partition_index),
                    batches_of(
                        p.acknowledgement_batches
                            .iter()
                            .map(|b| (b.first_offset, b.last_offset, b.acknowledge_types.clone())),
                    ),
                )
            })
        })
        .collect();
    let names = names(ctx, acks.iter().map(|((t, _), _)| *t));
    let results = acknowledge_all(shares, &group, &member, acks, &names).await;
    if view.closed {
        shares
            .release(&group, &member, view.partitions.iter())
            .await;
    }
    let mut topics: BTreeMap<Uuid, Vec<AckPartitionData>> = BTreeMap::new();
    for ((topic_id, partition), result) in results {
        let mut d = AckPartitionData::default().with_partition_index(partition);
        if let Some((code, text)) = result {
            d.error_code = code;
            d.error_message = s(text);
        }
        topics.entry(topic_id).or_default().push(d);
    }
    ShareAcknowledgeResponse::default().with_responses(
        topics
            .into_iter()
            .map(|(topic_id, partitions)| {
                ShareAcknowledgeTopicResponse::default()
                    .with_topic_id(topic_id)
                    .with_partitions(partitions)
            })
            .collect(),
    )
}
