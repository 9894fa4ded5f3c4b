//! A small typed Rust client for Rill's gRPC client API
//! (`proto/proto/client.proto`), used by the `rill` CLI, the crash test and
//! Rust applications.
//!
//! It owns three things:
//! - [`Client`]: a thin wrapper over the generated tonic client that turns
//!   broker replies into typed results and gRPC statuses into [`ClientError`]s
//!   a user can act on (which broker address, which topic, what to do);
//! - the record codec glue: [`encode_batch`] builds one Kafka RecordBatch v2
//!   with `kafka-protocol`'s encoder, [`decode_batches`] checks the CRC of
//!   every fetched batch and decodes its records (never hand-written);
//! - partition choice like Kafka's default partitioner: [`murmur2`] of the
//!   key, made positive, modulo the partition count ([`partition_for_key`]);
//!   records without a key stick to one partition per batch and move on
//!   round-robin ([`StickyPartitioner`]).
//!
//! Data moves like this: `produce` encodes `(key, value)` pairs into one batch
//! and sends it; the broker assigns offsets. `fetch` returns whole stored
//! batches starting at the batch holding the requested offset; the records
//! before that offset and control records are dropped here.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use rill_proto::client as pb;
use rill_proto::client::client_client::ClientClient;
use thiserror::Error;
use tonic::transport::{Channel, Endpoint};

use crate::log::batch;

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

/// One record read back from a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedRecord {
    pub offset: i64,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
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

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Encodes `records` as one uncompressed RecordBatch v2 at base offset 0
/// (the broker assigns offsets), every record stamped `timestamp_ms`.
pub fn encode_batch<K: AsRef<[u8]>, V: AsRef<[u8]>>(
    records: &[(Option<K>, V)],
    timestamp_ms: i64,
) -> Result<Bytes, ClientError> {
    if records.is_empty() {
        return Err(ClientError::Encode(
            "a batch needs at least one record".into(),
        ));
    }
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (key, value))| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder keeps records in one batch only while
            // offset - sequence is constant; this yields base sequence -1
            // (no idempotent producer).
            sequence: i as i32 - 1,
            timestamp: timestamp_ms,
            key: key.as_ref().map(|k| Bytes::copy_from_slice(k.as_ref())),
            value: Some(Bytes::copy_from_slice(value.as_ref())),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .map_err(|e| ClientError::Encode(e.to_string()))?;
    Ok(buf.freeze())
}

/// Records decoded from concatenated batches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecodedBatches {
    /// Every non-control record, in stored order.
    pub records: Vec<FetchedRecord>,
    /// Offset after the last batch (covers records removed by compaction);
    /// `None` when there were no batches.
    pub next_offset: Option<i64>,
    /// Number of batches.
    pub batches: usize,
}

/// Validates (bounds and CRC-32C) and decodes concatenated RecordBatch v2
/// bytes as a fetch returns them. Any bad batch is an error: a client never
/// sees bytes that fail their checks.
pub fn decode_batches(data: &Bytes) -> Result<DecodedBatches, ClientError> {
    let mut out = DecodedBatches::default();
    let mut pos = 0;
    while pos < data.len() {
        let corrupt = |reason: String| ClientError::Corrupt {
            position: pos,
            reason,
        };
        // Bounds, magic and CRC-32C first, so the decoder only sees sane bytes.
        let header = batch::validate(&data[pos..], crate::log::MAX_STORED_BATCH)
            .map_err(|e| corrupt(e.to_string()))?;
        let len = header.total_len();
        let mut slice = data.slice(pos..pos + len);
        let set = RecordBatchDecoder::decode(&mut slice).map_err(|e| corrupt(e.to_string()))?;
        if set.records.len() != header.records_count as usize {
            return Err(corrupt(format!(
                "header says {} records, decoded {}",
                header.records_count,
                set.records.len()
            )));
        }
        out.records.extend(
            set.records
                .into_iter()
                .filter(|r| !r.control)
                .map(|r| FetchedRecord {
                    offset: r.offset,
                    timestamp: r.timestamp,
                    key: r.key,
                    value: r.value,
                }),
        );
        out.next_offset = Some(header.next_offset());
        out.batches += 1;
        pos += len;
    }
    Ok(out)
}

/// Kafka's murmur2 hash (`org.apache.kafka.common.utils.Utils.murmur2`),
/// seed 0x9747b28c, as the Java client's default partitioner uses it.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h: u32 = SEED ^ (len as u32);
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Kafka's `Utils.toPositive`: clears the sign bit.
pub fn to_positive(n: i32) -> i32 {
    n & 0x7fff_ffff
}

/// The partition Kafka's default partitioner picks for a keyed record.
///
/// # Panics
/// When `partitions` is not positive.
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    assert!(partitions > 0, "a topic has at least one partition");
    to_positive(murmur2(key)) % partitions
}

/// Partition choice for records without a key: stay on one partition until
/// the current batch is complete ([`StickyPartitioner::batch_done`]), then
/// move to the next one round-robin, so keyless records fill whole batches.
#[derive(Debug, Clone)]
pub struct StickyPartitioner {
    partitions: i32,
    current: i32,
}

impl StickyPartitioner {
    /// Starts on `first % partitions`.
    ///
    /// # Panics
    /// When `partitions` is not positive.
    pub fn new(partitions: i32, first: i32) -> Self {
        assert!(partitions > 0, "a topic has at least one partition");
        Self {
            partitions,
            current: first.rem_euclid(partitions),
        }
    }
    /// The partition for the next keyless record.
    pub fn current(&self) -> i32 {
        self.current
    }
    /// The sticky partition's batch was closed: move on.
    pub fn batch_done(&mut self) {
        self.current = (self.current + 1) % self.partitions;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch::BatchHeader;

    #[test]
    fn murmur2_matches_kafka_reference_values() {
        // From Kafka's UtilsTest.testMurmur2 and librdkafka's rdmurmur2.c.
        let cases: &[(&str, i32)] = &[
            ("21", -973_932_308),
            ("foobar", -790_332_482),
            ("a-little-bit-long-string", -985_981_536),
            ("a-little-bit-longer-string", -1_486_304_829),
            (
                "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            ("abc", 479_470_107),
            ("1", -1_993_445_489),
            ("12", 126_087_238),
            ("123", -267_702_483),
            ("1234", -1_614_185_708),
            ("12345", -1_188_365_604),
            ("kafka", -798_503_068),
        ];
        for (input, expected) in cases {
            assert_eq!(murmur2(input.as_bytes()), *expected, "murmur2({input:?})");
        }
    }

    #[test]
    fn given_a_key_partition_is_positive_hash_mod_count() {
        // to_positive(-973932308) = 1173551340; 1173551340 % 7 = 1173551340 - 7*167650191 = 3
        assert_eq!(partition_for_key(b"21", 7), 3);
        for key in ["a", "bb", "ccc", "dddd", "eeeee"] {
            let p = partition_for_key(key.as_bytes(), 3);
            assert!((0..3).contains(&p));
            assert_eq!(p, partition_for_key(key.as_bytes(), 3), "stable");
        }
    }

    #[test]
    fn sticky_partitioner_moves_round_robin_on_batch_done() {
        let mut s = StickyPartitioner::new(3, 5);
        assert_eq!(s.current(), 2);
        s.batch_done();
        assert_eq!(s.current(), 0);
        s.batch_done();
        assert_eq!(s.current(), 1);
    }

    #[test]
    fn encoded_batch_decodes_to_the_same_records() {
        let records = vec![
            (Some(b"k1".to_vec()), b"v1".to_vec()),
            (None, b"".to_vec()),
            (Some(b"".to_vec()), vec![0u8, 255, 10, 13]),
        ];
        let batch = encode_batch(&records, 1_700_000_000_000).unwrap();
        let header = BatchHeader::parse(&batch).unwrap();
        assert_eq!(header.records_count, 3);
        let decoded = decode_batches(&batch).unwrap();
        assert_eq!(decoded.batches, 1);
        assert_eq!(decoded.next_offset, Some(3));
        let got: Vec<_> = decoded
            .records
            .iter()
            .map(|r| (r.offset, r.key.clone(), r.value.clone().unwrap()))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    0,
                    Some(Bytes::from_static(b"k1")),
                    Bytes::from_static(b"v1")
                ),
                (1, None, Bytes::new()),
                (2, Some(Bytes::new()), Bytes::from_static(&[0, 255, 10, 13])),
            ]
        );
    }

    #[test]
    fn given_a_flipped_byte_decode_reports_corruption() {
        let batch = encode_batch(&[(None::<&[u8]>, b"hello world")], 1).unwrap();
        let mut bad = batch.to_vec();
        let last = bad.len() - 1;
        bad[last] ^= 0x40;
        let err = decode_batches(&Bytes::from(bad)).unwrap_err();
        assert!(matches!(err, ClientError::Corrupt { .. }), "{err}");
        let truncated = batch.slice(..batch.len() - 3);
        assert!(decode_batches(&truncated).is_err());
    }

    #[test]
    fn empty_batch_is_refused() {
        let none: &[(Option<&[u8]>, &[u8])] = &[];
        assert!(encode_batch(none, 0).is_err());
    }

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
