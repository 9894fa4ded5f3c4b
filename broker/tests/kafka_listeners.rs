//! Named Kafka listeners (`--kafka-listener`) over real TCP: each port
//! serves its own security (a SCRAM listener offers only SCRAM, a plain one
//! needs no login), and Metadata and FindCoordinator answer with the
//! addresses of the listener the client came through.

mod common;
mod kafka_client;

use std::net::SocketAddr;
use std::time::Duration;

use kafka_client::Conn;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use rill_broker::config::listener::KafkaListener;
use rill_proto::scram::{Credential, Mechanism};

const UNSUPPORTED_SASL_MECHANISM: i16 = 33;

/// A port free right now on loopback.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn metadata_ports(md: &MetadataResponse) -> Vec<i32> {
    md.brokers.iter().map(|b| b.port).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_named_listeners_then_each_has_its_security_and_advertises_itself() {
    let dir = tempfile::tempdir().unwrap();
    let credentials = dir.path().join("credentials");
    let c = Credential::generate(Mechanism::Sha512, b"alice-secret", 4096).unwrap();
    std::fs::write(
        &credentials,
        format!("alice SCRAM-SHA-512 {}\n", c.to_text()),
    )
    .unwrap();
    let (internal, external, sasl) = (free_port(), free_port(), free_port());
    let listeners: Vec<KafkaListener> = [
        format!("name=internal,port={internal}"),
        format!("name=external,port={external},tls=false,auth=none"),
        format!("name=sasl,port={sasl},auth=scram"),
    ]
    .iter()
    .map(|s| s.parse().unwrap())
    .collect();
    let broker = common::start(&dir.path().join("data"), |c| {
        c.kafka_listeners = listeners;
        c.sasl_credentials_file = Some(credentials);
        c.advertised_host = Some("127.0.0.1".into());
    })
    .await;
    assert_eq!(
        broker.kafka_addr.port(),
        internal,
        "the first listener is the main one"
    );

    for port in [internal, external] {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut conn = Conn::connect(addr).await;
        let md = conn.call(12, &MetadataRequest::default()).await;
        assert_eq!(
            metadata_ports(&md),
            vec![port as i32],
            "Metadata via {port}"
        );
        // FindCoordinator answers with the same listener's address once the
        // offsets topic has a leader.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let r = conn
                .call(
                    4,
                    &FindCoordinatorRequest::default()
                        .with_coordinator_keys(vec![StrBytes::from_static_str("g")]),
                )
                .await;
            let c = &r.coordinators[0];
            if c.error_code == 0 {
                assert_eq!(c.port, port as i32, "FindCoordinator via {port}");
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no coordinator: {c:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // The SCRAM listener offers SCRAM only; the plain ones offer nothing.
    let mut conn = Conn::connect(SocketAddr::from(([127, 0, 0, 1], sasl))).await;
    let r = conn
        .call(
            1,
            &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
        )
        .await;
    assert_eq!(r.error_code, UNSUPPORTED_SASL_MECHANISM);
    let offered: Vec<String> = r.mechanisms.iter().map(|m| m.to_string()).collect();
    assert_eq!(offered, ["SCRAM-SHA-512", "SCRAM-SHA-256"]);
    // Without a login the SCRAM listener serves nothing.
    let mut conn = Conn::connect(SocketAddr::from(([127, 0, 0, 1], sasl))).await;
    conn.send(12, &MetadataRequest::default()).await;
    assert!(
        conn.is_closed().await,
        "an unauthenticated request was served"
    );

    broker.shutdown().await.unwrap();
}

#[test]
fn listener_flags_are_checked_against_each_other_and_their_files() {
    let config = |listeners: &[&str], tweak: &dyn Fn(&mut rill_broker::config::BrokerConfig)| {
        let mut c = rill_broker::config::BrokerConfig::ephemeral(std::path::Path::new("/tmp/x"));
        c.kafka_listeners = listeners.iter().map(|s| s.parse().unwrap()).collect();
        tweak(&mut c);
        c.validate().map_err(|e| e.to_string())
    };
    let none = |_: &mut rill_broker::config::BrokerConfig| {};
    let err = config(&["name=a,port=9093,tls=true"], &none).unwrap_err();
    assert!(err.contains("--kafka-tls-cert-file"), "{err}");
    let err = config(&["name=a,port=9093,auth=scram"], &none).unwrap_err();
    assert!(err.contains("--sasl-credentials-file"), "{err}");
    let err = config(&["name=a,port=9093", "name=b,port=9093"], &none).unwrap_err();
    assert!(err.contains("both use port 9093"), "{err}");
    let err = config(&["name=a,port=9093,tls=true,auth=mtls"], &|c| {
        c.kafka_tls_cert_file = Some("/c".into());
        c.kafka_tls_key_file = Some("/k".into());
    })
    .unwrap_err();
    assert!(err.contains("--kafka-tls-client-ca-file"), "{err}");
    assert!(config(&["name=a,port=9093", "name=b,port=9094"], &none).is_ok());
}
