//! The broker ConfigMap: `broker.properties` rendered from `spec.config`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;

use super::{Names, object_meta};
use crate::crd::StreamCluster;

/// File name of the broker configuration inside the ConfigMap (and inside
/// the pod, under `/etc/rill/`).
pub const CONFIG_FILE_NAME: &str = "broker.properties";

/// Builds the ConfigMap. Keys are sorted (BTreeMap), so the rendering is
/// stable; validation has already refused keys or values with line breaks.
pub(super) fn build(sc: &StreamCluster, names: &Names) -> ConfigMap {
    let mut text =
        String::from("# Broker configuration defaults from StreamCluster spec.config.\n");
    for (key, value) in &sc.spec.config {
        text.push_str(key);
        text.push('=');
        text.push_str(value);
        text.push('\n');
    }
    ConfigMap {
        metadata: object_meta(sc, &names.config_map),
        data: Some(BTreeMap::from([(CONFIG_FILE_NAME.to_owned(), text)])),
        ..ConfigMap::default()
    }
}

/// A stable 64-bit FNV-1a hash of all the ConfigMap data, hex encoded: the
/// annotation the operator puts on running broker pods when the file
/// changed, so the kubelet refreshes the mounted file at once.
pub fn content_hash(config_map: &ConfigMap) -> String {
    fnv(config_map
        .data
        .iter()
        .flatten()
        .flat_map(|(k, v)| k.bytes().chain([0u8]).chain(v.bytes()).chain([0u8])))
}

fn fnv(bytes: impl Iterator<Item = u8>) -> String {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    for byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(PRIME);
    }
    format!("{hash:016x}")
}

/// A stable 64-bit FNV-1a hash of the ConfigMap data that needs a broker
/// restart, hex encoded. Put on the pod template so such a change shows up
/// as an outdated pod, which the operator rolls. Lines of keys a running
/// broker applies itself when its file changes
/// ([`rill_proto::broker_config::LIVE_KEYS`]) are left out: changing those
/// rolls nothing. Not cryptographic: it only needs to change when the data
/// changes.
pub fn config_hash(config_map: &ConfigMap) -> String {
    let mut bytes = Vec::new();
    for (key, value) in config_map.data.iter().flatten() {
        bytes.extend(key.bytes());
        bytes.push(0);
        for line in value.lines().filter(|line| {
            let key = line.split('=').next().unwrap_or_default().trim();
            !rill_proto::broker_config::is_live(key)
        }) {
            bytes.extend(line.bytes());
            bytes.push(b'\n');
        }
        bytes.push(0);
    }
    fnv(bytes.into_iter())
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::cluster;
    use super::*;

    #[test]
    fn given_config_entries_when_building_then_properties_are_sorted_key_value_lines() {
        let mut sc = cluster();
        sc.spec.config.insert("num.partitions".into(), "6".into());
        sc.spec
            .config
            .insert("log.retention.ms".into(), "3600000".into());
        let cm = build(&sc, &Names::new("events"));
        let text = &cm.data.as_ref().expect("data")[CONFIG_FILE_NAME];
        assert_eq!(
            text,
            "# Broker configuration defaults from StreamCluster spec.config.\nlog.retention.ms=3600000\nnum.partitions=6\n"
        );
    }

    #[test]
    fn given_a_config_change_when_hashing_then_the_hash_changes() {
        let mut sc = cluster();
        let before = config_hash(&build(&sc, &Names::new("events")));
        assert_eq!(before, config_hash(&build(&sc, &Names::new("events"))));
        sc.spec.config.insert("num.partitions".into(), "6".into());
        assert_ne!(before, config_hash(&build(&sc, &Names::new("events"))));
    }

    #[test]
    fn given_a_change_of_a_key_brokers_apply_live_when_hashing_then_the_hash_stays() {
        let mut sc = cluster();
        sc.spec.config.insert("num.partitions".into(), "6".into());
        let before = config_hash(&build(&sc, &Names::new("events")));
        sc.spec
            .config
            .insert("log.retention.ms".into(), "3600000".into());
        let cm = build(&sc, &Names::new("events"));
        assert!(
            cm.data.as_ref().expect("data")[CONFIG_FILE_NAME].contains("log.retention.ms=3600000")
        );
        assert_eq!(before, config_hash(&cm), "no roll for a live key");
    }
}
