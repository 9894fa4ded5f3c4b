//! Step 1 of the StreamCluster pipeline: refuse specs the API schema lets
//! through but the operator cannot honour.
//!
//! The CRD schema already enforces bounds and CEL rules on servers that run
//! them; this step repeats the checks that matter and adds those a schema
//! cannot express. A refused spec becomes `Ready=False` with reason
//! `InvalidSpec` and the reconcile waits for the next change: no retries,
//! no hot loop.

use kube::ResourceExt;

use crate::crd::{ListenerAuthentication, StreamCluster};

/// Why a spec was refused: one human sentence per problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidSpec {
    /// Problems found, in field order.
    pub problems: Vec<String>,
}

impl InvalidSpec {
    /// All problems as one message.
    pub fn message(&self) -> String {
        self.problems.join("; ")
    }
}

/// Longest StreamCluster name: the StatefulSet's pods get a
/// `controller-revision-hash` label of `<name>-<10 chars>` (max 63).
pub const MAX_NAME_LEN: usize = 52;

fn is_dns1035_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_lowercase()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[bytes.len() - 1] != b'-'
}

/// Whether `key` is a valid Kubernetes label key (`[prefix/]name`).
pub fn is_label_key(key: &str) -> bool {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric();
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|part| {
                !part.is_empty()
                    && part
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !part.starts_with('-')
                    && !part.ends_with('-')
            })
    });
    name_ok && prefix_ok
}

/// A listener name: an IANA service name as Kubernetes port names are
/// (1-15 characters).
fn is_listener_name(name: &str) -> bool {
    is_dns1035_label(name) && name.len() <= 15 && !name.contains("--")
}

/// A Kafka principal, `Type:name`, with no `;` (the broker's separator).
fn is_principal(principal: &str) -> bool {
    principal.split_once(':').is_some_and(|(kind, name)| {
        !kind.is_empty() && !name.is_empty() && !kind.contains(char::is_whitespace)
    }) && !principal.contains(';')
}

fn is_config_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

/// Checks a StreamCluster spec.
pub fn validate(sc: &StreamCluster) -> Result<(), InvalidSpec> {
    let mut problems = Vec::new();
    let name = sc.name_any();
    if name.len() > MAX_NAME_LEN {
        problems.push(format!(
            "metadata.name {name:?} is {} characters; at most {MAX_NAME_LEN} are allowed",
            name.len()
        ));
    }
    if !is_dns1035_label(&name) {
        problems.push(format!(
            "metadata.name {name:?} must start with a lower-case letter and contain only lower-case letters, digits and '-'"
        ));
    }
    let spec = &sc.spec;
    if spec.brokers < 1 {
        problems.push(format!(
            "spec.brokers is {}; at least 1 broker is required",
            spec.brokers
        ));
    }
    if spec.image.as_deref().is_some_and(|i| i.trim().is_empty()) {
        problems
            .push("spec.image is empty; remove it to use the operator's default image".to_owned());
    }
    let size = &spec.storage.size.0;
    if !is_positive_quantity(size) {
        problems.push(format!(
            "spec.storage.size {size:?} is not a positive quantity such as 10Gi"
        ));
    }
    let listeners = spec.effective_listeners();
    let mut ports: Vec<(String, i32)> = vec![
        ("spec.ports.client".to_owned(), spec.ports.client),
        ("spec.ports.replication".to_owned(), spec.ports.replication),
        ("spec.ports.http".to_owned(), spec.ports.http),
    ];
    if spec.listeners.is_some() {
        if let Some(kafka) = spec.ports.kafka {
            problems.push(format!(
                "spec.ports.kafka ({kafka}) is the port of the default listener only: with spec.listeners set, remove spec.ports.kafka and give each listener its port"
            ));
        }
        if listeners.is_empty() {
            problems.push("spec.listeners is empty; declare at least one listener or remove the field for the default TLS+SCRAM listener".to_owned());
        }
        for (i, l) in listeners.iter().enumerate() {
            ports.push((format!("spec.listeners[{i}] ({}) port", l.name), l.port));
        }
    } else {
        ports.push((
            "spec.ports.kafka (the default listener)".to_owned(),
            listeners[0].port,
        ));
    }
    for (port_name, port) in &ports {
        if !(1..=65535).contains(port) {
            problems.push(format!("{port_name} is {port}; use 1-65535"));
        }
    }
    for (i, (a_name, a)) in ports.iter().enumerate() {
        for (b_name, b) in &ports[i + 1..] {
            if a == b {
                problems.push(format!("{a_name} and {b_name} are both {a}"));
            }
        }
    }
    for (i, l) in listeners.iter().enumerate() {
        if !is_listener_name(&l.name) {
            problems.push(format!(
                "spec.listeners[{i}].name {:?} must be 1-15 lower-case letters, digits and '-', start with a letter and not end with '-'",
                l.name
            ));
        }
        if ["client", "replication", "http"].contains(&l.name.as_str()) {
            problems.push(format!(
                "spec.listeners[{i}].name {:?} is taken by another broker port",
                l.name
            ));
        }
        if listeners[..i].iter().any(|other| other.name == l.name) {
            problems.push(format!(
                "spec.listeners[{i}].name {:?} is used by an earlier listener",
                l.name
            ));
        }
        if l.authentication == ListenerAuthentication::Mtls && !l.tls {
            problems.push(format!(
                "spec.listeners[{i}] ({}) has authentication mtls without tls: client certificates need TLS; set tls: true",
                l.name
            ));
        }
    }
    for (i, user) in spec.authorization.super_users.iter().enumerate() {
        if !is_principal(user) {
            problems.push(format!(
                "spec.authorization.superUsers[{i}] {user:?} is not a principal such as User:admin"
            ));
        }
    }
    let certificates = &spec.certificates;
    for (field, validity) in [
        (
            "spec.certificates.clusterCa",
            certificates.cluster_ca.validity(),
        ),
        (
            "spec.certificates.clientsCa",
            certificates.clients_ca.validity(),
        ),
        ("spec.certificates.brokerCert", certificates.broker_cert),
    ] {
        if validity.validity_days < 2 || validity.renew_before_days < 1 {
            problems.push(format!(
                "{field}.validityDays must be at least 2 and renewBeforeDays at least 1"
            ));
        } else if validity.renew_before_days >= validity.validity_days {
            problems.push(format!(
                "{field}.renewBeforeDays ({}) must be less than validityDays ({})",
                validity.renew_before_days, validity.validity_days
            ));
        }
    }
    for (key, value) in &spec.config {
        if !is_config_key(key) {
            problems.push(format!(
                "spec.config key {key:?} may contain only letters, digits, '.', '_' and '-'"
            ));
        }
        if value.contains(['\n', '\r']) {
            problems.push(format!(
                "spec.config value of {key:?} contains a line break"
            ));
        } else if is_config_key(key)
            && let Err(why) = rill_proto::broker_config::flag_value(key, value)
        {
            // The brokers' own table: a key they would refuse at start.
            problems.push(format!("spec.config {why}"));
        }
    }
    if let Some(rack) = &spec.rack
        && !is_label_key(&rack.topology_key)
    {
        problems.push(format!(
            "spec.rack.topologyKey {:?} is not a valid label key",
            rack.topology_key
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(InvalidSpec { problems })
    }
}

/// Accepts the usual storage quantities: digits, optional fraction, optional
/// binary or decimal suffix, greater than zero.
fn is_positive_quantity(q: &str) -> bool {
    const SUFFIXES: [&str; 13] = [
        "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "k", "M", "G", "T", "P", "E", "",
    ];
    SUFFIXES.iter().any(|suffix| {
        q.strip_suffix(suffix).is_some_and(|number| {
            let mut parts = number.splitn(2, '.');
            let whole = parts.next().unwrap_or_default();
            let fraction = parts.next();
            !whole.is_empty()
                && whole.bytes().all(|b| b.is_ascii_digit())
                && fraction.is_none_or(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()))
                && number.bytes().any(|b| (b'1'..=b'9').contains(&b))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{ListenerSpec, RackSpec};
    use crate::stream_cluster::build::fixtures::cluster;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    #[test]
    fn given_the_fixture_when_validating_then_it_is_accepted() {
        assert_eq!(validate(&cluster()), Ok(()));
    }

    #[test]
    fn given_zero_brokers_when_validating_then_the_message_says_so() {
        let mut sc = cluster();
        sc.spec.brokers = 0;
        let err = validate(&sc).expect_err("invalid");
        assert_eq!(
            err.problems,
            vec!["spec.brokers is 0; at least 1 broker is required"]
        );
    }

    #[test]
    fn given_clashing_ports_and_bad_config_when_validating_then_every_problem_is_listed() {
        let mut sc = cluster();
        sc.spec.ports.http = 9093;
        sc.spec.config.insert("bad key".into(), "x".into());
        sc.spec.config.insert("ok.key".into(), "line\nbreak".into());
        sc.spec.storage.size = Quantity("0".into());
        sc.spec.rack = Some(RackSpec {
            topology_key: "Not A Key".into(),
        });
        let err = validate(&sc).expect_err("invalid");
        assert_eq!(err.problems.len(), 5, "{:?}", err.problems);
        assert!(
            err.message().contains(
                "spec.ports.http and spec.ports.kafka (the default listener) are both 9093"
            ),
            "{}",
            err.message()
        );
    }

    #[test]
    fn given_config_keys_the_brokers_refuse_when_validating_then_each_is_named() {
        let mut sc = cluster();
        sc.spec.config.insert("num.partitions".into(), "6".into());
        sc.spec.config.insert("broker.id".into(), "1".into());
        sc.spec
            .config
            .insert("log.retention.ms".into(), "soon".into());
        sc.spec.config.insert("no.such.key".into(), "1".into());
        let err = validate(&sc).expect_err("invalid");
        assert_eq!(err.problems.len(), 3, "{:?}", err.problems);
        let message = err.message();
        assert!(
            message.contains("spec.config broker.id: not supported"),
            "{message}"
        );
        assert!(
            message.contains("spec.config log.retention.ms=soon: not an integer"),
            "{message}"
        );
        assert!(
            message.contains("spec.config no.such.key: unknown broker configuration key"),
            "{message}"
        );
    }

    fn listener(name: &str, port: i32, tls: bool, auth: ListenerAuthentication) -> ListenerSpec {
        ListenerSpec {
            name: name.into(),
            port,
            tls,
            authentication: auth,
        }
    }

    #[test]
    fn given_bad_listeners_when_validating_then_each_problem_is_named() {
        let mut sc = cluster();
        sc.spec.ports.kafka = Some(9092);
        sc.spec.listeners = Some(vec![
            listener("plain", 9092, false, ListenerAuthentication::None),
            listener("plain", 9091, true, ListenerAuthentication::Scram),
            listener("certs", 9095, false, ListenerAuthentication::Mtls),
            listener("http", 9096, false, ListenerAuthentication::None),
        ]);
        sc.spec.authorization.super_users = vec!["admin".into(), "User:ops".into()];
        let err = validate(&sc).expect_err("invalid");
        let message = err.message();
        for expected in [
            "spec.ports.kafka (9092) is the port of the default listener only",
            "spec.ports.client and spec.listeners[1] (plain) port are both 9091",
            "spec.listeners[1].name \"plain\" is used by an earlier listener",
            "spec.listeners[2] (certs) has authentication mtls without tls",
            "spec.listeners[3].name \"http\" is taken by another broker port",
            "spec.authorization.superUsers[0] \"admin\" is not a principal",
        ] {
            assert!(message.contains(expected), "{expected} in {message}");
        }
        assert_eq!(err.problems.len(), 6, "{:?}", err.problems);
    }

    #[test]
    fn given_good_listeners_and_certificate_settings_when_validating_then_they_are_accepted() {
        let mut sc = cluster();
        sc.spec.listeners = Some(vec![
            listener("plain", 9092, false, ListenerAuthentication::None),
            listener("tls", 9093, true, ListenerAuthentication::Scram),
            listener("mtls", 9095, true, ListenerAuthentication::Mtls),
        ]);
        sc.spec.authorization.super_users = vec!["User:admin".into(), "User:CN=ops".into()];
        assert_eq!(validate(&sc), Ok(()));
        sc.spec.certificates.broker_cert.renew_before_days = 400;
        let err = validate(&sc).expect_err("renew after expiry");
        assert_eq!(
            err.message(),
            "spec.certificates.brokerCert.renewBeforeDays (400) must be less than validityDays (365)"
        );
    }

    #[test]
    fn given_a_long_or_uppercase_name_when_validating_then_it_is_refused() {
        let mut sc = cluster();
        sc.metadata.name = Some("a".repeat(53));
        assert!(validate(&sc).is_err());
        sc.metadata.name = Some("1events".into());
        assert!(validate(&sc).is_err());
    }

    #[test]
    fn label_keys_and_quantities_are_recognised() {
        assert!(is_label_key("topology.kubernetes.io/zone"));
        assert!(is_label_key("rack"));
        assert!(!is_label_key("/zone"));
        assert!(!is_label_key("Example.com/zone"));
        assert!(is_positive_quantity("10Gi"));
        assert!(is_positive_quantity("1.5T"));
        assert!(is_positive_quantity("500000000"));
        assert!(!is_positive_quantity("0Gi"));
        assert!(!is_positive_quantity("ten"));
        assert!(!is_positive_quantity("-1Gi"));
    }
}
