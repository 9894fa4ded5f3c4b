//! The classic group protocol as a pure state machine: no I/O, no clock,
//! no tasks. Every call takes `now` (ms) and returns what the caller must
//! do: answer parked requests ([`Effects::replies`]) and write records to
//! the offsets topic ([`Effects::stores`], [`Effects::tombstones`]).
//!
//! A [`GroupTable`] holds the groups of one `__consumer_offsets` partition.
//! Each [`Group`] moves through Kafka's states:
//!
//! ```text
//!            join                    all joined / timeout         leader's SyncGroup stored
//!  Empty ----------> PreparingRebalance ----------> CompletingRebalance ----------> Stable
//!    ^                ^   |  (no member left)            |  join / leave / expiry      |
//!    +----------------|---+                              v                             |
//!                     +------------------------------ (rebalance) <--------------------+
//! ```
//!
//! JoinGroup requests are parked (their [`RequestId`] is kept on the
//! member) until the rebalance completes: when every member has rejoined,
//! or when the rebalance timeout (the largest of the members') passes, or,
//! for a group that was Empty, after `group.initial.rebalance.delay.ms`,
//! extended by the same delay while new members keep arriving (never past
//! the rebalance timeout). Members that did not rejoin are removed (static
//! members are kept until their session expires). The new generation's
//! leader gets every member's metadata, computes the assignment and sends it
//! with its SyncGroup; the assignment is written to the offsets topic, and
//! only then does every member's parked SyncGroup get its share.
//!
//! Sessions: a member that neither heartbeats nor commits within its
//! session timeout is removed, which starts a rebalance. Members with a
//! parked JoinGroup or SyncGroup are not expired (the rebalance and sync
//! deadlines bound those waits). A member that does not send SyncGroup
//! within the rebalance timeout after the join completed is removed too.
//!
//! Static membership (KIP-345): a member with a `group.instance.id` keeps
//! its place across restarts. When it rejoins with an unknown member id, it
//! takes over the old member id's place; in a Stable group whose selected
//! protocol does not change this causes no rebalance (the new member id is
//! written to the offsets topic first). Requests that name the instance id
//! with another member id get FENCED_INSTANCE_ID.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bytes::Bytes;

use super::error::GroupError;
use super::records::{CommittedOffset, GroupValue, MemberValue, RecordKey};

/// Committed offsets by topic: (partition, offset if any).
pub type TopicOffsets = Vec<(String, Vec<(i32, Option<CommittedOffset>)>)>;

/// Identifies a parked request so that its answer reaches it.
pub type RequestId = u64;

/// Limits and delays of the coordinator (broker flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// `group.initial.rebalance.delay.ms`: how long the first rebalance of
    /// an empty group waits for more members.
    pub initial_rebalance_delay_ms: i64,
    /// `group.min.session.timeout.ms`.
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`.
    pub max_session_timeout_ms: i32,
    /// `group.max.size`.
    pub max_size: usize,
    /// `offset.metadata.max.bytes`.
    pub max_metadata_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            initial_rebalance_delay_ms: 3_000,
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            max_size: i32::MAX as usize,
            max_metadata_bytes: 4_096,
        }
    }
}

/// Kafka's group states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// Every state, for metrics.
    pub const ALL: [GroupState; 5] = [
        Self::Empty,
        Self::PreparingRebalance,
        Self::CompletingRebalance,
        Self::Stable,
        Self::Dead,
    ];

    /// The name Kafka tools print and ListGroups filters on.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Empty => "Empty",
            Self::PreparingRebalance => "PreparingRebalance",
            Self::CompletingRebalance => "CompletingRebalance",
            Self::Stable => "Stable",
            Self::Dead => "Dead",
        }
    }
}

/// One protocol a member supports (for consumers: an assignor and its
/// subscription).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protocol {
    pub name: String,
    pub metadata: Bytes,
}

/// A JoinGroup request, version differences already resolved.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    /// Empty for a member joining for the first time.
    pub member_id: String,
    pub instance_id: Option<String>,
    pub protocol_type: String,
    pub protocols: Vec<Protocol>,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub client_id: String,
    pub client_host: String,
    /// JoinGroup v4+: a member without an id first gets one with
    /// MEMBER_ID_REQUIRED and must join again with it.
    pub require_known_member_id: bool,
    /// JoinGroup v9+: a static leader that rejoins a stable group is told
    /// to skip the assignment.
    pub supports_skip_assignment: bool,
}

/// A SyncGroup request.
#[derive(Debug, Clone)]
pub struct SyncRequest {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub generation: i32,
    /// v5+: must match the group's when given.
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    /// Sent by the leader: member id -> assignment.
    pub assignments: Vec<(String, Bytes)>,
}

/// A member in a JoinGroup answer to the leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub metadata: Bytes,
}

/// The answer to a JoinGroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinReply {
    pub error: Option<GroupError>,
    pub member_id: String,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: String,
    pub skip_assignment: bool,
    /// Every member's metadata, for the leader only.
    pub members: Vec<JoinedMember>,
}

impl JoinReply {
    pub fn error(error: GroupError, member_id: impl Into<String>) -> Self {
        Self {
            error: Some(error),
            member_id: member_id.into(),
            generation: -1,
            protocol_type: None,
            protocol: None,
            leader: String::new(),
            skip_assignment: false,
            members: Vec::new(),
        }
    }
}

/// The answer to a SyncGroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncReply {
    pub error: Option<GroupError>,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub assignment: Bytes,
}

impl SyncReply {
    pub fn error(error: GroupError) -> Self {
        Self {
            error: Some(error),
            protocol_type: None,
            protocol: None,
            assignment: Bytes::new(),
        }
    }
}

/// An answer to a parked request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Join(JoinReply),
    Sync(SyncReply),
}

impl Reply {
    /// The same kind of answer, carrying `error` instead.
    pub fn failed(&self, error: GroupError) -> Self {
        match self {
            Self::Join(j) => Self::Join(JoinReply::error(error, j.member_id.clone())),
            Self::Sync(_) => Self::Sync(SyncReply::error(error)),
        }
    }
}

/// What to do once a group's metadata is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterStore {
    /// Nothing waits for it.
    Nothing,
    /// The leader's assignment of `generation`: call
    /// [`GroupTable::assignment_stored`].
    Assignment { generation: i32 },
    /// A static member took over another member id: call
    /// [`GroupTable::static_member_stored`], which answers its JoinGroup.
    StaticMember(Box<StaticReplace>),
}

/// A static member replacement waiting for its write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticReplace {
    pub request: RequestId,
    pub reply: JoinReply,
    instance_id: String,
    old_member_id: String,
    new_member_id: String,
    old_protocols: Vec<Protocol>,
    old_session_timeout_ms: i32,
    old_rebalance_timeout_ms: i32,
}

/// A group metadata record to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Store {
    pub group: String,
    pub value: GroupValue,
    pub after: AfterStore,
}

/// What the caller must do after a call.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Effects {
    /// Answers to parked requests.
    pub replies: Vec<(RequestId, Reply)>,
    /// Group metadata to write.
    pub stores: Vec<Store>,
    /// Keys to delete (tombstones).
    pub tombstones: Vec<RecordKey>,
    /// Rebalances completed (new generations).
    pub rebalances: u64,
}

impl Effects {
    fn reply(&mut self, request: RequestId, reply: Reply) {
        self.replies.push((request, reply));
    }

    fn join_error(&mut self, request: RequestId, error: GroupError, member_id: &str) {
        self.reply(request, Reply::Join(JoinReply::error(error, member_id)));
    }

    fn sync_error(&mut self, request: RequestId, error: GroupError) {
        self.reply(request, Reply::Sync(SyncReply::error(error)));
    }
}

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
    join_waiter: Option<RequestId>,
    /// Its parked SyncGroup.
    sync_waiter: Option<RequestId>,
    /// When its session expires without a heartbeat.
    session_deadline: i64,
}

impl Member {
    fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|p| p.name == protocol)
            .map(|p| p.metadata.clone())
            .unwrap_or_default()
    }

    fn touch(&mut self, now: i64) {
        self.session_deadline = now + i64::from(self.session_timeout_ms);
    }
}

/// The delayed first rebalance of a group that was Empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct InitialDelay {
    /// What is left of the rebalance timeout for further extensions.
    remaining_ms: i64,
}

/// One consumer group.
#[derive(Debug, Clone)]
pub struct Group {
    id: String,
    state: GroupState,
    /// When the group entered its state (ms).
    state_timestamp: i64,
    /// Set by the first member; kept while Empty (tools list it).
    protocol_type: Option<String>,
    /// The protocol selected for the current generation.
    protocol: Option<String>,
    generation: i32,
    leader: Option<String>,
    members: BTreeMap<String, Member>,
    /// group.instance.id -> member id.
    static_members: HashMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED -> when they lapse.
    pending_members: HashMap<String, i64>,
    /// Members of this generation that have not sent SyncGroup yet.
    pending_sync: BTreeSet<String>,
    /// PreparingRebalance: when the join phase ends regardless.
    join_deadline: Option<i64>,
    /// Set while the first rebalance after Empty is being delayed.
    initial_delay: Option<InitialDelay>,
    /// A member arrived during the initial delay: extend it once more.
    new_member_added: bool,
    /// When members still in `pending_sync` are removed.
    sync_deadline: Option<i64>,
    /// The leader's assignment while it is being written.
    pending_assignment: Option<BTreeMap<String, Bytes>>,
    offsets: BTreeMap<(String, i32), CommittedOffset>,
}

/// A member as DescribeGroups shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

/// A group as DescribeGroups shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub state: GroupState,
    pub protocol_type: String,
    /// The selected protocol when Stable, else empty.
    pub protocol: String,
    pub generation: i32,
    pub members: Vec<MemberDescription>,
}

/// A group as ListGroups shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    pub state: GroupState,
}

/// A member leaving (LeaveGroup).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaving {
    /// Empty with an instance id: remove whichever member holds it.
    pub member_id: String,
    pub instance_id: Option<String>,
}

fn new_member_id(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4())
}

impl Group {
    fn new(id: &str, now: i64) -> Self {
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

    fn transition(&mut self, state: GroupState, now: i64) {
        self.state = state;
        self.state_timestamp = now;
    }

    fn is_fenced(&self, instance_id: Option<&str>, member_id: &str) -> bool {
        instance_id
            .and_then(|i| self.static_members.get(i))
            .is_some_and(|current| current != member_id)
    }

    /// Whether a member with these protocols may join.
    fn supports(&self, protocol_type: &str, protocols: &[Protocol]) -> bool {
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
    fn select_protocol(&self) -> Option<String> {
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

    fn rebalance_timeout(&self) -> i64 {
        self.members
            .values()
            .map(|m| i64::from(m.rebalance_timeout_ms))
            .max()
            .unwrap_or(0)
    }

    fn all_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.values().all(|m| m.join_waiter.is_some())
    }

    /// Every member's metadata for the selected protocol (the leader's
    /// JoinGroup answer).
    fn joined_members(&self) -> Vec<JoinedMember> {
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

    fn current_join_reply(&self, member_id: &str, with_members: bool) -> JoinReply {
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

    fn store(&self, fx: &mut Effects, after: AfterStore) {
        fx.stores.push(Store {
            group: self.id.clone(),
            value: self.value(None),
            after,
        });
    }

    // ---- join ----

    fn join(&mut self, now: i64, request: RequestId, req: JoinRequest, limits: &Limits) -> Effects {
        let mut fx = Effects::default();
        let unknown = req.member_id.is_empty();
        if unknown && self.members.len() + self.pending_members.len() >= limits.max_size {
            fx.join_error(
                request,
                GroupError::GroupMaxSizeReached(limits.max_size),
                &req.member_id,
            );
            return fx;
        }
        if !self.supports(&req.protocol_type, &req.protocols) {
            fx.join_error(
                request,
                GroupError::InconsistentGroupProtocol,
                &req.member_id,
            );
            return fx;
        }
        if unknown {
            self.join_new_member(now, request, req, &mut fx, limits);
        } else {
            self.join_known_member(now, request, req, &mut fx, limits);
        }
        fx
    }

    fn join_new_member(
        &mut self,
        now: i64,
        request: RequestId,
        req: JoinRequest,
        fx: &mut Effects,
        limits: &Limits,
    ) {
        if let Some(instance) = req.instance_id.clone() {
            let new_id = new_member_id(&instance);
            match self.static_members.get(&instance).cloned() {
                Some(old_id) => {
                    self.replace_static_member(now, request, &old_id, new_id, req, fx, limits)
                }
                None => self.add_member_and_rebalance(now, request, new_id, req, fx, limits),
            }
        } else if req.require_known_member_id {
            let new_id = new_member_id(&req.client_id);
            self.pending_members
                .insert(new_id.clone(), now + i64::from(req.session_timeout_ms));
            fx.join_error(request, GroupError::MemberIdRequired, &new_id);
        } else {
            let new_id = new_member_id(&req.client_id);
            self.add_member_and_rebalance(now, request, new_id, req, fx, limits);
        }
    }

    fn join_known_member(
        &mut self,
        now: i64,
        request: RequestId,
        req: JoinRequest,
        fx: &mut Effects,
        limits: &Limits,
    ) {
        let id = req.member_id.clone();
        if self.pending_members.remove(&id).is_some() {
            self.add_member_and_rebalance(now, request, id, req, fx, limits);
            return;
        }
        if self.is_fenced(req.instance_id.as_deref(), &id) {
            fx.join_error(
                request,
                GroupError::FencedInstanceId(req.instance_id.unwrap_or_default()),
                &id,
            );
            return;
        }
        let Some(member) = self.members.get(&id) else {
            fx.join_error(request, GroupError::UnknownMemberId(id.clone()), &id);
            return;
        };
        let unchanged = member.protocols == req.protocols;
        let is_leader = self.leader.as_deref() == Some(id.as_str());
        match self.state {
            GroupState::PreparingRebalance => {
                self.update_member_and_rebalance(now, request, req, fx, limits)
            }
            GroupState::CompletingRebalance if unchanged => {
                // The member lost the answer: send it again.
                let reply = self.current_join_reply(&id, is_leader);
                fx.reply(request, Reply::Join(reply));
            }
            GroupState::Stable if unchanged && !is_leader => {
                let reply = self.current_join_reply(&id, false);
                fx.reply(request, Reply::Join(reply));
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.update_member_and_rebalance(now, request, req, fx, limits)
            }
            GroupState::Empty | GroupState::Dead => {
                fx.join_error(request, GroupError::UnknownMemberId(id.clone()), &id)
            }
        }
    }

    fn add_member_and_rebalance(
        &mut self,
        now: i64,
        request: RequestId,
        id: String,
        req: JoinRequest,
        fx: &mut Effects,
        limits: &Limits,
    ) {
        if self.state == GroupState::PreparingRebalance && self.generation == 0 {
            self.new_member_added = true;
        }
        if self.members.is_empty() {
            self.protocol_type = Some(req.protocol_type.clone());
        }
        if self.leader.is_none() {
            self.leader = Some(id.clone());
        }
        if let Some(instance) = &req.instance_id {
            self.static_members.insert(instance.clone(), id.clone());
        }
        let mut member = Member {
            id: id.clone(),
            instance_id: req.instance_id,
            client_id: req.client_id,
            client_host: req.client_host,
            session_timeout_ms: req.session_timeout_ms,
            rebalance_timeout_ms: req.rebalance_timeout_ms,
            protocols: req.protocols,
            assignment: Bytes::new(),
            join_waiter: Some(request),
            sync_waiter: None,
            session_deadline: 0,
        };
        member.touch(now);
        self.members.insert(id, member);
        self.maybe_prepare_rebalance(now, fx, limits);
        self.try_complete_join(now, fx);
    }

    fn update_member_and_rebalance(
        &mut self,
        now: i64,
        request: RequestId,
        req: JoinRequest,
        fx: &mut Effects,
        limits: &Limits,
    ) {
        let member = self
            .members
            .get_mut(&req.member_id)
            .expect("caller checked the member exists");
        member.protocols = req.protocols;
        member.session_timeout_ms = req.session_timeout_ms;
        member.rebalance_timeout_ms = req.rebalance_timeout_ms;
        if let Some(old) = member.join_waiter.replace(request) {
            // The client gave up on its earlier JoinGroup and sent another.
            fx.join_error(old, GroupError::RebalanceInProgress, &req.member_id);
        }
        self.maybe_prepare_rebalance(now, fx, limits);
        self.try_complete_join(now, fx);
    }

    #[allow(clippy::too_many_arguments)]
    fn replace_static_member(
        &mut self,
        now: i64,
        request: RequestId,
        old_id: &str,
        new_id: String,
        req: JoinRequest,
        fx: &mut Effects,
        limits: &Limits,
    ) {
        let instance = req.instance_id.clone().expect("static member");
        let old_leader = self.leader.clone().unwrap_or_default();
        let old = self.swap_member_id(old_id, &new_id, fx);
        let member = self.members.get_mut(&new_id).expect("just inserted");
        member.protocols = req.protocols;
        member.session_timeout_ms = req.session_timeout_ms;
        member.rebalance_timeout_ms = req.rebalance_timeout_ms;
        member.client_id = req.client_id;
        member.client_host = req.client_host;
        member.touch(now);
        match self.state {
            GroupState::Stable if self.select_protocol() == self.protocol => {
                let is_leader = self.leader.as_deref() == Some(new_id.as_str());
                let reply = if req.supports_skip_assignment {
                    JoinReply {
                        skip_assignment: is_leader,
                        ..self.current_join_reply(&new_id, is_leader)
                    }
                } else {
                    // Older clients must not assign in a stable group: they
                    // are told the old leader id, which is not theirs.
                    JoinReply {
                        leader: old_leader,
                        ..self.current_join_reply(&new_id, false)
                    }
                };
                let replace = StaticReplace {
                    request,
                    reply,
                    instance_id: instance,
                    old_member_id: old_id.to_owned(),
                    new_member_id: new_id,
                    old_protocols: old.protocols,
                    old_session_timeout_ms: old.session_timeout_ms,
                    old_rebalance_timeout_ms: old.rebalance_timeout_ms,
                };
                self.store(fx, AfterStore::StaticMember(Box::new(replace)));
            }
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.members.get_mut(&new_id).expect("present").join_waiter = Some(request);
                self.prepare_rebalance(now, fx, limits);
                self.try_complete_join(now, fx);
            }
            GroupState::PreparingRebalance => {
                self.members.get_mut(&new_id).expect("present").join_waiter = Some(request);
                self.try_complete_join(now, fx);
            }
            GroupState::Empty | GroupState::Dead => {
                // A group without members has no static member to replace.
                fx.join_error(
                    request,
                    GroupError::UnknownMemberId(new_id.clone()),
                    &new_id,
                );
            }
        }
    }

    /// Moves a member to another id (static member replacement). Parked
    /// requests of the old id are answered FENCED_INSTANCE_ID. Returns the
    /// member as it was.
    fn swap_member_id(&mut self, old_id: &str, new_id: &str, fx: &mut Effects) -> Member {
        let mut member = self.members.remove(old_id).expect("static member present");
        let before = member.clone();
        let instance = member.instance_id.clone().unwrap_or_default();
        if let Some(w) = member.join_waiter.take() {
            fx.join_error(w, GroupError::FencedInstanceId(instance.clone()), old_id);
        }
        if let Some(w) = member.sync_waiter.take() {
            fx.sync_error(w, GroupError::FencedInstanceId(instance.clone()));
        }
        member.id = new_id.to_owned();
        self.members.insert(new_id.to_owned(), member);
        self.static_members.insert(instance, new_id.to_owned());
        if self.leader.as_deref() == Some(old_id) {
            self.leader = Some(new_id.to_owned());
        }
        if self.pending_sync.remove(old_id) {
            self.pending_sync.insert(new_id.to_owned());
        }
        before
    }

    fn maybe_prepare_rebalance(&mut self, now: i64, fx: &mut Effects, limits: &Limits) {
        if matches!(
            self.state,
            GroupState::Stable | GroupState::CompletingRebalance | GroupState::Empty
        ) {
            self.prepare_rebalance(now, fx, limits);
        }
    }

    fn prepare_rebalance(&mut self, now: i64, fx: &mut Effects, limits: &Limits) {
        if self.state == GroupState::CompletingRebalance {
            self.reset_assignment(fx, GroupError::RebalanceInProgress);
        }
        self.pending_sync.clear();
        self.sync_deadline = None;
        let timeout = self.rebalance_timeout();
        if self.state == GroupState::Empty && limits.initial_rebalance_delay_ms > 0 {
            let delay = limits.initial_rebalance_delay_ms.min(timeout);
            self.join_deadline = Some(now + delay);
            self.initial_delay = Some(InitialDelay {
                remaining_ms: (timeout - delay).max(0),
            });
            self.new_member_added = false;
        } else {
            self.join_deadline = Some(now + timeout);
            self.initial_delay = None;
        }
        self.transition(GroupState::PreparingRebalance, now);
    }

    /// Drops the assignment of a rebalance that will not complete and
    /// answers parked SyncGroups with `error`.
    fn reset_assignment(&mut self, fx: &mut Effects, error: GroupError) {
        self.pending_assignment = None;
        for m in self.members.values_mut() {
            m.assignment = Bytes::new();
            if let Some(w) = m.sync_waiter.take() {
                fx.sync_error(w, error.clone());
            }
        }
    }

    fn try_complete_join(&mut self, now: i64, fx: &mut Effects) {
        if self.state == GroupState::PreparingRebalance
            && self.initial_delay.is_none()
            && self.all_joined()
        {
            self.complete_join(now, fx);
        }
    }

    fn complete_join(&mut self, now: i64, fx: &mut Effects) {
        let not_rejoined: Vec<String> = self
            .members
            .values()
            .filter(|m| m.join_waiter.is_none() && m.instance_id.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in not_rejoined {
            self.remove_member(&id, fx);
        }
        self.initial_delay = None;
        self.new_member_added = false;
        if self.members.is_empty() {
            self.join_deadline = None;
            self.generation += 1;
            self.protocol = None;
            self.leader = None;
            self.transition(GroupState::Empty, now);
            fx.rebalances += 1;
            self.store(fx, AfterStore::Nothing);
            return;
        }
        let leader_joined = self
            .leader
            .as_ref()
            .and_then(|l| self.members.get(l))
            .is_some_and(|m| m.join_waiter.is_some());
        if !leader_joined {
            match self.members.values().find(|m| m.join_waiter.is_some()) {
                Some(m) => self.leader = Some(m.id.clone()),
                None => {
                    // Only static members that have not rejoined are left:
                    // wait another round; their sessions expire meanwhile.
                    self.join_deadline = Some(now + self.rebalance_timeout());
                    return;
                }
            }
        }
        self.join_deadline = None;
        self.generation += 1;
        self.protocol = self.select_protocol();
        self.transition(GroupState::CompletingRebalance, now);
        self.pending_sync = self.members.keys().cloned().collect();
        self.sync_deadline = Some(now + self.rebalance_timeout());
        self.pending_assignment = None;
        fx.rebalances += 1;
        let leader = self.leader.clone().unwrap_or_default();
        let everyone = self.joined_members();
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let base = self.current_join_reply(&id, false);
            let m = self.members.get_mut(&id).expect("listed");
            if let Some(w) = m.join_waiter.take() {
                m.touch(now);
                let reply = JoinReply {
                    members: if id == leader {
                        everyone.clone()
                    } else {
                        Vec::new()
                    },
                    ..base
                };
                fx.reply(w, Reply::Join(reply));
            }
        }
    }

    /// Removes a member and answers its parked requests with
    /// UNKNOWN_MEMBER_ID; no state change.
    fn remove_member(&mut self, id: &str, fx: &mut Effects) {
        let Some(mut m) = self.members.remove(id) else {
            return;
        };
        if let Some(w) = m.join_waiter.take() {
            fx.join_error(w, GroupError::UnknownMemberId(id.to_owned()), id);
        }
        if let Some(w) = m.sync_waiter.take() {
            fx.sync_error(w, GroupError::UnknownMemberId(id.to_owned()));
        }
        if let Some(instance) = &m.instance_id {
            if self.static_members.get(instance).is_some_and(|c| c == id) {
                self.static_members.remove(instance);
            }
        }
        self.pending_sync.remove(id);
        if self.leader.as_deref() == Some(id) {
            self.leader = self
                .members
                .values()
                .find(|m| m.join_waiter.is_some())
                .or_else(|| self.members.values().next())
                .map(|m| m.id.clone());
        }
    }

    /// Removes a member (left, expired) and rebalances what remains.
    fn remove_member_and_rebalance(
        &mut self,
        now: i64,
        id: &str,
        fx: &mut Effects,
        limits: &Limits,
    ) {
        self.remove_member(id, fx);
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.maybe_prepare_rebalance(now, fx, limits);
                self.try_complete_join(now, fx);
            }
            GroupState::PreparingRebalance => self.try_complete_join(now, fx),
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    // ---- sync ----

    fn sync(&mut self, now: i64, request: RequestId, req: SyncRequest) -> Effects {
        let mut fx = Effects::default();
        let error = if self.is_fenced(req.instance_id.as_deref(), &req.member_id) {
            Some(GroupError::FencedInstanceId(
                req.instance_id.clone().unwrap_or_default(),
            ))
        } else if !self.members.contains_key(&req.member_id) {
            Some(GroupError::UnknownMemberId(req.member_id.clone()))
        } else if req.generation != self.generation {
            Some(GroupError::IllegalGeneration {
                given: req.generation,
                current: self.generation,
            })
        } else if req
            .protocol_type
            .as_ref()
            .is_some_and(|t| self.protocol_type.as_ref() != Some(t))
            || req
                .protocol
                .as_ref()
                .is_some_and(|p| self.protocol.as_ref() != Some(p))
        {
            Some(GroupError::InconsistentGroupProtocol)
        } else {
            match self.state {
                GroupState::Empty => Some(GroupError::UnknownMemberId(req.member_id.clone())),
                GroupState::PreparingRebalance => Some(GroupError::RebalanceInProgress),
                GroupState::Dead => Some(GroupError::CoordinatorNotAvailable(
                    "the group is being removed".to_owned(),
                )),
                GroupState::CompletingRebalance | GroupState::Stable => None,
            }
        };
        if let Some(e) = error {
            fx.sync_error(request, e);
            return fx;
        }
        self.pending_sync.remove(&req.member_id);
        if self.pending_sync.is_empty() {
            self.sync_deadline = None;
        }
        let is_leader = self.leader.as_deref() == Some(req.member_id.as_str());
        let member = self.members.get_mut(&req.member_id).expect("checked");
        member.touch(now);
        if self.state == GroupState::Stable {
            let reply = SyncReply {
                error: None,
                protocol_type: self.protocol_type.clone(),
                protocol: self.protocol.clone(),
                assignment: member.assignment.clone(),
            };
            fx.reply(request, Reply::Sync(reply));
            return fx;
        }
        if let Some(old) = member.sync_waiter.replace(request) {
            fx.sync_error(old, GroupError::RebalanceInProgress);
        }
        if is_leader && self.pending_assignment.is_none() {
            let given: HashMap<String, Bytes> = req.assignments.into_iter().collect();
            let assignment: BTreeMap<String, Bytes> = self
                .members
                .keys()
                .map(|id| (id.clone(), given.get(id).cloned().unwrap_or_default()))
                .collect();
            fx.stores.push(Store {
                group: self.id.clone(),
                value: self.value(Some(&assignment)),
                after: AfterStore::Assignment {
                    generation: self.generation,
                },
            });
            self.pending_assignment = Some(assignment);
        }
        fx
    }

    fn assignment_stored(
        &mut self,
        now: i64,
        generation: i32,
        result: Result<(), GroupError>,
        limits: &Limits,
    ) -> Effects {
        let mut fx = Effects::default();
        if self.state != GroupState::CompletingRebalance || self.generation != generation {
            return fx;
        }
        let Some(assignment) = self.pending_assignment.take() else {
            return fx;
        };
        match result {
            Ok(()) => {
                for (id, m) in &mut self.members {
                    m.assignment = assignment.get(id).cloned().unwrap_or_default();
                    if let Some(w) = m.sync_waiter.take() {
                        m.touch(now);
                        fx.reply(
                            w,
                            Reply::Sync(SyncReply {
                                error: None,
                                protocol_type: self.protocol_type.clone(),
                                protocol: self.protocol.clone(),
                                assignment: m.assignment.clone(),
                            }),
                        );
                    }
                }
                self.transition(GroupState::Stable, now);
            }
            Err(e) => {
                self.reset_assignment(&mut fx, e);
                self.maybe_prepare_rebalance(now, &mut fx, limits);
                self.try_complete_join(now, &mut fx);
            }
        }
        fx
    }

    // ---- heartbeat, leave, commit ----

    fn heartbeat(
        &mut self,
        now: i64,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), GroupError> {
        if self.is_fenced(instance_id, member_id) {
            return Err(GroupError::FencedInstanceId(
                instance_id.unwrap_or_default().to_owned(),
            ));
        }
        if self.state == GroupState::Empty {
            return Err(GroupError::UnknownMemberId(member_id.to_owned()));
        }
        let current = self.generation;
        let Some(member) = self.members.get_mut(member_id) else {
            return Err(GroupError::UnknownMemberId(member_id.to_owned()));
        };
        if generation != current {
            return Err(GroupError::IllegalGeneration {
                given: generation,
                current,
            });
        }
        member.touch(now);
        match self.state {
            GroupState::PreparingRebalance => Err(GroupError::RebalanceInProgress),
            _ => Ok(()),
        }
    }

    fn leave(
        &mut self,
        now: i64,
        leaving: &Leaving,
        fx: &mut Effects,
        limits: &Limits,
    ) -> Result<(), GroupError> {
        let id = if leaving.member_id.is_empty() {
            let Some(instance) = &leaving.instance_id else {
                return Err(GroupError::UnknownMemberId(String::new()));
            };
            match self.static_members.get(instance) {
                Some(id) => id.clone(),
                None => return Err(GroupError::UnknownMemberId(String::new())),
            }
        } else {
            leaving.member_id.clone()
        };
        if self.pending_members.remove(&id).is_some() {
            self.try_complete_join(now, fx);
            return Ok(());
        }
        if self.is_fenced(leaving.instance_id.as_deref(), &id) {
            return Err(GroupError::FencedInstanceId(
                leaving.instance_id.clone().unwrap_or_default(),
            ));
        }
        if !self.members.contains_key(&id) {
            return Err(GroupError::UnknownMemberId(id));
        }
        self.remove_member_and_rebalance(now, &id, fx, limits);
        Ok(())
    }

    fn validate_commit(
        &mut self,
        now: i64,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), GroupError> {
        if self.is_fenced(instance_id, member_id) {
            return Err(GroupError::FencedInstanceId(
                instance_id.unwrap_or_default().to_owned(),
            ));
        }
        if generation < 0 && self.state == GroupState::Empty {
            // Offsets only: a standalone consumer or an admin tool.
            return Ok(());
        }
        if self.state == GroupState::CompletingRebalance {
            return Err(GroupError::RebalanceInProgress);
        }
        let current = self.generation;
        let Some(member) = self.members.get_mut(member_id) else {
            return Err(GroupError::UnknownMemberId(member_id.to_owned()));
        };
        if generation != current {
            return Err(GroupError::IllegalGeneration {
                given: generation,
                current,
            });
        }
        member.touch(now);
        Ok(())
    }

    // ---- timers ----

    fn tick(&mut self, now: i64, limits: &Limits) -> Effects {
        let mut fx = Effects::default();
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                m.session_deadline <= now && m.join_waiter.is_none() && m.sync_waiter.is_none()
            })
            .map(|m| m.id.clone())
            .collect();
        for id in expired {
            self.remove_member_and_rebalance(now, &id, &mut fx, limits);
        }
        let lapsed: Vec<String> = self
            .pending_members
            .iter()
            .filter(|(_, deadline)| **deadline <= now)
            .map(|(id, _)| id.clone())
            .collect();
        if !lapsed.is_empty() {
            for id in lapsed {
                self.pending_members.remove(&id);
            }
            self.try_complete_join(now, &mut fx);
        }
        if self.state == GroupState::PreparingRebalance
            && self.join_deadline.is_some_and(|d| d <= now)
        {
            match self.initial_delay {
                Some(delay) if self.new_member_added && delay.remaining_ms > 0 => {
                    let step = limits.initial_rebalance_delay_ms.min(delay.remaining_ms);
                    self.initial_delay = Some(InitialDelay {
                        remaining_ms: delay.remaining_ms - step,
                    });
                    self.new_member_added = false;
                    self.join_deadline = Some(now + step);
                }
                _ => self.complete_join(now, &mut fx),
            }
        }
        if matches!(
            self.state,
            GroupState::CompletingRebalance | GroupState::Stable
        ) && self.sync_deadline.is_some_and(|d| d <= now)
        {
            self.sync_deadline = None;
            let missing: Vec<String> = std::mem::take(&mut self.pending_sync).into_iter().collect();
            if !missing.is_empty() {
                for id in &missing {
                    self.remove_member(id, &mut fx);
                }
                self.prepare_rebalance(now, &mut fx, limits);
                self.try_complete_join(now, &mut fx);
            }
        }
        fx
    }

    /// Every parked request (to fail when the group is unloaded).
    fn waiters(&self) -> Vec<(RequestId, Reply)> {
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

    fn describe(&self) -> GroupDescription {
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
    fn is_unused(&self) -> bool {
        self.state == GroupState::Empty
            && self.members.is_empty()
            && self.pending_members.is_empty()
            && self.offsets.is_empty()
    }

    /// A group rebuilt from its stored record (after a coordinator change).
    fn from_value(id: &str, v: GroupValue, now: i64) -> Self {
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

/// The groups of one `__consumer_offsets` partition.
#[derive(Debug, Clone, Default)]
pub struct GroupTable {
    groups: BTreeMap<String, Group>,
    limits: Limits,
    /// Offset commits queued for the log but not yet applied, by (group,
    /// topic, partition). Expiry leaves these offsets alone: its tombstone
    /// would land after the commit in the log and erase it on reload.
    pending_commits: BTreeMap<(String, String, i32), u32>,
}

/// A decoded record of the offsets topic, as [`GroupTable::load`] replays it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loaded {
    Offset {
        group: String,
        topic: String,
        partition: i32,
        value: Option<CommittedOffset>,
    },
    Group {
        group: String,
        value: Option<GroupValue>,
    },
}

fn check_group_id(group_id: &str) -> Result<(), GroupError> {
    if group_id.is_empty() {
        return Err(GroupError::InvalidGroupId(
            "the group id must not be empty".to_owned(),
        ));
    }
    Ok(())
}

impl GroupTable {
    pub fn new(limits: Limits) -> Self {
        Self {
            groups: BTreeMap::new(),
            limits,
            pending_commits: BTreeMap::new(),
        }
    }

    /// A commit of these partitions was queued for the log.
    pub fn commit_pending<'a>(
        &mut self,
        group_id: &str,
        partitions: impl IntoIterator<Item = &'a (String, i32)>,
    ) {
        for (topic, p) in partitions {
            *self
                .pending_commits
                .entry((group_id.to_owned(), topic.clone(), *p))
                .or_default() += 1;
        }
    }

    /// A queued commit of these partitions was written (or failed).
    pub fn commit_done<'a>(
        &mut self,
        group_id: &str,
        partitions: impl IntoIterator<Item = &'a (String, i32)>,
    ) {
        for (topic, p) in partitions {
            let key = (group_id.to_owned(), topic.clone(), *p);
            if let Some(n) = self.pending_commits.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    self.pending_commits.remove(&key);
                }
            }
        }
    }

    /// Rebuilds the groups from the records of the partition, in log
    /// order: later records replace earlier ones, tombstones delete.
    pub fn load(limits: Limits, records: impl IntoIterator<Item = Loaded>, now: i64) -> Self {
        let mut metadata: HashMap<String, GroupValue> = HashMap::new();
        let mut offsets: HashMap<String, BTreeMap<(String, i32), CommittedOffset>> = HashMap::new();
        for r in records {
            match r {
                Loaded::Offset {
                    group,
                    topic,
                    partition,
                    value: Some(v),
                } => {
                    offsets
                        .entry(group)
                        .or_default()
                        .insert((topic, partition), v);
                }
                Loaded::Offset {
                    group,
                    topic,
                    partition,
                    value: None,
                } => {
                    if let Some(o) = offsets.get_mut(&group) {
                        o.remove(&(topic, partition));
                    }
                }
                Loaded::Group {
                    group,
                    value: Some(v),
                } => {
                    metadata.insert(group, v);
                }
                Loaded::Group { group, value: None } => {
                    metadata.remove(&group);
                }
            }
        }
        let mut table = Self::new(limits);
        for (id, v) in metadata {
            table
                .groups
                .insert(id.clone(), Group::from_value(&id, v, now));
        }
        for (id, o) in offsets {
            if o.is_empty() {
                continue;
            }
            table
                .groups
                .entry(id.clone())
                .or_insert_with(|| Group::new(&id, now))
                .offsets = o;
        }
        table
    }

    pub fn group(&self, group_id: &str) -> Option<&Group> {
        self.groups.get(group_id)
    }

    pub fn len(&self) -> usize {
        self.groups.len()
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// JoinGroup. The answer comes as a reply to `request`, now or later.
    pub fn join(
        &mut self,
        now: i64,
        request: RequestId,
        group_id: &str,
        req: JoinRequest,
    ) -> Effects {
        let fail = |e: GroupError, member: &str| Effects {
            replies: vec![(request, Reply::Join(JoinReply::error(e, member)))],
            ..Effects::default()
        };
        if let Err(e) = check_group_id(group_id) {
            return fail(e, &req.member_id);
        }
        let (min, max) = (
            self.limits.min_session_timeout_ms,
            self.limits.max_session_timeout_ms,
        );
        if req.session_timeout_ms < min || req.session_timeout_ms > max {
            let e = GroupError::InvalidSessionTimeout {
                given: req.session_timeout_ms,
                min,
                max,
            };
            return fail(e, &req.member_id);
        }
        if !req.member_id.is_empty() && !self.groups.contains_key(group_id) {
            return fail(
                GroupError::UnknownMemberId(req.member_id.clone()),
                &req.member_id,
            );
        }
        let group = self
            .groups
            .entry(group_id.to_owned())
            .or_insert_with(|| Group::new(group_id, now));
        let fx = group.join(now, request, req, &self.limits);
        if group.is_unused() && group.generation == 0 && group.protocol_type.is_none() {
            self.groups.remove(group_id);
        }
        fx
    }

    /// SyncGroup. The answer comes as a reply to `request`, now or later.
    pub fn sync(
        &mut self,
        now: i64,
        request: RequestId,
        group_id: &str,
        req: SyncRequest,
    ) -> Effects {
        let fail = |e: GroupError| Effects {
            replies: vec![(request, Reply::Sync(SyncReply::error(e)))],
            ..Effects::default()
        };
        if let Err(e) = check_group_id(group_id) {
            return fail(e);
        }
        match self.groups.get_mut(group_id) {
            Some(g) => g.sync(now, request, req),
            None => fail(GroupError::UnknownMemberId(req.member_id)),
        }
    }

    /// The leader's assignment was written (or not).
    pub fn assignment_stored(
        &mut self,
        now: i64,
        group_id: &str,
        generation: i32,
        result: Result<(), GroupError>,
    ) -> Effects {
        match self.groups.get_mut(group_id) {
            Some(g) => g.assignment_stored(now, generation, result, &self.limits),
            None => Effects::default(),
        }
    }

    /// A static member's new id was written (or not): answers its
    /// JoinGroup; on failure the old member id is restored.
    pub fn static_member_stored(
        &mut self,
        now: i64,
        group_id: &str,
        replace: StaticReplace,
        result: Result<(), GroupError>,
    ) -> Effects {
        let mut fx = Effects::default();
        match result {
            Ok(()) => fx.reply(replace.request, Reply::Join(replace.reply)),
            Err(e) => {
                if let Some(g) = self.groups.get_mut(group_id) {
                    let current = g.static_members.get(&replace.instance_id).cloned();
                    if current.as_deref() == Some(replace.new_member_id.as_str()) {
                        g.swap_member_id(&replace.new_member_id, &replace.old_member_id, &mut fx);
                        let m = g
                            .members
                            .get_mut(&replace.old_member_id)
                            .expect("swapped back");
                        m.protocols = replace.old_protocols;
                        m.session_timeout_ms = replace.old_session_timeout_ms;
                        m.rebalance_timeout_ms = replace.old_rebalance_timeout_ms;
                        m.touch(now);
                    }
                }
                fx.join_error(replace.request, e, "");
            }
        }
        fx
    }

    /// Heartbeat.
    pub fn heartbeat(
        &mut self,
        now: i64,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), GroupError> {
        check_group_id(group_id)?;
        match self.groups.get_mut(group_id) {
            Some(g) => g.heartbeat(now, member_id, instance_id, generation),
            None => Err(GroupError::UnknownMemberId(member_id.to_owned())),
        }
    }

    /// LeaveGroup: one result per leaving member.
    pub fn leave(
        &mut self,
        now: i64,
        group_id: &str,
        leaving: &[Leaving],
    ) -> (Vec<Result<(), GroupError>>, Effects) {
        let mut fx = Effects::default();
        let Some(g) = self.groups.get_mut(group_id) else {
            let results = leaving
                .iter()
                .map(|l| Err(GroupError::UnknownMemberId(l.member_id.clone())))
                .collect();
            return (results, fx);
        };
        let results = leaving
            .iter()
            .map(|l| g.leave(now, l, &mut fx, &self.limits))
            .collect();
        (results, fx)
    }

    /// Checks that an OffsetCommit may be written. A commit with a
    /// negative generation to a group that does not exist creates it
    /// (offsets only, no membership).
    pub fn validate_commit(
        &mut self,
        now: i64,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), GroupError> {
        match self.groups.get_mut(group_id) {
            Some(g) => g.validate_commit(now, member_id, instance_id, generation),
            None if generation < 0 => {
                self.groups
                    .insert(group_id.to_owned(), Group::new(group_id, now));
                Ok(())
            }
            None => Err(GroupError::IllegalGeneration {
                given: generation,
                current: -1,
            }),
        }
    }

    /// Offsets written to the log: they become visible to OffsetFetch.
    pub fn apply_offsets(
        &mut self,
        now: i64,
        group_id: &str,
        offsets: impl IntoIterator<Item = ((String, i32), CommittedOffset)>,
    ) {
        let g = self
            .groups
            .entry(group_id.to_owned())
            .or_insert_with(|| Group::new(group_id, now));
        g.offsets.extend(offsets);
    }

    /// Committed offsets of a group: the asked partitions (`None` when
    /// nothing is committed), or every committed one when `wanted` is None.
    pub fn committed(&self, group_id: &str, wanted: Option<&[(String, Vec<i32>)]>) -> TopicOffsets {
        let offsets = self.groups.get(group_id).map(|g| &g.offsets);
        match wanted {
            Some(topics) => topics
                .iter()
                .map(|(topic, partitions)| {
                    let found = partitions
                        .iter()
                        .map(|p| {
                            let o = offsets.and_then(|o| o.get(&(topic.clone(), *p))).cloned();
                            (*p, o)
                        })
                        .collect();
                    (topic.clone(), found)
                })
                .collect(),
            None => {
                let mut by_topic: BTreeMap<String, Vec<(i32, Option<CommittedOffset>)>> =
                    BTreeMap::new();
                for ((topic, p), o) in offsets.into_iter().flatten() {
                    by_topic
                        .entry(topic.clone())
                        .or_default()
                        .push((*p, Some(o.clone())));
                }
                by_topic.into_iter().collect()
            }
        }
    }

    /// Runs the timers: session expiry, join and sync deadlines.
    pub fn tick(&mut self, now: i64) -> Effects {
        let mut fx = Effects::default();
        for g in self.groups.values_mut() {
            let e = g.tick(now, &self.limits);
            fx.replies.extend(e.replies);
            fx.stores.extend(e.stores);
            fx.tombstones.extend(e.tombstones);
            fx.rebalances += e.rebalances;
        }
        fx
    }

    /// Removes offsets older than `retention_ms` (Kafka's rules: offsets of
    /// a consumer group expire once the group has been Empty that long; of a
    /// group that only stores offsets, each once it was committed that
    /// long ago) and forgets Empty groups left with nothing. Returns the
    /// keys to tombstone.
    pub fn expire_offsets(&mut self, now: i64, retention_ms: i64) -> Vec<RecordKey> {
        let mut tombstones = Vec::new();
        let mut gone = Vec::new();
        let pending = &self.pending_commits;
        for (id, g) in &mut self.groups {
            if g.state != GroupState::Empty {
                continue;
            }
            let by_state = g.protocol_type.is_some();
            let state_ts = g.state_timestamp;
            let mut any_pending = false;
            g.offsets.retain(|(topic, partition), o| {
                if pending.contains_key(&(id.clone(), topic.clone(), *partition)) {
                    any_pending = true;
                    return true;
                }
                let base = if by_state {
                    state_ts
                } else {
                    o.commit_timestamp
                };
                let keep = base.saturating_add(retention_ms) > now;
                if !keep {
                    tombstones.push(RecordKey::Offset {
                        group: id.clone(),
                        topic: topic.clone(),
                        partition: *partition,
                    });
                }
                keep
            });
            let committing = any_pending
                || pending
                    .range((id.clone(), String::new(), i32::MIN)..)
                    .next()
                    .is_some_and(|((group, _, _), _)| group == id);
            if g.is_unused() && !committing {
                gone.push(id.clone());
            }
        }
        for id in gone {
            self.groups.remove(&id);
            tombstones.push(RecordKey::Group { group: id });
        }
        tombstones
    }

    /// DeleteGroups: removes an Empty group; returns the keys to tombstone.
    pub fn delete(&mut self, group_id: &str) -> Result<Vec<RecordKey>, GroupError> {
        let Some(g) = self.groups.get(group_id) else {
            return Err(GroupError::GroupIdNotFound(group_id.to_owned()));
        };
        if g.state != GroupState::Empty {
            return Err(GroupError::NonEmptyGroup(group_id.to_owned()));
        }
        let g = self.groups.remove(group_id).expect("present");
        let mut keys: Vec<RecordKey> = g
            .offsets
            .keys()
            .map(|(topic, partition)| RecordKey::Offset {
                group: group_id.to_owned(),
                topic: topic.clone(),
                partition: *partition,
            })
            .collect();
        keys.push(RecordKey::Group {
            group: group_id.to_owned(),
        });
        Ok(keys)
    }

    /// DescribeGroups of one group; `None` when unknown.
    pub fn describe(&self, group_id: &str) -> Option<GroupDescription> {
        self.groups.get(group_id).map(Group::describe)
    }

    /// ListGroups.
    pub fn list(&self) -> Vec<GroupListing> {
        self.groups
            .values()
            .map(|g| GroupListing {
                group_id: g.id.clone(),
                protocol_type: g.protocol_type.clone().unwrap_or_default(),
                state: g.state,
            })
            .collect()
    }

    /// Number of groups per state.
    pub fn count_by_state(&self) -> BTreeMap<GroupState, usize> {
        let mut out = BTreeMap::new();
        for g in self.groups.values() {
            *out.entry(g.state).or_default() += 1;
        }
        out
    }

    /// Every committed offset: (group, topic, partition, offset).
    pub fn all_offsets(&self) -> impl Iterator<Item = (&str, &str, i32, i64)> {
        self.groups.values().flat_map(|g| {
            g.offsets
                .iter()
                .map(move |((t, p), o)| (g.id.as_str(), t.as_str(), *p, o.offset))
        })
    }

    /// Every parked request, with the NOT_COORDINATOR answer it gets when
    /// the partition is unloaded.
    pub fn waiters(&self) -> Vec<(RequestId, Reply)> {
        self.groups.values().flat_map(Group::waiters).collect()
    }

    /// Bounds of offset metadata.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }
}

#[cfg(test)]
mod tests;
