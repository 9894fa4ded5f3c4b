//! TLS listener tests over real sockets with certificates made on the fly.

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::Principal;
use super::tls::{ClientAuth, Refusal, TlsFiles, TlsListener};

/// A CA, and a server certificate for `localhost` signed by it, as PEM.
struct Pki {
    ca_params: rcgen::CertificateParams,
    ca_key: rcgen::KeyPair,
    ca_der: CertificateDer<'static>,
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

impl Pki {
    /// A certificate signed by this CA whose subject has `common_name`
    /// (none when `None`): (certificate DER, key DER).
    fn client(
        &self,
        common_name: Option<&str>,
    ) -> (
        CertificateDer<'static>,
        rustls::pki_types::PrivateKeyDer<'static>,
    ) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        match common_name {
            Some(cn) => params
                .distinguished_name
                .push(rcgen::DnType::CommonName, cn),
            None => params
                .distinguished_name
                .push(rcgen::DnType::OrganizationName, "no common name"),
        }
        let issuer = rcgen::Issuer::from_params(&self.ca_params, &self.ca_key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        let key_der = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
        (cert.der().clone(), key_der)
    }
}

fn pki(common_name: &str) -> Pki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, common_name);
    let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
    let cert = params.signed_by(&key, &issuer).unwrap();
    Pki {
        ca_der: ca.der().clone(),
        ca_pem: ca.pem(),
        ca_params,
        ca_key,
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

fn write_files(dir: &std::path::Path, pki: &Pki) -> TlsFiles {
    let files = TlsFiles {
        cert: dir.join("tls.crt"),
        key: dir.join("tls.key"),
        client_ca: None,
        client_auth: ClientAuth::Required,
    };
    std::fs::write(&files.cert, &pki.cert_pem).unwrap();
    std::fs::write(&files.key, &pki.key_pem).unwrap();
    files
}

/// `write_files` plus the CA as the client CA.
fn write_mtls_files(dir: &std::path::Path, pki: &Pki, client_auth: ClientAuth) -> TlsFiles {
    let mut files = write_files(dir, pki);
    let ca = dir.join("client-ca.crt");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    files.client_ca = Some(ca);
    files.client_auth = client_auth;
    files
}

/// Accepts one connection with `listener`, echoes what it reads, and
/// returns the principal of the client's certificate.
async fn echo_once(
    server: Arc<TlsListener>,
    socket: TcpListener,
) -> Result<Option<Principal>, Refusal> {
    let (stream, _) = socket.accept().await.unwrap();
    let (mut tls, principal) = server.accept(stream).await?;
    let mut buf = [0u8; 5];
    tls.read_exact(&mut buf).await.unwrap();
    tls.write_all(&buf).await.unwrap();
    tls.flush().await.unwrap();
    Ok(principal)
}

fn client_config(
    ca: &CertificateDer<'static>,
    identity: Option<(
        CertificateDer<'static>,
        rustls::pki_types::PrivateKeyDer<'static>,
    )>,
) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    match identity {
        Some((cert, key)) => builder.with_client_auth_cert(vec![cert], key).unwrap(),
        None => builder.with_no_client_auth(),
    }
}

/// Connects trusting `ca`; returns the echo and the server's certificate.
async fn connect(
    addr: std::net::SocketAddr,
    ca: &CertificateDer<'static>,
) -> (Vec<u8>, CertificateDer<'static>) {
    connect_as(addr, client_config(ca, None))
        .await
        .expect("handshake")
}

async fn connect_as(
    addr: std::net::SocketAddr,
    config: rustls::ClientConfig,
) -> std::io::Result<(Vec<u8>, CertificateDer<'static>)> {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await?;
    tls.write_all(b"hello").await?;
    let mut buf = vec![0u8; 5];
    tls.read_exact(&mut buf).await?;
    let presented = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    Ok((buf, presented))
}

#[tokio::test]
async fn given_a_tls_listener_when_a_client_trusting_its_ca_connects_then_data_flows() {
    let dir = tempfile::tempdir().unwrap();
    let first = pki("broker-0");
    let server = Arc::new(TlsListener::load(write_files(dir.path(), &first)).unwrap());
    let socket = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let served = tokio::spawn(echo_once(Arc::clone(&server), socket));
    let (echo, _) = connect(addr, &first.ca_der).await;
    assert_eq!(echo, b"hello");
    served.await.unwrap().expect("served");
}

#[tokio::test]
async fn given_a_plaintext_kafka_client_when_it_connects_to_a_tls_port_then_it_is_closed_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = Arc::new(TlsListener::load(write_files(dir.path(), &pki("b"))).unwrap());
    let socket = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let served = tokio::spawn(echo_once(Arc::clone(&server), socket));
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    // An ApiVersions v3 request frame starts with its size: 0x00 ...
    tcp.write_all(&[0, 0, 0, 0x1d, 0, 18, 0, 3]).await.unwrap();
    let refused = served.await.unwrap().expect_err("plaintext refused");
    assert!(matches!(refused, Refusal::Plaintext), "{refused}");
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(std::time::Duration::from_secs(5), tcp.read(&mut buf))
        .await
        .expect("closed, not hanging");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
}

#[tokio::test]
async fn given_new_certificate_files_when_reloaded_then_new_connections_get_the_new_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_files(dir.path(), &pki("old"));
    let server = Arc::new(TlsListener::load(files.clone()).unwrap());
    let rotated = pki("new");
    write_files(dir.path(), &rotated);
    server
        .reload(&[
            rotated.cert_pem.clone().into(),
            rotated.key_pem.clone().into(),
        ])
        .unwrap();
    let socket = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let served = tokio::spawn(echo_once(Arc::clone(&server), socket));
    let (_, presented) = connect(addr, &rotated.ca_der).await;
    served.await.unwrap().expect("served");
    let expected = rustls::pki_types::pem::PemObject::from_pem_slice(rotated.cert_pem.as_bytes())
        .map(|c: CertificateDer<'static>| c)
        .unwrap();
    assert_eq!(presented, expected);

    // A broken pair is refused and the working one stays.
    let err = server.reload(&[
        b"not a certificate".to_vec(),
        rotated.key_pem.clone().into(),
    ]);
    assert!(err.is_err());
    let mismatched = pki("other");
    assert!(
        server
            .reload(&[
                rotated.cert_pem.clone().into(),
                mismatched.key_pem.clone().into()
            ])
            .is_err(),
        "a key that does not match the certificate is refused"
    );
}

#[test]
fn given_missing_or_empty_files_when_loading_then_the_error_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let files = TlsFiles {
        cert: dir.path().join("missing.crt"),
        key: dir.path().join("missing.key"),
        client_ca: None,
        client_auth: ClientAuth::Required,
    };
    let err = TlsListener::load(files.clone()).unwrap_err().to_string();
    assert!(err.contains("missing.crt"), "{err}");
    std::fs::write(&files.cert, "").unwrap();
    std::fs::write(&files.key, "").unwrap();
    let err = TlsListener::load(files.clone()).unwrap_err().to_string();
    assert!(err.contains("no PEM certificate"), "{err}");
    let good = pki("b");
    let mut files = write_files(dir.path(), &good);
    let ca = dir.path().join("empty-ca.crt");
    std::fs::write(&ca, "").unwrap();
    files.client_ca = Some(ca);
    let err = TlsListener::load(files).unwrap_err().to_string();
    assert!(
        err.contains("empty-ca.crt") && err.contains("no PEM certificate"),
        "{err}"
    );
}

#[tokio::test]
async fn given_a_client_ca_when_clients_connect_then_a_verified_certificate_names_the_principal() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki("broker");
    let server = Arc::new(
        TlsListener::load(write_mtls_files(dir.path(), &pki, ClientAuth::Required)).unwrap(),
    );
    // (client identity, expected outcome)
    let stranger = self::pki("elsewhere").client(Some("mallory"));
    let cases: Vec<(_, Result<Option<&str>, &str>)> = vec![
        (Some(pki.client(Some("alice"))), Ok(Some("User:alice"))),
        (None, Err("handshake")),
        (Some(stranger), Err("handshake")),
        (Some(pki.client(None)), Err("principal")),
    ];
    for (identity, expected) in cases {
        let socket = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let served = tokio::spawn(echo_once(Arc::clone(&server), socket));
        let client = tokio::spawn(connect_as(addr, client_config(&pki.ca_der, identity)));
        let outcome = served.await.unwrap();
        let _ = client.await;
        match (outcome, expected) {
            (Ok(principal), Ok(want)) => {
                assert_eq!(principal.map(|p| p.to_string()).as_deref(), want);
            }
            (Err(Refusal::Handshake(_)), Err("handshake")) => {}
            (Err(Refusal::NoPrincipal(why)), Err("principal")) => {
                assert!(why.contains("no common name"), "{why}");
            }
            (got, want) => panic!("got {got:?}, expected {want:?}"),
        }
    }

    // `requested`: a client without a certificate comes in anonymously.
    let dir = tempfile::tempdir().unwrap();
    let server = Arc::new(
        TlsListener::load(write_mtls_files(dir.path(), &pki, ClientAuth::Requested)).unwrap(),
    );
    let socket = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let served = tokio::spawn(echo_once(Arc::clone(&server), socket));
    let (echo, _) = connect(addr, &pki.ca_der).await;
    assert_eq!(echo, b"hello");
    assert_eq!(served.await.unwrap().expect("served"), None);
}

mod fuzz {
    //! The SASL paths under random and mutated input: no panic, and no
    //! input authenticates without the password. `PROPTEST_CASES` raises
    //! the number of cases for long runs.

    use std::sync::Arc;
    use std::time::Instant;

    use bytes::Bytes;
    use kafka_protocol::messages::{SaslAuthenticateRequest, SaslHandshakeRequest};
    use kafka_protocol::protocol::StrBytes;
    use proptest::prelude::*;
    use rill_proto::scram::{Credential, Mechanism};

    use crate::security::sasl::After;
    use crate::security::{CredentialStore, Principal, SaslMechanism, SaslSettings, Session};

    fn settings() -> Arc<SaslSettings> {
        let credentials = CredentialStore::default();
        for mechanism in Mechanism::ALL {
            credentials.insert(
                "alice",
                Credential::generate(mechanism, b"correct horse battery staple", 4096).unwrap(),
            );
        }
        Arc::new(SaslSettings {
            mechanisms: vec![
                SaslMechanism::Scram(Mechanism::Sha512),
                SaslMechanism::Scram(Mechanism::Sha256),
                SaslMechanism::Plain,
            ],
            credentials: Arc::new(credentials),
            session_lifetime: None,
        })
    }

    /// Valid-looking messages with bytes flipped, cut or inserted.
    fn mutated(seed: &'static [u8]) -> impl Strategy<Value = Vec<u8>> {
        (
            proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
            any::<usize>(),
        )
            .prop_map(move |(edits, cut)| {
                let mut m = seed.to_vec();
                for (at, byte) in edits {
                    if m.is_empty() {
                        m.push(byte);
                    } else {
                        let i = at % m.len();
                        m[i] = byte;
                    }
                }
                m.truncate(cut % (m.len() + 1));
                m
            })
    }

    fn message() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..200),
            mutated(b"n,,n=alice,r=abcdefghijklmnop"),
            mutated(b"c=biws,r=abcdefghijklmnop0123456789,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="),
            mutated(b"\0alice\0pw-but-not-quite"),
        ]
    }

    proptest! {
        #[test]
        fn given_random_sasl_messages_when_authenticating_then_nothing_panics_and_nobody_gets_in(
            mechanism in prop_oneof![Just("SCRAM-SHA-512"), Just("SCRAM-SHA-256"), Just("PLAIN"), Just("")],
            messages in proptest::collection::vec(message(), 1..4),
        ) {
            let mut session = Session::new(Some(settings()), Principal::anonymous());
            let (_, after) = session.handshake(
                1,
                &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism)),
            );
            if after == After::Continue {
                for m in messages {
                    let (response, after) = session.authenticate(
                        &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(m)),
                        Instant::now(),
                    );
                    if matches!(after, After::Close(_)) {
                        prop_assert_eq!(response.error_code == 0, false);
                        break;
                    }
                }
            }
            prop_assert_eq!(session.principal().to_string(), "User:ANONYMOUS");
        }
    }
}

#[tokio::test]
async fn given_random_bytes_when_sent_to_a_tls_listener_then_each_connection_is_refused_and_closed()
{
    let dir = tempfile::tempdir().unwrap();
    let server = Arc::new(TlsListener::load(write_files(dir.path(), &pki("b"))).unwrap());
    let socket = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let accepting = Arc::clone(&server);
    let cases = 64;
    let served = tokio::spawn(async move {
        let mut refused = 0;
        for _ in 0..cases {
            let (stream, _) = socket.accept().await.unwrap();
            if accepting.accept(stream).await.is_err() {
                refused += 1;
            }
        }
        refused
    });
    // A small deterministic generator: half the inputs look like the start
    // of a TLS record (0x16 0x03 ...), the rest are anything.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for case in 0..cases {
        let len = (next() % 300) as usize + 1;
        let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if case % 2 == 0 {
            bytes[0] = 0x16;
            if len > 2 {
                bytes[1] = 0x03;
            }
        }
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(&bytes).await.unwrap();
        // Then the client stops sending: the broker must not wait forever
        // for the rest of a handshake it cannot complete (a short random
        // record may be incomplete: those wait for the handshake timeout,
        // so close the write side to end them).
        tcp.shutdown().await.unwrap();
        let mut buf = [0u8; 64];
        let closed = tokio::time::timeout(std::time::Duration::from_secs(15), async {
            loop {
                match tcp.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "case {case}: connection left open");
    }
    assert_eq!(served.await.unwrap(), cases, "every random input refused");
}
