//! Step 1 of the StreamCluster pipeline: refuse specs the API schema lets
//! through but the operator cannot honour.
//!
//! The CRD schema already enforces bounds and CEL rules on servers that run
//! them; this step repeats the checks that matter and adds those a schema
//! cannot express. A refused spec becomes `Ready=False` with reason
//! `InvalidSpec` and the reconcile waits for the next change: no retries,
//! no hot loop.

use kube::ResourceExt;

use crate::crd::StreamCluster;

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
    let ports = [
        ("kafka", spec.ports.kafka),
        ("client", spec.ports.client),
        ("replication", spec.ports.replication),
        ("http", spec.ports.http),
    ];
    for (port_name, port) in ports {
        if !(1..=65535).contains(&port) {
            problems.push(format!("spec.ports.{port_name} is {port}; use 1-65535"));
        }
    }
    for (i, (a_name, a)) in ports.iter().enumerate() {
        for (b_name, b) in &ports[i + 1..] {
            if a == b {
                problems.push(format!(
                    "spec.ports.{a_name} and spec.ports.{b_name} are both {a}"
                ));
            }
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
    use crate::crd::RackSpec;
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
        sc.spec.ports.http = 9092;
        sc.spec.config.insert("bad key".into(), "x".into());
        sc.spec.config.insert("ok.key".into(), "line\nbreak".into());
        sc.spec.storage.size = Quantity("0".into());
        sc.spec.rack = Some(RackSpec {
            topology_key: "Not A Key".into(),
        });
        let err = validate(&sc).expect_err("invalid");
        assert_eq!(err.problems.len(), 5, "{:?}", err.problems);
        assert!(
            err.message()
                .contains("spec.ports.kafka and spec.ports.http are both 9092")
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
