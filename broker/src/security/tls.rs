//! TLS on a Kafka listener (rustls, TLS 1.2 and 1.3).
//!
//! The certificate chain and key are PEM files (a mounted Secret). They are
//! read at start, where a problem stops the broker with the reason, and
//! again every [`super::WATCH_INTERVAL`]: a changed pair is loaded and used
//! for every new connection (open connections keep theirs), so rotating a
//! certificate needs no restart. A changed pair that does not load is
//! reported and ignored; the broker keeps serving with the old one.
//!
//! With a client CA (`--kafka-tls-client-ca-file`) the listener asks for a
//! client certificate and checks it against that CA: `required` refuses a
//! client without one, `requested` lets it in anonymously. A verified
//! client certificate names the connection's principal: `User:` and the
//! common name (CN) of its subject, the same principal a SCRAM user of that
//! name has. A certificate without a CN is refused. The CA file is
//! reloaded with the certificate and key.
//!
//! A client that speaks plaintext to a TLS port is recognised by its first
//! byte (a TLS connection starts with a handshake record, 0x16; a Kafka
//! request starts with its size, whose first byte is 0x00) and closed at
//! once with a log line, and so is a handshake that does not finish within
//! [`HANDSHAKE_TIMEOUT`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use thiserror::Error;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use super::Principal;

/// Longest a client may take to finish the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The first byte of a TLS record carrying a handshake message.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Where a listener's certificate, key and client CA are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, the broker's certificate first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// PEM CA certificates client certificates must chain to; `None` asks
    /// clients for no certificate.
    pub client_ca: Option<PathBuf>,
    /// Whether a client without a certificate is refused (with a client CA).
    pub client_auth: ClientAuth,
}

/// Whether a TLS listener with a client CA requires client certificates
/// (Kafka `ssl.client.auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ClientAuth {
    /// A client without a certificate is refused.
    #[default]
    Required,
    /// A client without a certificate is let in, anonymous (or as its
    /// SASL user).
    Requested,
}

impl TlsFiles {
    /// The files read, in the order [`TlsListener::reload`] takes them.
    pub fn paths(&self) -> Vec<PathBuf> {
        let mut paths = vec![self.cert.clone(), self.key.clone()];
        paths.extend(self.client_ca.clone());
        paths
    }
}

/// Why TLS settings cannot be used.
#[derive(Debug, Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: PathBuf },
    #[error("{path} holds no PEM private key: {reason}")]
    NoKey { path: PathBuf, reason: String },
    #[error("{path} holds no usable CA certificate: {reason}")]
    ClientCa { path: PathBuf, reason: String },
    #[error("the certificate and key cannot be used: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Why a connection on a TLS listener was closed before its first request.
#[derive(Debug, Error)]
pub enum Refusal {
    #[error("the client speaks plaintext to a TLS listener")]
    Plaintext,
    #[error("the client closed the connection before the TLS handshake")]
    Closed,
    #[error("the TLS handshake did not finish within {}s", HANDSHAKE_TIMEOUT.as_secs())]
    Timeout,
    #[error("TLS handshake failed: {0}")]
    Handshake(std::io::Error),
    #[error("the client certificate names no principal: {0}")]
    NoPrincipal(String),
}

impl Refusal {
    /// Short stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Plaintext => "plaintext_on_tls",
            Self::Closed => "closed_before_tls",
            Self::Timeout => "tls_timeout",
            Self::Handshake(_) => "tls_handshake",
            Self::NoPrincipal(_) => "tls_no_principal",
        }
    }
}

/// The TLS side of a listener: its current server configuration, replaced
/// when the files change.
#[derive(Debug)]
pub struct TlsListener {
    files: TlsFiles,
    config: RwLock<Arc<ServerConfig>>,
}

impl TlsListener {
    /// Loads the certificate, key and client CA.
    pub fn load(files: TlsFiles) -> Result<Self, TlsError> {
        let contents = files
            .paths()
            .into_iter()
            .map(|path| std::fs::read(&path).map_err(|source| TlsError::Read { path, source }))
            .collect::<Result<Vec<_>, _>>()?;
        let config = server_config(&files, &contents)?;
        Ok(Self {
            files,
            config: RwLock::new(Arc::new(config)),
        })
    }

    /// The files this listener reads.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// Loads changed file contents, in [`TlsFiles::paths`] order; the old
    /// configuration stays when they do not load.
    pub fn reload(&self, contents: &[Vec<u8>]) -> Result<(), TlsError> {
        let config = server_config(&self.files, contents)?;
        *self.config.write() = Arc::new(config);
        Ok(())
    }

    /// Runs the TLS handshake on an accepted connection; returns the
    /// stream and the principal its client certificate names, if any.
    pub async fn accept(
        &self,
        stream: TcpStream,
    ) -> Result<(TlsStream<TcpStream>, Option<Principal>), Refusal> {
        let mut first = [0u8; 1];
        let peeked = tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.peek(&mut first)).await;
        match peeked {
            Err(_) => return Err(Refusal::Timeout),
            Ok(Err(e)) => return Err(Refusal::Handshake(e)),
            Ok(Ok(0)) => return Err(Refusal::Closed),
            Ok(Ok(_)) if first[0] != TLS_HANDSHAKE_RECORD => return Err(Refusal::Plaintext),
            Ok(Ok(_)) => {}
        }
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::clone(&self.config.read()));
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
            Err(_) => Err(Refusal::Timeout),
            Ok(Err(e)) => Err(Refusal::Handshake(e)),
            Ok(Ok(tls)) => {
                let principal = match tls.get_ref().1.peer_certificates() {
                    Some([leaf, ..]) => Some(principal_of(leaf).map_err(Refusal::NoPrincipal)?),
                    _ => None,
                };
                Ok((tls, principal))
            }
        }
    }
}

/// `User:<CN>` of a verified client certificate.
pub fn principal_of(certificate: &CertificateDer<'_>) -> Result<Principal, String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(certificate.as_ref())
        .map_err(|e| format!("unreadable certificate: {e}"))?;
    let subject = parsed.subject();
    let cn = subject
        .iter_common_name()
        .next()
        .ok_or_else(|| format!("subject `{subject}` has no common name (CN)"))?;
    let name = cn
        .as_str()
        .map_err(|e| format!("subject `{subject}`: CN is not a string: {e}"))?;
    if name.is_empty() {
        return Err(format!("subject `{subject}` has an empty common name"));
    }
    Ok(Principal::user(name))
}

/// A rustls server configuration from PEM contents, in [`TlsFiles::paths`]
/// order.
fn server_config(files: &TlsFiles, contents: &[Vec<u8>]) -> Result<ServerConfig, TlsError> {
    let (cert_pem, key_pem, ca_pem) = match contents {
        [cert, key] => (cert, key, None),
        [cert, key, ca] => (cert, key, Some(ca)),
        _ => {
            return Err(TlsError::NoCertificate {
                path: files.cert.clone(),
            });
        }
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|_| TlsError::NoCertificate {
            path: files.cert.clone(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: files.cert.clone(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsError::NoKey {
        path: files.key.clone(),
        reason: e.to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let builder = match (ca_pem, &files.client_ca) {
        (Some(ca_pem), Some(ca_path)) => {
            let ca_error = |reason: String| TlsError::ClientCa {
                path: ca_path.clone(),
                reason,
            };
            let mut roots = rustls::RootCertStore::empty();
            for ca in CertificateDer::pem_slice_iter(ca_pem) {
                let ca = ca.map_err(|e| ca_error(e.to_string()))?;
                roots.add(ca).map_err(|e| ca_error(e.to_string()))?;
            }
            if roots.is_empty() {
                return Err(ca_error("no PEM certificate".into()));
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = match files.client_auth {
                ClientAuth::Required => verifier,
                ClientAuth::Requested => verifier.allow_unauthenticated(),
            };
            builder
                .with_client_cert_verifier(verifier.build().map_err(|e| ca_error(e.to_string()))?)
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(builder.with_single_cert(chain, key)?)
}
