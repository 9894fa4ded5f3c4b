//! Prometheus metrics of one controller.
//!
//! [`Metrics`] owns its own [`Registry`] (not the process-global default),
//! so tests can run several controllers in one process. The gRPC adapter
//! records request counts and latency; the single-writer actor records
//! store persists, counts leader elections and ISR changes in every
//! applied plan ([`Metrics::observe_changes`]) and refreshes the cluster
//! gauges from the controller state after each one
//! ([`Metrics::observe_state`]). Names are listed in `docs/controller.md`.

use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};
use rill_process::metrics::{latency_buckets, register};

use crate::controller::{Controller, Liveness};
use crate::state::{Change, ClusterMetadata, NO_LEADER};

/// Every metric the controller exports.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// RPCs by `method` and `outcome` (`ok` or the error reason).
    pub requests: IntCounterVec,
    /// RPC latency by `method` and `outcome`.
    pub request_seconds: HistogramVec,
    /// Registered brokers by `state` (active, shutting_down, fenced).
    pub brokers: IntGaugeVec,
    /// Leader changes in applied partition changes (including to no leader).
    pub leader_elections: IntCounter,
    /// Applied partition changes that removed ISR members.
    pub isr_shrinks: IntCounter,
    /// Applied partition changes that added ISR members.
    pub isr_expands: IntCounter,
    /// Partitions without a leader.
    pub offline_partitions: IntGauge,
    /// Partitions whose ISR is smaller than their replica set.
    pub under_replicated_partitions: IntGauge,
    /// Number of topics.
    pub topics: IntGauge,
    /// This controller's epoch (0 until it has claimed the store).
    pub controller_epoch: IntGauge,
    /// Store persist latency by `outcome` (ok, superseded, error).
    pub persist_seconds: HistogramVec,
    /// Failed persists by `kind` (superseded, error).
    pub persist_failures: IntCounterVec,
    /// Open WatchMetadata streams.
    pub watchers: IntGauge,
    /// Snapshots re-sent to watchers that fell behind the update buffer.
    pub watcher_resyncs: IntCounter,
    /// Partitions with a replica move in flight (reassignment, drain or
    /// balance).
    pub reassigning_partitions: IntGauge,
    /// Partitions the automatic balance started moving.
    pub balance_moves: IntCounter,
    /// Lease checks that ran more than a heartbeat interval late (the
    /// controller was stalled or busy); each gave every lease two
    /// heartbeat intervals to be renewed instead of fencing.
    pub late_lease_checks: IntCounter,
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    register(r, IntCounter::new(name, help).expect("valid metric"))
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(
        r,
        IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"),
    )
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    register(r, IntGauge::new(name, help).expect("valid metric"))
}

fn histogram(r: &Registry, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    register(
        r,
        HistogramVec::new(
            HistogramOpts::new(name, help).buckets(latency_buckets()),
            labels,
        )
        .expect("valid metric"),
    )
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        Self::with_registry(Registry::new())
    }

    /// Metrics whose every sample carries `label` = `value` (the operator
    /// runs one controller per StreamCluster and exports them all on one
    /// `/metrics`, each labelled with its cluster).
    pub fn labelled(label: &str, value: &str) -> Self {
        let labels = std::collections::HashMap::from([(label.to_owned(), value.to_owned())]);
        Self::with_registry(
            Registry::new_custom(None, Some(labels)).expect("a valid constant label"),
        )
    }

    fn with_registry(r: Registry) -> Self {
        let brokers = register(
            &r,
            IntGaugeVec::new(
                Opts::new(
                    "rill_controller_brokers",
                    "Registered brokers by state (active, shutting_down, fenced).",
                ),
                &["state"],
            )
            .expect("valid metric"),
        );
        for state in ["active", "shutting_down", "fenced"] {
            brokers.with_label_values(&[state]).set(0);
        }
        Self {
            requests: counter_vec(
                &r,
                "rill_controller_requests_total",
                "Controller RPCs by method and outcome (ok or the error reason).",
                &["method", "outcome"],
            ),
            request_seconds: histogram(
                &r,
                "rill_controller_request_duration_seconds",
                "Controller RPC latency by method and outcome.",
                &["method", "outcome"],
            ),
            brokers,
            leader_elections: counter(
                &r,
                "rill_controller_leader_elections_total",
                "Partition leader changes committed by this controller.",
            ),
            isr_shrinks: counter(
                &r,
                "rill_controller_isr_shrinks_total",
                "Committed partition changes that removed ISR members.",
            ),
            isr_expands: counter(
                &r,
                "rill_controller_isr_expands_total",
                "Committed partition changes that added ISR members.",
            ),
            offline_partitions: gauge(
                &r,
                "rill_controller_offline_partitions",
                "Partitions without a leader.",
            ),
            under_replicated_partitions: gauge(
                &r,
                "rill_controller_under_replicated_partitions",
                "Partitions whose ISR is smaller than their replica set.",
            ),
            topics: gauge(&r, "rill_controller_topics", "Number of topics."),
            controller_epoch: gauge(
                &r,
                "rill_controller_epoch",
                "This controller's epoch (0 until it has claimed the store).",
            ),
            persist_seconds: histogram(
                &r,
                "rill_controller_store_persist_duration_seconds",
                "Metadata store persist latency by outcome (ok, superseded, error).",
                &["outcome"],
            ),
            persist_failures: counter_vec(
                &r,
                "rill_controller_store_persist_failures_total",
                "Failed metadata store persists by kind (superseded, error).",
                &["kind"],
            ),
            watchers: gauge(
                &r,
                "rill_controller_watchers",
                "Open WatchMetadata streams.",
            ),
            watcher_resyncs: counter(
                &r,
                "rill_controller_watcher_resyncs_total",
                "Snapshots re-sent to watchers that fell behind the update buffer.",
            ),
            reassigning_partitions: gauge(
                &r,
                "rill_controller_reassigning_partitions",
                "Partitions with a replica move in flight (reassignment, drain or automatic balance).",
            ),
            balance_moves: counter(
                &r,
                "rill_controller_balance_moves_total",
                "Partitions the automatic balance started moving onto under-loaded brokers.",
            ),
            late_lease_checks: counter(
                &r,
                "rill_controller_late_lease_checks_total",
                "Lease checks that ran more than a heartbeat interval late (the controller was stalled or busy); each gave every lease two heartbeat intervals to be renewed instead of fencing.",
            ),
            registry: r,
        }
    }

    /// Counts leader elections and ISR shrinks/expands in `changes`, read
    /// against `before` (the metadata before they were applied).
    pub fn observe_changes(&self, before: &ClusterMetadata, changes: &[Change]) {
        for change in changes {
            let Change::Partition {
                topic,
                partition,
                state,
            } = change
            else {
                continue;
            };
            let Some(old) = before
                .topics
                .get(topic)
                .and_then(|t| t.partitions.get(*partition as usize))
            else {
                continue;
            };
            if old.leader != state.leader {
                self.leader_elections.inc();
            }
            if old.isr.iter().any(|r| !state.isr.contains(r)) {
                self.isr_shrinks.inc();
            }
            if state.isr.iter().any(|r| !old.isr.contains(r)) {
                self.isr_expands.inc();
            }
        }
    }

    /// Refreshes the gauges from the controller's current state.
    pub fn observe_state(&self, ctl: &Controller) {
        let (mut active, mut shutting_down, mut fenced) = (0, 0, 0);
        for (_, liveness) in ctl.brokers_liveness() {
            match liveness {
                Liveness::Active => active += 1,
                Liveness::ShuttingDown => shutting_down += 1,
                Liveness::Fenced => fenced += 1,
            }
        }
        self.brokers.with_label_values(&["active"]).set(active);
        self.brokers
            .with_label_values(&["shutting_down"])
            .set(shutting_down);
        self.brokers.with_label_values(&["fenced"]).set(fenced);
        let meta = ctl.metadata();
        let partitions = meta.topics.values().flat_map(|t| &t.partitions);
        self.offline_partitions
            .set(partitions.clone().filter(|p| p.leader == NO_LEADER).count() as i64);
        self.reassigning_partitions
            .set(partitions.clone().filter(|p| p.moving()).count() as i64);
        self.under_replicated_partitions.set(
            partitions
                .filter(|p| p.isr.len() < p.replicas.len())
                .count() as i64,
        );
        self.topics.set(meta.topics.len() as i64);
        self.controller_epoch.set(ctl.controller_epoch());
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        rill_process::metrics::encode(&self.registry)
    }

    /// Every metric family, for a process that exports several registries.
    pub fn gather(&self) -> Vec<prometheus::proto::MetricFamily> {
        self.registry.gather()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{PartitionState, TopicState};

    #[test]
    fn given_two_controllers_in_one_process_when_metrics_created_should_not_collide() {
        let a = Metrics::new();
        let b = Metrics::new();
        a.leader_elections.inc();
        assert_eq!(b.leader_elections.get(), 0);
        assert!(
            a.encode()
                .contains("rill_controller_leader_elections_total 1")
        );
    }

    #[test]
    fn given_a_failover_change_when_observed_should_count_election_and_shrink() {
        let old = PartitionState {
            replicas: vec![0, 1, 2],
            isr: vec![0, 1, 2],
            leader: 0,
            leader_epoch: 0,
            partition_epoch: 0,
            removing: Vec::new(),
            adding: Vec::new(),
        };
        let mut before = ClusterMetadata::default();
        before.topics.insert(
            "t".into(),
            TopicState {
                name: "t".into(),
                id: "t-id".into(),
                partitions: vec![old.clone()],
                config: Default::default(),
            },
        );
        let m = Metrics::new();
        let failover = PartitionState {
            isr: vec![1, 2],
            leader: 1,
            leader_epoch: 1,
            partition_epoch: 1,
            removing: Vec::new(),
            adding: Vec::new(),
            ..old.clone()
        };
        m.observe_changes(
            &before,
            &[Change::Partition {
                topic: "t".into(),
                partition: 0,
                state: failover,
            }],
        );
        assert_eq!(m.leader_elections.get(), 1);
        assert_eq!(m.isr_shrinks.get(), 1);
        assert_eq!(m.isr_expands.get(), 0);
    }
}
