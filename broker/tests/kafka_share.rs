//! Share groups (KIP-932) over the Kafka protocol in a 3-broker cluster:
//! records acquired by one member and acknowledged in part, then the
//! partition's leader goes away and then the group's coordinator. The new
//! leader carries on from the stored state: accepted records never come
//! back, the rest come back with their delivery count moved on, and the
//! start offset survives both failovers.
//!
//! The Java share consumer against a whole cluster is `compat/
//! test_share_groups.sh`; this test is the failover the compat run does
//! not do.

mod common;
mod kafka_client;

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_protocol::messages::share_acknowledge_request::{
    AcknowledgePartition, AcknowledgeTopic, AcknowledgementBatch as AckBatch,
};
use kafka_protocol::messages::share_fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;
use rill_broker::BrokerHandle;
use rill_proto::client::CreateTopicRequest;
use uuid::Uuid;

use kafka_client::Conn;

const GROUP: &str = "workers";
const TOPIC: &str = "jobs";
const RECORDS: usize = 10;
/// Longest the cluster may take to move a leader or a coordinator.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(50);
const ACCEPT: i8 = 1;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

async fn start_broker(dir: &std::path::Path, id: i32, controller: &str) -> BrokerHandle {
    common::start(&dir.join(format!("broker-{id}")), |c| {
        c.broker_id = id;
        c.controller_addr = vec![controller.to_owned()];
        c.offsets_topic_partitions = 3;
    })
    .await
}

/// The group's coordinator among `alive`, asked through `via` until one
/// answers: (broker id, Kafka address).
async fn coordinator(brokers: &BTreeMap<i32, BrokerHandle>) -> i32 {
    let deadline = tokio::time::Instant::now() + CONVERGE_TIMEOUT;
    let via = brokers.values().next().expect("a broker").kafka_addr;
    let mut conn = Conn::connect(via).await;
    loop {
        let r = conn
            .call(
                4,
                &FindCoordinatorRequest::default().with_coordinator_keys(vec![s(GROUP)]),
            )
            .await;
        let c = &r.coordinators[0];
        if c.error_code == 0 && brokers.contains_key(&c.node_id.0) {
            return c.node_id.0;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no coordinator: {c:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// The leader of the topic's partition among `brokers`, and the topic id.
async fn leader(brokers: &BTreeMap<i32, BrokerHandle>) -> (i32, Uuid) {
    let deadline = tokio::time::Instant::now() + CONVERGE_TIMEOUT;
    loop {
        for b in brokers.values() {
            let mut conn = Conn::connect(b.kafka_addr).await;
            let md = conn
                .call(
                    12,
                    &MetadataRequest::default().with_topics(Some(vec![
                        metadata_request::MetadataRequestTopic::default()
                            .with_name(Some(TopicName(s(TOPIC)))),
                    ])),
                )
                .await;
            let t = &md.topics[0];
            if let Some(p) = t.partitions.first()
                && brokers.contains_key(&p.leader_id.0)
            {
                return (p.leader_id.0, t.topic_id);
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no leader for {TOPIC}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Joins `member` (epoch 0), retrying while the coordinator moves.
async fn join(brokers: &BTreeMap<i32, BrokerHandle>, member: &str) {
    let deadline = tokio::time::Instant::now() + CONVERGE_TIMEOUT;
    loop {
        let c = coordinator(brokers).await;
        let mut conn = Conn::connect(brokers[&c].kafka_addr).await;
        let r = conn
            .call(
                1,
                &ShareGroupHeartbeatRequest::default()
                    .with_group_id(GroupId(s(GROUP)))
                    .with_member_id(s(member))
                    .with_member_epoch(0)
                    .with_subscribed_topic_names(Some(vec![TopicName(s(TOPIC))])),
            )
            .await;
        if r.error_code == 0 {
            assert!(r.member_epoch > 0, "{r:?}");
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{member} cannot join: {r:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// ShareFetch from a new session at the leader until records come:
/// (offset, delivery count) of each acquired record, and the session's
/// next epoch.
async fn acquire(conn: &mut Conn, member: &str, topic_id: Uuid) -> (Vec<(i64, i16)>, i32) {
    let deadline = tokio::time::Instant::now() + CONVERGE_TIMEOUT;
    let mut epoch = 0;
    loop {
        let r = conn
            .call(
                1,
                &ShareFetchRequest::default()
                    .with_group_id(Some(GroupId(s(GROUP))))
                    .with_member_id(Some(s(member)))
                    .with_share_session_epoch(epoch)
                    .with_max_wait_ms(500)
                    .with_min_bytes(1)
                    .with_max_bytes(1 << 20)
                    .with_max_records(100)
                    .with_batch_size(100)
                    .with_topics(if epoch == 0 {
                        vec![
                            FetchTopic::default()
                                .with_topic_id(topic_id)
                                .with_partitions(vec![
                                    FetchPartition::default().with_partition_index(0),
                                ]),
                        ]
                    } else {
                        Vec::new()
                    }),
            )
            .await;
        assert_eq!(r.error_code, 0, "{r:?}");
        epoch += 1;
        let acquired: Vec<(i64, i16)> = r
            .responses
            .iter()
            .flat_map(|t| &t.partitions)
            .inspect(|p| assert!(p.error_code == 0 || p.error_code == 6, "{p:?}"))
            .flat_map(|p| &p.acquired_records)
            .flat_map(|a| (a.first_offset..=a.last_offset).map(move |o| (o, a.delivery_count)))
            .collect();
        if !acquired.is_empty() {
            return (acquired, epoch);
        }
        assert!(tokio::time::Instant::now() < deadline, "nothing acquired");
    }
}

/// DescribeShareGroupOffsets at the coordinator: the start offset.
async fn start_offset(brokers: &BTreeMap<i32, BrokerHandle>, when: &str) -> i64 {
    let deadline = tokio::time::Instant::now() + CONVERGE_TIMEOUT;
    loop {
        let c = coordinator(brokers).await;
        let mut conn = Conn::connect(brokers[&c].kafka_addr).await;
        let r = conn
            .call(
                1,
                &DescribeShareGroupOffsetsRequest::default().with_groups(vec![
                    describe_share_group_offsets_request::DescribeShareGroupOffsetsRequestGroup::default()
                        .with_group_id(GroupId(s(GROUP)))
                        .with_topics(None),
                ]),
            )
            .await;
        let g = &r.groups[0];
        if g.error_code == 0 && !g.topics.is_empty() {
            return g.topics[0].partitions[0].start_offset;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no offsets {when} at broker {c}: {g:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn given_acknowledged_and_held_records_when_the_leader_and_the_coordinator_go_away_should_carry_on_from_the_stored_state()
 {
    let dir = tempfile::tempdir().unwrap();
    let controller = rill_controller::start(rill_controller::config::ServerConfig::ephemeral(
        dir.path().join("controller/metadata.json"),
    ))
    .await
    .expect("controller starts");
    let addr = controller.grpc_addr.to_string();
    let mut brokers = BTreeMap::new();
    for id in 0..3 {
        brokers.insert(id, start_broker(dir.path(), id, &addr).await);
    }
    let mut admin = common::connect(&brokers[&0]).await;
    admin
        .create_topic(CreateTopicRequest {
            name: TOPIC.into(),
            partitions: 1,
            replication_factor: 3,
            config: Default::default(),
        })
        .await
        .expect("topic created");
    let (first_leader, topic_id) = leader(&brokers).await;
    let values: Vec<String> = (0..RECORDS).map(|i| format!("job-{i}")).collect();
    let values: Vec<&str> = values.iter().map(String::as_str).collect();
    let mut conn = Conn::connect(brokers[&first_leader].kafka_addr).await;
    let r = conn
        .call(
            9,
            &ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(10_000)
                .with_topic_data(vec![
                    produce_request::TopicProduceData::default()
                        .with_name(TopicName(s(TOPIC)))
                        .with_partition_data(vec![
                            produce_request::PartitionProduceData::default()
                                .with_index(0)
                                .with_records(Some(kafka_client::batch(
                                    &values,
                                    None,
                                    Compression::None,
                                ))),
                        ]),
                ]),
        )
        .await;
    assert_eq!(r.responses[0].partition_responses[0].error_code, 0, "{r:?}");

    // The group starts at the earliest record; one member acquires all 10
    // and accepts the first 5.
    let c = coordinator(&brokers).await;
    let mut conn = Conn::connect(brokers[&c].kafka_addr).await;
    let r = conn
        .call(
            1,
            &IncrementalAlterConfigsRequest::default().with_resources(vec![
                incremental_alter_configs_request::AlterConfigsResource::default()
                    .with_resource_type(32)
                    .with_resource_name(s(GROUP))
                    .with_configs(vec![
                        incremental_alter_configs_request::AlterableConfig::default()
                            .with_name(s("share.auto.offset.reset"))
                            .with_config_operation(0)
                            .with_value(Some(s("earliest"))),
                    ]),
            ]),
        )
        .await;
    assert_eq!(r.responses[0].error_code, 0, "{r:?}");
    join(&brokers, "m-1").await;
    let mut conn = Conn::connect(brokers[&first_leader].kafka_addr).await;
    let (got, epoch) = acquire(&mut conn, "m-1", topic_id).await;
    assert_eq!(
        got,
        (0..RECORDS as i64).map(|o| (o, 1)).collect::<Vec<_>>(),
        "every record, delivered once"
    );
    let r = conn
        .call(
            1,
            &ShareAcknowledgeRequest::default()
                .with_group_id(Some(GroupId(s(GROUP))))
                .with_member_id(Some(s("m-1")))
                .with_share_session_epoch(epoch)
                .with_topics(vec![
                    AcknowledgeTopic::default()
                        .with_topic_id(topic_id)
                        .with_partitions(vec![
                            AcknowledgePartition::default()
                                .with_partition_index(0)
                                .with_acknowledgement_batches(vec![
                                    AckBatch::default()
                                        .with_first_offset(0)
                                        .with_last_offset(4)
                                        .with_acknowledge_types(vec![ACCEPT]),
                                ]),
                        ]),
                ]),
        )
        .await;
    assert_eq!(r.error_code, 0, "{r:?}");
    assert_eq!(r.responses[0].partitions[0].error_code, 0, "{r:?}");
    assert_eq!(start_offset(&brokers, "after the acknowledgement").await, 5);

    // The partition's leader goes away: the new one has the stored state.
    brokers
        .remove(&first_leader)
        .unwrap()
        .shutdown()
        .await
        .expect("clean shutdown");
    let (second_leader, _) = leader(&brokers).await;
    assert_ne!(second_leader, first_leader);
    join(&brokers, "m-2").await;
    let mut conn = Conn::connect(brokers[&second_leader].kafka_addr).await;
    let (got, _) = acquire(&mut conn, "m-2", topic_id).await;
    assert_eq!(
        got,
        (5..RECORDS as i64).map(|o| (o, 2)).collect::<Vec<_>>(),
        "the 5 accepted records never come back; the others do, delivered a second time"
    );
    assert_eq!(start_offset(&brokers, "after the leader moved").await, 5);

    // Then the group's coordinator goes away (unless it went already):
    // the start offset is still 5 at the next one.
    let c = coordinator(&brokers).await;
    if brokers.len() > 1 && c != second_leader {
        brokers
            .remove(&c)
            .unwrap()
            .shutdown()
            .await
            .expect("clean shutdown");
        assert_eq!(
            start_offset(&brokers, "after the coordinator moved").await,
            5
        );
    }
    for (_, b) in brokers {
        b.shutdown().await.expect("clean shutdown");
    }
}
