//! Mutual TLS between a controller and two brokers, on loopback. Pins: with
//! `--internal-tls-*` set, replication, the broker's gRPC client API and the
//! controller speak TLS only; an acks=all write reaches both replicas over
//! it; a peer that speaks plaintext, one without a certificate, and one with
//! a certificate from another CA are refused on the replication port, the
//! client API port and the controller port.

mod common;

use std::path::Path;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rill_broker::BrokerHandle;
use rill_proto::client::client_client::ClientClient;
use rill_proto::client::{Acks, CreateTopicRequest, MetadataRequest, ProduceRequest};
use rill_proto::replication::replication_client::ReplicationClient;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

const TOPIC: &str = "sealed";
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(20);

struct Pki {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

/// A CA and a certificate it signs for loopback, usable by servers and
/// clients alike (as the operator's broker certificates are).
fn pki(name: &str) -> Pki {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name.push(DnType::CommonName, name);
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate().unwrap();
    let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
    let issuer = Issuer::new(ca, ca_key);
    let mut leaf =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    leaf.distinguished_name
        .push(DnType::CommonName, format!("{name} broker"));
    leaf.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let key = KeyPair::generate().unwrap();
    let cert_pem = leaf.signed_by(&key, &issuer).unwrap().pem();
    Pki {
        ca_pem,
        cert_pem,
        key_pem: key.serialize_pem(),
    }
}

fn write_pki(dir: &Path, pki: &Pki) -> rill_process::tls::InternalTlsArgs {
    std::fs::create_dir_all(dir).unwrap();
    let write = |name: &str, pem: &str| {
        let path = dir.join(name);
        std::fs::write(&path, pem).unwrap();
        Some(path)
    };
    rill_process::tls::InternalTlsArgs {
        internal_tls_cert_file: write("tls.crt", &pki.cert_pem),
        internal_tls_key_file: write("tls.key", &pki.key_pem),
        internal_tls_ca_file: write("ca.crt", &pki.ca_pem),
    }
}

/// A TLS client config: trusts `server_ca`, presents `identity` if given.
fn client_tls(server_ca: &Pki, identity: Option<&Pki>) -> ClientTlsConfig {
    let config = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&server_ca.ca_pem));
    match identity {
        Some(p) => config.identity(Identity::from_pem(&p.cert_pem, &p.key_pem)),
        None => config,
    }
}

async fn channel(
    addr: std::net::SocketAddr,
    tls: Option<ClientTlsConfig>,
) -> Result<Channel, String> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut endpoint = Endpoint::from_shared(format!("{scheme}://{addr}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10));
    if let Some(tls) = tls {
        endpoint = endpoint.tls_config(tls).map_err(|e| e.to_string())?;
    }
    endpoint.connect().await.map_err(|e| format!("{e:?}"))
}

/// Whether a metadata request through the client API at `addr` succeeds.
async fn client_api_answers(addr: std::net::SocketAddr, tls: Option<ClientTlsConfig>) -> bool {
    let Ok(channel) = channel(addr, tls).await else {
        return false;
    };
    ClientClient::new(channel)
        .metadata(MetadataRequest { topics: vec![] })
        .await
        .is_ok()
}

/// Whether a replica fetch stream opens on the replication port at `addr`.
async fn replication_answers(addr: std::net::SocketAddr, tls: Option<ClientTlsConfig>) -> bool {
    let Ok(channel) = channel(addr, tls).await else {
        return false;
    };
    let (_tx, rx) = tokio::sync::mpsc::channel(1);
    ReplicationClient::new(channel)
        .replica_fetch(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .is_ok()
}

/// Whether the controller at `addr` answers a metadata watch.
async fn controller_answers(addr: std::net::SocketAddr, tls: Option<ClientTlsConfig>) -> bool {
    let options = rill_controller::ClientOptions {
        tls,
        connect_timeout: Duration::from_secs(5),
        ..Default::default()
    };
    let host = if options.tls.is_some() {
        "localhost"
    } else {
        "127.0.0.1"
    };
    match rill_controller::ControllerClient::connect_with(
        vec![format!("{host}:{}", addr.port())],
        options,
    )
    .await
    {
        Ok(client) => client.watch(0).await.is_ok(),
        Err(_) => false,
    }
}

async fn start_broker(dir: &Path, id: i32, controller: &str, tls: &Pki) -> BrokerHandle {
    let args = write_pki(&dir.join(format!("pki-{id}")), tls);
    common::start(&dir.join(format!("broker-{id}")), |c| {
        c.broker_id = id;
        c.controller_addr = vec![controller.to_owned()];
        c.internal_tls = args;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_internal_tls_then_replication_works_and_strangers_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = pki("cluster");
    let stranger = pki("stranger");

    let mut config = rill_controller::config::ServerConfig::ephemeral(
        dir.path().join("controller/metadata.json"),
    );
    config.internal_tls = write_pki(&dir.path().join("pki-controller"), &cluster);
    let controller = rill_controller::start(config)
        .await
        .expect("controller starts with TLS");
    let controller_addr = format!("127.0.0.1:{}", controller.grpc_addr.port());
    let b1 = start_broker(dir.path(), 1, &controller_addr, &cluster).await;
    let b2 = start_broker(dir.path(), 2, &controller_addr, &cluster).await;

    // A replicated write over TLS.
    let member = client_tls(&cluster, Some(&cluster));
    let mut admin = ClientClient::new(channel(b1.client_addr, Some(member.clone())).await.unwrap());
    admin
        .create_topic(CreateTopicRequest {
            name: TOPIC.into(),
            partitions: 1,
            replication_factor: 2,
            config: Default::default(),
        })
        .await
        .expect("topic created over TLS");
    let deadline = tokio::time::Instant::now() + CONVERGE_TIMEOUT;
    let leader = loop {
        let t = admin
            .metadata(MetadataRequest {
                topics: vec![TOPIC.into()],
            })
            .await
            .expect("metadata")
            .into_inner();
        if let Some(p) = t.topics.first().and_then(|t| t.partitions.first())
            && p.isr.len() == 2
        {
            break p.leader;
        }
        assert!(tokio::time::Instant::now() < deadline, "no ISR of 2: {t:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let leader_addr = if leader == 1 {
        b1.client_addr
    } else {
        b2.client_addr
    };
    let mut producer = ClientClient::new(channel(leader_addr, Some(member.clone())).await.unwrap());
    let deadline = tokio::time::Instant::now() + CONVERGE_TIMEOUT;
    loop {
        let sent = producer
            .produce(ProduceRequest {
                topic: TOPIC.into(),
                partition: 0,
                acks: Acks::All as i32,
                timeout_ms: 10_000,
                record_batches: common::simple_batch("sealed", 10),
            })
            .await;
        match sent {
            Ok(_) => break,
            Err(e) => assert!(
                tokio::time::Instant::now() < deadline,
                "acks=all over TLS replication failed: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Members get in; plaintext, no certificate and another CA do not.
    for (what, addr) in [
        ("client API", b1.client_addr),
        ("client API", b2.client_addr),
    ] {
        assert!(
            client_api_answers(addr, Some(member.clone())).await,
            "{what}"
        );
        assert!(
            !client_api_answers(addr, None).await,
            "{what}: plaintext answered"
        );
        assert!(
            !client_api_answers(addr, Some(client_tls(&cluster, None))).await,
            "{what}: a client without a certificate answered"
        );
        assert!(
            !client_api_answers(addr, Some(client_tls(&cluster, Some(&stranger)))).await,
            "{what}: a certificate from another CA answered"
        );
    }
    for b in [&b1, &b2] {
        let addr = b.replication_addr.expect("replication port");
        assert!(replication_answers(addr, Some(member.clone())).await);
        assert!(
            !replication_answers(addr, None).await,
            "replication: plaintext answered"
        );
        assert!(
            !replication_answers(addr, Some(client_tls(&cluster, None))).await,
            "replication: a peer without a certificate answered"
        );
        assert!(
            !replication_answers(addr, Some(client_tls(&cluster, Some(&stranger)))).await,
            "replication: a certificate from another CA answered"
        );
    }
    let controller_port = controller.grpc_addr;
    assert!(controller_answers(controller_port, Some(member.clone())).await);
    assert!(
        !controller_answers(controller_port, None).await,
        "controller: plaintext answered"
    );
    assert!(
        !controller_answers(controller_port, Some(client_tls(&cluster, None))).await,
        "controller: a broker without a certificate answered"
    );
    assert!(
        !controller_answers(controller_port, Some(client_tls(&cluster, Some(&stranger)))).await,
        "controller: a certificate from another CA answered"
    );

    b1.shutdown().await.ok();
    b2.shutdown().await.ok();
    controller.shutdown().await.ok();
}
