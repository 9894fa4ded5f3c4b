//! Helpers shared by the broker integration tests: start a broker
//! in-process on port 0, talk to it with the generated gRPC client, build
//! and decode real Kafka record batches, and speak bare HTTP/1.1 to the
//! probe endpoints.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::records::RecordBatchDecoder;
use rill_broker::config::BrokerConfig;
use rill_broker::{Broker, BrokerHandle};
use rill_client::batch::{self, Batching, EncodeOptions, NewRecord};
use rill_proto::client::client_client::ClientClient;
use rill_proto::client::{
    Acks, CreateTopicRequest, FetchRequest, FetchResponse, ProduceRequest, ProduceResponse,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::transport::Channel;

/// Longest any single request of a test may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest gRPC message the test client accepts.
pub const CLIENT_MAX_MESSAGE: usize = 128 << 20;

pub type Client = ClientClient<Channel>;

/// Starts a broker on loopback port 0 with `data_dir`, letting `tweak`
/// adjust the config.
pub async fn start(data_dir: &Path, tweak: impl FnOnce(&mut BrokerConfig)) -> BrokerHandle {
    let mut config = BrokerConfig::ephemeral(data_dir);
    tweak(&mut config);
    Broker::start(config).await.expect("broker starts")
}

/// A client of the broker's gRPC API.
pub async fn connect(handle: &BrokerHandle) -> Client {
    let channel = Channel::from_shared(format!("http://{}", handle.client_addr))
        .expect("valid uri")
        .timeout(REQUEST_TIMEOUT)
        .connect()
        .await
        .expect("connects");
    ClientClient::new(channel)
        .max_decoding_message_size(CLIENT_MAX_MESSAGE)
        .max_encoding_message_size(CLIENT_MAX_MESSAGE)
}

pub async fn create_topic(
    client: &mut Client,
    name: &str,
    partitions: i32,
    config: &[(&str, &str)],
) {
    client
        .create_topic(CreateTopicRequest {
            name: name.into(),
            partitions,
            replication_factor: 1,
            config: config
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        })
        .await
        .expect("topic created");
}

/// A record as the tests send and compare it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TestRecord {
    pub key: Option<Bytes>,
    pub value: Bytes,
    pub timestamp: i64,
}

/// Encodes records as RecordBatch v2 at offsets from 0, uncompressed, each
/// record in a batch of its own.
pub fn encode_batch(records: &[TestRecord]) -> Bytes {
    let records: Vec<NewRecord> = records
        .iter()
        .map(|r| NewRecord {
            key: r.key.clone(),
            value: Some(r.value.clone()),
            timestamp: r.timestamp,
        })
        .collect();
    let options = EncodeOptions {
        batching: Batching::PerRecord,
        ..EncodeOptions::default()
    };
    batch::encode(&records, &options).expect("encode")
}

/// A batch of `n` small records with values `prefix-<i>`.
pub fn simple_batch(prefix: &str, n: usize) -> Bytes {
    let records: Vec<TestRecord> = (0..n)
        .map(|i| TestRecord {
            key: None,
            value: Bytes::from(format!("{prefix}-{i}")),
            timestamp: 1_700_000_000_000,
        })
        .collect();
    encode_batch(&records)
}

/// Decodes fetched batches into (offset, record).
pub fn decode_all(data: &Bytes) -> Vec<(i64, TestRecord)> {
    let mut buf = data.clone();
    let sets = RecordBatchDecoder::decode_all(&mut buf).expect("fetched bytes decode");
    sets.into_iter()
        .flat_map(|set| set.records)
        .map(|r| {
            (
                r.offset,
                TestRecord {
                    key: r.key,
                    value: r.value.unwrap_or_default(),
                    timestamp: r.timestamp,
                },
            )
        })
        .collect()
}

pub async fn produce(
    client: &mut Client,
    topic: &str,
    partition: i32,
    batches: Bytes,
) -> Result<ProduceResponse, tonic::Status> {
    client
        .produce(ProduceRequest {
            topic: topic.into(),
            partition,
            acks: Acks::Leader as i32,
            timeout_ms: 0,
            record_batches: batches,
        })
        .await
        .map(tonic::Response::into_inner)
}

pub async fn fetch(
    client: &mut Client,
    topic: &str,
    partition: i32,
    offset: i64,
    max_wait_ms: u32,
) -> Result<FetchResponse, tonic::Status> {
    client
        .fetch(FetchRequest {
            topic: topic.into(),
            partition,
            offset,
            max_bytes: 1 << 20,
            max_wait_ms,
            min_bytes: 1,
        })
        .await
        .map(tonic::Response::into_inner)
}

/// Every record of a partition from `from` up to its high watermark.
pub async fn fetch_all(
    client: &mut Client,
    topic: &str,
    partition: i32,
    from: i64,
) -> Vec<(i64, TestRecord)> {
    let mut out = Vec::new();
    let mut offset = from;
    loop {
        let r = fetch(client, topic, partition, offset, 0)
            .await
            .expect("fetch succeeds");
        let records = decode_all(&r.record_batches);
        // A fetch starts at the batch holding `offset`: skip records before it.
        out.extend(records.into_iter().filter(|(o, _)| *o >= offset));
        if let Some((last, _)) = out.last() {
            offset = last + 1;
        }
        if offset >= r.high_watermark {
            return out;
        }
        assert!(
            !r.record_batches.is_empty(),
            "fetch at {offset} below HW {} returned nothing",
            r.high_watermark
        );
    }
}

/// Proves the broker still serves: produce one batch to `topic`
/// partition 0 and read it back.
pub async fn assert_still_serving(client: &mut Client, topic: &str) {
    let ack = produce(client, topic, 0, simple_batch("alive", 3))
        .await
        .expect("broker still accepts a valid produce");
    let r = fetch(client, topic, 0, ack.base_offset, 0)
        .await
        .expect("broker still serves a fetch");
    let records = decode_all(&r.record_batches);
    let values: Vec<&[u8]> = records
        .iter()
        .filter(|(o, _)| *o >= ack.base_offset)
        .map(|(_, r)| r.value.as_ref())
        .collect();
    assert_eq!(values, vec![&b"alive-0"[..], b"alive-1", b"alive-2"]);
}

/// GET over plain HTTP/1.1; returns (status code, body).
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect http");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut raw = Vec::new();
    tokio::time::timeout(REQUEST_TIMEOUT, stream.read_to_end(&mut raw))
        .await
        .expect("http response in time")
        .expect("read http");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The value of one sample of the Prometheus text exposition, if present.
pub fn metric_value(exposition: &str, name_and_labels: &str) -> Option<f64> {
    exposition
        .lines()
        .find(|l| l.starts_with(name_and_labels) && l[name_and_labels.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Deterministic pseudo-random bytes (xorshift), for garbage payloads.
pub fn garbage(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect()
}

/// Waits until `cond` holds, polling; panics with `what` after `timeout`.
pub async fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Config map helper.
pub fn config(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
