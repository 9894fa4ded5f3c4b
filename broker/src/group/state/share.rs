//! Share groups (KIP-932) in the [`GroupTable`]: membership, the stored
//! state of each share partition, and group configs.
//!
//! - Membership: members join with epoch 0 and a member id of their own,
//!   heartbeat with their epoch, leave with -1 and are removed when their
//!   session lapses. Every partition of the subscribed topics is assigned
//!   to at least one member: round robin while there are at least as many
//!   partitions as subscribed members, otherwise several members share a
//!   partition. Share groups have no revocation: a changed assignment
//!   bumps the group epoch and reaches each member with its next
//!   heartbeat. Members are not stored: after a coordinator change they
//!   are unknown and join again; the group itself is stored.
//! - Share-partition state: what the leader of a topic partition keeps of
//!   the records in flight (`crate::share`) is stored here, one record per
//!   partition, so that a new leader carries on. A write carries the
//!   writer's leader epoch and the state epoch it loaded; an older leader
//!   or a state reset by an admin since then is fenced.
//! - Configs (`kafka-configs --entity-type groups`): stored per group id,
//!   also before the group exists.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use super::*;
use crate::group::error::GroupError;
use crate::group::records::{RecordKey, ShareKey, ShareStateValue, ShareValue};

/// Protocol type and group type of share groups in ListGroups.
pub const SHARE_PROTOCOL_TYPE: &str = "share";
/// The name of the assignor ShareGroupDescribe reports.
pub const SHARE_ASSIGNOR: &str = "simple";
const JOIN_EPOCH: i32 = 0;
const LEAVE_EPOCH: i32 = -1;

/// One write of share-group records (`None`: tombstone).
pub type ShareWrite = (ShareKey, Option<ShareValue>);

/// A ShareGroupHeartbeat, versions resolved.
#[derive(Debug, Clone, Default)]
pub struct ShareHeartbeat {
    pub member_id: String,
    pub member_epoch: i32,
    pub rack_id: Option<String>,
    /// `None`: unchanged since the last heartbeat.
    pub subscribed: Option<Vec<String>>,
    pub client_id: String,
    pub client_host: String,
}

/// The answer to a ShareGroupHeartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareHeartbeatReply {
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// Set when the member's assignment is new to it.
    pub assignment: Option<Partitions>,
}

/// A member as ShareGroupDescribe shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareMemberDescription {
    pub member_id: String,
    pub rack_id: Option<String>,
    pub member_epoch: i32,
    pub client_id: String,
    pub client_host: String,
    pub subscribed: Vec<String>,
    pub assignment: Partitions,
}

/// A share group as ShareGroupDescribe shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareGroupDescription {
    pub state: &'static str,
    pub epoch: i32,
    pub assignment_epoch: i32,
    pub members: Vec<ShareMemberDescription>,
}

#[derive(Debug, Clone, Default)]
struct ShareMember {
    epoch: i32,
    rack_id: Option<String>,
    client_id: String,
    client_host: String,
    subscribed: Vec<String>,
    /// When the session lapses (ms).
    deadline: i64,
    assignment: Partitions,
}

/// The share-group part of a [`Group`].
#[derive(Debug, Clone, Default)]
pub struct ShareGroup {
    epoch: i32,
    assignment_epoch: i32,
    members: BTreeMap<String, ShareMember>,
    /// Stored state per (topic id, partition).
    states: BTreeMap<(Uuid, i32), ShareStateValue>,
}

impl ShareGroup {
    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    fn state_name(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else {
            "Stable"
        }
    }

    /// Computes every member's assignment from the subscriptions; bumps
    /// the group epoch when any changed.
    fn assign(&mut self, catalog: &dyn TopicCatalog) {
        let mut subscribers: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (id, m) in &self.members {
            for t in &m.subscribed {
                subscribers.entry(t.as_str()).or_default().push(id.as_str());
            }
        }
        let mut target: BTreeMap<String, Partitions> = self
            .members
            .keys()
            .map(|id| (id.clone(), Partitions::new()))
            .collect();
        for (topic, members) in subscribers {
            let Some((topic_id, count)) = catalog.topic(topic) else {
                continue;
            };
            if count <= 0 {
                continue;
            }
            let n = members.len();
            if n <= count as usize {
                for p in 0..count {
                    let m = members[p as usize % n];
                    target
                        .get_mut(m)
                        .expect("member")
                        .entry(topic_id)
                        .or_default()
                        .insert(p);
                }
            } else {
                for (j, m) in members.iter().enumerate() {
                    target
                        .get_mut(*m)
                        .expect("member")
                        .entry(topic_id)
                        .or_default()
                        .insert((j % count as usize) as i32);
                }
            }
        }
        let changed = self
            .members
            .iter()
            .any(|(id, m)| target.get(id) != Some(&m.assignment));
        if changed {
            self.epoch += 1;
            self.assignment_epoch = self.epoch;
            for (id, m) in &mut self.members {
                m.assignment = target.remove(id).unwrap_or_default();
            }
        }
    }

    fn heartbeat(
        &mut self,
        now: i64,
        req: ShareHeartbeat,
        limits: &Limits,
        config: &ShareConfig,
        catalog: &dyn TopicCatalog,
    ) -> Result<ShareHeartbeatReply, GroupError> {
        let interval = config.heartbeat_interval_ms;
        if req.member_id.is_empty() {
            return Err(GroupError::InvalidRequest(
                "the member id must not be empty (ShareGroupHeartbeat v1+)".to_owned(),
            ));
        }
        let session = i64::from(
            config
                .session_timeout_ms
                .unwrap_or(limits.consumer_session_timeout_ms),
        );
        match req.member_epoch {
            LEAVE_EPOCH => {
                if self.members.remove(&req.member_id).is_some() {
                    self.epoch += 1;
                    self.assign(catalog);
                }
                return Ok(ShareHeartbeatReply {
                    member_id: req.member_id,
                    member_epoch: LEAVE_EPOCH,
                    heartbeat_interval_ms: interval,
                    assignment: None,
                });
            }
            JOIN_EPOCH => {
                let Some(subscribed) = req.subscribed.clone().filter(|s| !s.is_empty()) else {
                    return Err(GroupError::InvalidRequest(
                        "a joining member must name the topics it subscribes to".to_owned(),
                    ));
                };
                self.members.insert(
                    req.member_id.clone(),
                    ShareMember {
                        epoch: 0,
                        subscribed,
                        ..ShareMember::default()
                    },
                );
                self.epoch += 1;
            }
            epoch => {
                let Some(m) = self.members.get(&req.member_id) else {
                    return Err(GroupError::UnknownMemberId(req.member_id));
                };
                if m.epoch != epoch {
                    return Err(GroupError::FencedMemberEpoch {
                        given: epoch,
                        current: m.epoch,
                    });
                }
                if let Some(s) = req.subscribed.as_ref().filter(|s| **s != m.subscribed) {
                    let s = s.clone();
                    self.members
                        .get_mut(&req.member_id)
                        .expect("member")
                        .subscribed = s;
                    self.epoch += 1;
                }
            }
        }
        self.assign(catalog);
        let group_epoch = self.epoch;
        let m = self.members.get_mut(&req.member_id).expect("member");
        m.deadline = now + session;
        m.client_id = req.client_id;
        m.client_host = req.client_host;
        if req.rack_id.is_some() {
            m.rack_id = req.rack_id;
        }
        let assignment = (m.epoch != group_epoch).then(|| m.assignment.clone());
        m.epoch = group_epoch;
        Ok(ShareHeartbeatReply {
            member_id: req.member_id,
            member_epoch: group_epoch,
            heartbeat_interval_ms: interval,
            assignment,
        })
    }

    /// Removes members whose session lapsed; their partitions go to the
    /// others at their next heartbeat. Returns whether any was removed.
    fn tick(&mut self, now: i64) -> bool {
        let before = self.members.len();
        self.members.retain(|_, m| m.deadline > now);
        if self.members.len() == before {
            return false;
        }
        // The next heartbeat recomputes the assignment (it has the topics).
        self.epoch += 1;
        for m in self.members.values_mut() {
            m.assignment.clear();
        }
        true
    }
}

/// The configs of a share group, from its stored overrides and the
/// broker's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareConfig {
    pub record_lock_duration_ms: i32,
    pub delivery_count_limit: i16,
    /// `share.partition.max.record.locks`: most records in flight per
    /// share partition.
    pub partition_max_record_locks: i32,
    /// `share.auto.offset.reset`: start at the log start (true) or at the
    /// high watermark.
    pub auto_offset_reset_earliest: bool,
    pub heartbeat_interval_ms: i32,
    pub session_timeout_ms: Option<i32>,
}

/// A group config key Rill serves: name, default, and how a value is
/// checked.
struct ConfigKey {
    name: &'static str,
    default: &'static str,
    check: fn(&str) -> Result<(), String>,
}

fn int_in(v: &str, min: i64, max: i64) -> Result<(), String> {
    match v.parse::<i64>() {
        Ok(n) if n < min => Err(format!("Value must be at least {min}")),
        Ok(n) if n > max => Err(format!("Value must be no more than {max}")),
        Ok(_) => Ok(()),
        Err(_) => Err("Value must be a number".to_owned()),
    }
}

/// The group configs Rill honours (Kafka's names, defaults and bounds).
const CONFIG_KEYS: &[ConfigKey] = &[
    ConfigKey {
        name: "share.record.lock.duration.ms",
        default: "30000",
        check: |v| int_in(v, 15_000, 60_000),
    },
    ConfigKey {
        name: "share.delivery.count.limit",
        default: "5",
        check: |v| int_in(v, 2, 10),
    },
    ConfigKey {
        name: "share.partition.max.record.locks",
        default: "2000",
        check: |v| int_in(v, 100, 4_000),
    },
    ConfigKey {
        name: "share.auto.offset.reset",
        default: "latest",
        check: |v| match v {
            "earliest" | "latest" => Ok(()),
            _ => Err("String must be one of: earliest, latest".to_owned()),
        },
    },
    ConfigKey {
        name: "share.isolation.level",
        default: "read_uncommitted",
        check: |v| match v {
            "read_uncommitted" => Ok(()),
            _ => Err("Rill serves share groups read_uncommitted only".to_owned()),
        },
    },
    ConfigKey {
        name: "share.heartbeat.interval.ms",
        default: "5000",
        check: |v| int_in(v, 5_000, 15_000),
    },
    ConfigKey {
        name: "share.session.timeout.ms",
        default: "45000",
        check: |v| int_in(v, 45_000, 60_000),
    },
];

impl ShareConfig {
    /// Checks `overrides` (every key known, every value valid).
    pub fn validate(overrides: &BTreeMap<String, String>) -> Result<(), GroupError> {
        for (k, v) in overrides {
            let Some(key) = CONFIG_KEYS.iter().find(|c| c.name == k) else {
                return Err(GroupError::InvalidConfig(format!(
                    "Unknown group config name: {k} (Rill's groups take {})",
                    CONFIG_KEYS
                        .iter()
                        .map(|c| c.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            };
            (key.check)(v).map_err(|e| {
                GroupError::InvalidConfig(format!("Invalid value {v} for configuration {k}: {e}"))
            })?;
        }
        Ok(())
    }

    /// Every key with its value: (name, value, overridden).
    pub fn describe(overrides: &BTreeMap<String, String>) -> Vec<(String, String, bool)> {
        CONFIG_KEYS
            .iter()
            .map(|c| match overrides.get(c.name) {
                Some(v) => (c.name.to_owned(), v.clone(), true),
                None => (c.name.to_owned(), c.default.to_owned(), false),
            })
            .collect()
    }

    pub fn of(overrides: &BTreeMap<String, String>) -> Self {
        let get = |name: &str| -> String {
            overrides.get(name).cloned().unwrap_or_else(|| {
                CONFIG_KEYS
                    .iter()
                    .find(|c| c.name == name)
                    .map(|c| c.default.to_owned())
                    .unwrap_or_default()
            })
        };
        Self {
            record_lock_duration_ms: get("share.record.lock.duration.ms")
                .parse()
                .unwrap_or(30_000),
            delivery_count_limit: get("share.delivery.count.limit").parse().unwrap_or(5),
            partition_max_record_locks: get("share.partition.max.record.locks")
                .parse()
                .unwrap_or(2_000),
            auto_offset_reset_earliest: get("share.auto.offset.reset") == "earliest",
            heartbeat_interval_ms: get("share.heartbeat.interval.ms").parse().unwrap_or(5_000),
            session_timeout_ms: overrides
                .get("share.session.timeout.ms")
                .and_then(|v| v.parse().ok()),
        }
    }
}

impl GroupTable {
    fn share_group(&self, group_id: &str) -> Result<&ShareGroup, GroupError> {
        self.groups
            .get(group_id)
            .and_then(|g| g.share.as_deref())
            .ok_or_else(|| GroupError::GroupIdNotFound(group_id.to_owned()))
    }

    /// The configs of `group_id` (overrides only).
    pub fn group_config(&self, group_id: &str) -> BTreeMap<String, String> {
        self.configs.get(group_id).cloned().unwrap_or_default()
    }

    /// The effective share configs of `group_id`.
    pub fn share_config(&self, group_id: &str) -> ShareConfig {
        ShareConfig::of(&self.group_config(group_id))
    }

    /// Checks new overrides of a group's configs; the write to store them.
    pub fn set_group_config(
        &self,
        group_id: &str,
        overrides: BTreeMap<String, String>,
    ) -> Result<ShareWrite, GroupError> {
        table::check_group_id(group_id)?;
        ShareConfig::validate(&overrides)?;
        let key = ShareKey::Config {
            group: group_id.to_owned(),
        };
        if overrides.is_empty() {
            return Ok((key, None));
        }
        Ok((
            key,
            Some(ShareValue::Config(overrides.into_iter().collect())),
        ))
    }

    /// ShareGroupHeartbeat. The write, if any, creates the group.
    pub fn share_heartbeat(
        &mut self,
        now: i64,
        group_id: &str,
        req: ShareHeartbeat,
        catalog: &dyn TopicCatalog,
    ) -> (Result<ShareHeartbeatReply, GroupError>, Vec<ShareWrite>) {
        let mut writes = Vec::new();
        if let Err(e) = table::check_group_id(group_id) {
            return (Err(e), writes);
        }
        let config = self.share_config(group_id);
        let limits = self.limits.clone();
        let exists = self.groups.contains_key(group_id);
        // A classic or consumer group keeps its id.
        if let Some(g) = self.groups.get(group_id)
            && g.share.is_none()
            && (g.has_members() || g.consumer.is_some() || g.protocol_type.is_some())
        {
            let is = if g.consumer.is_some() {
                "consumer"
            } else {
                "classic"
            };
            return (
                Err(GroupError::WrongGroupType {
                    group: group_id.to_owned(),
                    is,
                }),
                writes,
            );
        }
        if req.member_epoch != JOIN_EPOCH
            && self.groups.get(group_id).is_none_or(|g| g.share.is_none())
        {
            return (Err(GroupError::UnknownMemberId(req.member_id)), writes);
        }
        let g = self
            .groups
            .entry(group_id.to_owned())
            .or_insert_with(|| Group::new(group_id, now));
        if g.share.is_none() {
            g.share = Some(Box::default());
            writes.push((
                ShareKey::Group {
                    group: group_id.to_owned(),
                },
                Some(ShareValue::Group { created_ms: now }),
            ));
        }
        let s = g.share.as_mut().expect("share group");
        let result = s.heartbeat(now, req, &limits, &config, catalog);
        let state = if s.members.is_empty() {
            GroupState::Empty
        } else {
            GroupState::Stable
        };
        if g.state != state {
            g.transition(state, now);
        }
        if result.is_err() && !exists {
            self.groups.remove(group_id);
            writes.clear();
        }
        (result, writes)
    }

    /// Session expiry of share-group members.
    pub(super) fn share_tick(&mut self, now: i64) {
        for g in self.groups.values_mut() {
            let Some(s) = g.share.as_mut() else { continue };
            if s.tick(now) && s.members.is_empty() {
                g.transition(GroupState::Empty, now);
            }
        }
    }

    /// Share-group members of every group here.
    pub fn share_members(&self) -> usize {
        self.groups
            .values()
            .filter_map(|g| g.share.as_ref())
            .map(|s| s.member_count())
            .sum()
    }

    /// ShareGroupDescribe of one group.
    pub fn share_describe(&self, group_id: &str) -> Result<ShareGroupDescription, GroupError> {
        let s = self.share_group(group_id)?;
        Ok(ShareGroupDescription {
            state: s.state_name(),
            epoch: s.epoch,
            assignment_epoch: s.assignment_epoch,
            members: s
                .members
                .iter()
                .map(|(id, m)| ShareMemberDescription {
                    member_id: id.clone(),
                    rack_id: m.rack_id.clone(),
                    member_epoch: m.epoch,
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    subscribed: m.subscribed.clone(),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        })
    }

    /// The stored state of one share partition, and the group's configs.
    pub fn share_state(
        &self,
        group_id: &str,
        topic_id: Uuid,
        partition: i32,
    ) -> Result<(Option<ShareStateValue>, ShareConfig), GroupError> {
        let s = self.share_group(group_id)?;
        Ok((
            s.states.get(&(topic_id, partition)).cloned(),
            self.share_config(group_id),
        ))
    }

    /// Every stored share-partition state of a group.
    pub fn share_states(
        &self,
        group_id: &str,
    ) -> Result<BTreeMap<(Uuid, i32), ShareStateValue>, GroupError> {
        Ok(self.share_group(group_id)?.states.clone())
    }

    /// Checks a leader's write of a share partition's state against what is
    /// stored (state epoch, leader epoch); the write to make.
    pub fn check_share_state(
        &self,
        group_id: &str,
        topic_id: Uuid,
        partition: i32,
        value: ShareStateValue,
    ) -> Result<ShareWrite, GroupError> {
        let s = self.share_group(group_id)?;
        if let Some(stored) = s.states.get(&(topic_id, partition)) {
            if stored.state_epoch != value.state_epoch {
                return Err(GroupError::FencedStateEpoch {
                    given: value.state_epoch,
                    current: stored.state_epoch,
                });
            }
            if stored.leader_epoch > value.leader_epoch {
                return Err(GroupError::FencedLeaderEpoch {
                    given: value.leader_epoch,
                    current: stored.leader_epoch,
                });
            }
        }
        Ok((
            ShareKey::State {
                group: group_id.to_owned(),
                topic_id,
                partition,
            },
            Some(ShareValue::State(value)),
        ))
    }

    /// AlterShareGroupOffsets of an empty share group: each partition
    /// starts again at the given offset, with nothing in flight, under a
    /// new state epoch.
    pub fn alter_share_offsets(
        &self,
        group_id: &str,
        starts: &[(Uuid, i32, i64)],
    ) -> Result<Vec<ShareWrite>, GroupError> {
        let s = self.share_group(group_id)?;
        if !s.members.is_empty() {
            return Err(GroupError::NonEmptyGroup(group_id.to_owned()));
        }
        Ok(starts
            .iter()
            .map(|&(topic_id, partition, start)| {
                let state_epoch = s
                    .states
                    .get(&(topic_id, partition))
                    .map_or(1, |v| v.state_epoch + 1);
                (
                    ShareKey::State {
                        group: group_id.to_owned(),
                        topic_id,
                        partition,
                    },
                    Some(ShareValue::State(ShareStateValue {
                        state_epoch,
                        leader_epoch: -1,
                        start,
                        end: start,
                        available: Vec::new(),
                    })),
                )
            })
            .collect())
    }

    /// DeleteShareGroupOffsets of an empty share group: the states of the
    /// partitions of `topics` (ids) go.
    pub fn delete_share_offsets(
        &self,
        group_id: &str,
        topics: &BTreeSet<Uuid>,
    ) -> Result<Vec<ShareWrite>, GroupError> {
        let s = self.share_group(group_id)?;
        if !s.members.is_empty() {
            return Err(GroupError::NonEmptyGroup(group_id.to_owned()));
        }
        Ok(s.states
            .keys()
            .filter(|(t, _)| topics.contains(t))
            .map(|&(topic_id, partition)| {
                (
                    ShareKey::State {
                        group: group_id.to_owned(),
                        topic_id,
                        partition,
                    },
                    None,
                )
            })
            .collect())
    }

    /// Applies share-group records once they are written (or replayed by a
    /// load).
    pub fn apply_share(&mut self, now: i64, writes: &[ShareWrite]) {
        for (key, value) in writes {
            let group_id = key.group().to_owned();
            match (key, value) {
                (ShareKey::Config { .. }, Some(ShareValue::Config(entries))) => {
                    self.configs
                        .insert(group_id, entries.iter().cloned().collect());
                }
                (ShareKey::Config { .. }, _) => {
                    self.configs.remove(&group_id);
                }
                (ShareKey::Group { .. }, Some(_)) => {
                    let g = self
                        .groups
                        .entry(group_id.clone())
                        .or_insert_with(|| Group::new(&group_id, now));
                    if g.share.is_none() {
                        g.share = Some(Box::default());
                    }
                }
                (ShareKey::Group { .. }, None) => {
                    if self
                        .groups
                        .get(&group_id)
                        .is_some_and(|g| g.share.is_some())
                    {
                        self.groups.remove(&group_id);
                    }
                }
                (
                    ShareKey::State {
                        topic_id,
                        partition,
                        ..
                    },
                    value,
                ) => {
                    let Some(s) = self
                        .groups
                        .get_mut(&group_id)
                        .and_then(|g| g.share.as_mut())
                    else {
                        continue;
                    };
                    match value {
                        Some(ShareValue::State(v)) => {
                            s.states.insert((*topic_id, *partition), v.clone());
                        }
                        _ => {
                            s.states.remove(&(*topic_id, *partition));
                        }
                    }
                }
            }
        }
    }

    /// The records to tombstone when share group `g` is deleted.
    pub(super) fn share_keys(group_id: &str, g: &Group) -> Vec<RecordKey> {
        let Some(s) = g.share.as_ref() else {
            return Vec::new();
        };
        let mut keys: Vec<RecordKey> = s
            .states
            .keys()
            .map(|&(topic_id, partition)| {
                RecordKey::Share(ShareKey::State {
                    group: group_id.to_owned(),
                    topic_id,
                    partition,
                })
            })
            .collect();
        keys.push(RecordKey::Share(ShareKey::Group {
            group: group_id.to_owned(),
        }));
        keys.push(RecordKey::Share(ShareKey::Config {
            group: group_id.to_owned(),
        }));
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> BTreeMap<String, (Uuid, i32)> {
        BTreeMap::from([
            ("one".to_owned(), (Uuid::from_u128(1), 1)),
            ("six".to_owned(), (Uuid::from_u128(6), 6)),
        ])
    }

    fn join(t: &mut GroupTable, member: &str, topics: &[&str]) -> ShareHeartbeatReply {
        let (r, _) = t.share_heartbeat(
            0,
            "g",
            ShareHeartbeat {
                member_id: member.to_owned(),
                member_epoch: 0,
                subscribed: Some(topics.iter().map(|s| s.to_string()).collect()),
                ..Default::default()
            },
            &catalog(),
        );
        r.unwrap()
    }

    fn beat(
        t: &mut GroupTable,
        member: &str,
        epoch: i32,
    ) -> Result<ShareHeartbeatReply, GroupError> {
        t.share_heartbeat(
            0,
            "g",
            ShareHeartbeat {
                member_id: member.to_owned(),
                member_epoch: epoch,
                ..Default::default()
            },
            &catalog(),
        )
        .0
    }

    #[test]
    fn given_three_members_on_one_partition_then_each_is_assigned_it() {
        let mut t = GroupTable::new(Limits::default());
        let a = join(&mut t, "a", &["one"]);
        assert_eq!(
            a.assignment.unwrap()[&Uuid::from_u128(1)],
            BTreeSet::from([0])
        );
        join(&mut t, "b", &["one"]);
        let c = join(&mut t, "c", &["one"]);
        assert_eq!(
            c.assignment.unwrap()[&Uuid::from_u128(1)],
            BTreeSet::from([0])
        );
        // a's epoch is old: the heartbeat brings it the group's.
        let a2 = beat(&mut t, "a", a.member_epoch).unwrap();
        assert_eq!(a2.member_epoch, c.member_epoch);
        let d = t.share_describe("g").unwrap();
        assert_eq!((d.state, d.members.len()), ("Stable", 3));
    }

    #[test]
    fn given_fewer_members_than_partitions_then_each_partition_has_one_member() {
        let mut t = GroupTable::new(Limits::default());
        join(&mut t, "a", &["six"]);
        let b = join(&mut t, "b", &["six"]);
        let d = t.share_describe("g").unwrap();
        let mut all = BTreeSet::new();
        for m in &d.members {
            let ps = &m.assignment[&Uuid::from_u128(6)];
            assert_eq!(ps.len(), 3);
            all.extend(ps.iter().copied());
        }
        assert_eq!(all.len(), 6);
        assert!(b.member_epoch >= 2);
    }

    #[test]
    fn given_a_wrong_epoch_then_fenced_and_an_unknown_member_is_told() {
        let mut t = GroupTable::new(Limits::default());
        let a = join(&mut t, "a", &["one"]);
        assert!(matches!(
            beat(&mut t, "a", a.member_epoch + 5),
            Err(GroupError::FencedMemberEpoch { .. })
        ));
        assert!(matches!(
            beat(&mut t, "x", 1),
            Err(GroupError::UnknownMemberId(_))
        ));
        let left = beat(&mut t, "a", -1).unwrap();
        assert_eq!(left.member_epoch, -1);
        assert_eq!(t.share_describe("g").unwrap().state, "Empty");
    }

    #[test]
    fn given_a_state_written_by_a_newer_leader_or_reset_then_an_older_write_is_fenced() {
        let mut t = GroupTable::new(Limits::default());
        join(&mut t, "a", &["one"]);
        let topic = Uuid::from_u128(1);
        let v = ShareStateValue {
            state_epoch: 0,
            leader_epoch: 3,
            start: 5,
            end: 9,
            available: vec![(6, 7, 1)],
        };
        let w = t.check_share_state("g", topic, 0, v.clone()).unwrap();
        t.apply_share(0, &[w]);
        assert_eq!(t.share_state("g", topic, 0).unwrap().0, Some(v.clone()));
        let older = ShareStateValue {
            leader_epoch: 2,
            ..v.clone()
        };
        assert!(matches!(
            t.check_share_state("g", topic, 0, older),
            Err(GroupError::FencedLeaderEpoch { .. })
        ));
        // Resets need an empty group.
        assert!(matches!(
            t.alter_share_offsets("g", &[(topic, 0, 0)]),
            Err(GroupError::NonEmptyGroup(_))
        ));
        beat(&mut t, "a", -1).unwrap();
        let reset = t.alter_share_offsets("g", &[(topic, 0, 0)]).unwrap();
        t.apply_share(0, &reset);
        assert!(matches!(
            t.check_share_state("g", topic, 0, v),
            Err(GroupError::FencedStateEpoch { .. })
        ));
    }

    #[test]
    fn given_group_configs_then_bad_values_and_unknown_keys_are_refused() {
        let t = GroupTable::new(Limits::default());
        let bad = BTreeMap::from([("share.record.lock.duration.ms".to_owned(), "100".to_owned())]);
        let e = t.set_group_config("g", bad).unwrap_err();
        assert!(
            e.to_string().contains("share.record.lock.duration.ms"),
            "{e}"
        );
        let unknown = BTreeMap::from([("share.colour".to_owned(), "blue".to_owned())]);
        assert!(t.set_group_config("g", unknown).is_err());
        let ok = BTreeMap::from([("share.delivery.count.limit".to_owned(), "3".to_owned())]);
        let w = t.set_group_config("g", ok).unwrap();
        let mut t = t;
        t.apply_share(0, &[w]);
        assert_eq!(t.share_config("g").delivery_count_limit, 3);
    }
}
