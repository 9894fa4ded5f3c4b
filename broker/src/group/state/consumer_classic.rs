//! Classic members in consumer-protocol groups: Kafka's online upgrade.
//! A consumer group with members of the classic protocol (JoinGroup,
//! SyncGroup, Heartbeat) next to members of the consumer protocol, so a
//! group can move from one protocol to the other one member at a time.
//!
//! - **Upgrade.** When a consumer-protocol member joins a Stable classic
//!   group of consumers, the group becomes a consumer group: its classic
//!   members stay, with their subscriptions and assignments, at an epoch
//!   equal to the classic generation; the new member's arrival then gives
//!   the group a new target.
//! - **A classic member's requests** drive the same reconciliation as a
//!   heartbeat of the consumer protocol. JoinGroup carries its subscription
//!   and the partitions it still owns (an eager member has given up all of
//!   them, a cooperative one only those it was asked to), and is answered at
//!   once with the member's epoch as the generation and no leader, so the
//!   client computes no assignment; SyncGroup answers with its assignment.
//!   Its Heartbeat gets REBALANCE_IN_PROGRESS whenever it should join again:
//!   its epoch is behind the target, it must give up partitions, or
//!   partitions it waits for were released. Its session is its classic
//!   session timeout.
//! - **Commits** of a classic member carry its epoch as the generation;
//!   another one is ILLEGAL_GENERATION.
//!
//! A classic member's session timeout and protocols are stored with its
//! other records (the tagged ClassicMemberMetadata of Kafka's member
//! record), so it stays classic across a coordinator failover. A group of
//! classic members only does not go back to the classic protocol while it
//! has members.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTopic;
use kafka_protocol::messages::{ConsumerProtocolAssignment, ConsumerProtocolSubscription};
use kafka_protocol::protocol::{Decodable, Encodable, Message, StrBytes};
use uuid::Uuid;

use super::consumer::{ConsumerGroup, ConsumerMember, MemberState, TopicCatalog, Writes};
use super::*;
use crate::group::error::GroupError;
use crate::group::records::{ConsumerKey, ConsumerValue};

/// What makes a member of a consumer group a classic one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassicMember {
    pub session_timeout_ms: i32,
    /// Its protocols (assignors) with their metadata, in preference order.
    pub protocols: Vec<Protocol>,
}

/// A ConsumerProtocol subscription: topics and the partitions the member
/// still owns (v1+).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Subscription {
    pub topics: Vec<String>,
    pub owned: Vec<(String, i32)>,
}

pub(super) fn decode_subscription(metadata: &Bytes) -> Option<Subscription> {
    let mut buf = metadata.clone();
    if buf.remaining() < 2 {
        return None;
    }
    let version = buf
        .get_i16()
        .clamp(0, ConsumerProtocolSubscription::VERSIONS.max);
    let s = ConsumerProtocolSubscription::decode(&mut buf, version).ok()?;
    Some(Subscription {
        topics: s.topics.iter().map(|t| t.to_string()).collect(),
        owned: s
            .owned_partitions
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(move |p| (t.topic.0.to_string(), *p))
            })
            .collect(),
    })
}

pub(super) fn decode_assignment(raw: &Bytes) -> Option<Vec<(String, i32)>> {
    let mut buf = raw.clone();
    if buf.remaining() < 2 {
        return Some(Vec::new());
    }
    let version = buf
        .get_i16()
        .clamp(0, ConsumerProtocolAssignment::VERSIONS.max);
    let a = ConsumerProtocolAssignment::decode(&mut buf, version).ok()?;
    Some(
        a.assigned_partitions
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(move |p| (t.topic.0.to_string(), *p))
            })
            .collect(),
    )
}

pub(super) fn encode_assignment(parts: &[(String, Vec<i32>)]) -> Bytes {
    let a = ConsumerProtocolAssignment::default().with_assigned_partitions(
        parts
            .iter()
            .map(|(t, ps)| {
                AssignedTopic::default()
                    .with_topic(kafka_protocol::messages::TopicName(StrBytes::from_string(
                        t.clone(),
                    )))
                    .with_partitions(ps.clone())
            })
            .collect(),
    );
    let mut buf = BytesMut::new();
    buf.put_i16(0);
    a.encode(&mut buf, 0)
        .expect("an assignment encodes at version 0");
    buf.freeze()
}

impl ConsumerGroup {
    /// Topic ids of `names` that exist.
    fn ids_of(catalog: &dyn TopicCatalog, parts: &[(String, i32)]) -> super::assignor::Partitions {
        let mut out = super::assignor::Partitions::new();
        for (t, p) in parts {
            if let Some((id, _)) = catalog.topic(t) {
                out.entry(id).or_default().insert(*p);
            }
        }
        out
    }

    /// The topic names of this group's subscribed topics, by id.
    fn name_of(&self, id: &Uuid) -> Option<&str> {
        self.subscribed
            .iter()
            .find(|(_, (i, _))| i == id)
            .map(|(n, _)| n.as_str())
    }

    /// A Stable classic group of consumers, as a consumer group (see the
    /// module docs); `None` when a member's subscription or assignment
    /// cannot be read. Returns the records of every member.
    pub(super) fn from_classic(
        g: &Group,
        now: i64,
        catalog: &dyn TopicCatalog,
    ) -> Option<(Self, Writes)> {
        let protocol = g.protocol.clone()?;
        let mut c = ConsumerGroup::default();
        c.epoch = g.generation;
        c.assignment_epoch = g.generation;
        for m in g.members.values() {
            let sub = decode_subscription(&m.metadata_for(&protocol))?;
            let assigned = Self::ids_of(catalog, &decode_assignment(&m.assignment)?);
            let mut protocols = m.protocols.clone();
            // The selected protocol first: it is the one answered on join.
            protocols.sort_by_key(|p| p.name != protocol);
            c.members.insert(
                m.id.clone(),
                ConsumerMember {
                    instance_id: m.instance_id.clone(),
                    subscribed_names: sub.topics.into_iter().collect(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_deadline: now + i64::from(m.session_timeout_ms),
                    classic: Some(ClassicMember {
                        session_timeout_ms: m.session_timeout_ms,
                        protocols,
                    }),
                    ..ConsumerMember::new(&m.id, &m.client_id, &m.client_host, g.generation)
                },
            );
            c.target.insert(m.id.clone(), assigned.clone());
            c.set_assignment(&m.id, assigned, Default::default(), g.generation);
        }
        let mut names = None;
        c.subscribed = c
            .members
            .values()
            .flat_map(|m| Self::member_topics(m, catalog, &mut names))
            .collect();
        let mut w = Writes::new();
        let group = g.id.as_str();
        for id in c.members.keys() {
            c.write_member(group, id, &mut w);
            w.push((
                ConsumerKey::Target {
                    group: group.to_owned(),
                    member: id.clone(),
                },
                Some(ConsumerValue::Target(c.target[id].clone())),
            ));
            c.write_assignment(group, id, &mut w);
        }
        for (key, value) in [
            (
                ConsumerKey::Epoch {
                    group: group.to_owned(),
                },
                ConsumerValue::Epoch(c.epoch),
            ),
            (
                ConsumerKey::TargetEpoch {
                    group: group.to_owned(),
                },
                ConsumerValue::TargetEpoch(c.assignment_epoch),
            ),
        ] {
            w.push((key, Some(value)));
        }
        Some((c, w))
    }

    /// A classic member's JoinGroup (see the module docs). The reply has
    /// the member's epoch as the generation and no leader.
    pub(super) fn classic_join(
        &mut self,
        group: &str,
        now: i64,
        req: &JoinRequest,
        limits: &Limits,
        catalog: &dyn TopicCatalog,
    ) -> Result<(JoinReply, Writes), GroupError> {
        if req.protocol_type != CONSUMER_PROTOCOL_TYPE || req.protocols.is_empty() {
            return Err(GroupError::InconsistentGroupProtocol);
        }
        let protocol = req.protocols[0].clone();
        let sub = decode_subscription(&protocol.metadata).ok_or_else(|| {
            GroupError::InvalidRequest("the member's subscription cannot be read".to_owned())
        })?;
        let mut w = Writes::new();
        let id = if req.member_id.is_empty() {
            let id = format!("{}-{}", req.client_id, uuid::Uuid::new_v4());
            if req.require_known_member_id {
                return Ok((
                    JoinReply::error(GroupError::MemberIdRequired, id),
                    Writes::new(),
                ));
            }
            id
        } else {
            req.member_id.clone()
        };
        match self.members.get(&id) {
            Some(m) if m.classic.is_none() => {
                return Err(GroupError::InconsistentGroupProtocol);
            }
            Some(_) => {}
            None => {
                if self.members.len() >= limits.max_size {
                    return Err(GroupError::GroupMaxSizeReached(limits.max_size));
                }
                self.members.insert(
                    id.clone(),
                    ConsumerMember {
                        instance_id: req.instance_id.clone(),
                        rebalance_timeout_ms: req.rebalance_timeout_ms,
                        session_deadline: now,
                        ..ConsumerMember::new(&id, &req.client_id, &req.client_host, 0)
                    },
                );
                self.stale_target = true;
            }
        }
        let m = self.members.get_mut(&id).expect("member");
        let before = m.subscribed_names.clone();
        m.subscribed_names = sub.topics.iter().cloned().collect();
        m.rebalance_timeout_ms = req.rebalance_timeout_ms;
        m.client_id = req.client_id.clone();
        m.client_host = req.client_host.clone();
        m.classic = Some(ClassicMember {
            session_timeout_ms: req.session_timeout_ms,
            protocols: req.protocols.clone(),
        });
        m.session_deadline = now + i64::from(req.session_timeout_ms);
        if m.subscribed_names != before {
            self.stale_target = true;
        }
        // It owns only what it says it still owns.
        let owned = Self::ids_of(catalog, &sub.owned);
        let (assigned, pending, epoch) = {
            let m = &self.members[&id];
            (
                super::consumer::intersection(&m.assigned, &owned),
                super::consumer::intersection(&m.pending_revocation, &owned),
                m.epoch,
            )
        };
        self.set_assignment(&id, assigned, pending, epoch);
        self.write_member(group, &id, &mut w);
        self.refresh_target(group, catalog, &mut w);
        self.reconcile(&id, Some(&owned), now);
        self.write_assignment(group, &id, &mut w);
        let m = &self.members[&id];
        Ok((
            JoinReply {
                error: None,
                member_id: id.clone(),
                generation: m.epoch,
                protocol_type: Some(CONSUMER_PROTOCOL_TYPE.to_owned()),
                protocol: Some(protocol.name),
                leader: String::new(),
                skip_assignment: false,
                members: Vec::new(),
            },
            w,
        ))
    }

    fn classic_member(&self, id: &str) -> Result<&ConsumerMember, GroupError> {
        match self.members.get(id) {
            Some(m) if m.classic.is_some() => Ok(m),
            _ => Err(GroupError::UnknownMemberId(id.to_owned())),
        }
    }

    /// A classic member's SyncGroup: its assignment.
    pub(super) fn classic_sync(
        &mut self,
        now: i64,
        req: &SyncRequest,
    ) -> Result<SyncReply, GroupError> {
        let m = self.classic_member(&req.member_id)?;
        if req.generation != m.epoch {
            return Err(GroupError::IllegalGeneration {
                given: req.generation,
                current: m.epoch,
            });
        }
        let protocol = m
            .classic
            .as_ref()
            .and_then(|c| c.protocols.first())
            .map(|p| p.name.clone());
        let parts: Vec<(String, Vec<i32>)> = m
            .assigned
            .iter()
            .filter_map(|(t, ps)| {
                self.name_of(t)
                    .map(|n| (n.to_owned(), ps.iter().copied().collect()))
            })
            .collect();
        let timeout = m.classic.as_ref().map_or(0, |c| c.session_timeout_ms);
        self.members
            .get_mut(&req.member_id)
            .expect("member")
            .session_deadline = now + i64::from(timeout);
        Ok(SyncReply {
            error: None,
            protocol_type: Some(CONSUMER_PROTOCOL_TYPE.to_owned()),
            protocol,
            assignment: encode_assignment(&parts),
        })
    }

    /// A classic member's Heartbeat: REBALANCE_IN_PROGRESS when it should
    /// join again.
    pub(super) fn classic_heartbeat(
        &mut self,
        now: i64,
        member_id: &str,
        generation: i32,
    ) -> Result<(), GroupError> {
        let m = self.classic_member(member_id)?;
        if generation != m.epoch {
            return Err(GroupError::IllegalGeneration {
                given: generation,
                current: m.epoch,
            });
        }
        let timeout = m.classic.as_ref().map_or(0, |c| c.session_timeout_ms);
        let rejoin = self.stale_target
            || m.epoch != self.assignment_epoch
            || m.state == MemberState::UnrevokedPartitions
            || (m.state == MemberState::UnreleasedPartitions && self.can_take_more(member_id));
        self.members
            .get_mut(member_id)
            .expect("member")
            .session_deadline = now + i64::from(timeout);
        if rejoin {
            return Err(GroupError::RebalanceInProgress);
        }
        Ok(())
    }

    /// Whether a target partition of `id` that it lacks is free now.
    fn can_take_more(&self, id: &str) -> bool {
        let m = &self.members[id];
        let Some(target) = self.target.get(id) else {
            return false;
        };
        super::consumer::pairs(&super::consumer::difference(target, &m.assigned))
            .any(|tp| self.owner(&tp).is_none_or(|o| o == id))
    }

    /// A classic member leaving.
    pub(super) fn classic_leave(
        &mut self,
        group: &str,
        member_id: &str,
        w: &mut Writes,
    ) -> Result<(), GroupError> {
        self.classic_member(member_id)?;
        self.remove(group, member_id, w);
        Ok(())
    }
}
