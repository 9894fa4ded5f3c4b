//! OffsetCommit and OffsetFetch over the [`GroupCoordinator`].

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{
    GroupId, OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse,
    TopicName, TxnOffsetCommitRequest, TxnOffsetCommitResponse,
};

use super::{GroupErrorCode, result_code, s};
use crate::group::records::CommittedOffset;
use crate::group::{ClientInfo, GroupCoordinator, OffsetToCommit};

/// OffsetCommit: checked against the group (generation, member; a
/// negative generation commits for groups without members), written
/// with acks=all, then visible to OffsetFetch.
pub async fn offset_commit(
    coordinator: &GroupCoordinator,
    version: i16,
    req: OffsetCommitRequest,
    _client: &ClientInfo,
) -> OffsetCommitResponse {
    let group_id = req.group_id.0.to_string();
    let member_id = req.member_id.to_string();
    let instance = req.group_instance_id.as_ref().map(|i| i.to_string());
    let generation = req.generation_id_or_member_epoch;
    let offsets = req
        .topics
        .iter()
        .flat_map(|t| {
            let topic = t.name.0.to_string();
            t.partitions.iter().map(move |p| OffsetToCommit {
                topic: topic.clone(),
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: if version >= 6 {
                    p.committed_leader_epoch
                } else {
                    -1
                },
                metadata: p
                    .committed_metadata
                    .as_ref()
                    .map(|m| m.to_string())
                    .unwrap_or_default(),
            })
        })
        .collect();
    let mut results = coordinator
        .commit(
            &group_id,
            &member_id,
            instance.as_deref(),
            generation,
            offsets,
        )
        .await
        .into_iter();
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let r = results.next().expect("one result per partition");
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(result_code(r))
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

/// TxnOffsetCommit: offsets written in the producer's transaction, visible
/// once its commit marker lands in the group's offsets partition.
pub async fn txn_offset_commit(
    coordinator: &GroupCoordinator,
    version: i16,
    req: TxnOffsetCommitRequest,
    _client: &ClientInfo,
) -> TxnOffsetCommitResponse {
    let group_id = req.group_id.0.to_string();
    let member_id = req.member_id.to_string();
    let instance = req.group_instance_id.as_ref().map(|i| i.to_string());
    let member = (version >= 3 && !member_id.is_empty()).then_some((
        member_id.as_str(),
        instance.as_deref(),
        req.generation_id,
    ));
    let offsets = req
        .topics
        .iter()
        .flat_map(|t| {
            let topic = t.name.0.to_string();
            t.partitions.iter().map(move |p| OffsetToCommit {
                topic: topic.clone(),
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: if version >= 2 {
                    p.committed_leader_epoch
                } else {
                    -1
                },
                metadata: p
                    .committed_metadata
                    .as_ref()
                    .map(|m| m.to_string())
                    .unwrap_or_default(),
            })
        })
        .collect();
    let mut results = coordinator
        .commit_in_transaction(
            &group_id,
            (req.producer_id.0, req.producer_epoch),
            member,
            offsets,
        )
        .await
        .into_iter();
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let r = results.next().expect("one result per partition");
                    TxnOffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(result_code(r))
                })
                .collect();
            TxnOffsetCommitResponseTopic::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}

/// OffsetFetch: one group (v1-7) or several (v8+); all committed
/// partitions when no topics are named. Offsets not committed read as
/// -1. With `require_stable` (v7+), a partition with offsets committed in
/// a transaction that is still open answers UNSTABLE_OFFSET_COMMIT, so a
/// read_committed consumer waits rather than start from an older offset.
pub async fn offset_fetch(
    coordinator: &GroupCoordinator,
    version: i16,
    req: OffsetFetchRequest,
    _client: &ClientInfo,
) -> OffsetFetchResponse {
    type Wanted = Option<Vec<(String, Vec<i32>)>>;
    let asked: Vec<(GroupId, Wanted)> = if version >= 8 {
        req.groups
            .iter()
            .map(|g| {
                let wanted = g.topics.as_ref().map(|ts| {
                    ts.iter()
                        .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
                        .collect()
                });
                (g.group_id.clone(), wanted)
            })
            .collect()
    } else {
        let wanted = req.topics.as_ref().map(|ts| {
            ts.iter()
                .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
                .collect()
        });
        vec![(req.group_id.clone(), wanted)]
    };
    let mut results = Vec::new();
    for (group, wanted) in asked {
        let id = group.0.to_string();
        let r = coordinator.committed(&id, wanted.as_deref());
        results.push((group, wanted, r));
    }
    let mut resp = OffsetFetchResponse::default();
    if version >= 8 {
        resp.groups = results
            .into_iter()
            .map(|(group, _, r)| {
                let mut g = OffsetFetchResponseGroup::default().with_group_id(group);
                match r {
                    Ok(found) => {
                        g.topics = found
                            .into_iter()
                            .map(|(topic, parts)| {
                                OffsetFetchResponseTopics::default()
                                    .with_name(TopicName(s(topic)))
                                    .with_partitions(
                                        parts.into_iter().map(|(p, o)| fetched_v8(p, o)).collect(),
                                    )
                            })
                            .collect()
                    }
                    Err(e) => g.error_code = e.code(),
                }
                g
            })
            .collect();
    } else {
        let (_, wanted, r) = results.into_iter().next().expect("one group");
        let (found, error) = match r {
            Ok(found) => (found, 0),
            // v1 has no group-level error: every asked partition carries it.
            Err(e) if version < 2 => {
                let asked = wanted
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(topic, parts)| (topic, parts.into_iter().map(|p| (p, None)).collect()))
                    .collect();
                (asked, e.code())
            }
            Err(e) => {
                resp.error_code = e.code();
                return resp;
            }
        };
        resp.topics = found
            .into_iter()
            .map(|(topic, parts)| {
                OffsetFetchResponseTopic::default()
                    .with_name(TopicName(s(topic)))
                    .with_partitions(
                        parts
                            .into_iter()
                            .map(|(p, o)| fetched(version, p, o, error))
                            .collect(),
                    )
            })
            .collect();
    }
    if version >= 7 && req.require_stable {
        mark_unstable(coordinator, version, &req.group_id, &mut resp);
    }
    resp
}

/// Answers UNSTABLE_OFFSET_COMMIT for every partition whose group has
/// transactional offsets waiting for their marker.
fn mark_unstable(
    coordinator: &GroupCoordinator,
    version: i16,
    group_v7: &GroupId,
    resp: &mut OffsetFetchResponse,
) {
    let unstable = kafka_protocol::ResponseError::UnstableOffsetCommit.code();
    if version >= 8 {
        for g in &mut resp.groups {
            if !coordinator.has_pending_txn_offsets(&g.group_id.0, None) {
                continue;
            }
            for t in &mut g.topics {
                for p in &mut t.partitions {
                    if coordinator.has_pending_txn_offsets(
                        &g.group_id.0,
                        Some((&t.name.0, p.partition_index)),
                    ) {
                        p.error_code = unstable;
                    }
                }
            }
        }
    } else if coordinator.has_pending_txn_offsets(&group_v7.0, None) {
        for t in &mut resp.topics {
            for p in &mut t.partitions {
                if coordinator
                    .has_pending_txn_offsets(&group_v7.0, Some((&t.name.0, p.partition_index)))
                {
                    p.error_code = unstable;
                }
            }
        }
    }
}

fn fetched(
    version: i16,
    partition: i32,
    o: Option<CommittedOffset>,
    error: i16,
) -> OffsetFetchResponsePartition {
    let (offset, epoch, metadata) = match o {
        Some(o) => (o.offset, o.leader_epoch, o.metadata),
        None => (-1, -1, String::new()),
    };
    let mut p = OffsetFetchResponsePartition::default()
        .with_partition_index(partition)
        .with_committed_offset(offset)
        .with_metadata(Some(s(metadata)))
        .with_error_code(error);
    if version >= 5 {
        p.committed_leader_epoch = epoch;
    }
    p
}

fn fetched_v8(partition: i32, o: Option<CommittedOffset>) -> OffsetFetchResponsePartitions {
    let (offset, epoch, metadata) = match o {
        Some(o) => (o.offset, o.leader_epoch, o.metadata),
        None => (-1, -1, String::new()),
    };
    OffsetFetchResponsePartitions::default()
        .with_partition_index(partition)
        .with_committed_offset(offset)
        .with_committed_leader_epoch(epoch)
        .with_metadata(Some(s(metadata)))
}
