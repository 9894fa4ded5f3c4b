//! Produce: appends each partition's record batch through
//! [`crate::partition::manager::ReplicaManager::produce`], which validates
//! it (bounds, magic 2, CRC-32C) and stores it verbatim, so any compression
//! (gzip, snappy, lz4, zstd) passes through untouched.
//!
//! - acks 0, 1 and -1 (all in-sync replicas); acks=0 gets no response at
//!   all, as in Kafka; any other value is INVALID_REQUIRED_ACKS.
//! - Exactly one record batch per partition (Kafka's rule since v3),
//!   else INVALID_RECORD.
//! - Idempotent producers: the partition layer answers a retried batch
//!   with its first offset and refuses sequence gaps and stale epochs.
//! - Transactions: before a producer's first transactional batch in a
//!   partition, the transaction coordinator confirms the partition is part
//!   of its ongoing transaction (KIP-890 part 1; with produce v12+ it adds
//!   it, part 2); otherwise the batch is refused with INVALID_TXN_STATE.
//! - Partitions of one request are appended in request order, then wait
//!   for durability concurrently. NOT_LEADER_OR_FOLLOWER answers carry the
//!   current leader (v10+) so clients need not refresh metadata first.

use futures::future::join_all;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::messages::produce_response::{
    LeaderIdAndEpoch, NodeEndpoint, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{BrokerId, ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;

use super::KafkaContext;
use super::errors::code_and_message;
use super::frame::Reply;
use super::metadata::{LeaderHints, node_endpoints};
use super::topic_id::TopicNames;
use crate::log::batch;
use crate::partition::{Acks, Error, ProduceResult};

/// A partition's failure as sent to the client.
struct Failure {
    code: i16,
    message: String,
}

impl Failure {
    fn new(error: ResponseError, message: impl Into<String>) -> Self {
        Self {
            code: error.code(),
            message: message.into(),
        }
    }

    fn from_service(err: &Error) -> Self {
        let (code, message) = code_and_message(err);
        Self { code, message }
    }
}

/// Runs a produce request; [`Reply::Silent`] for acks=0.
pub async fn produce(
    ctx: &KafkaContext,
    version: i16,
    request: ProduceRequest,
) -> Reply<ProduceResponse> {
    let acks = match request.acks {
        0 => Some(Acks::None),
        1 => Some(Acks::Leader),
        -1 => Some(Acks::All),
        _ => None,
    };
    let timeout_ms = u32::try_from(request.timeout_ms).unwrap_or(0);
    let transactional = request
        .transactional_id
        .as_ref()
        .filter(|id| !id.0.is_empty())
        .map(|id| id.0.to_string());
    let transactional = &transactional;
    let names = TopicNames::new(&ctx.manager, version >= 13);

    // (response topic slot, partition index, outcome future), in request order.
    let mut slots = Vec::new();
    let mut work = Vec::new();
    for (t, topic) in request.topic_data.into_iter().enumerate() {
        let name = names.name(&topic.name.0, topic.topic_id);
        slots.push((topic.name, topic.topic_id, name.clone()));
        for p in topic.partition_data {
            let name = name.clone();
            work.push((t, p.index, async move {
                let Some(acks) = acks else {
                    return Err(Failure::new(
                        ResponseError::InvalidRequiredAcks,
                        format!("acks must be 0, 1 or -1, not {}", request.acks),
                    ));
                };
                let Some(name) = name else {
                    return Err(Failure::new(
                        ResponseError::UnknownTopicId,
                        "no topic has this id",
                    ));
                };
                let records = p.records.unwrap_or_default();
                // Transactional batches of a partition go through the check
                // with the coordinator and the append in arrival order;
                // the lane is released once the batch is in the log.
                let lane = match transactional.as_deref() {
                    Some(id) if is_transactional_batch(&records) => {
                        let lane = ctx
                            .manager
                            .partition(&name, p.index)
                            .map_err(|e| Failure::from_service(&e))?
                            .txn_lane();
                        let guard = lane.lock_owned().await;
                        verify_transaction(ctx, id, &name, p.index, &records, version >= 12)
                            .await?;
                        Some(guard)
                    }
                    _ => None,
                };
                if records.is_empty() {
                    return Err(Failure::new(
                        ResponseError::InvalidRecord,
                        "a produce request must carry one record batch per partition",
                    ));
                }
                if batch::frame_len(&records, records.len()).is_ok_and(|len| len < records.len()) {
                    return Err(Failure::new(
                        ResponseError::InvalidRecord,
                        "a produce request must carry exactly one record batch per partition",
                    ));
                }
                let mut append = std::pin::pin!(
                    ctx.manager
                        .produce(&name, p.index, records, acks, timeout_ms)
                );
                // The produce path appends before its first wait, so one poll
                // puts the batch in the log; then the lane is free.
                let first = futures::poll!(&mut append);
                drop(lane);
                let result = match first {
                    std::task::Poll::Ready(r) => r,
                    std::task::Poll::Pending => append.await,
                };
                result.map_err(|e| Failure::from_service(&e))
            }));
        }
    }
    let (placement, futures): (Vec<(usize, i32)>, Vec<_>) =
        work.into_iter().map(|(t, i, f)| ((t, i), f)).unzip();
    let outcomes = join_all(futures).await;
    if acks == Some(Acks::None) {
        return Reply::Silent;
    }

    let resolved: Vec<Option<String>> = slots.iter().map(|(_, _, n)| n.clone()).collect();
    let mut responses: Vec<TopicProduceResponse> = slots
        .into_iter()
        .map(|(name, id, _)| {
            let r = TopicProduceResponse::default();
            if version >= 13 {
                r.with_topic_id(id)
            } else {
                r.with_name(name)
            }
        })
        .collect();
    let mut hints = LeaderHints::default();
    for ((t, index), outcome) in placement.into_iter().zip(outcomes) {
        let mut entry = PartitionProduceResponse::default().with_index(index);
        match outcome {
            Ok(ProduceResult {
                base_offset,
                log_start_offset,
                ..
            }) => {
                entry = entry.with_base_offset(base_offset);
                if version >= 5 {
                    entry = entry.with_log_start_offset(log_start_offset);
                }
            }
            Err(failure) => {
                ctx.count_error(ApiKey::Produce, failure.code);
                entry = entry.with_error_code(failure.code).with_base_offset(-1);
                if version >= 8 {
                    entry = entry.with_error_message(Some(StrBytes::from_string(failure.message)));
                }
                let hint = (version >= 10
                    && failure.code == ResponseError::NotLeaderOrFollower.code())
                .then(|| {
                    resolved[t]
                        .as_deref()
                        .and_then(|n| hints.leader(ctx, n, index))
                })
                .flatten();
                if let Some((leader, epoch)) = hint {
                    entry = entry.with_current_leader(
                        LeaderIdAndEpoch::default()
                            .with_leader_id(BrokerId(leader))
                            .with_leader_epoch(epoch),
                    );
                }
            }
        }
        responses[t].partition_responses.push(entry);
    }
    let mut response = ProduceResponse::default().with_responses(responses);
    if version >= 10 {
        response = response.with_node_endpoints(node_endpoints!(hints, NodeEndpoint));
    }
    Reply::Body(response)
}

/// Before a producer's first transactional batch in a partition: asks its
/// transaction coordinator (this broker or the one leading the id's
/// `__transaction_state` partition) to confirm, or with `add` to add, the
/// partition to the producer's ongoing transaction, then lets the
/// partition accept the batch.
async fn verify_transaction(
    ctx: &KafkaContext,
    transactional_id: &str,
    topic: &str,
    partition: i32,
    records: &[u8],
    add: bool,
) -> Result<(), Failure> {
    let Ok(h) = batch::BatchHeader::parse(records) else {
        return Ok(());
    };
    if !h.is_transactional() || h.producer_id < 0 {
        return Ok(());
    }
    let part = ctx
        .manager
        .partition(topic, partition)
        .map_err(|e| Failure::from_service(&e))?;
    if !part
        .needs_txn_verification(h.producer_id, h.producer_epoch)
        .map_err(|e| Failure::from_service(&e))?
    {
        return Ok(());
    }
    let producer = crate::txn::ProducerRef {
        producer_id: h.producer_id,
        producer_epoch: h.producer_epoch,
    };
    let tp = [(topic.to_owned(), partition)];
    let checked = super::txn::ask_coordinator(ctx, transactional_id, producer, &tp, add).await;
    match checked {
        Ok(()) => {
            part.mark_txn_verified(h.producer_id, h.producer_epoch);
            Ok(())
        }
        // The coordinator moved or is loading: retriable for the producer.
        Err(e)
            if matches!(
                e.code,
                ResponseError::NotCoordinator
                    | ResponseError::CoordinatorNotAvailable
                    | ResponseError::CoordinatorLoadInProgress
                    | ResponseError::ConcurrentTransactions
            ) =>
        {
            Err(Failure::new(ResponseError::NotEnoughReplicas, e.message))
        }
        Err(e) => Err(Failure::new(e.code, e.message)),
    }
}

/// Whether `records` starts with a transactional batch of a producer.
fn is_transactional_batch(records: &[u8]) -> bool {
    batch::BatchHeader::parse(records).is_ok_and(|h| h.is_transactional() && h.producer_id >= 0)
}
