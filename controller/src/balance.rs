//! Automatic balance after a scale-up: which partitions to move so every
//! eligible broker holds as many replicas as the others, give or take one,
//! and leads (as preferred leader) as many partitions, give or take one.
//!
//! [`plan`] is pure: the controller calls it on a lease tick when no move
//! is in flight (see `Controller::balance`), starts the moves it returns
//! like reassignments (new replicas catch up, throttled, and the old ones
//! leave once the target is in sync), and, once the moves are done, elects
//! the preferred leaders.
//!
//! - Eligible brokers: registered, active and not being drained; replicas
//!   on other brokers are neither moved nor added to.
//! - Minimal: each replica move takes one replica from a broker holding
//!   the most to one holding the fewest, so the number of moves is the
//!   excess above the balanced count; nothing moves when the counts
//!   already differ by at most 1. Preferred leaders are balanced by
//!   reordering replicas, which moves no data.
//! - A few at a time: at most `max_moves` replica moves per plan; the next
//!   plan is made when they are done.
//! - Rack-agnostic and deterministic (ties break on topic, partition and
//!   broker id).

use std::collections::{BTreeMap, BTreeSet};

use crate::state::{BrokerId, ClusterMetadata};

/// One partition's new replica list, preferred leader first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    pub topic: String,
    pub partition: i32,
    pub target: Vec<BrokerId>,
    /// Whether replicas change (false: only their order, for leadership).
    pub moves_data: bool,
}

/// Counts per eligible broker: (replicas, preferred leaderships).
fn counts(
    assignment: &BTreeMap<(String, i32), Vec<BrokerId>>,
    eligible: &BTreeSet<BrokerId>,
) -> (BTreeMap<BrokerId, usize>, BTreeMap<BrokerId, usize>) {
    let mut replicas: BTreeMap<BrokerId, usize> = eligible.iter().map(|b| (*b, 0)).collect();
    let mut leaders = replicas.clone();
    for r in assignment.values() {
        for (i, b) in r.iter().enumerate() {
            if let Some(c) = replicas.get_mut(b) {
                *c += 1;
                if i == 0 {
                    *leaders.get_mut(b).expect("same keys") += 1;
                }
            }
        }
    }
    (replicas, leaders)
}

/// The moves that balance replica and preferred-leader counts over the
/// `eligible` brokers, at most `max_moves` of them moving data. Partitions
/// with a move in flight are left alone.
pub fn plan(meta: &ClusterMetadata, eligible: &BTreeSet<BrokerId>, max_moves: usize) -> Vec<Move> {
    if eligible.len() < 2 {
        return Vec::new();
    }
    let original: BTreeMap<(String, i32), Vec<BrokerId>> = meta
        .topics
        .iter()
        .flat_map(|(name, t)| {
            t.partitions
                .iter()
                .enumerate()
                .map(move |(i, p)| ((name.clone(), i as i32), p.clone()))
        })
        .filter(|(_, p)| !p.moving())
        .map(|(k, p)| (k, p.replicas))
        .collect();
    let mut assignment = original.clone();
    let mut moved: BTreeSet<(String, i32)> = BTreeSet::new();

    // Replicas: from a fullest broker to an emptiest one.
    while moved.len() < max_moves {
        let (replicas, _) = counts(&assignment, eligible);
        let Some((&hi, &most)) = replicas.iter().max_by_key(|(b, c)| (**c, -**b)) else {
            break;
        };
        let mut lows: Vec<(usize, BrokerId)> = replicas
            .iter()
            .filter(|(_, c)| most - **c > 1)
            .map(|(b, c)| (*c, *b))
            .collect();
        lows.sort();
        let pick = lows.iter().find_map(|&(_, lo)| {
            assignment
                .iter()
                .filter(|(k, _)| !moved.contains(*k))
                .find(|(_, r)| r.contains(&hi) && !r.contains(&lo))
                .map(|(k, _)| (k.clone(), lo))
        });
        let Some((key, lo)) = pick else {
            break;
        };
        let r = assignment.get_mut(&key).expect("picked from it");
        let at = r.iter().position(|b| *b == hi).expect("contains hi");
        r[at] = lo;
        moved.insert(key);
    }

    // Preferred leaders: swap a leader-heavy first replica with a
    // leader-light one already in the partition.
    let limit = assignment.len();
    for _ in 0..limit {
        let (_, leaders) = counts(&assignment, eligible);
        let Some((&hi, &most)) = leaders.iter().max_by_key(|(b, c)| (**c, -**b)) else {
            break;
        };
        let pick = assignment.iter().find_map(|(k, r)| {
            if r.first() != Some(&hi) {
                return None;
            }
            r.iter()
                .skip(1)
                .filter(|b| leaders.get(b).is_some_and(|c| most - *c > 1))
                .min_by_key(|b| (leaders[b], **b))
                .map(|lo| (k.clone(), *lo))
        });
        let Some((key, lo)) = pick else {
            break;
        };
        let r = assignment.get_mut(&key).expect("picked from it");
        let at = r.iter().position(|b| *b == lo).expect("contains lo");
        r.swap(0, at);
    }

    assignment
        .into_iter()
        .filter(|(k, r)| original[k] != *r)
        .map(|((topic, partition), target)| {
            let before: BTreeSet<BrokerId> = original[&(topic.clone(), partition)]
                .iter()
                .copied()
                .collect();
            let moves_data = target.iter().any(|b| !before.contains(b));
            Move {
                topic,
                partition,
                target,
                moves_data,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::election::new_partition;
    use crate::placement::place;
    use crate::state::TopicState;

    /// Topics `t0..` with the given partition counts and RF, placed on
    /// brokers `0..brokers`.
    fn cluster(brokers: i32, topics: &[(usize, usize)]) -> ClusterMetadata {
        let ids: Vec<(BrokerId, Option<String>)> = (0..brokers).map(|b| (b, None)).collect();
        let mut meta = ClusterMetadata::default();
        for (i, (partitions, rf)) in topics.iter().enumerate() {
            let replicas = place(&meta, &ids, *partitions, *rf).expect("placed");
            let name = format!("t{i}");
            meta.topics.insert(
                name.clone(),
                TopicState {
                    name,
                    id: format!("id-{i}"),
                    partitions: replicas.into_iter().map(new_partition).collect(),
                    config: Default::default(),
                },
            );
        }
        meta
    }

    /// Applies moves as the controller would once they complete.
    fn apply(meta: &mut ClusterMetadata, moves: &[Move]) {
        for m in moves {
            let p =
                &mut meta.topics.get_mut(&m.topic).expect("topic").partitions[m.partition as usize];
            p.replicas = m.target.clone();
            p.isr = m.target.clone();
            p.leader = m.target[0];
        }
    }

    fn spread(meta: &ClusterMetadata, eligible: &BTreeSet<BrokerId>) -> (usize, usize) {
        let assignment = meta
            .topics
            .iter()
            .flat_map(|(n, t)| {
                t.partitions
                    .iter()
                    .enumerate()
                    .map(move |(i, p)| ((n.clone(), i as i32), p.replicas.clone()))
            })
            .collect();
        let (r, l) = counts(&assignment, eligible);
        let d = |m: &BTreeMap<BrokerId, usize>| {
            m.values().max().unwrap_or(&0) - m.values().min().unwrap_or(&0)
        };
        (d(&r), d(&l))
    }

    fn ids(n: i32) -> BTreeSet<BrokerId> {
        (0..n).collect()
    }

    #[test]
    fn given_three_brokers_scaled_to_five_when_balanced_in_rounds_then_replica_and_leader_counts_differ_by_at_most_one()
     {
        let topics = [(12, 3), (7, 3), (5, 2), (1, 1), (9, 3), (3, 2)];
        let mut meta = cluster(3, &topics);
        let total: usize = topics.iter().map(|(p, rf)| p * rf).sum();
        let five = ids(5);
        let mut rounds = 0;
        let mut data_moves = 0;
        loop {
            let moves = plan(&meta, &five, 4);
            if moves.is_empty() {
                break;
            }
            assert!(
                moves.iter().filter(|m| m.moves_data).count() <= 4,
                "a few at a time: {moves:?}"
            );
            data_moves += moves
                .iter()
                .map(|m| {
                    let before = &meta.topics[&m.topic].partitions[m.partition as usize].replicas;
                    m.target.iter().filter(|b| !before.contains(b)).count()
                })
                .sum::<usize>();
            apply(&mut meta, &moves);
            rounds += 1;
            assert!(rounds < 100, "the plan converges");
        }
        let (replicas, leaders) = spread(&meta, &five);
        assert!(replicas <= 1, "replica counts differ by {replicas}");
        assert!(leaders <= 1, "leader counts differ by {leaders}");
        // Minimal: the new brokers get floor or ceil of the average, and
        // only that many replicas moved.
        let floor = total / 5;
        assert!(
            data_moves <= 2 * (floor + 1),
            "{data_moves} replicas moved for two new brokers of {floor}-{} each",
            floor + 1
        );
        for t in meta.topics.values() {
            for p in &t.partitions {
                let distinct: BTreeSet<_> = p.replicas.iter().collect();
                assert_eq!(distinct.len(), p.replicas.len(), "no broker twice: {p:?}");
            }
        }
    }

    #[test]
    fn given_balanced_brokers_then_nothing_moves() {
        let meta = cluster(3, &[(6, 3), (3, 1)]);
        assert_eq!(plan(&meta, &ids(3), 4), Vec::new());
    }

    #[test]
    fn given_brokers_not_eligible_then_they_get_nothing_and_their_replicas_stay() {
        let meta = cluster(3, &[(12, 2)]);
        // Brokers 3 and 4 joined, but 4 is being drained.
        let eligible: BTreeSet<BrokerId> = [0, 1, 2, 3].into();
        let mut meta = meta;
        for _ in 0..50 {
            let moves = plan(&meta, &eligible, 4);
            if moves.is_empty() {
                break;
            }
            assert!(
                moves.iter().all(|m| !m.target.contains(&4)),
                "a drained broker gets nothing: {moves:?}"
            );
            apply(&mut meta, &moves);
        }
        let (replicas, _) = spread(&meta, &eligible);
        assert!(replicas <= 1);
    }

    #[test]
    fn given_a_partition_moving_then_it_is_left_alone() {
        let mut meta = cluster(3, &[(1, 3)]);
        let p = &mut meta.topics.get_mut("t0").expect("t0").partitions[0];
        p.replicas.push(3);
        p.adding = vec![3];
        assert_eq!(plan(&meta, &ids(5), 4), Vec::new());
    }
}
