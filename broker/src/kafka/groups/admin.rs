//! ListGroups, DescribeGroups and DeleteGroups over the
//! [`GroupCoordinator`].

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    GroupId, ListGroupsRequest, ListGroupsResponse, OffsetDeleteRequest, OffsetDeleteResponse,
};

use super::{GroupErrorCode, result_code, s};
use crate::group::state::GroupState;
use crate::group::{ClientInfo, GroupCoordinator, GroupError};

/// ListGroups: the groups this broker coordinates, filtered by state
/// (v4+) and type (v5+: `classic` or `consumer`).
pub async fn list_groups(
    coordinator: &GroupCoordinator,
    version: i16,
    req: ListGroupsRequest,
    _client: &ClientInfo,
) -> ListGroupsResponse {
    let (groups, loading) = coordinator.list();
    let states: Vec<String> = req
        .states_filter
        .iter()
        .map(|f| f.to_ascii_lowercase())
        .collect();
    let types: Vec<String> = req
        .types_filter
        .iter()
        .map(|t| t.to_ascii_lowercase())
        .collect();
    let mut resp = ListGroupsResponse::default();
    if loading {
        resp.error_code = GroupError::LoadInProgress.code();
    }
    resp.groups = groups
        .into_iter()
        .filter(|g| states.is_empty() || states.contains(&g.state.to_ascii_lowercase()))
        .filter(|g| types.is_empty() || types.iter().any(|t| t == g.group_type))
        .map(|g| {
            let mut l = ListedGroup::default()
                .with_group_id(GroupId(s(g.group_id)))
                .with_protocol_type(s(g.protocol_type));
            if version >= 4 {
                l.group_state = s(g.state);
            }
            if version >= 5 {
                l.group_type = s(g.group_type);
            }
            l
        })
        .collect();
    resp
}

/// DescribeGroups: state, protocol, members; metadata and assignments
/// only while Stable (like Kafka). An unknown group reads as Dead (v0-5)
/// or GROUP_ID_NOT_FOUND (v6+).
pub async fn describe_groups(
    coordinator: &GroupCoordinator,
    version: i16,
    req: DescribeGroupsRequest,
    _client: &ClientInfo,
) -> DescribeGroupsResponse {
    let groups = req
        .groups
        .into_iter()
        .map(|group| {
            let id = group.0.to_string();
            let r = coordinator.describe(&id);
            let mut d = DescribedGroup::default().with_group_id(group);
            let error = match r {
                Ok(Some(desc)) => {
                    d.group_state = s(desc.state.as_str());
                    d.protocol_type = s(desc.protocol_type);
                    d.protocol_data = s(desc.protocol);
                    d.members = desc
                        .members
                        .into_iter()
                        .map(|m| {
                            let mut dm = DescribedGroupMember::default()
                                .with_member_id(s(m.member_id))
                                .with_client_id(s(m.client_id))
                                .with_client_host(s(m.client_host))
                                .with_member_metadata(m.metadata)
                                .with_member_assignment(m.assignment);
                            if version >= 4 {
                                dm.group_instance_id = m.instance_id.map(s);
                            }
                            dm
                        })
                        .collect();
                    None
                }
                Ok(None) => {
                    d.group_state = s(GroupState::Dead.as_str());
                    (version >= 6).then(|| GroupError::GroupIdNotFound(id.clone()))
                }
                Err(e) => {
                    d.group_state = s(GroupState::Dead.as_str());
                    Some(e)
                }
            };
            if let Some(e) = error {
                d.error_code = e.code();
                if version >= 6 {
                    d.error_message = Some(s(e.to_string()));
                }
            }
            d
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

/// DeleteGroups: removes Empty groups and their offsets (tombstones
/// written with acks=all).
pub async fn delete_groups(
    coordinator: &GroupCoordinator,
    _version: i16,
    req: DeleteGroupsRequest,
    _client: &ClientInfo,
) -> DeleteGroupsResponse {
    let mut results = Vec::new();
    for group in req.groups_names {
        let id = group.0.to_string();
        let r = coordinator.delete(&id).await;
        results.push(
            DeletableGroupResult::default()
                .with_group_id(group)
                .with_error_code(result_code(r)),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}

/// OffsetDelete: drops a group's committed offsets of partitions whose
/// topics its members do not subscribe to (`kafka-consumer-groups
/// --delete-offsets`).
pub async fn offset_delete(
    coordinator: &GroupCoordinator,
    _version: i16,
    req: OffsetDeleteRequest,
    _client: &ClientInfo,
) -> OffsetDeleteResponse {
    let partitions: Vec<(String, i32)> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.0.to_string(), p.partition_index))
        })
        .collect();
    let results = match coordinator
        .delete_offsets(&req.group_id.0, &partitions)
        .await
    {
        Ok(results) => results,
        Err(e) => return OffsetDeleteResponse::default().with_error_code(e.code()),
    };
    let mut results = results.into_iter();
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(results.next().flatten().map_or(0, |e| e.code()))
                })
                .collect();
            OffsetDeleteResponseTopic::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    OffsetDeleteResponse::default().with_topics(topics)
}
