//! # rill-operator
//!
//! The Kubernetes half of Rill. It turns `StreamCluster` resources into
//! broker StatefulSets (with their Services, ConfigMap and
//! PodDisruptionBudget), `Topic` resources into validated, conflict-free
//! topic definitions, and `User` resources into credentials, ACLs and a
//! client Secret.
//!
//! How the pieces fit:
//!
//! * [`crd`] — the API types; `crdgen` renders them into `crds/`.
//! * [`stream_cluster`] — the StreamCluster reconcile pipeline
//!   (validate → build → apply → orphans → status).
//! * [`topic`] — the Topic reconciler (finalizer, conflicts, status).
//! * [`user`] — the User reconciler (credentials, certificates, ACLs and
//!   the client Secret).
//! * [`conditions`], [`ssa`] — shared status and apply helpers.
//! * [`controllers`] — kube-runtime Controller wiring, backoff, metrics.
//! * [`leader`] — Lease-based leader election; only the leader reconciles.
//! * [`metadata`] — the metadata controller: one per StreamCluster, state
//!   in Kubernetes, served to brokers over gRPC by the Lease holder.
//! * [`crd_ready`], [`http`], [`metrics`] — the operator process around it.
//!
//! [`run`] starts everything and returns when the shutdown future completes
//! (or leadership is lost); the binary in `main.rs` only parses
//! [`config::Config`], sets up logging and calls it.

pub mod conditions;
pub mod config;
pub mod context;
pub mod controllers;
pub mod crd;
pub mod crd_ready;
pub mod http;
pub mod leader;
pub mod metadata;
pub mod metrics;
pub mod ssa;
pub mod stream_cluster;
pub mod topic;
pub mod user;

#[cfg(test)]
mod test_support;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kube::Client;
use kube::runtime::events::Reporter;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::info;

use crate::config::{Config, ConfigError};
use crate::context::{Context, Settings};
use crate::crd_ready::CrdWaitError;
use crate::http::HttpState;
use crate::leader::{ElectionConfig, LeaderElector, LeaderError};
use crate::metadata::{ControllerHost, ControllerRouter};
use crate::metrics::{Metrics, MetricsError};

/// Errors that stop the operator process.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Neither in-cluster configuration nor a kubeconfig was found.
    #[error(
        "no Kubernetes configuration found: not running in a pod with a service account, and no kubeconfig \
         ($KUBECONFIG or ~/.kube/config) could be loaded ({0}). Point KUBECONFIG at a kubeconfig file or run the operator inside the cluster."
    )]
    NoKubeConfig(#[source] kube::config::InferConfigError),
    /// The Kubernetes client could not be built from the configuration.
    #[error("cannot create a Kubernetes client: {0}")]
    Client(#[source] kube::Error),
    /// Metrics could not be registered.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// The HTTP server could not bind or failed.
    #[error("HTTP server on {addr}: {source}")]
    Http {
        /// Listen address.
        addr: std::net::SocketAddr,
        /// I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The CRDs did not become Established.
    #[error(transparent)]
    Crds(#[from] CrdWaitError),
    /// Leadership was lost; the process exits so it restarts as a standby.
    #[error(transparent)]
    Leader(#[from] LeaderError),
    /// The controller gRPC listener could not bind.
    #[error("controller gRPC service on {addr}: {source}")]
    ControllerListen {
        /// Listen address.
        addr: std::net::SocketAddr,
        /// I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Loads the Kubernetes configuration (in-cluster, else kubeconfig) and runs
/// the operator until `shutdown` completes.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    config.validate()?;
    let kube_config = kube::Config::infer()
        .await
        .map_err(RunError::NoKubeConfig)?;
    let client = Client::try_from(kube_config).map_err(RunError::Client)?;
    run_with_client(client, config, shutdown).await
}

/// Resolves once `rx` holds `true` (or its sender is gone).
async fn signalled(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

fn identity(config: &Config) -> String {
    config
        .identity
        .clone()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| format!("rill-operator-{}", std::process::id()))
}

fn lease_namespace(config: &Config, client: &Client) -> String {
    config
        .lease_namespace
        .clone()
        .or_else(|| {
            std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
                .ok()
                .map(|ns| ns.trim().to_owned())
        })
        .filter(|ns| !ns.is_empty())
        .unwrap_or_else(|| client.default_namespace().to_owned())
}

/// Runs the operator with a given client: HTTP server, CRD wait, leader
/// election, then the controllers while this replica leads.
pub async fn run_with_client(
    client: Client,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let metrics = Metrics::new()?;
    let ready = Arc::new(AtomicBool::new(false));
    let (stop_tx, stop_rx) = watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    {
        let stop_tx = stop_tx.clone();
        tokio::spawn(async move {
            shutdown.await;
            info!("shutdown requested");
            stop_tx.send_replace(true);
        });
    }

    let listener = TcpListener::bind(config.http_addr)
        .await
        .map_err(|source| RunError::Http {
            addr: config.http_addr,
            source,
        })?;
    let http_addr = listener.local_addr().unwrap_or(config.http_addr);
    info!(addr = %http_addr, "serving /metrics, /healthz and /readyz");
    let http = tokio::spawn(http::serve(
        listener,
        HttpState {
            metrics: metrics.clone(),
            ready: ready.clone(),
        },
        signalled(stop_rx.clone()),
    ));

    let result =
        lead_and_reconcile(client, &config, metrics, ready, stop_rx, stop_tx.clone()).await;
    stop_tx.send_replace(true);
    match http.await {
        Ok(Ok(())) => {}
        Ok(Err(source)) if result.is_ok() => {
            return Err(RunError::Http {
                addr: http_addr,
                source,
            });
        }
        _ => {}
    }
    info!("operator stopped");
    result
}

async fn lead_and_reconcile(
    client: Client,
    config: &Config,
    metrics: Metrics,
    ready: Arc<AtomicBool>,
    stop_rx: watch::Receiver<bool>,
    stop_tx: Arc<watch::Sender<bool>>,
) -> Result<(), RunError> {
    let crds = [
        crd::stream_cluster_crd_name(),
        crd::topic_crd_name(),
        crd::user_crd_name(),
    ];
    tokio::select! {
        result = crd_ready::wait_for_crds(client.clone(), &crds, Duration::from_secs(config.crd_wait_seconds), Duration::from_secs(2)) => result?,
        () = signalled(stop_rx.clone()) => return Ok(()),
    }
    ready.store(true, Ordering::Release);

    let identity = identity(config);
    let (leader_tx, mut leader_rx) = watch::channel(false);
    // Without election the sender must outlive the controllers (a dropped
    // sender would read as "leadership ended").
    let mut _unelected_leader = None;
    let elector = if config.leader_election {
        let (lease_duration, renew_deadline, retry_period) = config.lease_timing();
        let election = ElectionConfig {
            lease_name: config.lease_name.clone(),
            namespace: lease_namespace(config, &client),
            identity: identity.clone(),
            lease_duration,
            renew_deadline,
            retry_period,
        };
        let elector = LeaderElector::new(client.clone(), election, metrics.clone());
        Some(tokio::spawn(
            elector.run(leader_tx, signalled(stop_rx.clone())),
        ))
    } else {
        info!("leader election disabled: this replica reconciles");
        metrics.set_leader(true);
        leader_tx.send_replace(true);
        _unelected_leader = Some(leader_tx);
        None
    };

    // Every replica serves the controller port; only the leader's answers
    // are more than a refusal.
    let host = Arc::new(ControllerHost::new(
        client.clone(),
        config.controller_settings(),
        leader_rx.clone(),
        metrics.clone(),
    ));
    let controller_listener = TcpListener::bind(config.controller_listen_addr)
        .await
        .map_err(|source| RunError::ControllerListen {
            addr: config.controller_listen_addr,
            source,
        })?;
    info!(
        addr = %metadata::grpc::bound(&controller_listener, config.controller_listen_addr),
        "serving the metadata controller gRPC service"
    );
    let controller_tls = metadata::ControllerTls::new();
    let certificates = tokio::spawn(metadata::host::keep_certificates(
        client.clone(),
        Arc::clone(&controller_tls),
        signalled(stop_rx.clone()),
    ));
    let grpc = tokio::spawn(metadata::serve(
        controller_listener,
        ControllerRouter::new(host.clone(), Arc::clone(&controller_tls)),
        signalled(stop_rx.clone()),
    ));

    let stopped_first = tokio::select! {
        _ = leader_rx.wait_for(|leading| *leading) => false,
        () = signalled(stop_rx.clone()) => true,
    };
    if stopped_first {
        let _ = grpc.await;
        let _ = certificates.await;
        return finish(elector).await;
    }

    let ctx = Arc::new(
        Context::new(
            client.clone(),
            metrics,
            Reporter {
                controller: "rill-operator".to_owned(),
                instance: Some(identity),
            },
            Settings {
                broker_image: config.broker_image.clone(),
                controller_address: config.controller_address.clone(),
                operator_namespace: Some(lease_namespace(config, &client)),
                operator_pod_labels: config.pod_labels().unwrap_or_default(),
            },
        )
        .with_metadata(host.clone()),
    );
    // Controllers stop on shutdown or when leadership ends.
    let (controllers_stop_tx, controllers_stop_rx) = watch::channel(false);
    {
        let stop_rx = stop_rx.clone();
        let mut leader_rx = leader_rx.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = signalled(stop_rx) => {}
                _ = leader_rx.wait_for(|leading| !*leading) => {}
            }
            controllers_stop_tx.send_replace(true);
        });
    }
    let sweeper = tokio::spawn(metadata::host::keep_hosting(
        client,
        host.clone(),
        signalled(controllers_stop_rx.clone()),
    ));
    info!("starting StreamCluster, Topic and User controllers");
    let rx = controllers_stop_rx.clone();
    controllers::run(ctx, move || signalled(rx.clone())).await;
    info!("controllers stopped");
    let _ = sweeper.await;
    host.stop_all().await;
    // Whatever stopped the controllers, stop the rest of the process too.
    stop_tx.send_replace(true);
    let _ = grpc.await;
    let _ = certificates.await;
    finish(elector).await
}

async fn finish(
    elector: Option<tokio::task::JoinHandle<Result<(), LeaderError>>>,
) -> Result<(), RunError> {
    match elector {
        Some(handle) => match handle.await {
            Ok(result) => result.map_err(RunError::from),
            Err(join) => {
                tracing::error!(error = %join, "leader elector task failed");
                Ok(())
            }
        },
        None => Ok(()),
    }
}
