//! Controller lifecycle: start, serve, shut down gracefully.
//!
//! [`start`] (file store from the config) and [`start_with_store`] (any
//! [`MetadataStore`], e.g. [`crate::MemoryStore`] in tests) validate the
//! config, bind and serve HTTP first (probes answer, `/readyz` says 503),
//! bind the gRPC listener, `claim()` the store (a new, higher controller
//! epoch; registered brokers get one session timeout of grace), spawn the
//! single-writer [`Actor`], and serve the gRPC `Controller` service. They
//! return a [`ControllerHandle`] with the bound addresses (port 0 works).
//! The binary calls [`run`], which also prints the `RILL_READY` line.
//!
//! [`ControllerHandle::shutdown`]: the actor stops (phase `Stopped`, watch
//! streams end, new RPCs get UNAVAILABLE) -> the gRPC server stops
//! accepting and in-flight requests finish (bounded by
//! `--shutdown-timeout-ms`) -> the HTTP server stops.
//!
//! When a newer controller claims the same store, this one's next persist
//! fails: the actor ends in phase `Deposed`, every RPC answers UNAVAILABLE
//! "not the active controller", and [`ControllerHandle::stopped`] (hence
//! [`run`]) returns [`ServerError::Deposed`].

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rill_process::http::HttpServer;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::{ConfigError, ServerConfig};
use crate::controller::Controller;
use crate::http::{self, HttpState};
use crate::metrics::Metrics;
use crate::service::{Actor, ControllerService, Phase, Timing};
use crate::state::ClusterMetadata;
use crate::store::{FileStore, MetadataStore, StoreError};

/// Requests queued for the actor before handlers wait for room.
const COMMAND_QUEUE: usize = 1024;

/// Why the controller could not start, or stopped.
#[derive(Debug, Error)]
pub enum ServerError {
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot claim the metadata store: {0}")]
    Claim(#[source] StoreError),
    #[error(
        "deposed: another controller claimed the metadata store (our epoch {ours}, theirs {current}); \
         only one controller may use a metadata file"
    )]
    Deposed { ours: i64, current: i64 },
    #[error("the gRPC server failed: {0}")]
    Grpc(#[from] tonic::transport::Error),
    #[error("the controller stopped without being asked to")]
    Stopped,
    #[error("internal task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// A controller running inside another process (the operator hosts one per
/// StreamCluster): the actor is running, and [`EmbeddedController::service`]
/// answers RPCs when called directly or mounted in a tonic server.
#[derive(Debug)]
pub struct EmbeddedController {
    /// The `Controller` service; cheap to clone.
    pub service: ControllerService,
    /// The epoch this controller claimed.
    pub controller_epoch: i64,
    /// The durable metadata after every commit.
    pub snapshots: watch::Receiver<Arc<ClusterMetadata>>,
    /// Serving, deposed or stopped.
    pub phase: watch::Receiver<Phase>,
    /// The controller's metrics registry.
    pub metrics: Arc<Metrics>,
    actor_stop: CancellationToken,
    actor_task: JoinHandle<Phase>,
}

impl EmbeddedController {
    /// Whether the actor has ended (deposed, or stopped).
    pub fn is_finished(&self) -> bool {
        self.actor_task.is_finished()
    }

    /// Whether it still answers RPCs: running and not deposed.
    pub fn is_serving(&self) -> bool {
        !self.is_finished() && matches!(*self.phase.borrow(), Phase::Serving)
    }

    /// Stops the actor: watch streams end and RPCs answer UNAVAILABLE.
    pub async fn stop(self) -> Phase {
        self.actor_stop.cancel();
        match self.actor_task.await {
            Ok(phase) => phase,
            Err(e) => {
                warn!(error = %e, "controller actor failed");
                Phase::Stopped
            }
        }
    }
}

/// Claims `store` and starts a controller actor on it, without any
/// listener, recording into `metrics`. Uses the lease and watch settings of
/// `config`; its addresses are ignored.
pub async fn embed<S: MetadataStore + 'static>(
    config: &ServerConfig,
    store: S,
    metrics: Arc<Metrics>,
) -> Result<EmbeddedController, StoreError> {
    let (phase_tx, phase) = watch::channel(Phase::Starting);
    embed_with(config, store, metrics, phase_tx, phase).await
}

async fn embed_with<S: MetadataStore + 'static>(
    config: &ServerConfig,
    store: S,
    metrics: Arc<Metrics>,
    phase_tx: watch::Sender<Phase>,
    phase: watch::Receiver<Phase>,
) -> Result<EmbeddedController, StoreError> {
    let meta = store.claim().await?;
    let started = Instant::now();
    let controller_epoch = meta.controller_epoch;
    info!(
        controller_epoch,
        brokers = meta.brokers.len(),
        topics = meta.topics.len(),
        "claimed the metadata store"
    );
    let mut ctl = Controller::new(config.controller(), meta, 0);
    // Topics from metadata written before topics had ids get one now,
    // durably, before any broker or client learns about them.
    let ids = ctl.assign_topic_ids();
    if !ids.is_empty() {
        store.persist(controller_epoch, &ids.changes).await?;
        info!(
            topics = ids.changes.len(),
            "gave topics created before topic ids a new id"
        );
        ctl.apply(ids);
    }
    let (updates, _) = broadcast::channel(config.watch_buffer);
    let (commands_tx, commands_rx) = mpsc::channel(COMMAND_QUEUE);
    phase_tx.send_replace(Phase::Serving);
    let actor = Actor::new(
        ctl,
        store,
        started,
        updates,
        Arc::clone(&metrics),
        phase_tx,
        Timing {
            heartbeat_interval_ms: config.heartbeat_interval_ms,
            session_timeout_ms: config.session_timeout_ms,
        },
    );
    let snapshots = actor.snapshots();
    let actor_stop = CancellationToken::new();
    let actor_task =
        tokio::spawn(actor.run(commands_rx, config.tick_interval(), actor_stop.clone()));
    Ok(EmbeddedController {
        service: ControllerService::new(commands_tx, phase.clone(), Arc::clone(&metrics)),
        controller_epoch,
        snapshots,
        phase,
        metrics,
        actor_stop,
        actor_task,
    })
}

/// A running controller. Call [`ControllerHandle::shutdown`] to stop it;
/// a dropped handle leaves the servers running until the runtime ends.
#[derive(Debug)]
pub struct ControllerHandle {
    /// Bound address of the gRPC Controller service.
    pub grpc_addr: SocketAddr,
    /// Bound address of /metrics, /healthz, /readyz.
    pub http_addr: SocketAddr,
    /// The epoch this controller claimed.
    pub controller_epoch: i64,
    metrics: Arc<Metrics>,
    phase: watch::Receiver<Phase>,
    actor_stop: CancellationToken,
    /// `None` once [`ControllerHandle::stopped`] has seen it end.
    actor_task: Option<JoinHandle<Phase>>,
    grpc_stop: CancellationToken,
    grpc_task: Option<JoinHandle<Result<(), tonic::transport::Error>>>,
    http: HttpServer,
    shutdown_timeout: Duration,
}

async fn bind(
    what: &'static str,
    addr: SocketAddr,
) -> Result<(TcpListener, SocketAddr), ServerError> {
    let err = |source| ServerError::Bind { what, addr, source };
    let listener = TcpListener::bind(addr).await.map_err(err)?;
    let bound = listener.local_addr().map_err(err)?;
    Ok((listener, bound))
}

/// Starts a controller on the file store named by `--metadata-file`.
pub async fn start(config: ServerConfig) -> Result<ControllerHandle, ServerError> {
    let store = FileStore::new(config.metadata_file.clone());
    start_with_store(config, store).await
}

/// Starts a controller on `store` and returns once it serves.
pub async fn start_with_store<S: MetadataStore + 'static>(
    config: ServerConfig,
    store: S,
) -> Result<ControllerHandle, ServerError> {
    config.validate()?;
    let internal_tls = config.internal_tls.load()?;
    let metrics = Arc::new(Metrics::new());
    let (phase_tx, phase) = watch::channel(Phase::Starting);

    // HTTP first: probes answer while the store is claimed.
    let (http_listener, http_addr) = bind("HTTP", config.http_addr).await?;
    let http = HttpServer::spawn(
        http_listener,
        http::router(HttpState {
            metrics: Arc::clone(&metrics),
            phase: phase.clone(),
        }),
    );
    let fail = |e: ServerError| {
        http.cancel();
        e
    };

    let (grpc_listener, grpc_addr) = bind("gRPC Controller service", config.listen_addr)
        .await
        .map_err(fail)?;
    let builder = match &internal_tls {
        Some(tls) => tonic::transport::Server::builder()
            .tls_config(tls.server())
            .map_err(|e| fail(ServerError::Grpc(e)))?,
        None => tonic::transport::Server::builder(),
    };

    let embedded = embed_with(
        &config,
        store,
        Arc::clone(&metrics),
        phase_tx,
        phase.clone(),
    )
    .await
    .map_err(|e| fail(ServerError::Claim(e)))?;
    let EmbeddedController {
        service,
        controller_epoch,
        actor_stop,
        actor_task,
        ..
    } = embedded;

    let grpc_stop = CancellationToken::new();
    let grpc_task = tokio::spawn({
        let stop = grpc_stop.clone();
        builder
            .tcp_nodelay(true)
            .add_service(service.server())
            .serve_with_incoming_shutdown(
                TcpListenerStream::new(grpc_listener),
                stop.cancelled_owned(),
            )
    });
    info!(%grpc_addr, %http_addr, controller_epoch, "controller ready");
    Ok(ControllerHandle {
        grpc_addr,
        http_addr,
        controller_epoch,
        metrics,
        phase,
        actor_stop,
        actor_task: Some(actor_task),
        grpc_stop,
        grpc_task: Some(grpc_task),
        http,
        shutdown_timeout: config.shutdown_timeout(),
    })
}

impl ControllerHandle {
    /// The controller's metrics registry.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// What the controller is doing now.
    pub fn phase(&self) -> Phase {
        *self.phase.borrow()
    }

    /// Resolves when the controller stops serving on its own: deposed by a
    /// newer controller, or the gRPC server failed. For `select!` against
    /// a shutdown signal.
    pub async fn stopped(&mut self) -> ServerError {
        let (Some(actor), Some(grpc)) = (self.actor_task.as_mut(), self.grpc_task.as_mut()) else {
            return std::future::pending().await;
        };
        enum Ended {
            Actor(Result<Phase, tokio::task::JoinError>),
            Grpc(Result<Result<(), tonic::transport::Error>, tokio::task::JoinError>),
        }
        let ended = tokio::select! {
            phase = actor => Ended::Actor(phase),
            result = grpc => Ended::Grpc(result),
        };
        match ended {
            Ended::Actor(phase) => {
                self.actor_task = None;
                match phase {
                    Ok(Phase::Deposed { ours, current }) => ServerError::Deposed { ours, current },
                    Ok(_) => ServerError::Stopped,
                    Err(e) => ServerError::Task(e),
                }
            }
            Ended::Grpc(result) => {
                self.grpc_task = None;
                match result {
                    Ok(Ok(())) => ServerError::Stopped,
                    Ok(Err(e)) => ServerError::Grpc(e),
                    Err(e) => ServerError::Task(e),
                }
            }
        }
    }

    /// Graceful shutdown; see the module docs for the order.
    pub async fn shutdown(self) -> Result<(), ServerError> {
        info!("shutting down");
        self.actor_stop.cancel();
        if let Some(actor) = self.actor_task {
            match actor.await {
                Ok(phase) => info!(?phase, "controller actor stopped"),
                Err(e) => warn!(error = %e, "controller actor failed"),
            }
        }
        self.grpc_stop.cancel();
        if let Some(grpc_task) = self.grpc_task {
            rill_process::run::drain_grpc(grpc_task, self.shutdown_timeout).await;
        }
        self.http.stop().await;
        info!("shutdown complete");
        Ok(())
    }
}

/// Runs a controller on the file store until `shutdown` resolves, then
/// shuts it down gracefully. Prints `RILL_READY controller=<addr>
/// http=<addr>` on stdout once serving (tools and tests parse it to learn
/// port-0 addresses). Returns [`ServerError::Deposed`] when another
/// controller claims the metadata file.
pub async fn run(
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    let handle = start(config).await?;
    rill_process::run::announce_ready(&[
        ("controller", &handle.grpc_addr),
        ("http", &handle.http_addr),
    ]);
    rill_process::run::serve_until(
        handle,
        shutdown,
        ControllerHandle::stopped,
        ControllerHandle::shutdown,
        "the controller stopped serving",
    )
    .await
}
