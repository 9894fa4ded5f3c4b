//! Contract: bad input never takes the broker down or corrupts a log.
//! Truncated, oversized, garbage, CRC-corrupted and wrong-magic record
//! batches, bad topic names and configs, unknown topics and partitions,
//! out-of-range offsets, undecodable gRPC messages, oversized gRPC
//! messages and raw garbage on the TCP ports each get a clear error (or a
//! closed connection, for garbage that is not HTTP at all), nothing is
//! appended, and the broker keeps serving another client: a produce and a
//! fetch succeed after every case.

mod common;

use std::time::Duration;

use bytes::{Buf, BufMut, Bytes};
use common::*;
use rill_proto::client::{
    CreateTopicRequest, FetchRequest, ListOffsetsRequest, MetadataRequest, ProduceRequest,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

/// How long the broker may take to close a connection that sent garbage.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);
/// Request limit configured for these tests (small, to test the limit).
const MAX_REQUEST: usize = 1 << 20;

const TOPIC: &str = "victim";

async fn broker_with_topic() -> (tempfile::TempDir, rill_broker::BrokerHandle, Client) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let broker = start(tmp.path(), |c| c.max_request_bytes = MAX_REQUEST).await;
    let mut client = connect(&broker).await;
    create_topic(&mut client, TOPIC, 1, &[("max.message.bytes", "4096")]).await;
    (tmp, broker, client)
}

fn expect_status(
    result: Result<impl std::fmt::Debug, tonic::Status>,
    code: Code,
    text: &str,
    case: &str,
) {
    let status = result.expect_err(case);
    assert_eq!(status.code(), code, "{case}: {status:?}");
    assert!(
        status.message().contains(text),
        "{case}: message {:?} should mention {text:?}",
        status.message()
    );
}

async fn high_watermark(client: &mut Client) -> i64 {
    fetch(client, TOPIC, 0, 0, 0)
        .await
        .expect("fetch")
        .high_watermark
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_malformed_record_batches_when_produced_should_be_refused_clearly_and_nothing_appended()
 {
    let (_tmp, broker, mut client) = broker_with_topic().await;
    let valid = simple_batch("ok", 5);

    let truncated = valid.slice(..valid.len() / 2);
    let mut crc_corrupt = valid.to_vec();
    *crc_corrupt.last_mut().expect("non-empty") ^= 0x55;
    let mut wrong_magic = valid.to_vec();
    wrong_magic[16] = 1;
    let mut lying_length = valid.to_vec();
    lying_length[8..12].copy_from_slice(&i32::MAX.to_be_bytes());
    let mut negative_length = valid.to_vec();
    negative_length[8..12].copy_from_slice(&(-5i32).to_be_bytes());
    let oversized = encode_batch(&[TestRecord {
        key: None,
        value: Bytes::from(vec![b'x'; 8192]),
        timestamp: 0,
    }]);
    let mut valid_then_garbage = valid.to_vec();
    valid_then_garbage.extend_from_slice(&garbage(100, 7));

    let cases: Vec<(&str, Bytes, &str)> = vec![
        ("truncated batch", truncated, "truncated"),
        (
            "CRC-corrupted batch",
            Bytes::from(crc_corrupt),
            "CRC-32C mismatch",
        ),
        ("wrong magic", Bytes::from(wrong_magic), "magic 1"),
        (
            "length field past the end",
            Bytes::from(lying_length),
            "record batch",
        ),
        (
            "negative length field",
            Bytes::from(negative_length),
            "record batch",
        ),
        ("batch above max.message.bytes", oversized, "allowed range"),
        (
            "random garbage",
            Bytes::from(garbage(500, 42)),
            "record batch",
        ),
        ("empty request", Bytes::new(), "empty"),
        (
            "valid batch followed by garbage",
            Bytes::from(valid_then_garbage),
            "record batch",
        ),
    ];
    for (case, payload, text) in cases {
        let before = high_watermark(&mut client).await;
        let result = produce(&mut client, TOPIC, 0, payload).await;
        expect_status(result, Code::InvalidArgument, text, case);
        assert_eq!(
            high_watermark(&mut client).await,
            before,
            "{case}: nothing may be appended"
        );
        assert_still_serving(&mut client, TOPIC).await;
    }
    broker.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_bad_topic_requests_when_sent_should_get_clear_errors_and_keep_serving() {
    let (_tmp, broker, mut client) = broker_with_topic().await;
    let create =
        |name: &str, partitions: i32, rf: i32, config: &[(&str, &str)]| CreateTopicRequest {
            name: name.into(),
            partitions,
            replication_factor: rf,
            config: config
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
    let cases = [
        (
            "unknown config key",
            create("t1", 1, 1, &[("retention.msec", "5")]),
            Code::InvalidArgument,
            "retention.msec",
        ),
        (
            "bad config value",
            create("t1", 1, 1, &[("segment.bytes", "lots")]),
            Code::InvalidArgument,
            "segment.bytes",
        ),
        (
            "bad cleanup policy",
            create("t1", 1, 1, &[("cleanup.policy", "shred")]),
            Code::InvalidArgument,
            "cleanup.policy",
        ),
        (
            "invalid name",
            create("bad/name", 1, 1, &[]),
            Code::InvalidArgument,
            "'/'",
        ),
        (
            "dot name",
            create("..", 1, 1, &[]),
            Code::InvalidArgument,
            "not allowed",
        ),
        (
            "zero partitions",
            create("t1", 0, 1, &[]),
            Code::InvalidArgument,
            "between 1 and",
        ),
        (
            "replication factor 3",
            create("t1", 1, 3, &[]),
            Code::InvalidArgument,
            "must be 1",
        ),
        (
            "existing topic",
            create(TOPIC, 1, 1, &[]),
            Code::AlreadyExists,
            "already exists",
        ),
    ];
    for (case, request, code, text) in cases {
        expect_status(client.create_topic(request).await, code, text, case);
        assert_still_serving(&mut client, TOPIC).await;
    }
    let meta = client
        .metadata(MetadataRequest { topics: vec![] })
        .await
        .expect("metadata")
        .into_inner();
    assert_eq!(meta.topics.len(), 1, "no refused topic was created");

    let result = produce(&mut client, "nope", 0, simple_batch("x", 1)).await;
    expect_status(
        result,
        Code::NotFound,
        "unknown topic \"nope\"",
        "produce to unknown topic",
    );
    let result = produce(&mut client, TOPIC, 3, simple_batch("x", 1)).await;
    expect_status(
        result,
        Code::NotFound,
        "partitions 0..1",
        "produce to unknown partition",
    );
    let result = fetch(&mut client, "nope", 0, 0, 0).await;
    expect_status(
        result,
        Code::NotFound,
        "unknown topic",
        "fetch from unknown topic",
    );
    let result = client
        .metadata(MetadataRequest {
            topics: vec!["nope".into()],
        })
        .await;
    expect_status(result, Code::NotFound, "nope", "metadata of unknown topic");
    let result = client
        .delete_topic(rill_proto::client::DeleteTopicRequest {
            name: "nope".into(),
        })
        .await;
    expect_status(result, Code::NotFound, "nope", "delete unknown topic");
    let result = client
        .list_offsets(ListOffsetsRequest {
            topic: TOPIC.into(),
            partition: 0,
            spec: None,
        })
        .await;
    expect_status(
        result,
        Code::InvalidArgument,
        "spec is missing",
        "list offsets without spec",
    );
    let result = client
        .produce(ProduceRequest {
            topic: TOPIC.into(),
            partition: 0,
            acks: 42,
            timeout_ms: 0,
            record_batches: simple_batch("x", 1),
        })
        .await;
    expect_status(result, Code::InvalidArgument, "acks", "unknown acks value");
    assert_still_serving(&mut client, TOPIC).await;
    broker.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_offsets_outside_the_log_when_fetched_should_be_out_of_range_with_the_valid_range() {
    let (_tmp, broker, mut client) = broker_with_topic().await;
    produce(&mut client, TOPIC, 0, simple_batch("x", 10))
        .await
        .expect("produce");
    for offset in [11, 1_000_000, -1, i64::MAX, i64::MIN] {
        let end = high_watermark(&mut client).await;
        let result = client
            .fetch(FetchRequest {
                topic: TOPIC.into(),
                partition: 0,
                offset,
                max_bytes: u32::MAX,
                max_wait_ms: u32::MAX,
                min_bytes: u32::MAX,
            })
            .await;
        let range = format!("the log holds 0..{end}");
        expect_status(
            result,
            Code::OutOfRange,
            &range,
            &format!("fetch at {offset}"),
        );
        assert_still_serving(&mut client, TOPIC).await;
    }
    broker.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_grpc_message_above_the_request_limit_when_sent_should_be_refused_and_keep_serving()
{
    let (_tmp, broker, mut client) = broker_with_topic().await;
    let huge = Bytes::from(vec![0u8; 2 * MAX_REQUEST]);
    let result = produce(&mut client, TOPIC, 0, huge).await;
    let status = result.expect_err("oversized request");
    assert!(status.message().contains("too large"), "{status:?}");
    assert_still_serving(&mut client, TOPIC).await;
    let mut other = connect(&broker).await;
    assert_still_serving(&mut other, TOPIC).await;
    broker.shutdown().await.expect("clean shutdown");
}

/// A codec that sends raw bytes as the gRPC message body, to deliver
/// payloads that are not valid protobuf.
#[derive(Debug, Clone, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }
    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, tonic::Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_undecodable_protobuf_when_sent_to_every_method_should_fail_cleanly_and_keep_serving()
{
    let (_tmp, broker, mut client) = broker_with_topic().await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", broker.client_addr))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let mut raw = tonic::client::Grpc::new(channel);
    let payloads = [
        Bytes::from_static(&[0xff; 32]),
        Bytes::from_static(&[0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]),
        Bytes::from(garbage(4096, 99)),
    ];
    for method in [
        "Produce",
        "Fetch",
        "ListOffsets",
        "Metadata",
        "CreateTopic",
        "DeleteTopic",
    ] {
        for payload in &payloads {
            raw.ready().await.expect("channel ready");
            let path = tonic::codegen::http::uri::PathAndQuery::try_from(format!(
                "/rill.client.v1.Client/{method}"
            ))
            .expect("path");
            let result = raw
                .unary(tonic::Request::new(payload.clone()), path, RawCodec)
                .await;
            let status = result.expect_err(method);
            assert_ne!(status.code(), Code::Unknown, "{method}: {status:?}");
            assert!(
                !status.message().is_empty(),
                "{method}: error without a message"
            );
        }
        assert_still_serving(&mut client, TOPIC).await;
    }
    broker.shutdown().await.expect("clean shutdown");
}

/// Writes `bytes` to `addr` and expects the server to close the connection.
async fn send_garbage_and_expect_close(addr: std::net::SocketAddr, bytes: &[u8]) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    // The server may close before reading everything: a failed write is fine.
    let _ = stream.write_all(bytes).await;
    let mut sink = Vec::new();
    let closed = tokio::time::timeout(CLOSE_TIMEOUT, stream.read_to_end(&mut sink)).await;
    assert!(
        closed.is_ok(),
        "server kept a garbage connection open for {CLOSE_TIMEOUT:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_raw_garbage_on_the_tcp_ports_when_sent_should_close_that_connection_and_keep_serving()
 {
    let (_tmp, broker, mut client) = broker_with_topic().await;
    let mut h2_garbage = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    h2_garbage.extend_from_slice(&garbage(1024, 3));
    let mut bad_frame = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    // A DATA frame claiming 16 MiB on stream 1 before any SETTINGS.
    bad_frame.extend_from_slice(&[0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01]);
    bad_frame.extend_from_slice(&garbage(64, 5));
    let payloads = [
        garbage(4096, 1),
        h2_garbage,
        bad_frame,
        b"GET / HTTP/1.1\r\n\r\n".to_vec(),
    ];
    for payload in &payloads {
        send_garbage_and_expect_close(broker.client_addr, payload).await;
        assert_still_serving(&mut client, TOPIC).await;
    }
    send_garbage_and_expect_close(broker.http_addr, &garbage(4096, 11)).await;
    assert_eq!(http_get(broker.http_addr, "/healthz").await.0, 200);
    assert_eq!(http_get(broker.http_addr, "/nope").await.0, 404);
    assert_still_serving(&mut client, TOPIC).await;
    broker.shutdown().await.expect("clean shutdown");
}
