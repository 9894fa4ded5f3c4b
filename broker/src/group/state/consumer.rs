//! The consumer group protocol of KIP-848 as a pure state machine. There
//! is no join or sync phase: each member heartbeats (ConsumerGroupHeartbeat)
//! with its subscription and the partitions it owns, and the coordinator
//! answers with its member epoch and the partitions it may own now.
//!
//! - **Group epoch and target assignment.** A change of a subscription, of
//!   the membership, or of a subscribed topic's partitions makes the
//!   coordinator run the group's assignor (`uniform` or `range`,
//!   [`super::assignor`]). When the target assignment changes, the group
//!   epoch is bumped and the target carries that epoch.
//! - **Reconciliation, one member at a time.** A member behind the target
//!   first gives up what the target takes from it: it is told its
//!   assignment without those partitions, keeps its epoch, and must say in
//!   a later heartbeat that it no longer owns them (within its rebalance
//!   timeout, else it is removed). Then it moves to the target epoch and
//!   gets every target partition no other member still owns; the others
//!   follow, at a later heartbeat, once their owners released them. No
//!   member ever stops for the others: nothing is stop-the-world.
//! - **Epochs fence zombies.** A heartbeat with an epoch other than the
//!   member's (or its previous one, when the answer was lost) gets
//!   FENCED_MEMBER_EPOCH; the member gives up its partitions and joins
//!   again with epoch 0.
//! - **Heartbeat interval.** While some member is not reconciled the
//!   interval is short, so partitions move as fast as members answer; once
//!   the group is stable it is the configured interval.
//!
//! Every change is returned as records for the offsets topic
//! ([`crate::group::records::consumer`]), from which
//! [`ConsumerGroup::from_records`] rebuilds the group on another broker.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use uuid::Uuid;

use super::assignor::{self, MemberSpec, Partitions};
use super::consumer_classic::ClassicMember;
use super::*;
use crate::group::error::GroupError;
use crate::group::records::consumer::{ClassicMetadata, MemberAssignment, MemberMetadata};
use crate::group::records::{ConsumerKey, ConsumerValue};

/// Epoch of a member joining (or rejoining after being fenced).
pub const JOIN_EPOCH: i32 = 0;
/// Epoch of a member leaving the group.
pub const LEAVE_EPOCH: i32 = -1;
/// Epoch of a static member leaving for a restart: its partitions wait
/// for it until its session expires.
pub const STATIC_LEAVE_EPOCH: i32 = -2;

/// The topics a coordinator can see: name -> (id, partition count).
pub trait TopicCatalog {
    fn topic(&self, name: &str) -> Option<(Uuid, i32)>;
    /// Every topic name (regex subscriptions match against these).
    fn names(&self) -> Vec<String>;
}

impl TopicCatalog for BTreeMap<String, (Uuid, i32)> {
    fn topic(&self, name: &str) -> Option<(Uuid, i32)> {
        self.get(name).copied()
    }

    fn names(&self) -> Vec<String> {
        self.keys().cloned().collect()
    }
}

/// A member's reconciliation state (Kafka's codes in records).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    /// At the target epoch with everything the target gives it.
    Stable,
    /// Must give up `pending_revocation` before it moves on.
    UnrevokedPartitions,
    /// At the target epoch, waiting for partitions others still own.
    UnreleasedPartitions,
}

impl MemberState {
    fn code(self) -> i8 {
        match self {
            Self::Stable => 0,
            Self::UnrevokedPartitions => 1,
            Self::UnreleasedPartitions => 2,
        }
    }

    fn from_code(code: i8) -> Self {
        match code {
            1 => Self::UnrevokedPartitions,
            2 => Self::UnreleasedPartitions,
            _ => Self::Stable,
        }
    }
}

/// A member of a consumer group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerMember {
    pub id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_names: BTreeSet<String>,
    pub subscribed_regex: Option<String>,
    pub server_assignor: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub epoch: i32,
    pub previous_epoch: i32,
    pub state: MemberState,
    /// What it owns now.
    pub assigned: Partitions,
    /// What it must give up before it moves on.
    pub pending_revocation: Partitions,
    /// The member epoch at which it got each partition it owns.
    pub(super) assigned_epochs: HashMap<(Uuid, i32), i32>,
    pub(super) session_deadline: i64,
    /// When a member that has not revoked yet is removed.
    pub(super) revoke_deadline: Option<i64>,
    /// Set for a member of the classic protocol (online upgrade).
    pub classic: Option<ClassicMember>,
}

impl ConsumerMember {
    /// A member at `epoch` that owns nothing, subscribes to nothing yet and
    /// speaks the consumer protocol; callers fill in the rest.
    pub(super) fn new(id: &str, client_id: &str, client_host: &str, epoch: i32) -> Self {
        Self {
            id: id.to_owned(),
            instance_id: None,
            rack_id: None,
            client_id: client_id.to_owned(),
            client_host: client_host.to_owned(),
            subscribed_names: BTreeSet::new(),
            subscribed_regex: None,
            server_assignor: None,
            rebalance_timeout_ms: 300_000,
            epoch,
            previous_epoch: epoch,
            state: MemberState::Stable,
            assigned: Partitions::new(),
            pending_revocation: Partitions::new(),
            assigned_epochs: HashMap::new(),
            session_deadline: 0,
            revoke_deadline: None,
            classic: None,
        }
    }

    fn metadata(&self) -> MemberMetadata {
        MemberMetadata {
            instance_id: self.instance_id.clone(),
            rack_id: self.rack_id.clone(),
            client_id: self.client_id.clone(),
            client_host: self.client_host.clone(),
            subscribed_names: self.subscribed_names.iter().cloned().collect(),
            subscribed_regex: self.subscribed_regex.clone(),
            server_assignor: self.server_assignor.clone(),
            rebalance_timeout_ms: self.rebalance_timeout_ms,
            classic: self.classic.as_ref().map(|c| ClassicMetadata {
                session_timeout_ms: c.session_timeout_ms,
                protocols: c
                    .protocols
                    .iter()
                    .map(|p| (p.name.clone(), p.metadata.clone()))
                    .collect(),
            }),
        }
    }

    fn assignment(&self) -> MemberAssignment {
        MemberAssignment {
            epoch: self.epoch,
            previous_epoch: self.previous_epoch,
            state: self.state.code(),
            assigned: self.assigned.clone(),
            pending_revocation: self.pending_revocation.clone(),
        }
    }
}

/// The state of a consumer-protocol group.
#[derive(Debug, Clone, Default)]
pub struct ConsumerGroup {
    pub(super) epoch: i32,
    pub(super) assignment_epoch: i32,
    pub(super) members: BTreeMap<String, ConsumerMember>,
    pub(super) target: BTreeMap<String, Partitions>,
    /// The subscribed topics as of the last target computation.
    pub(super) subscribed: BTreeMap<String, (Uuid, i32)>,
    /// The target must be computed again (membership changed, or the
    /// group was just loaded and its topics are not known yet).
    pub(super) stale_target: bool,
    /// Which member owns each partition (assigned or pending revocation).
    owners: HashMap<(Uuid, i32), String>,
}

/// A ConsumerGroupHeartbeat, versions resolved.
#[derive(Debug, Clone, Default)]
pub struct ConsumerHeartbeat {
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    /// -1: unchanged.
    pub rebalance_timeout_ms: i32,
    /// `None`: unchanged.
    pub subscribed_names: Option<Vec<String>>,
    pub subscribed_regex: Option<String>,
    pub server_assignor: Option<String>,
    /// `None`: unchanged since the last heartbeat.
    pub owned: Option<Partitions>,
    pub client_id: String,
    pub client_host: String,
}

/// The answer to a ConsumerGroupHeartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerHeartbeatReply {
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// Sent when it changed, or when the member sent a full request.
    pub assignment: Option<Partitions>,
}

/// A member as ConsumerGroupDescribe shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerMemberDescription {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub member_epoch: i32,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_names: Vec<String>,
    pub subscribed_regex: Option<String>,
    pub assignment: Partitions,
    pub target: Partitions,
    /// A member of the classic protocol.
    pub classic: bool,
}

/// A group as ConsumerGroupDescribe shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupDescription {
    pub state: &'static str,
    pub epoch: i32,
    pub assignment_epoch: i32,
    pub assignor: String,
    pub members: Vec<ConsumerMemberDescription>,
}

pub(super) fn difference(a: &Partitions, b: &Partitions) -> Partitions {
    let mut out = Partitions::new();
    for (t, ps) in a {
        let rest: BTreeSet<i32> = match b.get(t) {
            Some(other) => ps.difference(other).copied().collect(),
            None => ps.clone(),
        };
        if !rest.is_empty() {
            out.insert(*t, rest);
        }
    }
    out
}

pub(super) fn intersection(a: &Partitions, b: &Partitions) -> Partitions {
    let mut out = Partitions::new();
    for (t, ps) in a {
        if let Some(other) = b.get(t) {
            let both: BTreeSet<i32> = ps.intersection(other).copied().collect();
            if !both.is_empty() {
                out.insert(*t, both);
            }
        }
    }
    out
}

pub(super) fn pairs(p: &Partitions) -> impl Iterator<Item = (Uuid, i32)> + '_ {
    p.iter()
        .flat_map(|(t, ps)| ps.iter().map(move |p| (*t, *p)))
}

fn is_subset(a: &Partitions, b: &Partitions) -> bool {
    difference(a, b).is_empty()
}

/// Writes of a consumer group's records.
pub(super) type Writes = Vec<(ConsumerKey, Option<ConsumerValue>)>;

impl ConsumerGroup {
    /// The group's state as Kafka names it.
    pub fn state_name(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.stale_target {
            "Assigning"
        } else if self.members.values().any(|m| {
            m.epoch != self.assignment_epoch && m.epoch != STATIC_LEAVE_EPOCH
                || m.state != MemberState::Stable
        }) {
            "Reconciling"
        } else {
            "Stable"
        }
    }

    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    pub fn member(&self, id: &str) -> Option<&ConsumerMember> {
        self.members.get(id)
    }

    /// The assignor the group runs: the one most members ask for, else
    /// `uniform`.
    fn assignor(&self) -> &'static str {
        let mut votes: BTreeMap<&'static str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some(name) = &m.server_assignor
                && let Some(known) = assignor::ASSIGNORS.iter().find(|a| **a == name.as_str())
            {
                *votes.entry(known).or_default() += 1;
            }
        }
        let best = votes.values().copied().max().unwrap_or(0);
        assignor::ASSIGNORS
            .into_iter()
            .find(|a| best > 0 && votes.get(a) == Some(&best))
            .unwrap_or(assignor::UNIFORM)
    }

    /// The topics a member subscribes to that exist, by name.
    pub(super) fn member_topics(
        m: &ConsumerMember,
        catalog: &dyn TopicCatalog,
        names: &mut Option<Vec<String>>,
    ) -> BTreeMap<String, (Uuid, i32)> {
        let mut out = BTreeMap::new();
        for n in &m.subscribed_names {
            if let Some(t) = catalog.topic(n) {
                out.insert(n.clone(), t);
            }
        }
        if let Some(re) = m
            .subscribed_regex
            .as_deref()
            .and_then(|r| regex::Regex::new(&format!("^(?:{r})$")).ok())
        {
            for n in names.get_or_insert_with(|| catalog.names()) {
                if !n.starts_with("__")
                    && re.is_match(n)
                    && let Some(t) = catalog.topic(n)
                {
                    out.insert(n.clone(), t);
                }
            }
        }
        out
    }

    /// Computes the target again when something it depends on changed;
    /// when it differs, bumps the group epoch.
    pub(super) fn refresh_target(
        &mut self,
        group: &str,
        catalog: &dyn TopicCatalog,
        w: &mut Writes,
    ) {
        let mut names = None;
        let per_member: BTreeMap<String, BTreeMap<String, (Uuid, i32)>> = self
            .members
            .iter()
            .map(|(id, m)| (id.clone(), Self::member_topics(m, catalog, &mut names)))
            .collect();
        let subscribed: BTreeMap<String, (Uuid, i32)> = per_member
            .values()
            .flat_map(|t| t.iter().map(|(n, v)| (n.clone(), *v)))
            .collect();
        if subscribed == self.subscribed && !self.stale_target {
            return;
        }
        self.subscribed = subscribed;
        self.stale_target = false;
        let specs: BTreeMap<String, MemberSpec> = per_member
            .into_iter()
            .map(|(id, topics)| {
                let m = &self.members[&id];
                let spec = MemberSpec {
                    topics: topics.values().map(|(t, _)| *t).collect(),
                    previous: self.target.get(&id).cloned().unwrap_or_default(),
                    instance_id: m.instance_id.clone(),
                };
                (id, spec)
            })
            .collect();
        let counts: BTreeMap<Uuid, i32> = self.subscribed.values().copied().collect();
        let target = assignor::assign(self.assignor(), &specs, &counts);
        if target == self.target && self.assignment_epoch == self.epoch && self.epoch > 0 {
            return;
        }
        self.epoch += 1;
        self.assignment_epoch = self.epoch;
        w.push((
            ConsumerKey::Epoch {
                group: group.to_owned(),
            },
            Some(ConsumerValue::Epoch(self.epoch)),
        ));
        for (id, parts) in &target {
            if self.target.get(id) != Some(parts) {
                w.push((
                    ConsumerKey::Target {
                        group: group.to_owned(),
                        member: id.clone(),
                    },
                    Some(ConsumerValue::Target(parts.clone())),
                ));
            }
        }
        w.push((
            ConsumerKey::TargetEpoch {
                group: group.to_owned(),
            },
            Some(ConsumerValue::TargetEpoch(self.assignment_epoch)),
        ));
        self.target = target;
    }

    /// The member owning a partition (assigned or pending revocation).
    pub(super) fn owner(&self, tp: &(Uuid, i32)) -> Option<&String> {
        self.owners.get(tp)
    }

    /// Installs a member's new assignment, keeping the owner map current;
    /// partitions it did not own before are owned from `epoch`.
    pub(super) fn set_assignment(
        &mut self,
        id: &str,
        assigned: Partitions,
        pending: Partitions,
        epoch: i32,
    ) {
        let m = self.members.get_mut(id).expect("member");
        let held: std::collections::HashSet<(Uuid, i32)> =
            pairs(&assigned).chain(pairs(&pending)).collect();
        m.assigned_epochs.retain(|tp, _| held.contains(tp));
        for tp in &held {
            m.assigned_epochs.entry(*tp).or_insert(epoch);
        }
        for tp in pairs(&m.assigned).chain(pairs(&m.pending_revocation)) {
            if self.owners.get(&tp).is_some_and(|o| o == id) {
                self.owners.remove(&tp);
            }
        }
        for tp in pairs(&assigned).chain(pairs(&pending)) {
            self.owners.insert(tp, id.to_owned());
        }
        m.assigned = assigned;
        m.pending_revocation = pending;
    }

    /// Moves member `id` towards the target (see the module docs). Returns
    /// whether its assignment, epoch or state changed.
    pub(super) fn reconcile(&mut self, id: &str, owned: Option<&Partitions>, now: i64) -> bool {
        let m = &self.members[id];
        if m.epoch == STATIC_LEAVE_EPOCH {
            return false;
        }
        let before = (
            m.epoch,
            m.state,
            m.assigned.clone(),
            m.pending_revocation.clone(),
        );
        match m.state {
            MemberState::UnrevokedPartitions => {
                let revoked =
                    owned.is_some_and(|o| intersection(o, &m.pending_revocation).is_empty());
                if !revoked {
                    return false;
                }
                let (kept, epoch) = (m.assigned.clone(), m.epoch);
                self.set_assignment(id, kept, Partitions::new(), epoch);
                self.members.get_mut(id).expect("member").revoke_deadline = None;
            }
            _ if m.epoch == self.assignment_epoch && m.state == MemberState::Stable => {
                return false;
            }
            _ => {}
        }
        let target = self.target.get(id).cloned().unwrap_or_default();
        let m = &self.members[id];
        let keep = intersection(&m.assigned, &target);
        let revoke = difference(&m.assigned, &target);
        if !revoke.is_empty() {
            let deadline = now + i64::from(m.rebalance_timeout_ms.max(0));
            let epoch = m.epoch;
            self.set_assignment(id, keep, revoke, epoch);
            let m = self.members.get_mut(id).expect("member");
            m.state = MemberState::UnrevokedPartitions;
            m.revoke_deadline = Some(deadline);
        } else {
            let mut assigned = keep;
            let mut unreleased = false;
            for (t, p) in pairs(&difference(&target, &assigned)) {
                match self.owners.get(&(t, p)) {
                    Some(owner) if owner != id => unreleased = true,
                    _ => {
                        assigned.entry(t).or_default().insert(p);
                    }
                }
            }
            let epoch = self.assignment_epoch;
            self.set_assignment(id, assigned, Partitions::new(), epoch);
            let m = self.members.get_mut(id).expect("member");
            if m.epoch != epoch {
                m.previous_epoch = m.epoch;
                m.epoch = epoch;
            }
            m.state = if unreleased {
                MemberState::UnreleasedPartitions
            } else {
                MemberState::Stable
            };
        }
        let m = &self.members[id];
        before
            != (
                m.epoch,
                m.state,
                m.assigned.clone(),
                m.pending_revocation.clone(),
            )
    }

    /// Removes a member and releases its partitions; the target is
    /// computed again at the next heartbeat.
    pub(super) fn remove(&mut self, group: &str, id: &str, w: &mut Writes) {
        if !self.members.contains_key(id) {
            return;
        }
        self.set_assignment(id, Partitions::new(), Partitions::new(), 0);
        self.members.remove(id);
        self.target.remove(id);
        self.stale_target = true;
        for key in [
            ConsumerKey::Member {
                group: group.to_owned(),
                member: id.to_owned(),
            },
            ConsumerKey::Target {
                group: group.to_owned(),
                member: id.to_owned(),
            },
            ConsumerKey::Assignment {
                group: group.to_owned(),
                member: id.to_owned(),
            },
        ] {
            w.push((key, None));
        }
    }

    pub(super) fn write_member(&self, group: &str, id: &str, w: &mut Writes) {
        w.push((
            ConsumerKey::Member {
                group: group.to_owned(),
                member: id.to_owned(),
            },
            Some(ConsumerValue::Member(self.members[id].metadata())),
        ));
    }

    pub(super) fn write_assignment(&self, group: &str, id: &str, w: &mut Writes) {
        w.push((
            ConsumerKey::Assignment {
                group: group.to_owned(),
                member: id.to_owned(),
            },
            Some(ConsumerValue::Assignment(self.members[id].assignment())),
        ));
    }

    /// Whether every member is reconciled.
    fn settled(&self) -> bool {
        self.state_name() == "Stable" || self.members.is_empty()
    }

    /// One heartbeat (see the module docs). Returns the answer and the
    /// records to write before it is sent.
    pub(super) fn heartbeat(
        &mut self,
        group: &str,
        now: i64,
        req: ConsumerHeartbeat,
        limits: &Limits,
        catalog: &dyn TopicCatalog,
    ) -> Result<(ConsumerHeartbeatReply, Writes), GroupError> {
        let mut w = Writes::new();
        if let Some(a) = &req.server_assignor
            && !assignor::ASSIGNORS.contains(&a.as_str())
        {
            return Err(GroupError::UnsupportedAssignor(a.clone()));
        }
        if let Some(re) = &req.subscribed_regex
            && let Err(e) = regex::Regex::new(re)
        {
            return Err(GroupError::InvalidRegex(format!("{re:?}: {e}")));
        }
        let epoch = req.member_epoch;
        if epoch == LEAVE_EPOCH || epoch == STATIC_LEAVE_EPOCH {
            return self.leave(group, req, now, limits, w);
        }
        if epoch < 0 {
            return Err(GroupError::InvalidRequest(format!(
                "member epoch {epoch} is not valid"
            )));
        }
        let full = epoch == JOIN_EPOCH
            || (req.rebalance_timeout_ms != -1
                && (req.subscribed_names.is_some() || req.subscribed_regex.is_some())
                && req.owned.is_some());
        let id = if epoch == JOIN_EPOCH {
            self.join(group, &req, now, limits, &mut w)?
        } else {
            let Some(m) = self.members.get(&req.member_id) else {
                return Err(GroupError::UnknownMemberId(req.member_id));
            };
            if m.epoch == STATIC_LEAVE_EPOCH || m.classic.is_some() {
                return Err(GroupError::UnknownMemberId(req.member_id));
            }
            let lost_answer = epoch == m.previous_epoch
                && req
                    .owned
                    .as_ref()
                    .is_some_and(|o| is_subset(o, &m.assigned));
            if epoch != m.epoch && !lost_answer {
                return Err(GroupError::FencedMemberEpoch {
                    given: epoch,
                    current: m.epoch,
                });
            }
            if req.instance_id.is_some() && req.instance_id != m.instance_id {
                return Err(GroupError::FencedInstanceId(
                    req.instance_id.clone().unwrap_or_default(),
                ));
            }
            let id = req.member_id.clone();
            if self.update_member(&id, &req) {
                self.write_member(group, &id, &mut w);
            }
            id
        };
        let session = i64::from(limits.consumer_session_timeout_ms);
        self.members.get_mut(&id).expect("member").session_deadline = now + session;
        let before = self.members[&id].assigned.clone();
        self.refresh_target(group, catalog, &mut w);
        if self.reconcile(&id, req.owned.as_ref(), now) || epoch == JOIN_EPOCH {
            self.write_assignment(group, &id, &mut w);
        }
        let m = &self.members[&id];
        let changed = m.assigned != before;
        let interval = if self.settled() {
            limits.consumer_heartbeat_interval_ms
        } else {
            limits
                .consumer_reconcile_heartbeat_interval_ms
                .min(limits.consumer_heartbeat_interval_ms)
        };
        Ok((
            ConsumerHeartbeatReply {
                member_id: id.clone(),
                member_epoch: m.epoch,
                heartbeat_interval_ms: interval,
                assignment: (full || changed).then(|| m.assigned.clone()),
            },
            w,
        ))
    }

    /// A member joining with epoch 0: new, rejoining after being fenced,
    /// or a static member coming back. Returns its id.
    fn join(
        &mut self,
        group: &str,
        req: &ConsumerHeartbeat,
        now: i64,
        limits: &Limits,
        w: &mut Writes,
    ) -> Result<String, GroupError> {
        if req.subscribed_names.is_none() && req.subscribed_regex.is_none() {
            return Err(GroupError::InvalidRequest(
                "a joining member must send its subscription".to_owned(),
            ));
        }
        if req.owned.as_ref().is_some_and(|o| !o.is_empty()) {
            return Err(GroupError::InvalidRequest(
                "a joining member must not own partitions".to_owned(),
            ));
        }
        let id = if req.member_id.is_empty() {
            uuid::Uuid::new_v4().to_string()
        } else {
            req.member_id.clone()
        };
        // A static member taking its place back.
        let mut inherited = None;
        if let Some(instance) = &req.instance_id
            && let Some(old) = self
                .members
                .values()
                .find(|m| m.instance_id.as_deref() == Some(instance))
            && old.id != id
        {
            if old.epoch != STATIC_LEAVE_EPOCH {
                return Err(GroupError::UnreleasedInstanceId(instance.clone()));
            }
            let old_id = old.id.clone();
            let kept = (
                old.previous_epoch,
                old.assigned.clone(),
                old.pending_revocation.clone(),
                old.state,
                self.target.get(&old_id).cloned(),
            );
            self.remove(group, &old_id, w);
            // Its place is taken, not given up: no new target for it.
            self.stale_target = false;
            inherited = Some(kept);
        }
        if let Some(m) = self.members.get(&id) {
            if m.epoch == STATIC_LEAVE_EPOCH {
                // The same member id coming back from a static leave.
                let m = self.members.get_mut(&id).expect("member");
                m.epoch = m.previous_epoch;
            } else {
                // Fenced (or lost its state, or a classic member now
                // speaking the consumer protocol): it owns nothing now.
                self.set_assignment(&id, Partitions::new(), Partitions::new(), 0);
                let m = self.members.get_mut(&id).expect("member");
                m.classic = None;
                m.previous_epoch = m.epoch;
                m.epoch = JOIN_EPOCH;
                m.state = MemberState::Stable;
                m.revoke_deadline = None;
            }
        } else {
            if self.members.len() >= limits.max_size {
                return Err(GroupError::GroupMaxSizeReached(limits.max_size));
            }
            if id.len() > 256 {
                return Err(GroupError::InvalidRequest(
                    "the member id is longer than 256 bytes".to_owned(),
                ));
            }
            self.members.insert(
                id.clone(),
                ConsumerMember {
                    instance_id: req.instance_id.clone(),
                    session_deadline: now,
                    ..ConsumerMember::new(&id, &req.client_id, &req.client_host, JOIN_EPOCH)
                },
            );
            if let Some((epoch, assigned, pending, state, target)) = inherited {
                self.set_assignment(&id, assigned, pending, epoch);
                let m = self.members.get_mut(&id).expect("member");
                m.epoch = epoch;
                m.previous_epoch = epoch;
                m.state = state;
                if let Some(t) = target {
                    self.target.insert(id.clone(), t.clone());
                    w.push((
                        ConsumerKey::Target {
                            group: group.to_owned(),
                            member: id.clone(),
                        },
                        Some(ConsumerValue::Target(t)),
                    ));
                }
            } else {
                self.stale_target = true;
            }
        }
        self.update_member(&id, req);
        let m = self.members.get_mut(&id).expect("member");
        m.client_id = req.client_id.clone();
        m.client_host = req.client_host.clone();
        self.write_member(group, &id, w);
        Ok(id)
    }

    /// Applies what a heartbeat changes of a member's subscription;
    /// returns whether anything changed.
    fn update_member(&mut self, id: &str, req: &ConsumerHeartbeat) -> bool {
        let m = self.members.get_mut(id).expect("member");
        let before = m.metadata();
        if let Some(names) = &req.subscribed_names {
            m.subscribed_names = names.iter().cloned().collect();
        }
        if let Some(re) = &req.subscribed_regex {
            m.subscribed_regex = (!re.is_empty()).then(|| re.clone());
        }
        if let Some(a) = &req.server_assignor {
            m.server_assignor = Some(a.clone());
        }
        if req.rebalance_timeout_ms != -1 {
            m.rebalance_timeout_ms = req.rebalance_timeout_ms;
        }
        if req.rack_id.is_some() {
            m.rack_id = req.rack_id.clone();
        }
        if req.instance_id.is_some() {
            m.instance_id = req.instance_id.clone();
        }
        let changed = m.metadata() != before;
        let subscription_changed = m.subscribed_names.iter().ne(before.subscribed_names.iter())
            || m.subscribed_regex != before.subscribed_regex
            || m.server_assignor != before.server_assignor;
        if subscription_changed {
            self.stale_target = true;
        }
        changed
    }

    fn leave(
        &mut self,
        group: &str,
        req: ConsumerHeartbeat,
        now: i64,
        limits: &Limits,
        mut w: Writes,
    ) -> Result<(ConsumerHeartbeatReply, Writes), GroupError> {
        let Some(m) = self.members.get_mut(&req.member_id) else {
            return Err(GroupError::UnknownMemberId(req.member_id));
        };
        if req.member_epoch == STATIC_LEAVE_EPOCH && m.instance_id.is_some() {
            // Kept, with its partitions, until its session expires.
            m.previous_epoch = m.epoch;
            m.epoch = STATIC_LEAVE_EPOCH;
            m.session_deadline = now + i64::from(limits.consumer_session_timeout_ms);
            self.write_assignment(group, &req.member_id, &mut w);
        } else {
            self.remove(group, &req.member_id, &mut w);
        }
        Ok((
            ConsumerHeartbeatReply {
                member_id: req.member_id,
                member_epoch: req.member_epoch,
                heartbeat_interval_ms: 0,
                assignment: None,
            },
            w,
        ))
    }

    /// Removes members whose session expired or that did not revoke in
    /// time. Returns the records to write.
    pub(super) fn tick(&mut self, group: &str, now: i64) -> Writes {
        let mut w = Writes::new();
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| m.session_deadline <= now || m.revoke_deadline.is_some_and(|d| d <= now))
            .map(|m| m.id.clone())
            .collect();
        for id in gone {
            self.remove(group, &id, &mut w);
        }
        w
    }

    /// An OffsetCommit (or TxnOffsetCommit) of `partitions` by a member: it
    /// must exist and commit in its current epoch, or in an older one for
    /// partitions it has owned since then (KIP-1251: a commit sent just
    /// before a heartbeat moved its epoch on). A negative epoch without a
    /// member id commits for an empty group only (an admin tool).
    pub(super) fn validate_commit(
        &self,
        member_id: &str,
        epoch: i32,
        partitions: &[(String, i32)],
    ) -> Result<(), GroupError> {
        if epoch < 0 && member_id.is_empty() && self.members.is_empty() {
            return Ok(());
        }
        let Some(m) = self.members.get(member_id) else {
            return Err(GroupError::UnknownMemberId(member_id.to_owned()));
        };
        if m.classic.is_some() && epoch != m.epoch {
            return Err(GroupError::IllegalGeneration {
                given: epoch,
                current: m.epoch,
            });
        }
        if epoch > m.epoch {
            return Err(GroupError::FencedMemberEpoch {
                given: epoch,
                current: m.epoch,
            });
        }
        let owned_since = |(topic, partition): &(String, i32)| {
            self.subscribed
                .get(topic)
                .and_then(|(id, _)| m.assigned_epochs.get(&(*id, *partition)))
                .is_some_and(|since| *since <= epoch)
        };
        if epoch < m.epoch && (partitions.is_empty() || !partitions.iter().all(owned_since)) {
            return Err(GroupError::StaleMemberEpoch {
                given: epoch,
                current: m.epoch,
            });
        }
        Ok(())
    }

    /// The topic names every member subscribes to (OffsetDelete keeps their
    /// offsets).
    pub(super) fn subscribed_topics(&self) -> BTreeSet<String> {
        let mut out: BTreeSet<String> = self.subscribed.keys().cloned().collect();
        for m in self.members.values() {
            out.extend(m.subscribed_names.iter().cloned());
        }
        out
    }

    pub fn describe(&self) -> ConsumerGroupDescription {
        ConsumerGroupDescription {
            state: self.state_name(),
            epoch: self.epoch,
            assignment_epoch: self.assignment_epoch,
            assignor: self.assignor().to_owned(),
            members: self
                .members
                .values()
                .map(|m| ConsumerMemberDescription {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    rack_id: m.rack_id.clone(),
                    member_epoch: m.epoch,
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    subscribed_names: m.subscribed_names.iter().cloned().collect(),
                    subscribed_regex: m.subscribed_regex.clone(),
                    assignment: m.assigned.clone(),
                    target: self.target.get(&m.id).cloned().unwrap_or_default(),
                    classic: m.classic.is_some(),
                })
                .collect(),
        }
    }

    /// The keys every consumer group has besides its members' (tombstoned
    /// when the group goes).
    pub(super) fn group_keys(group: &str) -> [ConsumerKey; 2] {
        [
            ConsumerKey::Epoch {
                group: group.to_owned(),
            },
            ConsumerKey::TargetEpoch {
                group: group.to_owned(),
            },
        ]
    }

    /// Rebuilds a group from its latest records (key -> value). Members get
    /// a full session to find the new coordinator.
    pub(super) fn from_records(
        records: BTreeMap<ConsumerKey, ConsumerValue>,
        now: i64,
        limits: &Limits,
    ) -> Self {
        let mut g = Self {
            stale_target: true,
            ..Self::default()
        };
        let mut assignments = Vec::new();
        for (key, value) in records {
            match (key, value) {
                (ConsumerKey::Epoch { .. }, ConsumerValue::Epoch(e)) => g.epoch = e,
                (ConsumerKey::TargetEpoch { .. }, ConsumerValue::TargetEpoch(e)) => {
                    g.assignment_epoch = e
                }
                (ConsumerKey::Member { member, .. }, ConsumerValue::Member(m)) => {
                    g.members.insert(
                        member.clone(),
                        ConsumerMember {
                            instance_id: m.instance_id,
                            rack_id: m.rack_id,
                            subscribed_names: m.subscribed_names.into_iter().collect(),
                            subscribed_regex: m.subscribed_regex,
                            server_assignor: m.server_assignor,
                            rebalance_timeout_ms: m.rebalance_timeout_ms,
                            session_deadline: now
                                + i64::from(
                                    m.classic
                                        .as_ref()
                                        .map_or(limits.consumer_session_timeout_ms, |c| {
                                            c.session_timeout_ms
                                        }),
                                ),
                            revoke_deadline: None,
                            classic: m.classic.map(|c| ClassicMember {
                                session_timeout_ms: c.session_timeout_ms,
                                protocols: c
                                    .protocols
                                    .into_iter()
                                    .map(|(name, metadata)| Protocol { name, metadata })
                                    .collect(),
                            }),
                            ..ConsumerMember::new(&member, &m.client_id, &m.client_host, JOIN_EPOCH)
                        },
                    );
                }
                (ConsumerKey::Target { member, .. }, ConsumerValue::Target(p)) => {
                    g.target.insert(member, p);
                }
                (ConsumerKey::Assignment { member, .. }, ConsumerValue::Assignment(a)) => {
                    assignments.push((member, a));
                }
                _ => {}
            }
        }
        for (member, a) in assignments {
            if !g.members.contains_key(&member) {
                continue;
            }
            g.set_assignment(&member, a.assigned, a.pending_revocation, a.epoch);
            let m = g.members.get_mut(&member).expect("member");
            m.epoch = a.epoch;
            m.previous_epoch = a.previous_epoch;
            m.state = MemberState::from_code(a.state);
            if m.state == MemberState::UnrevokedPartitions {
                m.revoke_deadline = Some(now + i64::from(m.rebalance_timeout_ms.max(0)));
            }
        }
        g.target.retain(|id, _| g.members.contains_key(id));
        g
    }
}

#[cfg(test)]
mod tests;
