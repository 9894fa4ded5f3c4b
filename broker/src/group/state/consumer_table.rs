//! The [`GroupTable`] entry points of consumer-protocol groups (KIP-848):
//! heartbeats, describing, and what a group id's protocol means to the
//! classic entry points. A group id is either a classic group or a
//! consumer group; an empty one converts to the other protocol when a
//! member of that protocol joins, as in Kafka. A group with members of one
//! protocol refuses members of the other.

use std::collections::BTreeMap;

use super::consumer::ConsumerGroup;
use super::table::check_group_id;
use super::*;
use crate::group::error::GroupError;
use crate::group::records::{ConsumerKey, ConsumerValue, RecordKey};

impl GroupTable {
    /// ConsumerGroupHeartbeat. The answer goes out once the returned
    /// effects' records are written.
    pub fn consumer_heartbeat(
        &mut self,
        now: i64,
        group_id: &str,
        req: ConsumerHeartbeat,
        catalog: &dyn TopicCatalog,
    ) -> (Result<ConsumerHeartbeatReply, GroupError>, Effects) {
        let mut fx = Effects::default();
        if let Err(e) = check_group_id(group_id) {
            return (Err(e), fx);
        }
        if self.groups.get(group_id).is_some_and(|g| g.share.is_some()) {
            let e = GroupError::WrongGroupType {
                group: group_id.to_owned(),
                is: "share",
            };
            return (Err(e), fx);
        }
        if !self.groups.contains_key(group_id) && req.member_epoch != consumer::JOIN_EPOCH {
            return (Err(GroupError::UnknownMemberId(req.member_id)), fx);
        }
        let limits = self.limits.clone();
        let g = self
            .groups
            .entry(group_id.to_owned())
            .or_insert_with(|| Group::new(group_id, now));
        if g.consumer.is_none() && (!g.members.is_empty() || g.state != GroupState::Empty) {
            // The online upgrade: a Stable classic group of consumers
            // becomes a consumer group with its members.
            if g.state != GroupState::Stable {
                return (
                    Err(GroupError::RebalancingForUpgrade(group_id.to_owned())),
                    fx,
                );
            }
            let converted = (g.protocol_type.as_deref() == Some(CONSUMER_PROTOCOL_TYPE))
                .then(|| ConsumerGroup::from_classic(g, now, catalog))
                .flatten();
            let Some((c, writes)) = converted else {
                return (
                    Err(GroupError::WrongGroupType {
                        group: group_id.to_owned(),
                        is: "classic",
                    }),
                    fx,
                );
            };
            fx.tombstones.push(RecordKey::Group {
                group: group_id.to_owned(),
            });
            fx.consumer.extend(writes);
            g.members.clear();
            g.static_members.clear();
            g.pending_members.clear();
            g.pending_sync.clear();
            g.protocol_type = None;
            g.protocol = None;
            g.leader = None;
            g.generation = 0;
            g.consumer = Some(Box::new(c));
        }
        if g.consumer.is_none() {
            // An empty classic group (or offsets only) becomes a consumer
            // group.
            if g.protocol_type.take().is_some() {
                fx.tombstones.push(RecordKey::Group {
                    group: group_id.to_owned(),
                });
            }
            g.generation = 0;
            g.protocol = None;
            g.leader = None;
            g.consumer = Some(Box::default());
        }
        let c = g.consumer.as_mut().expect("consumer group");
        let epoch_before = c.epoch;
        let result = c.heartbeat(group_id, now, req, &limits, catalog);
        let empty = c.member_count() == 0;
        let unused = empty && c.epoch == 0;
        match result {
            Ok((reply, writes)) => {
                fx.consumer.extend(writes);
                if g.consumer.as_ref().is_some_and(|c| c.epoch != epoch_before) {
                    fx.rebalances += 1;
                }
                if empty {
                    g.transition(GroupState::Empty, now);
                }
                (Ok(reply), fx)
            }
            Err(e) => {
                if unused && g.offsets.is_empty() {
                    self.groups.remove(group_id);
                }
                (Err(e), fx)
            }
        }
    }

    /// Consumer-protocol members of every group here.
    pub fn consumer_members(&self) -> usize {
        self.groups
            .values()
            .filter_map(|g| g.consumer.as_ref())
            .map(|c| c.member_count())
            .sum()
    }

    /// A classic member's JoinGroup in a consumer-protocol group with
    /// members ([`super::consumer_classic`]); `None` when the group is not
    /// one.
    pub(super) fn classic_join_in_consumer_group(
        &mut self,
        now: i64,
        request: RequestId,
        group_id: &str,
        req: &JoinRequest,
        catalog: &dyn TopicCatalog,
    ) -> Option<Effects> {
        let limits = self.limits.clone();
        let g = self.groups.get_mut(group_id)?;
        let c = g.consumer.as_mut().filter(|c| c.member_count() > 0)?;
        let mut fx = Effects::default();
        match c.classic_join(group_id, now, req, &limits, catalog) {
            Ok((reply, writes)) => {
                fx.consumer = writes;
                fx.reply(request, Reply::Join(reply));
            }
            Err(e) => fx.join_error(request, e, &req.member_id),
        }
        Some(fx)
    }

    /// ConsumerGroupDescribe of one group.
    pub fn consumer_describe(
        &self,
        group_id: &str,
    ) -> Result<ConsumerGroupDescription, GroupError> {
        let g = self
            .groups
            .get(group_id)
            .ok_or_else(|| GroupError::GroupIdNotFound(group_id.to_owned()))?;
        match &g.consumer {
            Some(c) => Ok(c.describe()),
            None => Err(GroupError::WrongGroupType {
                group: group_id.to_owned(),
                is: "classic",
            }),
        }
    }

    /// A classic member joining `group_id`: refused while the group has
    /// consumer-protocol members; an empty consumer group becomes classic
    /// (its records are deleted).
    pub(super) fn classic_join_allowed(
        &mut self,
        group_id: &str,
        fx: &mut Effects,
    ) -> Result<(), GroupError> {
        let Some(g) = self.groups.get_mut(group_id) else {
            return Ok(());
        };
        let Some(c) = &g.consumer else {
            return Ok(());
        };
        if c.member_count() > 0 {
            return Err(GroupError::WrongGroupType {
                group: group_id.to_owned(),
                is: "consumer",
            });
        }
        g.consumer = None;
        fx.consumer.extend(
            ConsumerGroup::group_keys(group_id)
                .into_iter()
                .map(|k| (k, None)),
        );
        Ok(())
    }

    /// Runs the consumer groups' timers.
    pub(super) fn consumer_tick(&mut self, now: i64, fx: &mut Effects) {
        for (id, g) in &mut self.groups {
            let Some(c) = g.consumer.as_mut() else {
                continue;
            };
            let had = c.member_count();
            fx.consumer.extend(c.tick(id, now));
            if had > 0 && c.member_count() == 0 {
                g.transition(GroupState::Empty, now);
            }
        }
    }

    /// Installs consumer groups from their latest records.
    pub(super) fn load_consumer_groups(
        &mut self,
        records: BTreeMap<String, BTreeMap<ConsumerKey, ConsumerValue>>,
        now: i64,
    ) {
        for (id, recs) in records {
            if recs.is_empty() {
                continue;
            }
            let c = ConsumerGroup::from_records(recs, now, &self.limits);
            let g = self
                .groups
                .entry(id.clone())
                .or_insert_with(|| Group::new(&id, now));
            g.consumer = Some(Box::new(c));
        }
    }
}

impl Group {
    /// The keys to tombstone, besides offsets and classic metadata, when
    /// the group goes.
    pub(super) fn consumer_keys(&self) -> Vec<RecordKey> {
        match &self.consumer {
            Some(_) => ConsumerGroup::group_keys(&self.id)
                .into_iter()
                .map(RecordKey::Consumer)
                .collect(),
            None => Vec::new(),
        }
    }

    /// Whether the group has members of either protocol.
    pub(super) fn has_members(&self) -> bool {
        !self.members.is_empty()
            || self.consumer.as_ref().is_some_and(|c| c.member_count() > 0)
            || self.share.as_ref().is_some_and(|s| s.member_count() > 0)
    }
}
