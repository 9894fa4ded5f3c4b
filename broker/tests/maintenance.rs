//! Contract: the broker's background tasks run on their own. Retention
//! deletes expired segments (the log start offset advances, old offsets
//! become OUT_OF_RANGE, the metric counts them); compaction of a
//! `cleanup.policy=compact` topic removes superseded records of sealed
//! segments while the latest record of every key stays readable; an
//! interval flush fsyncs `flush=replicated` data, with one `syncfs` for many
//! partitions.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use rill_proto::client::{ListOffsetsRequest, OffsetSpec, offset_spec};

/// How long a background pass may take to show its effect.
const TASK_TIMEOUT: Duration = Duration::from_secs(20);
/// Interval of retention and compaction in these tests.
const PASS_INTERVAL_MS: u64 = 50;

fn keyed(key: &str, value: &str, timestamp: i64) -> Bytes {
    encode_batch(&[TestRecord {
        key: Some(Bytes::from(key.to_owned())),
        value: Bytes::from(value.to_owned()),
        timestamp,
    }])
}

async fn earliest(client: &mut Client, topic: &str) -> i64 {
    client
        .list_offsets(ListOffsetsRequest {
            topic: topic.into(),
            partition: 0,
            spec: Some(OffsetSpec {
                spec: Some(offset_spec::Spec::Earliest(true)),
            }),
        })
        .await
        .expect("list offsets")
        .into_inner()
        .offset
}

/// Polls /metrics until `sample` reaches at least `min`.
async fn wait_metric(http: std::net::SocketAddr, sample: &str, min: f64) {
    let deadline = tokio::time::Instant::now() + TASK_TIMEOUT;
    loop {
        let (_, body) = http_get(http, "/metrics").await;
        if metric_value(&body, sample).unwrap_or(0.0) >= min {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{sample} did not reach {min} within {TASK_TIMEOUT:?}:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_expired_segments_when_retention_runs_should_delete_them_and_advance_the_log_start() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let broker = start(tmp.path(), |c| {
        c.retention_check_interval_ms = PASS_INTERVAL_MS
    })
    .await;
    let mut client = connect(&broker).await;
    // Tiny segments: every batch rolls a new one. Timestamps from 1970 are
    // long expired under a one-hour retention.
    create_topic(
        &mut client,
        "old",
        1,
        &[("segment.bytes", "14"), ("retention.ms", "3600000")],
    )
    .await;
    for i in 0..5 {
        produce(
            &mut client,
            "old",
            0,
            keyed("k", &format!("v{i}"), 1_000 + i),
        )
        .await
        .expect("produce");
    }
    wait_metric(
        broker.http_addr,
        "rill_retention_segments_deleted_total{topic=\"old\"}",
        4.0,
    )
    .await;
    let start = earliest(&mut client, "old").await;
    assert!(
        start >= 4,
        "log start offset advanced past deleted segments, got {start}"
    );
    let err = fetch(&mut client, "old", 0, 0, 0)
        .await
        .expect_err("offset 0 is gone");
    assert_eq!(err.code(), tonic::Code::OutOfRange, "{err:?}");
    broker.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_compacted_topic_when_compaction_runs_should_keep_only_the_latest_record_per_key() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let broker = start(tmp.path(), |c| c.compaction_interval_ms = PASS_INTERVAL_MS).await;
    let mut client = connect(&broker).await;
    create_topic(
        &mut client,
        "table",
        1,
        &[("segment.bytes", "14"), ("cleanup.policy", "compact")],
    )
    .await;
    let now = 1_700_000_000_000;
    for round in 0..4 {
        for key in ["a", "b"] {
            produce(
                &mut client,
                "table",
                0,
                keyed(key, &format!("{key}{round}"), now),
            )
            .await
            .expect("produce");
        }
    }
    wait_metric(
        broker.http_addr,
        "rill_compaction_records_removed_total{topic=\"table\"}",
        1.0,
    )
    .await;
    let records = fetch_all(&mut client, "table", 0, 0).await;
    let latest_a = records
        .iter()
        .rev()
        .find(|(_, r)| r.key.as_deref() == Some(&b"a"[..]));
    let latest_b = records
        .iter()
        .rev()
        .find(|(_, r)| r.key.as_deref() == Some(&b"b"[..]));
    assert_eq!(
        latest_a.map(|(_, r)| r.value.clone()),
        Some(Bytes::from_static(b"a3"))
    );
    assert_eq!(
        latest_b.map(|(_, r)| r.value.clone()),
        Some(Bytes::from_static(b"b3"))
    );
    assert!(
        records.len() < 8,
        "compaction removed superseded records: {}",
        records.len()
    );
    broker.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_replicated_flush_when_flush_interval_passes_should_fsync_in_the_background() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let broker = start(tmp.path(), |_| {}).await;
    let mut client = connect(&broker).await;
    create_topic(&mut client, "lazy", 1, &[("flush.ms", "10")]).await;
    produce(&mut client, "lazy", 0, simple_batch("x", 3))
        .await
        .expect("produce");
    wait_metric(
        broker.http_addr,
        "rill_fsyncs_total{kind=\"interval\"}",
        1.0,
    )
    .await;
    broker.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_many_partitions_due_for_an_interval_flush_then_one_syncfs_flushes_them_all_and_moves_their_recovery_points()
 {
    let tmp = tempfile::tempdir().expect("tempdir");
    let broker = start(tmp.path(), |_| {}).await;
    let mut client = connect(&broker).await;
    let partitions = 20;
    create_topic(&mut client, "many", partitions, &[("flush.ms", "1000")]).await;
    for partition in 0..partitions {
        produce(&mut client, "many", partition, simple_batch("x", 3))
            .await
            .expect("produce");
    }
    wait_metric(broker.http_addr, "rill_fsyncs_total{kind=\"syncfs\"}", 1.0).await;
    let (_, body) = http_get(broker.http_addr, "/metrics").await;
    assert_eq!(
        metric_value(&body, "rill_fsyncs_total{kind=\"interval\"}").unwrap_or(0.0),
        0.0,
        "no partition fsynced on its own:\n{body}"
    );
    // The recovery points moved past every appended batch (so a restart
    // trusts them), written after the sync.
    for partition in 0..partitions {
        let path = tmp
            .path()
            .join(format!("topics/many/{partition}/recovery-point"));
        let point = rill_broker::log::number_file::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(point, Some(3), "{}", path.display());
    }
    broker.shutdown().await.expect("clean shutdown");
}
