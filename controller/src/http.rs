//! HTTP endpoints for Prometheus and Kubernetes probes (axum):
//!
//! - `GET /metrics`: Prometheus text exposition of the controller's registry;
//! - `GET /healthz`: 200 while the process runs (liveness);
//! - `GET /readyz`: 200 once the store is claimed and the gRPC service
//!   serves, 503 while starting, after being deposed and during shutdown.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
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

/// The router with all endpoints.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

async fn metrics(State(state): State<HttpState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.encode(),
    )
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<HttpState>) -> (StatusCode, String) {
    match *state.phase.borrow() {
        Phase::Serving => (StatusCode::OK, "ready\n".to_owned()),
        Phase::Starting => (StatusCode::SERVICE_UNAVAILABLE, "starting\n".to_owned()),
        Phase::Deposed { ours, current } => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not the active controller (epoch {ours} superseded by {current})\n"),
        ),
        Phase::Stopped => (StatusCode::SERVICE_UNAVAILABLE, "stopped\n".to_owned()),
    }
}
