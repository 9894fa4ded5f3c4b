//! One consumer group: its members, its state and generation, what is
//! stored of it in the offsets topic and how it is rebuilt from there.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bytes::Bytes;

use super::*;
use crate::group::error::GroupError;
use crate::group::records::{CommittedOffset, GroupValue, MemberValue};

/// A member of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    /// In the member's order of preference.
    pub protocols: Vec<Protocol>,
    pub assignment: Bytes,
    /// Its parked JoinGroup.
    pub(super) join_waiter: Option<RequestId>,
    /// Its parked SyncGroup.
    pub(super) sync_waiter: Option<RequestId>,
    /// When its session expires without a heartbeat.
    pub(super) session_deadline: i64,
}

impl Member {
    pub(super) fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|p| p.name == protocol)
            .map(|p| p.metadata.clone())
            .unwrap_or_default()
    }

    pub(super) fn touch(&mut self, now: i64) {
        self.session_deadline = now + i64::from(self.session_timeout_ms);
    }
}

/// The delayed first rebalance of a group that was Empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct InitialDelay {
    /// What is left of the rebalance timeout for further extensions.
    pub(super) remaining_ms: i64,
}

/// One consumer group.
#[derive(Debug, Clone)]
pub struct Group {
    pub(super) id: String,
    pub(super) state: GroupState,
    /// When the group entered its state (ms).
    pub(super) state_timestamp: i64,
    /// Set by the first member; kept while Empty (tools list it).
    pub(super) protocol_type: Option<String>,
    /// The protocol selected for the current generation.
    pub(super) protocol: Option<String>,
    pub(super) generation: i32,
    pub(super) leader: Option<String>,
    pub(super) members: BTreeMap<String, Member>,
    /// group.instance.id -> member id.
    pub(super) static_members: HashMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED -> when they lapse.
    pub(super) pending_members: HashMap<String, i64>,
    /// Members of this generation that have not sent SyncGroup yet.
    pub(super) pending_sync: BTreeSet<String>,
    /// PreparingRebalance: when the join phase ends regardless.
    pub(super) join_deadline: Option<i64>,
    /// Set while the first rebalance after Empty is being delayed.
    pub(super) initial_delay: Option<InitialDelay>,
    /// A member arrived during the initial delay: extend it once more.
    pub(super) new_member_added: bool,
    /// When members still in `pending_sync` are removed.
    pub(super) sync_deadline: Option<i64>,
    /// The leader's assignment while it is being written.
    pub(super) pending_assignment: Option<BTreeMap<String, Bytes>>,
    pub(super) offsets: BTreeMap<(String, i32), CommittedOffset>,
    /// Set when the group speaks the consumer protocol (KIP-848); its
    /// classic membership is then empty.
    pub(super) consumer: Option<Box<ConsumerGroup>>,
    /// Set when the group is a share group (KIP-932).
    pub(super) share: Option<Box<ShareGroup>>,
}

pub(super) fn new_member_id(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4())
}

/// The protocol type of Kafka's consumers (their subscriptions and
/// assignments are in Kafka's ConsumerProtocol format).
pub const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

/// The topics of a ConsumerProtocol subscription (an int16 version, then
/// the subscription); `None` when it cannot be read.
fn subscription_topics(metadata: &Bytes) -> Option<Vec<String>> {
    use bytes::Buf;
    use kafka_protocol::messages::ConsumerProtocolSubscription;
    use kafka_protocol::protocol::{Decodable, Message};
    let mut buf = metadata.clone();
    if buf.remaining() < 2 {
        return None;
    }
    // A newer version only adds fields after those read here.
    let version = buf
        .get_i16()
        .min(ConsumerProtocolSubscription::VERSIONS.max);
    let subscription = ConsumerProtocolSubscription::decode(&mut buf, version.max(0)).ok()?;
    Some(
        subscription
            .topics
            .into_iter()
            .map(|t| t.to_string())
            .collect(),
    )
}

impl Group {
    /// The topics the members of the current generation subscribe to;
    /// `None` when a subscription cannot be read or no protocol is
    /// selected yet.
    pub(super) fn subscribed_topics(&self) -> Option<BTreeSet<String>> {
        let protocol = self.protocol.as_deref()?;
        let mut topics = BTreeSet::new();
        for m in self.members.values() {
            topics.extend(subscription_topics(&m.metadata_for(protocol))?);
        }
        Some(topics)
    }

    pub(super) fn new(id: &str, now: i64) -> Self {
        Self {
            id: id.to_owned(),
            state: GroupState::Empty,
            state_timestamp: now,
            protocol_type: None,
            protocol: None,
            generation: 0,
            leader: None,
            members: BTreeMap::new(),
            static_members: HashMap::new(),
            pending_members: HashMap::new(),
            pending_sync: BTreeSet::new(),
            join_deadline: None,
            initial_delay: None,
            new_member_added: false,
            sync_deadline: None,
            pending_assignment: None,
            offsets: BTreeMap::new(),
            consumer: None,
            share: None,
        }
    }

    pub fn state(&self) -> GroupState {
        self.state
    }

    pub fn generation(&self) -> i32 {
        self.generation
    }

    pub fn leader(&self) -> Option<&str> {
        self.leader.as_deref()
    }

    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    pub fn offsets(&self) -> &BTreeMap<(String, i32), CommittedOffset> {
        &self.offsets
    }

    pub(super) fn transition(&mut self, state: GroupState, now: i64) {
        self.state = state;
        self.state_timestamp = now;
    }

    pub(super) fn is_fenced(&self, instance_id: Option<&str>, member_id: &str) -> bool {
        instance_id
            .and_then(|i| self.static_members.get(i))
            .is_some_and(|current| current != member_id)
    }

    /// FENCED_INSTANCE_ID when another member holds `instance_id`.
    pub(super) fn check_fenced(
        &self,
        instance_id: Option<&str>,
        member_id: &str,
    ) -> Result<(), GroupError> {
        if self.is_fenced(instance_id, member_id) {
            return Err(GroupError::FencedInstanceId(
                instance_id.unwrap_or_default().to_owned(),
            ));
        }
        Ok(())
    }

    /// Whether a member with these protocols may join.
    pub(super) fn supports(&self, protocol_type: &str, protocols: &[Protocol]) -> bool {
        if self.state == GroupState::Empty {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        if self.protocol_type.as_deref() != Some(protocol_type) {
            return false;
        }
        let n = self.members.len();
        protocols.iter().any(|p| {
            self.members
                .values()
                .filter(|m| m.protocols.iter().any(|q| q.name == p.name))
                .count()
                == n
        })
    }

    /// The protocol every member supports that most members prefer.
    pub(super) fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: Vec<&str> = first
            .protocols
            .iter()
            .map(|p| p.name.as_str())
            .filter(|name| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|q| q.name == *name))
            })
            .collect();
        let mut votes: HashMap<&str, usize> = HashMap::new();
        for m in self.members.values() {
            if let Some(p) = m
                .protocols
                .iter()
                .find(|p| candidates.contains(&p.name.as_str()))
            {
                *votes.entry(p.name.as_str()).or_default() += 1;
            }
        }
        let mut best: Option<(&str, usize)> = None;
        for c in candidates {
            let v = votes.get(c).copied().unwrap_or(0);
            if best.is_none_or(|(_, b)| v > b) {
                best = Some((c, v));
            }
        }
        best.map(|(name, _)| name.to_owned())
    }

    pub(super) fn rebalance_timeout(&self) -> i64 {
        self.members
            .values()
            .map(|m| i64::from(m.rebalance_timeout_ms))
            .max()
            .unwrap_or(0)
    }

    pub(super) fn all_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.values().all(|m| m.join_waiter.is_some())
    }

    /// Every member's metadata for the selected protocol (the leader's
    /// JoinGroup answer).
    pub(super) fn joined_members(&self) -> Vec<JoinedMember> {
        let protocol = self.protocol.as_deref().unwrap_or_default();
        self.members
            .values()
            .map(|m| JoinedMember {
                member_id: m.id.clone(),
                instance_id: m.instance_id.clone(),
                metadata: m.metadata_for(protocol),
            })
            .collect()
    }

    pub(super) fn current_join_reply(&self, member_id: &str, with_members: bool) -> JoinReply {
        JoinReply {
            error: None,
            member_id: member_id.to_owned(),
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol: self.protocol.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            skip_assignment: false,
            members: if with_members {
                self.joined_members()
            } else {
                Vec::new()
            },
        }
    }

    /// The record that stores this group, with `assignments` instead of
    /// the members' current ones when given.
    pub fn value(&self, assignments: Option<&BTreeMap<String, Bytes>>) -> GroupValue {
        let protocol = self.protocol.as_deref().unwrap_or_default();
        GroupValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            state_timestamp: self.state_timestamp,
            members: self
                .members
                .values()
                .map(|m| MemberValue {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    subscription: m.metadata_for(protocol),
                    assignment: assignments
                        .map(|a| a.get(&m.id).cloned().unwrap_or_default())
                        .unwrap_or_else(|| m.assignment.clone()),
                })
                .collect(),
        }
    }

    pub(super) fn store(&self, fx: &mut Effects, after: AfterStore) {
        fx.stores.push(Store {
            group: self.id.clone(),
            value: self.value(None),
            after,
        });
    }

    /// Every parked request (to fail when the group is unloaded).
    pub(super) fn waiters(&self) -> Vec<(RequestId, Reply)> {
        let mut out = Vec::new();
        for m in self.members.values() {
            if let Some(w) = m.join_waiter {
                out.push((
                    w,
                    Reply::Join(JoinReply::error(GroupError::NotCoordinator, m.id.clone())),
                ));
            }
            if let Some(w) = m.sync_waiter {
                out.push((w, Reply::Sync(SyncReply::error(GroupError::NotCoordinator))));
            }
        }
        out
    }

    pub(super) fn describe(&self) -> GroupDescription {
        let stable = self.state == GroupState::Stable;
        let protocol = self.protocol.clone().unwrap_or_default();
        GroupDescription {
            state: self.state,
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            protocol: if stable {
                protocol.clone()
            } else {
                String::new()
            },
            generation: self.generation,
            members: self
                .members
                .values()
                .map(|m| MemberDescription {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable {
                        m.metadata_for(&protocol)
                    } else {
                        Bytes::new()
                    },
                    assignment: if stable {
                        m.assignment.clone()
                    } else {
                        Bytes::new()
                    },
                })
                .collect(),
        }
    }

    /// Whether nothing would be lost by forgetting the group.
    pub(super) fn is_unused(&self) -> bool {
        self.consumer.as_ref().is_none_or(|c| c.member_count() == 0)
            && self.state == GroupState::Empty
            && self.members.is_empty()
            && self.pending_members.is_empty()
            && self.offsets.is_empty()
    }

    /// A group rebuilt from its stored record (after a coordinator change).
    pub(super) fn from_value(id: &str, v: GroupValue, now: i64) -> Self {
        let mut g = Self::new(id, now);
        g.protocol_type = (!v.protocol_type.is_empty()).then_some(v.protocol_type);
        g.generation = v.generation;
        g.protocol = v.protocol;
        g.leader = v.leader;
        g.state_timestamp = if v.state_timestamp >= 0 {
            v.state_timestamp
        } else {
            now
        };
        let protocol = g.protocol.clone().unwrap_or_default();
        for m in v.members {
            if let Some(instance) = &m.instance_id {
                g.static_members
                    .insert(instance.clone(), m.member_id.clone());
            }
            let mut member = Member {
                id: m.member_id.clone(),
                instance_id: m.instance_id,
                client_id: m.client_id,
                client_host: m.client_host,
                session_timeout_ms: m.session_timeout_ms,
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                protocols: vec![Protocol {
                    name: protocol.clone(),
                    metadata: m.subscription,
                }],
                assignment: m.assignment,
                join_waiter: None,
                sync_waiter: None,
                session_deadline: 0,
            };
            // Members get a full session to find the new coordinator.
            member.touch(now);
            g.members.insert(m.member_id, member);
        }
        g.state = if g.members.is_empty() {
            GroupState::Empty
        } else {
            GroupState::Stable
        };
        g
    }
}
