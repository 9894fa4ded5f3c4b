//! Replica moves and leader elections: AlterPartitionReassignments,
//! ListPartitionReassignments and ElectLeaders (KIP-455, KIP-460), and
//! DescribeLogDirs: what `kafka-reassign-partitions` and
//! `kafka-leader-election` use.
//!
//! Each request is converted and forwarded to the controller (through the
//! [`TopicAdmin`](crate::partition::manager::TopicAdmin) of a cluster
//! member), which validates and performs it; its per-partition outcomes,
//! `REASON: text`, become Kafka error codes here ([`partition_error`]).
//! A controller that cannot be reached answers NOT_CONTROLLER for the
//! whole request, which admin clients retry. A standalone broker has no
//! replicas to move: it lists no reassignment and refuses the others with
//! INVALID_REQUEST.
//!
//! DescribeLogDirs, which `kafka-reassign-partitions --generate` reads,
//! describes this broker's one log dir (its data directory) with the
//! partitions it holds a replica of and their sizes.
//!
//! Only preferred elections are performed; UNCLEAN ones are refused with
//! INVALID_REQUEST, because Rill never elects a replica outside the ISR on
//! request (that loses acknowledged records).

use std::collections::BTreeMap;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse,
    DescribeLogDirsRequest, DescribeLogDirsResponse, ElectLeadersRequest, ElectLeadersResponse,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rill_proto::controller as ctl;

use super::KafkaContext;
use crate::partition::Error;

/// Kafka's `ElectionType`: 0 preferred, 1 unclean.
const ELECTION_PREFERRED: i8 = 0;

const STANDALONE_MESSAGE: &str =
    "this broker is standalone (no controller): its partitions have one replica that cannot move";

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_owned()))
}

/// The Kafka error of a controller outcome (`REASON: text`, empty on
/// success) and its message.
pub fn partition_error(outcome: &str) -> (ResponseError, String) {
    let (reason, text) = outcome.split_once(": ").unwrap_or(("", outcome));
    let error = match reason {
        "UNKNOWN_TOPIC" | "UNKNOWN_PARTITION" => ResponseError::UnknownTopicOrPartition,
        "NO_REASSIGNMENT_IN_PROGRESS" => ResponseError::NoReassignmentInProgress,
        "INVALID_REPLICA_ASSIGNMENT" => ResponseError::InvalidReplicaAssignment,
        "ELECTION_NOT_NEEDED" => ResponseError::ElectionNotNeeded,
        "PREFERRED_LEADER_NOT_AVAILABLE" => ResponseError::PreferredLeaderNotAvailable,
        "NOT_ACTIVE_CONTROLLER" | "SHUTTING_DOWN" | "STORE_UNAVAILABLE" => {
            ResponseError::NotController
        }
        _ => ResponseError::InvalidRequest,
    };
    (error, text.to_owned())
}

/// The whole-request error when the controller refused or could not be
/// asked.
fn request_error(e: &Error) -> ResponseError {
    match e {
        Error::InvalidRequest(_) => ResponseError::InvalidRequest,
        _ => ResponseError::NotController,
    }
}

pub async fn alter_partition_reassignments(
    ctx: &KafkaContext,
    version: i16,
    request: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    let keep_replication_factor = version >= 1 && !request.allow_replication_factor_change;
    let reassignments: Vec<ctl::Reassignment> = request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| ctl::Reassignment {
                topic: t.name.0.to_string(),
                partition: p.partition_index,
                cancel: p.replicas.is_none(),
                replicas: p.replicas.iter().flatten().map(|b| b.0).collect(),
                keep_replication_factor,
            })
        })
        .collect();
    let response = AlterPartitionReassignmentsResponse::default()
        .with_allow_replication_factor_change(request.allow_replication_factor_change);
    let fail = |error: ResponseError, message: String| {
        ctx.count_error(ApiKey::AlterPartitionReassignments, error.code());
        response
            .clone()
            .with_error_code(error.code())
            .with_error_message(Some(StrBytes::from_string(message)))
    };
    let Some(admin) = ctx.manager.topic_admin() else {
        return fail(ResponseError::InvalidRequest, STANDALONE_MESSAGE.to_owned());
    };
    let results = match admin.alter_reassignments(reassignments).await {
        Ok(results) => results,
        Err(e) => return fail(request_error(&e), e.to_string()),
    };
    let mut by_topic: BTreeMap<String, Vec<ReassignablePartitionResponse>> = BTreeMap::new();
    for r in results {
        let partition = ReassignablePartitionResponse::default().with_partition_index(r.partition);
        let partition = if r.error.is_empty() {
            partition
        } else {
            let (error, message) = partition_error(&r.error);
            ctx.count_error(ApiKey::AlterPartitionReassignments, error.code());
            partition
                .with_error_code(error.code())
                .with_error_message(Some(StrBytes::from_string(message)))
        };
        by_topic.entry(r.topic).or_default().push(partition);
    }
    response.with_responses(
        by_topic
            .into_iter()
            .map(|(name, partitions)| {
                ReassignableTopicResponse::default()
                    .with_name(topic_name(&name))
                    .with_partitions(partitions)
            })
            .collect(),
    )
}

pub async fn list_partition_reassignments(
    ctx: &KafkaContext,
    _version: i16,
    request: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    let response = ListPartitionReassignmentsResponse::default();
    let Some(admin) = ctx.manager.topic_admin() else {
        return response;
    };
    let partitions: Vec<ctl::TopicPartition> = request
        .topics
        .iter()
        .flatten()
        .flat_map(|t| {
            t.partition_indexes.iter().map(|i| ctl::TopicPartition {
                topic: t.name.0.to_string(),
                partition: *i,
            })
        })
        .collect();
    if request.topics.is_some() && partitions.is_empty() {
        return response;
    }
    let ongoing = match admin.list_reassignments(partitions).await {
        Ok(ongoing) => ongoing,
        Err(e) => {
            let error = request_error(&e);
            ctx.count_error(ApiKey::ListPartitionReassignments, error.code());
            return response
                .with_error_code(error.code())
                .with_error_message(Some(StrBytes::from_string(e.to_string())));
        }
    };
    let mut by_topic: BTreeMap<String, Vec<OngoingPartitionReassignment>> = BTreeMap::new();
    for o in ongoing {
        by_topic.entry(o.topic).or_default().push(
            OngoingPartitionReassignment::default()
                .with_partition_index(o.partition)
                .with_replicas(o.replicas.into_iter().map(Into::into).collect())
                .with_adding_replicas(o.adding_replicas.into_iter().map(Into::into).collect())
                .with_removing_replicas(o.removing_replicas.into_iter().map(Into::into).collect()),
        );
    }
    response.with_topics(
        by_topic
            .into_iter()
            .map(|(name, partitions)| {
                OngoingTopicReassignment::default()
                    .with_name(topic_name(&name))
                    .with_partitions(partitions)
            })
            .collect(),
    )
}

pub async fn elect_leaders(
    ctx: &KafkaContext,
    version: i16,
    request: ElectLeadersRequest,
) -> ElectLeadersResponse {
    let wanted: Option<Vec<ctl::TopicPartition>> = request.topic_partitions.as_ref().map(|ts| {
        ts.iter()
            .flat_map(|t| {
                t.partitions.iter().map(|i| ctl::TopicPartition {
                    topic: t.topic.0.to_string(),
                    partition: *i,
                })
            })
            .collect()
    });
    // v0 has no election type: it is always preferred.
    let election_type = if version >= 1 {
        request.election_type
    } else {
        ELECTION_PREFERRED
    };
    // Refusals of the whole request are reported on every partition named
    // (v0 has no top-level error code), and at the top from v1.
    let refuse = |error: ResponseError, message: String| {
        ctx.count_error(ApiKey::ElectLeaders, error.code());
        let mut by_topic: BTreeMap<String, Vec<PartitionResult>> = BTreeMap::new();
        for tp in wanted.iter().flatten() {
            by_topic.entry(tp.topic.clone()).or_default().push(
                PartitionResult::default()
                    .with_partition_id(tp.partition)
                    .with_error_code(error.code())
                    .with_error_message(Some(StrBytes::from_string(message.clone()))),
            );
        }
        ElectLeadersResponse::default()
            .with_error_code(if version >= 1 { error.code() } else { 0 })
            .with_replica_election_results(results(by_topic))
    };
    if election_type != ELECTION_PREFERRED {
        return refuse(
            ResponseError::InvalidRequest,
            "unclean leader election on request is not supported: Rill never elects a replica outside the ISR, as that loses acknowledged records".to_owned(),
        );
    }
    let Some(admin) = ctx.manager.topic_admin() else {
        return refuse(ResponseError::InvalidRequest, STANDALONE_MESSAGE.to_owned());
    };
    let outcomes = match admin
        .elect_preferred_leaders(wanted.clone().unwrap_or_default())
        .await
    {
        Ok(outcomes) => outcomes,
        Err(e) => return refuse(request_error(&e), e.to_string()),
    };
    let mut by_topic: BTreeMap<String, Vec<PartitionResult>> = BTreeMap::new();
    for o in outcomes {
        let result = PartitionResult::default().with_partition_id(o.partition);
        let result = if o.error.is_empty() {
            result
        } else {
            let (error, message) = partition_error(&o.error);
            ctx.count_error(ApiKey::ElectLeaders, error.code());
            result
                .with_error_code(error.code())
                .with_error_message(Some(StrBytes::from_string(message)))
        };
        by_topic.entry(o.topic).or_default().push(result);
    }
    ElectLeadersResponse::default().with_replica_election_results(results(by_topic))
}

pub async fn describe_log_dirs(
    ctx: &KafkaContext,
    _version: i16,
    request: DescribeLogDirsRequest,
) -> DescribeLogDirsResponse {
    let wanted: Option<BTreeMap<String, Vec<i32>>> = request.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.topic.0.to_string(), t.partitions))
            .collect()
    });
    let views = ctx.manager.metadata(&[]).unwrap_or_default();
    let topics = views
        .into_iter()
        .filter_map(|t| {
            let only = match &wanted {
                Some(w) => Some(w.get(&t.name)?),
                None => None,
            };
            let partitions: Vec<DescribeLogDirsPartition> = t
                .partitions
                .iter()
                .filter(|p| only.is_none_or(|o| o.contains(&p.id)))
                .filter_map(|p| {
                    let state = p.state?;
                    Some(
                        DescribeLogDirsPartition::default()
                            .with_partition_index(p.id)
                            .with_partition_size(
                                i64::try_from(state.size_bytes).unwrap_or(i64::MAX),
                            )
                            .with_offset_lag(0),
                    )
                })
                .collect();
            (!partitions.is_empty()).then(|| {
                DescribeLogDirsTopic::default()
                    .with_name(topic_name(&t.name))
                    .with_partitions(partitions)
            })
        })
        .collect();
    let known = |v: i64| if v > 0 { v } else { -1 };
    DescribeLogDirsResponse::default().with_results(vec![
        DescribeLogDirsResult::default()
            .with_log_dir(StrBytes::from_string(
                ctx.manager.data_dir().display().to_string(),
            ))
            .with_topics(topics)
            .with_total_bytes(known(ctx.metrics.disk_total_bytes.get()))
            .with_usable_bytes(known(ctx.metrics.disk_free_bytes.get())),
    ])
}

fn results(by_topic: BTreeMap<String, Vec<PartitionResult>>) -> Vec<ReplicaElectionResult> {
    by_topic
        .into_iter()
        .map(|(name, partitions)| {
            ReplicaElectionResult::default()
                .with_topic(topic_name(&name))
                .with_partition_result(partitions)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_controller_reasons_when_mapped_then_they_become_kafka_errors_with_the_text() {
        for (outcome, error) in [
            (
                "UNKNOWN_TOPIC: unknown topic \"x\"",
                ResponseError::UnknownTopicOrPartition,
            ),
            (
                "UNKNOWN_PARTITION: t-9",
                ResponseError::UnknownTopicOrPartition,
            ),
            (
                "NO_REASSIGNMENT_IN_PROGRESS: none",
                ResponseError::NoReassignmentInProgress,
            ),
            (
                "INVALID_REPLICA_ASSIGNMENT: twice",
                ResponseError::InvalidReplicaAssignment,
            ),
            ("ELECTION_NOT_NEEDED: led", ResponseError::ElectionNotNeeded),
            (
                "PREFERRED_LEADER_NOT_AVAILABLE: behind",
                ResponseError::PreferredLeaderNotAvailable,
            ),
            ("STORE_UNAVAILABLE: down", ResponseError::NotController),
            ("SOMETHING_NEW: ?", ResponseError::InvalidRequest),
        ] {
            let (got, text) = partition_error(outcome);
            assert_eq!(got, error, "{outcome}");
            assert!(outcome.ends_with(&text), "{outcome}: {text}");
        }
    }
}
