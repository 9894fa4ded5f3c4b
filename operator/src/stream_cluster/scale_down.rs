//! The scale-down guard: a hook the reconcile asks before it lowers the
//! StatefulSet's replica count.
//!
//! Removing a broker that still holds partition replicas loses copies of
//! data. The metadata controller knows the placement and implements
//! [`ReplicaPlacement`] ([`crate::metadata::ControllerHost`]): while removed
//! brokers hold replicas the StatefulSet keeps its current size and the
//! cluster reports `Progressing=True` with reason `ScaleDownBlocked`, and
//! [`decide`] asks the placement to [drain](ReplicaPlacement::drain) them.
//! [`NoPlacementYet`] (reconcile tests) reports no replicas anywhere.
//! Volumes of removed brokers are kept (`whenScaled: Retain`).

use super::roll::ClusterView;

/// Where partition replicas live, as far as scale-down and rolling
/// restarts are concerned.
pub trait ReplicaPlacement: Send + Sync {
    /// Broker ids among `removed` that still hold at least one partition
    /// replica in the cluster `namespace/cluster`. Empty means the brokers
    /// can go.
    fn brokers_holding_replicas(&self, namespace: &str, cluster: &str, removed: &[i32])
    -> Vec<i32>;

    /// Starts moving every replica off `brokers` (idempotent, does not
    /// wait: progress shows in later [`brokers_holding_replicas`] answers).
    ///
    /// [`brokers_holding_replicas`]: ReplicaPlacement::brokers_holding_replicas
    fn drain(&self, _namespace: &str, _cluster: &str, _brokers: &[i32]) {}

    /// Brokers and partitions of the cluster as its metadata controller
    /// holds them, for rolling restarts; None while no controller of the
    /// cluster serves in this process.
    fn cluster_view(&self, _namespace: &str, _cluster: &str) -> Option<ClusterView> {
        None
    }
}

/// A placement with no replica on any broker, for reconcile tests.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoPlacementYet;

impl ReplicaPlacement for NoPlacementYet {
    fn brokers_holding_replicas(
        &self,
        _namespace: &str,
        _cluster: &str,
        _removed: &[i32],
    ) -> Vec<i32> {
        Vec::new()
    }
}

/// What the reconcile may do with the replica count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScaleDecision {
    /// Apply `spec.brokers`.
    Proceed {
        /// Replica count to apply.
        replicas: i32,
    },
    /// Keep the current count: these brokers still hold replicas.
    Blocked {
        /// Replica count kept.
        current: i32,
        /// Replica count asked for.
        desired: i32,
        /// Broker ids that hold replicas.
        holding: Vec<i32>,
    },
}

impl ScaleDecision {
    /// Replica count to apply.
    pub fn replicas(&self) -> i32 {
        match self {
            ScaleDecision::Proceed { replicas } => *replicas,
            ScaleDecision::Blocked { current, .. } => *current,
        }
    }
}

/// Decides the replica count. `current` is the StatefulSet's present
/// `spec.replicas` (None before it exists). Broker ids equal pod ordinals, so
/// scaling from 5 to 3 removes brokers 3 and 4.
pub fn decide(
    placement: &dyn ReplicaPlacement,
    namespace: &str,
    cluster: &str,
    current: Option<i32>,
    desired: i32,
) -> ScaleDecision {
    match current {
        Some(current) if desired < current => {
            let removed: Vec<i32> = (desired..current).collect();
            let holding = placement.brokers_holding_replicas(namespace, cluster, &removed);
            if holding.is_empty() {
                ScaleDecision::Proceed { replicas: desired }
            } else {
                placement.drain(namespace, cluster, &removed);
                ScaleDecision::Blocked {
                    current,
                    desired,
                    holding,
                }
            }
        }
        _ => ScaleDecision::Proceed { replicas: desired },
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A placement where the given brokers hold replicas.
    pub(crate) struct Holding(pub Vec<i32>);

    impl ReplicaPlacement for Holding {
        fn brokers_holding_replicas(&self, _: &str, _: &str, removed: &[i32]) -> Vec<i32> {
            removed
                .iter()
                .copied()
                .filter(|id| self.0.contains(id))
                .collect()
        }
    }

    #[test]
    fn given_brokers_holding_replicas_when_scaling_down_then_it_is_blocked() {
        let decision = decide(&Holding(vec![4]), "data", "events", Some(5), 3);
        assert_eq!(
            decision,
            ScaleDecision::Blocked {
                current: 5,
                desired: 3,
                holding: vec![4]
            }
        );
        assert_eq!(decision.replicas(), 5);
    }

    /// Records the drains asked for.
    struct Draining(std::sync::Mutex<Vec<Vec<i32>>>);

    impl ReplicaPlacement for Draining {
        fn brokers_holding_replicas(&self, _: &str, _: &str, removed: &[i32]) -> Vec<i32> {
            removed.iter().copied().filter(|id| *id == 4).collect()
        }
        fn drain(&self, _: &str, _: &str, brokers: &[i32]) {
            self.0.lock().expect("lock").push(brokers.to_vec());
        }
    }

    #[test]
    fn given_a_blocked_scale_down_then_every_removed_broker_is_drained_and_a_free_one_is_not() {
        let placement = Draining(std::sync::Mutex::new(Vec::new()));
        decide(&placement, "data", "events", Some(5), 3);
        decide(&placement, "data", "events", Some(4), 3);
        assert_eq!(*placement.0.lock().expect("lock"), vec![vec![3, 4]]);
    }

    #[test]
    fn given_empty_brokers_when_scaling_down_then_it_proceeds() {
        assert_eq!(
            decide(&Holding(vec![1]), "data", "events", Some(5), 3).replicas(),
            3
        );
        assert_eq!(
            decide(&NoPlacementYet, "data", "events", Some(5), 3).replicas(),
            3
        );
    }

    #[test]
    fn given_scale_up_or_first_creation_when_deciding_then_placement_is_not_consulted() {
        assert_eq!(
            decide(&Holding(vec![0, 1, 2]), "data", "events", Some(3), 5).replicas(),
            5
        );
        assert_eq!(
            decide(&Holding(vec![0, 1, 2]), "data", "events", None, 3).replicas(),
            3
        );
    }
}
