//! Topic config changes over the Kafka protocol (AlterConfigs,
//! IncrementalAlterConfigs), spoken over real TCP sockets with requests
//! encoded by the `kafka-protocol` crate.
//!
//! Pins, on a standalone broker: `validate_only` changes nothing; SET,
//! DELETE (back to the default) and APPEND on a list key change the
//! topic's overrides, which DescribeConfigs then reports with source
//! DYNAMIC_TOPIC_CONFIG; an unknown key or a bad value is INVALID_CONFIG,
//! an unknown topic UNKNOWN_TOPIC_OR_PARTITION, APPEND on a non-list key
//! and broker resources INVALID_REQUEST with a message saying why; the
//! legacy AlterConfigs replaces every override; a new `max.message.bytes`
//! applies to the next produce and survives a restart. In a controller +
//! 3 broker cluster: a change made through one broker is described by
//! every broker within [`VISIBLE_TIMEOUT`] and enforced by the leader's
//! log, and a rule that needs the topic (`min.insync.replicas` above the
//! replication factor) is INVALID_CONFIG from the controller.

mod common;
mod kafka_client;

use std::path::Path;
use std::time::Duration;

use kafka_client::{Conn, batch};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;

/// The target of the issue: a change is visible on every broker within 10 s.
const VISIBLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest the cluster may take to agree on leaders and ISRs.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(30);

/// Kafka error codes used here.
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const MESSAGE_TOO_LARGE: i16 = 10;
const INVALID_CONFIG: i16 = 40;
const INVALID_REQUEST: i16 = 42;

/// Config sources (Kafka's `ConfigSource`).
const DYNAMIC_TOPIC_CONFIG: i8 = 1;
const DEFAULT_CONFIG: i8 = 5;

const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

fn incremental(
    resource_type: i8,
    name: &str,
    ops: &[(&str, i8, Option<&str>)],
    validate_only: bool,
) -> IncrementalAlterConfigsRequest {
    IncrementalAlterConfigsRequest::default()
        .with_validate_only(validate_only)
        .with_resources(vec![
            incremental_alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(s(name))
                .with_configs(
                    ops.iter()
                        .map(|(k, op, v)| {
                            incremental_alter_configs_request::AlterableConfig::default()
                                .with_name(s(k))
                                .with_config_operation(*op)
                                .with_value(v.map(s))
                        })
                        .collect(),
                ),
        ])
}

/// IncrementalAlterConfigs on topic `name`: (error code, message).
async fn alter(
    conn: &mut Conn,
    name: &str,
    ops: &[(&str, i8, Option<&str>)],
    validate_only: bool,
) -> (i16, Option<String>) {
    let r = conn
        .call(1, &incremental(2, name, ops, validate_only))
        .await;
    let r = &r.responses[0];
    (
        r.error_code,
        r.error_message.as_ref().map(|m| m.to_string()),
    )
}

/// DescribeConfigs of one key of topic `name`: (value, source).
async fn describe(conn: &mut Conn, name: &str, key: &str) -> (String, i8) {
    match try_describe(conn, name, key).await {
        Ok(found) => found,
        Err(message) => panic!("DescribeConfigs of {name}: {message}"),
    }
}

/// DescribeConfigs of one key of topic `name`: (value, source), or the
/// error (a broker whose metadata does not show the topic yet).
async fn try_describe(conn: &mut Conn, name: &str, key: &str) -> Result<(String, i8), String> {
    let r = conn
        .call(
            4,
            &DescribeConfigsRequest::default().with_resources(vec![
                DescribeConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(s(name))
                    .with_configuration_keys(Some(vec![s(key)])),
            ]),
        )
        .await;
    let result = &r.results[0];
    if result.error_code != 0 {
        return Err(format!(
            "error {}: {:?}",
            result.error_code, result.error_message
        ));
    }
    let entry = result.configs.first().expect("the key is described");
    Ok((
        entry
            .value
            .as_ref()
            .map(|v| v.to_string())
            .unwrap_or_default(),
        entry.config_source,
    ))
}

async fn create(conn: &mut Conn, topic: &str, rf: i16) {
    let r = conn
        .call(
            7,
            &CreateTopicsRequest::default()
                .with_timeout_ms(10_000)
                .with_topics(vec![
                    CreatableTopic::default()
                        .with_name(TopicName(s(topic)))
                        .with_num_partitions(1)
                        .with_replication_factor(rf),
                ]),
        )
        .await;
    assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);
}

/// Produces one batch with a record of `size` bytes; returns the error code.
async fn produce_sized(conn: &mut Conn, topic: &str, size: usize) -> i16 {
    let value = "x".repeat(size);
    let request = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(s(topic)))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(batch(&[&value], None, Compression::None))),
                ]),
        ]);
    conn.call(9, &request).await.responses[0].partition_responses[0].error_code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_standalone_broker_when_topic_configs_are_altered_should_follow_kafka_and_persist()
{
    let dir = tempfile::tempdir().unwrap();
    let broker = common::start(dir.path(), |_| {}).await;
    let mut conn = Conn::connect(broker.kafka_addr).await;
    create(&mut conn, "orders", 1).await;

    // validate_only: checked, nothing changes.
    let r = alter(
        &mut conn,
        "orders",
        &[("retention.ms", SET, Some("60000"))],
        true,
    )
    .await;
    assert_eq!(r.0, 0, "{r:?}");
    assert_eq!(
        describe(&mut conn, "orders", "retention.ms").await.1,
        DEFAULT_CONFIG
    );

    let r = alter(
        &mut conn,
        "orders",
        &[("retention.ms", SET, Some("60000"))],
        false,
    )
    .await;
    assert_eq!(r.0, 0, "{r:?}");
    assert_eq!(
        describe(&mut conn, "orders", "retention.ms").await,
        ("60000".to_owned(), DYNAMIC_TOPIC_CONFIG)
    );

    // APPEND on a list key works on the effective value.
    let r = alter(
        &mut conn,
        "orders",
        &[("cleanup.policy", APPEND, Some("compact"))],
        false,
    )
    .await;
    assert_eq!(r.0, 0, "{r:?}");
    let (policy, source) = describe(&mut conn, "orders", "cleanup.policy").await;
    assert_eq!(
        (policy.as_str(), source),
        ("compact,delete", DYNAMIC_TOPIC_CONFIG)
    );

    // Refusals leave the topic as it was.
    for (ops, code, says) in [
        (
            vec![("no.such.key", SET, Some("1"))],
            INVALID_CONFIG,
            "no.such.key",
        ),
        (
            vec![("retention.ms", SET, Some("soon"))],
            INVALID_CONFIG,
            "retention.ms",
        ),
        (
            vec![("retention.ms", APPEND, Some("1"))],
            INVALID_REQUEST,
            "list",
        ),
    ] {
        let (got, message) = alter(&mut conn, "orders", &ops, false).await;
        assert_eq!(got, code, "{ops:?}: {message:?}");
        assert!(
            message.as_deref().unwrap_or_default().contains(says),
            "{message:?}"
        );
    }
    assert_eq!(
        describe(&mut conn, "orders", "retention.ms").await.0,
        "60000"
    );
    let (got, _) = alter(
        &mut conn,
        "nope",
        &[("retention.ms", SET, Some("1"))],
        false,
    )
    .await;
    assert_eq!(got, UNKNOWN_TOPIC_OR_PARTITION);
    let r = conn
        .call(
            1,
            &incremental(4, "0", &[("log.retention.ms", SET, Some("1"))], false),
        )
        .await;
    assert_eq!(r.responses[0].error_code, INVALID_REQUEST);
    let message = r.responses[0]
        .error_message
        .as_ref()
        .expect("a message")
        .to_string();
    assert!(message.contains("spec.config"), "{message}");

    // DELETE: back to the default.
    let r = alter(
        &mut conn,
        "orders",
        &[("retention.ms", DELETE, None)],
        false,
    )
    .await;
    assert_eq!(r.0, 0, "{r:?}");
    assert_eq!(
        describe(&mut conn, "orders", "retention.ms").await.1,
        DEFAULT_CONFIG
    );

    // Legacy AlterConfigs replaces every override.
    let legacy = AlterConfigsRequest::default().with_resources(vec![
        alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s("orders"))
            .with_configs(vec![
                alter_configs_request::AlterableConfig::default()
                    .with_name(s("max.message.bytes"))
                    .with_value(Some(s("1000"))),
            ]),
    ]);
    let r = conn.call(2, &legacy).await;
    assert_eq!(
        r.responses[0].error_code, 0,
        "{:?}",
        r.responses[0].error_message
    );
    assert_eq!(
        describe(&mut conn, "orders", "cleanup.policy").await.1,
        DEFAULT_CONFIG
    );
    // The log applies it to the next produce.
    assert_eq!(
        produce_sized(&mut conn, "orders", 2000).await,
        MESSAGE_TOO_LARGE
    );
    assert_eq!(produce_sized(&mut conn, "orders", 100).await, 0);

    // And it survives a restart.
    drop(conn);
    broker.shutdown().await.unwrap();
    let broker = common::start(dir.path(), |_| {}).await;
    let mut conn = Conn::connect(broker.kafka_addr).await;
    assert_eq!(
        describe(&mut conn, "orders", "max.message.bytes").await,
        ("1000".to_owned(), DYNAMIC_TOPIC_CONFIG)
    );
    assert_eq!(
        produce_sized(&mut conn, "orders", 2000).await,
        MESSAGE_TOO_LARGE
    );
    broker.shutdown().await.unwrap();
}

async fn start_member(dir: &Path, id: i32, controller: &str) -> rill_broker::BrokerHandle {
    common::start(&dir.join(format!("broker-{id}")), |c| {
        c.broker_id = id;
        c.controller_addr = vec![controller.to_owned()];
    })
    .await
}

/// The leader of partition 0 of `topic` once all three replicas are in sync.
async fn leader_when_converged(conn: &mut Conn, topic: &str) -> i32 {
    let deadline = tokio::time::Instant::now() + CONVERGE_TIMEOUT;
    loop {
        let md = conn
            .call(
                12,
                &MetadataRequest::default().with_topics(Some(vec![
                    MetadataRequestTopic::default().with_name(Some(TopicName(s(topic)))),
                ])),
            )
            .await;
        let t = &md.topics[0];
        if t.error_code == 0
            && t.partitions
                .first()
                .is_some_and(|p| p.leader_id.0 >= 0 && p.isr_nodes.len() == 3)
        {
            return t.partitions[0].leader_id.0;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no convergence: {t:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_cluster_when_a_topic_config_is_altered_through_one_broker_should_reach_every_broker()
 {
    let dir = tempfile::tempdir().unwrap();
    let config = rill_controller::config::ServerConfig::ephemeral(
        dir.path().join("controller/metadata.json"),
    );
    let controller = rill_controller::start(config)
        .await
        .expect("controller starts");
    let addr = controller.grpc_addr.to_string();
    let mut brokers = Vec::new();
    for id in 0..3 {
        brokers.push(start_member(dir.path(), id, &addr).await);
    }
    let mut first = Conn::connect(brokers[0].kafka_addr).await;
    create(&mut first, "events", 3).await;
    let leader = leader_when_converged(&mut first, "events").await;

    let (code, message) = alter(
        &mut first,
        "events",
        &[("min.insync.replicas", SET, Some("4"))],
        false,
    )
    .await;
    assert_eq!(code, INVALID_CONFIG, "{message:?}");
    let (code, message) = alter(
        &mut first,
        "events",
        &[
            ("retention.ms", SET, Some("3600000")),
            ("max.message.bytes", SET, Some("1000")),
        ],
        false,
    )
    .await;
    assert_eq!(code, 0, "{message:?}");

    for (id, b) in brokers.iter().enumerate() {
        let mut conn = Conn::connect(b.kafka_addr).await;
        let deadline = tokio::time::Instant::now() + VISIBLE_TIMEOUT;
        loop {
            // Before its metadata shows the change, a broker may not know
            // the topic yet either: both mean "not yet".
            let seen = try_describe(&mut conn, "events", "retention.ms").await;
            if seen == Ok(("3600000".to_owned(), DYNAMIC_TOPIC_CONFIG)) {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "broker {id} still describes {seen:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // The leader's log enforces the new limit.
    let mut lead = Conn::connect(brokers[leader as usize].kafka_addr).await;
    let deadline = tokio::time::Instant::now() + VISIBLE_TIMEOUT;
    while produce_sized(&mut lead, "events", 2000).await != MESSAGE_TOO_LARGE {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the leader still takes batches above the new max.message.bytes"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop((first, lead));
    for b in brokers {
        b.shutdown().await.unwrap();
    }
    controller.shutdown().await.unwrap();
}
