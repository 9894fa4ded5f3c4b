//! The Secret a User's application reads: everything a Kafka client needs
//! to connect as that user, as separate keys and as two ready-made client
//! configuration files.
//!
//! | key | content |
//! | --- | --- |
//! | `bootstrap.servers` | `host:port` of the listener the user connects to |
//! | `security.protocol` | `SASL_SSL`, `SASL_PLAINTEXT`, `SSL` or `PLAINTEXT` |
//! | `username` | the Kafka username (principal `User:<username>`) |
//! | `sasl.mechanism` | `SCRAM-SHA-512` (scram users) |
//! | `password` | the password (scram users) |
//! | `sasl.jaas.config` | the Java client's JAAS line (scram users) |
//! | `ca.crt` | CA bundle that signs the brokers' certificates (TLS listeners) |
//! | `user.crt`, `user.key` | client certificate and PKCS#8 key (tls users) |
//! | `client.properties` | Java clients and Kafka's tools, PEM inline |
//! | `librdkafka.config` | kcat `-F`, confluent-kafka; files under [`MOUNT_PATH`] |

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{Resource, ResourceExt};

use super::listeners::Listener;
use crate::crd::User;
use crate::stream_cluster::build::labels;

/// Where `librdkafka.config` expects the Secret to be mounted (its files
/// `ca.crt`, `user.crt` and `user.key`).
pub const MOUNT_PATH: &str = "/etc/rill/user";

/// Label naming the User a Secret belongs to.
pub const USER_LABEL: &str = "rill.dev/user";

/// The SASL mechanism of scram users.
pub const SCRAM_MECHANISM: &str = "SCRAM-SHA-512";

/// How the user authenticates, with its secret material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientAuth<'a> {
    /// SASL SCRAM-SHA-512 with this password.
    Scram {
        /// The password.
        password: &'a str,
    },
    /// A client certificate.
    Tls {
        /// Certificate, PEM.
        cert_pem: &'a str,
        /// PKCS#8 key, PEM.
        key_pem: &'a str,
    },
}

/// What goes into a User's Secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSettings<'a> {
    /// Bootstrap address of the listener.
    pub bootstrap: String,
    /// The listener.
    pub listener: &'a Listener,
    /// Kafka username.
    pub username: &'a str,
    /// Authentication.
    pub auth: ClientAuth<'a>,
    /// CA bundle of the brokers' certificates (required on TLS listeners).
    pub ca_bundle: Option<&'a str>,
}

/// The Secret name of a User.
pub fn secret_name(user: &User) -> String {
    user.spec
        .secret_name
        .clone()
        .unwrap_or_else(|| user.name_any())
}

/// The Java JAAS line for SCRAM with `username` and `password` (quotes
/// and backslashes escaped).
pub fn jaas(username: &str, password: &str) -> String {
    let quote = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    format!(
        "org.apache.kafka.common.security.scram.ScramLoginModule required username=\"{}\" password=\"{}\";",
        quote(username),
        quote(password)
    )
}

/// A value escaped for a Java properties file: backslashes, line breaks
/// and leading blanks escaped, non-ASCII as `\uXXXX` (Java reads
/// properties as ISO-8859-1). A PEM value keeps its lines: each line
/// break is written as `\n` followed by a continuation.
pub fn properties_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    // Java drops blanks at the start of a value and of a continuation line.
    let mut line_start = true;
    for c in value.chars() {
        let at_start = std::mem::replace(&mut line_start, c == '\n');
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n\\\n    "),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            ' ' if at_start => out.push_str("\\ "),
            c if c.is_ascii() && !c.is_ascii_control() => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    // A trailing continuation would swallow the next line.
    if let Some(stripped) = out.strip_suffix("\\\n    ") {
        out = stripped.to_owned();
    }
    out
}

/// `client.properties`: the configuration of a Java client or Kafka tool.
pub fn java_properties(settings: &ClientSettings<'_>) -> String {
    let mut lines = vec![
        format!(
            "# Kafka client configuration of user {} (written by rill-operator).",
            settings.username
        ),
        format!(
            "bootstrap.servers={}",
            properties_value(&settings.bootstrap)
        ),
        format!(
            "security.protocol={}",
            settings.listener.security_protocol()
        ),
    ];
    if let ClientAuth::Scram { password } = settings.auth {
        lines.push(format!("sasl.mechanism={SCRAM_MECHANISM}"));
        lines.push(format!(
            "sasl.jaas.config={}",
            properties_value(&jaas(settings.username, password))
        ));
    }
    if settings.listener.tls {
        if let Some(ca) = settings.ca_bundle {
            lines.push("ssl.truststore.type=PEM".to_owned());
            lines.push(format!(
                "ssl.truststore.certificates={}",
                properties_value(ca)
            ));
        }
        if let ClientAuth::Tls { cert_pem, key_pem } = settings.auth {
            lines.push("ssl.keystore.type=PEM".to_owned());
            lines.push(format!(
                "ssl.keystore.certificate.chain={}",
                properties_value(cert_pem)
            ));
            lines.push(format!("ssl.keystore.key={}", properties_value(key_pem)));
        }
    }
    lines.join("\n") + "\n"
}

/// `librdkafka.config`: librdkafka's properties (kcat `-F`,
/// confluent-kafka), with certificates read from the Secret mounted at
/// [`MOUNT_PATH`].
pub fn librdkafka_config(settings: &ClientSettings<'_>) -> String {
    let mut lines = vec![
        format!(
            "# librdkafka configuration of user {} (written by rill-operator).",
            settings.username
        ),
        format!("# Certificates are read from this Secret mounted at {MOUNT_PATH}."),
        format!("bootstrap.servers={}", settings.bootstrap),
        format!(
            "security.protocol={}",
            settings.listener.security_protocol().to_ascii_lowercase()
        ),
    ];
    if let ClientAuth::Scram { password } = settings.auth {
        lines.push(format!("sasl.mechanisms={SCRAM_MECHANISM}"));
        lines.push(format!("sasl.username={}", settings.username));
        lines.push(format!("sasl.password={password}"));
    }
    if settings.listener.tls {
        if settings.ca_bundle.is_some() {
            lines.push(format!("ssl.ca.location={MOUNT_PATH}/ca.crt"));
        }
        if let ClientAuth::Tls { .. } = settings.auth {
            lines.push(format!("ssl.certificate.location={MOUNT_PATH}/user.crt"));
            lines.push(format!("ssl.key.location={MOUNT_PATH}/user.key"));
        }
    }
    lines.join("\n") + "\n"
}

/// Every key of the Secret (see the module documentation).
pub fn data(settings: &ClientSettings<'_>) -> BTreeMap<String, String> {
    let mut data = BTreeMap::from([
        ("bootstrap.servers".to_owned(), settings.bootstrap.clone()),
        (
            "security.protocol".to_owned(),
            settings.listener.security_protocol().to_owned(),
        ),
        ("username".to_owned(), settings.username.to_owned()),
        ("client.properties".to_owned(), java_properties(settings)),
        ("librdkafka.config".to_owned(), librdkafka_config(settings)),
    ]);
    if settings.listener.tls
        && let Some(ca) = settings.ca_bundle
    {
        data.insert("ca.crt".to_owned(), ca.to_owned());
    }
    match settings.auth {
        ClientAuth::Scram { password } => {
            data.insert("sasl.mechanism".to_owned(), SCRAM_MECHANISM.to_owned());
            data.insert("password".to_owned(), password.to_owned());
            data.insert(
                "sasl.jaas.config".to_owned(),
                jaas(settings.username, password),
            );
        }
        ClientAuth::Tls { cert_pem, key_pem } => {
            data.insert("user.crt".to_owned(), cert_pem.to_owned());
            data.insert("user.key".to_owned(), key_pem.to_owned());
        }
    }
    data
}

/// The Secret `name` in the User's namespace, owned by the User (deleted
/// with it), holding `data`.
pub fn build(user: &User, name: &str, data: BTreeMap<String, String>) -> Secret {
    let owner = user.controller_owner_ref(&()).map(|mut r| {
        r.block_owner_deletion = Some(true);
        r
    });
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: user.namespace(),
            labels: Some(BTreeMap::from([
                (
                    labels::MANAGED_BY.to_owned(),
                    labels::MANAGED_BY_VALUE.to_owned(),
                ),
                (labels::PART_OF.to_owned(), "rill".to_owned()),
                (USER_LABEL.to_owned(), user.name_any()),
                (labels::CLUSTER.to_owned(), user.spec.cluster.name.clone()),
            ])),
            owner_references: owner.map(|r| vec![r]),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".to_owned()),
        data: Some(
            data.into_iter()
                .map(|(k, v)| (k, ByteString(v.into_bytes())))
                .collect(),
        ),
        ..Secret::default()
    }
}

/// Whether `secret` belongs to `user` (a controller owner reference with
/// its uid).
pub fn owned_by(secret: &Secret, user: &User) -> bool {
    let Some(uid) = user.uid() else {
        return false;
    };
    secret
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|r| r.uid == uid && r.kind == "User")
}

/// The text of key `key` of a Secret.
pub fn text(secret: &Secret, key: &str) -> Option<String> {
    secret
        .data
        .as_ref()?
        .get(key)
        .and_then(|v| String::from_utf8(v.0.clone()).ok())
        .or_else(|| secret.string_data.as_ref()?.get(key).cloned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::user::fixtures::user;
    use crate::user::listeners::ListenerAuthentication;

    const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIBca\n-----END CERTIFICATE-----\n";

    fn listener(tls: bool, authentication: ListenerAuthentication) -> Listener {
        Listener {
            name: "l".into(),
            port: 9093,
            tls,
            authentication,
        }
    }

    /// Java's `Properties.load`, enough to read back what we write:
    /// continuations, `\n`, `\\`, `\uXXXX`, leading blanks.
    fn load_properties(text: &str) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let mut logical = String::new();
        let mut lines = text.lines();
        while let Some(line) = lines.next() {
            let mut line = line.trim_start().to_owned();
            if logical.is_empty() && (line.starts_with('#') || line.is_empty()) {
                continue;
            }
            loop {
                let trailing = line.chars().rev().take_while(|c| *c == '\\').count();
                if trailing % 2 == 1 {
                    line.pop();
                    logical.push_str(&line);
                    line = lines.next().unwrap_or_default().trim_start().to_owned();
                } else {
                    logical.push_str(&line);
                    break;
                }
            }
            let (key, raw) = logical.split_once('=').expect("key=value");
            let mut value = String::new();
            let mut chars = raw.chars();
            while let Some(c) = chars.next() {
                if c != '\\' {
                    value.push(c);
                    continue;
                }
                match chars.next() {
                    Some('n') => value.push('\n'),
                    Some('r') => value.push('\r'),
                    Some('t') => value.push('\t'),
                    Some('u') => {
                        let hex: String = chars.by_ref().take(4).collect();
                        let unit = u16::from_str_radix(&hex, 16).expect("hex");
                        value.extend(char::decode_utf16([unit]).map(|c| c.unwrap_or('?')));
                    }
                    Some(other) => value.push(other),
                    None => {}
                }
            }
            out.insert(key.to_owned(), value);
            logical.clear();
        }
        out
    }

    #[test]
    fn given_a_scram_user_on_a_tls_listener_when_building_then_every_key_is_there() {
        let l = listener(true, ListenerAuthentication::Scram);
        let settings = ClientSettings {
            bootstrap: "events-bootstrap.data.svc:9093".into(),
            listener: &l,
            username: "team.app",
            auth: ClientAuth::Scram { password: "p4ss" },
            ca_bundle: Some(CA),
        };
        let d = data(&settings);
        let keys: Vec<&str> = d.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "bootstrap.servers",
                "ca.crt",
                "client.properties",
                "librdkafka.config",
                "password",
                "sasl.jaas.config",
                "sasl.mechanism",
                "security.protocol",
                "username"
            ]
        );
        assert_eq!(d["security.protocol"], "SASL_SSL");
        assert_eq!(d["sasl.mechanism"], "SCRAM-SHA-512");
        assert_eq!(
            d["sasl.jaas.config"],
            "org.apache.kafka.common.security.scram.ScramLoginModule required username=\"team.app\" password=\"p4ss\";"
        );
        let props = load_properties(&d["client.properties"]);
        assert_eq!(props["bootstrap.servers"], "events-bootstrap.data.svc:9093");
        assert_eq!(props["security.protocol"], "SASL_SSL");
        assert_eq!(props["sasl.mechanism"], "SCRAM-SHA-512");
        assert_eq!(props["sasl.jaas.config"], d["sasl.jaas.config"]);
        assert_eq!(props["ssl.truststore.type"], "PEM");
        assert_eq!(props["ssl.truststore.certificates"], CA);
        assert!(!props.contains_key("ssl.keystore.type"));
        let rdk = &d["librdkafka.config"];
        for line in [
            "security.protocol=sasl_ssl",
            "sasl.mechanisms=SCRAM-SHA-512",
            "sasl.username=team.app",
            "sasl.password=p4ss",
            "ssl.ca.location=/etc/rill/user/ca.crt",
        ] {
            assert!(rdk.lines().any(|l| l == line), "{line} in {rdk}");
        }
    }

    #[test]
    fn given_a_tls_user_when_building_then_the_certificate_goes_in_both_files() {
        let l = listener(true, ListenerAuthentication::Mtls);
        let cert = "-----BEGIN CERTIFICATE-----\nAAA\nBBB\n-----END CERTIFICATE-----\n";
        let key = "-----BEGIN PRIVATE KEY-----\nCCC\n-----END PRIVATE KEY-----\n";
        let settings = ClientSettings {
            bootstrap: "events-bootstrap.data.svc:9094".into(),
            listener: &l,
            username: "app",
            auth: ClientAuth::Tls {
                cert_pem: cert,
                key_pem: key,
            },
            ca_bundle: Some(CA),
        };
        let d = data(&settings);
        assert_eq!(d["security.protocol"], "SSL");
        assert_eq!(d["user.crt"], cert);
        assert_eq!(d["user.key"], key);
        for absent in ["password", "sasl.mechanism", "sasl.jaas.config"] {
            assert!(!d.contains_key(absent), "{absent}");
        }
        let props = load_properties(&d["client.properties"]);
        assert_eq!(props["ssl.keystore.type"], "PEM");
        assert_eq!(props["ssl.keystore.certificate.chain"], cert);
        assert_eq!(props["ssl.keystore.key"], key);
        assert!(!props.contains_key("sasl.jaas.config"));
        let rdk = &d["librdkafka.config"];
        assert!(rdk.contains("ssl.certificate.location=/etc/rill/user/user.crt"));
        assert!(rdk.contains("ssl.key.location=/etc/rill/user/user.key"));
        assert!(!rdk.contains("sasl."));
    }

    #[test]
    fn given_a_plaintext_scram_listener_when_building_then_no_tls_settings_are_written() {
        let l = listener(false, ListenerAuthentication::Scram);
        let settings = ClientSettings {
            bootstrap: "b:9092".into(),
            listener: &l,
            username: "app",
            auth: ClientAuth::Scram { password: "pw" },
            ca_bundle: Some(CA),
        };
        let d = data(&settings);
        assert_eq!(d["security.protocol"], "SASL_PLAINTEXT");
        assert!(!d.contains_key("ca.crt"));
        assert!(!d["client.properties"].contains("ssl."));
        assert!(!d["librdkafka.config"].contains("ssl."));
    }

    #[test]
    fn given_awkward_passwords_when_escaping_then_java_reads_them_back_unchanged() {
        for password in [
            r#"back\slash "quoted""#,
            " leading blank",
            "ünïcödé €",
            "a=b:c#d!",
        ] {
            let text = format!("k={}\n", properties_value(&jaas("app", password)));
            let read = load_properties(&text);
            assert_eq!(read["k"], jaas("app", password), "{text}");
            assert!(text.is_ascii(), "{text}");
        }
        assert_eq!(
            jaas("app", r#"a"b\c"#),
            r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="app" password="a\"b\\c";"#
        );
    }

    #[test]
    fn given_a_user_when_building_its_secret_then_it_is_owned_by_the_user_and_labelled() {
        let u = user("team", "app", "2024-01-01T00:00:00Z");
        let s = build(
            &u,
            &secret_name(&u),
            BTreeMap::from([("username".into(), "team.app".into())]),
        );
        assert_eq!(s.metadata.name.as_deref(), Some("app"));
        assert_eq!(s.metadata.namespace.as_deref(), Some("team"));
        assert!(owned_by(&s, &u));
        let owner = &s.metadata.owner_references.as_ref().expect("owner")[0];
        assert_eq!(
            (owner.kind.as_str(), owner.controller),
            ("User", Some(true))
        );
        assert_eq!(text(&s, "username").as_deref(), Some("team.app"));
        let labels = s.metadata.labels.as_ref().expect("labels");
        assert_eq!(labels[USER_LABEL], "app");
        assert_eq!(labels[labels::MANAGED_BY], "rill-operator");
        let mut other = u.clone();
        other.metadata.uid = Some("another".into());
        assert!(!owned_by(&s, &other));
    }
}
