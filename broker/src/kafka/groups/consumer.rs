//! ConsumerGroupHeartbeat and ConsumerGroupDescribe (KIP-848) over the
//! [`GroupCoordinator`]. Assignments travel by topic id; the describe
//! answer names the topics too.

use std::collections::{BTreeSet, HashMap};

use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment as DescribedAssignment, DescribedGroup, Member, TopicPartitions as DescribedTopic,
};
use kafka_protocol::messages::consumer_group_heartbeat_response::{
    Assignment, TopicPartitions as AssignedTopic,
};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, ConsumerGroupHeartbeatRequest,
    ConsumerGroupHeartbeatResponse, TopicName,
};
use uuid::Uuid;

use super::{GroupErrorCode, s};
use crate::group::state::{ConsumerHeartbeat, Partitions};
use crate::group::{ClientInfo, GroupCoordinator, GroupError};

/// ConsumerGroupDescribe member type of a consumer-protocol member.
const CONSUMER_MEMBER: i8 = 1;

/// ConsumerGroupHeartbeat: joining (epoch 0), heartbeating, leaving (-1,
/// or -2 for a static member). From v1 the member id is the client's own.
pub async fn consumer_group_heartbeat(
    coordinator: &GroupCoordinator,
    version: i16,
    req: ConsumerGroupHeartbeatRequest,
    client: &ClientInfo,
) -> ConsumerGroupHeartbeatResponse {
    let fail = |e: GroupError| {
        ConsumerGroupHeartbeatResponse::default()
            .with_error_code(e.code())
            .with_error_message(Some(s(e.to_string())))
    };
    if version >= 1 && req.member_id.is_empty() {
        return fail(GroupError::InvalidRequest(
            "the member id must not be empty (ConsumerGroupHeartbeat v1+)".to_owned(),
        ));
    }
    let owned = req.topic_partitions.map(|tps| {
        let mut p = Partitions::new();
        for t in tps {
            p.entry(t.topic_id)
                .or_default()
                .extend(t.partitions.iter().copied());
        }
        p.retain(|_, ps| !ps.is_empty());
        p
    });
    let hb = ConsumerHeartbeat {
        member_id: req.member_id.to_string(),
        member_epoch: req.member_epoch,
        instance_id: req.instance_id.map(|i| i.to_string()),
        rack_id: req.rack_id.map(|r| r.to_string()),
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        subscribed_names: req
            .subscribed_topic_names
            .map(|ns| ns.into_iter().map(|n| n.0.to_string()).collect()),
        subscribed_regex: req.subscribed_topic_regex.map(|r| r.to_string()),
        server_assignor: req.server_assignor.map(|a| a.to_string()),
        owned,
        client_id: client.client_id.clone(),
        client_host: client.client_host.clone(),
    };
    match coordinator.consumer_heartbeat(&req.group_id.0, hb).await {
        Ok(r) => ConsumerGroupHeartbeatResponse::default()
            .with_member_id(Some(s(r.member_id)))
            .with_member_epoch(r.member_epoch)
            .with_heartbeat_interval_ms(r.heartbeat_interval_ms)
            .with_assignment(r.assignment.map(|a| {
                Assignment::default().with_topic_partitions(
                    a.into_iter()
                        .map(|(t, ps)| {
                            AssignedTopic::default()
                                .with_topic_id(t)
                                .with_partitions(ps.into_iter().collect())
                        })
                        .collect(),
                )
            })),
        Err(e) => fail(e),
    }
}

/// Topic names by id, for the topics of `assignments`.
fn names_of<'a>(
    coordinator: &GroupCoordinator,
    assignments: impl Iterator<Item = &'a Partitions>,
) -> HashMap<Uuid, String> {
    let wanted: BTreeSet<Uuid> = assignments.flat_map(|a| a.keys().copied()).collect();
    if wanted.is_empty() {
        return HashMap::new();
    }
    let manager = coordinator.manager();
    manager
        .topic_names()
        .into_iter()
        .filter_map(|n| {
            let (id, _) = manager.topic_id(&n)?;
            wanted.contains(&id).then_some((id, n))
        })
        .collect()
}

fn described(a: Partitions, names: &HashMap<Uuid, String>) -> DescribedAssignment {
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

/// ConsumerGroupDescribe: epochs, assignor, and every member with its
/// subscription, assignment and target. A classic group, or none, is
/// GROUP_ID_NOT_FOUND, as in Kafka (tools then try DescribeGroups).
pub async fn consumer_group_describe(
    coordinator: &GroupCoordinator,
    version: i16,
    req: ConsumerGroupDescribeRequest,
    _client: &ClientInfo,
) -> ConsumerGroupDescribeResponse {
    let groups = req
        .group_ids
        .into_iter()
        .map(|group| {
            let id = group.0.to_string();
            let mut d = DescribedGroup::default()
                .with_group_id(group)
                .with_authorized_operations(i32::MIN);
            match coordinator.consumer_describe(&id) {
                Ok(desc) => {
                    let names = names_of(
                        coordinator,
                        desc.members.iter().flat_map(|m| [&m.assignment, &m.target]),
                    );
                    d.group_state = s(desc.state);
                    d.group_epoch = desc.epoch;
                    d.assignment_epoch = desc.assignment_epoch;
                    d.assignor_name = s(desc.assignor);
                    d.members = desc
                        .members
                        .into_iter()
                        .map(|m| {
                            let mut member = Member::default()
                                .with_member_id(s(m.member_id))
                                .with_instance_id(m.instance_id.map(s))
                                .with_rack_id(m.rack_id.map(s))
                                .with_member_epoch(m.member_epoch)
                                .with_client_id(s(m.client_id))
                                .with_client_host(s(m.client_host))
                                .with_subscribed_topic_names(
                                    m.subscribed_names
                                        .into_iter()
                                        .map(|n| TopicName(s(n)))
                                        .collect(),
                                )
                                .with_subscribed_topic_regex(m.subscribed_regex.map(s))
                                .with_assignment(described(m.assignment, &names))
                                .with_target_assignment(described(m.target, &names));
                            if version >= 1 {
                                member.member_type = CONSUMER_MEMBER;
                            }
                            member
                        })
                        .collect();
                }
                Err(e) => {
                    d.error_code = e.code();
                    d.error_message = Some(s(e.to_string()));
                    d.group_state = s("Dead");
                }
            }
            d
        })
        .collect();
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}
