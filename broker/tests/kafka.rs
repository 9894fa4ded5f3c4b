//! The Kafka protocol listener, spoken over real TCP sockets with requests
//! encoded by the `kafka-protocol` crate, against in-process brokers.
//!
//! Pins: ApiVersions advertises exactly the served APIs and versions, and
//! an unknown ApiVersions version gets UNSUPPORTED_VERSION in v0; every
//! advertised version of every API answers with a response that decodes
//! at that version; produce (acks 0, 1, all) and fetch round-trip batches
//! verbatim; long polls wake on new data; list offsets and leader epochs
//! follow Kafka; idempotent retries are answered with the original offset
//! without a second append (also after a restart), sequence gaps and
//! stale epochs are refused; topic create/delete/grow with their errors,
//! validate_only and the deny policy; pipelined requests are answered in
//! order and acks=0 is never answered; oversized and garbage frames close
//! only their own connection. In a controller + 3 broker cluster: Metadata
//! advertises every broker's Kafka listener, leaders, replicas and ISR;
//! acks=all writes reach the leader; followers answer
//! NOT_LEADER_OR_FOLLOWER with the current leader; after the leader shuts
//! down, Metadata shows the new leader and epoch, the old epoch is fenced,
//! and an idempotent retry of a batch written before the failover is
//! still recognised. A reassignment moving the leader's replica is listed
//! while in flight (target, then the removed replica; adding and removing
//! sets), ends with the target replicas and a leader among them holding
//! every acknowledged record; refusals carry Kafka's per-partition errors
//! and unclean elections are refused. A broker added to the cluster gets
//! replicas and preferred leaderships from the automatic balance until
//! counts differ by at most 1, with every acknowledged record still there.
//! A replica being added catches up no faster than the reassignment
//! throttle, which counts the bytes it let through.

mod common;
mod kafka_client;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_client::{Conn, batch, records};
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;
use rill_broker::BrokerHandle;
use rill_broker::config::TopicAdminPolicy;

/// Longest the cluster may take to agree on leaders and ISRs.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(30);
/// A long poll that should be woken by data long before it expires.
const LONG_POLL_MS: i32 = 20_000;

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_owned()))
}

fn produce_req(topic: &str, partition: i32, records: Bytes, acks: i16) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(name(topic))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(records)),
                ]),
        ])
}

fn fetch_req(
    topic: &str,
    partition: i32,
    offset: i64,
    max_wait_ms: i32,
    epoch: i32,
) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(name(topic))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(partition)
                        .with_fetch_offset(offset)
                        .with_current_leader_epoch(epoch)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ])
}

fn list_offsets_req(topic: &str, partition: i32, timestamp: i64) -> ListOffsetsRequest {
    ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(name(topic))
                .with_partitions(vec![
                    ListOffsetsPartition::default()
                        .with_partition_index(partition)
                        .with_current_leader_epoch(-1)
                        .with_timestamp(timestamp),
                ]),
        ])
}

fn create_req(topic: &str, partitions: i32, rf: i16, validate_only: bool) -> CreateTopicsRequest {
    CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_validate_only(validate_only)
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(name(topic))
                .with_num_partitions(partitions)
                .with_replication_factor(rf),
        ])
}

fn metadata_req(topics: Option<&[&str]>) -> MetadataRequest {
    MetadataRequest::default().with_topics(topics.map(|ts| {
        ts.iter()
            .map(|t| MetadataRequestTopic::default().with_name(Some(name(t))))
            .collect()
    }))
}

async fn start(
    dir: &Path,
    tweak: impl FnOnce(&mut rill_broker::config::BrokerConfig),
) -> BrokerHandle {
    common::start(dir, tweak).await
}

async fn create(conn: &mut Conn, topic: &str, partitions: i32, rf: i16) {
    let r = conn
        .call(7, &create_req(topic, partitions, rf, false))
        .await;
    assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);
}

/// Produces `values` as one batch; returns (error code, base offset).
async fn produce(
    conn: &mut Conn,
    topic: &str,
    partition: i32,
    data: Bytes,
    acks: i16,
) -> (i16, i64) {
    let r = conn
        .call(9, &produce_req(topic, partition, data, acks))
        .await;
    let p = &r.responses[0].partition_responses[0];
    if p.error_code != 0 {
        eprintln!(
            "produce {topic}-{partition}: {} {:?}",
            p.error_code, p.error_message
        );
    }
    (p.error_code, p.base_offset)
}

/// Fetches at `offset` (v12, names); returns the partition answer.
async fn fetch(
    conn: &mut Conn,
    topic: &str,
    partition: i32,
    offset: i64,
    epoch: i32,
) -> fetch_response::PartitionData {
    let mut r = conn
        .call(12, &fetch_req(topic, partition, offset, 0, epoch))
        .await;
    assert_eq!(r.error_code, 0);
    r.responses.remove(0).partitions.remove(0)
}

fn values(data: &Bytes, from: i64) -> Vec<String> {
    records(data)
        .into_iter()
        .filter(|(o, _)| *o >= from)
        .map(|(_, v)| v)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_broker_when_api_versions_asked_should_list_exactly_the_served_apis() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), |_| {}).await;
    let mut conn = Conn::connect(broker.kafka_addr).await;
    for version in 0..=4 {
        let mut request = ApiVersionsRequest::default();
        if version >= 3 {
            request = request
                .with_client_software_name(StrBytes::from_static_str("rill-test"))
                .with_client_software_version(StrBytes::from_static_str("1"));
        }
        let r = conn.call(version, &request).await;
        assert_eq!(r.error_code, 0);
        let served: BTreeMap<i16, (i16, i16)> = r
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        let expected: BTreeMap<i16, (i16, i16)> = [
            (ApiKey::Produce, (3, 13)),
            (ApiKey::Fetch, (4, 18)),
            (ApiKey::ListOffsets, (1, 10)),
            (ApiKey::Metadata, (0, 13)),
            (ApiKey::ApiVersions, (0, 4)),
            (ApiKey::CreateTopics, (2, 7)),
            (ApiKey::DeleteTopics, (1, 6)),
            // The codec's request stops at v5 (its response at v6).
            (ApiKey::InitProducerId, (0, 5)),
            (ApiKey::OffsetForLeaderEpoch, (2, 4)),
            (ApiKey::DescribeConfigs, (1, 4)),
            (ApiKey::CreatePartitions, (0, 3)),
            (ApiKey::DescribeCluster, (0, 2)),
            (ApiKey::DescribeTopicPartitions, (0, 0)),
            (ApiKey::AlterConfigs, (0, 2)),
            (ApiKey::IncrementalAlterConfigs, (0, 1)),
            (ApiKey::AlterPartitionReassignments, (0, 1)),
            (ApiKey::ListPartitionReassignments, (0, 0)),
            (ApiKey::ElectLeaders, (0, 2)),
            (ApiKey::DescribeLogDirs, (1, 4)),
            // Answered by the connection's session (`rill_broker::security`);
            // SaslHandshake v0 is listed (librdkafka looks for it) but
            // refused when used.
            (ApiKey::SaslHandshake, (0, 1)),
            (ApiKey::SaslAuthenticate, (0, 2)),
            (ApiKey::CreateAcls, (1, 3)),
            (ApiKey::DescribeAcls, (1, 3)),
            (ApiKey::DeleteAcls, (1, 3)),
            (ApiKey::DescribeClientQuotas, (0, 1)),
            (ApiKey::AlterClientQuotas, (0, 1)),
            // The transaction coordinator's APIs (`rill_broker::txn`).
            (ApiKey::AddPartitionsToTxn, (0, 5)),
            (ApiKey::AddOffsetsToTxn, (0, 4)),
            (ApiKey::EndTxn, (0, 5)),
            (ApiKey::WriteTxnMarkers, (1, 1)),
            (ApiKey::TxnOffsetCommit, (0, 5)),
            (ApiKey::DescribeProducers, (0, 0)),
            (ApiKey::DescribeTransactions, (0, 0)),
            (ApiKey::ListTransactions, (0, 2)),
            // The group coordinator's APIs (`crate::group`).
            (ApiKey::OffsetCommit, (2, 9)),
            (ApiKey::OffsetFetch, (1, 9)),
            (ApiKey::FindCoordinator, (0, 6)),
            (ApiKey::JoinGroup, (0, 9)),
            (ApiKey::Heartbeat, (0, 4)),
            (ApiKey::LeaveGroup, (0, 5)),
            (ApiKey::SyncGroup, (0, 5)),
            (ApiKey::DescribeGroups, (0, 6)),
            (ApiKey::ListGroups, (0, 5)),
            (ApiKey::DeleteGroups, (0, 2)),
            (ApiKey::OffsetDelete, (0, 0)),
            (ApiKey::ConsumerGroupHeartbeat, (0, 1)),
            (ApiKey::ConsumerGroupDescribe, (0, 1)),
            (ApiKey::DeleteRecords, (0, 2)),
            // Share groups (`rill_broker::share`, KIP-932).
            (ApiKey::ShareGroupHeartbeat, (1, 1)),
            (ApiKey::ShareGroupDescribe, (1, 1)),
            (ApiKey::ShareFetch, (1, 1)),
            (ApiKey::ShareAcknowledge, (1, 1)),
            (ApiKey::DescribeShareGroupOffsets, (0, 1)),
            (ApiKey::AlterShareGroupOffsets, (0, 0)),
            (ApiKey::DeleteShareGroupOffsets, (0, 0)),
        ]
        .into_iter()
        .map(|(k, v)| (k as i16, v))
        .collect();
        assert_eq!(served, expected, "ApiVersions v{version}");
    }

    // A version from the future (header v2, a body the broker need not
    // read): UNSUPPORTED_VERSION, in the v0 format.
    let frame: &[u8] = &[0, 0, 0, 12, 0, 18, 0, 99, 0, 0, 0x10, 0, 0xff, 0xff, 0, 0];
    conn.send_raw(frame).await;
    let (got, mut body) = conn.recv_frame(0).await.expect("answered");
    assert_eq!(got, 0x1000);
    let r = <ApiVersionsResponse as kafka_protocol::protocol::Decodable>::decode(&mut body, 0)
        .expect("v0 body");
    assert_eq!(r.error_code, 35, "UNSUPPORTED_VERSION");
    assert!(
        r.api_keys
            .iter()
            .any(|k| k.api_key == ApiKey::ApiVersions as i16 && k.max_version == 4)
    );
    // The connection stays usable.
    let r = conn.call(3, &ApiVersionsRequest::default()).await;
    assert_eq!(r.error_code, 0);
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_standalone_broker_when_produced_and_fetched_over_kafka_should_round_trip_with_kafka_semantics()
 {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), |_| {}).await;
    let mut conn = Conn::connect(broker.kafka_addr).await;
    create(&mut conn, "events", 2, 1).await;

    // Metadata: this broker at its Kafka address, leader of both partitions.
    let md = conn
        .call(12, &metadata_req(Some(&["events", "missing", "bad name"])))
        .await;
    assert_eq!(md.brokers.len(), 1);
    assert_eq!(md.brokers[0].port, i32::from(broker.kafka_addr.port()));
    assert_eq!(md.controller_id.0, 0);
    assert_eq!(md.cluster_id.as_deref(), Some("rill"));
    assert_eq!(md.topics[0].error_code, 0);
    assert_eq!(md.topics[0].partitions.len(), 2);
    assert!(
        md.topics[0]
            .partitions
            .iter()
            .all(|p| p.leader_id.0 == 0 && p.leader_epoch == 0)
    );
    assert_ne!(md.topics[0].topic_id, uuid::Uuid::nil());
    assert_eq!(md.topics[1].error_code, 3, "UNKNOWN_TOPIC_OR_PARTITION");
    assert_eq!(md.topics[2].error_code, 17, "INVALID_TOPIC_EXCEPTION");

    // acks=1, acks=all, compressed batches stored verbatim.
    let (code, base) = produce(
        &mut conn,
        "events",
        0,
        batch(&["a", "b"], None, Compression::None),
        1,
    )
    .await;
    assert_eq!((code, base), (0, 0));
    let (code, base) = produce(
        &mut conn,
        "events",
        0,
        batch(&["c"], None, Compression::Zstd),
        -1,
    )
    .await;
    assert_eq!((code, base), (0, 2));
    let lz4 = batch(&["d", "e"], None, Compression::Lz4);
    let (code, base) = produce(&mut conn, "events", 0, lz4.clone(), -1).await;
    assert_eq!((code, base), (0, 3));
    let p = fetch(&mut conn, "events", 0, 0, -1).await;
    assert_eq!(p.error_code, 0);
    assert_eq!(
        (p.high_watermark, p.last_stable_offset, p.log_start_offset),
        (5, 5, 0)
    );
    assert_eq!(
        values(p.records.as_ref().unwrap(), 0),
        ["a", "b", "c", "d", "e"]
    );
    let p = fetch(&mut conn, "events", 0, 3, -1).await;
    let stored = p.records.unwrap();
    assert_eq!(stored.len(), lz4.len());
    assert_eq!(
        stored[16..],
        lz4[16..],
        "stored verbatim but for offset and epoch"
    );

    // Errors: wrong acks, unknown partition, corrupt batch, two batches,
    // offset out of range, leader epoch from the future.
    assert_eq!(
        produce(
            &mut conn,
            "events",
            0,
            batch(&["x"], None, Compression::None),
            2
        )
        .await
        .0,
        21
    );
    assert_eq!(
        produce(
            &mut conn,
            "events",
            9,
            batch(&["x"], None, Compression::None),
            1
        )
        .await
        .0,
        3
    );
    let mut corrupt = batch(&["x"], None, Compression::None).to_vec();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    assert_eq!(
        produce(&mut conn, "events", 0, corrupt.into(), 1).await.0,
        2,
        "CORRUPT_MESSAGE"
    );
    let mut two = batch(&["x"], None, Compression::None).to_vec();
    two.extend_from_slice(&batch(&["y"], None, Compression::None));
    assert_eq!(
        produce(&mut conn, "events", 0, two.into(), 1).await.0,
        87,
        "INVALID_RECORD"
    );
    assert_eq!(
        fetch(&mut conn, "events", 0, 99, -1).await.error_code,
        1,
        "OFFSET_OUT_OF_RANGE"
    );
    assert_eq!(
        fetch(&mut conn, "events", 0, 0, 5).await.error_code,
        75,
        "UNKNOWN_LEADER_EPOCH"
    );

    // ListOffsets: earliest, latest, by timestamp, max timestamp.
    for (ts, offset) in [
        (-2, 0),
        (-1, 5),
        (1_700_000_000_001, 1),
        (-3, 1),
        (i64::MAX, -1),
    ] {
        let r = conn.call(7, &list_offsets_req("events", 0, ts)).await;
        let p = &r.topics[0].partitions[0];
        assert_eq!((p.error_code, p.offset), (0, offset), "timestamp {ts}");
    }
    // OffsetForLeaderEpoch: epoch 0 spans the whole log.
    let r = conn
        .call(
            4,
            &OffsetForLeaderEpochRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(vec![
                    OffsetForLeaderTopic::default()
                        .with_topic(name("events"))
                        .with_partitions(vec![
                            OffsetForLeaderPartition::default()
                                .with_partition(0)
                                .with_current_leader_epoch(0)
                                .with_leader_epoch(0),
                        ]),
                ]),
        )
        .await;
    let e = &r.topics[0].partitions[0];
    assert_eq!((e.error_code, e.leader_epoch, e.end_offset), (0, 0, 5));

    // Long poll: a fetch waiting on partition 1 wakes on a produce from
    // another connection, long before its max wait.
    let mut waiter = Conn::connect(broker.kafka_addr).await;
    let started = Instant::now();
    let id = waiter
        .send(12, &fetch_req("events", 1, 0, LONG_POLL_MS, -1))
        .await;
    let (code, _) = produce(
        &mut conn,
        "events",
        1,
        batch(&["late"], None, Compression::None),
        1,
    )
    .await;
    assert_eq!(code, 0);
    let r = waiter.recv::<FetchRequest>(12, id).await;
    assert_eq!(
        values(r.responses[0].partitions[0].records.as_ref().unwrap(), 0),
        ["late"]
    );
    assert!(started.elapsed() < Duration::from_millis(LONG_POLL_MS as u64));

    // acks=0 is never answered: the next response is the next request's.
    let silent = conn
        .send(
            9,
            &produce_req("events", 1, batch(&["quiet"], None, Compression::None), 0),
        )
        .await;
    let md_id = conn.send(12, &metadata_req(Some(&["events"]))).await;
    assert_ne!(silent, md_id);
    let md = conn.recv::<MetadataRequest>(12, md_id).await;
    assert_eq!(md.topics[0].error_code, 0);
    let p = fetch(&mut conn, "events", 1, 0, -1).await;
    assert_eq!(values(p.records.as_ref().unwrap(), 0), ["late", "quiet"]);

    // Pipelining: many requests in flight, answered in order.
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(if i % 2 == 0 {
            conn.send(
                9,
                &produce_req("events", 1, batch(&["p"], None, Compression::None), 1),
            )
            .await
        } else {
            conn.send(12, &fetch_req("events", 1, 0, 0, -1)).await
        });
    }
    for (i, id) in ids.into_iter().enumerate() {
        if i % 2 == 0 {
            let r = conn.recv::<ProduceRequest>(9, id).await;
            assert_eq!(
                r.responses[0].partition_responses[0].base_offset,
                2 + i as i64 / 2
            );
        } else {
            conn.recv::<FetchRequest>(12, id).await;
        }
    }

    // Per-API metrics.
    let metrics = broker.metrics().encode();
    assert!(
        common::metric_value(&metrics, "rill_kafka_requests_total{api=\"Produce\"}").unwrap()
            >= 10.0
    );
    assert!(metrics.contains("rill_kafka_request_duration_seconds_bucket{api=\"Fetch\""));
    assert!(common::metric_value(&metrics, "rill_kafka_bytes_in_total").unwrap() > 0.0);
    broker.shutdown().await.unwrap();
}

/// (error code, base offset) of an idempotent produce.
async fn produce_idem(
    conn: &mut Conn,
    topic: &str,
    vals: &[&str],
    pid: i64,
    epoch: i16,
    seq: i32,
) -> (i16, i64) {
    produce(
        conn,
        topic,
        0,
        batch(vals, Some((pid, epoch, seq)), Compression::Snappy),
        -1,
    )
    .await
}

async fn high_watermark(conn: &mut Conn, topic: &str) -> i64 {
    fetch(conn, topic, 0, 0, -1).await.high_watermark
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_an_idempotent_producer_when_it_retries_should_get_the_original_offset_also_after_a_restart()
 {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), |_| {}).await;
    let mut conn = Conn::connect(broker.kafka_addr).await;
    create(&mut conn, "idem", 1, 1).await;
    let r = conn
        .call(
            4,
            &InitProducerIdRequest::default().with_transaction_timeout_ms(60_000),
        )
        .await;
    assert_eq!(r.error_code, 0);
    let pid = r.producer_id.0;
    assert!(pid >= 0);
    assert_eq!(r.producer_epoch, 0);
    let other = conn
        .call(4, &InitProducerIdRequest::default())
        .await
        .producer_id
        .0;
    assert_ne!(other, pid, "producer ids are unique");
    // A transactional id gets its producer from the transaction
    // coordinator, found (and its state topic created) by FindCoordinator.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let tx = loop {
        let found = conn
            .call(
                3,
                &FindCoordinatorRequest::default()
                    .with_key(StrBytes::from_static_str("tx"))
                    .with_key_type(1),
            )
            .await;
        let r = conn
            .call(
                4,
                &InitProducerIdRequest::default()
                    .with_transactional_id(Some(TransactionalId(StrBytes::from_static_str("tx"))))
                    .with_transaction_timeout_ms(60_000),
            )
            .await;
        if found.error_code == 0 && r.error_code == 0 {
            break r;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no transactional producer id: FindCoordinator {}, InitProducerId {}",
            found.error_code,
            r.error_code
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(tx.producer_id.0 >= 0 && tx.producer_id.0 != pid && tx.producer_id.0 != other);
    assert_eq!(tx.producer_epoch, 0);

    assert_eq!(
        produce_idem(&mut conn, "idem", &["a", "b"], pid, 0, 0).await,
        (0, 0)
    );
    assert_eq!(
        produce_idem(&mut conn, "idem", &["c"], pid, 0, 2).await,
        (0, 2)
    );
    // Retries of both: original offsets, nothing appended.
    assert_eq!(
        produce_idem(&mut conn, "idem", &["a", "b"], pid, 0, 0).await,
        (0, 0)
    );
    assert_eq!(
        produce_idem(&mut conn, "idem", &["c"], pid, 0, 2).await,
        (0, 2)
    );
    assert_eq!(high_watermark(&mut conn, "idem").await, 3);
    // A gap, and an older epoch once a newer one wrote.
    assert_eq!(
        produce_idem(&mut conn, "idem", &["d"], pid, 0, 7).await.0,
        45,
        "OUT_OF_ORDER_SEQUENCE_NUMBER"
    );
    assert_eq!(
        produce_idem(&mut conn, "idem", &["e"], pid, 1, 0).await,
        (0, 3)
    );
    assert_eq!(
        produce_idem(&mut conn, "idem", &["f"], pid, 0, 3).await.0,
        47,
        "INVALID_PRODUCER_EPOCH"
    );
    // Another producer is independent.
    assert_eq!(
        produce_idem(&mut conn, "idem", &["g"], other, 0, 0).await,
        (0, 4)
    );
    assert_eq!(high_watermark(&mut conn, "idem").await, 5);
    drop(conn);
    broker.shutdown().await.unwrap();

    // After a restart the state is rebuilt from the log.
    let broker = start(dir.path(), |_| {}).await;
    let mut conn = Conn::connect(broker.kafka_addr).await;
    assert_eq!(
        produce_idem(&mut conn, "idem", &["e"], pid, 1, 0).await,
        (0, 3)
    );
    assert_eq!(
        produce_idem(&mut conn, "idem", &["g"], other, 0, 0).await,
        (0, 4)
    );
    assert_eq!(
        produce_idem(&mut conn, "idem", &["h"], pid, 1, 5).await.0,
        45
    );
    assert_eq!(
        produce_idem(&mut conn, "idem", &["h"], pid, 1, 1).await,
        (0, 5)
    );
    assert_eq!(high_watermark(&mut conn, "idem").await, 6);
    // New producer ids after a restart never repeat old ones.
    let after = conn
        .call(4, &InitProducerIdRequest::default())
        .await
        .producer_id
        .0;
    assert!(after > other, "{after} > {other}");
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_config_file_when_creating_topics_with_defaults_then_its_values_apply_and_describe_names_their_sources()
 {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broker.properties");
    std::fs::write(
        &file,
        "# as the operator renders spec.config\nnum.partitions=3\nlog.retention.hours=2\n",
    )
    .unwrap();
    let loaded = rill_broker::config::BrokerConfig::load_from([
        "rill-broker",
        "--config-file",
        file.to_str().unwrap(),
        "--log-retention-bytes",
        "100000000",
    ])
    .expect("loads");
    let broker = start(&dir.path().join("data"), |c| {
        c.num_partitions = loaded.num_partitions;
        c.log_retention_ms = loaded.log_retention_ms;
        c.log_retention_bytes = loaded.log_retention_bytes;
        c.sources = loaded.sources.clone();
    })
    .await;
    let mut conn = Conn::connect(broker.kafka_addr).await;

    // -1 partitions and -1 replicas: the broker's defaults.
    let r = conn.call(7, &create_req("d", -1, -1, false)).await;
    assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);
    assert_eq!(
        (r.topics[0].num_partitions, r.topics[0].replication_factor),
        (3, 1)
    );

    let r = conn
        .call(
            4,
            &DescribeConfigsRequest::default().with_resources(vec![
                DescribeConfigsResource::default()
                    .with_resource_type(4)
                    .with_resource_name(StrBytes::from_static_str("0")),
            ]),
        )
        .await;
    let get = |key: &str| {
        r.results[0]
            .configs
            .iter()
            .find(|c| c.name.as_str() == key)
            .map(|c| {
                (
                    c.value.as_deref().map(str::to_owned),
                    c.config_source,
                    c.documentation.as_deref().map(str::to_owned),
                )
            })
    };
    let entry = |value: &str, source: i8, doc: &str| {
        Some((Some(value.to_owned()), source, Some(doc.to_owned())))
    };
    assert_eq!(get("num.partitions"), entry("3", 4, "source: file"));
    assert_eq!(get("log.retention.ms"), entry("7200000", 4, "source: file"));
    assert_eq!(
        get("log.retention.bytes"),
        entry("100000000", 4, "source: flag")
    );
    assert_eq!(
        get("default.replication.factor"),
        entry("1", 5, "source: default")
    );
    broker.shutdown().await.unwrap();
}

/// The topic's `retention.ms` as DescribeConfigs shows it.
async fn described_retention(conn: &mut Conn, topic: &'static str) -> Option<String> {
    let request = DescribeConfigsRequest::default().with_resources(vec![
        DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str(topic)),
    ]);
    let r: kafka_protocol::messages::DescribeConfigsResponse = conn.call(4, &request).await;
    r.results[0]
        .configs
        .iter()
        .find(|c| c.name.as_str() == "retention.ms")
        .and_then(|c| c.value.as_deref().map(str::to_owned))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_running_broker_when_its_config_file_changes_a_topic_default_then_topics_without_an_override_take_it_live()
 {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broker.properties");
    std::fs::write(
        &file,
        "log.retention.hours=2
",
    )
    .unwrap();
    let loaded = rill_broker::config::BrokerConfig::load_from([
        "rill-broker",
        "--config-file",
        file.to_str().unwrap(),
    ])
    .expect("loads");
    let broker = start(&dir.path().join("data"), |c| {
        c.log_retention_ms = loaded.log_retention_ms;
        c.config_file = loaded.config_file.clone();
        c.load_args = loaded.load_args.clone();
        c.sources = loaded.sources.clone();
    })
    .await;
    let mut conn = Conn::connect(broker.kafka_addr).await;
    let r = conn.call(7, &create_req("plain", 1, -1, false)).await;
    assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);
    let mut pinned = create_req("pinned", 1, -1, false);
    pinned.topics[0].configs = vec![
        CreatableTopicConfig::default()
            .with_name(StrBytes::from_static_str("retention.ms"))
            .with_value(Some(StrBytes::from_static_str("60000"))),
    ];
    let r = conn.call(7, &pinned).await;
    assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);

    assert_eq!(
        described_retention(&mut conn, "plain").await.as_deref(),
        Some("7200000")
    );

    // Three hours now, and a key that needs a restart (ignored until then).
    std::fs::write(
        &file,
        "log.retention.hours=3
num.partitions=5
",
    )
    .unwrap();
    let started = std::time::Instant::now();
    loop {
        if described_retention(&mut conn, "plain").await.as_deref() == Some("10800000") {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "the new default reaches the topic within 10 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(
        described_retention(&mut conn, "pinned").await.as_deref(),
        Some("60000"),
        "a topic override wins over the new default"
    );
    let r = conn.call(7, &create_req("later", -1, -1, false)).await;
    assert_eq!(
        r.topics[0].num_partitions, 1,
        "num.partitions takes effect at the next restart"
    );

    // A file that no longer loads is ignored: the running settings stay.
    std::fs::write(
        &file,
        "log.retention.hours=lots
",
    )
    .unwrap();
    tokio::time::sleep(rill_broker::config::reload::RELOAD_INTERVAL * 2).await;
    assert_eq!(
        described_retention(&mut conn, "plain").await.as_deref(),
        Some("10800000")
    );
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_topic_admin_requests_when_served_should_follow_kafka_errors_and_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), |_| {}).await;
    let mut conn = Conn::connect(broker.kafka_addr).await;

    // validate_only changes nothing.
    let r = conn.call(7, &create_req("t", 3, 1, true)).await;
    assert_eq!((r.topics[0].error_code, r.topics[0].num_partitions), (0, 3));
    let md = conn.call(12, &metadata_req(Some(&["t"]))).await;
    assert_eq!(md.topics[0].error_code, 3);

    let mut with_config = create_req("t", 3, -1, false);
    with_config.topics[0].configs = vec![
        CreatableTopicConfig::default()
            .with_name(StrBytes::from_static_str("retention.ms"))
            .with_value(Some(StrBytes::from_static_str("60000"))),
    ];
    let r = conn.call(7, &with_config).await;
    assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);
    assert_eq!(r.topics[0].num_partitions, 3);
    let configs = r.topics[0].configs.as_ref().unwrap();
    let retention = configs
        .iter()
        .find(|c| c.name.as_str() == "retention.ms")
        .unwrap();
    assert_eq!(
        (retention.value.as_deref(), retention.config_source),
        (Some("60000"), 1)
    );

    for (req, code) in [
        (create_req("t", 1, 1, false), 36),
        (create_req("t", 1, 1, true), 36),
        (create_req("u", 0, 1, false), 37),
        (create_req("u", 1, 3, false), 38),
        (create_req("bad/name", 1, 1, false), 17),
    ] {
        let r = conn.call(7, &req).await;
        assert_eq!(
            r.topics[0].error_code, code,
            "{:?}",
            r.topics[0].error_message
        );
        assert!(r.topics[0].error_message.is_some());
    }
    let mut bad_config = create_req("u", 1, 1, false);
    bad_config.topics[0].configs = vec![
        CreatableTopicConfig::default()
            .with_name(StrBytes::from_static_str("retention.ms"))
            .with_value(Some(StrBytes::from_static_str("soon"))),
    ];
    assert_eq!(
        conn.call(7, &bad_config).await.topics[0].error_code,
        40,
        "INVALID_CONFIG"
    );

    // DescribeConfigs: topic (override marked) and broker.
    let r = conn
        .call(
            4,
            &DescribeConfigsRequest::default().with_resources(vec![
                DescribeConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(StrBytes::from_static_str("t")),
                DescribeConfigsResource::default()
                    .with_resource_type(4)
                    .with_resource_name(StrBytes::from_static_str("0")),
                DescribeConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(StrBytes::from_static_str("nope")),
            ]),
        )
        .await;
    let topic = &r.results[0];
    assert_eq!(topic.error_code, 0);
    let get = |res: &describe_configs_response::DescribeConfigsResult, key: &str| {
        res.configs
            .iter()
            .find(|c| c.name.as_str() == key)
            .map(|c| (c.value.as_deref().map(str::to_owned), c.config_source))
    };
    assert_eq!(get(topic, "retention.ms"), Some((Some("60000".into()), 1)));
    assert_eq!(
        get(topic, "cleanup.policy"),
        Some((Some("delete".into()), 5))
    );
    assert_eq!(get(&r.results[1], "broker.id"), Some((Some("0".into()), 4)));
    assert!(get(&r.results[1], "log.retention.ms").is_some());
    assert_eq!(r.results[2].error_code, 3);

    // CreatePartitions grows, never shrinks.
    let grow = |count: i32, validate_only: bool| {
        CreatePartitionsRequest::default()
            .with_timeout_ms(10_000)
            .with_validate_only(validate_only)
            .with_topics(vec![
                CreatePartitionsTopic::default()
                    .with_name(name("t"))
                    .with_count(count),
            ])
    };
    assert_eq!(conn.call(3, &grow(5, true)).await.results[0].error_code, 0);
    assert_eq!(
        conn.call(12, &metadata_req(Some(&["t"]))).await.topics[0]
            .partitions
            .len(),
        3
    );
    assert_eq!(conn.call(3, &grow(5, false)).await.results[0].error_code, 0);
    assert_eq!(
        conn.call(12, &metadata_req(Some(&["t"]))).await.topics[0]
            .partitions
            .len(),
        5
    );
    assert_eq!(
        conn.call(3, &grow(2, false)).await.results[0].error_code,
        37
    );
    assert_eq!(
        produce(
            &mut conn,
            "t",
            4,
            batch(&["new"], None, Compression::None),
            1
        )
        .await,
        (0, 0)
    );

    // DescribeCluster.
    let r = conn
        .call(1, &DescribeClusterRequest::default().with_endpoint_type(1))
        .await;
    assert_eq!(
        (r.error_code, r.cluster_id.as_str(), r.brokers.len()),
        (0, "rill", 1)
    );

    // DeleteTopics: by name (v5) and by id (v6); unknown topics.
    let id = conn.call(12, &metadata_req(Some(&["t"]))).await.topics[0].topic_id;
    create(&mut conn, "v", 1, 1).await;
    let r = conn
        .call(
            5,
            &DeleteTopicsRequest::default().with_topic_names(vec![name("v"), name("v")]),
        )
        .await;
    assert_eq!(r.responses[0].error_code, 0);
    assert_eq!(r.responses[1].error_code, 3);
    let r = conn
        .call(
            6,
            &DeleteTopicsRequest::default()
                .with_topics(vec![DeleteTopicState::default().with_topic_id(id)]),
        )
        .await;
    assert_eq!(
        (
            r.responses[0].error_code,
            r.responses[0].name.as_ref().map(|n| n.0.to_string())
        ),
        (0, Some("t".into()))
    );
    assert!(conn.call(12, &metadata_req(None)).await.topics.is_empty());
    broker.shutdown().await.unwrap();

    // The deny policy refuses every change.
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), |c| {
        c.kafka_create_topics = TopicAdminPolicy::Deny;
        c.kafka_delete_topics = TopicAdminPolicy::Deny;
    })
    .await;
    let mut conn = Conn::connect(broker.kafka_addr).await;
    assert_eq!(
        conn.call(7, &create_req("t", 1, 1, false)).await.topics[0].error_code,
        44
    );
    assert_eq!(
        conn.call(7, &create_req("t", 1, 1, true)).await.topics[0].error_code,
        44
    );
    let r = conn
        .call(
            5,
            &DeleteTopicsRequest::default().with_topic_names(vec![name("t")]),
        )
        .await;
    assert_eq!(r.responses[0].error_code, 44);
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_auto_creation_enabled_when_metadata_allows_it_should_create_the_topic_and_not_otherwise()
 {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), |_| {}).await;
    let mut conn = Conn::connect(broker.kafka_addr).await;
    let r = conn
        .call(
            12,
            &metadata_req(Some(&["auto"])).with_allow_auto_topic_creation(true),
        )
        .await;
    assert_eq!(r.topics[0].error_code, 3, "off by default");
    broker.shutdown().await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), |c| c.auto_create_topic_partitions = Some(2)).await;
    let mut conn = Conn::connect(broker.kafka_addr).await;
    let r = conn
        .call(
            12,
            &metadata_req(Some(&["auto"])).with_allow_auto_topic_creation(false),
        )
        .await;
    assert_eq!(r.topics[0].error_code, 3, "the client did not allow it");
    let r = conn
        .call(
            12,
            &metadata_req(Some(&["auto"])).with_allow_auto_topic_creation(true),
        )
        .await;
    assert_eq!(
        (r.topics[0].error_code, r.topics[0].partitions.len()),
        (0, 2)
    );
    broker.shutdown().await.unwrap();
}

/// DescribeTopicPartitions pages through topics in name order: at most
/// `response_partition_limit` partitions per answer, a cursor to go on
/// from, every partition exactly once; unknown topics are named as such.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_partition_limit_when_describing_topic_partitions_should_page_with_a_cursor() {
    use kafka_protocol::messages::describe_topic_partitions_request::{Cursor, TopicRequest};
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), |_| {}).await;
    let mut conn = Conn::connect(broker.kafka_addr).await;
    create(&mut conn, "beta", 2, 1).await;
    create(&mut conn, "alpha", 3, 1).await;
    let request = |cursor: Option<(&str, i32)>| {
        DescribeTopicPartitionsRequest::default()
            .with_topics(
                ["beta", "alpha", "missing"]
                    .iter()
                    .map(|t| TopicRequest::default().with_name(name(t)))
                    .collect(),
            )
            .with_response_partition_limit(2)
            .with_cursor(cursor.map(|(t, p)| {
                Cursor::default()
                    .with_topic_name(name(t))
                    .with_partition_index(p)
            }))
    };
    let mut seen = Vec::new();
    let mut cursor: Option<(String, i32)> = None;
    let mut pages = 0;
    loop {
        let r = conn
            .call(0, &request(cursor.as_ref().map(|(t, p)| (t.as_str(), *p))))
            .await;
        pages += 1;
        let mut count = 0;
        for t in &r.topics {
            let topic = t.name.as_ref().unwrap().0.to_string();
            if topic == "missing" {
                assert_eq!(
                    t.error_code, 3,
                    "an unknown topic is UNKNOWN_TOPIC_OR_PARTITION"
                );
                continue;
            }
            assert_eq!(t.error_code, 0);
            assert!(!t.topic_id.is_nil());
            for p in &t.partitions {
                assert_eq!(p.leader_id.0, 0);
                assert!(p.offline_replicas.is_empty());
                seen.push((topic.clone(), p.partition_index));
                count += 1;
            }
        }
        assert!(
            count <= 2,
            "page {pages} holds {count} partitions, the limit is 2"
        );
        match r.next_cursor {
            Some(c) => cursor = Some((c.topic_name.0.to_string(), c.partition_index)),
            None => break,
        }
        assert!(pages < 10, "the cursor does not move on: {cursor:?}");
    }
    assert_eq!(
        seen,
        vec![
            ("alpha".to_owned(), 0),
            ("alpha".to_owned(), 1),
            ("alpha".to_owned(), 2),
            ("beta".to_owned(), 0),
            ("beta".to_owned(), 1),
        ],
        "every partition once, topics in name order"
    );
    assert_eq!(pages, 3);
    broker.shutdown().await.unwrap();
}

/// Every advertised version of every API, with a simple request: the
/// broker answers and the answer decodes at that version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_every_advertised_version_when_called_should_answer_in_that_version() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), |_| {}).await;
    let mut conn = Conn::connect(broker.kafka_addr).await;
    create(&mut conn, "all", 1, 1).await;
    let id = conn.call(12, &metadata_req(Some(&["all"]))).await.topics[0].topic_id;
    let mut next_offset = 0;
    for v in 0..=13 {
        let r = conn.call(v, &metadata_req(Some(&["all"]))).await;
        assert_eq!(r.topics[0].error_code, 0, "Metadata v{v}");
        assert_eq!(r.brokers.len(), 1, "Metadata v{v}");
        if v >= 10 {
            assert_eq!(r.topics[0].topic_id, id);
        }
    }
    for v in 3..=13 {
        let mut req = produce_req("all", 0, batch(&["v"], None, Compression::None), -1);
        if v >= 13 {
            req.topic_data[0].name = TopicName::default();
            req.topic_data[0].topic_id = id;
        }
        let r = conn.call(v, &req).await;
        let p = &r.responses[0].partition_responses[0];
        assert_eq!(
            (p.error_code, p.base_offset),
            (0, next_offset),
            "Produce v{v}"
        );
        next_offset += 1;
    }
    for v in 4..=18 {
        let mut req = fetch_req("all", 0, 0, 0, -1);
        if v >= 13 {
            req.topics[0].topic = TopicName::default();
            req.topics[0].topic_id = id;
        }
        let r = conn.call(v, &req).await;
        let p = &r.responses[0].partitions[0];
        assert_eq!(p.error_code, 0, "Fetch v{v}");
        assert_eq!(
            records(p.records.as_ref().unwrap()).len() as i64,
            next_offset,
            "Fetch v{v}"
        );
    }
    for v in 1..=10 {
        let r = conn.call(v, &list_offsets_req("all", 0, -1)).await;
        let p = &r.topics[0].partitions[0];
        assert_eq!(
            (p.error_code, p.offset),
            (0, next_offset),
            "ListOffsets v{v}"
        );
    }
    for v in 2..=4 {
        let r = conn
            .call(
                v,
                &OffsetForLeaderEpochRequest::default().with_topics(vec![
                    OffsetForLeaderTopic::default()
                        .with_topic(name("all"))
                        .with_partitions(vec![
                            OffsetForLeaderPartition::default()
                                .with_partition(0)
                                .with_leader_epoch(0)
                                .with_current_leader_epoch(-1),
                        ]),
                ]),
            )
            .await;
        assert_eq!(
            r.topics[0].partitions[0].end_offset, next_offset,
            "OffsetForLeaderEpoch v{v}"
        );
    }
    for v in 0..=5 {
        let r = conn.call(v, &InitProducerIdRequest::default()).await;
        assert_eq!(r.error_code, 0, "InitProducerId v{v}");
    }
    for v in 2..=7 {
        let r = conn
            .call(v, &create_req(&format!("c{v}"), 1, 1, false))
            .await;
        assert_eq!(r.topics[0].error_code, 0, "CreateTopics v{v}");
    }
    for v in 0..=3 {
        let r = conn
            .call(
                v,
                &CreatePartitionsRequest::default().with_topics(vec![
                    CreatePartitionsTopic::default()
                        .with_name(name(&format!("c{}", v + 2)))
                        .with_count(2),
                ]),
            )
            .await;
        assert_eq!(r.results[0].error_code, 0, "CreatePartitions v{v}");
    }
    for v in 1..=4 {
        let r = conn
            .call(
                v,
                &DescribeConfigsRequest::default().with_resources(vec![
                    DescribeConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(StrBytes::from_static_str("all")),
                ]),
            )
            .await;
        assert_eq!(r.results[0].error_code, 0, "DescribeConfigs v{v}");
        assert!(!r.results[0].configs.is_empty());
    }
    for v in 0..=2 {
        let r = conn
            .call(
                v,
                &AlterConfigsRequest::default().with_resources(vec![
                    alter_configs_request::AlterConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(StrBytes::from_static_str("all"))
                        .with_configs(vec![
                            alter_configs_request::AlterableConfig::default()
                                .with_name(StrBytes::from_static_str("retention.ms"))
                                .with_value(Some(StrBytes::from_string(format!(
                                    "{}",
                                    60_000 + i32::from(v)
                                )))),
                        ]),
                ]),
            )
            .await;
        assert_eq!(r.responses[0].error_code, 0, "AlterConfigs v{v}");
    }
    for v in 0..=1 {
        let r = conn
            .call(
                v,
                &IncrementalAlterConfigsRequest::default().with_resources(vec![
                    incremental_alter_configs_request::AlterConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(StrBytes::from_static_str("all"))
                        .with_configs(vec![
                            incremental_alter_configs_request::AlterableConfig::default()
                                .with_name(StrBytes::from_static_str("retention.ms"))
                                .with_config_operation(0)
                                .with_value(Some(StrBytes::from_string(format!(
                                    "{}",
                                    70_000 + i32::from(v)
                                )))),
                        ]),
                ]),
            )
            .await;
        assert_eq!(r.responses[0].error_code, 0, "IncrementalAlterConfigs v{v}");
    }
    for v in 0..=2 {
        let r = conn
            .call(v, &DescribeClusterRequest::default().with_endpoint_type(1))
            .await;
        assert_eq!(
            (r.error_code, r.brokers.len()),
            (0, 1),
            "DescribeCluster v{v}"
        );
    }
    // A standalone broker has nothing to move: it lists no reassignment
    // and refuses moves and elections with INVALID_REQUEST.
    for v in 0..=1 {
        let r = conn.call(v, &reassign_req("c2", 0, Some(&[0]))).await;
        assert_eq!(r.error_code, 42, "AlterPartitionReassignments v{v}");
    }
    let r = conn
        .call(0, &ListPartitionReassignmentsRequest::default())
        .await;
    assert_eq!((r.error_code, r.topics.len()), (0, 0));
    for v in 0..=2 {
        let r = conn.call(v, &elect_req("c2", 0, 0)).await;
        let p = &r.replica_election_results[0].partition_result[0];
        assert_eq!(p.error_code, 42, "ElectLeaders v{v}");
    }
    for v in 1..=4 {
        let r = conn
            .call(v, &DescribeLogDirsRequest::default().with_topics(None))
            .await;
        assert_eq!(r.results.len(), 1, "DescribeLogDirs v{v}");
        assert!(
            r.results[0]
                .topics
                .iter()
                .any(|t| t.name.0.as_str() == "c2"),
            "DescribeLogDirs v{v} lists the local topics"
        );
    }
    for v in 1..=6 {
        let topic = format!("c{}", v + 1);
        let req = if v >= 6 {
            DeleteTopicsRequest::default().with_topics(vec![
                DeleteTopicState::default().with_name(Some(name(&topic))),
            ])
        } else {
            DeleteTopicsRequest::default().with_topic_names(vec![name(&topic)])
        };
        let r = conn.call(v, &req).await;
        assert_eq!(r.responses[0].error_code, 0, "DeleteTopics v{v}");
    }
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_oversized_or_garbage_frames_when_sent_should_close_only_that_connection() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), |c| c.kafka_max_request_bytes = 64 << 10).await;
    let mut healthy = Conn::connect(broker.kafka_addr).await;
    create(&mut healthy, "ok", 1, 1).await;

    let attacks: Vec<(&str, Vec<u8>)> = vec![
        ("oversized frame", (1i32 << 20).to_be_bytes().to_vec()),
        ("negative size", (-5i32).to_be_bytes().to_vec()),
        (
            "unknown api key",
            [
                &12i32.to_be_bytes()[..],
                &[0x7f, 0x00, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0],
            ]
            .concat(),
        ),
        (
            "unsupported produce version",
            [
                &10i32.to_be_bytes()[..],
                &[0, 0, 0, 1, 0, 0, 0, 1, 0xff, 0xff],
            ]
            .concat(),
        ),
        (
            "truncated header",
            [&3i32.to_be_bytes()[..], &[0, 3, 0]].concat(),
        ),
        // Produce v9: null transactional id, acks, timeout, then a topic
        // array announcing 4 topics and ending.
        (
            "body cut short",
            [
                &19i32.to_be_bytes()[..],
                &[0, 0, 0, 9, 0, 0, 0, 1, 0xff, 0xff, 0],
                &[0, 0, 1, 0, 0, 0x27, 0x10, 5],
            ]
            .concat(),
        ),
        (
            "huge array count",
            [
                &14i32.to_be_bytes()[..],
                &[0, 3, 0, 1, 0, 0, 0, 1, 0xff, 0xff],
                &[0x7f, 0xff, 0xff, 0xff],
            ]
            .concat(),
        ),
    ];
    for (what, bytes) in attacks {
        let mut bad = Conn::connect(broker.kafka_addr).await;
        // A valid request first: answered before the connection closes.
        let id = bad.send(3, &ApiVersionsRequest::default()).await;
        bad.send_raw(&bytes).await;
        let (got, _) = bad.recv_frame(0).await.expect("earlier request answered");
        assert_eq!(got, id, "{what}");
        assert!(bad.is_closed().await, "{what}: connection closed");
        // The other connection is unaffected.
        let (code, _) = produce(
            &mut healthy,
            "ok",
            0,
            batch(&[what], None, Compression::None),
            1,
        )
        .await;
        assert_eq!(code, 0, "after {what}");
    }
    let metrics = broker.metrics().encode();
    assert_eq!(
        common::metric_value(
            &metrics,
            "rill_kafka_connection_errors_total{reason=\"frame_too_large\"}"
        ),
        Some(1.0)
    );
    assert!(
        common::metric_value(
            &metrics,
            "rill_kafka_connection_errors_total{reason=\"malformed\"}"
        )
        .unwrap()
            >= 3.0
    );
    broker.shutdown().await.unwrap();
}

// ---------------------------------------------------------------------------
// Cluster: a controller and three brokers in this process.

/// Produces `values` (acks=all) to the leader behind `conn`, retrying
/// while it has not applied the metadata that makes it leader (errors
/// answered before anything is appended); returns the base offset.
async fn produce_at_leader(conn: &mut Conn, topic: &str, partition: i32, values: &[&str]) -> i64 {
    let deadline = tokio::time::Instant::now() + CONVERGE_TIMEOUT;
    loop {
        let (code, offset) = produce(
            conn,
            topic,
            partition,
            batch(values, None, Compression::None),
            -1,
        )
        .await;
        if code == 0 {
            return offset;
        }
        assert!(
            [3, 6, 19, 75].contains(&code),
            "unexpected produce error {code}"
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "the leader of {topic}-{partition} takes no writes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn reassign_req(
    topic: &str,
    partition: i32,
    replicas: Option<&[i32]>,
) -> AlterPartitionReassignmentsRequest {
    use alter_partition_reassignments_request::{ReassignablePartition, ReassignableTopic};
    AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(10_000)
        .with_allow_replication_factor_change(true)
        .with_topics(vec![
            ReassignableTopic::default()
                .with_name(name(topic))
                .with_partitions(vec![
                    ReassignablePartition::default()
                        .with_partition_index(partition)
                        .with_replicas(replicas.map(|r| r.iter().map(|b| BrokerId(*b)).collect())),
                ]),
        ])
}

/// ElectLeaders of `election_type` (0 preferred, 1 unclean) for one
/// partition.
fn elect_req(topic: &str, partition: i32, election_type: i8) -> ElectLeadersRequest {
    ElectLeadersRequest::default()
        .with_election_type(election_type)
        .with_timeout_ms(10_000)
        .with_topic_partitions(Some(vec![
            elect_leaders_request::TopicPartitions::default()
                .with_topic(name(topic))
                .with_partitions(vec![partition]),
        ]))
}

/// The error of the one partition of an AlterPartitionReassignments
/// answer.
fn reassign_error(r: &AlterPartitionReassignmentsResponse) -> i16 {
    assert_eq!(r.error_code, 0, "{:?}", r.error_message);
    r.responses[0].partitions[0].error_code
}

async fn start_controller(dir: &Path) -> rill_controller::ControllerHandle {
    let config =
        rill_controller::config::ServerConfig::ephemeral(dir.join("controller/metadata.json"));
    rill_controller::start(config)
        .await
        .expect("controller starts")
}

async fn start_member(dir: &Path, id: i32, controller: &str) -> BrokerHandle {
    common::start(&dir.join(format!("broker-{id}")), |c| {
        c.broker_id = id;
        c.controller_addr = vec![controller.to_owned()];
    })
    .await
}

/// Waits until Metadata through `conn` shows every partition of `topic`
/// led by one of `alive` with `isr` in-sync replicas.
async fn converge(
    conn: &mut Conn,
    topic: &str,
    alive: &[i32],
    isr: usize,
) -> metadata_response::MetadataResponseTopic {
    let deadline = tokio::time::Instant::now() + CONVERGE_TIMEOUT;
    loop {
        let mut md = conn.call(12, &metadata_req(Some(&[topic]))).await;
        let t = md.topics.remove(0);
        if t.error_code == 0
            && t.partitions
                .iter()
                .all(|p| alive.contains(&p.leader_id.0) && p.isr_nodes.len() == isr)
        {
            return t;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "cluster did not converge: {t:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_three_broker_cluster_when_the_leader_fails_over_should_redirect_clients_and_keep_idempotence()
 {
    let dir = tempfile::tempdir().unwrap();
    let controller = start_controller(dir.path()).await;
    let addr = controller.grpc_addr.to_string();
    let mut brokers = BTreeMap::new();
    for id in 0..3 {
        brokers.insert(id, start_member(dir.path(), id, &addr).await);
    }
    let mut any = Conn::connect(brokers[&0].kafka_addr).await;
    let mut req = create_req("rep", 1, 3, false);
    req.topics[0].configs = vec![
        CreatableTopicConfig::default()
            .with_name(StrBytes::from_static_str("min.insync.replicas"))
            .with_value(Some(StrBytes::from_static_str("2"))),
    ];
    let r = any.call(7, &req).await;
    assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);
    assert_eq!(
        any.call(7, &create_req("big", 1, 4, true)).await.topics[0].error_code,
        38,
        "RF above the brokers"
    );

    let t = converge(&mut any, "rep", &[0, 1, 2], 3).await;
    let p = &t.partitions[0];
    assert_eq!(p.replica_nodes.len(), 3);
    let md = any.call(12, &metadata_req(Some(&["rep"]))).await;
    let ports: BTreeMap<i32, i32> = md.brokers.iter().map(|b| (b.node_id.0, b.port)).collect();
    for (id, b) in &brokers {
        assert_eq!(
            ports.get(id),
            Some(&i32::from(b.kafka_addr.port())),
            "broker {id} advertised"
        );
    }
    let leader = p.leader_id.0;
    let epoch = p.leader_epoch;

    // acks=all at the leader; an idempotent batch too.
    let mut lead = Conn::connect(brokers[&leader].kafka_addr).await;
    let pid = lead
        .call(4, &InitProducerIdRequest::default())
        .await
        .producer_id
        .0;
    assert_eq!(
        produce(
            &mut lead,
            "rep",
            0,
            batch(&["a", "b"], None, Compression::Gzip),
            -1
        )
        .await,
        (0, 0)
    );
    let idem = batch(&["c"], Some((pid, 0, 0)), Compression::None);
    assert_eq!(produce(&mut lead, "rep", 0, idem.clone(), -1).await, (0, 2));
    assert_eq!(
        values(
            fetch(&mut lead, "rep", 0, 0, epoch)
                .await
                .records
                .as_ref()
                .unwrap(),
            0
        ),
        ["a", "b", "c"]
    );

    // A follower refuses and names the leader (v10+).
    let follower = *p
        .replica_nodes
        .iter()
        .map(|b| &b.0)
        .find(|b| **b != leader)
        .unwrap();
    let mut fol = Conn::connect(brokers[&follower].kafka_addr).await;
    let r = fol
        .call(
            10,
            &produce_req("rep", 0, batch(&["x"], None, Compression::None), -1),
        )
        .await;
    let pr = &r.responses[0].partition_responses[0];
    assert_eq!(pr.error_code, 6, "NOT_LEADER_OR_FOLLOWER");
    assert_eq!(
        (
            pr.current_leader.leader_id.0,
            pr.current_leader.leader_epoch
        ),
        (leader, epoch)
    );
    assert_eq!(
        r.node_endpoints[0].port,
        i32::from(brokers[&leader].kafka_addr.port())
    );
    assert_eq!(fetch(&mut fol, "rep", 0, 0, -1).await.error_code, 6);

    // The leader shuts down: Metadata from a survivor shows the new leader
    // with a newer epoch.
    drop(lead);
    brokers.remove(&leader).unwrap().shutdown().await.unwrap();
    let alive: Vec<i32> = (0..3).filter(|id| *id != leader).collect();
    let mut survivor = Conn::connect(brokers[&alive[0]].kafka_addr).await;
    let t = converge(&mut survivor, "rep", &alive, 2).await;
    let new_leader = t.partitions[0].leader_id.0;
    let new_epoch = t.partitions[0].leader_epoch;
    assert!(new_epoch > epoch, "epoch {new_epoch} after {epoch}");
    let deadline = tokio::time::Instant::now() + CONVERGE_TIMEOUT;
    loop {
        let listed: Vec<i32> = survivor
            .call(12, &metadata_req(None))
            .await
            .brokers
            .iter()
            .map(|b| b.node_id.0)
            .collect();
        if !listed.contains(&leader) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "a stopped broker is still advertised: {listed:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut lead = Conn::connect(brokers[&new_leader].kafka_addr).await;
    // The new leader applies the controller's decision shortly after the
    // metadata shows it (until then it answers NOT_LEADER_OR_FOLLOWER or
    // UNKNOWN_LEADER_EPOCH), and exposes what it inherited once its
    // follower confirmed it in the new epoch (the high watermark catches up).
    let deadline = tokio::time::Instant::now() + CONVERGE_TIMEOUT;
    let p = loop {
        let p = fetch(&mut lead, "rep", 0, 0, new_epoch).await;
        if p.error_code == 0 && p.high_watermark >= 3 {
            break p;
        }
        assert!(
            [0, 6, 75].contains(&p.error_code),
            "unexpected error {}",
            p.error_code
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "new leader not serving: error {}, high watermark {}",
            p.error_code,
            p.high_watermark
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(values(p.records.as_ref().unwrap(), 0), ["a", "b", "c"]);
    assert_eq!(
        fetch(&mut lead, "rep", 0, 0, epoch).await.error_code,
        74,
        "FENCED_LEADER_EPOCH"
    );

    // The producer retries the batch it wrote before the failover: the
    // new leader knows it (state rebuilt from its log).
    assert_eq!(produce(&mut lead, "rep", 0, idem, -1).await, (0, 2));
    assert_eq!(
        produce(
            &mut lead,
            "rep",
            0,
            batch(&["d"], Some((pid, 0, 1)), Compression::None),
            -1
        )
        .await,
        (0, 3)
    );
    assert_eq!(
        fetch(&mut lead, "rep", 0, 0, new_epoch)
            .await
            .high_watermark,
        4
    );
    // OffsetForLeaderEpoch: the old epoch ended where the new one began.
    let r = lead
        .call(
            4,
            &OffsetForLeaderEpochRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(vec![
                    OffsetForLeaderTopic::default()
                        .with_topic(name("rep"))
                        .with_partitions(vec![
                            OffsetForLeaderPartition::default()
                                .with_partition(0)
                                .with_current_leader_epoch(new_epoch)
                                .with_leader_epoch(epoch),
                        ]),
                ]),
        )
        .await;
    let e = &r.topics[0].partitions[0];
    assert_eq!((e.error_code, e.leader_epoch, e.end_offset), (0, epoch, 3));

    for (_, b) in brokers {
        b.shutdown().await.unwrap();
    }
    controller.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_three_broker_cluster_when_a_partition_is_reassigned_should_move_it_without_losing_acknowledged_records()
 {
    let dir = tempfile::tempdir().unwrap();
    let controller = start_controller(dir.path()).await;
    let addr = controller.grpc_addr.to_string();
    let mut brokers = BTreeMap::new();
    for id in 0..3 {
        brokers.insert(id, start_member(dir.path(), id, &addr).await);
    }
    let mut any = Conn::connect(brokers[&0].kafka_addr).await;
    let mut req = create_req("mv", 1, 2, false);
    req.topics[0].configs = vec![
        CreatableTopicConfig::default()
            .with_name(StrBytes::from_static_str("min.insync.replicas"))
            .with_value(Some(StrBytes::from_static_str("2"))),
    ];
    let r = any.call(7, &req).await;
    assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);
    let t = converge(&mut any, "mv", &[0, 1, 2], 2).await;
    let p = &t.partitions[0];
    let before: Vec<i32> = p.replica_nodes.iter().map(|b| b.0).collect();
    let leader = p.leader_id.0;
    assert_eq!(before[0], leader, "the preferred replica leads at first");
    let other = before[1];
    let fresh = (0..3)
        .find(|b| !before.contains(b))
        .expect("a third broker");

    let mut lead = Conn::connect(brokers[&leader].kafka_addr).await;
    assert_eq!(produce_at_leader(&mut lead, "mv", 0, &["a", "b"]).await, 0);

    // Refusals, per partition, as Kafka.
    let r = any.call(0, &reassign_req("mv", 0, None)).await;
    assert_eq!(reassign_error(&r), 85, "NO_REASSIGNMENT_IN_PROGRESS");
    let r = any
        .call(0, &reassign_req("mv", 0, Some(&[fresh, fresh])))
        .await;
    assert_eq!(reassign_error(&r), 39, "INVALID_REPLICA_ASSIGNMENT");
    let r = any.call(0, &reassign_req("mv", 0, Some(&[fresh]))).await;
    assert_eq!(
        reassign_error(&r),
        39,
        "below min.insync.replicas: INVALID_REPLICA_ASSIGNMENT"
    );
    let r = any.call(0, &reassign_req("nope", 0, Some(&[0, 1]))).await;
    assert_eq!(reassign_error(&r), 3, "UNKNOWN_TOPIC_OR_PARTITION");
    let r = any.call(1, &elect_req("mv", 0, 1)).await;
    assert_eq!(r.error_code, 42, "unclean elections are refused");
    let r = any.call(1, &elect_req("mv", 0, 0)).await;
    assert_eq!(
        r.replica_election_results[0].partition_result[0].error_code, 84,
        "ELECTION_NOT_NEEDED"
    );

    // Move the leader's replica to the third broker; the other stays.
    let target = [fresh, other];
    let r = any.call(0, &reassign_req("mv", 0, Some(&target))).await;
    assert_eq!(reassign_error(&r), 0);
    let deadline = tokio::time::Instant::now() + CONVERGE_TIMEOUT;
    loop {
        let r = any
            .call(0, &ListPartitionReassignmentsRequest::default())
            .await;
        assert_eq!(r.error_code, 0);
        if r.topics.is_empty() {
            break;
        }
        let p = &r.topics[0].partitions[0];
        assert_eq!(
            p.replicas.iter().map(|b| b.0).collect::<Vec<_>>(),
            vec![fresh, other, leader],
            "the target, then the replica being removed"
        );
        assert_eq!(p.adding_replicas, vec![BrokerId(fresh)]);
        assert_eq!(p.removing_replicas, vec![BrokerId(leader)]);
        assert!(
            tokio::time::Instant::now() < deadline,
            "the move did not finish: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let t = converge(&mut any, "mv", &[fresh, other], 2).await;
    let p = &t.partitions[0];
    assert_eq!(
        p.replica_nodes.iter().map(|b| b.0).collect::<Vec<_>>(),
        target.to_vec()
    );
    assert_ne!(p.leader_id.0, leader, "leadership left the removed replica");
    let (new_leader, epoch) = (p.leader_id.0, p.leader_epoch);

    // Every acknowledged record is at the new leader, which takes writes.
    let mut lead = Conn::connect(brokers[&new_leader].kafka_addr).await;
    let deadline = tokio::time::Instant::now() + CONVERGE_TIMEOUT;
    loop {
        let (code, offset) = produce(
            &mut lead,
            "mv",
            0,
            batch(&["c"], None, Compression::None),
            -1,
        )
        .await;
        if code == 0 {
            assert_eq!(offset, 2);
            break;
        }
        assert!(
            [6, 19, 75].contains(&code),
            "unexpected produce error {code}"
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "new leader not taking writes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let p = fetch(&mut lead, "mv", 0, 0, epoch).await;
    assert_eq!(values(p.records.as_ref().unwrap(), 0), ["a", "b", "c"]);

    // The preferred replica leads after the move, so an election is not
    // needed; all-partition elections report nothing to do.
    let r = any.call(2, &elect_req("mv", 0, 0)).await;
    let pr = &r.replica_election_results[0].partition_result[0];
    assert!(
        [0, 84].contains(&pr.error_code),
        "preferred election: {pr:?}"
    );

    for (_, b) in brokers {
        b.shutdown().await.unwrap();
    }
    controller.shutdown().await.unwrap();
}

/// Longest the automatic balance may take in the test below (its check
/// runs every `BALANCE_INTERVAL_MS`).
const BALANCE_TIMEOUT: Duration = Duration::from_secs(60);
const BALANCE_INTERVAL_MS: u64 = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_broker_added_to_a_cluster_when_the_balance_runs_should_even_replica_and_leader_counts_and_keep_every_record()
 {
    let dir = tempfile::tempdir().unwrap();
    let mut config = rill_controller::config::ServerConfig::ephemeral(
        dir.path().join("controller/metadata.json"),
    );
    config.balance_interval_ms = BALANCE_INTERVAL_MS;
    let controller = rill_controller::start(config)
        .await
        .expect("controller starts");
    let addr = controller.grpc_addr.to_string();
    let mut brokers = BTreeMap::new();
    for id in 0..3 {
        brokers.insert(id, start_member(dir.path(), id, &addr).await);
    }
    let mut any = Conn::connect(brokers[&0].kafka_addr).await;
    create(&mut any, "bal", 6, 2).await;
    let t = converge(&mut any, "bal", &[0, 1, 2], 2).await;
    for p in &t.partitions {
        let mut lead = Conn::connect(brokers[&p.leader_id.0].kafka_addr).await;
        let value = format!("p{}", p.partition_index);
        assert_eq!(
            produce_at_leader(&mut lead, "bal", p.partition_index, &[&value]).await,
            0
        );
    }

    brokers.insert(3, start_member(dir.path(), 3, &addr).await);
    let deadline = tokio::time::Instant::now() + BALANCE_TIMEOUT;
    let t = loop {
        let mut md = any.call(12, &metadata_req(Some(&["bal"]))).await;
        let t = md.topics.remove(0);
        let mut replicas: BTreeMap<i32, usize> = BTreeMap::new();
        let mut leaders: BTreeMap<i32, usize> = BTreeMap::new();
        for p in &t.partitions {
            for r in &p.replica_nodes {
                *replicas.entry(r.0).or_default() += 1;
            }
            *leaders.entry(p.leader_id.0).or_default() += 1;
        }
        let spread = |m: &BTreeMap<i32, usize>| {
            m.len() == 4 && m.values().max().unwrap_or(&0) - m.values().min().unwrap_or(&0) <= 1
        };
        let settled = t.partitions.iter().all(|p| {
            p.replica_nodes.len() == 2
                && p.isr_nodes.len() == 2
                && p.replica_nodes.first() == Some(&p.leader_id)
        });
        let listed = any
            .call(0, &ListPartitionReassignmentsRequest::default())
            .await;
        if spread(&replicas) && spread(&leaders) && settled && listed.topics.is_empty() {
            break t;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not balanced: replicas {replicas:?}, leaders {leaders:?}, {t:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    // Every partition's record is at its (possibly new) leader.
    for p in &t.partitions {
        let mut lead = Conn::connect(brokers[&p.leader_id.0].kafka_addr).await;
        let deadline = tokio::time::Instant::now() + CONVERGE_TIMEOUT;
        let got = loop {
            let mut r = lead
                .call(
                    12,
                    &fetch_req("bal", p.partition_index, 0, 0, p.leader_epoch),
                )
                .await;
            let d = r.responses.remove(0).partitions.remove(0);
            if d.error_code == 0 && d.high_watermark >= 1 {
                break values(d.records.as_ref().unwrap(), 0);
            }
            assert!(
                [0, 6, 75].contains(&d.error_code),
                "unexpected error {}",
                d.error_code
            );
            assert!(
                tokio::time::Instant::now() < deadline,
                "leader of bal-{} not serving",
                p.partition_index
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(got, [format!("p{}", p.partition_index)]);
    }

    for (_, b) in brokers {
        b.shutdown().await.unwrap();
    }
    controller.shutdown().await.unwrap();
}

/// Bytes per second of the reassignment throttle in the test below.
const THROTTLE_RATE: u64 = 100_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_throttle_when_a_replica_is_added_should_catch_up_no_faster_than_the_rate() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = rill_controller::config::ServerConfig::ephemeral(
        dir.path().join("controller/metadata.json"),
    );
    config.auto_balance = false;
    let controller = rill_controller::start(config)
        .await
        .expect("controller starts");
    let addr = controller.grpc_addr.to_string();
    let mut brokers = BTreeMap::new();
    for id in 0..2 {
        let handle = common::start(&dir.path().join(format!("broker-{id}")), |c| {
            c.broker_id = id;
            c.controller_addr = vec![addr.clone()];
            c.reassignment_throttle_bytes_per_sec = THROTTLE_RATE;
        })
        .await;
        brokers.insert(id, handle);
    }
    let mut any = Conn::connect(brokers[&0].kafka_addr).await;
    create(&mut any, "thr", 1, 1).await;
    let t = converge(&mut any, "thr", &[0, 1], 1).await;
    let leader = t.partitions[0].leader_id.0;
    let other = 1 - leader;
    let mut lead = Conn::connect(brokers[&leader].kafka_addr).await;
    let value = "x".repeat(1000);
    let values: Vec<&str> = (0..50).map(|_| value.as_str()).collect();
    let batches = 12;
    for i in 0..batches {
        assert_eq!(
            produce_at_leader(&mut lead, "thr", 0, &values).await,
            i * 50
        );
    }
    let bytes = batches as u64 * 50 * 1000;

    let started = Instant::now();
    let r = any
        .call(0, &reassign_req("thr", 0, Some(&[leader, other])))
        .await;
    assert_eq!(reassign_error(&r), 0);
    let deadline = tokio::time::Instant::now() + CONVERGE_TIMEOUT;
    loop {
        let r = any
            .call(0, &ListPartitionReassignmentsRequest::default())
            .await;
        if r.topics.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the added replica did not catch up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = started.elapsed();
    // One second of burst, then the rate.
    let least =
        Duration::from_secs_f64((bytes - THROTTLE_RATE) as f64 / THROTTLE_RATE as f64 * 0.8);
    assert!(
        took >= least,
        "{bytes} bytes caught up in {took:?} at {THROTTLE_RATE} B/s (at least {least:?})"
    );
    let (_, body) = common::http_get(brokers[&other].http_addr, "/metrics").await;
    let throttled: u64 = body
        .lines()
        .find_map(|l| l.strip_prefix("rill_replication_throttled_bytes_total "))
        .and_then(|v| v.trim().parse().ok())
        .expect("the throttled bytes metric");
    assert!(
        throttled >= bytes,
        "{throttled} throttled bytes counted for {bytes} bytes of records"
    );
    let t = converge(&mut any, "thr", &[0, 1], 2).await;
    assert_eq!(t.partitions[0].replica_nodes.len(), 2);

    for (_, b) in brokers {
        b.shutdown().await.unwrap();
    }
    controller.shutdown().await.unwrap();
}

/// A fetch of `partitions` (offset each) in session (`id`, `epoch`),
/// forgetting `forget`; v12, by name, no wait.
fn session_fetch(
    topic: &str,
    id: i32,
    epoch: i32,
    partitions: &[(i32, i64)],
    forget: &[i32],
) -> FetchRequest {
    let mut r = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_session_id(id)
        .with_session_epoch(epoch);
    if !partitions.is_empty() {
        r.topics = vec![
            FetchTopic::default()
                .with_topic(name(topic))
                .with_partitions(
                    partitions
                        .iter()
                        .map(|(p, offset)| {
                            FetchPartition::default()
                                .with_partition(*p)
                                .with_fetch_offset(*offset)
                                .with_current_leader_epoch(-1)
                                .with_partition_max_bytes(1 << 20)
                        })
                        .collect(),
                ),
        ];
    }
    if !forget.is_empty() {
        r.forgotten_topics_data = vec![
            kafka_protocol::messages::fetch_request::ForgottenTopic::default()
                .with_topic(name(topic))
                .with_partitions(forget.to_vec()),
        ];
    }
    r
}

/// The (partition, record values) an answer carries, in order.
fn answered(r: &FetchResponse) -> Vec<(i32, Vec<String>)> {
    r.responses
        .iter()
        .flat_map(|t| &t.partitions)
        .map(|p| (p.partition_index, values(p.records.as_ref().unwrap(), 0)))
        .collect()
}

/// Incremental fetch sessions (KIP-227): a full fetch with epoch 0 opens
/// one; later fetches name only what changed and get only partitions with
/// news; wrong epochs, unknown and closed sessions are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_fetch_session_when_fetching_incrementally_should_answer_only_partitions_with_news()
{
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), |_| {}).await;
    let mut conn = Conn::connect(broker.kafka_addr).await;
    create(&mut conn, "s", 3, 1).await;
    produce(
        &mut conn,
        "s",
        0,
        batch(&["a", "b"], None, Compression::None),
        -1,
    )
    .await;

    let full = conn
        .call(
            12,
            &session_fetch("s", 0, 0, &[(0, 0), (1, 0), (2, 0)], &[]),
        )
        .await;
    assert_eq!(full.error_code, 0);
    let id = full.session_id;
    assert_ne!(id, 0, "a session was opened");
    assert_eq!(
        answered(&full),
        [(0, vec!["a".into(), "b".into()]), (1, vec![]), (2, vec![])]
    );

    // The client moved partition 0 on; nothing else changed.
    let r = conn
        .call(12, &session_fetch("s", id, 1, &[(0, 2)], &[]))
        .await;
    assert_eq!((r.error_code, r.session_id), (0, id));
    assert_eq!(answered(&r), []);

    // A record lands in partition 1: only it is answered.
    produce(
        &mut conn,
        "s",
        1,
        batch(&["c"], None, Compression::None),
        -1,
    )
    .await;
    let r = conn.call(12, &session_fetch("s", id, 2, &[], &[])).await;
    assert_eq!(answered(&r), [(1, vec!["c".into()])]);

    // The same epoch again is refused.
    let r = conn.call(12, &session_fetch("s", id, 2, &[], &[])).await;
    assert_eq!(r.error_code, 71, "INVALID_FETCH_SESSION_EPOCH");

    // Partition 1 is forgotten: its news no longer come.
    let r = conn.call(12, &session_fetch("s", id, 3, &[], &[1])).await;
    assert_eq!(answered(&r), [], "{r:?}");
    produce(
        &mut conn,
        "s",
        1,
        batch(&["d"], None, Compression::None),
        -1,
    )
    .await;
    produce(
        &mut conn,
        "s",
        2,
        batch(&["e"], None, Compression::None),
        -1,
    )
    .await;
    let r = conn.call(12, &session_fetch("s", id, 4, &[], &[])).await;
    assert_eq!(answered(&r), [(2, vec!["e".into()])]);

    // Closing it (epoch -1) is a sessionless full fetch; then it is gone.
    let r = conn
        .call(12, &session_fetch("s", id, -1, &[(0, 2)], &[]))
        .await;
    assert_eq!((r.error_code, r.session_id), (0, 0));
    let r = conn.call(12, &session_fetch("s", id, 5, &[], &[])).await;
    assert_eq!(r.error_code, 70, "FETCH_SESSION_ID_NOT_FOUND");
    let r = conn.call(12, &session_fetch("s", 0, 3, &[], &[])).await;
    assert_eq!(r.error_code, 71, "an epoch without a session");
}

fn delete_records_req(topic: &str, partition: i32, offset: i64) -> DeleteRecordsRequest {
    use kafka_protocol::messages::delete_records_request::{
        DeleteRecordsPartition, DeleteRecordsTopic,
    };
    DeleteRecordsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![
            DeleteRecordsTopic::default()
                .with_name(name(topic))
                .with_partitions(vec![
                    DeleteRecordsPartition::default()
                        .with_partition_index(partition)
                        .with_offset(offset),
                ]),
        ])
}

/// DeleteRecords (KIP-107) on three brokers: the leader's log start moves,
/// the answer comes once every in-sync replica deleted the records too (the
/// low watermark), reads below are refused, ListOffsets earliest follows,
/// and a follower that becomes leader starts there as well.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_replicated_partition_when_records_are_deleted_should_move_the_log_start_on_every_replica()
 {
    let dir = tempfile::tempdir().unwrap();
    let controller = start_controller(dir.path()).await;
    let addr = controller.grpc_addr.to_string();
    let mut brokers = BTreeMap::new();
    for id in 0..3 {
        brokers.insert(id, start_member(dir.path(), id, &addr).await);
    }
    let mut any = Conn::connect(brokers[&0].kafka_addr).await;
    create(&mut any, "del", 1, 3).await;
    let t = converge(&mut any, "del", &[0, 1, 2], 3).await;
    let leader = t.partitions[0].leader_id.0;
    let mut lead = Conn::connect(brokers[&leader].kafka_addr).await;
    for v in ["a", "b", "c", "d", "e"] {
        produce(
            &mut lead,
            "del",
            0,
            batch(&[v], None, Compression::None),
            -1,
        )
        .await;
    }
    let delete = |r: &DeleteRecordsResponse| {
        let p = &r.topics[0].partitions[0];
        (p.error_code, p.low_watermark)
    };
    // Above the high watermark: OFFSET_OUT_OF_RANGE.
    assert_eq!(
        delete(&lead.call(2, &delete_records_req("del", 0, 6)).await).0,
        1
    );
    // Not the leader: NOT_LEADER_OR_FOLLOWER.
    let follower = (0..3).find(|b| *b != leader).unwrap();
    let mut fol = Conn::connect(brokers[&follower].kafka_addr).await;
    assert_eq!(
        delete(&fol.call(2, &delete_records_req("del", 0, 3)).await).0,
        6
    );
    // The low watermark is reached on every in-sync replica.
    assert_eq!(
        delete(&lead.call(2, &delete_records_req("del", 0, 3)).await),
        (0, 3)
    );
    let earliest = lead.call(7, &list_offsets_req("del", 0, -2)).await;
    assert_eq!(earliest.topics[0].partitions[0].offset, 3);
    let r = lead.call(12, &fetch_req("del", 0, 1, 0, -1)).await;
    assert_eq!(
        r.responses[0].partitions[0].error_code, 1,
        "below the log start"
    );
    assert_eq!(
        values(&fetch(&mut lead, "del", 0, 3, -1).await.records.unwrap(), 3),
        ["d", "e"]
    );
    // -1: up to the high watermark.
    assert_eq!(
        delete(&lead.call(2, &delete_records_req("del", 0, -1)).await),
        (0, 5)
    );

    // The leader goes: the new one has deleted the records too.
    drop(lead);
    brokers.remove(&leader).unwrap().shutdown().await.unwrap();
    let alive: Vec<i32> = (0..3).filter(|id| *id != leader).collect();
    let mut survivor = Conn::connect(brokers[&alive[0]].kafka_addr).await;
    let t = converge(&mut survivor, "del", &alive, 2).await;
    let mut lead = Conn::connect(brokers[&t.partitions[0].leader_id.0].kafka_addr).await;
    let deadline = tokio::time::Instant::now() + CONVERGE_TIMEOUT;
    loop {
        let r = lead.call(7, &list_offsets_req("del", 0, -2)).await;
        let p = &r.topics[0].partitions[0];
        if p.error_code == 0 {
            assert_eq!(
                p.offset, 5,
                "the new leader's log starts where the old one's did"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no leader: {}",
            p.error_code
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_request_byte_budget_spent_by_one_frame_then_another_connection_waits_until_it_is_answered()
 {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = start(dir.path(), |c| {
        c.kafka_queued_request_bytes = 1 << 20;
    })
    .await;
    let mut admin = Conn::connect(broker.kafka_addr).await;
    create(&mut admin, "budget", 1, 1).await;
    let frame = |id: i32, kib: usize| {
        let value = "v".repeat(kib << 10);
        let data = batch(&[value.as_str()], None, Compression::None);
        kafka_client::request_frame(9, id, &produce_req("budget", 0, data, 1))
    };
    // A announces 700 KiB and sends only half of it: the broker has
    // reserved 700 KiB of the 1 MiB budget while it waits for the rest.
    let mut a = Conn::connect(broker.kafka_addr).await;
    let a_frame = frame(1, 700);
    let half = a_frame.len() / 2;
    a.send_raw(&a_frame[..half]).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    // B's 600 KiB do not fit next to it: B's frame is not read.
    let mut b = Conn::connect(broker.kafka_addr).await;
    b.send_raw(&frame(1, 600)).await;
    let metrics = |body: &str| {
        (
            common::metric_value(body, "rill_kafka_request_memory_waits_total"),
            common::metric_value(body, "rill_kafka_request_memory_bytes"),
        )
    };
    let deadline = Instant::now() + CONVERGE_TIMEOUT;
    loop {
        let (_, body) = common::http_get(broker.http_addr, "/metrics").await;
        if metrics(&body).0 >= Some(1.0) {
            break;
        }
        assert!(Instant::now() < deadline, "B never waited for the budget");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let early = tokio::time::timeout(Duration::from_millis(300), b.recv_frame(1)).await;
    assert!(early.is_err(), "B is answered only after A");
    // A completes: both are served, and every byte goes back.
    a.send_raw(&a_frame[half..]).await;
    for conn in [&mut a, &mut b] {
        let r = conn.recv::<ProduceRequest>(9, 1).await;
        let p = &r.responses[0].partition_responses[0];
        assert_eq!(p.error_code, 0, "{:?}", p.error_message);
    }
    let (_, body) = common::http_get(broker.http_addr, "/metrics").await;
    assert_eq!(metrics(&body), (Some(1.0), Some(0.0)));
    broker.shutdown().await.expect("clean shutdown");
}
