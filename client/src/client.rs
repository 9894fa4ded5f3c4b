//! [`Client`]: a thin wrapper over the generated tonic client of Rill's gRPC
//! client API (`proto/proto/client.proto`) that turns broker replies into
//! typed results and gRPC statuses into [`ClientError`]s a user can act on
//! (which broker address, which topic, what to do). It follows partition
//! leaders in a cluster.
//!
//! Data moves like this: `produce` encodes `(key, value)` pairs into one batch
//! and sends it; the broker assigns offsets. `fetch` returns whole stored
//! batches starting at the batch holding the requested offset; the records
//! before that offset and control records are dropped here.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rill_proto::client as pb;
use rill_proto::client::client_client::ClientClient;
use thiserror::Error;
use tonic::transport::{Channel, Endpoint};

use crate::records::{FetchedRecord, decode_batches, encode_batch, now_ms};

pub use pb::{Broker, MetadataResponse, PartitionInfo, TopicInfo};

/// How long [`Client::connect`] waits for the TCP/HTTP2 connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default limit on one request (a fetch's long-poll wait comes on top).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest response the client accepts (a fetch returns at least one whole
/// batch, and a stored batch may be up to 64 MiB).
pub const MAX_RESPONSE_BYTES: usize = 80 << 20;

/// What went wrong talking to a broker.
#[derive(Debug, Error)]
pub enum ClientError {
    /// The broker address does not parse as `host:port` or a URL.
    #[error("invalid broker address {addr:?}: {reason}")]
    BadAddress { addr: String, reason: String },
    /// No connection could be made.
    #[error(
        "cannot connect to broker at {addr}: {reason} (is rill-broker running there? set --broker or RILL_BROKER)"
    )]
    Connect { addr: String, reason: String },
    /// The topic does not exist.
    #[error("topic {topic:?} does not exist on broker {addr}")]
    UnknownTopic { addr: String, topic: String },
    /// The broker refused or failed a request.
    #[error("{op} failed on broker {addr}: {}", status_text(.code, .message))]
    Rpc {
        op: &'static str,
        addr: String,
        code: tonic::Code,
        message: String,
    },
    /// The broker did not answer in time.
    #[error("{op} timed out after {after:?} on broker {addr}")]
    Timeout {
        op: &'static str,
        addr: String,
        after: Duration,
    },
    /// Records could not be encoded into a batch.
    #[error("cannot encode record batch: {0}")]
    Encode(String),
    /// A fetched batch failed its checks (CRC, lengths, record decoding).
    #[error("corrupt record batch at byte {position} of a fetch response: {reason}")]
    Corrupt { position: usize, reason: String },
}

fn status_text(code: &tonic::Code, message: &str) -> String {
    let kind = match code {
        tonic::Code::Unavailable => "broker unavailable",
        tonic::Code::NotFound => "not found",
        tonic::Code::InvalidArgument => "invalid request",
        tonic::Code::AlreadyExists => "already exists",
        tonic::Code::OutOfRange => "out of range",
        tonic::Code::DeadlineExceeded => "timed out",
        tonic::Code::ResourceExhausted => "resource exhausted",
        tonic::Code::FailedPrecondition => "failed precondition",
        tonic::Code::Unimplemented => "not supported by this broker",
        tonic::Code::Unauthenticated | tonic::Code::PermissionDenied => "not allowed",
        _ => "error",
    };
    if message.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {message}")
    }
}

impl ClientError {
    /// The gRPC status code, for errors the broker returned.
    pub fn code(&self) -> Option<tonic::Code> {
        match self {
            Self::Rpc { code, .. } => Some(*code),
            Self::UnknownTopic { .. } => Some(tonic::Code::NotFound),
            Self::Connect { .. } => Some(tonic::Code::Unavailable),
            Self::Timeout { .. } => Some(tonic::Code::DeadlineExceeded),
            _ => None,
        }
    }
}

/// Kafka-style acknowledgement level of a produce request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Acks {
    /// Do not wait for any acknowledgement (acks=0); no offset is returned.
    None,
    /// The leader has appended the batch (acks=1).
    #[default]
    Leader,
    /// Every in-sync replica has the batch (acks=all).
    All,
}

impl Acks {
    fn to_proto(self) -> pb::Acks {
        match self {
            Self::None => pb::Acks::None,
            Self::Leader => pb::Acks::Leader,
            Self::All => pb::Acks::All,
        }
    }
}

impl std::str::FromStr for Acks {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "0" | "none" => Ok(Self::None),
            "1" | "leader" => Ok(Self::Leader),
            "all" | "-1" => Ok(Self::All),
            _ => Err(format!("acks must be 0, 1 or all, not {s:?}")),
        }
    }
}

/// Outcome of an acknowledged produce request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProduceAck {
    /// Offset of the first record sent (-1 with [`Acks::None`]).
    pub base_offset: i64,
    /// Offset the next record appended to the partition will get.
    pub log_end_offset: i64,
    pub log_start_offset: i64,
}

/// Outcome of [`Client::fetch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchResult {
    /// Records at or after the requested offset, in offset order.
    pub records: Vec<FetchedRecord>,
    /// Offset to ask for next: after the last returned batch, or the
    /// requested offset when nothing came back.
    pub next_offset: i64,
    /// Records at or above this offset are not committed yet.
    pub high_watermark: i64,
    pub log_start_offset: i64,
    /// Size of the record batches received.
    pub bytes: usize,
}

/// Which offset [`Client::list_offsets`] resolves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetQuery {
    /// First offset still stored.
    Earliest,
    /// Offset the next record will get (high watermark).
    Latest,
    /// First offset whose timestamp is at or after these milliseconds.
    Timestamp(i64),
}

/// A connection to one broker's client API. Cloning is cheap and clones
/// share the HTTP/2 connection, so concurrent requests multiplex on it.
#[derive(Clone)]
pub struct Client {
    inner: ClientClient<Channel>,
    /// As the user gave it, for error messages.
    addr: String,
    /// Limit on one request, so a stuck broker cannot hang a caller.
    request_timeout: Duration,
    /// In a cluster: connections to partition leaders learned from
    /// Metadata, by (topic, partition). Partitions without an entry go to
    /// the broker this client was connected with.
    routes: Arc<parking_lot::Mutex<HashMap<(String, i32), Route>>>,
}

/// Where requests for one partition go.
#[derive(Clone)]
struct Route {
    addr: String,
    client: ClientClient<Channel>,
}

/// How often a partition request follows a leader change before giving up.
const ROUTE_ATTEMPTS: usize = 40;
/// Pause between those attempts (leader elections take about a second).
const ROUTE_BACKOFF: Duration = Duration::from_millis(100);

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client").field("addr", &self.addr).finish()
    }
}

fn rpc_error(addr: &str, op: &'static str, status: tonic::Status) -> ClientError {
    let code = status.code();
    let transport = code == tonic::Code::Unavailable
        && !status.message().contains("replicas")
        && !status.message().contains("leadership");
    if transport {
        // The connection broke or could not be re-established.
        return ClientError::Connect {
            addr: addr.to_owned(),
            reason: status.message().to_owned(),
        };
    }
    ClientError::Rpc {
        op,
        addr: addr.to_owned(),
        code,
        message: status.message().to_owned(),
    }
}

/// Turns `host:port` into `http://host:port`; URLs are kept.
fn endpoint_uri(addr: &str) -> Result<String, ClientError> {
    let bad = |reason: &str| ClientError::BadAddress {
        addr: addr.to_owned(),
        reason: reason.to_owned(),
    };
    let trimmed = addr.trim();
    if trimmed.is_empty() {
        return Err(bad("empty address"));
    }
    if trimmed.starts_with("http://") || trimmed.starts_with("https://") {
        return Ok(trimmed.to_owned());
    }
    if trimmed.contains("://") {
        return Err(bad("only http:// and https:// URLs are supported"));
    }
    let Some((host, port)) = trimmed.rsplit_once(':') else {
        return Err(bad("expected host:port, e.g. 127.0.0.1:9093"));
    };
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(bad(
            "expected host:port with a port number, e.g. 127.0.0.1:9093",
        ));
    }
    Ok(format!("http://{trimmed}"))
}

/// The error and its causes on one line (tonic's transport error alone says
/// only "transport error").
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !out.contains(&s_text) {
            out.push_str(": ");
            out.push_str(&s_text);
        }
        source = s.source();
    }
    out
}

impl Client {
    /// Connects to the broker at `addr` (`host:port` or `http://host:port`),
    /// failing after [`CONNECT_TIMEOUT`].
    pub async fn connect(addr: &str) -> Result<Self, ClientError> {
        Ok(Self {
            inner: Self::open(addr).await?,
            addr: addr.to_owned(),
            request_timeout: REQUEST_TIMEOUT,
            routes: Arc::default(),
        })
    }

    async fn open(addr: &str) -> Result<ClientClient<Channel>, ClientError> {
        let uri = endpoint_uri(addr)?;
        let endpoint = Endpoint::from_shared(uri).map_err(|e| ClientError::BadAddress {
            addr: addr.to_owned(),
            reason: error_chain(&e),
        })?;
        let channel = endpoint
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .connect()
            .await
            .map_err(|e| ClientError::Connect {
                addr: addr.to_owned(),
                reason: error_chain(&e),
            })?;
        Ok(ClientClient::new(channel).max_decoding_message_size(MAX_RESPONSE_BYTES))
    }

    fn route(&self, topic: &str, partition: i32) -> Route {
        self.routes
            .lock()
            .get(&(topic.to_owned(), partition))
            .cloned()
            .unwrap_or_else(|| Route {
                addr: self.addr.clone(),
                client: self.inner.clone(),
            })
    }

    /// Looks up the partition's leader and routes its requests there.
    async fn refresh_route(&self, topic: &str, partition: i32) {
        let key = (topic.to_owned(), partition);
        let Ok(meta) = self.metadata(&[topic]).await else {
            self.routes.lock().remove(&key);
            return;
        };
        let leader = meta
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .find(|p| p.partition == partition)
            .map(|p| p.leader);
        let addr = leader
            .and_then(|id| meta.brokers.iter().find(|b| b.id == id))
            .map(|b| b.address.clone());
        match addr {
            Some(addr) if addr != self.addr => {
                if let Ok(client) = Self::open(&addr).await {
                    self.routes.lock().insert(key, Route { addr, client });
                }
            }
            _ => {
                self.routes.lock().remove(&key);
            }
        }
    }

    /// Runs a partition request at the partition's leader, following
    /// leader changes: on "not the leader" (nothing was done) the route is
    /// refreshed and the request repeated; with `retry_unreachable` also
    /// when the leader cannot be reached (only for reads: a produce whose
    /// connection broke may have been appended).
    async fn at_leader<T, Fut>(
        &self,
        op: &'static str,
        topic: &str,
        partition: i32,
        extra: Duration,
        retry_unreachable: bool,
        send: impl Fn(ClientClient<Channel>) -> Fut,
    ) -> Result<T, ClientError>
    where
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let route = self.route(topic, partition);
            let result = self
                .call_at(op, &route.addr, extra, send(route.client))
                .await;
            let not_leader = matches!(&result, Err(ClientError::Rpc { code: tonic::Code::FailedPrecondition, message, .. }) if message.contains("not the leader"));
            let unreachable = matches!(
                &result,
                Err(ClientError::Connect { .. } | ClientError::Timeout { .. })
            );
            let follow = not_leader || (unreachable && retry_unreachable);
            if !follow || attempt >= ROUTE_ATTEMPTS {
                if unreachable {
                    self.routes.lock().remove(&(topic.to_owned(), partition));
                }
                return result;
            }
            tokio::time::sleep(ROUTE_BACKOFF).await;
            self.refresh_route(topic, partition).await;
        }
    }

    /// Sets the limit on one request (default [`REQUEST_TIMEOUT`]).
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Runs one RPC with the request timeout (plus `extra`), mapping
    /// statuses to [`ClientError`].
    async fn call<T>(
        &self,
        op: &'static str,
        extra: Duration,
        fut: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, ClientError> {
        self.call_at(op, &self.addr, extra, fut).await
    }

    async fn call_at<T>(
        &self,
        op: &'static str,
        addr: &str,
        extra: Duration,
        fut: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, ClientError> {
        let after = self.request_timeout + extra;
        match tokio::time::timeout(after, fut).await {
            Ok(Ok(reply)) => Ok(reply.into_inner()),
            Ok(Err(status)) => Err(rpc_error(addr, op, status)),
            Err(_) => Err(ClientError::Timeout {
                op,
                addr: addr.to_owned(),
                after,
            }),
        }
    }

    /// The address this client was connected with.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Encodes `records` as one batch (timestamps = now) and appends it to
    /// `topic`/`partition`.
    pub async fn produce<K: AsRef<[u8]>, V: AsRef<[u8]>>(
        &self,
        topic: &str,
        partition: i32,
        records: &[(Option<K>, V)],
        acks: Acks,
    ) -> Result<ProduceAck, ClientError> {
        let batch = encode_batch(records, now_ms())?;
        self.produce_batches(topic, partition, batch, acks).await
    }

    /// Appends already encoded, concatenated RecordBatch v2 bytes.
    pub async fn produce_batches(
        &self,
        topic: &str,
        partition: i32,
        record_batches: Bytes,
        acks: Acks,
    ) -> Result<ProduceAck, ClientError> {
        let request = pb::ProduceRequest {
            topic: topic.to_owned(),
            partition,
            acks: acks.to_proto() as i32,
            timeout_ms: 0,
            record_batches,
        };
        let reply = self
            .at_leader(
                "produce",
                topic,
                partition,
                Duration::ZERO,
                false,
                |mut c| {
                    let request = request.clone();
                    async move { c.produce(request).await }
                },
            )
            .await?;
        Ok(ProduceAck {
            base_offset: reply.base_offset,
            log_end_offset: reply.log_end_offset,
            log_start_offset: reply.log_start_offset,
        })
    }

    /// Fetches whole batches from `offset` and decodes them, dropping
    /// records before `offset` and control records. Waits up to `max_wait`
    /// for at least `min_bytes` (long poll).
    pub async fn fetch(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_bytes: u32,
        max_wait: Duration,
        min_bytes: u32,
    ) -> Result<FetchResult, ClientError> {
        let raw = self
            .fetch_raw(topic, partition, offset, max_bytes, max_wait, min_bytes)
            .await?;
        let bytes = raw.record_batches.len();
        let decoded = decode_batches(&raw.record_batches)?;
        let next_offset = decoded.next_offset.unwrap_or(offset).max(offset);
        let records = decoded
            .records
            .into_iter()
            .filter(|r| r.offset >= offset)
            .collect();
        Ok(FetchResult {
            records,
            next_offset,
            high_watermark: raw.high_watermark,
            log_start_offset: raw.log_start_offset,
            bytes,
        })
    }

    /// Fetch returning the broker's reply as it is (batches undecoded).
    pub async fn fetch_raw(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_bytes: u32,
        max_wait: Duration,
        min_bytes: u32,
    ) -> Result<pb::FetchResponse, ClientError> {
        let request = pb::FetchRequest {
            topic: topic.to_owned(),
            partition,
            offset,
            max_bytes,
            max_wait_ms: u32::try_from(max_wait.as_millis()).unwrap_or(u32::MAX),
            min_bytes,
        };
        self.at_leader("fetch", topic, partition, max_wait, true, |mut c| {
            let request = request.clone();
            async move { c.fetch(request).await }
        })
        .await
    }

    /// Resolves an offset of `topic`/`partition`. Returns `(offset,
    /// timestamp_ms)`; a timestamp query that matches no record returns
    /// offset -1.
    pub async fn list_offsets(
        &self,
        topic: &str,
        partition: i32,
        query: OffsetQuery,
    ) -> Result<(i64, i64), ClientError> {
        use pb::offset_spec::Spec;
        let spec = match query {
            OffsetQuery::Earliest => Spec::Earliest(true),
            OffsetQuery::Latest => Spec::Latest(true),
            OffsetQuery::Timestamp(ms) => Spec::TimestampMs(ms),
        };
        let request = pb::ListOffsetsRequest {
            topic: topic.to_owned(),
            partition,
            spec: Some(pb::OffsetSpec { spec: Some(spec) }),
        };
        let reply = self
            .at_leader(
                "list offsets",
                topic,
                partition,
                Duration::ZERO,
                true,
                |mut c| {
                    let request = request.clone();
                    async move { c.list_offsets(request).await }
                },
            )
            .await?;
        Ok((reply.offset, reply.timestamp_ms))
    }

    /// Describes the brokers and the given topics (all topics when empty).
    pub async fn metadata(&self, topics: &[&str]) -> Result<MetadataResponse, ClientError> {
        let request = pb::MetadataRequest {
            topics: topics.iter().map(|t| (*t).to_owned()).collect(),
        };
        let mut inner = self.inner.clone();
        self.call("metadata", Duration::ZERO, inner.metadata(request))
            .await
    }

    /// Describes one topic; [`ClientError::UnknownTopic`] when it does not exist.
    pub async fn topic(&self, name: &str) -> Result<TopicInfo, ClientError> {
        let unknown = || ClientError::UnknownTopic {
            addr: self.addr.clone(),
            topic: name.to_owned(),
        };
        let reply = match self.metadata(&[name]).await {
            Ok(reply) => reply,
            Err(e) if e.code() == Some(tonic::Code::NotFound) => return Err(unknown()),
            Err(e) => return Err(e),
        };
        reply
            .topics
            .into_iter()
            .find(|t| t.name == name)
            .ok_or_else(unknown)
    }

    /// Creates a topic with Kafka-style config overrides (e.g. `flush=fsync`).
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i32,
        config: HashMap<String, String>,
    ) -> Result<TopicInfo, ClientError> {
        let request = pb::CreateTopicRequest {
            name: name.to_owned(),
            partitions,
            replication_factor,
            config,
        };
        let mut inner = self.inner.clone();
        let reply = self
            .call("create topic", Duration::ZERO, inner.create_topic(request))
            .await?;
        Ok(reply.topic.unwrap_or_else(|| TopicInfo {
            name: name.to_owned(),
            ..Default::default()
        }))
    }

    /// Deletes a topic and its data.
    pub async fn delete_topic(&self, name: &str) -> Result<(), ClientError> {
        let request = pb::DeleteTopicRequest {
            name: name.to_owned(),
        };
        let mut inner = self.inner.clone();
        match self
            .call("delete topic", Duration::ZERO, inner.delete_topic(request))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some(tonic::Code::NotFound) => Err(ClientError::UnknownTopic {
                addr: self.addr.clone(),
                topic: name.to_owned(),
            }),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_with_clear_errors() {
        assert_eq!(
            endpoint_uri("127.0.0.1:9093").unwrap(),
            "http://127.0.0.1:9093"
        );
        assert_eq!(endpoint_uri("http://h:1").unwrap(), "http://h:1");
        assert!(
            endpoint_uri("localhost")
                .unwrap_err()
                .to_string()
                .contains("host:port")
        );
        assert!(endpoint_uri("h:notaport").is_err());
        assert!(endpoint_uri("grpc://h:1").is_err());
        assert!(endpoint_uri("").is_err());
    }
}
