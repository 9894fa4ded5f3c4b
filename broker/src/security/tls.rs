//! TLS on a Kafka listener (rustls, TLS 1.2 and 1.3).
//!
//! The certificate chain and key are PEM files (a mounted Secret). They are
//! read at start, where a problem stops the broker with the reason, and
//! again every [`super::WATCH_INTERVAL`]: a changed pair is loaded and used
//! for every new connection (open connections keep theirs), so rotating a
//! certificate needs no restart. A changed pair that does not load is
//! reported and ignored; the broker keeps serving with the old one.
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
use thiserror::Error;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// Longest a client may take to finish the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The first byte of a TLS record carrying a handshake message.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Where a listener's certificate and key are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, the broker's certificate first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
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
}

impl Refusal {
    /// Short stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Plaintext => "plaintext_on_tls",
            Self::Closed => "closed_before_tls",
            Self::Timeout => "tls_timeout",
            Self::Handshake(_) => "tls_handshake",
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
    /// Loads the certificate and key.
    pub fn load(files: TlsFiles) -> Result<Self, TlsError> {
        let [cert_pem, key_pem] = [&files.cert, &files.key].map(|path| {
            std::fs::read(path).map_err(|source| TlsError::Read {
                path: path.clone(),
                source,
            })
        });
        let config = server_config(&files, &cert_pem?, &key_pem?)?;
        Ok(Self {
            files,
            config: RwLock::new(Arc::new(config)),
        })
    }

    /// The files this listener reads.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// Loads changed file contents; the old configuration stays when they
    /// do not load.
    pub fn reload(&self, cert_pem: &[u8], key_pem: &[u8]) -> Result<(), TlsError> {
        let config = server_config(&self.files, cert_pem, key_pem)?;
        *self.config.write() = Arc::new(config);
        Ok(())
    }

    /// Runs the TLS handshake on an accepted connection.
    pub async fn accept(&self, stream: TcpStream) -> Result<TlsStream<TcpStream>, Refusal> {
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
            Ok(Ok(tls)) => Ok(tls),
        }
    }
}

/// A rustls server configuration from PEM contents.
fn server_config(
    files: &TlsFiles,
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<ServerConfig, TlsError> {
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
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    Ok(config)
}
