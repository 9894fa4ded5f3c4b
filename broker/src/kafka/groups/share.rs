//! Share groups (KIP-932) at their coordinator: ShareGroupHeartbeat,
//! ShareGroupDescribe and the offset APIs of `kafka-share-groups`
//! (DescribeShareGroupOffsets, AlterShareGroupOffsets,
//! DeleteShareGroupOffsets). Heartbeat assignments travel by topic id; the
//! offset APIs name topics.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::ResponseError;
use kafka_protocol::messages::alter_share_group_offsets_response::{
    AlterShareGroupOffsetsResponsePartition, AlterShareGroupOffsetsResponseTopic,
};
use kafka_protocol::messages::delete_share_group_offsets_response::DeleteShareGroupOffsetsResponseTopic;
use kafka_protocol::messages::describe_share_group_offsets_response::{
    DescribeShareGroupOffsetsResponseGroup, DescribeShareGroupOffsetsResponsePartition,
    DescribeShareGroupOffsetsResponseTopic,
};
use kafka_protocol::messages::share_group_describe_response::{
    Assignment as DescribedAssignment, DescribedGroup, Member, TopicPartitions as DescribedTopic,
};
use kafka_protocol::messages::share_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{
    AlterShareGroupOffsetsRequest, AlterShareGroupOffsetsResponse, DeleteShareGroupOffsetsRequest,
    DeleteShareGroupOffsetsResponse, DescribeShareGroupOffsetsRequest,
    DescribeShareGroupOffsetsResponse, ShareGroupDescribeRequest, ShareGroupDescribeResponse,
    ShareGroupHeartbeatRequest, ShareGroupHeartbeatResponse, TopicName,
};
use uuid::Uuid;

use super::{GroupErrorCode, s};
use crate::group::records::ShareStateValue;
use crate::group::state::{Partitions, SHARE_ASSIGNOR, ShareHeartbeat};
use crate::group::{ClientInfo, GroupCoordinator, GroupError};

/// ShareGroupHeartbeat: joining (epoch 0, with the client's own member
/// id), heartbeating, leaving (-1).
pub async fn share_group_heartbeat(
    coordinator: &GroupCoordinator,
    _version: i16,
    req: ShareGroupHeartbeatRequest,
    client: &ClientInfo,
) -> ShareGroupHeartbeatResponse {
    let fail = |e: GroupError| {
        ShareGroupHeartbeatResponse::default()
            .with_error_code(e.code())
            .with_error_message(Some(s(e.to_string())))
    };
    if req.member_epoch < -1 {
        return fail(GroupError::InvalidRequest(
            "MemberEpoch is invalid.".to_owned(),
        ));
    }
    let hb = ShareHeartbeat {
        member_id: req.member_id.to_string(),
        member_epoch: req.member_epoch,
        rack_id: req.rack_id.map(|r| r.to_string()),
        subscribed: req
            .subscribed_topic_names
            .map(|ns| ns.into_iter().map(|n| n.0.to_string()).collect()),
        client_id: client.client_id.clone(),
        client_host: client.client_host.clone(),
    };
    match coordinator.share_heartbeat(&req.group_id.0, hb).await {
        Ok(r) => ShareGroupHeartbeatResponse::default()
            .with_member_id(Some(s(r.member_id)))
            .with_member_epoch(r.member_epoch)
            .with_heartbeat_interval_ms(r.heartbeat_interval_ms)
            .with_assignment(r.assignment.map(|a| {
                Assignment::default().with_topic_partitions(
                    a.into_iter()
                        .map(|(t, ps)| {
                            TopicPartitions::default()
                                .with_topic_id(t)
                                .with_partitions(ps.into_iter().collect())
                        })
                        .collect(),
                )
            })),
        Err(e) => fail(e),
    }
}

/// Topic names by id, for the topics the coordinator's broker knows.
fn names_by_id(coordinator: &GroupCoordinator) -> BTreeMap<Uuid, String> {
    let manager = coordinator.manager();
    manager
        .topic_names()
        .into_iter()
        .filter_map(|n| manager.topic_id(&n).map(|(id, _)| (id, n)))
        .collect()
}

fn described(a: Partitions, names: &BTreeMap<Uuid, String>) -> DescribedAssignment {
    DescribedAssignment::default().with_topic_partitions(
        a.into_iter()
            .map(|(t, ps)| {
                DescribedTopic::default()
                    .with_topic_id(t)
                    .with_topic_name(TopicName(s(names.get(&t).cloned().unwrap_or_default())))
                    .with_partitions(ps.into_iter().collect())
            })
            .collect(),
    )
}

/// ShareGroupDescribe: epochs, the assignor and every member with its
/// subscription and assignment. Another kind of group, or none, is
/// GROUP_ID_NOT_FOUND.
pub async fn share_group_describe(
    coordinator: &GroupCoordinator,
    _version: i16,
    req: ShareGroupDescribeRequest,
    _client: &ClientInfo,
) -> ShareGroupDescribeResponse {
    let names = names_by_id(coordinator);
    let groups = req
        .group_ids
        .into_iter()
        .map(|group| {
            let id = group.0.to_string();
            let mut d = DescribedGroup::default()
                .with_group_id(group)
                .with_authorized_operations(i32::MIN);
            match coordinator.share_describe(&id) {
                Ok(desc) => {
                    d.group_state = s(desc.state.to_owned());
                    d.group_epoch = desc.epoch;
                    d.assignment_epoch = desc.assignment_epoch;
                    d.assignor_name = s(SHARE_ASSIGNOR.to_owned());
                    d.members = desc
                        .members
                        .into_iter()
                        .map(|m| {
                            Member::default()
                                .with_member_id(s(m.member_id))
                                .with_rack_id(m.rack_id.map(s))
                                .with_member_epoch(m.member_epoch)
                                .with_client_id(s(m.client_id))
                                .with_client_host(s(m.client_host))
                                .with_subscribed_topic_names(
                                    m.subscribed.into_iter().map(|n| TopicName(s(n))).collect(),
                                )
                                .with_assignment(described(m.assignment, &names))
                        })
                        .collect();
                }
                Err(e) => {
                    d.error_code = e.code();
                    d.error_message = Some(s(e.to_string()));
                    d.group_state = s("Dead".to_owned());
                }
            }
            d
        })
        .collect();
    ShareGroupDescribeResponse::default().with_groups(groups)
}

/// Records of a stored share partition not yet done below `high_watermark`.
fn lag(state: &ShareStateValue, high_watermark: i64) -> i64 {
    let in_flight: i64 = state
        .available
        .iter()
        .map(|(first, last, _)| last - first + 1)
        .sum();
    (high_watermark - state.end).max(0) + in_flight
}

/// DescribeShareGroupOffsets: per share partition, its start offset and
/// (v1) lag. The lag needs the partition's high watermark, known to this
/// broker when it has a replica; otherwise it is -1 (unknown).
pub async fn describe_share_group_offsets(
    coordinator: &GroupCoordinator,
    _version: i16,
    req: DescribeShareGroupOffsetsRequest,
    _client: &ClientInfo,
) -> DescribeShareGroupOffsetsResponse {
    let names = names_by_id(coordinator);
    let manager = coordinator.manager();
    let groups = req
        .groups
        .into_iter()
        .map(|g| {
            let id = g.group_id.0.to_string();
            let out = DescribeShareGroupOffsetsResponseGroup::default().with_group_id(g.group_id);
            let states = match coordinator.share_states(&id) {
                Ok(states) => states,
                Err(e) => {
                    return out
                        .with_error_code(e.code())
                        .with_error_message(Some(s(e.to_string())));
                }
            };
            let wanted: Option<BTreeMap<String, BTreeSet<i32>>> = g.topics.map(|ts| {
                ts.into_iter()
                    .map(|t| {
                        (
                            t.topic_name.0.to_string(),
                            t.partitions.into_iter().collect(),
                        )
                    })
                    .collect()
            });
            let mut topics: BTreeMap<
                String,
                (Uuid, Vec<DescribeShareGroupOffsetsResponsePartition>),
            > = BTreeMap::new();
            for ((topic_id, partition), state) in &states {
                let Some(name) = names.get(topic_id) else {
                    continue;
                };
                if wanted
                    .as_ref()
                    .is_some_and(|w| !w.get(name).is_some_and(|ps| ps.contains(partition)))
                {
                    continue;
                }
                let lag = manager
                    .partition(name, *partition)
                    .map_or(-1, |p| lag(state, p.high_watermark()));
                topics
                    .entry(name.clone())
                    .or_insert((*topic_id, Vec::new()))
                    .1
                    .push(
                        DescribeShareGroupOffsetsResponsePartition::default()
                            .with_partition_index(*partition)
                            .with_start_offset(state.start)
                            .with_leader_epoch(state.leader_epoch.max(-1))
                            .with_lag(lag),
                    );
            }
            out.with_topics(
                topics
                    .into_iter()
                    .map(|(name, (id, partitions))| {
                        DescribeShareGroupOffsetsResponseTopic::default()
                            .with_topic_name(TopicName(s(name)))
                            .with_topic_id(id)
                            .with_partitions(partitions)
                    })
                    .collect(),
            )
        })
        .collect();
    DescribeShareGroupOffsetsResponse::default().with_groups(groups)
}

/// AlterShareGroupOffsets (`kafka-share-groups --reset-offsets
/// --execute`): the group must be empty; each named partition starts again
/// at its offset with nothing in flight.
pub async fn alter_share_group_offsets(
    coordinator: &GroupCoordinator,
    _version: i16,
    req: AlterShareGroupOffsetsRequest,
    _client: &ClientInfo,
) -> AlterShareGroupOffsetsResponse {
    let manager = coordinator.manager();
    let mut starts = Vec::new();
    let mut topics = Vec::new();
    for t in &req.topics {
        let name = t.topic_name.0.to_string();
        let known = manager.topic_id(&name);
        let partitions = t
            .partitions
            .iter()
            .map(|p| {
                let mut r = AlterShareGroupOffsetsResponsePartition::default()
                    .with_partition_index(p.partition_index);
                match known {
                    Some((id, count)) if (0..count).contains(&p.partition_index) => {
                        starts.push((id, p.partition_index, p.start_offset.max(0)));
                    }
                    _ => {
                        r.error_code = ResponseError::UnknownTopicOrPartition.code();
                        r.error_message = Some(s(format!("{name}-{}", p.partition_index)));
                    }
                }
                r
            })
            .collect();
        topics.push(
            AlterShareGroupOffsetsResponseTopic::default()
                .with_topic_name(t.topic_name.clone())
                .with_topic_id(known.map_or(Uuid::nil(), |(id, _)| id))
                .with_partitions(partitions),
        );
    }
    match coordinator
        .alter_share_offsets(&req.group_id.0, &starts)
        .await
    {
        Ok(()) => AlterShareGroupOffsetsResponse::default().with_responses(topics),
        Err(e) => AlterShareGroupOffsetsResponse::default()
            .with_error_code(e.code())
            .with_error_message(Some(s(e.to_string()))),
    }
}

/// DeleteShareGroupOffsets (`kafka-share-groups --delete-offsets`): the
/// group must be empty; the named topics' share partitions are forgotten.
pub async fn delete_share_group_offsets(
    coordinator: &GroupCoordinator,
    _version: i16,
    req: DeleteShareGroupOffsetsRequest,
    _client: &ClientInfo,
) -> DeleteShareGroupOffsetsResponse {
    let manager = coordinator.manager();
    let mut ids = BTreeSet::new();
    let topics: Vec<DeleteShareGroupOffsetsResponseTopic> = req
        .topics
        .iter()
        .map(|t| {
            let name = t.topic_name.0.to_string();
            let r = DeleteShareGroupOffsetsResponseTopic::default()
                .with_topic_name(t.topic_name.clone());
            match manager.topic_id(&name) {
                Some((id, _)) => {
                    ids.insert(id);
                    r.with_topic_id(id)
                }
                None => r
                    .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                    .with_error_message(Some(s(format!("unknown topic {name}")))),
            }
        })
        .collect();
    match coordinator
        .delete_share_offsets(&req.group_id.0, &ids)
        .await
    {
        Ok(()) => DeleteShareGroupOffsetsResponse::default().with_responses(topics),
        Err(e) => DeleteShareGroupOffsetsResponse::default()
            .with_error_code(e.code())
            .with_error_message(Some(s(e.to_string()))),
    }
}
