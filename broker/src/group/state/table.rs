//! [`GroupTable`]: the groups of one `__consumer_offsets` partition,
//! rebuilt from its records, and the entry points the coordinator calls.

use std::collections::{BTreeMap, HashMap};

use super::*;
use crate::group::error::GroupError;
use crate::group::records::{CommittedOffset, ConsumerKey, ConsumerValue, GroupValue, RecordKey};

/// The groups of one `__consumer_offsets` partition.
#[derive(Debug, Clone, Default)]
pub struct GroupTable {
    pub(super) groups: BTreeMap<String, Group>,
    pub(super) limits: Limits,
    /// Offset commits queued for the log but not yet applied, by (group,
    /// topic, partition). Expiry leaves these offsets alone: its tombstone
    /// would land after the commit in the log and erase it on reload.
    pub(super) pending_commits: BTreeMap<(String, String, i32), u32>,
    /// Group configs (overrides) by group id, also of groups that do not
    /// exist (yet).
    pub(super) configs: BTreeMap<String, BTreeMap<String, String>>,
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
    /// A record of a consumer-protocol group.
    Consumer {
        key: ConsumerKey,
        value: Option<ConsumerValue>,
    },
    /// A record of a share group.
    Share(ShareWrite),
}

pub(super) fn check_group_id(group_id: &str) -> Result<(), GroupError> {
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
            configs: BTreeMap::new(),
        }
    }

    /// Rebuilds the groups from the records of the partition, in log
    /// order: later records replace earlier ones, tombstones delete.
    pub fn load(limits: Limits, records: impl IntoIterator<Item = Loaded>, now: i64) -> Self {
        let mut metadata: HashMap<String, GroupValue> = HashMap::new();
        let mut offsets: HashMap<String, BTreeMap<(String, i32), CommittedOffset>> = HashMap::new();
        let mut consumer: BTreeMap<String, BTreeMap<ConsumerKey, ConsumerValue>> = BTreeMap::new();
        let mut share: Vec<ShareWrite> = Vec::new();
        for r in records {
            match r {
                Loaded::Share(w) => share.push(w),
                Loaded::Consumer { key, value } => {
                    let group = consumer.entry(key.group().to_owned()).or_default();
                    match value {
                        Some(v) => {
                            group.insert(key, v);
                        }
                        None => {
                            group.remove(&key);
                        }
                    }
                }
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
        table.load_consumer_groups(consumer, now);
        table.apply_share(now, &share);
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
        let no_topics: BTreeMap<String, (uuid::Uuid, i32)> = BTreeMap::new();
        self.join_in(now, request, group_id, req, &no_topics)
    }

    /// JoinGroup, with the cluster's topics (a classic member of a
    /// consumer-protocol group needs them).
    pub fn join_in(
        &mut self,
        now: i64,
        request: RequestId,
        group_id: &str,
        req: JoinRequest,
        catalog: &dyn TopicCatalog,
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
        if self.groups.get(group_id).is_some_and(|g| g.share.is_some()) {
            let e = GroupError::WrongGroupType {
                group: group_id.to_owned(),
                is: "share",
            };
            return fail(e, &req.member_id);
        }
        if let Some(fx) = self.classic_join_in_consumer_group(now, request, group_id, &req, catalog)
        {
            return fx;
        }
        let mut converted = Effects::default();
        if let Err(e) = self.classic_join_allowed(group_id, &mut converted) {
            return fail(e, &req.member_id);
        }
        let group = self
            .groups
            .entry(group_id.to_owned())
            .or_insert_with(|| Group::new(group_id, now));
        let mut fx = group.join(now, request, req, &self.limits);
        fx.consumer.extend(converted.consumer);
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
            Some(g) => match g.consumer.as_mut() {
                Some(c) => match c.classic_sync(now, &req) {
                    Ok(reply) => Effects {
                        replies: vec![(request, Reply::Sync(reply))],
                        ..Effects::default()
                    },
                    Err(e) => fail(e),
                },
                None => g.sync(now, request, req),
            },
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
            Some(g) => match g.consumer.as_mut() {
                Some(c) => c.classic_heartbeat(now, member_id, generation),
                None => g.heartbeat(now, member_id, instance_id, generation),
            },
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
        if let Some(c) = g.consumer.as_mut() {
            let mut writes = Vec::new();
            let results = leaving
                .iter()
                .map(|l| c.classic_leave(group_id, &l.member_id, &mut writes))
                .collect();
            if c.member_count() == 0 {
                g.transition(GroupState::Empty, now);
            }
            fx.consumer = writes;
            return (results, fx);
        }
        let results = leaving
            .iter()
            .map(|l| g.leave(now, l, &mut fx, &self.limits))
            .collect();
        (results, fx)
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
        self.consumer_tick(now, &mut fx);
        self.share_tick(now);
        fx
    }

    /// DeleteGroups: removes an Empty group; returns the keys to tombstone.
    pub fn delete(&mut self, group_id: &str) -> Result<Vec<RecordKey>, GroupError> {
        let Some(g) = self.groups.get(group_id) else {
            return Err(GroupError::GroupIdNotFound(group_id.to_owned()));
        };
        if g.state != GroupState::Empty || g.has_members() {
            return Err(GroupError::NonEmptyGroup(group_id.to_owned()));
        }
        let g = self.groups.remove(group_id).expect("present");
        let mut consumer_keys = g.consumer_keys();
        consumer_keys.extend(Self::share_keys(group_id, &g));
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
        keys.extend(consumer_keys);
        Ok(keys)
    }

    /// OffsetDelete: drops the committed offsets of `partitions` (those
    /// without one are left as they are) and returns, per partition, why
    /// it was refused, and the offset keys to tombstone. As Kafka: a group
    /// of the consumer protocol type keeps the offsets of topics its
    /// members subscribe to (GROUP_SUBSCRIBED_TO_TOPIC); any other group
    /// must be Empty (NON_EMPTY_GROUP). When the members' subscriptions
    /// cannot be read, every topic counts as subscribed.
    pub fn delete_offsets(
        &mut self,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> Result<(Vec<Option<GroupError>>, Vec<RecordKey>), GroupError> {
        let Some(g) = self.groups.get_mut(group_id) else {
            return Err(GroupError::GroupIdNotFound(group_id.to_owned()));
        };
        let consumer =
            g.protocol_type.as_deref() == Some(CONSUMER_PROTOCOL_TYPE) || g.consumer.is_some();
        if !consumer && g.state != GroupState::Empty {
            return Err(GroupError::NonEmptyGroup(group_id.to_owned()));
        }
        let subscribed = if let Some(c) = &g.consumer {
            Some(c.subscribed_topics())
        } else if g.members.is_empty() {
            Some(std::collections::BTreeSet::new())
        } else {
            g.subscribed_topics()
        };
        let mut results = Vec::with_capacity(partitions.len());
        let mut keys = Vec::new();
        for (topic, partition) in partitions {
            if subscribed.as_ref().is_none_or(|s| s.contains(topic)) {
                results.push(Some(GroupError::SubscribedToTopic(topic.clone())));
                continue;
            }
            if g.offsets.remove(&(topic.clone(), *partition)).is_some() {
                keys.push(RecordKey::Offset {
                    group: group_id.to_owned(),
                    topic: topic.clone(),
                    partition: *partition,
                });
            }
            results.push(None);
        }
        Ok((results, keys))
    }

    /// DescribeGroups of one group; `None` when unknown.
    /// A consumer-protocol group is not described here (None): Kafka's
    /// tools describe it with ConsumerGroupDescribe.
    pub fn describe(&self, group_id: &str) -> Option<GroupDescription> {
        self.groups
            .get(group_id)
            .filter(|g| g.consumer.is_none() && g.share.is_none())
            .map(Group::describe)
    }

    /// ListGroups.
    pub fn list(&self) -> Vec<GroupListing> {
        self.groups
            .values()
            .map(|g| match &g.consumer {
                _ if g.share.is_some() => GroupListing {
                    group_id: g.id.clone(),
                    protocol_type: SHARE_PROTOCOL_TYPE.to_owned(),
                    state: g.state.as_str(),
                    group_type: "share",
                },
                Some(c) => GroupListing {
                    group_id: g.id.clone(),
                    protocol_type: CONSUMER_PROTOCOL_TYPE.to_owned(),
                    state: c.state_name(),
                    group_type: "consumer",
                },
                None => GroupListing {
                    group_id: g.id.clone(),
                    protocol_type: g.protocol_type.clone().unwrap_or_default(),
                    state: g.state.as_str(),
                    group_type: "classic",
                },
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
