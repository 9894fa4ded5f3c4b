//! HTTP endpoints for Prometheus and Kubernetes probes (axum):
//!
//! - `GET /metrics`: Prometheus text exposition of the broker's registry;
//!   per-partition gauges are refreshed from the partitions first.
//! - `GET /healthz`: 200 while the process runs (liveness).
//! - `GET /readyz`: 200 once every log is open and the gRPC listener
//!   serves, 503 during startup and shutdown (readiness).
//!
//! The HTTP server starts before the logs are opened, so probes answer
//! during a long recovery.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

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
}

/// The router with all endpoints.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

async fn metrics(State(state): State<HttpState>) -> impl IntoResponse {
    if let Some(manager) = state.manager.get() {
        manager.refresh_gauges();
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.encode(),
    )
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<HttpState>) -> (StatusCode, &'static str) {
    if state.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}
