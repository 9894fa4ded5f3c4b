//! The operator's HTTP endpoint: `/metrics` (Prometheus text format),
//! `/healthz` (the process is alive) and `/readyz` (its CRDs are installed
//! and Established). Served by axum on `--http-addr` (default `:8080`),
//! with the router of [`rill_process::http`].

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use rill_process::http::Probes;
use tokio::net::TcpListener;

use crate::metrics::Metrics;

/// Shared state of the HTTP handlers.
#[derive(Clone, Debug)]
pub struct HttpState {
    /// Metrics to render.
    pub metrics: Metrics,
    /// Set once the CRDs are Established.
    pub ready: Arc<AtomicBool>,
}

impl Probes for HttpState {
    fn metrics_text(&self) -> Result<String, String> {
        self.metrics.render().map_err(|error| error.to_string())
    }

    fn not_ready(&self) -> Option<String> {
        (!self.ready.load(Ordering::Acquire))
            .then(|| "waiting for CustomResourceDefinitions\n".to_owned())
    }
}

/// The router, separate from serving so tests can use any listener.
pub fn router(state: HttpState) -> Router {
    rill_process::http::router(state)
}

/// Serves until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    state: HttpState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    const TIMEOUT: Duration = Duration::from_secs(10);

    async fn get(addr: std::net::SocketAddr, path: &str) -> String {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut response = String::new();
        tokio::time::timeout(TIMEOUT, stream.read_to_string(&mut response))
            .await
            .expect("response in time")
            .expect("read");
        response
    }

    #[tokio::test]
    async fn given_a_server_when_probing_then_metrics_health_and_readiness_answer() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let metrics = Metrics::new().expect("metrics");
        metrics.set_leader(true);
        let ready = Arc::new(AtomicBool::new(false));
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(
            listener,
            HttpState {
                metrics,
                ready: ready.clone(),
            },
            async {
                let _ = stop_rx.await;
            },
        ));

        let body = get(addr, "/metrics").await;
        assert!(body.starts_with("HTTP/1.1 200"), "{body}");
        assert!(body.contains("rill_operator_leader 1"), "{body}");
        assert!(get(addr, "/healthz").await.starts_with("HTTP/1.1 200"));
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 503"));
        ready.store(true, Ordering::Release);
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 200"));

        stop_tx.send(()).expect("stop");
        tokio::time::timeout(TIMEOUT, server)
            .await
            .expect("server stops")
            .expect("join")
            .expect("serve");
    }
}
