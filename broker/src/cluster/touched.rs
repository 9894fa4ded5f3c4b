//! Which local replicas one metadata update may change.
//!
//! A broker hosting thousands of partitions gets an update for every
//! leader or ISR change anywhere in the cluster. Giving every hosted
//! replica its role again for each of them costs work that grows with the
//! number of partitions, for updates that name one. [`Touched`] reads the
//! update and names what it can change here: everything (a snapshot, or a
//! pass that failed before), whole topics (created, resized or
//! reconfigured), single partitions (new leader, ISR or replicas), and the
//! followers of brokers whose registration or state changed (a new
//! replication address).

use std::collections::{BTreeMap, BTreeSet};

use rill_controller::client::MetadataUpdate;

/// What one metadata update may have changed among the local replicas.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Touched {
    /// Every topic and partition.
    all: bool,
    /// Whole topics.
    topics: BTreeSet<String>,
    /// Single partitions, by topic.
    partitions: BTreeMap<String, BTreeSet<i32>>,
    /// Brokers whose followers here must be pointed at them again.
    brokers: BTreeSet<i32>,
}

impl Touched {
    /// Everything: a full pass.
    pub fn all() -> Self {
        Self {
            all: true,
            ..Self::default()
        }
    }

    /// What `update` names.
    pub fn of(update: &MetadataUpdate) -> Self {
        if update.snapshot {
            return Self::all();
        }
        let mut touched = Self::default();
        for t in &update.topics {
            touched.topics.insert(t.name.clone());
        }
        for p in &update.partitions {
            touched
                .partitions
                .entry(p.topic.clone())
                .or_default()
                .insert(p.partition);
        }
        touched.brokers = update.brokers.iter().map(|b| b.id).collect();
        touched
    }

    /// Whether `topic` as a whole (its hosted set and config) must be
    /// looked at: the topic itself changed, or any of its partitions.
    pub fn topic(&self, topic: &str) -> bool {
        self.all
            || !self.brokers.is_empty()
            || self.topics.contains(topic)
            || self.partitions.contains_key(topic)
    }

    /// Whether the role of `topic`-`partition`, led by `leader`, must be
    /// given again.
    pub fn partition(&self, topic: &str, partition: i32, leader: i32) -> bool {
        self.all
            || self.topics.contains(topic)
            || self.brokers.contains(&leader)
            || self
                .partitions
                .get(topic)
                .is_some_and(|ids| ids.contains(&partition))
    }

    /// Adds what `other` touches (an update whose pass failed is looked
    /// at again with the next one).
    pub fn merge(&mut self, other: Touched) {
        self.all |= other.all;
        self.topics.extend(other.topics);
        for (topic, ids) in other.partitions {
            self.partitions.entry(topic).or_default().extend(ids);
        }
        self.brokers.extend(other.brokers);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rill_controller::client::{BrokerInfo, PartitionUpdate};
    use rill_controller::{Endpoints, Liveness, PartitionState, TopicState};

    fn update() -> MetadataUpdate {
        MetadataUpdate {
            controller_epoch: 1,
            ..MetadataUpdate::default()
        }
    }

    fn partition(topic: &str, partition: i32) -> PartitionUpdate {
        PartitionUpdate {
            topic: topic.into(),
            partition,
            state: PartitionState {
                replicas: vec![1, 2, 3],
                isr: vec![1, 2, 3],
                leader: 1,
                leader_epoch: 0,
                partition_epoch: 0,
                removing: vec![],
                adding: vec![],
            },
        }
    }

    #[test]
    fn given_a_snapshot_then_every_partition_is_touched() {
        let touched = Touched::of(&MetadataUpdate {
            snapshot: true,
            ..update()
        });
        assert!(touched.topic("a"));
        assert!(touched.partition("a", 7, 2));
    }

    #[test]
    fn given_one_partition_change_then_only_that_partition_is_touched() {
        let touched = Touched::of(&MetadataUpdate {
            partitions: vec![partition("a", 3)],
            ..update()
        });
        assert!(touched.topic("a"));
        assert!(!touched.topic("b"));
        assert!(touched.partition("a", 3, 1));
        assert!(!touched.partition("a", 4, 1));
        assert!(!touched.partition("b", 3, 1));
    }

    #[test]
    fn given_a_topic_change_then_all_its_partitions_are_touched() {
        let touched = Touched::of(&MetadataUpdate {
            topics: vec![TopicState {
                name: "a".into(),
                id: "id".into(),
                partitions: vec![],
                config: BTreeMap::new(),
            }],
            ..update()
        });
        assert!(touched.topic("a"));
        assert!(touched.partition("a", 999, 1));
        assert!(!touched.topic("b"));
    }

    #[test]
    fn given_a_broker_change_then_the_partitions_it_leads_are_touched() {
        let touched = Touched::of(&MetadataUpdate {
            brokers: vec![BrokerInfo {
                id: 2,
                epoch: 1,
                endpoints: Endpoints::default(),
                rack: None,
                state: Liveness::Active,
            }],
            ..update()
        });
        assert!(touched.topic("any"));
        assert!(touched.partition("any", 5, 2));
        assert!(!touched.partition("any", 5, 1));
    }

    #[test]
    fn given_a_failed_pass_then_merging_keeps_what_it_touched() {
        let mut pending = Touched::of(&MetadataUpdate {
            partitions: vec![partition("a", 3)],
            ..update()
        });
        pending.merge(Touched::of(&MetadataUpdate {
            partitions: vec![partition("b", 1)],
            ..update()
        }));
        assert!(pending.partition("a", 3, 1));
        assert!(pending.partition("b", 1, 1));
        assert!(!pending.partition("a", 1, 1));
        pending.merge(Touched::all());
        assert!(pending.partition("c", 0, 0));
    }
}
