//! The transaction APIs over the [`TxnCoordinator`]: InitProducerId with a
//! transactional id, AddPartitionsToTxn, AddOffsetsToTxn, EndTxn,
//! DescribeTransactions and ListTransactions, plus DescribeProducers over
//! the partitions led here. TxnOffsetCommit lives with the group APIs.
//!
//! Errors follow Kafka's: PRODUCER_FENCED for a stale epoch (versions
//! before it existed get INVALID_PRODUCER_EPOCH), NOT_COORDINATOR when the
//! id belongs to another broker, CONCURRENT_TRANSACTIONS while a state
//! change for the id is being written or its markers are.

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::list_transactions_response::TransactionState as ListedState;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, ApiKey, DescribeProducersRequest, DescribeProducersResponse,
    DescribeTransactionsRequest, DescribeTransactionsResponse, EndTxnRequest, EndTxnResponse,
    InitProducerIdRequest, InitProducerIdResponse, ListTransactionsRequest,
    ListTransactionsResponse, ProducerId, TopicName, TransactionalId, TxnOffsetCommitRequest,
    TxnOffsetCommitResponse, WriteTxnMarkersRequest, WriteTxnMarkersResponse,
};
use kafka_protocol::protocol::StrBytes;
use tracing::warn;

use super::KafkaContext;
use super::errors::error_code;
use crate::group::placement::{self, OFFSETS_TOPIC};
use crate::txn::{ProducerRef, TxnCoordinator, TxnError, TxnState, now_ms, state};

fn coordinator(ctx: &KafkaContext) -> Result<&Arc<TxnCoordinator>, TxnError> {
    ctx.txns.as_ref().ok_or_else(|| TxnError {
        code: ResponseError::CoordinatorNotAvailable,
        message: "this broker runs no transaction coordinator".into(),
    })
}

/// PRODUCER_FENCED exists from the versions given; older clients get
/// INVALID_PRODUCER_EPOCH.
fn compat(code: ResponseError, fenced_from: i16, version: i16) -> ResponseError {
    if code == ResponseError::ProducerFenced && version < fenced_from {
        ResponseError::InvalidProducerEpoch
    } else {
        code
    }
}

fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

/// InitProducerId with a transactional id (the idempotent case is in
/// [`super::producer_id`]).
pub async fn init_transactional(
    ctx: &KafkaContext,
    version: i16,
    request: &InitProducerIdRequest,
    transactional_id: &str,
) -> InitProducerIdResponse {
    let failed = |e: TxnError| {
        let code = compat(e.code, 4, version);
        ctx.count_error(ApiKey::InitProducerId, code.code());
        InitProducerIdResponse::default()
            .with_error_code(code.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    let coordinator = match coordinator(ctx) {
        Ok(c) => c,
        Err(e) => return failed(e),
    };
    let max = coordinator.settings().max_timeout_ms;
    if request.transaction_timeout_ms <= 0 || request.transaction_timeout_ms > max {
        return failed(TxnError {
            code: ResponseError::InvalidTransactionTimeout,
            message: format!("transaction.timeout.ms must be within 1..={max}"),
        });
    }
    // A producer id for the state machine to hand out if it needs one.
    let spare = match ctx.producer_ids.allocate().await {
        Ok(id) => Some(id),
        Err(e) => {
            warn!(error = %e, "cannot allocate a producer id");
            None
        }
    };
    let expected = (version >= 3 && request.producer_id.0 >= 0).then_some(ProducerRef {
        producer_id: request.producer_id.0,
        producer_epoch: request.producer_epoch,
    });
    let timeout = request.transaction_timeout_ms;
    let result = coordinator
        .run(transactional_id, |meta, now| {
            let mut spare = spare;
            state::init_producer(meta, timeout, expected, now, &mut || spare.take())
        })
        .await;
    match result {
        Ok(meta) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(meta.producer_id))
            .with_producer_epoch(meta.producer_epoch),
        Err(e) => failed(e),
    }
}

/// AddPartitionsToTxn: v0-3 from producers; v4+ batched, and from brokers
/// with `verify_only` (Rill's brokers check over gRPC instead, but the
/// Kafka form is served too).
pub async fn add_partitions_to_txn(
    ctx: &KafkaContext,
    version: i16,
    request: AddPartitionsToTxnRequest,
) -> AddPartitionsToTxnResponse {
    if version <= 3 {
        let id = request.v3_and_below_transactional_id.0.to_string();
        let producer = ProducerRef {
            producer_id: request.v3_and_below_producer_id.0,
            producer_epoch: request.v3_and_below_producer_epoch,
        };
        let results = add_one(
            ctx,
            version,
            &id,
            producer,
            false,
            &request.v3_and_below_topics,
        )
        .await;
        return AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results);
    }
    let mut out = Vec::new();
    for t in &request.transactions {
        let producer = ProducerRef {
            producer_id: t.producer_id.0,
            producer_epoch: t.producer_epoch,
        };
        let id = t.transactional_id.0.to_string();
        let results = add_one(ctx, version, &id, producer, t.verify_only, &t.topics).await;
        out.push(
            AddPartitionsToTxnResult::default()
                .with_transactional_id(t.transactional_id.clone())
                .with_topic_results(results),
        );
    }
    AddPartitionsToTxnResponse::default().with_results_by_transaction(out)
}

async fn add_one(
    ctx: &KafkaContext,
    version: i16,
    id: &str,
    producer: ProducerRef,
    verify_only: bool,
    topics: &[kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic],
) -> Vec<AddPartitionsToTxnTopicResult> {
    // Unknown partitions fail alone; the others are added together, and
    // are answered OPERATION_NOT_ATTEMPTED when an unknown one is present.
    let mut unknown = Vec::new();
    let mut wanted = Vec::new();
    for t in topics {
        let name = t.name.0.to_string();
        let n = ctx.manager.topic_partitions(&name);
        for p in &t.partitions {
            if n.is_none_or(|n| *p < 0 || *p >= n) {
                unknown.push((name.clone(), *p));
            } else {
                wanted.push((name.clone(), *p));
            }
        }
    }
    let outcome: Result<(), TxnError> = if !unknown.is_empty() {
        Err(TxnError {
            code: ResponseError::OperationNotAttempted,
            message: String::new(),
        })
    } else {
        match coordinator(ctx) {
            Ok(c) => {
                c.check_partitions(id, producer, &wanted, !verify_only)
                    .await
            }
            Err(e) => Err(e),
        }
    };
    let code = match &outcome {
        Ok(()) => 0,
        Err(e) => compat(e.code, 2, version).code(),
    };
    if code != 0 {
        ctx.count_error(ApiKey::AddPartitionsToTxn, code);
    }
    let mut by_topic: Vec<AddPartitionsToTxnTopicResult> = Vec::new();
    let all = wanted.iter().map(|tp| (tp, code)).chain(
        unknown
            .iter()
            .map(|tp| (tp, ResponseError::UnknownTopicOrPartition.code())),
    );
    for ((topic, p), code) in all {
        let entry = AddPartitionsToTxnPartitionResult::default()
            .with_partition_index(*p)
            .with_partition_error_code(code);
        match by_topic.iter_mut().find(|r| r.name.0.as_str() == topic) {
            Some(r) => r.results_by_partition.push(entry),
            None => by_topic.push(
                AddPartitionsToTxnTopicResult::default()
                    .with_name(TopicName(s(topic.clone())))
                    .with_results_by_partition(vec![entry]),
            ),
        }
    }
    by_topic
}

/// AddOffsetsToTxn: adds the group's offsets partition to the transaction.
pub async fn add_offsets_to_txn(
    ctx: &KafkaContext,
    version: i16,
    request: AddOffsetsToTxnRequest,
) -> AddOffsetsToTxnResponse {
    let producer = ProducerRef {
        producer_id: request.producer_id.0,
        producer_epoch: request.producer_epoch,
    };
    let group = request.group_id.0.to_string();
    let result = async {
        let c = coordinator(ctx)?;
        let n = ctx
            .manager
            .topic_partitions(OFFSETS_TOPIC)
            .ok_or_else(|| TxnError {
                code: ResponseError::CoordinatorNotAvailable,
                message: format!("{OFFSETS_TOPIC} does not exist yet"),
            })?;
        let tp = (
            OFFSETS_TOPIC.to_owned(),
            placement::partition_for(&group, n),
        );
        c.check_partitions(&request.transactional_id.0, producer, &[tp], true)
            .await
    }
    .await;
    match result {
        Ok(()) => AddOffsetsToTxnResponse::default(),
        Err(e) => {
            let code = compat(e.code, 2, version).code();
            ctx.count_error(ApiKey::AddOffsetsToTxn, code);
            AddOffsetsToTxnResponse::default().with_error_code(code)
        }
    }
}

/// EndTxn: commit or abort. Answered once the decision is written; the
/// markers follow. v5+ (transaction version 2) bumps the epoch and answers
/// with the producer id and epoch to go on with.
pub async fn end_txn(ctx: &KafkaContext, version: i16, request: EndTxnRequest) -> EndTxnResponse {
    let producer = ProducerRef {
        producer_id: request.producer_id.0,
        producer_epoch: request.producer_epoch,
    };
    let v2 = version >= 5;
    let commit = request.committed;
    let result = async {
        let c = coordinator(ctx)?;
        let spare = if v2 {
            ctx.producer_ids.allocate().await.ok()
        } else {
            None
        };
        c.run(&request.transactional_id.0, |meta, now| {
            let mut spare = spare;
            state::end_txn(meta, producer, commit, v2, now, &mut || spare.take())
        })
        .await
    }
    .await;
    match result {
        Ok(meta) => {
            let mut resp = EndTxnResponse::default();
            if v2 {
                let (id, epoch) = meta.continuing_producer();
                resp = resp
                    .with_producer_id(ProducerId(id))
                    .with_producer_epoch(epoch);
            }
            resp
        }
        Err(e) => {
            let code = compat(e.code, 2, version).code();
            ctx.count_error(ApiKey::EndTxn, code);
            EndTxnResponse::default()
                .with_error_code(code)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1)
        }
    }
}

/// DescribeTransactions of ids this broker coordinates.
pub async fn describe_transactions(
    ctx: &KafkaContext,
    _version: i16,
    request: DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    let states = request
        .transactional_ids
        .into_iter()
        .map(|id| {
            let entry = TransactionState::default().with_transactional_id(id.clone());
            let found = coordinator(ctx).and_then(|c| c.describe(&id.0));
            match found {
                Ok(Some(meta)) => {
                    let mut topics: Vec<TopicData> = Vec::new();
                    for (t, p) in &meta.partitions {
                        match topics.iter_mut().find(|d| d.topic.0.as_str() == t) {
                            Some(d) => d.partitions.push(*p),
                            None => topics.push(
                                TopicData::default()
                                    .with_topic(TopicName(s(t.clone())))
                                    .with_partitions(vec![*p]),
                            ),
                        }
                    }
                    entry
                        .with_transaction_state(s(meta.state.kafka_name()))
                        .with_transaction_timeout_ms(meta.timeout_ms)
                        .with_transaction_start_time_ms(meta.start_ms)
                        .with_producer_id(ProducerId(meta.producer_id))
                        .with_producer_epoch(meta.producer_epoch)
                        .with_topics(topics)
                }
                Ok(None) => entry.with_error_code(ResponseError::TransactionalIdNotFound.code()),
                Err(e) => {
                    ctx.count_error(ApiKey::DescribeTransactions, e.code.code());
                    entry.with_error_code(e.code.code())
                }
            }
        })
        .collect();
    DescribeTransactionsResponse::default().with_transaction_states(states)
}

/// ListTransactions coordinated by this broker, filtered by state, producer
/// id, open duration (v1+) and id pattern (v2+, a regular expression).
pub async fn list_transactions(
    ctx: &KafkaContext,
    _version: i16,
    request: ListTransactionsRequest,
) -> ListTransactionsResponse {
    let Ok(c) = coordinator(ctx) else {
        return ListTransactionsResponse::default();
    };
    let known = [
        TxnState::Empty,
        TxnState::Ongoing,
        TxnState::PrepareCommit,
        TxnState::PrepareAbort,
        TxnState::CompleteCommit,
        TxnState::CompleteAbort,
    ];
    let unknown_filters: Vec<StrBytes> = request
        .state_filters
        .iter()
        .filter(|f| !known.iter().any(|k| k.kafka_name() == f.as_str()))
        .cloned()
        .collect();
    let pattern = match request.transactional_id_pattern.as_deref() {
        Some(p) if !p.is_empty() => match regex::Regex::new(&format!("^(?:{p})$")) {
            Ok(r) => Some(r),
            Err(_) => {
                ctx.count_error(
                    ApiKey::ListTransactions,
                    ResponseError::InvalidRegularExpression.code(),
                );
                return ListTransactionsResponse::default()
                    .with_error_code(ResponseError::InvalidRegularExpression.code());
            }
        },
        _ => None,
    };
    let now = now_ms();
    let (listed, loading) = c.list();
    let states = listed
        .into_iter()
        .filter(|l| {
            request.state_filters.is_empty()
                || request
                    .state_filters
                    .iter()
                    .any(|f| f.as_str() == l.meta.state.kafka_name())
        })
        .filter(|l| {
            request.producer_id_filters.is_empty()
                || request
                    .producer_id_filters
                    .iter()
                    .any(|p| p.0 == l.meta.producer_id)
        })
        .filter(|l| {
            request.duration_filter < 0
                || (l.meta.state == TxnState::Ongoing
                    && l.meta.start_ms >= 0
                    && now - l.meta.start_ms >= request.duration_filter)
        })
        .filter(|l| {
            pattern
                .as_ref()
                .is_none_or(|r| r.is_match(&l.transactional_id))
        })
        .map(|l| {
            ListedState::default()
                .with_transactional_id(TransactionalId(s(l.transactional_id)))
                .with_producer_id(ProducerId(l.meta.producer_id))
                .with_transaction_state(s(l.meta.state.kafka_name()))
        })
        .collect();
    let mut resp = ListTransactionsResponse::default()
        .with_unknown_state_filters(unknown_filters)
        .with_transaction_states(states);
    if loading {
        resp.error_code = ResponseError::CoordinatorLoadInProgress.code();
    }
    resp
}

/// DescribeProducers: the producers with a transaction open in each
/// partition led here (what `kafka-transactions describe-producers` and
/// `find-hanging` read).
pub async fn describe_producers(
    ctx: &KafkaContext,
    _version: i16,
    request: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.0.to_string();
            let partitions = t
                .partition_indexes
                .iter()
                .map(|&p| {
                    let entry = PartitionResponse::default().with_partition_index(p);
                    // Any replica answers, as in Kafka: `find-hanging`
                    // asks one broker about every partition it holds.
                    let found = ctx
                        .manager
                        .partition(&name, p)
                        .and_then(|part| part.producers_view());
                    match found {
                        Ok(view) => entry.with_active_producers(
                            view.into_iter()
                                .map(|v| {
                                    ProducerState::default()
                                        .with_producer_id(ProducerId(v.producer_id))
                                        .with_producer_epoch(i32::from(v.producer_epoch))
                                        .with_last_sequence(v.last_sequence)
                                        .with_last_timestamp(v.last_timestamp)
                                        .with_coordinator_epoch(-1)
                                        .with_current_txn_start_offset(v.current_txn_start_offset)
                                })
                                .collect(),
                        ),
                        Err(e) => {
                            let code = error_code(&e).code();
                            ctx.count_error(ApiKey::DescribeProducers, code);
                            entry
                                .with_error_code(code)
                                .with_error_message(Some(s(e.to_string())))
                        }
                    }
                })
                .collect();
            TopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    DescribeProducersResponse::default().with_topics(topics)
}

/// WriteTxnMarkers (Kafka's inter-broker API, which `kafka-transactions
/// abort` sends to end a hanging transaction): writes each marker in the
/// partitions led here. Rill's own coordinators use gRPC instead.
pub async fn write_txn_markers(
    ctx: &KafkaContext,
    _version: i16,
    request: WriteTxnMarkersRequest,
) -> WriteTxnMarkersResponse {
    let mut markers = Vec::with_capacity(request.markers.len());
    for m in request.markers {
        let mut topics = Vec::with_capacity(m.topics.len());
        for t in m.topics {
            let mut partitions = Vec::with_capacity(t.partition_indexes.len());
            for p in t.partition_indexes {
                let written = match &ctx.txns {
                    Some(c) => c
                        .write_marker_here(
                            &t.name.0,
                            p,
                            m.producer_id.0,
                            m.producer_epoch,
                            m.transaction_result,
                            m.coordinator_epoch,
                        )
                        .await
                        .map_err(|e| error_code(&e).code()),
                    None => Err(ResponseError::CoordinatorNotAvailable.code()),
                };
                let code = written.err().unwrap_or(0);
                if code != 0 {
                    ctx.count_error(ApiKey::WriteTxnMarkers, code);
                }
                partitions.push(
                    WritableTxnMarkerPartitionResult::default()
                        .with_partition_index(p)
                        .with_error_code(code),
                );
            }
            topics.push(
                WritableTxnMarkerTopicResult::default()
                    .with_name(t.name)
                    .with_partitions(partitions),
            );
        }
        markers.push(
            WritableTxnMarkerResult::default()
                .with_producer_id(m.producer_id)
                .with_topics(topics),
        );
    }
    WriteTxnMarkersResponse::default().with_markers(markers)
}

/// Asks the coordinator of `transactional_id` (this broker, or the leader
/// of its `__transaction_state` partition over gRPC) to check, or with
/// `add` to add, `partitions` in the producer's ongoing transaction.
pub async fn ask_coordinator(
    ctx: &KafkaContext,
    transactional_id: &str,
    producer: ProducerRef,
    partitions: &[(String, i32)],
    add: bool,
) -> Result<(), TxnError> {
    let txns = coordinator(ctx)?;
    let leader = txns.locate(transactional_id)?;
    if leader == ctx.settings.broker_id {
        return txns
            .check_partitions(transactional_id, producer, partitions, add)
            .await;
    }
    match ctx.manager.replication_address(leader) {
        Some(addr) => {
            txns.marker_client()
                .check_remote(&addr, transactional_id, producer, partitions, add)
                .await
        }
        None => Err(TxnError {
            code: ResponseError::CoordinatorNotAvailable,
            message: format!("the address of transaction coordinator {leader} is unknown"),
        }),
    }
}

/// TxnOffsetCommit. From v5 the client uses transaction version 2 and
/// sends no AddOffsetsToTxn: the group's offsets partition joins the
/// transaction here first (KIP-890 part 2).
pub async fn txn_offset_commit(
    ctx: &KafkaContext,
    version: i16,
    request: TxnOffsetCommitRequest,
) -> TxnOffsetCommitResponse {
    let Some(groups) = ctx.groups.clone() else {
        return txn_offsets_failed(&request, ResponseError::CoordinatorNotAvailable);
    };
    if version >= 5 {
        let producer = ProducerRef {
            producer_id: request.producer_id.0,
            producer_epoch: request.producer_epoch,
        };
        let group = request.group_id.0.to_string();
        let added = match ctx.manager.topic_partitions(OFFSETS_TOPIC) {
            Some(n) => {
                let tp = [(
                    OFFSETS_TOPIC.to_owned(),
                    placement::partition_for(&group, n),
                )];
                ask_coordinator(ctx, &request.transactional_id.0, producer, &tp, true).await
            }
            None => Err(TxnError {
                code: ResponseError::CoordinatorNotAvailable,
                message: format!("{OFFSETS_TOPIC} does not exist yet"),
            }),
        };
        if let Err(e) = added {
            ctx.count_error(ApiKey::TxnOffsetCommit, e.code.code());
            return txn_offsets_failed(&request, e.code);
        }
    }
    super::groups::txn_offset_commit(&groups, version, request, &Default::default()).await
}

fn txn_offsets_failed(
    request: &TxnOffsetCommitRequest,
    code: ResponseError,
) -> TxnOffsetCommitResponse {
    TxnOffsetCommitResponse::default().with_topics(
        request
            .topics
            .iter()
            .map(|t| {
                TxnOffsetCommitResponseTopic::default()
                    .with_name(t.name.clone())
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|p| {
                                TxnOffsetCommitResponsePartition::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(code.code())
                            })
                            .collect(),
                    )
            })
            .collect(),
    )
}
