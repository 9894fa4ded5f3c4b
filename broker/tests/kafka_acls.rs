//! Authorization over real TCP: a standalone broker with `--authorization`,
//! SASL PLAIN and a super user. CreateAcls, DescribeAcls and DeleteAcls
//! change what the next request may do at once; requests without an ACL
//! get TOPIC_AUTHORIZATION_FAILED, GROUP_AUTHORIZATION_FAILED or
//! CLUSTER_AUTHORIZATION_FAILED, and Metadata hides topics a user may not
//! describe.

mod common;
mod kafka_client;

use std::path::Path;

use bytes::Bytes;
use kafka_client::{Conn, batch};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;
use rill_broker::BrokerHandle;
use rill_broker::security::SaslMechanism;
use rill_proto::scram::{Credential, Mechanism};

const TOPIC_DENIED: i16 = 29;
const GROUP_DENIED: i16 = 30;
const CLUSTER_DENIED: i16 = 31;
/// Kafka codes: resource types, pattern, operations, permission.
const TOPIC: i8 = 2;
const LITERAL: i8 = 3;
const WRITE: i8 = 4;
const ALLOW: i8 = 3;
const ANY: i8 = 1;

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_owned())
}

async fn start(dir: &Path) -> BrokerHandle {
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
        c.super_users = vec!["User:admin".into()];
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

async fn create_topic(conn: &mut Conn, topic: &str) -> i16 {
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
    r.topics[0].error_code
}

async fn produce(conn: &mut Conn, topic: &str) -> i16 {
    let r = conn
        .call(
            9,
            &ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(10_000)
                .with_topic_data(vec![
                    TopicProduceData::default()
                        .with_name(TopicName(s(topic)))
                        .with_partition_data(vec![
                            PartitionProduceData::default()
                                .with_index(0)
                                .with_records(Some(batch(&["v"], None, Compression::None))),
                        ]),
                ]),
        )
        .await;
    r.responses[0].partition_responses[0].error_code
}

fn allow_write(topic: &str, principal: &str) -> AclCreation {
    AclCreation::default()
        .with_resource_type(TOPIC)
        .with_resource_name(s(topic))
        .with_resource_pattern_type(LITERAL)
        .with_principal(s(principal))
        .with_host(s("*"))
        .with_operation(WRITE)
        .with_permission_type(ALLOW)
}

fn all_of(principal: &str) -> DeleteAclsFilter {
    DeleteAclsFilter::default()
        .with_resource_type_filter(ANY)
        .with_resource_name_filter(None)
        .with_pattern_type_filter(ANY)
        .with_principal_filter(Some(s(principal)))
        .with_host_filter(None)
        .with_operation(ANY)
        .with_permission_type(ANY)
}

async fn listed_topics(conn: &mut Conn) -> Vec<String> {
    let md = conn
        .call(12, &MetadataRequest::default().with_topics(None))
        .await;
    let mut names: Vec<String> = md
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_authorization_when_acls_are_added_and_removed_then_each_request_follows_them_at_once()
 {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut admin = login(&broker, "admin").await;
    let mut alice = login(&broker, "alice").await;
    let mut bob = login(&broker, "bob").await;

    // Without ACLs only the super user may act.
    assert_eq!(create_topic(&mut alice, "orders").await, TOPIC_DENIED);
    assert_eq!(create_topic(&mut admin, "orders").await, 0);
    assert_eq!(create_topic(&mut admin, "secret").await, 0);
    assert_eq!(produce(&mut alice, "orders").await, TOPIC_DENIED);
    assert!(
        listed_topics(&mut alice).await.is_empty(),
        "alice may describe no topic"
    );
    let described = alice
        .call(
            12,
            &MetadataRequest::default().with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(TopicName(s("secret")))),
            ])),
        )
        .await;
    assert_eq!(described.topics[0].error_code, TOPIC_DENIED);

    // An ACL added at run time applies to the next request.
    let created = alice
        .call(
            3,
            &CreateAclsRequest::default().with_creations(vec![allow_write("orders", "User:alice")]),
        )
        .await;
    assert_eq!(
        created.results[0].error_code, CLUSTER_DENIED,
        "only the super user alters ACLs"
    );
    let created = admin
        .call(
            3,
            &CreateAclsRequest::default().with_creations(vec![allow_write("orders", "User:alice")]),
        )
        .await;
    assert_eq!(created.results[0].error_code, 0);
    assert_eq!(produce(&mut alice, "orders").await, 0);
    assert_eq!(produce(&mut alice, "secret").await, TOPIC_DENIED);
    assert_eq!(produce(&mut bob, "orders").await, TOPIC_DENIED);
    assert_eq!(
        listed_topics(&mut alice).await,
        ["orders"],
        "WRITE implies DESCRIBE"
    );
    assert_eq!(listed_topics(&mut admin).await, ["orders", "secret"]);

    // Groups need READ on the group.
    let joined = alice
        .call(
            9,
            &JoinGroupRequest::default()
                .with_group_id(GroupId(s("g")))
                .with_session_timeout_ms(10_000)
                .with_rebalance_timeout_ms(10_000)
                .with_protocol_type(s("consumer"))
                .with_protocols(vec![
                    JoinGroupRequestProtocol::default()
                        .with_name(s("range"))
                        .with_metadata(Bytes::from_static(b"x")),
                ]),
        )
        .await;
    assert_eq!(joined.error_code, GROUP_DENIED);

    // DescribeAcls: the super user sees the ACL; alice may not look.
    let listed = admin
        .call(
            3,
            &DescribeAclsRequest::default()
                .with_resource_type_filter(ANY)
                .with_resource_name_filter(None)
                .with_pattern_type_filter(ANY)
                .with_principal_filter(None)
                .with_host_filter(None)
                .with_operation(ANY)
                .with_permission_type(ANY),
        )
        .await;
    assert_eq!(listed.error_code, 0);
    assert_eq!(listed.resources.len(), 1);
    assert_eq!(listed.resources[0].resource_name.as_str(), "orders");
    assert_eq!(listed.resources[0].acls[0].principal.as_str(), "User:alice");
    let refused = alice
        .call(
            3,
            &DescribeAclsRequest::default().with_resource_type_filter(ANY),
        )
        .await;
    assert_eq!(refused.error_code, CLUSTER_DENIED);

    // DeleteAcls: the permission is gone for the next request.
    let deleted = admin
        .call(
            3,
            &DeleteAclsRequest::default().with_filters(vec![all_of("User:alice")]),
        )
        .await;
    assert_eq!(deleted.filter_results[0].error_code, 0);
    assert_eq!(deleted.filter_results[0].matching_acls.len(), 1);
    assert_eq!(produce(&mut alice, "orders").await, TOPIC_DENIED);

    // The ACLs of a standalone broker survive its restart.
    let created = admin
        .call(
            3,
            &CreateAclsRequest::default().with_creations(vec![allow_write("orders", "User:bob")]),
        )
        .await;
    assert_eq!(created.results[0].error_code, 0);
    drop((admin, alice, bob));
    broker.shutdown().await.unwrap();
    let broker = start(dir.path()).await;
    let mut bob = login(&broker, "bob").await;
    assert_eq!(produce(&mut bob, "orders").await, 0);
    broker.shutdown().await.unwrap();
}
