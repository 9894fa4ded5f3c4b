//! Broker lifecycle: start, serve, shut down gracefully.
//!
//! [`Broker::start`] validates the config, binds the HTTP listener first (so
//! probes answer during recovery: `/readyz` says 503), binds the gRPC and
//! Kafka listeners, opens every topic's logs on the blocking pool, starts
//! the background tasks, serves the gRPC client API and the Kafka protocol
//! and only then reports ready. Tests call it with port 0 and read the bound addresses from the
//! returned [`BrokerHandle`]; the binary calls [`run`].
//!
//! [`BrokerHandle::shutdown`]: not ready -> long polls return and topic
//! admin is refused -> the gRPC server and the Kafka listener stop
//! accepting and in-flight requests finish (bounded by
//! `--shutdown-timeout-ms`) -> background tasks
//! stop -> every log is fsynced -> the HTTP server stops.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rill_process::http::HttpServer;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::cluster::link::{ClusterLink, ClusterSettings};
use crate::config::{BrokerConfig, ConfigError};
use crate::group::GroupCoordinator;
use crate::grpc::ClientApi;
use crate::grpc::replication::ReplicationApi;
use crate::http::{self, HttpState};
use crate::kafka::{self, KafkaContext, KafkaSettings, ProducerIdAllocator};
use crate::metrics::Metrics;
use crate::partition::manager::{BrokerInfo, ReplicaManager, Settings};
use crate::partition::store::TopicStore;
use crate::partition::tasks::{self, Intervals};

/// Why the broker could not start or stop cleanly.
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
    #[error("cannot open the data directory: {0}")]
    Open(#[from] crate::partition::Error),
    #[error("the gRPC server failed: {0}")]
    Grpc(#[from] tonic::transport::Error),
    #[error("{0} partition log(s) could not be flushed at shutdown; see the log for details")]
    Flush(usize),
    #[error("the gRPC server stopped without being asked to")]
    Stopped,
    #[error("internal task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("joining the cluster: {0}")]
    Cluster(String),
    #[error("reading the producer id state: {0}")]
    ProducerIds(std::io::Error),
    #[error(transparent)]
    Security(#[from] crate::security::SecurityError),
    #[error("reading the ACLs: {0}")]
    Acls(std::io::Error),
    #[error("reading the client quotas: {0}")]
    Quotas(std::io::Error),
}

/// Longest a broker in a cluster waits for its first metadata snapshot.
const FIRST_SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(30);

/// Entry point of a running broker.
#[derive(Debug)]
pub struct Broker;

/// A running broker. Drop it only after [`BrokerHandle::shutdown`]; a
/// dropped handle leaves the servers running until the runtime ends.
#[derive(Debug)]
pub struct BrokerHandle {
    /// Bound address of the gRPC client API.
    pub client_addr: SocketAddr,
    /// Bound address of /metrics, /healthz, /readyz.
    pub http_addr: SocketAddr,
    /// Bound address of the replication listener (cluster mode).
    pub replication_addr: Option<SocketAddr>,
    /// Bound address of the Kafka protocol listener.
    pub kafka_addr: SocketAddr,
    /// host:port advertised to Kafka clients.
    pub kafka_advertised: String,
    pub broker_id: i32,
    manager: Arc<ReplicaManager>,
    /// The consumer-group coordinator (the Kafka listener serves its API).
    groups: Arc<GroupCoordinator>,
    /// The controller link in cluster mode.
    cluster: Option<Arc<ClusterLink>>,
    /// Stops the replication server and the controller link.
    cluster_stop: CancellationToken,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
    grpc_stop: CancellationToken,
    /// `None` once [`BrokerHandle::serving_failed`] has seen it end.
    grpc_task: Option<JoinHandle<Result<(), tonic::transport::Error>>>,
    /// Stops the Kafka listener (in-flight requests finish first).
    kafka_stop: CancellationToken,
    kafka_tasks: Vec<JoinHandle<()>>,
    tasks_stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    http: HttpServer,
    shutdown_timeout: Duration,
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { what, addr, source })
}

/// Accepted gRPC connections with TCP_NODELAY. tonic ignores
/// `Server::tcp_nodelay` for an incoming stream of our own, and with Nagle
/// on, a small frame (a replica fetch answer, a gRPC response) waits for
/// the peer's delayed ACK, up to 40 ms on Linux: every acks=all produce
/// waited for it.
fn no_delay(listener: TcpListener) -> tonic::transport::server::TcpIncoming {
    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true))
}

fn local_addr(
    what: &'static str,
    l: &TcpListener,
    addr: SocketAddr,
) -> Result<SocketAddr, ServerError> {
    l.local_addr()
        .map_err(|source| ServerError::Bind { what, addr, source })
}

/// The machine's host name, for the default advertised address.
fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// host:port Kafka clients should use: the advertised host (or the bound
/// IP, or the host name) and `--kafka-advertised-port` (or the bound port).
fn kafka_advertised_address(config: &BrokerConfig, bound: SocketAddr) -> String {
    let port = config.kafka_advertised_port.unwrap_or(bound.port());
    let host = match &config.advertised_host {
        Some(host) => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
        None if bound.ip().is_unspecified() => hostname(),
        None => bound.ip().to_string(),
    };
    kafka::advertised_address(&host, port)
}

/// A bound Kafka listener before it serves.
struct KafkaPort {
    /// `None` for the single `--kafka-addr` listener.
    name: Option<String>,
    listener: TcpListener,
    bound: SocketAddr,
    advertised: String,
    security: crate::security::SecuritySettings,
}

/// host:port clients should use, from the config and the bound address.
fn advertised_address(config: &BrokerConfig, bound: SocketAddr) -> String {
    match &config.advertised_host {
        Some(host) if host.contains(':') && !host.starts_with('[') => {
            format!("[{host}]:{}", bound.port())
        }
        Some(host) => format!("{host}:{}", bound.port()),
        None if bound.ip().is_unspecified() => format!("{}:{}", hostname(), bound.port()),
        None => bound.to_string(),
    }
}

/// A gRPC server builder, speaking mutual TLS when `tls` is given.
fn grpc_server(
    tls: Option<&rill_process::tls::InternalTls>,
) -> Result<tonic::transport::Server, ServerError> {
    let builder = tonic::transport::Server::builder();
    Ok(match tls {
        Some(tls) => builder.tls_config(tls.server())?,
        None => builder,
    })
}

impl Broker {
    /// Starts a broker and returns once it serves.
    pub async fn start(config: BrokerConfig) -> Result<BrokerHandle, ServerError> {
        config.validate()?;
        let broker_id = config.resolved_broker_id()?;
        let log_defaults = config.log_defaults()?;
        let internal_tls = config.internal_tls.load()?.map(Arc::new);
        let metrics = Arc::new(Metrics::new());
        let ready = Arc::new(AtomicBool::new(false));
        let manager_cell = Arc::new(OnceLock::new());

        // HTTP first: probes must answer while logs are recovered.
        let http_listener = bind("HTTP", config.http_addr).await?;
        let http_addr = local_addr("HTTP", &http_listener, config.http_addr)?;
        let http = HttpServer::spawn(
            http_listener,
            http::router(HttpState {
                metrics: Arc::clone(&metrics),
                ready: Arc::clone(&ready),
                manager: Arc::clone(&manager_cell),
                data_dir: config.data_dir.clone(),
            }),
        );

        let grpc_listener = bind("gRPC client API", config.listen_addr).await?;
        let client_addr = local_addr("gRPC client API", &grpc_listener, config.listen_addr)?;
        // The Kafka listeners: the named ones, or the single --kafka-addr one.
        let mut kafka_listeners = Vec::new();
        if config.kafka_listeners.is_empty() {
            let listener = bind("Kafka", config.kafka_addr).await?;
            let bound = local_addr("Kafka", &listener, config.kafka_addr)?;
            kafka_listeners.push(KafkaPort {
                name: None,
                advertised: kafka_advertised_address(&config, bound),
                listener,
                bound,
                security: config.kafka_security(),
            });
        } else {
            for spec in &config.kafka_listeners {
                let addr = SocketAddr::new(config.kafka_addr.ip(), spec.port);
                let listener = bind("Kafka", addr).await?;
                let bound = local_addr("Kafka", &listener, addr)?;
                kafka_listeners.push(KafkaPort {
                    name: Some(spec.name.clone()),
                    advertised: advertised_address(&config, bound),
                    listener,
                    bound,
                    security: config.listener_security(spec),
                });
            }
        }
        let kafka_addr = kafka_listeners[0].bound;
        let kafka_advertised = kafka_listeners[0].advertised.clone();
        let kafka_named: BTreeMap<String, String> = kafka_listeners
            .iter()
            .filter_map(|l| Some((l.name.clone()?, l.advertised.clone())))
            .collect();

        let settings = Settings {
            broker: BrokerInfo {
                id: broker_id,
                address: advertised_address(&config, client_addr),
                kafka_address: kafka_advertised.clone(),
                kafka_listeners: kafka_named.clone(),
                rack: config.rack.clone(),
                fenced: false,
            },
            log_defaults,
            auto_create_partitions: config.auto_create_partitions(),
            default_replication_factor: config.default_replication_factor,
            max_request_bytes: config.max_request_bytes,
        };
        info!(broker_id, data_dir = %config.data_dir.display(), advertised = %settings.broker.address, "opening logs");
        let data_dir = config.data_dir.clone();
        let open_metrics = Arc::clone(&metrics);
        let opened = tokio::task::spawn_blocking(move || {
            let store = TopicStore::open(&data_dir).map_err(crate::partition::Error::from)?;
            let producer_ids = ProducerIdAllocator::open(&data_dir, broker_id)
                .map_err(ServerError::ProducerIds)?;
            let manager = ReplicaManager::open(store, settings, open_metrics)?;
            Ok::<_, ServerError>((manager, producer_ids))
        })
        .await;
        let (manager, producer_ids) = match opened {
            Ok(Ok((m, ids))) => (Arc::new(m), ids),
            Ok(Err(e)) => {
                http.cancel();
                return Err(e);
            }
            Err(e) => {
                http.cancel();
                return Err(e.into());
            }
        };
        let _ = manager_cell.set(Arc::clone(&manager));
        if config.controller_addr.is_empty() {
            // No controller: this broker is the whole ISR of every partition.
            for p in manager.all_partitions() {
                p.serve_alone();
            }
        }

        let tasks_stop = CancellationToken::new();
        let mut tasks = tasks::spawn(
            Arc::clone(&manager),
            Arc::clone(&metrics),
            Intervals {
                retention: Duration::from_millis(config.retention_check_interval_ms),
                compaction: Duration::from_millis(config.compaction_interval_ms),
            },
            tasks_stop.clone(),
        );

        let groups = GroupCoordinator::new(
            Arc::clone(&manager),
            config.group_settings(),
            Arc::clone(&metrics),
        );
        tasks.push(groups.start(tasks_stop.clone()));
        let producer_ids = Arc::new(producer_ids);
        let txns = crate::txn::TxnCoordinator::new(
            Arc::clone(&manager),
            config.txn_settings(),
            Arc::clone(&metrics),
            crate::txn::MarkerClient::new(internal_tls.clone()),
        );
        txns.set_groups(Arc::clone(&groups));
        tasks.push(txns.start(tasks_stop.clone()));
        let shares = crate::share::ShareManager::new(
            Arc::clone(&manager),
            Arc::clone(&metrics),
            crate::share::StateStore::new(Arc::clone(&groups), broker_id, internal_tls.clone()),
            crate::share::ShareSettings::default(),
        );
        tasks.push(shares.start(tasks_stop.clone()));
        tasks.extend(crate::config::reload::spawn(
            &config,
            Arc::clone(&manager),
            tasks_stop.clone(),
        ));

        let grpc_stop = CancellationToken::new();
        let service = ClientApi::server(
            Arc::clone(&manager),
            Arc::clone(&metrics),
            config.max_request_bytes,
        );
        let grpc_task = tokio::spawn({
            let stop = grpc_stop.clone();
            grpc_server(internal_tls.as_deref())?
                .add_service(service)
                .serve_with_incoming_shutdown(no_delay(grpc_listener), stop.cancelled_owned())
        });
        let authorizer = Arc::new(crate::security::Authorizer::new(
            config.authorization,
            config.super_users.clone(),
        ));
        let quota_manager = Arc::new(crate::quota::QuotaManager::new(
            crate::quota::WindowConfig {
                samples: config.quota_window_num,
                window_ms: u64::from(config.quota_window_size_seconds) * 1000,
            },
        ));
        // Cluster mode: serve replication, join the controller, and wait
        // for the first metadata snapshot to know this broker's roles.
        let cluster_stop = CancellationToken::new();
        let (cluster, replication_addr) = if config.controller_addr.is_empty() {
            (None, None)
        } else {
            let listener = bind("replication", config.replication_addr).await?;
            let bound = local_addr("replication", &listener, config.replication_addr)?;
            tokio::spawn({
                let stop = cluster_stop.clone();
                grpc_server(internal_tls.as_deref())?
                    .add_service(ReplicationApi::server(
                        Arc::clone(&manager),
                        config.max_request_bytes,
                    ))
                    .add_service(crate::txn::grpc::TxnApi::server(Arc::clone(&txns)))
                    .add_service(crate::share::ShareStatesApi::server(Arc::clone(&groups)))
                    .serve_with_incoming_shutdown(no_delay(listener), stop.cancelled_owned())
            });
            let settings = ClusterSettings {
                broker_id,
                controller_addrs: config.controller_addr.clone(),
                cluster: config.cluster.clone(),
                endpoints: rill_controller::Endpoints {
                    client: advertised_address(&config, client_addr),
                    kafka: kafka_advertised.clone(),
                    kafka_listeners: kafka_named.clone(),
                    replication: advertised_address(&config, bound),
                },
                rack: config.rack.clone(),
                replica_lag_time_max: Duration::from_millis(config.replica_lag_time_max_ms),
                reassignment_throttle_bytes_per_sec: config.reassignment_throttle_bytes_per_sec,
                authorizer: Arc::clone(&authorizer),
                internal_tls: internal_tls.clone(),
                controller_tls_server_name: config.controller_tls_server_name.clone(),
                quotas: Arc::clone(&quota_manager),
            };
            let link = ClusterLink::start(
                settings,
                &config.data_dir,
                Arc::clone(&manager),
                cluster_stop.clone(),
            )
            .await
            .map_err(|e| ServerError::Cluster(e.to_string()))?;
            let deadline = tokio::time::Instant::now() + FIRST_SNAPSHOT_TIMEOUT;
            while !link.is_synced() {
                if tokio::time::Instant::now() >= deadline {
                    return Err(ServerError::Cluster(format!(
                        "no metadata snapshot from the controller within {FIRST_SNAPSHOT_TIMEOUT:?}"
                    )));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (Some(link), Some(bound))
        };
        // ACLs: from the controller in a cluster, from the data directory
        // of a standalone broker.
        let acls = match &cluster {
            Some(link) => crate::security::AclService {
                authorizer: Arc::clone(&authorizer),
                admin: Arc::clone(link) as Arc<dyn crate::security::AclAdmin>,
            },
            None => {
                crate::security::AclService::open_local(&config.data_dir, Arc::clone(&authorizer))
                    .map_err(ServerError::Acls)?
            }
        };
        // Client quotas: likewise.
        let quotas = match &cluster {
            Some(link) => crate::quota::QuotaService {
                manager: Arc::clone(&quota_manager),
                admin: Arc::clone(link) as Arc<dyn crate::quota::QuotaAdmin>,
            },
            None => {
                crate::quota::QuotaService::open_local(&config.data_dir, Arc::clone(&quota_manager))
                    .map_err(ServerError::Quotas)?
            }
        };
        // The Kafka listener starts last: its Metadata answers need the
        // cluster view in cluster mode.
        let kafka_context = KafkaContext {
            manager: Arc::clone(&manager),
            metrics: Arc::clone(&metrics),
            settings: KafkaSettings {
                broker_id,
                cluster_id: config.cluster_name.clone(),
                max_request_bytes: config.kafka_max_request_bytes,
                create_topics: config.kafka_create_topics,
                delete_topics: config.kafka_delete_topics,
                auto_create_partitions: config.auto_create_partitions(),
                default_partitions: config.num_partitions,
                config_sources: config.kafka_config_sources(),
                transaction_version: config.transaction_version,
            },
            producer_ids: Arc::clone(&producer_ids),
            groups: Some(Arc::clone(&groups)),
            txns: Some(Arc::clone(&txns)),
            shares: Some(Arc::clone(&shares)),
            acls,
            listener: None,
            quotas,
            fetch_sessions: Arc::new(kafka::fetch_session::FetchSessions::new(
                config.max_incremental_fetch_session_cache_slots,
            )),
            request_memory: kafka::memory::RequestMemory::with_metrics(
                config.kafka_queued_request_bytes,
                &metrics,
            ),
        };
        let kafka_stop = CancellationToken::new();
        let mut kafka_tasks = Vec::new();
        let mut kafka_protocols = Vec::new();
        for port in kafka_listeners {
            let (security, security_tasks) = crate::security::start(&port.security, &tasks_stop)?;
            tasks.extend(security_tasks);
            kafka_protocols.push(format!(
                "{}={}://{}",
                port.name.as_deref().unwrap_or("default"),
                security.protocol(),
                port.bound
            ));
            let context = Arc::new(KafkaContext {
                listener: port.name.clone(),
                ..kafka_context.clone()
            });
            kafka_tasks.push(tokio::spawn(kafka::serve(
                port.listener,
                context,
                security,
                kafka_stop.clone(),
                config.shutdown_timeout(),
            )));
        }
        let kafka_protocol = kafka_protocols.join(",");
        ready.store(true, Ordering::Release);
        info!(%client_addr, %http_addr, %kafka_addr, kafka_advertised = %kafka_advertised, kafka_protocol, broker_id, cluster = cluster.is_some(), "broker ready");
        Ok(BrokerHandle {
            client_addr,
            http_addr,
            replication_addr,
            kafka_addr,
            kafka_advertised,
            broker_id,
            manager,
            groups,
            cluster,
            cluster_stop,
            metrics,
            ready,
            grpc_stop,
            grpc_task: Some(grpc_task),
            kafka_stop,
            kafka_tasks,
            tasks_stop,
            tasks,
            http,
            shutdown_timeout: config.shutdown_timeout(),
        })
    }
}

impl BrokerHandle {
    /// The broker's partitions (tests inspect replicas through it).
    pub fn manager(&self) -> &Arc<ReplicaManager> {
        &self.manager
    }

    /// The consumer-group coordinator.
    pub fn groups(&self) -> &Arc<GroupCoordinator> {
        &self.groups
    }

    /// The broker's metrics registry.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Waits until the gRPC server stops on its own (it only does on a
    /// fatal error) — for `select!` against a shutdown signal.
    pub async fn serving_failed(&mut self) -> ServerError {
        let Some(task) = self.grpc_task.as_mut() else {
            return std::future::pending().await;
        };
        let result = task.await;
        self.grpc_task = None;
        match result {
            Ok(Ok(())) => ServerError::Stopped,
            Ok(Err(e)) => ServerError::Grpc(e),
            Err(e) => ServerError::Task(e),
        }
    }

    /// Graceful shutdown; see the module docs for the order.
    pub async fn shutdown(self) -> Result<(), ServerError> {
        info!("shutting down");
        self.ready.store(false, Ordering::Release);
        if let Some(link) = &self.cluster {
            link.controlled_shutdown().await;
        }
        self.cluster_stop.cancel();
        self.manager.begin_shutdown();
        self.grpc_stop.cancel();
        self.kafka_stop.cancel();
        if let Some(grpc_task) = self.grpc_task {
            rill_process::run::drain_grpc(grpc_task, self.shutdown_timeout).await;
        }
        // Each listener bounds its own drain by the shutdown timeout.
        for task in self.kafka_tasks {
            if let Err(e) = task.await {
                warn!(error = %e, "Kafka listener task failed");
            }
        }
        self.tasks_stop.cancel();
        for t in self.tasks {
            if let Err(e) = t.await {
                warn!(error = %e, "background task failed");
            }
        }
        let manager = Arc::clone(&self.manager);
        let failed = tokio::task::spawn_blocking(move || manager.flush_all()).await?;
        self.http.stop().await;
        if failed > 0 {
            error!(failed, "shutdown finished with unflushed logs");
            return Err(ServerError::Flush(failed));
        }
        info!("shutdown complete: all logs flushed");
        Ok(())
    }
}

/// Runs a broker until `shutdown` resolves, then shuts it down gracefully.
/// Prints `RILL_READY client=<addr> http=<addr> [replication=<addr>]
/// kafka=<addr>` on stdout once serving: space-separated `key=value`
/// fields that tools and tests parse to learn port-0 addresses.
pub async fn run(
    config: BrokerConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    let handle = Broker::start(config).await?;
    let mut ready: Vec<(&str, &dyn std::fmt::Display)> =
        vec![("client", &handle.client_addr), ("http", &handle.http_addr)];
    if let Some(replication) = &handle.replication_addr {
        ready.push(("replication", replication));
    }
    ready.push(("kafka", &handle.kafka_addr));
    rill_process::run::announce_ready(&ready);
    rill_process::run::serve_until(
        handle,
        shutdown,
        BrokerHandle::serving_failed,
        BrokerHandle::shutdown,
        "the gRPC server stopped unexpectedly",
    )
    .await
}
