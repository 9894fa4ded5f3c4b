//! The Kafka wire protocol listener: lets Kafka clients (the Java client
//! and its tools, librdkafka and kcat, confluent-kafka, ...) produce,
//! consume and administer topics.
//!
//! It is an adapter, like [`crate::grpc`]: it decodes requests with the
//! `kafka-protocol` crate (never a hand-written codec), calls the same
//! services ([`ReplicaManager`]), and encodes the answers. Service errors
//! become Kafka error codes in one place, [`errors::error_code`].
//!
//! Data flow:
//! - [`serve`] accepts connections; each one runs
//!   [`connection::serve_connection`]: a reader task cuts the byte stream
//!   into size-prefixed frames ([`frame`], bounded by
//!   `--kafka-max-request-bytes`); requests are decoded and started in
//!   arrival order and may run concurrently (pipelining), responses are
//!   written in request order. A malformed or oversized frame closes only
//!   its connection, with a log line.
//! - [`dispatch`] decodes the request header and body, checks the API and
//!   version against what this broker serves (answered truthfully by
//!   ApiVersions) and routes, through the one table of APIs in [`apis`]
//!   (types, versions, names and handlers), to one module per API family:
//!   [`produce`], [`fetch`], [`metadata`] (Metadata, DescribeCluster), [`offsets`]
//!   (ListOffsets, OffsetForLeaderEpoch), [`admin`] (CreateTopics,
//!   DeleteTopics, CreatePartitions, DescribeConfigs), [`producer_id`]
//!   (InitProducerId), [`acls`] (CreateAcls, DescribeAcls, DeleteAcls),
//!   [`groups`] (the consumer-group APIs, over the [`GroupCoordinator`]
//!   when one is plugged in).
//! - Before any handler runs, [`authz`] checks the request against the
//!   ACLs for the connection's principal (when authorization is on).
//!
//! Flexible versions use request header v2 and response header v1;
//! ApiVersions responses always use header v0 so that any client can read
//! them.

pub mod acls;
pub mod admin;
pub mod apis;
pub mod authz;
pub mod connection;
pub mod dispatch;
pub mod errors;
pub mod fetch;
pub mod fetch_session;
pub mod frame;
pub mod groups;
pub mod memory;
pub mod metadata;
pub mod offsets;
pub mod produce;
pub mod producer_id;
pub mod quotas;
pub mod reassign;
pub mod share;
pub mod throttle;
pub mod topic_id;
pub mod txn;

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::ApiKey;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::group::GroupCoordinator;
use crate::metrics::Metrics;
use crate::partition::manager::ReplicaManager;
use crate::security::ListenerSecurity;

pub use producer_id::ProducerIdAllocator;

/// Whether Kafka clients may change topics (one setting for create and
/// grow, one for delete).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TopicAdminPolicy {
    /// The requests are served.
    Allow,
    /// They fail with POLICY_VIOLATION (topics are managed elsewhere, for
    /// example as Topic resources in Git).
    Deny,
}

/// What the listener needs from the broker configuration.
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    pub broker_id: i32,
    /// Reported as the cluster id (Metadata v2+, DescribeCluster).
    pub cluster_id: String,
    /// Largest request frame; a larger one closes the connection.
    pub max_request_bytes: usize,
    /// Whether CreateTopics and CreatePartitions are served.
    pub create_topics: TopicAdminPolicy,
    /// Whether DeleteTopics is served.
    pub delete_topics: TopicAdminPolicy,
    /// Partitions of topics a Metadata request may create
    /// (`allow_auto_topic_creation`); `None` refuses auto-creation.
    pub auto_create_partitions: Option<i32>,
    /// Partitions of a topic CreateTopics asks for with -1.
    pub default_partitions: i32,
    /// Where each broker setting came from, by its Kafka name
    /// (DescribeConfigs); a setting not listed has its default.
    pub config_sources: std::collections::BTreeMap<String, rill_proto::broker_config::Source>,
    /// The `transaction.version` feature level advertised (1 or 2).
    pub transaction_version: i16,
}

/// Everything a request handler needs, shared by all connections.
#[derive(Debug, Clone)]
pub struct KafkaContext {
    pub manager: Arc<ReplicaManager>,
    pub metrics: Arc<Metrics>,
    pub settings: KafkaSettings,
    pub producer_ids: Arc<ProducerIdAllocator>,
    /// Consumer groups; `None` leaves the group APIs out of ApiVersions.
    pub groups: Option<Arc<GroupCoordinator>>,
    /// Transactions; `None` answers the transaction APIs
    /// COORDINATOR_NOT_AVAILABLE.
    pub txns: Option<Arc<crate::txn::TxnCoordinator>>,
    /// Who may do what ([`authz`]), and where ACL changes go.
    pub acls: crate::security::AclService,
    /// The named listener (`--kafka-listener`) this context serves: clients
    /// are told every broker's address on it. `None`: the single listener.
    pub listener: Option<String>,
    /// Client quotas ([`throttle`]), and where quota changes go.
    pub quotas: crate::quota::QuotaService,
    /// Incremental fetch sessions, shared by every listener of the broker.
    pub fetch_sessions: Arc<fetch_session::FetchSessions>,
    /// Share groups at this broker's partitions; `None` leaves the share
    /// APIs out of ApiVersions.
    pub shares: Option<Arc<crate::share::ShareManager>>,
    /// Request bytes read and not yet answered, shared by every listener.
    pub request_memory: memory::RequestMemory,
}

impl KafkaContext {
    /// Counts an error code returned by `api` (0 is not an error).
    pub fn count_error(&self, api: ApiKey, code: i16) {
        if let Some(e) = kafka_protocol::ResponseError::try_from_code(code) {
            self.metrics
                .kafka_errors
                .with_label_values(&[apis::api_name(api), &format!("{e:?}")])
                .inc();
        }
    }
}

/// Longest a listener waits for its connections to finish their in-flight
/// requests at shutdown before closing them.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts Kafka connections on `listener`, secured as `security` says,
/// until `stop` is cancelled, then
/// lets every connection finish its in-flight requests (bounded by
/// `drain_timeout`) and returns.
pub async fn serve(
    listener: TcpListener,
    context: Arc<KafkaContext>,
    security: ListenerSecurity,
    stop: CancellationToken,
    drain_timeout: Duration,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    connections.spawn(connection::serve_connection(
                        stream,
                        peer,
                        Arc::clone(&context),
                        security.clone(),
                        stop.clone(),
                    ));
                }
                Err(e) => {
                    // Out of file descriptors and the like: keep serving
                    // the connections there are, try again shortly.
                    warn!(error = %e, "accepting a Kafka connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let open = connections.len();
    if open > 0 {
        info!(
            open,
            "Kafka listener stopped; waiting for in-flight requests"
        );
    }
    let drained = tokio::time::timeout(drain_timeout, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!(
            remaining = connections.len(),
            "Kafka connections did not finish in time; closing them"
        );
        connections.shutdown().await;
    }
}

/// `host:port` Kafka clients use for this broker.
pub fn advertised_address(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Splits an advertised `host:port` (`[v6]:port` for IPv6) for Kafka's
/// separate host and port fields.
pub fn split_host_port(address: &str) -> Option<(String, i32)> {
    let (host, port) = address.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then(|| (host.to_owned(), i32::from(port)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_advertised_addresses_when_split_should_give_host_and_port() {
        assert_eq!(
            split_host_port("broker-0.rill.svc:9092"),
            Some(("broker-0.rill.svc".to_owned(), 9092))
        );
        assert_eq!(
            split_host_port("[::1]:19092"),
            Some(("::1".to_owned(), 19092))
        );
        assert_eq!(split_host_port("no-port"), None);
        assert_eq!(split_host_port(":9092"), None);
        assert_eq!(advertised_address("::1", 9092), "[::1]:9092");
        assert_eq!(advertised_address("host", 9092), "host:9092");
    }
}
