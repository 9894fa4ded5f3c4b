//! The offsets a [`GroupTable`] keeps: commits in flight, committed
//! offsets and their expiry.

use std::collections::BTreeMap;

use super::*;
use crate::group::error::GroupError;
use crate::group::records::{CommittedOffset, RecordKey};

impl GroupTable {
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
        self.validate_commit_of(now, group_id, member_id, instance_id, generation, &[])
    }

    /// [`Self::validate_commit`] of a commit of `partitions`: a member of a
    /// consumer-protocol group may commit with an older member epoch the
    /// partitions it has owned since that epoch (KIP-1251), as a commit
    /// sent just before its epoch moved on.
    pub fn validate_commit_of(
        &mut self,
        now: i64,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        partitions: &[(String, i32)],
    ) -> Result<(), GroupError> {
        match self.groups.get_mut(group_id) {
            Some(g) => match &g.consumer {
                Some(c) => c.validate_commit(member_id, generation, partitions),
                None => g.validate_commit(now, member_id, instance_id, generation),
            },
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
            if g.state != GroupState::Empty || g.has_members() {
                continue;
            }
            let by_state = g.protocol_type.is_some() || g.consumer.is_some();
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
            if let Some(g) = self.groups.remove(&id) {
                tombstones.extend(g.consumer_keys());
            }
            tombstones.push(RecordKey::Group { group: id });
        }
        tombstones
    }

    /// Every committed offset: (group, topic, partition, offset).
    pub fn all_offsets(&self) -> impl Iterator<Item = (&str, &str, i32, i64)> {
        self.groups.values().flat_map(|g| {
            g.offsets
                .iter()
                .map(move |((t, p), o)| (g.id.as_str(), t.as_str(), *p, o.offset))
        })
    }
}
