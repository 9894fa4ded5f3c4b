//! The Kafka API of the group coordinator: one method per request type,
//! taking the decoded `kafka-protocol` request and its version and returning
//! the response to encode at that same version. The Kafka listener only
//! dispatches to these; [`GROUP_API_VERSIONS`] lists what to advertise in
//! ApiVersions.
//!
//! Version differences are resolved here (JoinGroup v0 has no rebalance
//! timeout, v4+ requires a known member id, LeaveGroup v3+ and OffsetFetch
//! v8+ are batched, FindCoordinator v4+ takes several keys, ...), and every
//! response only sets fields that exist at its version.

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest,
    DescribeGroupsResponse, FindCoordinatorRequest, FindCoordinatorResponse, GroupId,
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse, OffsetCommitRequest,
    OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse, SyncGroupRequest,
    SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::coordinator::{ClientInfo, GroupCoordinator};
use super::error::GroupError;
use super::placement::{self, OFFSETS_TOPIC};
use super::records::CommittedOffset;
use super::state::{
    GroupState, JoinReply, JoinRequest, Leaving, Protocol, Reply, SyncReply, SyncRequest,
};

/// The group APIs and the versions served: (API, min, max). Every version
/// the `kafka-protocol` crate can decode and encode.
pub const GROUP_API_VERSIONS: [(ApiKey, i16, i16); 10] = [
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::DescribeGroups, 0, 6),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
];

/// A coordinator found for a key: (node id, host, port).
type Located = Result<(i32, String, i32), GroupError>;
/// Per partition of a commit: its index and what became of it.
type PartitionChecks = Vec<(i32, Result<(), GroupError>)>;

/// FindCoordinator key type of consumer groups.
const KEY_TYPE_GROUP: i8 = 0;
/// The group type ListGroups v5+ reports: only the classic protocol exists.
const CLASSIC: &str = "classic";

fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

fn code(e: &Option<GroupError>) -> i16 {
    e.as_ref().map_or(0, GroupError::code)
}

fn result_code(r: Result<(), GroupError>) -> i16 {
    r.err().map_or(0, |e| e.code())
}

impl GroupCoordinator {
    /// FindCoordinator: the leader of the group's offsets partition. The
    /// offsets topic is created on first use; until it has a leader the
    /// answer is COORDINATOR_NOT_AVAILABLE and clients retry.
    pub async fn find_coordinator(
        &self,
        version: i16,
        req: FindCoordinatorRequest,
        _client: &ClientInfo,
    ) -> FindCoordinatorResponse {
        let keys: Vec<StrBytes> = if version >= 4 {
            req.coordinator_keys.clone()
        } else {
            vec![req.key.clone()]
        };
        let found: Vec<(StrBytes, Located)> = keys
            .into_iter()
            .map(|k| {
                let r = self.locate(req.key_type, &k);
                (k, r)
            })
            .collect();
        let mut resp = FindCoordinatorResponse::default();
        if version >= 4 {
            resp.coordinators = found
                .into_iter()
                .map(|(key, r)| {
                    let mut c = Coordinator::default().with_key(key);
                    match r {
                        Ok((node, host, port)) => {
                            c.node_id = BrokerId(node);
                            c.host = s(host);
                            c.port = port;
                        }
                        Err(e) => {
                            c.node_id = BrokerId(-1);
                            c.port = -1;
                            c.error_code = e.code();
                            c.error_message = Some(s(e.to_string()));
                        }
                    }
                    c
                })
                .collect();
        } else {
            let (_, r) = found.into_iter().next().expect("one key");
            match r {
                Ok((node, host, port)) => {
                    resp.node_id = BrokerId(node);
                    resp.host = s(host);
                    resp.port = port;
                }
                Err(e) => {
                    resp.node_id = BrokerId(-1);
                    resp.port = -1;
                    resp.error_code = e.code();
                    if version >= 1 {
                        resp.error_message = Some(s(e.to_string()));
                    }
                }
            }
        }
        resp
    }

    fn locate(&self, key_type: i8, key: &str) -> Located {
        if key_type != KEY_TYPE_GROUP {
            return Err(GroupError::InvalidRequest(format!(
                "coordinator key type {key_type} is not supported: Rill coordinates consumer groups only (no transactions)"
            )));
        }
        let Some(partitions) = self.manager().topic_partitions(OFFSETS_TOPIC) else {
            self.ensure_offsets_topic();
            return Err(GroupError::CoordinatorNotAvailable(format!(
                "the offsets topic {OFFSETS_TOPIC} is being created"
            )));
        };
        let p = placement::partition_for(key, partitions);
        let leader = self.manager().leader_of(OFFSETS_TOPIC, p).ok_or_else(|| {
            GroupError::CoordinatorNotAvailable(format!("{OFFSETS_TOPIC}-{p} has no leader"))
        })?;
        let (host, port) = self.endpoint_of(leader).ok_or_else(|| {
            GroupError::CoordinatorNotAvailable(format!(
                "broker {leader} has no Kafka listener address"
            ))
        })?;
        Ok((leader, host, port))
    }

    /// JoinGroup: answered when the rebalance completes (or at once for
    /// errors and for members that only re-read the current generation).
    pub async fn join_group(
        &self,
        version: i16,
        req: JoinGroupRequest,
        client: &ClientInfo,
    ) -> JoinGroupResponse {
        let group_id = req.group_id.0.to_string();
        let member_id = req.member_id.to_string();
        let request = JoinRequest {
            member_id: member_id.clone(),
            instance_id: req.group_instance_id.map(|i| i.to_string()),
            protocol_type: req.protocol_type.to_string(),
            protocols: req
                .protocols
                .into_iter()
                .map(|p| Protocol {
                    name: p.name.to_string(),
                    metadata: p.metadata,
                })
                .collect(),
            session_timeout_ms: req.session_timeout_ms,
            rebalance_timeout_ms: if version == 0 || req.rebalance_timeout_ms < 0 {
                req.session_timeout_ms
            } else {
                req.rebalance_timeout_ms
            },
            client_id: client.client_id.clone(),
            client_host: client.client_host.clone(),
            require_known_member_id: version >= 4,
            supports_skip_assignment: version >= 9,
        };
        let reply = match self
            .park(&group_id, |t, now, id| t.join(now, id, &group_id, request))
            .await
        {
            Ok(Some(Reply::Join(r))) => r,
            Ok(Some(Reply::Sync(_))) | Ok(None) => {
                JoinReply::error(GroupError::NotCoordinator, member_id)
            }
            Err(e) => JoinReply::error(e, member_id),
        };
        join_response(version, reply)
    }

    /// SyncGroup: the leader's assignment is stored first; every member is
    /// answered with its share once it is.
    pub async fn sync_group(
        &self,
        version: i16,
        req: SyncGroupRequest,
        _client: &ClientInfo,
    ) -> SyncGroupResponse {
        let group_id = req.group_id.0.to_string();
        let request = SyncRequest {
            member_id: req.member_id.to_string(),
            instance_id: req.group_instance_id.map(|i| i.to_string()),
            generation: req.generation_id,
            protocol_type: req.protocol_type.map(|p| p.to_string()),
            protocol: req.protocol_name.map(|p| p.to_string()),
            assignments: req
                .assignments
                .into_iter()
                .map(|a| (a.member_id.to_string(), a.assignment))
                .collect(),
        };
        let reply = match self
            .park(&group_id, |t, now, id| t.sync(now, id, &group_id, request))
            .await
        {
            Ok(Some(Reply::Sync(r))) => r,
            Ok(Some(Reply::Join(_))) | Ok(None) => SyncReply::error(GroupError::NotCoordinator),
            Err(e) => SyncReply::error(e),
        };
        let mut resp = SyncGroupResponse::default()
            .with_error_code(code(&reply.error))
            .with_assignment(reply.assignment);
        if version >= 5 {
            resp.protocol_type = reply.protocol_type.map(s);
            resp.protocol_name = reply.protocol.map(s);
        }
        resp
    }

    /// Heartbeat.
    pub async fn heartbeat(
        &self,
        _version: i16,
        req: HeartbeatRequest,
        _client: &ClientInfo,
    ) -> HeartbeatResponse {
        let group_id = req.group_id.0.to_string();
        let member_id = req.member_id.to_string();
        let instance = req.group_instance_id.map(|i| i.to_string());
        let result = self
            .with_table(&group_id, |t, now| {
                let r = t.heartbeat(
                    now,
                    &group_id,
                    &member_id,
                    instance.as_deref(),
                    req.generation_id,
                );
                (r, Default::default())
            })
            .and_then(|r| r);
        HeartbeatResponse::default().with_error_code(result_code(result))
    }

    /// LeaveGroup: one member (v0-2) or several (v3+, by member id or by
    /// group.instance.id).
    pub async fn leave_group(
        &self,
        version: i16,
        req: LeaveGroupRequest,
        _client: &ClientInfo,
    ) -> LeaveGroupResponse {
        let group_id = req.group_id.0.to_string();
        let leaving: Vec<Leaving> = if version >= 3 {
            req.members
                .iter()
                .map(|m| Leaving {
                    member_id: m.member_id.to_string(),
                    instance_id: m.group_instance_id.as_ref().map(|i| i.to_string()),
                })
                .collect()
        } else {
            vec![Leaving {
                member_id: req.member_id.to_string(),
                instance_id: None,
            }]
        };
        let results = if group_id.is_empty() {
            Err(GroupError::InvalidGroupId(
                "the group id must not be empty".to_owned(),
            ))
        } else {
            self.with_table(&group_id, |t, now| t.leave(now, &group_id, &leaving))
        };
        let mut resp = LeaveGroupResponse::default();
        match results {
            Err(e) => resp.error_code = e.code(),
            Ok(results) if version >= 3 => {
                resp.members = leaving
                    .into_iter()
                    .zip(results)
                    .map(|(l, r)| {
                        MemberResponse::default()
                            .with_member_id(s(l.member_id))
                            .with_group_instance_id(l.instance_id.map(s))
                            .with_error_code(result_code(r))
                    })
                    .collect();
            }
            Ok(results) => {
                resp.error_code = results.into_iter().next().map_or(0, result_code);
            }
        }
        resp
    }

    /// OffsetCommit: checked against the group (generation, member; a
    /// negative generation commits for groups without members), written
    /// with acks=all, then visible to OffsetFetch.
    pub async fn offset_commit(
        &self,
        version: i16,
        req: OffsetCommitRequest,
        _client: &ClientInfo,
    ) -> OffsetCommitResponse {
        let group_id = req.group_id.0.to_string();
        let member_id = req.member_id.to_string();
        let instance = req.group_instance_id.as_ref().map(|i| i.to_string());
        let generation = req.generation_id_or_member_epoch;
        let now = super::coordinator::now_ms();
        let max_metadata = self.settings().limits.max_metadata_bytes;

        // Per partition: an error decided before writing, or the offset to write.
        let mut outcome: Vec<(TopicName, PartitionChecks)> = Vec::new();
        let mut to_write: Vec<((String, i32), CommittedOffset)> = Vec::new();
        for t in &req.topics {
            let topic = t.name.0.to_string();
            let known = self.manager().topic_partitions(&topic);
            let mut parts = Vec::new();
            for p in &t.partitions {
                let metadata = p
                    .committed_metadata
                    .as_ref()
                    .map(|m| m.to_string())
                    .unwrap_or_default();
                let check = if known.is_none_or(|n| p.partition_index < 0 || p.partition_index >= n)
                {
                    Err(GroupError::UnknownTopicOrPartition(format!(
                        "{topic}-{}",
                        p.partition_index
                    )))
                } else if metadata.len() > max_metadata {
                    Err(GroupError::OffsetMetadataTooLarge {
                        size: metadata.len(),
                        max: max_metadata,
                    })
                } else {
                    to_write.push((
                        (topic.clone(), p.partition_index),
                        CommittedOffset {
                            offset: p.committed_offset,
                            leader_epoch: if version >= 6 {
                                p.committed_leader_epoch
                            } else {
                                -1
                            },
                            metadata,
                            commit_timestamp: now,
                        },
                    ));
                    Ok(())
                };
                parts.push((p.partition_index, check));
            }
            outcome.push((t.name.clone(), parts));
        }

        let written = if to_write.is_empty() {
            Ok(())
        } else {
            match self.commit_offsets(
                &group_id,
                &member_id,
                instance.as_deref(),
                generation,
                to_write,
            ) {
                Ok(rx) => rx.await.unwrap_or(Err(GroupError::NotCoordinator)),
                Err(e) => Err(e),
            }
        };
        if written.is_ok() {
            self.count_commit();
        }
        let topics = outcome
            .into_iter()
            .map(|(name, parts)| {
                let partitions = parts
                    .into_iter()
                    .map(|(index, check)| {
                        let r = check.and_then(|()| written.clone());
                        OffsetCommitResponsePartition::default()
                            .with_partition_index(index)
                            .with_error_code(result_code(r))
                    })
                    .collect();
                OffsetCommitResponseTopic::default()
                    .with_name(name)
                    .with_partitions(partitions)
            })
            .collect();
        OffsetCommitResponse::default().with_topics(topics)
    }

    /// OffsetFetch: one group (v1-7) or several (v8+); all committed
    /// partitions when no topics are named. Offsets not committed read as
    /// -1. `require_stable` needs nothing: Rill has no pending
    /// transactional offsets.
    pub async fn offset_fetch(
        &self,
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
            let r = self.with_table(&id, |t, _| {
                (t.committed(&id, wanted.as_deref()), Default::default())
            });
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
                                            parts
                                                .into_iter()
                                                .map(|(p, o)| fetched_v8(p, o))
                                                .collect(),
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
            match r {
                Ok(found) => {
                    resp.topics = found
                        .into_iter()
                        .map(|(topic, parts)| {
                            OffsetFetchResponseTopic::default()
                                .with_name(TopicName(s(topic)))
                                .with_partitions(
                                    parts
                                        .into_iter()
                                        .map(|(p, o)| fetched(version, p, o, 0))
                                        .collect(),
                                )
                        })
                        .collect()
                }
                // v1 has no group-level error: every asked partition carries it.
                Err(e) if version < 2 => {
                    resp.topics = wanted
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(topic, parts)| {
                            OffsetFetchResponseTopic::default()
                                .with_name(TopicName(s(topic)))
                                .with_partitions(
                                    parts
                                        .into_iter()
                                        .map(|p| fetched(version, p, None, e.code()))
                                        .collect(),
                                )
                        })
                        .collect()
                }
                Err(e) => resp.error_code = e.code(),
            }
        }
        resp
    }

    /// ListGroups: the groups this broker coordinates, filtered by state
    /// (v4+) and type (v5+; every Rill group is "classic").
    pub async fn list_groups(
        &self,
        version: i16,
        req: ListGroupsRequest,
        _client: &ClientInfo,
    ) -> ListGroupsResponse {
        let (groups, loading) = self.list_all();
        let states: Vec<String> = req
            .states_filter
            .iter()
            .map(|f| f.to_ascii_lowercase())
            .collect();
        let types_ok = req.types_filter.is_empty()
            || req
                .types_filter
                .iter()
                .any(|t| t.eq_ignore_ascii_case(CLASSIC));
        let mut resp = ListGroupsResponse::default();
        if loading {
            resp.error_code = GroupError::LoadInProgress.code();
        }
        if !types_ok {
            return resp;
        }
        resp.groups = groups
            .into_iter()
            .filter(|g| {
                states.is_empty() || states.contains(&g.state.as_str().to_ascii_lowercase())
            })
            .map(|g| {
                let mut l = ListedGroup::default()
                    .with_group_id(GroupId(s(g.group_id)))
                    .with_protocol_type(s(g.protocol_type));
                if version >= 4 {
                    l.group_state = s(g.state.as_str());
                }
                if version >= 5 {
                    l.group_type = s(CLASSIC);
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
        &self,
        version: i16,
        req: DescribeGroupsRequest,
        _client: &ClientInfo,
    ) -> DescribeGroupsResponse {
        let groups = req
            .groups
            .into_iter()
            .map(|group| {
                let id = group.0.to_string();
                let r = self.with_table(&id, |t, _| (t.describe(&id), Default::default()));
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
        &self,
        _version: i16,
        req: DeleteGroupsRequest,
        _client: &ClientInfo,
    ) -> DeleteGroupsResponse {
        let mut results = Vec::new();
        for group in req.groups_names {
            let id = group.0.to_string();
            let r = match self.delete_group(&id) {
                Ok(rx) => rx.await.unwrap_or(Err(GroupError::NotCoordinator)),
                Err(e) => Err(e),
            };
            results.push(
                DeletableGroupResult::default()
                    .with_group_id(group)
                    .with_error_code(result_code(r)),
            );
        }
        DeleteGroupsResponse::default().with_results(results)
    }

    fn count_commit(&self) {
        self.metrics().group_offset_commits.inc();
    }
}

fn join_response(version: i16, r: JoinReply) -> JoinGroupResponse {
    let mut resp = JoinGroupResponse::default()
        .with_error_code(code(&r.error))
        .with_generation_id(r.generation)
        .with_leader(s(r.leader))
        .with_member_id(s(r.member_id))
        .with_members(
            r.members
                .into_iter()
                .map(|m| {
                    let mut jm = JoinGroupResponseMember::default()
                        .with_member_id(s(m.member_id))
                        .with_metadata(m.metadata);
                    if version >= 5 {
                        jm.group_instance_id = m.instance_id.map(s);
                    }
                    jm
                })
                .collect(),
        );
    resp.protocol_name = match r.protocol {
        Some(p) => Some(s(p)),
        // Before v7 the protocol name is not nullable.
        None if version < 7 => Some(StrBytes::new()),
        None => None,
    };
    if version >= 7 {
        resp.protocol_type = r.protocol_type.map(s);
    }
    if version >= 9 {
        resp.skip_assignment = r.skip_assignment;
    }
    resp
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
