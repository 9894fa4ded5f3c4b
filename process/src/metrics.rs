//! Prometheus text encoding of a process's registry, and the two metrics
//! every Rill gRPC service records per request (a count and a latency by
//! method and outcome).

use std::time::Instant;

use prometheus::core::Collector;
use prometheus::{Encoder, HistogramVec, IntCounterVec, Registry, TextEncoder};

/// Registers `metric` in `registry` and returns it. Each metric is
/// registered once, at startup: a second registration is a bug and panics.
pub fn register<T: Collector + Clone + 'static>(registry: &Registry, metric: T) -> T {
    registry
        .register(Box::new(metric.clone()))
        .expect("metric registered once");
    metric
}

/// The buckets of Rill's latency histograms: 50 µs .. ~50 s, roughly x2.5
/// per bucket.
pub fn latency_buckets() -> Vec<f64> {
    prometheus::exponential_buckets(0.000_05, 2.5, 16).expect("valid buckets")
}

/// The text exposition of `registry`, or the encoder's error.
pub fn try_encode(registry: &Registry) -> Result<Vec<u8>, prometheus::Error> {
    let mut buf = Vec::new();
    TextEncoder::new().encode(&registry.gather(), &mut buf)?;
    Ok(buf)
}

/// The text exposition of `registry`; an encoding error is logged and what
/// was encoded before it is returned.
pub fn encode(registry: &Registry) -> String {
    let mut buf = Vec::new();
    if let Err(e) = TextEncoder::new().encode(&registry.gather(), &mut buf) {
        tracing::error!(error = %e, "encoding metrics failed");
    }
    String::from_utf8(buf).unwrap_or_default()
}

/// Observes one request (see [`observe_request`]) with the outcome `ok`,
/// or `label` of its error; returns the outcome.
pub fn observe_result<T, E>(
    requests: &IntCounterVec,
    seconds: &HistogramVec,
    method: &str,
    started: Instant,
    result: &Result<T, E>,
    label: impl FnOnce(&E) -> &'static str,
) -> &'static str {
    let outcome = match result {
        Ok(_) => "ok",
        Err(e) => label(e),
    };
    observe_request(requests, seconds, method, outcome, started);
    outcome
}

/// Counts one request in `requests` and observes its latency since
/// `started` in `seconds`, both labelled `[method, outcome]`.
pub fn observe_request(
    requests: &IntCounterVec,
    seconds: &HistogramVec,
    method: &str,
    outcome: &str,
    started: Instant,
) {
    requests.with_label_values(&[method, outcome]).inc();
    seconds
        .with_label_values(&[method, outcome])
        .observe(started.elapsed().as_secs_f64());
}
