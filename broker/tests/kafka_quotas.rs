//! Client quotas over real TCP on a standalone broker: AlterClientQuotas
//! sets and checks quotas as Kafka does (INVALID_REQUEST for a bad key or
//! value, UNSUPPORTED_VERSION for an unknown entity type in a describe,
//! `validate_only` changes nothing), DescribeClientQuotas reads them back,
//! and a client over its quota gets `throttle_time_ms` in its answer and a
//! connection that reads nothing more until the throttle has passed. With
//! authorization on, only a principal with ALTER_CONFIGS / DESCRIBE_CONFIGS
//! on the cluster may change or read quotas, and a user quota applies to
//! that user's (authenticated) requests.

mod common;
mod kafka_client;

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_client::{Conn, batch};
use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;
use rill_broker::BrokerHandle;
use rill_broker::security::SaslMechanism;
use rill_proto::scram::{Credential, Mechanism};

const INVALID_REQUEST: i16 = 42;
const UNSUPPORTED_VERSION: i16 = 35;
const CLUSTER_DENIED: i16 = 31;
/// The client id every request of the test client carries.
const CLIENT_ID: &str = "rill-test";
/// MATCH_TYPE_EXACT, MATCH_TYPE_SPECIFIED.
const EXACT: i8 = 0;
const SPECIFIED: i8 = 2;
/// What a throttled client's next answer may come early by: the throttle
/// is counted from when the quota was checked, just before the answer.
const MUTE_SLACK: Duration = Duration::from_millis(100);

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_owned())
}

fn entity(parts: &[(&str, Option<&str>)]) -> Vec<EntityData> {
    parts
        .iter()
        .map(|(t, n)| {
            EntityData::default()
                .with_entity_type(s(t))
                .with_entity_name(n.map(s))
        })
        .collect()
}

fn set(key: &str, value: f64) -> OpData {
    OpData::default().with_key(s(key)).with_value(value)
}

async fn alter(conn: &mut Conn, entries: Vec<EntryData>, validate_only: bool) -> Vec<i16> {
    let r = conn
        .call(
            1,
            &AlterClientQuotasRequest::default()
                .with_entries(entries)
                .with_validate_only(validate_only),
        )
        .await;
    r.entries.iter().map(|e| e.error_code).collect()
}

/// The quotas of the entities a filter selects: (entity, key=value list).
async fn describe(
    conn: &mut Conn,
    components: &[(&str, i8, Option<&str>)],
    strict: bool,
) -> (i16, Vec<(String, String)>) {
    let r = conn
        .call(
            1,
            &DescribeClientQuotasRequest::default()
                .with_components(
                    components
                        .iter()
                        .map(|(t, m, name)| {
                            ComponentData::default()
                                .with_entity_type(s(t))
                                .with_match_type(*m)
                                .with_match(name.map(s))
                        })
                        .collect(),
                )
                .with_strict(strict),
        )
        .await;
    let entries = r
        .entries
        .unwrap_or_default()
        .iter()
        .map(|e| {
            let who = e
                .entity
                .iter()
                .map(|c| {
                    format!(
                        "{}={}",
                        c.entity_type.as_str(),
                        c.entity_name.as_ref().map_or("<default>", |n| n.as_str())
                    )
                })
                .collect::<Vec<_>>()
                .join(",");
            let values = e
                .values
                .iter()
                .map(|v| format!("{}={}", v.key.as_str(), v.value))
                .collect::<Vec<_>>()
                .join(",");
            (who, values)
        })
        .collect();
    (r.error_code, entries)
}

async fn create_topic(conn: &mut Conn, topic: &str) {
    let r = conn
        .call(
            7,
            &CreateTopicsRequest::default()
                .with_timeout_ms(10_000)
                .with_topics(vec![
                    CreatableTopic::default()
                        .with_name(TopicName(s(topic)))
                        .with_num_partitions(1)
                        .with_replication_factor(1),
                ]),
        )
        .await;
    assert_eq!(r.topics[0].error_code, 0, "{topic} created");
}

/// A produce of `records` records of 1000 bytes each.
fn produce_request(topic: &str, records: usize) -> ProduceRequest {
    let value = "x".repeat(1000);
    let values: Vec<&str> = (0..records).map(|_| value.as_str()).collect();
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(s(topic)))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(batch(&values, None, Compression::None))),
                ]),
        ])
}

fn fetch_request(topic: &str) -> FetchRequest {
    FetchRequest::default()
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(8 << 20)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(TopicName(s(topic)))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(0)
                        .with_partition_max_bytes(8 << 20),
                ]),
        ])
}

fn fetched_bytes(r: &FetchResponse) -> usize {
    r.responses
        .iter()
        .flat_map(|t| &t.partitions)
        .filter_map(|p| p.records.as_ref().map(Bytes::len))
        .sum()
}

async fn metrics(broker: &BrokerHandle) -> String {
    let (status, body) = common::http_get(broker.http_addr, "/metrics").await;
    assert_eq!(status, 200);
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_client_id_quota_when_a_client_produces_and_fetches_over_it_then_it_is_throttled_as_in_kafka()
 {
    let dir = tempfile::tempdir().unwrap();
    let broker = common::start(&dir.path().join("data"), |_| {}).await;
    let mut admin = Conn::connect(broker.kafka_addr).await;
    // Data to fetch later: 30 batches of about 10 KB.
    create_topic(&mut admin, "fetched").await;
    for _ in 0..30 {
        let produced = admin.call(9, &produce_request("fetched", 10)).await;
        assert_eq!(produced.responses[0].partition_responses[0].error_code, 0);
    }

    // Kafka's checks: each bad entry is refused on its own.
    let client = entity(&[("client-id", Some(CLIENT_ID))]);
    let refused = alter(
        &mut admin,
        vec![
            EntryData::default()
                .with_entity(client.clone())
                .with_ops(vec![set("bytes_per_second", 1.0)]),
            EntryData::default()
                .with_entity(client.clone())
                .with_ops(vec![set("producer_byte_rate", 0.0)]),
            EntryData::default()
                .with_entity(client.clone())
                .with_ops(vec![set("consumer_byte_rate", 10.5)]),
            EntryData::default()
                .with_entity(entity(&[("group", Some("g"))]))
                .with_ops(vec![set("producer_byte_rate", 1.0)]),
            EntryData::default()
                .with_entity(entity(&[("user", Some("u"))]))
                .with_ops(vec![set("request_percentage", 50.0)]),
        ],
        false,
    )
    .await;
    assert_eq!(
        refused,
        [
            INVALID_REQUEST,
            INVALID_REQUEST,
            INVALID_REQUEST,
            INVALID_REQUEST,
            0
        ]
    );
    // validate_only changes nothing.
    let checked = alter(
        &mut admin,
        vec![
            EntryData::default()
                .with_entity(client.clone())
                .with_ops(vec![set("producer_byte_rate", 1.0)]),
        ],
        true,
    )
    .await;
    assert_eq!(checked, [0]);
    let (error, found) = describe(&mut admin, &[("client-id", SPECIFIED, None)], false).await;
    assert_eq!((error, found), (0, vec![]));
    let (error, _) = describe(&mut admin, &[("group", SPECIFIED, None)], false).await;
    assert_eq!(error, UNSUPPORTED_VERSION);

    // 10 000 bytes/s for this client id; read back exactly.
    let set_quota = alter(
        &mut admin,
        vec![
            EntryData::default()
                .with_entity(client.clone())
                .with_ops(vec![
                    set("producer_byte_rate", 10_000.0),
                    set("consumer_byte_rate", 10_000.0),
                ]),
        ],
        false,
    )
    .await;
    assert_eq!(set_quota, [0]);
    let (error, found) = describe(&mut admin, &[("client-id", EXACT, Some(CLIENT_ID))], true).await;
    assert_eq!(error, 0);
    assert_eq!(
        found,
        [(
            format!("client-id={CLIENT_ID}"),
            "producer_byte_rate=10000,consumer_byte_rate=10000".to_owned()
        )]
    );
    let (_, users) = describe(&mut admin, &[("user", SPECIFIED, None)], false).await;
    assert_eq!(
        users,
        [("user=u".to_owned(), "request_percentage=50".to_owned())]
    );
    drop(admin);

    // One produce of ~110 KB: 11 000 bytes/s over the 10 s the rate spans
    // at least, 10% over the quota: about 1 s of throttle.
    let mut producer = Conn::connect(broker.kafka_addr).await;
    create_topic(&mut producer, "quoted").await;
    let produced = producer.call(9, &produce_request("quoted", 110)).await;
    assert_eq!(produced.responses[0].partition_responses[0].error_code, 0);
    let throttle = Duration::from_millis(produced.throttle_time_ms as u64);
    let answered = Instant::now();
    assert!(
        (900..3000).contains(&produced.throttle_time_ms),
        "throttle_time_ms {}",
        produced.throttle_time_ms
    );
    // The connection reads nothing more until the throttle has passed.
    let _ = producer.call(3, &ApiVersionsRequest::default()).await;
    let waited = answered.elapsed();
    assert!(
        waited + MUTE_SLACK >= throttle,
        "answered after {waited:?}, throttle {throttle:?}"
    );
    // Under the quota: no throttle.
    let mut other = Conn::connect(broker.kafka_addr).await;
    let versions = other.call(3, &ApiVersionsRequest::default()).await;
    assert_eq!(versions.throttle_time_ms, 0);
    let text = metrics(&broker).await;
    assert!(
        common::metric_value(
            &text,
            "rill_kafka_throttled_requests_total{quota=\"produce\"}"
        )
        .is_some_and(|n| n >= 1.0),
        "{text}"
    );

    // Fetch: cut to what the quota allows at once (10 windows' worth,
    // 100 000 bytes of the 300 000 there are), so the first fetch is
    // within it; reading the same bytes again is not, and is answered
    // empty with a throttle.
    let mut consumer = Conn::connect(broker.kafka_addr).await;
    let first = consumer.call(12, &fetch_request("fetched")).await;
    assert_eq!(first.throttle_time_ms, 0);
    let got = fetched_bytes(&first);
    assert!((50_000..=100_000).contains(&got), "fetched {got} bytes");
    let again = consumer.call(12, &fetch_request("fetched")).await;
    assert!(again.throttle_time_ms > 0, "{}", again.throttle_time_ms);
    assert_eq!(
        fetched_bytes(&again),
        0,
        "a throttled fetch is answered empty"
    );
    let text = metrics(&broker).await;
    assert!(
        common::metric_value(
            &text,
            "rill_kafka_throttled_requests_total{quota=\"fetch\"}"
        )
        .is_some_and(|n| n >= 1.0),
        "{text}"
    );

    // Removing the quota lifts it for new requests.
    let mut admin = Conn::connect(broker.kafka_addr).await;
    let removed = alter(
        &mut admin,
        vec![
            EntryData::default()
                .with_entity(client.clone())
                .with_ops(vec![
                    OpData::default()
                        .with_key(s("producer_byte_rate"))
                        .with_remove(true),
                    OpData::default()
                        .with_key(s("consumer_byte_rate"))
                        .with_remove(true),
                ]),
        ],
        false,
    )
    .await;
    assert_eq!(removed, [0]);
    let (_, found) = describe(&mut admin, &[("client-id", SPECIFIED, None)], false).await;
    assert!(found.is_empty(), "{found:?}");
    let mut fresh = Conn::connect(broker.kafka_addr).await;
    let produced = fresh.call(9, &produce_request("quoted", 500)).await;
    assert_eq!(produced.throttle_time_ms, 0);

    // The quotas of a standalone broker survive its restart.
    drop((producer, consumer, other, admin, fresh));
    broker.shutdown().await.unwrap();
    let broker = common::start(&dir.path().join("data"), |_| {}).await;
    let mut admin = Conn::connect(broker.kafka_addr).await;
    let (_, users) = describe(&mut admin, &[("user", EXACT, Some("u"))], true).await;
    assert_eq!(
        users,
        [("user=u".to_owned(), "request_percentage=50".to_owned())]
    );
    broker.shutdown().await.unwrap();
}

async fn start_secured(dir: &Path) -> BrokerHandle {
    let credentials = dir.join("credentials");
    let mut text = String::new();
    for user in ["admin", "alice", "bob"] {
        let c =
            Credential::generate(Mechanism::Sha512, format!("{user}-pw").as_bytes(), 4096).unwrap();
        text.push_str(&format!("{user} SCRAM-SHA-512 {}\n", c.to_text()));
    }
    std::fs::write(&credentials, text).unwrap();
    common::start(&dir.join("data"), |c| {
        c.kafka_sasl_mechanisms = vec![SaslMechanism::Plain];
        c.sasl_credentials_file = Some(credentials);
        c.authorization = true;
        c.super_users = vec!["User:admin".into(), "User:alice".into(), "User:bob".into()];
    })
    .await
}

/// A connection logged in as `user` (SASL PLAIN).
async fn login(broker: &BrokerHandle, user: &str) -> Conn {
    let mut conn = Conn::connect(broker.kafka_addr).await;
    let hs = conn
        .call(
            1,
            &SaslHandshakeRequest::default().with_mechanism(s("PLAIN")),
        )
        .await;
    assert_eq!(hs.error_code, 0);
    let auth = conn
        .call(
            2,
            &SaslAuthenticateRequest::default()
                .with_auth_bytes(Bytes::from(format!("\0{user}\0{user}-pw"))),
        )
        .await;
    assert_eq!(auth.error_code, 0, "{user} logs in");
    conn
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_authorization_and_a_user_quota_when_users_act_then_only_admins_alter_and_only_that_user_is_throttled()
 {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_secured(dir.path()).await;
    let alice_quota = EntryData::default()
        .with_entity(entity(&[("user", Some("alice"))]))
        .with_ops(vec![set("producer_byte_rate", 10_000.0)]);
    let mut admin = login(&broker, "admin").await;
    assert_eq!(
        alter(&mut admin, vec![alice_quota.clone()], false).await,
        [0]
    );
    let (_, found) = describe(&mut admin, &[("user", EXACT, Some("alice"))], true).await;
    assert_eq!(
        found,
        [(
            "user=alice".to_owned(),
            "producer_byte_rate=10000".to_owned()
        )]
    );

    // alice's produce over her quota is throttled; bob's is not.
    let mut alice = login(&broker, "alice").await;
    create_topic(&mut alice, "users").await;
    let produced = alice.call(9, &produce_request("users", 110)).await;
    assert!(produced.throttle_time_ms > 0, "alice is throttled");
    let mut bob = login(&broker, "bob").await;
    let produced = bob.call(9, &produce_request("users", 110)).await;
    assert_eq!(produced.throttle_time_ms, 0, "bob has no quota");
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_authorization_when_a_principal_without_config_rights_asks_then_quota_requests_are_refused()
 {
    let dir = tempfile::tempdir().unwrap();
    let credentials = dir.path().join("credentials");
    let c = Credential::generate(Mechanism::Sha512, b"dave-pw", 4096).unwrap();
    std::fs::write(
        &credentials,
        format!("dave SCRAM-SHA-512 {}\n", c.to_text()),
    )
    .unwrap();
    let broker = common::start(&dir.path().join("data"), |c| {
        c.kafka_sasl_mechanisms = vec![SaslMechanism::Plain];
        c.sasl_credentials_file = Some(credentials);
        c.authorization = true;
    })
    .await;
    let mut dave = login(&broker, "dave").await;
    let refused = alter(
        &mut dave,
        vec![
            EntryData::default()
                .with_entity(entity(&[("user", Some("dave"))]))
                .with_ops(vec![set("producer_byte_rate", 1e9)]),
        ],
        false,
    )
    .await;
    assert_eq!(refused, [CLUSTER_DENIED]);
    let (error, found) = describe(&mut dave, &[], false).await;
    assert_eq!((error, found), (CLUSTER_DENIED, vec![]));
    broker.shutdown().await.unwrap();
}

/// Longest a quota change may take to reach every broker.
const PROPAGATION_TIMEOUT: Duration = Duration::from_secs(10);

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

/// Polls DescribeClientQuotas for the quotas of `user` on `broker` until
/// they are `want`.
async fn wait_for_user_quota(broker: &BrokerHandle, user: &str, want: &[(String, String)]) {
    let deadline = Instant::now() + PROPAGATION_TIMEOUT;
    let mut conn = Conn::connect(broker.kafka_addr).await;
    loop {
        let (error, found) = describe(&mut conn, &[("user", EXACT, Some(user))], true).await;
        assert_eq!(error, 0);
        if found == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "broker {} shows {found:?} for {user}, not {want:?}",
            broker.broker_id
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_cluster_when_a_quota_is_set_through_one_broker_then_every_broker_has_it_and_the_controller_keeps_it()
 {
    let dir = tempfile::tempdir().unwrap();
    let controller = start_controller(dir.path()).await;
    let addr = controller.grpc_addr.to_string();
    let b0 = start_member(dir.path(), 0, &addr).await;
    let b1 = start_member(dir.path(), 1, &addr).await;
    let mut conn = Conn::connect(b0.kafka_addr).await;
    let refused_and_set = alter(
        &mut conn,
        vec![
            EntryData::default()
                .with_entity(entity(&[("user", Some("erin"))]))
                .with_ops(vec![set("request_percentage", 25.0)]),
            EntryData::default()
                .with_entity(entity(&[("user", Some("erin"))]))
                .with_ops(vec![set("producer_byte_rate", 1.0)]),
            EntryData::default()
                .with_entity(entity(&[("user", Some("frank"))]))
                .with_ops(vec![set("consumer_byte_rate", 4096.0)]),
        ],
        false,
    )
    .await;
    assert_eq!(
        refused_and_set,
        [INVALID_REQUEST, INVALID_REQUEST, 0],
        "an entity named twice in one request is refused, as in Kafka"
    );
    let frank = [(
        "user=frank".to_owned(),
        "consumer_byte_rate=4096".to_owned(),
    )];
    wait_for_user_quota(&b0, "frank", &frank).await;
    wait_for_user_quota(&b1, "frank", &frank).await;
    wait_for_user_quota(&b1, "erin", &[]).await;
    drop(conn);
    for b in [b0, b1] {
        b.shutdown().await.expect("broker stops");
    }
    controller.shutdown().await.expect("controller stops");

    // A new controller reads them from its store and sends them on.
    let controller = start_controller(dir.path()).await;
    let b1 = start_member(dir.path(), 1, &controller.grpc_addr.to_string()).await;
    wait_for_user_quota(&b1, "frank", &frank).await;
    b1.shutdown().await.expect("broker stops");
    controller.shutdown().await.expect("controller stops");
}
