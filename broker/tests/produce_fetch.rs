//! Contract: a broker started in-process on port 0 takes record batches
//! from concurrent producers and gives every acknowledged record back
//! byte-for-byte identical (key, value, timestamp), at the offset the
//! produce acknowledged, with dense ordered offsets per partition, in both
//! flush policies; long polls wake when data arrives and return empty after
//! `max_wait_ms` otherwise; topics and records survive a restart on the
//! same data directory; /metrics, /healthz and /readyz answer.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use rill_proto::client::{
    Acks, FetchRequest, ListOffsetsRequest, MetadataRequest, OffsetSpec, ProduceRequest,
    offset_spec,
};

const PRODUCERS: usize = 4;
const PARTITIONS: i32 = 4;
const RECORDS_PER_PRODUCER: usize = 25_000;
const RECORDS_PER_BATCH: usize = 250;
/// How long the "no data" long poll waits.
const SHORT_POLL: Duration = Duration::from_millis(300);
/// A long poll that must be cut short by arriving data.
const LONG_POLL: Duration = Duration::from_secs(20);
/// How long to wait for a fetch to start waiting.
const WAIT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where each acknowledged record must be found.
type Expected = HashMap<(i32, i64), TestRecord>;

/// Producer `p` sends its records round-robin over all partitions, one
/// batch per request, and remembers the offset each record was given.
async fn producer(mut client: Client, topic: String, p: usize) -> Expected {
    let mut expected = Expected::new();
    let batches = RECORDS_PER_PRODUCER / RECORDS_PER_BATCH;
    for b in 0..batches {
        let partition = ((p + b) % PARTITIONS as usize) as i32;
        let records: Vec<TestRecord> = (0..RECORDS_PER_BATCH)
            .map(|i| {
                let seq = b * RECORDS_PER_BATCH + i;
                TestRecord {
                    key: (seq % 3 != 0).then(|| Bytes::from(format!("key-{p}-{seq}"))),
                    value: Bytes::from(format!(
                        "producer {p} record {seq} {}",
                        "x".repeat(seq % 40)
                    )),
                    timestamp: 1_700_000_000_000 + seq as i64,
                }
            })
            .collect();
        let ack = produce(&mut client, &topic, partition, encode_batch(&records))
            .await
            .expect("produce acknowledged");
        for (i, r) in records.into_iter().enumerate() {
            expected.insert((partition, ack.base_offset + i as i64), r);
        }
    }
    expected
}

/// Reads every partition back and checks it against what was acknowledged.
async fn verify(client: &mut Client, topic: &str, expected: &Expected) {
    let mut seen = 0;
    for partition in 0..PARTITIONS {
        let records = fetch_all(client, topic, partition, 0).await;
        for (i, (offset, record)) in records.iter().enumerate() {
            assert_eq!(
                *offset, i as i64,
                "partition {partition}: offsets must be dense from 0"
            );
            let want = expected
                .get(&(partition, *offset))
                .unwrap_or_else(|| panic!("{topic}-{partition} offset {offset}: not acknowledged"));
            assert_eq!(record, want, "{topic}-{partition} offset {offset} differs");
        }
        seen += records.len();
    }
    assert_eq!(
        seen,
        expected.len(),
        "every acknowledged record is fetched back once"
    );
}

async fn write_and_verify(flush: &str) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let topic = format!("load-{flush}");
    let broker = start(tmp.path(), |_| {}).await;
    let mut client = connect(&broker).await;
    create_topic(&mut client, &topic, PARTITIONS, &[("flush", flush)]).await;

    let mut tasks = Vec::new();
    for p in 0..PRODUCERS {
        tasks.push(tokio::spawn(producer(
            connect(&broker).await,
            topic.clone(),
            p,
        )));
    }
    let mut expected = Expected::new();
    for t in tasks {
        expected.extend(t.await.expect("producer task"));
    }
    assert_eq!(expected.len(), PRODUCERS * RECORDS_PER_PRODUCER);
    verify(&mut client, &topic, &expected).await;

    let (status, metrics) = http_get(broker.http_addr, "/metrics").await;
    assert_eq!(status, 200);
    let appended = metric_value(
        &metrics,
        &format!("rill_records_appended_total{{topic=\"{topic}\"}}"),
    );
    assert_eq!(
        appended,
        Some((PRODUCERS * RECORDS_PER_PRODUCER) as f64),
        "{metrics}"
    );
    let produced_ok = metric_value(
        &metrics,
        "rill_requests_total{api=\"Produce\",outcome=\"ok\"}",
    );
    assert_eq!(
        produced_ok,
        Some((PRODUCERS * RECORDS_PER_PRODUCER / RECORDS_PER_BATCH) as f64)
    );
    if flush == "fsync" {
        let fsyncs =
            metric_value(&metrics, "rill_fsyncs_total{kind=\"group_commit\"}").unwrap_or(0.0);
        assert!(
            fsyncs > 0.0,
            "flush=fsync must fsync before acknowledging\n{metrics}"
        );
    }

    // Restart on the same directory: topics, config and records are back.
    drop(client);
    broker.shutdown().await.expect("clean shutdown");
    let broker = start(tmp.path(), |_| {}).await;
    let mut client = connect(&broker).await;
    let meta = client
        .metadata(MetadataRequest { topics: vec![] })
        .await
        .expect("metadata")
        .into_inner();
    assert_eq!(meta.topics.len(), 1);
    let t = &meta.topics[0];
    assert_eq!(t.name, topic);
    assert_eq!(t.partitions.len(), PARTITIONS as usize);
    assert_eq!(t.config.get("flush").map(String::as_str), Some(flush));
    verify(&mut client, &topic, &expected).await;
    broker.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn given_flush_replicated_when_four_producers_write_100k_records_should_fetch_all_back_identical_also_after_restart()
 {
    write_and_verify("replicated").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn given_flush_fsync_when_four_producers_write_100k_records_should_fetch_all_back_identical_also_after_restart()
 {
    write_and_verify("fsync").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_no_new_data_when_fetch_long_polls_should_return_empty_after_max_wait() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let broker = start(tmp.path(), |_| {}).await;
    let mut client = connect(&broker).await;
    create_topic(&mut client, "idle", 1, &[]).await;
    produce(&mut client, "idle", 0, simple_batch("v", 2))
        .await
        .expect("produce");

    let started = Instant::now();
    let r = fetch(&mut client, "idle", 0, 2, SHORT_POLL.as_millis() as u32)
        .await
        .expect("fetch at the log end is not an error");
    assert!(r.record_batches.is_empty());
    assert_eq!(r.high_watermark, 2);
    assert!(
        started.elapsed() >= SHORT_POLL,
        "returned after {:?}",
        started.elapsed()
    );
    broker.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_waiting_fetch_when_data_arrives_should_return_it_before_max_wait() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let broker = start(tmp.path(), |_| {}).await;
    let mut client = connect(&broker).await;
    create_topic(&mut client, "wake", 1, &[]).await;

    let started = Instant::now();
    let waiter = {
        let mut client = client.clone();
        tokio::spawn(
            async move { fetch(&mut client, "wake", 0, 0, LONG_POLL.as_millis() as u32).await },
        )
    };
    wait_until("the fetch to be long-polling", WAIT_TIMEOUT, || {
        broker.metrics().fetches_waiting.get() == 1
    })
    .await;
    produce(&mut client, "wake", 0, simple_batch("hello", 1))
        .await
        .expect("produce");
    let r = waiter.await.expect("join").expect("fetch");
    assert!(
        started.elapsed() < LONG_POLL / 2,
        "long poll was not woken: {:?}",
        started.elapsed()
    );
    let records = decode_all(&r.record_batches);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].1.value, Bytes::from_static(b"hello-0"));
    broker.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_records_when_listing_offsets_and_acks_none_should_resolve_earliest_latest_and_timestamp()
 {
    let tmp = tempfile::tempdir().expect("tempdir");
    let broker = start(tmp.path(), |_| {}).await;
    let mut client = connect(&broker).await;
    create_topic(&mut client, "offsets", 1, &[]).await;
    let records: Vec<TestRecord> = (0..10)
        .map(|i| TestRecord {
            key: None,
            value: Bytes::from(format!("v{i}")),
            timestamp: 1_000 + i * 100,
        })
        .collect();
    produce(&mut client, "offsets", 0, encode_batch(&records))
        .await
        .expect("produce");
    let ack = client
        .produce(ProduceRequest {
            topic: "offsets".into(),
            partition: 0,
            acks: Acks::None as i32,
            timeout_ms: 0,
            record_batches: simple_batch("fire-and-forget", 1),
        })
        .await
        .expect("acks=none produce")
        .into_inner();
    assert_eq!(ack.base_offset, -1, "acks=none returns no offset");

    let mut list = async |spec| {
        client
            .list_offsets(ListOffsetsRequest {
                topic: "offsets".into(),
                partition: 0,
                spec: Some(OffsetSpec { spec: Some(spec) }),
            })
            .await
            .expect("list offsets")
            .into_inner()
    };
    assert_eq!(list(offset_spec::Spec::Earliest(true)).await.offset, 0);
    assert_eq!(list(offset_spec::Spec::Latest(true)).await.offset, 11);
    let by_ts = list(offset_spec::Spec::TimestampMs(1_450)).await;
    assert_eq!((by_ts.offset, by_ts.timestamp_ms), (5, 1_500));
    assert_eq!(
        list(offset_spec::Spec::TimestampMs(i64::MAX)).await.offset,
        -1
    );

    let fetched = client
        .fetch(FetchRequest {
            topic: "offsets".into(),
            partition: 0,
            offset: 10,
            max_bytes: 0,
            max_wait_ms: 0,
            min_bytes: 0,
        })
        .await
        .expect("fetch")
        .into_inner();
    let records = decode_all(&fetched.record_batches);
    assert_eq!(records[0].1.value, Bytes::from_static(b"fire-and-forget-0"));
    broker.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_running_broker_when_probed_should_be_healthy_ready_and_export_metrics_then_not_ready_after_shutdown()
 {
    let tmp = tempfile::tempdir().expect("tempdir");
    let broker = start(tmp.path(), |c| c.rack = Some("zone-a".into())).await;
    let http = broker.http_addr;
    assert_eq!(http_get(http, "/healthz").await.0, 200);
    assert_eq!(http_get(http, "/readyz").await.0, 200);
    let mut client = connect(&broker).await;
    create_topic(&mut client, "m", 2, &[]).await;
    produce(&mut client, "m", 1, simple_batch("a", 5))
        .await
        .expect("produce");
    let meta = client
        .metadata(MetadataRequest {
            topics: vec!["m".into()],
        })
        .await
        .expect("metadata")
        .into_inner();
    assert_eq!(meta.brokers.len(), 1);
    assert_eq!(meta.brokers[0].rack, "zone-a");
    assert!(
        meta.brokers[0]
            .address
            .ends_with(&format!(":{}", broker.client_addr.port()))
    );
    let p1 = &meta.topics[0].partitions[1];
    assert_eq!(
        (p1.leader, p1.high_watermark, p1.isr.clone()),
        (0, 5, vec![0])
    );

    let (_, body) = http_get(http, "/metrics").await;
    assert_eq!(
        metric_value(&body, "rill_log_end_offset{partition=\"1\",topic=\"m\"}"),
        Some(5.0),
        "{body}"
    );
    assert_eq!(
        metric_value(&body, "rill_high_watermark{partition=\"1\",topic=\"m\"}"),
        Some(5.0)
    );
    assert!(
        metric_value(&body, "rill_log_size_bytes{partition=\"1\",topic=\"m\"}").unwrap_or(0.0)
            > 0.0
    );
    assert!(body.contains("rill_request_duration_seconds_bucket{api=\"Produce\",outcome=\"ok\""));
    broker.shutdown().await.expect("clean shutdown");
    assert!(
        tokio::net::TcpStream::connect(http).await.is_err(),
        "HTTP server stops after shutdown"
    );
}
