//! The HTTP endpoints every Rill server process serves for Prometheus and
//! Kubernetes probes (axum):
//!
//! - `GET /metrics`: the Prometheus text exposition (500 with the reason
//!   if it cannot be rendered);
//! - `GET /healthz`: 200 `ok` while the process runs (liveness);
//! - `GET /readyz`: 200 `ready`, or 503 with what the process is waiting
//!   for (readiness).
//!
//! Each process implements [`Probes`] on its own state and runs the
//! router with [`HttpServer`].

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// What a process answers on `/metrics` and `/readyz`.
pub trait Probes: Clone + Send + Sync + 'static {
    /// The Prometheus text exposition, or why it could not be rendered.
    fn metrics_text(&self) -> Result<String, String>;
    /// `None` when ready, else the body of the 503 answer.
    fn not_ready(&self) -> Option<String>;
}

/// The router with all endpoints.
pub fn router<P: Probes>(probes: P) -> Router {
    Router::new()
        .route("/metrics", get(metrics::<P>))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz::<P>))
        .with_state(probes)
}

async fn metrics<P: Probes>(State(probes): State<P>) -> Response {
    match probes.metrics_text() {
        Ok(text) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response(),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error).into_response(),
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz<P: Probes>(State(probes): State<P>) -> Response {
    match probes.not_ready() {
        None => (StatusCode::OK, "ready\n").into_response(),
        Some(body) => (StatusCode::SERVICE_UNAVAILABLE, body).into_response(),
    }
}

/// An HTTP server running in its own task, stopped gracefully (requests in
/// flight finish). Dropping it leaves the task running.
#[derive(Debug)]
pub struct HttpServer {
    stop: CancellationToken,
    task: JoinHandle<std::io::Result<()>>,
}

impl HttpServer {
    /// Serves `router` on `listener` in a new task.
    pub fn spawn(listener: TcpListener, router: Router) -> Self {
        let stop = CancellationToken::new();
        let task = tokio::spawn({
            let stop = stop.clone();
            async move {
                axum::serve(listener, router)
                    .with_graceful_shutdown(stop.cancelled_owned())
                    .await
            }
        });
        Self { stop, task }
    }

    /// Asks the server to stop, without waiting for it.
    pub fn cancel(&self) {
        self.stop.cancel();
    }

    /// Stops the server and waits for it; a failure is logged.
    pub async fn stop(self) {
        self.stop.cancel();
        match self.task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "HTTP server ended with an error"),
            Err(e) => tracing::warn!(error = %e, "HTTP server task failed"),
        }
    }
}
