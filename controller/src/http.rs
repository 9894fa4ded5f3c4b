//! HTTP endpoints for Prometheus and Kubernetes probes, served by
//! [`rill_process::http`]:
//!
//! - `GET /metrics`: Prometheus text exposition of the controller's registry;
//! - `GET /healthz`: 200 while the process runs (liveness);
//! - `GET /readyz`: 200 once the store is claimed and the gRPC service
//!   serves, 503 while starting, after being deposed and during shutdown.

use std::sync::Arc;

use axum::Router;
use rill_process::http::Probes;
use tokio::sync::watch;

use crate::metrics::Metrics;
use crate::service::Phase;

/// What the handlers read.
#[derive(Debug, Clone)]
pub struct HttpState {
    pub metrics: Arc<Metrics>,
    /// The actor's phase; ready only while [`Phase::Serving`].
    pub phase: watch::Receiver<Phase>,
}

impl Probes for HttpState {
    fn metrics_text(&self) -> Result<String, String> {
        Ok(self.metrics.encode())
    }

    fn not_ready(&self) -> Option<String> {
        match *self.phase.borrow() {
            Phase::Serving => None,
            Phase::Starting => Some("starting\n".to_owned()),
            Phase::Deposed { ours, current } => Some(format!(
                "not the active controller (epoch {ours} superseded by {current})\n"
            )),
            Phase::Stopped => Some("stopped\n".to_owned()),
        }
    }
}

/// The router with all endpoints.
pub fn router(state: HttpState) -> Router {
    rill_process::http::router(state)
}
