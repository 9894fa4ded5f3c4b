//! HTTP endpoints for Prometheus and Kubernetes probes, served by
//! [`rill_process::http`]:
//!
//! - `GET /metrics`: Prometheus text exposition of the broker's registry;
//!   per-partition gauges are refreshed from the partitions first.
//! - `GET /healthz`: 200 while the process runs (liveness).
//! - `GET /readyz`: 200 once every log is open and the gRPC listener
//!   serves, 503 during startup and shutdown (readiness).
//!
//! The HTTP server starts before the logs are opened, so probes answer
//! during a long recovery.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use axum::Router;
use rill_process::http::Probes;

use crate::metrics::Metrics;
use crate::partition::manager::ReplicaManager;

/// What the handlers read.
#[derive(Debug, Clone)]
pub struct HttpState {
    pub metrics: Arc<Metrics>,
    /// Set by the server once the gRPC listener serves; cleared when
    /// shutdown starts.
    pub ready: Arc<AtomicBool>,
    /// Available once the logs are open (for gauge refresh).
    pub manager: Arc<OnceLock<Arc<ReplicaManager>>>,
    /// The data directory, whose filesystem's free and total bytes are
    /// exported.
    pub data_dir: PathBuf,
}

impl Probes for HttpState {
    fn metrics_text(&self) -> Result<String, String> {
        if let Some(manager) = self.manager.get() {
            manager.refresh_gauges();
        }
        match rustix::fs::statvfs(&self.data_dir) {
            Ok(fs) => {
                let bytes = |blocks: u64| {
                    i64::try_from(blocks.saturating_mul(fs.f_frsize)).unwrap_or(i64::MAX)
                };
                self.metrics.disk_free_bytes.set(bytes(fs.f_bavail));
                self.metrics.disk_total_bytes.set(bytes(fs.f_blocks));
            }
            Err(e) => {
                tracing::debug!(error = %e, dir = %self.data_dir.display(), "statvfs of the data directory failed")
            }
        }
        Ok(self.metrics.encode())
    }

    fn not_ready(&self) -> Option<String> {
        (!self.ready.load(Ordering::Acquire)).then(|| "not ready\n".to_owned())
    }
}

/// The router with all endpoints.
pub fn router(state: HttpState) -> Router {
    rill_process::http::router(state)
}
