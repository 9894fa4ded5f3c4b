//! Mutual TLS on the operator's controller port.
//!
//! One port serves the controllers of every StreamCluster, and each cluster
//! has its own cluster CA. A broker dials the port with the server name
//! `controller.<cluster>.<namespace>.rill.internal` (SNI); the operator
//! answers with a certificate for that name signed by that cluster's CA,
//! minted here from the CA key and renewed well before it expires. The
//! handshake accepts a client certificate from any known cluster CA; the
//! router then checks, per request, that it comes from the CA of the cluster
//! the request names ([`ControllerTls::check_peer`]), so a broker of one
//! cluster cannot speak for another.
//!
//! The port also takes plaintext (told apart by the first byte, as TLS
//! records start with 0x16) so that a cluster created before certificates
//! keeps its controller while it rolls onto them; the router refuses
//! plaintext for every cluster that has a CA.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair, KeyUsagePurpose};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tonic::Status;
use tonic::transport::server::{Connected, TcpConnectInfo};
use tracing::{debug, warn};

/// How long a minted controller certificate is valid.
const LEAF_VALIDITY: Duration = Duration::from_secs(90 * 24 * 3600);
/// A controller certificate closer than this to its end is minted again.
const LEAF_RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);
/// A connection must finish its first byte and TLS handshake within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The first byte of a TLS handshake record.
const TLS_HANDSHAKE: u8 = 0x16;

/// The name a cluster's brokers expect on the controller's certificate.
pub fn server_name(namespace: &str, name: &str) -> String {
    format!("controller.{name}.{namespace}.rill.internal")
}

/// Why a cluster's CA cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("the CA bundle holds no certificate we can use: {0}")]
    Bundle(String),
    #[error("the CA certificate or key cannot sign: {0}")]
    Issuer(String),
}

struct ClusterTls {
    server_name: String,
    /// The CA certificate (PEM) the leaf was signed with.
    issuer_pem: String,
    certified: Arc<CertifiedKey>,
    /// Seconds since the epoch when the leaf expires.
    not_after: i64,
    verifier: Arc<dyn ClientCertVerifier>,
}

impl fmt::Debug for ClusterTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterTls")
            .field("server_name", &self.server_name)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// The certificates of every cluster whose controller this operator serves.
#[derive(Debug, Default)]
pub struct ControllerTls {
    /// Cluster key (`namespace/name`) -> its TLS.
    clusters: RwLock<BTreeMap<String, ClusterTls>>,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn now_secs() -> i64 {
    UnixTime::now().as_secs() as i64
}

impl ControllerTls {
    /// No cluster yet.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Serves `key`'s controller with a certificate signed by its CA
    /// (`ca_cert_pem`, `ca_key_pem`), and accepts its brokers' certificates
    /// when they chain to a certificate of `trust_bundle_pem` (the CA, plus
    /// the previous one while a renewal rolls). Cheap when nothing changed.
    pub fn set_cluster(
        &self,
        key: &str,
        namespace: &str,
        name: &str,
        trust_bundle_pem: &[u8],
        ca_cert_pem: &str,
        ca_key_pem: &str,
    ) -> Result<(), TlsError> {
        {
            let clusters = self.clusters.read().unwrap_or_else(|p| p.into_inner());
            if let Some(c) = clusters.get(key)
                && c.issuer_pem == ca_cert_pem
                && c.not_after - now_secs() > LEAF_RENEW_BEFORE.as_secs() as i64
            {
                return Ok(());
            }
        }
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(trust_bundle_pem) {
            let cert = cert.map_err(|e| TlsError::Bundle(e.to_string()))?;
            roots
                .add(cert)
                .map_err(|e| TlsError::Bundle(e.to_string()))?;
        }
        if roots.is_empty() {
            return Err(TlsError::Bundle("no PEM certificate".into()));
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|e| TlsError::Bundle(e.to_string()))?;
        let server_name = server_name(namespace, name);
        let (certified, not_after) = mint(&server_name, ca_cert_pem, ca_key_pem)?;
        debug!(cluster = key, %server_name, "controller certificate minted");
        self.clusters
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                key.to_owned(),
                ClusterTls {
                    server_name,
                    issuer_pem: ca_cert_pem.to_owned(),
                    certified,
                    not_after,
                    verifier,
                },
            );
        Ok(())
    }

    /// Forgets `key` (its StreamCluster is gone).
    pub fn remove_cluster(&self, key: &str) {
        self.clusters
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }

    /// Forgets every cluster `keep` says no to.
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.clusters
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|key, _| keep(key));
    }

    /// Whether `key` has a CA (and so refuses plaintext).
    pub fn has_cluster(&self, key: &str) -> bool {
        self.clusters
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(key)
    }

    /// Refuses a request for `key` unless its connection presented a
    /// certificate from `key`'s CA. Clusters without a CA take plaintext.
    pub fn check_peer(&self, key: &str, peer: Option<&PeerInfo>) -> Result<(), Status> {
        let clusters = self.clusters.read().unwrap_or_else(|p| p.into_inner());
        let Some(cluster) = clusters.get(key) else {
            return Ok(());
        };
        let certs = peer.and_then(|p| p.certificates.as_deref());
        let Some((end_entity, intermediates)) = certs.and_then(|c| c.split_first()) else {
            return Err(Status::unauthenticated(format!(
                "cluster {key} requires mutual TLS with a certificate from its cluster CA"
            )));
        };
        cluster
            .verifier
            .verify_client_cert(end_entity, intermediates, UnixTime::now())
            .map(|_| ())
            .map_err(|_| {
                Status::permission_denied(format!(
                    "the client certificate is not from cluster {key}'s CA"
                ))
            })
    }

    /// The rustls configuration of the controller port.
    pub fn server_config(self: &Arc<Self>) -> Arc<ServerConfig> {
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("ring supports TLS 1.2 and 1.3")
            .with_client_cert_verifier(Arc::new(AnyCluster {
                tls: Arc::clone(self),
                algorithms: provider().signature_verification_algorithms,
            }))
            .with_cert_resolver(Arc::new(BySni(Arc::clone(self))));
        config.alpn_protocols = vec![b"h2".to_vec()];
        Arc::new(config)
    }
}

/// The Secret holding a cluster's CA certificate and key (`tls.crt`,
/// `tls.key`).
pub fn cluster_ca_secret(cluster: &str) -> String {
    format!("{cluster}-cluster-ca")
}

/// The Secret holding the bundle a cluster's members trust (`ca.crt`).
pub fn cluster_ca_cert_secret(cluster: &str) -> String {
    format!("{cluster}-cluster-ca-cert")
}

/// Loads `namespace/name`'s cluster CA from its Secrets into `tls`. A
/// cluster whose CA Secrets do not exist yet keeps taking plaintext; one
/// whose Secrets are unusable is logged and keeps what it had.
pub async fn sync_cluster(
    client: &kube::Client,
    tls: &ControllerTls,
    key: &str,
    namespace: &str,
    name: &str,
) {
    use k8s_openapi::api::core::v1::Secret;
    let secrets: kube::Api<Secret> = kube::Api::namespaced(client.clone(), namespace);
    let field = |secret: &Option<Secret>, field: &str| -> Option<Vec<u8>> {
        secret
            .as_ref()?
            .data
            .as_ref()?
            .get(field)
            .map(|b| b.0.clone())
    };
    let (ca, bundle) = match (
        secrets.get_opt(&cluster_ca_secret(name)).await,
        secrets.get_opt(&cluster_ca_cert_secret(name)).await,
    ) {
        (Ok(ca), Ok(bundle)) => (ca, bundle),
        (Err(e), _) | (_, Err(e)) => {
            warn!(cluster = key, error = %e, "cannot read the cluster CA Secrets");
            return;
        }
    };
    let (Some(cert), Some(ca_key)) = (field(&ca, "tls.crt"), field(&ca, "tls.key")) else {
        return;
    };
    let bundle = field(&bundle, "ca.crt").unwrap_or_else(|| cert.clone());
    let (Ok(cert), Ok(ca_key)) = (String::from_utf8(cert), String::from_utf8(ca_key)) else {
        warn!(cluster = key, secret = %cluster_ca_secret(name), "the cluster CA is not PEM text");
        return;
    };
    if let Err(e) = tls.set_cluster(key, namespace, name, &bundle, &cert, &ca_key) {
        warn!(cluster = key, secret = %cluster_ca_secret(name), error = %e, "cannot serve the controller with the cluster CA");
    }
}

/// A leaf certificate for `server_name` signed by the CA; with its expiry.
fn mint(
    server_name: &str,
    ca_cert_pem: &str,
    ca_key_pem: &str,
) -> Result<(Arc<CertifiedKey>, i64), TlsError> {
    let issuer_err = |e: rcgen::Error| TlsError::Issuer(e.to_string());
    let ca_key = KeyPair::from_pem(ca_key_pem).map_err(issuer_err)?;
    let issuer = Issuer::from_ca_cert_pem(ca_cert_pem, ca_key).map_err(issuer_err)?;
    let mut params = CertificateParams::new(vec![server_name.to_owned()]).map_err(issuer_err)?;
    params
        .distinguished_name
        .push(DnType::CommonName, server_name);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let now = time_now();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::seconds(LEAF_VALIDITY.as_secs() as i64);
    let not_after = params.not_after.unix_timestamp();
    let key = KeyPair::generate().map_err(issuer_err)?;
    let cert = params.signed_by(&key, &issuer).map_err(issuer_err)?;
    let key_der = PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes())
        .map_err(|e| TlsError::Issuer(e.to_string()))?;
    let certified = CertifiedKey::from_der(vec![cert.der().clone()], key_der, &provider())
        .map_err(|e| TlsError::Issuer(e.to_string()))?;
    Ok((Arc::new(certified), not_after))
}

fn time_now() -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(now_secs())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

/// Picks the certificate of the cluster the client names (SNI).
#[derive(Debug)]
struct BySni(Arc<ControllerTls>);

impl ResolvesServerCert for BySni {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = hello.server_name()?;
        let clusters = self.0.clusters.read().unwrap_or_else(|p| p.into_inner());
        let found = clusters
            .values()
            .find(|c| c.server_name == name)
            .map(|c| Arc::clone(&c.certified));
        if found.is_none() {
            debug!(
                server_name = name,
                "TLS client asked for an unknown cluster's controller"
            );
        }
        found
    }
}

/// Accepts a client certificate from any known cluster's CA; the router
/// narrows it to the cluster each request names.
#[derive(Debug)]
struct AnyCluster {
    tls: Arc<ControllerTls>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyCluster {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let clusters = self.tls.clusters.read().unwrap_or_else(|p| p.into_inner());
        let mut last = rustls::Error::General("no cluster CA is known".into());
        for cluster in clusters.values() {
            match cluster
                .verifier
                .verify_client_cert(end_entity, intermediates, now)
            {
                Ok(v) => return Ok(v),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// What the router learns about a connection.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    pub remote_addr: Option<std::net::SocketAddr>,
    /// The verified client certificate chain; `None` on plaintext.
    pub certificates: Option<Arc<Vec<CertificateDer<'static>>>>,
}

/// A connection to the controller port: plaintext or TLS.
#[derive(Debug)]
pub enum Conn {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Connected for Conn {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        match self {
            Conn::Plain(tcp) => PeerInfo {
                remote_addr: tcp.connect_info().remote_addr(),
                certificates: None,
            },
            Conn::Tls(tls) => {
                let (tcp, session) = tls.get_ref();
                PeerInfo {
                    remote_addr: TcpConnectInfo::remote_addr(&tcp.connect_info()),
                    certificates: session
                        .peer_certificates()
                        .map(|c| Arc::new(c.iter().map(|c| c.clone().into_owned()).collect())),
                }
            }
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Accepts connections on `listener`, tells TLS from plaintext by the
/// first byte, and completes TLS handshakes; each ready connection comes
/// out of the stream. A connection that fails its handshake is closed and
/// logged.
pub fn incoming(
    listener: TcpListener,
    tls: Arc<ControllerTls>,
) -> impl futures::Stream<Item = io::Result<Conn>> + Send + 'static {
    let acceptor = TlsAcceptor::from(tls.server_config());
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            // The server dropping the stream (at shutdown) ends the loop and
            // frees the port at once.
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = tx.closed() => return,
            };
            let (tcp, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    warn!(error = %e, "controller port accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, classify(tcp, &acceptor)).await {
                    Ok(Ok(conn)) => {
                        let _ = tx.send(Ok(conn)).await;
                    }
                    Ok(Err(e)) => {
                        warn!(%peer, error = %e, "controller port: TLS handshake failed; connection closed")
                    }
                    Err(_) => {
                        warn!(%peer, "controller port: no handshake within {HANDSHAKE_TIMEOUT:?}; connection closed")
                    }
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

async fn classify(tcp: TcpStream, acceptor: &TlsAcceptor) -> io::Result<Conn> {
    let mut first = [0u8; 1];
    let n = tcp.peek(&mut first).await?;
    if n == 1 && first[0] == TLS_HANDSHAKE {
        Ok(Conn::Tls(Box::new(acceptor.accept(tcp).await?)))
    } else {
        Ok(Conn::Plain(tcp))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, IsCa};

    struct Ca {
        cert_pem: String,
        key_pem: String,
        issuer: Issuer<'static, KeyPair>,
    }

    fn ca(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let key_pem = key.serialize_pem();
        Ca {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
            key_pem,
        }
    }

    fn client_cert(ca: &Ca, cn: &str) -> CertificateDer<'static> {
        let mut params = CertificateParams::new(vec![cn.to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().unwrap();
        params.signed_by(&key, &ca.issuer).unwrap().der().clone()
    }

    fn peer(cert: CertificateDer<'static>) -> PeerInfo {
        PeerInfo {
            remote_addr: None,
            certificates: Some(Arc::new(vec![cert])),
        }
    }

    fn tls_with(key: &str, ns: &str, name: &str, ca: &Ca) -> Arc<ControllerTls> {
        let tls = ControllerTls::new();
        tls.set_cluster(
            key,
            ns,
            name,
            ca.cert_pem.as_bytes(),
            &ca.cert_pem,
            &ca.key_pem,
        )
        .unwrap();
        tls
    }

    #[test]
    fn given_a_cluster_ca_then_its_brokers_pass_and_others_are_refused() {
        let a = ca("cluster a");
        let b = ca("cluster b");
        let tls = tls_with("ns/a", "ns", "a", &a);
        tls.set_cluster(
            "ns/b",
            "ns",
            "b",
            b.cert_pem.as_bytes(),
            &b.cert_pem,
            &b.key_pem,
        )
        .unwrap();
        assert!(
            tls.check_peer("ns/a", Some(&peer(client_cert(&a, "broker"))))
                .is_ok()
        );
        let other = tls
            .check_peer("ns/a", Some(&peer(client_cert(&b, "broker"))))
            .unwrap_err();
        assert_eq!(other.code(), tonic::Code::PermissionDenied);
        let plain = tls.check_peer("ns/a", None).unwrap_err();
        assert_eq!(plain.code(), tonic::Code::Unauthenticated);
        // A cluster without a CA still takes plaintext.
        assert!(tls.check_peer("ns/c", None).is_ok());
    }

    #[test]
    fn given_the_same_ca_then_the_certificate_is_not_minted_again() {
        let a = ca("cluster a");
        let tls = tls_with("ns/a", "ns", "a", &a);
        let first = Arc::clone(&tls.clusters.read().unwrap()["ns/a"].certified);
        tls.set_cluster(
            "ns/a",
            "ns",
            "a",
            a.cert_pem.as_bytes(),
            &a.cert_pem,
            &a.key_pem,
        )
        .unwrap();
        let again = Arc::clone(&tls.clusters.read().unwrap()["ns/a"].certified);
        assert!(Arc::ptr_eq(&first, &again));
        // A renewed CA mints a new one.
        let renewed = ca("cluster a renewed");
        let bundle = format!("{}{}", renewed.cert_pem, a.cert_pem);
        tls.set_cluster(
            "ns/a",
            "ns",
            "a",
            bundle.as_bytes(),
            &renewed.cert_pem,
            &renewed.key_pem,
        )
        .unwrap();
        let third = Arc::clone(&tls.clusters.read().unwrap()["ns/a"].certified);
        assert!(!Arc::ptr_eq(&first, &third));
        // Both the old and the renewed CA's brokers are accepted meanwhile.
        assert!(
            tls.check_peer("ns/a", Some(&peer(client_cert(&a, "b0"))))
                .is_ok()
        );
        assert!(
            tls.check_peer("ns/a", Some(&peer(client_cert(&renewed, "b1"))))
                .is_ok()
        );
    }

    #[test]
    fn a_bad_bundle_or_key_is_refused() {
        let tls = ControllerTls::new();
        let a = ca("a");
        assert!(matches!(
            tls.set_cluster("ns/a", "ns", "a", b"junk", &a.cert_pem, &a.key_pem),
            Err(TlsError::Bundle(_))
        ));
        assert!(matches!(
            tls.set_cluster(
                "ns/a",
                "ns",
                "a",
                a.cert_pem.as_bytes(),
                &a.cert_pem,
                "junk"
            ),
            Err(TlsError::Issuer(_))
        ));
        assert!(!tls.has_cluster("ns/a"));
    }

    #[test]
    fn server_names_follow_the_cluster() {
        assert_eq!(
            server_name("prod", "events"),
            "controller.events.prod.rill.internal"
        );
    }

    #[tokio::test]
    async fn given_the_server_stops_reading_then_the_port_is_freed() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stream = incoming(listener, ControllerTls::new());
        drop(stream);
        // The accept loop notices at once and drops the listener.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            if TcpListener::bind(addr).await.is_ok() {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{addr} still bound");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
