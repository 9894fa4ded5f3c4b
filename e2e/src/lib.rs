//! # rill-e2e
//!
//! Helpers for tests that run Rill against a real Kubernetes API server:
//! the local control plane of `e2e/scripts/apiserver.sh`, or any cluster
//! named by `KUBECONFIG`.
//!
//! The tests in `e2e/tests/` are `#[ignore]`d so a plain `cargo test`
//! without a cluster skips them visibly; `e2e/scripts/run-tests.sh` starts
//! the local API server, installs the CRDs and runs them with `--ignored`.
//!
//! What is real here: kube-apiserver and etcd (validation, CEL rules,
//! resourceVersion conflicts, RBAC), the operator and the brokers. Brokers
//! run in the test process instead of in pods, except in the tests that
//! use the [`agent`] (the node agent of `e2e/scripts/cluster.sh`), where
//! kube-controller-manager, kube-scheduler and the agent run pods as local
//! processes.

pub mod agent;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PostParams};
use kube::{Client, Config};

/// Interval between two looks at a condition being waited for.
pub const POLL: Duration = Duration::from_millis(100);

/// A client for the cluster of `KUBECONFIG` (e2e/scripts/run-tests.sh
/// points it at the local control plane).
pub async fn client() -> Client {
    assert!(
        std::env::var_os("KUBECONFIG").is_some(),
        "KUBECONFIG is not set: run these tests through e2e/scripts/run-tests.sh, \
         or export KUBECONFIG for a cluster with Rill's CRDs installed"
    );
    capture_logs();
    let config = Config::infer().await.expect("a readable kubeconfig");
    Client::try_from(config).expect("a Kubernetes client")
}

/// Sends what the code under test logs (an operator run inside the test,
/// say) to the test's captured output, which is printed when it fails.
/// `RUST_LOG` overrides the default filter.
pub fn capture_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,kube=warn,tower=warn,hyper=warn")
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .with_ansi(false)
        .try_init();
}

/// Label on every namespace a test creates. run-tests.sh deletes the
/// labelled namespaces after each stage, so nothing a failed or interrupted
/// test left behind (StatefulSets in particular) gets pods in a later stage.
pub const E2E_NAMESPACE_LABEL: &str = "rill.dev/e2e-test";

/// Creates a namespace with a unique name starting with `prefix`, labelled
/// with [`E2E_NAMESPACE_LABEL`].
pub async fn namespace(client: &Client, prefix: &str) -> String {
    let name = format!(
        "{prefix}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_micros())
            .unwrap_or_default()
    );
    let ns: Namespace = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": {E2E_NAMESPACE_LABEL: "true"}},
    }))
    .expect("namespace");
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("namespace created");
    name
}

/// Deletes a namespace a test created (in the background; errors ignored:
/// run-tests.sh deletes every labelled namespace after each stage anyway).
pub async fn delete_namespace(client: &Client, ns: &str) {
    let _ = Api::<Namespace>::all(client.clone())
        .delete(ns, &kube::api::DeleteParams::default())
        .await;
}

/// Polls `check` until it returns `Some`, failing the test with `what`
/// after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}
