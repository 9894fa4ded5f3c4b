//! The StreamCluster listeners a User's client can connect to.
//!
//! A listener is `{name, port, tls, authentication}` in
//! `StreamCluster.spec.listeners`; without the field a cluster has one
//! listener, `tls` with TLS and SCRAM on `spec.ports.kafka` (9093 when
//! unset). The list is read from the cluster object as stored (its JSON),
//! so Users work with any StreamCluster version that carries the field.

use serde::Deserialize;
use serde_json::Value;

use crate::crd::AuthenticationType;

/// How clients authenticate on a listener.
#[derive(Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ListenerAuthentication {
    /// No authentication (principal `User:ANONYMOUS`).
    None,
    /// SASL SCRAM (and PLAIN) against the cluster's credentials file.
    Scram,
    /// TLS client certificates signed by the clients CA.
    Mtls,
}

/// One Kafka listener of a cluster.
#[derive(Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Listener {
    /// Listener name.
    pub name: String,
    /// Port, on the bootstrap Service and on every broker.
    pub port: i32,
    /// Whether connections use TLS.
    #[serde(default)]
    pub tls: bool,
    /// Client authentication.
    #[serde(default = "no_authentication")]
    pub authentication: ListenerAuthentication,
}

fn no_authentication() -> ListenerAuthentication {
    ListenerAuthentication::None
}

impl Listener {
    /// Kafka's `security.protocol` for a client of this listener.
    pub fn security_protocol(&self) -> &'static str {
        match (self.tls, self.authentication) {
            (true, ListenerAuthentication::Scram) => "SASL_SSL",
            (false, ListenerAuthentication::Scram) => "SASL_PLAINTEXT",
            (true, _) => "SSL",
            (false, _) => "PLAINTEXT",
        }
    }
}

/// Port of the default listener when `spec.ports.kafka` is unset.
pub const DEFAULT_LISTENER_PORT: i32 = 9093;

/// The listener of a cluster that declares none, on `port`.
pub fn default_listeners(port: i32) -> Vec<Listener> {
    vec![Listener {
        name: "tls".to_owned(),
        port,
        tls: true,
        authentication: ListenerAuthentication::Scram,
    }]
}

/// The listeners of a StreamCluster, from its stored JSON.
pub fn listeners(cluster: &Value) -> Result<Vec<Listener>, String> {
    match cluster.pointer("/spec/listeners") {
        None | Some(Value::Null) => {
            let port = cluster
                .pointer("/spec/ports/kafka")
                .and_then(Value::as_i64)
                .and_then(|p| i32::try_from(p).ok())
                .unwrap_or(DEFAULT_LISTENER_PORT);
            Ok(default_listeners(port))
        }
        Some(list) => serde_json::from_value(list.clone())
            .map_err(|e| format!("spec.listeners of the StreamCluster cannot be read: {e}")),
    }
}

/// The authentication a listener needs for a User of `type_`.
pub fn needed(type_: AuthenticationType) -> ListenerAuthentication {
    match type_ {
        AuthenticationType::ScramSha512 => ListenerAuthentication::Scram,
        AuthenticationType::Tls => ListenerAuthentication::Mtls,
    }
}

/// The listener a User of `type_` connects to: the one named `wanted`,
/// else the first whose authentication matches. The error says why none
/// fits.
pub fn select<'a>(
    all: &'a [Listener],
    type_: AuthenticationType,
    wanted: Option<&str>,
) -> Result<&'a Listener, String> {
    let auth = needed(type_);
    let auth_name = match auth {
        ListenerAuthentication::Scram => "scram",
        ListenerAuthentication::Mtls => "mtls",
        ListenerAuthentication::None => "none",
    };
    match wanted {
        Some(name) => {
            let listener = all.iter().find(|l| l.name == name).ok_or_else(|| {
                format!(
                    "the StreamCluster has no listener named {name:?} (it has: {})",
                    names(all)
                )
            })?;
            if listener.authentication != auth {
                return Err(format!(
                    "listener {name:?} does not authenticate with {auth_name}, which a {} user needs",
                    type_.as_str()
                ));
            }
            Ok(listener)
        }
        None => all.iter().find(|l| l.authentication == auth).ok_or_else(|| {
            format!(
                "the StreamCluster has no listener with authentication {auth_name}, which a {} user needs (it has: {})",
                type_.as_str(),
                names(all)
            )
        }),
    }
}

fn names(all: &[Listener]) -> String {
    if all.is_empty() {
        return "none".to_owned();
    }
    all.iter()
        .map(|l| l.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn given_no_listeners_field_when_reading_then_the_default_tls_scram_listener_is_used() {
        let all = listeners(&json!({"spec": {"brokers": 3}})).expect("listeners");
        assert_eq!(all, default_listeners(9093));
        let moved = listeners(&json!({"spec": {"ports": {"kafka": 19093}}})).expect("listeners");
        assert_eq!(
            moved[0].port, 19093,
            "spec.ports.kafka moves the default listener"
        );
        let scram = select(&all, AuthenticationType::ScramSha512, None).expect("scram");
        assert_eq!((scram.port, scram.security_protocol()), (9093, "SASL_SSL"));
        let err = select(&all, AuthenticationType::Tls, None).expect_err("no mtls listener");
        assert!(
            err.contains("no listener with authentication mtls"),
            "{err}"
        );
    }

    #[test]
    fn given_several_listeners_when_selecting_then_the_name_or_the_authentication_decides() {
        let cluster = json!({"spec": {"listeners": [
            {"name": "plain", "port": 9092, "tls": false, "authentication": "none"},
            {"name": "internal", "port": 9094, "tls": false, "authentication": "scram"},
            {"name": "tls", "port": 9093, "tls": true, "authentication": "scram"},
            {"name": "certs", "port": 9095, "tls": true, "authentication": "mtls"},
        ]}});
        let all = listeners(&cluster).expect("listeners");
        let first = select(&all, AuthenticationType::ScramSha512, None).expect("first scram");
        assert_eq!(
            (first.name.as_str(), first.security_protocol()),
            ("internal", "SASL_PLAINTEXT")
        );
        let named = select(&all, AuthenticationType::ScramSha512, Some("tls")).expect("named");
        assert_eq!(named.port, 9093);
        let certs = select(&all, AuthenticationType::Tls, None).expect("mtls");
        assert_eq!((certs.port, certs.security_protocol()), (9095, "SSL"));
        let err = select(&all, AuthenticationType::Tls, Some("tls")).expect_err("wrong auth");
        assert!(err.contains("does not authenticate with mtls"), "{err}");
        let err = select(&all, AuthenticationType::Tls, Some("nope")).expect_err("unknown");
        assert!(err.contains("plain, internal, tls, certs"), "{err}");
    }

    #[test]
    fn given_a_malformed_listeners_field_when_reading_then_the_error_says_so() {
        let err = listeners(&json!({"spec": {"listeners": [{"name": 1}]}})).expect_err("bad");
        assert!(
            err.starts_with("spec.listeners of the StreamCluster"),
            "{err}"
        );
    }
}
