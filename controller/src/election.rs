//! Transitions of partition state that the controller's operations share:
//! a new partition, leader election from the ISR (or, when allowed, from
//! any usable replica), removing a fenced or departing broker from ISRs
//! and leaderships, finishing replica moves, and bumping the partition
//! epoch of every partition a plan changed. Pure functions over
//! [`ClusterMetadata`] and [`PartitionState`].

use crate::state::{BrokerId, ClusterMetadata, NO_LEADER, PartitionState};

pub(crate) fn new_partition(replicas: Vec<BrokerId>) -> PartitionState {
    PartitionState {
        leader: replicas[0],
        isr: replicas.clone(),
        replicas,
        leader_epoch: 0,
        partition_epoch: 0,
        removing: Vec::new(),
        adding: Vec::new(),
    }
}

pub(crate) fn set_leader(p: &mut PartitionState, leader: BrokerId) {
    if p.leader != leader {
        p.leader = leader;
        p.leader_epoch += 1;
    }
}

/// The first in-sync, usable replica in preference order; with unclean
/// election allowed, any usable replica (which then becomes the whole ISR).
pub(crate) fn elect(p: &mut PartitionState, unclean: bool, usable: &dyn Fn(BrokerId) -> bool) {
    if let Some(&r) = p.replicas.iter().find(|r| p.isr.contains(r) && usable(**r)) {
        set_leader(p, r);
    } else if let Some(&r) = p.replicas.iter().find(|r| unclean && usable(**r)) {
        set_leader(p, r);
        p.isr = vec![r];
    } else {
        set_leader(p, NO_LEADER);
    }
}

/// Takes `broker` out of leadership and ISRs. It stays in an ISR where it
/// is the last member (so it can lead again once back, rather than forcing
/// an unclean election), unless its disk was wiped.
pub(crate) fn remove_broker(
    meta: &mut ClusterMetadata,
    broker: BrokerId,
    wiped: bool,
    usable: &dyn Fn(BrokerId) -> bool,
) {
    for t in meta.topics.values_mut() {
        let unclean = t.unclean_election();
        for p in &mut t.partitions {
            if p.isr.contains(&broker) && (p.isr.len() > 1 || wiped) {
                p.isr.retain(|r| *r != broker);
            }
            if p.leader == broker {
                elect(p, unclean, usable);
            }
        }
    }
}

/// Elects leaders for partitions that have none, where possible.
pub(crate) fn elect_leaderless(meta: &mut ClusterMetadata, usable: &dyn Fn(BrokerId) -> bool) {
    for t in meta.topics.values_mut() {
        let unclean = t.unclean_election();
        for p in t.partitions.iter_mut().filter(|p| p.leader == NO_LEADER) {
            elect(p, unclean, usable);
        }
    }
}

/// Starts moving `p` to the `target` replicas (KIP-455), or changes the
/// target of the move in flight: the replicas become the target followed
/// by the original replicas (those before any move) it leaves out; the
/// original ones outside the target are `removing` and the new ones
/// `adding`. A target equal to the original replicas cancels the move:
/// replicas that were being added leave at once.
///
/// Replicas that leave at once (added by an earlier target, not in this
/// one) also leave the ISR. That is refused when it would leave the ISR
/// empty or below `min_isr`: they may hold the only in-sync copies.
pub(crate) fn start_move(
    p: &mut PartitionState,
    target: &[BrokerId],
    min_isr: usize,
    usable: &dyn Fn(BrokerId) -> bool,
) -> Result<(), String> {
    let original = p.original();
    let mut replicas = target.to_vec();
    replicas.extend(original.iter().copied().filter(|r| !target.contains(r)));
    let isr: Vec<BrokerId> = p
        .isr
        .iter()
        .copied()
        .filter(|r| replicas.contains(r))
        .collect();
    if isr.len() < p.isr.len() && (isr.is_empty() || isr.len() < min_isr) {
        return Err(format!(
            "replicas {:?} would leave the ISR {:?} now, leaving {:?} (min.insync.replicas {min_isr})",
            p.isr
                .iter()
                .filter(|r| !isr.contains(r))
                .collect::<Vec<_>>(),
            p.isr,
            isr
        ));
    }
    p.adding = target
        .iter()
        .copied()
        .filter(|r| !original.contains(r))
        .collect();
    p.removing = original
        .iter()
        .copied()
        .filter(|r| !target.contains(r))
        .collect();
    // Keep the ISR in replica order, so the preferred leader comes first.
    p.isr = replicas
        .iter()
        .copied()
        .filter(|r| isr.contains(r))
        .collect();
    p.replicas = replicas;
    if !p.replicas.contains(&p.leader) {
        elect(p, false, usable);
    }
    Ok(())
}

/// Completes replica moves: a partition whose target replicas (all but
/// the `removing` ones) are all in the ISR drops the removed ones (from
/// the replicas and the ISR), electing a new leader among the target if
/// the leader was one. A move whose leader is being removed waits while
/// no target replica can lead. Replicas that were being added are then
/// ordinary replicas.
pub(crate) fn finish_moves(meta: &mut ClusterMetadata, usable: &dyn Fn(BrokerId) -> bool) {
    for t in meta.topics.values_mut() {
        for p in &mut t.partitions {
            finish_move(p, usable);
        }
    }
}

/// [`finish_moves`] for one partition (nothing when it is not moving).
pub(crate) fn finish_move(p: &mut PartitionState, usable: &dyn Fn(BrokerId) -> bool) {
    if !p.moving() {
        return;
    }
    let keep = p.target();
    if keep.is_empty() || !keep.iter().all(|r| p.isr.contains(r)) {
        return;
    }
    if p.removing.contains(&p.leader) && !keep.iter().any(|r| usable(*r)) {
        return;
    }
    let removing = std::mem::take(&mut p.removing);
    p.adding.clear();
    p.replicas = keep;
    p.isr.retain(|r| !removing.contains(r));
    if removing.contains(&p.leader) {
        elect(p, false, usable);
    }
}

/// Bumps the partition epoch of every partition that changed.
pub(crate) fn bump_partition_epochs(old: &ClusterMetadata, next: &mut ClusterMetadata) {
    for (name, t) in &mut next.topics {
        let Some(old_t) = old.topics.get(name) else {
            continue;
        };
        for (a, b) in old_t.partitions.iter().zip(t.partitions.iter_mut()) {
            if a != b {
                b.partition_epoch = a.partition_epoch + 1;
            }
        }
    }
}
