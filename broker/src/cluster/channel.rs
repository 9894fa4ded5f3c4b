//! The HTTP/2 connection a follower pulls replication over.
//!
//! tonic's own channel keeps HTTP/2's default 16 KiB frame size, so a
//! leader sends a 4 MiB answer as 256 DATA frames, each its own `writev`,
//! and the follower reads it 8–16 KiB at a time. This connection advertises
//! [`MAX_FRAME_BYTES`] to the leader instead, so the same answer travels in
//! a few large frames and reads. With internal TLS it speaks mutual TLS
//! exactly as tonic's channel would: this broker's certificate, the leader's
//! checked against the cluster CA and the host dialled. It is one
//! connection, not a pool: a fetcher session opens one and drops it when the
//! session ends.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper::client::conn::http2::{Builder, SendRequest};
use hyper::rt::{Read, Write};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rill_process::tls::InternalTls;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tonic::body::Body;

/// Largest HTTP/2 frame the leader may send this follower.
pub const MAX_FRAME_BYTES: u32 = 1 << 20;
/// Flow-control windows: one stream carries every answer of a session, so
/// the stream may use the whole connection window.
const WINDOW_BYTES: u32 = 16 << 20;

/// One HTTP/2 connection, usable as a tonic client's transport.
#[derive(Debug, Clone)]
pub struct Http2Channel {
    send: SendRequest<Body>,
}

/// The rustls client configuration of internal TLS: this broker's
/// certificate, and servers checked against the cluster CA.
pub fn tls_client_config(tls: &InternalTls) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(tls.ca_pem()) {
        let ca = ca.map_err(|e| format!("internal TLS CA: {e}"))?;
        roots.add(ca).map_err(|e| format!("internal TLS CA: {e}"))?;
    }
    let chain = CertificateDer::pem_slice_iter(tls.cert_pem())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("internal TLS certificate: {e}"))?;
    let key = PrivateKeyDer::from_pem_slice(tls.key_pem())
        .map_err(|e| format!("internal TLS key: {e}"))?;
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
    .map_err(|e| format!("internal TLS: {e}"))?
    .with_root_certificates(roots)
    .with_client_auth_cert(chain, key)
    .map_err(|e| format!("internal TLS certificate: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

impl Http2Channel {
    /// Dials `uri` (`http://host:port`, or `https://` with `tls`) and
    /// completes the TLS and HTTP/2 handshakes within `timeout`.
    pub async fn connect(
        uri: &Uri,
        tls: Option<Arc<rustls::ClientConfig>>,
        timeout: Duration,
    ) -> Result<Self, String> {
        let authority = uri
            .authority()
            .ok_or_else(|| format!("{uri}: no host and port"))?;
        tokio::time::timeout(timeout, async {
            let tcp = TcpStream::connect(authority.as_str())
                .await
                .map_err(|e| format!("connecting to {authority}: {e}"))?;
            tcp.set_nodelay(true)
                .map_err(|e| format!("{authority}: {e}"))?;
            match tls {
                None => Self::handshake(TokioIo::new(tcp)).await,
                Some(config) => {
                    let host = authority
                        .host()
                        .trim_start_matches('[')
                        .trim_end_matches(']');
                    let name = ServerName::try_from(host.to_owned())
                        .map_err(|e| format!("{host}: {e}"))?;
                    let stream = TlsConnector::from(config)
                        .connect(name, tcp)
                        .await
                        .map_err(|e| format!("TLS handshake with {authority}: {e}"))?;
                    Self::handshake(TokioIo::new(stream)).await
                }
            }
            .map_err(|e| format!("HTTP/2 handshake with {authority}: {e}"))
        })
        .await
        .map_err(|_| format!("connecting to {authority} timed out"))?
    }

    async fn handshake<T>(io: T) -> Result<Self, String>
    where
        T: Read + Write + Unpin + Send + 'static,
    {
        let (send, connection) = Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .max_frame_size(MAX_FRAME_BYTES)
            .initial_stream_window_size(WINDOW_BYTES)
            .initial_connection_window_size(WINDOW_BYTES)
            .handshake(io)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "replication connection ended");
            }
        });
        Ok(Self { send })
    }
}

impl tower_service::Service<Request<Body>> for Http2Channel {
    type Response = Response<Incoming>;
    type Error = hyper::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.send.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        Box::pin(self.send.send_request(request))
    }
}
