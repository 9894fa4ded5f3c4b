//! The Rust client of the controller, for brokers and tools.
//!
//! [`ControllerClient::connect`] takes every controller address it may
//! use (on Kubernetes: the operator replicas; locally: one standalone
//! `rill-controller`), connects to the first that answers within the
//! connect timeout, and fails over to the next when a call answers
//! UNAVAILABLE, which is what a deposed or stopping controller and a
//! dead address answer. Other errors are returned, typed:
//!
//! - [`ClientError::MustRegister`]: the broker incarnation is unknown,
//!   stale or fenced; call [`ControllerClient::register`] again;
//! - [`ClientError::StaleMetadata`]: AlterPartition named an old leader or
//!   partition epoch, or the broker no longer leads; refresh metadata (the
//!   watch stream) and retry if still relevant;
//! - [`ClientError::Invalid`], [`ClientError::NotFound`],
//!   [`ClientError::AlreadyExists`]: the request itself is wrong; retrying
//!   it unchanged cannot help;
//! - [`ClientError::Unavailable`], [`ClientError::NoController`],
//!   [`ClientError::Timeout`]: retry later.
//!
//! [`ClientError::retry`] condenses this into a [`Retry`] advice.
//!
//! Every unary call has a per-request timeout ([`ClientOptions`]).
//! [`ControllerClient::watch`] returns a stream of [`MetadataUpdate`]s
//! converted back into the core's types (a snapshot first); the stream
//! ends with an error when the controller stops or is deposed, and the
//! caller watches again (possibly reaching another controller), getting a
//! fresh snapshot. [`MetadataView`] applies updates and ignores those
//! from an older controller epoch.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use futures::{Stream, StreamExt};
use rill_proto::controller as pb;
use rill_proto::controller::controller_client::ControllerClient as GrpcClient;
use thiserror::Error;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use crate::controller::Liveness;
use crate::convert;
use crate::service::reason_of;
use crate::state::{BrokerId, Endpoints, PartitionState, TopicState};

/// gRPC metadata key naming the cluster a request is for. One operator
/// hosts a controller per StreamCluster behind one address and routes by it;
/// the standalone controller serves a single cluster and ignores it.
pub const CLUSTER_HEADER: &str = "rill-cluster";

/// Timeouts and routing of a [`ControllerClient`].
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// How long to wait for one address to accept a connection.
    pub connect_timeout: Duration,
    /// How long one unary call (or opening a watch stream) may take on one
    /// address.
    pub request_timeout: Duration,
    /// The cluster (`namespace/name` on Kubernetes) sent as
    /// [`CLUSTER_HEADER`] with every request; `None` sends nothing.
    pub cluster: Option<String>,
    /// Mutual TLS towards the controller (`https://`); `None` speaks
    /// plaintext.
    pub tls: Option<tonic::transport::ClientTlsConfig>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(5),
            cluster: None,
            tls: None,
        }
    }
}

/// What a caller should do after an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Refresh metadata (watch), then retry if the request still makes sense.
    AfterRefresh,
    /// Register again (new broker epoch), then retry.
    AfterRegister,
    /// Retry the same request later (controller unreachable or its store down).
    Later,
    /// The request is wrong; retrying it unchanged cannot succeed.
    Never,
}

/// Why a controller call failed.
#[derive(Debug, Error)]
pub enum ClientError {
    #[error("no controller address given")]
    NoAddresses,
    #[error("invalid controller address {addr:?}: {reason}")]
    InvalidAddress { addr: String, reason: String },
    /// Every address was unreachable or answered that it is not the active
    /// controller.
    #[error("no active controller at {addrs}: {last}")]
    NoController { addrs: String, last: String },
    #[error("controller call {method} timed out after {after:?}")]
    Timeout {
        method: &'static str,
        after: Duration,
    },
    /// FAILED_PRECONDITION: unknown, stale or fenced broker incarnation.
    #[error("{message}")]
    MustRegister { reason: String, message: String },
    /// ABORTED: not the leader, stale leader or partition epoch.
    #[error("{message}")]
    StaleMetadata { reason: String, message: String },
    /// INVALID_ARGUMENT (bad name, config, ISR, placement).
    #[error("{message}")]
    Invalid { reason: String, message: String },
    #[error("{message}")]
    NotFound { reason: String, message: String },
    #[error("{message}")]
    AlreadyExists { reason: String, message: String },
    /// PERMISSION_DENIED: the change is against a policy
    /// (`POLICY_VIOLATION`); the message says where to make it instead.
    #[error("{message}")]
    Refused { reason: String, message: String },
    /// UNAVAILABLE from the active controller (its store is down; nothing
    /// changed).
    #[error("{message}")]
    Unavailable { reason: String, message: String },
    /// Any other status.
    #[error("controller answered {code:?}: {message}")]
    Other { code: Code, message: String },
    #[error("unexpected response from the controller: {0}")]
    Protocol(String),
}

impl ClientError {
    fn from_status(status: &Status) -> Self {
        let message = status.message().to_owned();
        let reason = reason_of(&message).unwrap_or_default().to_owned();
        match status.code() {
            Code::FailedPrecondition => Self::MustRegister { reason, message },
            Code::Aborted => Self::StaleMetadata { reason, message },
            Code::InvalidArgument => Self::Invalid { reason, message },
            Code::NotFound => Self::NotFound { reason, message },
            Code::AlreadyExists => Self::AlreadyExists { reason, message },
            Code::PermissionDenied => Self::Refused { reason, message },
            Code::Unavailable => Self::Unavailable { reason, message },
            code => Self::Other { code, message },
        }
    }

    /// The machine-readable reason the controller gave (`FENCED_BROKER`,
    /// `FENCED_LEADER_EPOCH`, ...), see `docs/controller.md`.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Self::MustRegister { reason, .. }
            | Self::StaleMetadata { reason, .. }
            | Self::Invalid { reason, .. }
            | Self::NotFound { reason, .. }
            | Self::AlreadyExists { reason, .. }
            | Self::Refused { reason, .. }
            | Self::Unavailable { reason, .. } => {
                Some(reason).filter(|r| !r.is_empty()).map(|r| r.as_str())
            }
            _ => None,
        }
    }

    /// What to do next.
    pub fn retry(&self) -> Retry {
        match self {
            Self::MustRegister { .. } => Retry::AfterRegister,
            Self::StaleMetadata { .. } => Retry::AfterRefresh,
            Self::NoController { .. }
            | Self::Timeout { .. }
            | Self::Unavailable { .. }
            | Self::Other { .. } => Retry::Later,
            Self::NoAddresses
            | Self::InvalidAddress { .. }
            | Self::Invalid { .. }
            | Self::NotFound { .. }
            | Self::AlreadyExists { .. }
            | Self::Refused { .. }
            | Self::Protocol(_) => Retry::Never,
        }
    }
}

/// A controller's reply to a status that means "try another address".
fn fails_over(status: &Status) -> bool {
    status.code() == Code::Unavailable && reason_of(status.message()) != Some("STORE_UNAVAILABLE")
}

/// A broker's registration request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub broker_id: BrokerId,
    /// UUID of the data directory; a new one tells the controller the disk
    /// was wiped.
    pub log_dir_id: String,
    pub endpoints: Endpoints,
    pub rack: Option<String>,
}

/// The reply to [`ControllerClient::register`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Registered {
    /// The new incarnation's epoch; send it with every later request.
    pub broker_epoch: i64,
    pub controller_epoch: i64,
    /// Heartbeat this often.
    pub heartbeat_interval: Duration,
    /// The lease expires after this long without a heartbeat.
    pub session_timeout: Duration,
}

/// The reply to [`ControllerClient::heartbeat`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartbeatReply {
    pub controller_epoch: i64,
    /// Active, or shutting down after a controlled shutdown.
    pub state: Liveness,
    pub heartbeat_interval: Duration,
    pub session_timeout: Duration,
}

/// An ISR change asked by a partition leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlterPartition {
    pub broker_id: BrokerId,
    pub broker_epoch: i64,
    pub topic: String,
    pub partition: i32,
    /// The leader epoch the leader holds.
    pub leader_epoch: i32,
    /// The partition epoch of the state the change is based on.
    pub partition_epoch: i32,
    pub new_isr: Vec<BrokerId>,
    /// The broker epoch of each member the change adds, from its fetches.
    pub new_isr_epochs: Vec<(BrokerId, i64)>,
    /// The leader's replica is offline: it steps down instead (`new_isr`
    /// is ignored).
    pub leader_offline: bool,
}

/// A committed partition state and the controller epoch that committed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlteredPartition {
    pub controller_epoch: i64,
    pub state: PartitionState,
}

/// The reply to [`ControllerClient::controlled_shutdown`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReply {
    pub controller_epoch: i64,
    /// Partitions the broker still leads (no other in-sync replica); it
    /// may retry, or stop anyway after its timeout.
    pub remaining_leaderships: u32,
}

/// A broker as watchers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    pub id: BrokerId,
    pub epoch: i64,
    pub endpoints: Endpoints,
    pub rack: Option<String>,
    pub state: Liveness,
}

/// One partition whose leader, ISR or epochs changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionUpdate {
    pub topic: String,
    pub partition: i32,
    pub state: PartitionState,
}

/// One message of the watch stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataUpdate {
    /// The controller that sent it; ignore anything older than the newest seen.
    pub controller_epoch: i64,
    /// True for the first message of a stream: replaces everything known.
    pub snapshot: bool,
    /// Brokers registered, or whose state changed.
    pub brokers: Vec<BrokerInfo>,
    /// Topics created, or whose partition count or config changed (whole).
    pub topics: Vec<TopicState>,
    pub partitions: Vec<PartitionUpdate>,
    pub deleted_topics: Vec<String>,
    /// The whole new set of ACLs, when it changed (always in a snapshot).
    pub acls: Option<Vec<rill_proto::acl::Acl>>,
    /// The whole new set of client quotas, when it changed (always in a
    /// snapshot).
    pub client_quotas: Option<rill_proto::quota::ClientQuotas>,
}

impl MetadataUpdate {
    fn from_pb(u: pb::MetadataUpdate) -> Result<Self, ClientError> {
        let brokers = u
            .brokers
            .into_iter()
            .map(|b| BrokerInfo {
                id: b.id,
                epoch: b.epoch,
                endpoints: convert::endpoints_from_pb(b.endpoints),
                rack: Some(b.rack).filter(|r| !r.is_empty()),
                state: convert::liveness_from_pb(b.state),
            })
            .collect();
        let topics = u
            .topics
            .into_iter()
            .map(convert::topic_from_pb)
            .collect::<Result<_, _>>()
            .map_err(ClientError::Protocol)?;
        let partitions = u
            .partitions
            .into_iter()
            .map(|p| {
                let info = p.partition.ok_or_else(|| {
                    ClientError::Protocol(format!("partition update for {:?} is empty", p.topic))
                })?;
                Ok(PartitionUpdate {
                    topic: p.topic,
                    partition: info.partition,
                    state: convert::partition_from_pb(info),
                })
            })
            .collect::<Result<_, ClientError>>()?;
        Ok(Self {
            controller_epoch: u.controller_epoch,
            snapshot: u.snapshot,
            brokers,
            topics,
            partitions,
            deleted_topics: u.deleted_topics,
            acls: if u.acls_changed {
                Some(
                    u.acls
                        .iter()
                        .map(rill_proto::acl::Acl::from_wire)
                        .collect::<Result<_, _>>()
                        .map_err(ClientError::Protocol)?,
                )
            } else {
                None
            },
            client_quotas: if u.client_quotas_changed {
                Some(
                    rill_proto::quota::ClientQuotas::from_wire(&u.client_quotas)
                        .map_err(|e| ClientError::Protocol(e.to_string()))?,
                )
            } else {
                None
            },
        })
    }
}

/// What an ACL change did: per creation, and per deletion filter the ACLs
/// it removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclChanges {
    pub created: Vec<Result<(), String>>,
    pub deleted: Vec<Result<Vec<rill_proto::acl::Acl>, String>>,
}

/// The cluster as a watcher knows it, built from [`MetadataUpdate`]s.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataView {
    /// The newest controller epoch seen.
    pub controller_epoch: i64,
    pub brokers: BTreeMap<BrokerId, BrokerInfo>,
    pub topics: BTreeMap<String, TopicState>,
}

impl MetadataView {
    /// Applies `u` unless it comes from an older controller; returns
    /// whether it was applied.
    pub fn apply(&mut self, u: &MetadataUpdate) -> bool {
        if u.controller_epoch < self.controller_epoch {
            return false;
        }
        self.controller_epoch = u.controller_epoch;
        if u.snapshot {
            self.brokers.clear();
            self.topics.clear();
        }
        for b in &u.brokers {
            self.brokers.insert(b.id, b.clone());
        }
        for t in &u.topics {
            self.topics.insert(t.name.clone(), t.clone());
        }
        for p in &u.partitions {
            if let Some(slot) = self
                .topics
                .get_mut(&p.topic)
                .and_then(|t| t.partitions.get_mut(p.partition as usize))
            {
                *slot = p.state.clone();
            }
        }
        for name in &u.deleted_topics {
            self.topics.remove(name);
        }
        true
    }

    /// A partition's state, if known.
    pub fn partition(&self, topic: &str, partition: i32) -> Option<&PartitionState> {
        self.topics
            .get(topic)
            .and_then(|t| t.partitions.get(usize::try_from(partition).ok()?))
    }
}

/// Metadata updates from [`ControllerClient::watch`].
pub type MetadataStream = Pin<Box<dyn Stream<Item = Result<MetadataUpdate, ClientError>> + Send>>;

/// The address in use.
#[derive(Debug, Clone)]
struct Current {
    index: usize,
    channel: Channel,
}

/// A client of the controller with failover between addresses.
#[derive(Debug)]
pub struct ControllerClient {
    addrs: Vec<String>,
    endpoints: Vec<Endpoint>,
    options: ClientOptions,
    /// The connected address, if any; `next` is where to start looking
    /// after it fails.
    current: Mutex<(Option<Current>, usize)>,
}

impl ControllerClient {
    /// Connects with default [`ClientOptions`]; see [`ControllerClient::connect_with`].
    pub async fn connect(addrs: Vec<String>) -> Result<Self, ClientError> {
        Self::connect_with(addrs, ClientOptions::default()).await
    }

    /// Connects to the first of `addrs` (`host:port`, or an `http://` URI)
    /// that accepts a connection within the connect timeout. Fails when
    /// none does.
    pub async fn connect_with(
        addrs: Vec<String>,
        options: ClientOptions,
    ) -> Result<Self, ClientError> {
        if addrs.is_empty() {
            return Err(ClientError::NoAddresses);
        }
        let endpoints = addrs
            .iter()
            .map(|addr| {
                let uri = rill_process::tls::grpc_uri(addr, options.tls.is_some());
                Endpoint::from_shared(uri)
                    .and_then(|e| match &options.tls {
                        Some(tls) => e.tls_config(tls.clone()),
                        None => Ok(e),
                    })
                    .map(|e| {
                        e.connect_timeout(options.connect_timeout)
                            .tcp_nodelay(true)
                            // Notice a vanished controller on an idle watch stream.
                            .http2_keep_alive_interval(Duration::from_secs(1))
                            .keep_alive_timeout(options.connect_timeout)
                            .keep_alive_while_idle(true)
                    })
                    .map_err(|e| ClientError::InvalidAddress {
                        addr: addr.clone(),
                        reason: e.to_string(),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let client = Self {
            addrs,
            endpoints,
            options,
            current: Mutex::new((None, 0)),
        };
        client.channel().await?;
        Ok(client)
    }

    /// The address currently in use, if connected.
    pub fn active_address(&self) -> Option<&str> {
        let guard = self.current.lock().unwrap_or_else(|p| p.into_inner());
        guard.0.as_ref().map(|c| self.addrs[c.index].as_str())
    }

    /// The connected channel, connecting to the next address that accepts.
    async fn channel(&self) -> Result<Current, ClientError> {
        let start = {
            let guard = self.current.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(c) = &guard.0 {
                return Ok(c.clone());
            }
            guard.1
        };
        let mut last = String::new();
        for i in 0..self.endpoints.len() {
            let index = (start + i) % self.endpoints.len();
            match self.endpoints[index].connect().await {
                Ok(channel) => {
                    let c = Current { index, channel };
                    let mut guard = self.current.lock().unwrap_or_else(|p| p.into_inner());
                    guard.0 = Some(c.clone());
                    tracing::debug!(addr = %self.addrs[index], "connected to controller");
                    return Ok(c);
                }
                Err(e) => last = format!("{}: {e}", self.addrs[index]),
            }
        }
        Err(self.no_controller(last))
    }

    /// Drops the connection to `index`; the next call starts after it.
    fn forget(&self, index: usize) {
        let mut guard = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if guard.0.as_ref().is_some_and(|c| c.index == index) {
            guard.0 = None;
            guard.1 = (index + 1) % self.endpoints.len();
        }
    }

    fn no_controller(&self, last: String) -> ClientError {
        ClientError::NoController {
            addrs: self.addrs.join(","),
            last,
        }
    }

    /// Runs one call, failing over across addresses (each tried once).
    async fn call<T, F, Fut>(&self, method: &'static str, f: F) -> Result<T, ClientError>
    where
        F: Fn(GrpcClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let mut last = String::new();
        for _ in 0..self.endpoints.len() {
            let current = match self.channel().await {
                Ok(c) => c,
                Err(e) => return Err(e),
            };
            let call = f(GrpcClient::new(current.channel));
            match tokio::time::timeout(self.options.request_timeout, call).await {
                Err(_) => {
                    return Err(ClientError::Timeout {
                        method,
                        after: self.options.request_timeout,
                    });
                }
                Ok(Ok(response)) => return Ok(response.into_inner()),
                Ok(Err(status)) if fails_over(&status) => {
                    tracing::debug!(
                        method,
                        addr = %self.addrs[current.index],
                        status = %status.message(),
                        "controller unavailable: trying the next address"
                    );
                    last = format!("{}: {}", self.addrs[current.index], status.message());
                    self.forget(current.index);
                }
                Ok(Err(status)) => return Err(ClientError::from_status(&status)),
            }
        }
        Err(self.no_controller(last))
    }

    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut r = self.routed(message);
        r.set_timeout(self.options.request_timeout);
        r
    }

    /// A request carrying the cluster routing header, if configured.
    fn routed<T>(&self, message: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(message);
        if let Some(cluster) = &self.options.cluster
            && let Ok(value) = cluster.parse()
        {
            r.metadata_mut().insert(CLUSTER_HEADER, value);
        }
        r
    }

    /// Registers a broker incarnation; returns its new broker epoch and the
    /// lease settings.
    pub async fn register(&self, registration: &Registration) -> Result<Registered, ClientError> {
        let message = pb::RegisterRequest {
            broker_id: registration.broker_id,
            log_dir_id: registration.log_dir_id.clone(),
            endpoints: Some(convert::endpoints_to_pb(&registration.endpoints)),
            rack: registration.rack.clone().unwrap_or_default(),
            protocol_version: rill_proto::versions::CONTROLLER.current,
        };
        let r = self
            .call("Register", |mut c| {
                let req = self.request(message.clone());
                async move { c.register(req).await }
            })
            .await?;
        Ok(Registered {
            broker_epoch: r.broker_epoch,
            controller_epoch: r.controller_epoch,
            heartbeat_interval: Duration::from_millis(u64::from(r.heartbeat_interval_ms)),
            session_timeout: Duration::from_millis(u64::from(r.session_timeout_ms)),
        })
    }

    /// Renews the lease of incarnation `broker_epoch`.
    /// [`ClientError::MustRegister`] when it is fenced or stale.
    pub async fn heartbeat(
        &self,
        broker_id: BrokerId,
        broker_epoch: i64,
    ) -> Result<HeartbeatReply, ClientError> {
        let message = pb::HeartbeatRequest {
            broker_id,
            broker_epoch,
        };
        let r = self
            .call("Heartbeat", |mut c| {
                let req = self.request(message);
                async move { c.heartbeat(req).await }
            })
            .await?;
        Ok(HeartbeatReply {
            controller_epoch: r.controller_epoch,
            state: convert::liveness_from_pb(r.state),
            heartbeat_interval: Duration::from_millis(u64::from(r.heartbeat_interval_ms)),
            session_timeout: Duration::from_millis(u64::from(r.session_timeout_ms)),
        })
    }

    /// Follows the cluster metadata: a snapshot, then deltas. The stream
    /// ends (after an error item) when the controller stops or is
    /// deposed; watch again to continue from a fresh snapshot.
    pub async fn watch(&self, broker_id: BrokerId) -> Result<MetadataStream, ClientError> {
        let streaming = self
            .call("WatchMetadata", |mut c| {
                // No deadline: the stream lives as long as the controller.
                let req = self.routed(pb::WatchMetadataRequest { broker_id });
                async move { c.watch_metadata(req).await }
            })
            .await?;
        Ok(Box::pin(streaming.map(|item| match item {
            Ok(u) => MetadataUpdate::from_pb(u),
            Err(status) => Err(ClientError::from_status(&status)),
        })))
    }

    /// Changes a partition's ISR; returns the committed state.
    /// [`ClientError::StaleMetadata`] (retry after refreshing) when the
    /// epochs are old or the broker does not lead; [`ClientError::Invalid`]
    /// (fatal) for an ISR the controller refuses.
    pub async fn alter_partition(
        &self,
        request: &AlterPartition,
    ) -> Result<AlteredPartition, ClientError> {
        let message = pb::AlterPartitionRequest {
            broker_id: request.broker_id,
            broker_epoch: request.broker_epoch,
            topic: request.topic.clone(),
            partition: request.partition,
            leader_epoch: request.leader_epoch,
            partition_epoch: request.partition_epoch,
            new_isr: request.new_isr.clone(),
            new_isr_epochs: request
                .new_isr_epochs
                .iter()
                .map(|(broker_id, broker_epoch)| pb::BrokerEpoch {
                    broker_id: *broker_id,
                    broker_epoch: *broker_epoch,
                })
                .collect(),
            leader_offline: request.leader_offline,
        };
        let r = self
            .call("AlterPartition", |mut c| {
                let req = self.request(message.clone());
                async move { c.alter_partition(req).await }
            })
            .await?;
        let state = r.partition.map(convert::partition_from_pb).ok_or_else(|| {
            ClientError::Protocol("AlterPartition reply without a partition".into())
        })?;
        Ok(AlteredPartition {
            controller_epoch: r.controller_epoch,
            state,
        })
    }

    /// Asks for this broker's leaderships to move away before it stops.
    pub async fn controlled_shutdown(
        &self,
        broker_id: BrokerId,
        broker_epoch: i64,
    ) -> Result<ShutdownReply, ClientError> {
        let message = pb::ControlledShutdownRequest {
            broker_id,
            broker_epoch,
        };
        let r = self
            .call("ControlledShutdown", |mut c| {
                let req = self.request(message);
                async move { c.controlled_shutdown(req).await }
            })
            .await?;
        Ok(ShutdownReply {
            controller_epoch: r.controller_epoch,
            remaining_leaderships: r.remaining_leaderships,
        })
    }

    /// Creates a topic; returns it as committed (placement, leaders).
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i32,
        config: BTreeMap<String, String>,
    ) -> Result<TopicState, ClientError> {
        let message = pb::CreateTopicRequest {
            name: name.to_owned(),
            partitions,
            replication_factor,
            config: config.into_iter().collect(),
        };
        let r = self
            .call("CreateTopic", |mut c| {
                let req = self.request(message.clone());
                async move { c.create_topic(req).await }
            })
            .await?;
        topic_reply(r.topic)
    }

    /// Deletes a topic.
    pub async fn delete_topic(&self, name: &str) -> Result<(), ClientError> {
        self.delete_topic_with_id(name, None).await
    }

    /// Deletes a topic; with `id`, only the topic of that id (a topic of
    /// the same name created since has another id and is not touched: the
    /// call fails with NOT_FOUND).
    pub async fn delete_topic_with_id(
        &self,
        name: &str,
        id: Option<&str>,
    ) -> Result<(), ClientError> {
        let message = pb::DeleteTopicRequest {
            name: name.to_owned(),
            id: id.unwrap_or_default().to_owned(),
        };
        self.call("DeleteTopic", |mut c| {
            let req = self.request(message.clone());
            async move { c.delete_topic(req).await }
        })
        .await?;
        Ok(())
    }

    /// Grows a topic to `total` partitions; returns it as committed.
    pub async fn create_partitions(
        &self,
        name: &str,
        total: i32,
    ) -> Result<TopicState, ClientError> {
        let message = pb::CreatePartitionsRequest {
            name: name.to_owned(),
            total,
        };
        let r = self
            .call("CreatePartitions", |mut c| {
                let req = self.request(message.clone());
                async move { c.create_partitions(req).await }
            })
            .await?;
        topic_reply(r.topic)
    }

    /// Replaces the config of topic `name` by `config` (every key; a key
    /// left out goes back to the default). With `validate_only` the
    /// controller checks the config and its store's policy and changes
    /// nothing. Returns the topic as committed.
    pub async fn alter_topic_config(
        &self,
        name: &str,
        config: BTreeMap<String, String>,
        validate_only: bool,
        origin: crate::ConfigOrigin,
    ) -> Result<TopicState, ClientError> {
        let message = pb::AlterTopicConfigRequest {
            name: name.to_owned(),
            id: String::new(),
            config: config.into_iter().collect(),
            validate_only,
            origin: match origin {
                crate::ConfigOrigin::Resource => pb::ConfigOrigin::Resource,
                crate::ConfigOrigin::Kafka => pb::ConfigOrigin::Kafka,
            } as i32,
        };
        let r = self
            .call("AlterTopicConfig", |mut c| {
                let req = self.request(message.clone());
                async move { c.alter_topic_config(req).await }
            })
            .await?;
        topic_reply(r.topic)
    }

    /// Sets or cancels partitions' target replicas; each partition's
    /// outcome is in the reply (`error` empty on success).
    pub async fn alter_reassignments(
        &self,
        reassignments: Vec<pb::Reassignment>,
    ) -> Result<Vec<pb::PartitionResult>, ClientError> {
        let message = pb::AlterReassignmentsRequest { reassignments };
        let r = self
            .call("AlterReassignments", |mut c| {
                let req = self.request(message.clone());
                async move { c.alter_reassignments(req).await }
            })
            .await?;
        Ok(r.results)
    }

    /// The moves in flight among `partitions` (all when empty).
    pub async fn list_reassignments(
        &self,
        partitions: Vec<pb::TopicPartition>,
    ) -> Result<Vec<pb::OngoingReassignment>, ClientError> {
        let message = pb::ListReassignmentsRequest { partitions };
        let r = self
            .call("ListReassignments", |mut c| {
                let req = self.request(message.clone());
                async move { c.list_reassignments(req).await }
            })
            .await?;
        Ok(r.reassignments)
    }

    /// Creates and deletes ACLs (Kafka's CreateAcls, DeleteAcls): one
    /// outcome per creation (`Err` says why), and per deletion filter the
    /// ACLs it deleted or why it failed.
    pub async fn alter_acls(
        &self,
        creations: &[rill_proto::acl::Acl],
        deletions: &[rill_proto::acl::AclFilter],
    ) -> Result<AclChanges, ClientError> {
        let message = pb::AlterAclsRequest {
            creations: creations.iter().map(|a| a.to_wire()).collect(),
            deletions: deletions.iter().map(|f| f.to_wire()).collect(),
        };
        let r = self
            .call("AlterAcls", |mut c| {
                let req = self.request(message.clone());
                async move { c.alter_acls(req).await }
            })
            .await?;
        let outcome = |error: String| if error.is_empty() { Ok(()) } else { Err(error) };
        Ok(AclChanges {
            created: r.creation_errors.into_iter().map(outcome).collect(),
            deleted: r
                .deletions
                .into_iter()
                .map(|d| {
                    outcome(d.error)?;
                    d.deleted
                        .iter()
                        .map(rill_proto::acl::Acl::from_wire)
                        .collect::<Result<Vec<_>, _>>()
                })
                .collect(),
        })
    }

    /// Kafka's AlterClientQuotas: applies each (checked) alteration on
    /// its own; one outcome per alteration (`Err` says why it was
    /// refused).
    pub async fn alter_client_quotas(
        &self,
        alterations: &[rill_proto::quota::QuotaAlteration],
    ) -> Result<Vec<Result<(), String>>, ClientError> {
        let message = pb::AlterClientQuotasRequest {
            alterations: alterations.iter().map(|a| a.to_wire()).collect(),
        };
        let r = self
            .call("AlterClientQuotas", |mut c| {
                let req = self.request(message.clone());
                async move { c.alter_client_quotas(req).await }
            })
            .await?;
        if r.errors.len() != alterations.len() {
            return Err(ClientError::Protocol(format!(
                "{} outcomes for {} client quota alterations",
                r.errors.len(),
                alterations.len()
            )));
        }
        Ok(r.errors
            .into_iter()
            .map(|e| if e.is_empty() { Ok(()) } else { Err(e) })
            .collect())
    }

    /// Preferred-leader elections for `partitions` (all partitions whose
    /// preferred replica does not lead, when empty).
    pub async fn elect_preferred_leaders(
        &self,
        partitions: Vec<pb::TopicPartition>,
    ) -> Result<Vec<pb::PartitionResult>, ClientError> {
        let message = pb::ElectLeadersRequest {
            election_type: pb::ElectionType::Preferred as i32,
            partitions,
        };
        let r = self
            .call("ElectLeaders", |mut c| {
                let req = self.request(message.clone());
                async move { c.elect_leaders(req).await }
            })
            .await?;
        Ok(r.results)
    }
}

fn topic_reply(topic: Option<pb::TopicInfo>) -> Result<TopicState, ClientError> {
    let topic = topic.ok_or_else(|| ClientError::Protocol("reply without a topic".into()))?;
    convert::topic_from_pb(topic).map_err(ClientError::Protocol)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_statuses_when_converted_should_give_typed_errors_and_advice() {
        let e =
            ClientError::from_status(&Status::aborted("FENCED_LEADER_EPOCH: stale leader epoch"));
        assert_eq!(e.retry(), Retry::AfterRefresh);
        assert_eq!(e.reason(), Some("FENCED_LEADER_EPOCH"));
        let e = ClientError::from_status(&Status::failed_precondition(
            "FENCED_BROKER: broker 1 is fenced (lease expired): register again",
        ));
        assert_eq!(e.retry(), Retry::AfterRegister);
        let e = ClientError::from_status(&Status::invalid_argument("INVALID_ISR: no"));
        assert_eq!(e.retry(), Retry::Never);
        let e = ClientError::from_status(&Status::permission_denied(
            "POLICY_VIOLATION: topic \"orders\" is managed by Topic data/orders",
        ));
        assert!(matches!(e, ClientError::Refused { .. }), "{e:?}");
        assert_eq!(e.reason(), Some("POLICY_VIOLATION"));
        assert_eq!(e.retry(), Retry::Never);
    }

    #[test]
    fn given_unavailable_when_checked_should_fail_over_unless_the_store_is_down() {
        assert!(fails_over(&Status::unavailable(
            "NOT_ACTIVE_CONTROLLER: not the active controller"
        )));
        assert!(fails_over(&Status::unavailable("tcp connect error")));
        assert!(!fails_over(&Status::unavailable(
            "STORE_UNAVAILABLE: metadata store unavailable"
        )));
        assert!(!fails_over(&Status::aborted("NOT_LEADER: x")));
    }

    #[test]
    fn given_updates_from_an_older_controller_when_applied_should_be_ignored() {
        let mut view = MetadataView::default();
        let snap = MetadataUpdate {
            controller_epoch: 2,
            snapshot: true,
            ..MetadataUpdate::default()
        };
        assert!(view.apply(&snap));
        let old = MetadataUpdate {
            controller_epoch: 1,
            deleted_topics: vec!["t".into()],
            ..snap.clone()
        };
        assert!(!view.apply(&old));
        assert_eq!(view.controller_epoch, 2);
    }

    #[tokio::test]
    async fn given_no_addresses_when_connecting_should_fail_clearly() {
        assert!(matches!(
            ControllerClient::connect(vec![]).await,
            Err(ClientError::NoAddresses)
        ));
    }
}
