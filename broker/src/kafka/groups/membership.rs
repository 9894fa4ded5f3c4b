//! FindCoordinator, JoinGroup, SyncGroup, Heartbeat and LeaveGroup over
//! the [`GroupCoordinator`].

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{
    BrokerId, FindCoordinatorRequest, FindCoordinatorResponse, HeartbeatRequest, HeartbeatResponse,
    JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse, SyncGroupRequest,
    SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::{GroupErrorCode, code, result_code, s};
use crate::group::state::{JoinReply, JoinRequest, Leaving, Protocol, SyncRequest};
use crate::group::{ClientInfo, GroupCoordinator, GroupError};
use crate::kafka::{KafkaContext, split_host_port};

/// A coordinator found for a key: (node id, host, port).
type Located = Result<(i32, String, i32), GroupError>;

/// FindCoordinator key types.
const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

/// FindCoordinator: for a group the leader of its offsets partition, for a
/// transactional id the leader of its `__transaction_state` partition.
/// Each topic is created on first use; until it has a leader the answer is
/// COORDINATOR_NOT_AVAILABLE and clients retry.
pub async fn find_coordinator(
    ctx: &KafkaContext,
    version: i16,
    req: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let coordinators = Coordinators {
        manager: &ctx.manager,
        groups: ctx.groups.as_deref(),
        txns: ctx.txns.as_deref(),
        listener: ctx.listener.as_deref(),
    };
    find_coordinator_in(&coordinators, version, req)
}

/// The coordinators FindCoordinator looks in, and the listener whose
/// addresses it answers with.
pub struct Coordinators<'a> {
    pub manager: &'a crate::partition::manager::ReplicaManager,
    pub groups: Option<&'a GroupCoordinator>,
    pub txns: Option<&'a crate::txn::TxnCoordinator>,
    pub listener: Option<&'a str>,
}

/// [`find_coordinator`] over explicit coordinators.
pub fn find_coordinator_in(
    ctx: &Coordinators<'_>,
    version: i16,
    req: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let keys: Vec<StrBytes> = if version >= 4 {
        req.coordinator_keys.clone()
    } else {
        vec![req.key.clone()]
    };
    let found: Vec<(StrBytes, Located)> = keys
        .into_iter()
        .map(|k| {
            let r = locate(ctx, req.key_type, &k);
            (k, r)
        })
        .collect();
    let mut resp = FindCoordinatorResponse::default();
    if version >= 4 {
        resp.coordinators = found
            .into_iter()
            .map(|(key, r)| {
                let f = Found::from(r);
                let mut c = Coordinator::default()
                    .with_key(key)
                    .with_node_id(f.node_id)
                    .with_host(f.host)
                    .with_port(f.port)
                    .with_error_code(f.error_code);
                if f.error_message.is_some() {
                    c.error_message = f.error_message;
                }
                c
            })
            .collect();
    } else {
        let (_, r) = found.into_iter().next().expect("one key");
        let f = Found::from(r);
        resp.node_id = f.node_id;
        resp.host = f.host;
        resp.port = f.port;
        resp.error_code = f.error_code;
        if version >= 1 && f.error_message.is_some() {
            resp.error_message = f.error_message;
        }
    }
    resp
}

/// A FindCoordinator answer for one key, in the fields every version has.
struct Found {
    node_id: BrokerId,
    host: StrBytes,
    port: i32,
    error_code: i16,
    /// Set on errors only; otherwise the response keeps its default.
    error_message: Option<StrBytes>,
}

impl From<Located> for Found {
    fn from(located: Located) -> Self {
        match located {
            Ok((node, host, port)) => Self {
                node_id: BrokerId(node),
                host: s(host),
                port,
                error_code: 0,
                error_message: None,
            },
            Err(e) => Self {
                node_id: BrokerId(-1),
                host: StrBytes::default(),
                port: -1,
                error_code: e.code(),
                error_message: Some(s(e.to_string())),
            },
        }
    }
}

/// The coordinator of `key` and where Kafka clients reach it.
fn locate(ctx: &Coordinators<'_>, key_type: i8, key: &str) -> Located {
    let unavailable = |what: &str| {
        GroupError::CoordinatorNotAvailable(format!("this broker runs no {what} coordinator"))
    };
    let leader = match key_type {
        KEY_TYPE_GROUP => ctx
            .groups
            .ok_or_else(|| unavailable("group"))?
            .locate(key)?,
        KEY_TYPE_TRANSACTION => ctx
            .txns
            .ok_or_else(|| unavailable("transaction"))?
            .locate(key)
            .map_err(|e| GroupError::CoordinatorNotAvailable(e.message))?,
        other => {
            return Err(GroupError::InvalidRequest(format!(
                "coordinator key type {other} is not supported (0: group, 1: transaction)"
            )));
        }
    };
    let (host, port) = ctx
        .manager
        .kafka_address(leader, ctx.listener)
        .and_then(|address| split_host_port(&address))
        .ok_or_else(|| {
            GroupError::CoordinatorNotAvailable(format!(
                "broker {leader} has no Kafka listener address"
            ))
        })?;
    Ok((leader, host, port))
}

/// JoinGroup: answered when the rebalance completes (or at once for
/// errors and for members that only re-read the current generation).
pub async fn join_group(
    coordinator: &GroupCoordinator,
    version: i16,
    req: JoinGroupRequest,
    client: &ClientInfo,
) -> JoinGroupResponse {
    let group_id = req.group_id.0.to_string();
    let request = JoinRequest {
        member_id: req.member_id.to_string(),
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
    let reply = coordinator.join(&group_id, request).await;
    join_response(version, reply)
}

/// SyncGroup: the leader's assignment is stored first; every member is
/// answered with its share once it is.
pub async fn sync_group(
    coordinator: &GroupCoordinator,
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
    let reply = coordinator.sync(&group_id, request).await;
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
    coordinator: &GroupCoordinator,
    _version: i16,
    req: HeartbeatRequest,
    _client: &ClientInfo,
) -> HeartbeatResponse {
    let group_id = req.group_id.0.to_string();
    let member_id = req.member_id.to_string();
    let instance = req.group_instance_id.map(|i| i.to_string());
    let result = coordinator.heartbeat(
        &group_id,
        &member_id,
        instance.as_deref(),
        req.generation_id,
    );
    HeartbeatResponse::default().with_error_code(result_code(result))
}

/// LeaveGroup: one member (v0-2) or several (v3+, by member id or by
/// group.instance.id).
pub async fn leave_group(
    coordinator: &GroupCoordinator,
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
    let results = coordinator.leave(&group_id, &leaving);
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
