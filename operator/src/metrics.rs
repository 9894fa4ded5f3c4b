//! Prometheus metrics of the operator process.
//!
//! One [`Metrics`] value owns a private registry; reconcilers record into it
//! through [`Metrics::reconcile_started`] and [`Metrics::record_error`], the
//! leader elector sets [`Metrics::set_leader`], and the HTTP server renders
//! it in the text exposition format on `/metrics`.

use std::time::Instant;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry};

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
        registry.register(Box::new(leader.clone()))?;
        Ok(Self {
            registry,
            reconciles,
            failures,
            duration,
            writes,
            leader,
        })
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

    /// Renders every metric in the Prometheus text format.
    pub fn render(&self) -> Result<String, MetricsError> {
        let buffer = rill_process::metrics::try_encode(&self.registry)?;
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
