//! SASL on the Kafka listener over real TCP: a broker started with
//! `--kafka-sasl-mechanisms` and a credentials file refuses requests before
//! authentication, authenticates PLAIN and SCRAM logins, refuses wrong
//! passwords with SASL_AUTHENTICATION_FAILED and closes the connection,
//! and makes an expired session re-authenticate (KIP-368).

mod common;
mod kafka_client;

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use kafka_client::Conn;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use rill_broker::BrokerHandle;
use rill_broker::security::SaslMechanism;
use rill_proto::scram::{Credential, Mechanism};

const AUTH_FAILED: i16 = 58;

fn credentials_file(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("credentials");
    let mut text = String::new();
    for (user, password) in [("alice", "alice-secret"), ("bob", "bob-secret")] {
        for mechanism in Mechanism::ALL {
            let c = Credential::generate(mechanism, password.as_bytes(), 4096).unwrap();
            text.push_str(&format!("{user} {mechanism} {}\n", c.to_text()));
        }
    }
    std::fs::write(&path, text).unwrap();
    path
}

async fn start(dir: &Path, reauth_ms: u64) -> BrokerHandle {
    let credentials = credentials_file(dir);
    common::start(&dir.join("data"), |c| {
        c.kafka_sasl_mechanisms = vec![
            SaslMechanism::Scram(Mechanism::Sha512),
            SaslMechanism::Scram(Mechanism::Sha256),
            SaslMechanism::Plain,
        ];
        c.sasl_credentials_file = Some(credentials);
        c.connections_max_reauth_ms = reauth_ms;
    })
    .await
}

async fn handshake(conn: &mut Conn, mechanism: &'static str) -> SaslHandshakeResponse {
    conn.call(
        1,
        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism)),
    )
    .await
}

async fn authenticate(conn: &mut Conn, bytes: Vec<u8>) -> SaslAuthenticateResponse {
    conn.call(
        2,
        &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(bytes)),
    )
    .await
}

async fn plain(conn: &mut Conn, user: &str, password: &str) -> SaslAuthenticateResponse {
    assert_eq!(handshake(conn, "PLAIN").await.error_code, 0);
    authenticate(conn, format!("\0{user}\0{password}").into_bytes()).await
}

/// A SCRAM login computed the way a Kafka client does it.
async fn scram(conn: &mut Conn, mechanism: Mechanism, user: &str, password: &str) -> i16 {
    assert_eq!(handshake(conn, mechanism.name()).await.error_code, 0);
    let client_first_bare = format!("n={user},r=fyko+d2lbbFgONRv9qkxdawL");
    let first = authenticate(conn, format!("n,,{client_first_bare}").into_bytes()).await;
    assert_eq!(first.error_code, 0);
    let server_first = String::from_utf8(first.auth_bytes.to_vec()).unwrap();
    let fields: std::collections::HashMap<&str, &str> = server_first
        .split(',')
        .filter_map(|f| f.split_once('='))
        .collect();
    let salt = BASE64.decode(fields["s"]).unwrap();
    let iterations = fields["i"].parse().unwrap();
    let salted = mechanism.salted_password(password.as_bytes(), &salt, iterations);
    let client_key = mechanism.hmac(&salted, b"Client Key");
    let stored_key = mechanism.hash(&client_key);
    let without_proof = format!("c=biws,r={}", fields["r"]);
    let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
    let signature = mechanism.hmac(&stored_key, auth_message.as_bytes());
    let proof: Vec<u8> = client_key
        .iter()
        .zip(&signature)
        .map(|(a, b)| a ^ b)
        .collect();
    let last = authenticate(
        conn,
        format!("{without_proof},p={}", BASE64.encode(proof)).into_bytes(),
    )
    .await;
    if last.error_code == 0 {
        let server_key = mechanism.hmac(&salted, b"Server Key");
        let expected = mechanism.hmac(&server_key, auth_message.as_bytes());
        assert_eq!(
            &last.auth_bytes[..],
            format!("v={}", BASE64.encode(expected)).as_bytes(),
            "the server proves it knows the credential"
        );
    }
    last.error_code
}

fn metadata() -> MetadataRequest {
    MetadataRequest::default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_sasl_listener_when_a_client_asks_before_authenticating_then_only_api_versions_is_answered()
 {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), 0).await;
    let mut conn = Conn::connect(broker.kafka_addr).await;
    let versions = conn.call(3, &ApiVersionsRequest::default()).await;
    assert!(
        versions
            .api_keys
            .iter()
            .any(|k| k.api_key == ApiKey::SaslHandshake as i16 && k.max_version == 1)
    );
    conn.send(12, &metadata()).await;
    assert!(
        conn.is_closed().await,
        "Metadata before SASL closes the connection"
    );
    let mut conn = Conn::connect(broker.kafka_addr).await;
    let answer = handshake(&mut conn, "GSSAPI").await;
    assert_eq!(answer.error_code, 33, "UNSUPPORTED_SASL_MECHANISM");
    let offered: Vec<&str> = answer.mechanisms.iter().map(|m| m.as_str()).collect();
    assert_eq!(offered, ["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]);
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_valid_credentials_when_logging_in_with_each_mechanism_then_requests_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), 0).await;
    for mechanism in Mechanism::ALL {
        let mut conn = Conn::connect(broker.kafka_addr).await;
        assert_eq!(
            scram(&mut conn, mechanism, "alice", "alice-secret").await,
            0
        );
        let md = conn.call(12, &metadata()).await;
        assert_eq!(md.brokers.len(), 1, "{mechanism}: served after login");
    }
    let mut conn = Conn::connect(broker.kafka_addr).await;
    let answer = plain(&mut conn, "bob", "bob-secret").await;
    assert_eq!((answer.error_code, answer.session_lifetime_ms), (0, 0));
    assert_eq!(conn.call(12, &metadata()).await.brokers.len(), 1);
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_wrong_credentials_when_logging_in_then_the_answer_is_authentication_failed_and_the_connection_closes()
 {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), 0).await;
    let mut messages = Vec::new();
    for (user, password) in [("alice", "wrong"), ("nobody", "alice-secret")] {
        let mut conn = Conn::connect(broker.kafka_addr).await;
        assert_eq!(
            scram(&mut conn, Mechanism::Sha512, user, password).await,
            AUTH_FAILED
        );
        assert!(conn.is_closed().await, "{user}: closed after the failure");
        let mut conn = Conn::connect(broker.kafka_addr).await;
        let answer = plain(&mut conn, user, password).await;
        assert_eq!(answer.error_code, AUTH_FAILED);
        messages.push(answer.error_message.map(|m| m.to_string()));
        assert!(conn.is_closed().await);
    }
    assert_eq!(
        messages[0], messages[1],
        "a wrong password and an unknown user look alike"
    );
    let metrics = broker.metrics().encode();
    assert!(
        metrics
            .contains(r#"rill_kafka_authentications_total{mechanism="PLAIN",result="failure"} 2"#),
        "{metrics}"
    );
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_session_lifetime_when_it_expires_then_the_client_must_reauthenticate_as_itself() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), 1500).await;
    let mut conn = Conn::connect(broker.kafka_addr).await;
    let answer = plain(&mut conn, "alice", "alice-secret").await;
    assert_eq!((answer.error_code, answer.session_lifetime_ms), (0, 1500));
    // Re-authentication before expiry, on the same connection.
    assert_eq!(
        plain(&mut conn, "alice", "alice-secret").await.error_code,
        0
    );
    assert_eq!(conn.call(12, &metadata()).await.brokers.len(), 1);
    // Another user on the same connection is refused.
    assert_eq!(
        plain(&mut conn, "bob", "bob-secret").await.error_code,
        AUTH_FAILED
    );
    assert!(conn.is_closed().await);
    // A session left to expire: the next request closes the connection.
    let mut conn = Conn::connect(broker.kafka_addr).await;
    assert_eq!(
        plain(&mut conn, "alice", "alice-secret").await.error_code,
        0
    );
    tokio::time::sleep(Duration::from_millis(1700)).await;
    conn.send(12, &metadata()).await;
    assert!(
        conn.is_closed().await,
        "a request after expiry closes the connection"
    );
    broker.shutdown().await.unwrap();
}
