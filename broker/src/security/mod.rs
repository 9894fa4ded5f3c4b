//! Security of the Kafka listener: who a connection is, and how it proved
//! it.
//!
//! A connection goes through TLS (when the listener has a certificate,
//! [`tls`]), then SASL (when the listener offers mechanisms, [`sasl`],
//! with [`scram`] exchanges checked against the [`credentials`]), then
//! requests. The [`Principal`] is fixed on the connection once
//! authenticated (by SASL, or else by a TLS client certificate); every
//! request of the connection runs as it.
//!
//! What an authenticated principal may do is decided by the [`acls`]
//! [`Authorizer`] (Kafka's ACLs), called for every request from the Kafka
//! API table.
//!
//! Certificates and credentials are files (mounted Secrets) that a
//! [`watch`] task reads again every [`WATCH_INTERVAL`], so rotating either
//! needs no restart.

pub mod acls;
pub mod credentials;
pub mod sasl;
pub mod scram;
pub mod tls;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub use acls::{AclAdmin, AclChanges, AclService, Authorizer, LocalAcls};
pub use credentials::CredentialStore;
pub use sasl::{SaslMechanism, SaslSettings, Session};
pub use tls::{ClientAuth, TlsFiles, TlsListener};

/// How often certificate and credential files are read again.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(2);

/// Who makes a connection's requests, as Kafka names it: `User:alice`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Principal {
    /// `User` for every principal Rill makes.
    pub kind: String,
    pub name: String,
}

impl Principal {
    /// The principal of an authenticated user.
    pub fn user(name: &str) -> Self {
        Self {
            kind: "User".to_owned(),
            name: name.to_owned(),
        }
    }

    /// The principal of a connection that did not authenticate (Kafka's
    /// `User:ANONYMOUS`).
    pub fn anonymous() -> Self {
        Self::user("ANONYMOUS")
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.name)
    }
}

/// How one Kafka listener secures its connections.
#[derive(Debug, Clone, Default)]
pub struct ListenerSecurity {
    /// TLS, when the listener has a certificate.
    pub tls: Option<Arc<TlsListener>>,
    /// SASL, when the listener offers mechanisms.
    pub sasl: Option<Arc<SaslSettings>>,
}

impl ListenerSecurity {
    /// Kafka's name for the listener's protocol: PLAINTEXT, SSL,
    /// SASL_PLAINTEXT or SASL_SSL.
    pub fn protocol(&self) -> &'static str {
        match (self.tls.is_some(), self.sasl.is_some()) {
            (false, false) => "PLAINTEXT",
            (true, false) => "SSL",
            (false, true) => "SASL_PLAINTEXT",
            (true, true) => "SASL_SSL",
        }
    }

    /// A new connection's authentication state; `certificate` is the
    /// principal its TLS client certificate names, if it presented one.
    pub fn session(&self, certificate: Option<Principal>) -> Session {
        Session::new(
            self.sasl.clone(),
            certificate.unwrap_or_else(Principal::anonymous),
        )
    }
}

/// What a listener's security is made from (the broker's flags).
#[derive(Debug, Clone, Default)]
pub struct SecuritySettings {
    pub tls: Option<TlsFiles>,
    pub sasl_mechanisms: Vec<SaslMechanism>,
    pub credentials_file: Option<PathBuf>,
    /// `connections.max.reauth.ms`; `None` for no limit.
    pub session_lifetime: Option<Duration>,
}

/// Why a listener's security cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    #[error("Kafka listener TLS: {0}")]
    Tls(#[from] tls::TlsError),
    #[error("SASL credentials file {path}: {reason}")]
    Credentials { path: PathBuf, reason: String },
}

/// Loads the certificate and credentials `settings` name and starts the
/// tasks that load them again when their files change (until `stop`).
pub fn start(
    settings: &SecuritySettings,
    stop: &CancellationToken,
) -> Result<(ListenerSecurity, Vec<JoinHandle<()>>), SecurityError> {
    let mut tasks = Vec::new();
    let tls = match &settings.tls {
        None => None,
        Some(files) => {
            let listener = Arc::new(TlsListener::load(files.clone())?);
            let reloaded = Arc::clone(&listener);
            tasks.push(watch(
                "Kafka listener certificate",
                files.paths(),
                stop.clone(),
                move |contents| reloaded.reload(contents).map_err(|e| e.to_string()),
            ));
            Some(listener)
        }
    };
    let sasl = match (&settings.sasl_mechanisms[..], &settings.credentials_file) {
        ([], _) => None,
        (_, None) => {
            return Err(SecurityError::Credentials {
                path: PathBuf::new(),
                reason: "SASL is on but no credentials file is set".into(),
            });
        }
        (mechanisms, Some(path)) => {
            let store = Arc::new(CredentialStore::default());
            let text = std::fs::read_to_string(path).map_err(|e| SecurityError::Credentials {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            let users = credentials::parse_credentials(&text).map_err(|reason| {
                SecurityError::Credentials {
                    path: path.clone(),
                    reason,
                }
            })?;
            store.replace_all(users);
            info!(file = %path.display(), users = store.user_count(), "SASL credentials loaded");
            let reloaded = Arc::clone(&store);
            tasks.push(watch(
                "SASL credentials",
                vec![path.clone()],
                stop.clone(),
                move |contents| {
                    let [file] = contents else {
                        return Err("expected one file".into());
                    };
                    let text = std::str::from_utf8(file).map_err(|e| e.to_string())?;
                    reloaded.replace_all(credentials::parse_credentials(text)?);
                    Ok(())
                },
            ));
            if mechanisms.contains(&SaslMechanism::Plain) && tls.is_none() {
                warn!(
                    "SASL PLAIN without TLS sends passwords in clear text; give the listener a certificate"
                );
            }
            Some(Arc::new(SaslSettings {
                mechanisms: mechanisms.to_vec(),
                credentials: store,
                session_lifetime: settings.session_lifetime,
            }))
        }
    };
    Ok((ListenerSecurity { tls, sasl }, tasks))
}

/// Reads `paths` every [`WATCH_INTERVAL`] until `stop`; when their
/// contents differ from what was last seen (`initial` at first), calls
/// `apply` with them. A file that cannot be read is skipped for that round
/// (a Secret volume swaps its files); an `apply` error is logged once per
/// change and the previous contents stay in force.
pub fn watch<F>(
    what: &'static str,
    paths: Vec<PathBuf>,
    stop: CancellationToken,
    mut apply: F,
) -> JoinHandle<()>
where
    F: FnMut(&[Vec<u8>]) -> Result<(), String> + Send + 'static,
{
    let read = move |paths: &[PathBuf]| -> Option<Vec<Vec<u8>>> {
        paths.iter().map(|p| std::fs::read(p).ok()).collect()
    };
    let mut seen = read(&paths);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(WATCH_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let Some(contents) = read(&paths) else {
                continue;
            };
            if seen.as_ref() == Some(&contents) {
                continue;
            }
            match apply(&contents) {
                Ok(()) => info!(what, files = ?paths, "changed files loaded"),
                Err(e) => {
                    warn!(what, files = ?paths, error = %e, "changed files do not load; keeping the previous ones");
                }
            }
            seen = Some(contents);
        }
    })
}

#[cfg(test)]
mod tests;
