//! Prometheus metrics of the operator process.
//!
//! One [`Metrics`] value owns a private registry; reconcilers record into it
//! through [`Metrics::reconcile_started`] and [`Metrics::record_error`], the
//! leader elector sets [`Metrics::set_leader`], and the HTTP server renders
//! it in the text exposition format on `/metrics`.
//!
//! The metadata controllers this replica runs (one per StreamCluster) are
//! rendered with it: their `rill_controller_*` metrics, each sample
//! labelled `cluster="<namespace>/<name>"` ([`Metrics::controller`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use prometheus::proto::MetricFamily;

use prometheus::{
    HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// Errors while creating or rendering metrics.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// A metric could not be created or registered.
    #[error("cannot register metric: {0}")]
    Register(#[from] prometheus::Error),
    /// The text encoder produced invalid UTF-8 (never expected).
    #[error("metrics are not valid UTF-8: {0}")]
    Utf8(#[from] std::string::FromUtf8Error),
}

/// All metrics of the operator.
#[derive(Clone, Debug)]
pub struct Metrics {
    /// Registry rendered on `/metrics`.
    registry: Registry,
    /// Reconciles started, by controller.
    reconciles: IntCounterVec,
    /// Reconcile failures, by controller and error reason.
    failures: IntCounterVec,
    /// Reconcile durations, by controller.
    duration: HistogramVec,
    /// Kubernetes writes issued by reconcilers, by controller, kind and verb.
    writes: IntCounterVec,
    /// 1 while this replica holds the leader Lease.
    leader: IntGauge,
    /// Brokers running an outdated pod template, by cluster.
    roll_outdated: IntGaugeVec,
    /// 1 while a roll waits because a restart would take partitions below
    /// min.insync.replicas, by cluster.
    roll_blocked: IntGaugeVec,
    /// Clusters whose roll is under way / blocked (always exported, for
    /// alerts that must not depend on a cluster existing).
    rolls_in_progress: IntGauge,
    rolls_blocked: IntGauge,
    /// Broker restarts done by rolls.
    roll_restarts: prometheus::IntCounter,
    /// Roll state by cluster: (outdated brokers, blocked).
    rolls: Arc<Mutex<BTreeMap<String, (i64, bool)>>>,
    /// The metrics of the metadata controllers, by cluster key.
    controllers: Arc<Mutex<BTreeMap<String, Arc<rill_controller::metrics::Metrics>>>>,
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Result<Self, MetricsError> {
        let registry = Registry::new();
        let reconciles = IntCounterVec::new(
            Opts::new(
                "rill_operator_reconciles_total",
                "Reconciles started, by controller.",
            ),
            &["controller"],
        )?;
        let failures = IntCounterVec::new(
            Opts::new(
                "rill_operator_reconcile_errors_total",
                "Reconciles that failed, by controller and error reason.",
            ),
            &["controller", "reason"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "rill_operator_reconcile_duration_seconds",
                "Time spent in one reconcile, by controller.",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["controller"],
        )?;
        let writes = IntCounterVec::new(
            Opts::new(
                "rill_operator_writes_total",
                "Kubernetes API writes issued by reconcilers, by controller, kind and verb.",
            ),
            &["controller", "kind", "verb"],
        )?;
        let leader = IntGauge::new(
            "rill_operator_leader",
            "1 while this operator replica holds the leader Lease, else 0.",
        )?;
        registry.register(Box::new(reconciles.clone()))?;
        registry.register(Box::new(failures.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(writes.clone()))?;
        let roll_outdated = IntGaugeVec::new(
            Opts::new(
                "rill_operator_roll_outdated_brokers",
                "Brokers of a StreamCluster running an outdated pod template (a rolling restart is due or under way), by cluster.",
            ),
            &["cluster"],
        )?;
        let roll_blocked = IntGaugeVec::new(
            Opts::new(
                "rill_operator_roll_blocked",
                "1 while a StreamCluster's rolling restart waits because restarting a broker would take partitions below min.insync.replicas, by cluster.",
            ),
            &["cluster"],
        )?;
        let rolls_in_progress = IntGauge::new(
            "rill_operator_rolls_in_progress",
            "StreamClusters whose rolling restart is due or under way.",
        )?;
        let rolls_blocked = IntGauge::new(
            "rill_operator_rolls_blocked",
            "StreamClusters whose rolling restart waits because restarting a broker would take partitions below min.insync.replicas.",
        )?;
        let roll_restarts = prometheus::IntCounter::new(
            "rill_operator_roll_restarts_total",
            "Broker pods restarted by rolling restarts.",
        )?;
        registry.register(Box::new(leader.clone()))?;
        registry.register(Box::new(roll_outdated.clone()))?;
        registry.register(Box::new(roll_blocked.clone()))?;
        registry.register(Box::new(rolls_in_progress.clone()))?;
        registry.register(Box::new(rolls_blocked.clone()))?;
        registry.register(Box::new(roll_restarts.clone()))?;
        Ok(Self {
            registry,
            reconciles,
            failures,
            duration,
            writes,
            leader,
            roll_outdated,
            roll_blocked,
            rolls_in_progress,
            rolls_blocked,
            roll_restarts,
            rolls: Arc::default(),
            controllers: Arc::default(),
        })
    }

    /// Records the rolling-restart state of cluster `key` (`namespace/name`).
    pub fn set_roll(&self, key: &str, outdated: i64, blocked: bool) {
        self.roll_outdated.with_label_values(&[key]).set(outdated);
        self.roll_blocked
            .with_label_values(&[key])
            .set(i64::from(blocked));
        let mut rolls = self.rolls.lock().unwrap_or_else(|p| p.into_inner());
        rolls.insert(key.to_owned(), (outdated, blocked));
        self.publish_rolls(&rolls);
    }

    /// Counts one broker restarted by a roll.
    pub fn record_roll_restart(&self) {
        self.roll_restarts.inc();
    }

    fn publish_rolls(&self, rolls: &BTreeMap<String, (i64, bool)>) {
        self.rolls_in_progress
            .set(rolls.values().filter(|(o, _)| *o > 0).count() as i64);
        self.rolls_blocked
            .set(rolls.values().filter(|(_, b)| *b).count() as i64);
    }

    /// The metrics of the metadata controller of cluster `key`
    /// (`namespace/name`), labelled `cluster="<key>"` and rendered with the
    /// operator's. A controller started again for the same cluster keeps
    /// counting in the same metrics.
    pub fn controller(&self, key: &str) -> Arc<rill_controller::metrics::Metrics> {
        let mut controllers = self.controllers.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(controllers.entry(key.to_owned()).or_insert_with(|| {
            Arc::new(rill_controller::metrics::Metrics::labelled("cluster", key))
        }))
    }

    /// Stops rendering the metrics of cluster `key`'s controller (the
    /// StreamCluster is gone).
    pub fn forget_controller(&self, key: &str) {
        self.controllers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
        let _ = self.roll_outdated.remove_label_values(&[key]);
        let _ = self.roll_blocked.remove_label_values(&[key]);
        let mut rolls = self.rolls.lock().unwrap_or_else(|p| p.into_inner());
        rolls.remove(key);
        self.publish_rolls(&rolls);
    }

    /// Counts a reconcile and returns a timer that records its duration
    /// when dropped.
    pub fn reconcile_started(&self, controller: &'static str) -> ReconcileTimer {
        self.reconciles.with_label_values(&[controller]).inc();
        ReconcileTimer {
            histogram: self.duration.clone(),
            controller,
            start: Instant::now(),
        }
    }

    /// Counts a failed reconcile.
    pub fn record_error(&self, controller: &'static str, reason: &str) {
        self.failures.with_label_values(&[controller, reason]).inc();
    }

    /// Counts one write to the Kubernetes API.
    pub fn record_write(&self, controller: &'static str, kind: &str, verb: &'static str) {
        self.writes
            .with_label_values(&[controller, kind, verb])
            .inc();
    }

    /// Sets the leader gauge.
    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// Renders every metric in the Prometheus text format: the operator's,
    /// then the controllers', each metric family once with the samples of
    /// every cluster.
    pub fn render(&self) -> Result<String, MetricsError> {
        let mut families: Vec<MetricFamily> = self.registry.gather();
        let mut by_name: BTreeMap<String, MetricFamily> = BTreeMap::new();
        let controllers: Vec<_> = self
            .controllers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        for controller in controllers {
            for mut family in controller.gather() {
                match by_name.get_mut(family.name()) {
                    Some(merged) => merged.mut_metric().extend(family.take_metric()),
                    None => {
                        by_name.insert(family.name().to_owned(), family);
                    }
                }
            }
        }
        families.extend(by_name.into_values());
        let mut buffer = Vec::new();
        prometheus::Encoder::encode(&prometheus::TextEncoder::new(), &families, &mut buffer)?;
        Ok(String::from_utf8(buffer)?)
    }

    /// Number of reconcile failures recorded for a controller and reason.
    pub fn error_count(&self, controller: &'static str, reason: &str) -> u64 {
        self.failures.with_label_values(&[controller, reason]).get()
    }

    /// Number of writes recorded for a controller (all kinds and verbs).
    pub fn write_count(&self, controller: &'static str) -> u64 {
        self.registry
            .gather()
            .iter()
            .filter(|family| family.name() == "rill_operator_writes_total")
            .flat_map(|family| family.get_metric().iter())
            .filter(|m| {
                m.get_label()
                    .iter()
                    .any(|l| l.name() == "controller" && l.value() == controller)
            })
            .map(|m| m.get_counter().get_value() as u64)
            .sum()
    }
}

/// Observes a reconcile's duration when dropped.
#[derive(Debug)]
pub struct ReconcileTimer {
    histogram: HistogramVec,
    controller: &'static str,
    start: Instant,
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        self.histogram
            .with_label_values(&[self.controller])
            .observe(self.start.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_two_clusters_controllers_when_rendering_then_each_family_appears_once_with_both_clusters()
     {
        let metrics = Metrics::new().expect("metrics");
        metrics.controller("ns/a").controller_epoch.set(3);
        metrics.controller("ns/b").controller_epoch.set(7);
        // The same cluster again: the same metrics.
        assert_eq!(metrics.controller("ns/a").controller_epoch.get(), 3);
        let text = metrics.render().expect("render");
        assert_eq!(
            text.matches("# TYPE rill_controller_epoch gauge").count(),
            1,
            "{text}"
        );
        assert!(
            text.contains("rill_controller_epoch{cluster=\"ns/a\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("rill_controller_epoch{cluster=\"ns/b\"} 7"),
            "{text}"
        );
        assert!(text.contains("rill_operator_leader 0"), "{text}");
        metrics.forget_controller("ns/a");
        let text = metrics.render().expect("render");
        assert!(!text.contains("cluster=\"ns/a\""), "{text}");
    }

    #[test]
    fn given_a_reconcile_and_an_error_when_rendering_then_all_families_appear() {
        let metrics = Metrics::new().expect("metrics");
        drop(metrics.reconcile_started("streamcluster"));
        metrics.record_error("streamcluster", "kube_api");
        metrics.record_write("streamcluster", "StatefulSet", "apply");
        metrics.set_leader(true);
        let text = metrics.render().expect("render");
        assert!(
            text.contains("rill_operator_reconciles_total{controller=\"streamcluster\"} 1"),
            "{text}"
        );
        assert!(text.contains("rill_operator_reconcile_errors_total{controller=\"streamcluster\",reason=\"kube_api\"} 1"), "{text}");
        assert!(
            text.contains(
                "rill_operator_reconcile_duration_seconds_count{controller=\"streamcluster\"} 1"
            ),
            "{text}"
        );
        assert!(text.contains("rill_operator_leader 1"), "{text}");
        assert_eq!(metrics.write_count("streamcluster"), 1);
        assert_eq!(metrics.error_count("streamcluster", "kube_api"), 1);
    }
}
