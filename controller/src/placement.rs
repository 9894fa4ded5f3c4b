//! Replica placement for new partitions, and for the replicas that replace
//! drained ones ([`Placer`]): balanced, rack-aware, stable.
//!
//! - Balanced: each partition's preferred leader is the broker leading the
//!   fewest partitions so far (counting existing topics), and followers are
//!   the brokers holding the fewest replicas.
//! - Rack-aware: followers come from racks the partition does not use yet
//!   while such racks remain.
//! - Stable: only new partitions are placed; existing replicas move only
//!   when a drain asks (`Controller::drain`).
//! - Deterministic: ties break on broker id, so the same input gives the
//!   same placement.

use std::collections::{BTreeMap, BTreeSet};

use thiserror::Error;

use crate::state::{BrokerId, ClusterMetadata};

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PlacementError {
    #[error("replication factor {rf} is larger than the {available} available brokers")]
    NotEnoughBrokers { rf: usize, available: usize },
    #[error("replication factor must be at least 1")]
    ZeroReplicationFactor,
}

#[derive(Default, Clone, Copy)]
struct Load {
    leaders: usize,
    replicas: usize,
}

/// The brokers replicas may go to, with their racks and what they hold,
/// kept up to date as replicas are added.
pub struct Placer<'a> {
    rack_of: BTreeMap<BrokerId, Option<&'a str>>,
    load: BTreeMap<BrokerId, Load>,
}

impl<'a> Placer<'a> {
    /// `brokers` (id, rack), loaded with the existing assignments in `meta`.
    pub fn new(meta: &ClusterMetadata, brokers: &'a [(BrokerId, Option<String>)]) -> Self {
        let rack_of = brokers
            .iter()
            .map(|(id, rack)| (*id, rack.as_deref()))
            .collect();
        let mut load: BTreeMap<BrokerId, Load> = brokers
            .iter()
            .map(|(id, _)| (*id, Load::default()))
            .collect();
        for p in meta.topics.values().flat_map(|t| &t.partitions) {
            for (i, r) in p.replicas.iter().enumerate() {
                if let Some(l) = load.get_mut(r) {
                    l.replicas += 1;
                    if i == 0 {
                        l.leaders += 1;
                    }
                }
            }
        }
        Self { rack_of, load }
    }

    /// The rack of one of the brokers.
    pub fn rack(&self, id: BrokerId) -> Option<&'a str> {
        self.rack_of.get(&id).copied().flatten()
    }

    /// The broker leading the fewest partitions (then holding the fewest
    /// replicas).
    fn leader(&self) -> Option<BrokerId> {
        self.load
            .iter()
            .min_by_key(|(id, l)| (l.leaders, l.replicas, **id))
            .map(|(id, _)| *id)
    }

    /// A broker for one more replica of a partition on `chosen`, whose
    /// replicas use `racks`: the one holding the fewest replicas on a rack
    /// the partition does not use, else the one holding the fewest
    /// replicas; `None` when every broker already holds one.
    pub fn follower(
        &self,
        chosen: &[BrokerId],
        racks: &BTreeSet<Option<&str>>,
    ) -> Option<BrokerId> {
        let candidates = self.load.iter().filter(|(id, _)| !chosen.contains(id));
        let fresh_rack = candidates
            .clone()
            .filter(|(id, _)| self.rack_of[*id].is_some() && !racks.contains(&self.rack_of[*id]))
            .min_by_key(|(id, l)| (l.replicas, **id));
        fresh_rack
            .or_else(|| candidates.min_by_key(|(id, l)| (l.replicas, **id)))
            .map(|(id, _)| *id)
    }

    /// Counts a replica added on `id`.
    pub fn add(&mut self, id: BrokerId, leader: bool) {
        let l = self.load.get_mut(&id).expect("a broker of the placer");
        l.replicas += 1;
        if leader {
            l.leaders += 1;
        }
    }
}

/// Places `count` new partitions with `rf` replicas each on `brokers`
/// (id, rack), given the existing assignments in `meta`. Returns each new
/// partition's replica list, preferred leader first.
pub fn place(
    meta: &ClusterMetadata,
    brokers: &[(BrokerId, Option<String>)],
    count: usize,
    rf: usize,
) -> Result<Vec<Vec<BrokerId>>, PlacementError> {
    if rf == 0 {
        return Err(PlacementError::ZeroReplicationFactor);
    }
    if rf > brokers.len() {
        return Err(PlacementError::NotEnoughBrokers {
            rf,
            available: brokers.len(),
        });
    }
    let mut placer = Placer::new(meta, brokers);
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let leader = placer.leader().expect("at least rf >= 1 brokers");
        let mut chosen = vec![leader];
        let mut racks = BTreeSet::from([placer.rack(leader)]);
        while chosen.len() < rf {
            let pick = placer.follower(&chosen, &racks).expect("rf <= brokers");
            racks.insert(placer.rack(pick));
            chosen.push(pick);
        }
        for (i, id) in chosen.iter().enumerate() {
            placer.add(*id, i == 0);
        }
        out.push(chosen);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{PartitionState, TopicState};

    fn brokers(n: i32, racks: Option<&[&str]>) -> Vec<(BrokerId, Option<String>)> {
        (0..n)
            .map(|i| (i, racks.map(|r| r[i as usize % r.len()].to_owned())))
            .collect()
    }

    fn with_topic(replicas: Vec<Vec<BrokerId>>) -> ClusterMetadata {
        let mut m = ClusterMetadata::default();
        m.topics.insert(
            "t".into(),
            TopicState {
                name: "t".into(),
                id: "t-id".into(),
                config: Default::default(),
                partitions: replicas
                    .into_iter()
                    .map(|r| PartitionState {
                        isr: r.clone(),
                        leader: r[0],
                        replicas: r,
                        leader_epoch: 0,
                        partition_epoch: 0,
                        removing: Vec::new(),
                        adding: Vec::new(),
                    })
                    .collect(),
            },
        );
        m
    }

    #[test]
    fn given_three_brokers_when_six_partitions_rf3_then_leaders_and_replicas_balanced() {
        let p = place(&ClusterMetadata::default(), &brokers(3, None), 6, 3).unwrap();
        let mut leaders = [0; 3];
        for r in &p {
            assert_eq!(r.len(), 3);
            assert_eq!(
                r.iter().collect::<BTreeSet<_>>().len(),
                3,
                "distinct replicas"
            );
            leaders[r[0] as usize] += 1;
        }
        assert_eq!(leaders, [2, 2, 2]);
    }

    #[test]
    fn given_existing_topic_then_new_leaders_go_to_least_loaded_brokers() {
        let meta = with_topic(vec![vec![0, 1], vec![0, 2]]);
        let p = place(&meta, &brokers(3, None), 2, 2).unwrap();
        assert_ne!(p[0][0], 0);
        assert_ne!(p[1][0], 0);
        assert_ne!(p[0][0], p[1][0]);
    }

    #[test]
    fn given_racks_then_replicas_spread_across_racks() {
        let b = brokers(6, Some(&["a", "a", "b", "b", "c", "c"]));
        let p = place(&ClusterMetadata::default(), &b, 12, 3).unwrap();
        for r in p {
            let racks: BTreeSet<_> = r.iter().map(|id| b[*id as usize].1.clone()).collect();
            assert_eq!(racks.len(), 3, "replicas {r:?} share a rack");
        }
    }

    #[test]
    fn given_too_few_brokers_then_clear_error() {
        assert_eq!(
            place(&ClusterMetadata::default(), &brokers(2, None), 1, 3),
            Err(PlacementError::NotEnoughBrokers {
                rf: 3,
                available: 2
            })
        );
        assert_eq!(
            place(&ClusterMetadata::default(), &brokers(2, None), 1, 0),
            Err(PlacementError::ZeroReplicationFactor)
        );
    }
}
