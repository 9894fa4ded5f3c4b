//! Mutual TLS between Rill's own processes: broker to broker (replication),
//! broker to controller, and the broker's gRPC client API.
//!
//! Every process of a cluster holds a certificate signed by the cluster CA
//! and the CA itself. Its gRPC servers ask every peer for a certificate and
//! refuse one that does not chain to that CA (or none at all); its gRPC
//! clients present their certificate and check the server's against the same
//! CA and the host name they dial (or the name given for it). A peer that
//! speaks plaintext to a TLS port fails the handshake and is closed.
//!
//! The files are read once at start; the operator rolls the brokers when
//! they change (docs/security.md).

use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

use crate::config::{ConfigError, invalid};

/// The `--internal-tls-*` flags every Rill server binary takes.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct InternalTlsArgs {
    /// PEM certificate chain this process presents to its peers (broker to
    /// broker, broker to controller); with `--internal-tls-key-file` and
    /// `--internal-tls-ca-file`, every gRPC port speaks mutual TLS only.
    #[arg(
        long,
        env = "RILL_INTERNAL_TLS_CERT_FILE",
        requires_all = ["internal_tls_key_file", "internal_tls_ca_file"]
    )]
    pub internal_tls_cert_file: Option<PathBuf>,

    /// PEM private key of `--internal-tls-cert-file`.
    #[arg(
        long,
        env = "RILL_INTERNAL_TLS_KEY_FILE",
        requires = "internal_tls_cert_file"
    )]
    pub internal_tls_key_file: Option<PathBuf>,

    /// PEM cluster CA: peers' certificates must chain to it.
    #[arg(
        long,
        env = "RILL_INTERNAL_TLS_CA_FILE",
        requires = "internal_tls_cert_file"
    )]
    pub internal_tls_ca_file: Option<PathBuf>,
}

const CERT_FLAG: &str = "--internal-tls-cert-file";
const CERT_ENV: &str = "RILL_INTERNAL_TLS_CERT_FILE";
const KEY_FLAG: &str = "--internal-tls-key-file";
const KEY_ENV: &str = "RILL_INTERNAL_TLS_KEY_FILE";
const CA_FLAG: &str = "--internal-tls-ca-file";
const CA_ENV: &str = "RILL_INTERNAL_TLS_CA_FILE";

impl InternalTlsArgs {
    /// The loaded certificates, or `None` when the flags are not set.
    pub fn load(&self) -> Result<Option<InternalTls>, ConfigError> {
        match (
            &self.internal_tls_cert_file,
            &self.internal_tls_key_file,
            &self.internal_tls_ca_file,
        ) {
            (None, None, None) => Ok(None),
            (Some(cert), Some(key), Some(ca)) => InternalTls::load(cert, key, ca).map(Some),
            _ => Err(invalid(
                CERT_FLAG,
                CERT_ENV,
                format!("{CERT_FLAG}, {KEY_FLAG} and {CA_FLAG} go together"),
            )),
        }
    }
}

/// A process's certificate, key and cluster CA, checked and ready for tonic.
#[derive(Debug, Clone)]
pub struct InternalTls {
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
    ca_pem: Vec<u8>,
}

fn read(path: &Path, flag: &'static str, env: &'static str) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|e| invalid(flag, env, format!("{}: {e}", path.display())))
}

impl InternalTls {
    /// Reads and checks the three PEM files.
    pub fn load(cert: &Path, key: &Path, ca: &Path) -> Result<Self, ConfigError> {
        Self::from_pem(
            read(cert, CERT_FLAG, CERT_ENV)?,
            read(key, KEY_FLAG, KEY_ENV)?,
            read(ca, CA_FLAG, CA_ENV)?,
        )
    }

    /// Checks PEM contents: at least one certificate in the chain and in the
    /// CA, and a private key.
    pub fn from_pem(
        cert_pem: Vec<u8>,
        key_pem: Vec<u8>,
        ca_pem: Vec<u8>,
    ) -> Result<Self, ConfigError> {
        let certificates = |pem: &[u8], flag, env| {
            let certs = CertificateDer::pem_slice_iter(pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| invalid(flag, env, format!("not PEM certificates: {e}")))?;
            if certs.is_empty() {
                return Err(invalid(flag, env, "holds no PEM certificate"));
            }
            Ok(())
        };
        certificates(&cert_pem, CERT_FLAG, CERT_ENV)?;
        certificates(&ca_pem, CA_FLAG, CA_ENV)?;
        PrivateKeyDer::from_pem_slice(&key_pem)
            .map_err(|e| invalid(KEY_FLAG, KEY_ENV, format!("no PEM private key: {e}")))?;
        Ok(Self {
            cert_pem,
            key_pem,
            ca_pem,
        })
    }

    fn identity(&self) -> Identity {
        Identity::from_pem(&self.cert_pem, &self.key_pem)
    }

    fn ca(&self) -> Certificate {
        Certificate::from_pem(&self.ca_pem)
    }

    /// A gRPC server's TLS: this process's certificate, and a client
    /// certificate from the cluster CA required of every peer.
    pub fn server(&self) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(self.identity())
            .client_ca_root(self.ca())
            .client_auth_optional(false)
    }

    /// A gRPC client's TLS: this process's certificate, and the server's
    /// checked against the cluster CA and `server_name` (the host dialled
    /// when `None`).
    pub fn client(&self, server_name: Option<&str>) -> ClientTlsConfig {
        let config = ClientTlsConfig::new()
            .identity(self.identity())
            .ca_certificate(self.ca());
        match server_name {
            Some(name) => config.domain_name(name),
            None => config,
        }
    }

    /// The cluster CA bundle (PEM).
    pub fn ca_pem(&self) -> &[u8] {
        &self.ca_pem
    }

    /// This process's certificate chain (PEM), for clients built without
    /// tonic's channel.
    pub fn cert_pem(&self) -> &[u8] {
        &self.cert_pem
    }

    /// The private key of [`Self::cert_pem`] (PEM).
    pub fn key_pem(&self) -> &[u8] {
        &self.key_pem
    }
}

/// The URI for `addr` (`host:port`, or a URI): `https://` with TLS,
/// `http://` without, whatever scheme `addr` had, so that a configured
/// `http://` address can never silently dial plaintext when TLS is on.
pub fn grpc_uri(addr: &str, tls: bool) -> String {
    let rest = addr.split_once("://").map_or(addr, |(_, rest)| rest);
    if tls {
        format!("https://{rest}")
    } else {
        format!("http://{rest}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_scheme_follows_tls() {
        assert_eq!(grpc_uri("b-0:9095", true), "https://b-0:9095");
        assert_eq!(grpc_uri("b-0:9095", false), "http://b-0:9095");
        assert_eq!(grpc_uri("http://x:1", true), "https://x:1");
        assert_eq!(grpc_uri("https://x:1", false), "http://x:1");
    }

    #[test]
    fn bad_pem_names_the_flag() {
        let err = InternalTls::from_pem(b"nope".to_vec(), b"nope".to_vec(), b"nope".to_vec())
            .unwrap_err()
            .to_string();
        assert!(err.contains(CERT_FLAG), "{err}");
        assert!(err.contains("no PEM certificate"), "{err}");
    }

    #[test]
    fn partial_flags_are_refused() {
        let args = InternalTlsArgs {
            internal_tls_cert_file: Some("/x".into()),
            ..Default::default()
        };
        let err = args.load().unwrap_err().to_string();
        assert!(err.contains("go together"), "{err}");
    }

    #[test]
    fn missing_file_names_the_path() {
        let args = InternalTlsArgs {
            internal_tls_cert_file: Some("/nonexistent/cert.pem".into()),
            internal_tls_key_file: Some("/nonexistent/key.pem".into()),
            internal_tls_ca_file: Some("/nonexistent/ca.pem".into()),
        };
        let err = args.load().unwrap_err().to_string();
        assert!(err.contains("/nonexistent/cert.pem"), "{err}");
    }
}
