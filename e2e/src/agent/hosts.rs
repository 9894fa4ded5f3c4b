//! Name resolution for pods, standing in for cluster DNS: a block of
//! `/etc/hosts` (between marker lines, one block per node agent) maps
//! Service and headless-pod names to the addresses of the pods behind them:
//!
//! - `<svc>.<ns>.svc` and `<svc>.<ns>.svc.cluster.local` -> every ready pod
//!   the Service selects (also for ClusterIP Services: there is no
//!   kube-proxy, so the ClusterIP never carries traffic, and a client must
//!   use the container port as the Service port);
//! - `<hostname>.<svc>.<ns>.svc[.cluster.local]` -> the pod with that
//!   `spec.hostname` and `spec.subdomain: <svc>` (StatefulSet pods of a
//!   headless Service).
//!
//! The endpoints are computed here from Services and Pods with the
//! EndpointSlice controller's rules (selector, Ready condition or
//! `publishNotReadyAddresses`, not terminating), because the API server
//! refuses loopback addresses in EndpointSlices. Only loopback addresses
//! are written, so no name resolves off the machine.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Pod, Service};

/// `address -> names`, sorted for a stable rendering.
pub type HostEntries = BTreeMap<IpAddr, Vec<String>>;

fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Host entries for the pods behind `services`.
pub fn entries<'a>(
    services: impl IntoIterator<Item = &'a Service>,
    pods: &[&'a Pod],
) -> HostEntries {
    let mut out: HostEntries = BTreeMap::new();
    for service in services {
        let Some(namespace) = service.metadata.namespace.as_deref() else {
            continue;
        };
        let Some(name) = service.metadata.name.as_deref() else {
            continue;
        };
        let spec = service.spec.clone().unwrap_or_default();
        // Services without a selector have hand-made endpoints: not mapped.
        let Some(selector) = spec.selector.filter(|s| !s.is_empty()) else {
            continue;
        };
        let publish_not_ready = spec.publish_not_ready_addresses == Some(true);
        for pod in pods {
            if pod.metadata.namespace.as_deref() != Some(namespace)
                || pod.metadata.deletion_timestamp.is_some()
            {
                continue;
            }
            let labels = pod.metadata.labels.clone().unwrap_or_default();
            if !selector.iter().all(|(k, v)| labels.get(k) == Some(v)) {
                continue;
            }
            if !publish_not_ready && !pod_ready(pod) {
                continue;
            }
            let Some(ip) = pod
                .status
                .as_ref()
                .and_then(|s| s.pod_ip.as_deref())
                .and_then(|ip| ip.parse::<IpAddr>().ok())
                .filter(IpAddr::is_loopback)
            else {
                continue;
            };
            let names = out.entry(ip).or_default();
            let base = format!("{name}.{namespace}.svc");
            names.push(base.clone());
            names.push(format!("{base}.cluster.local"));
            let pod_spec = pod.spec.as_ref();
            let hostname = pod_spec.and_then(|s| s.hostname.as_deref());
            let subdomain = pod_spec.and_then(|s| s.subdomain.as_deref());
            if let (Some(hostname), Some(subdomain)) = (hostname, subdomain)
                && subdomain == name
            {
                names.push(format!("{hostname}.{base}"));
                names.push(format!("{hostname}.{base}.cluster.local"));
            }
        }
    }
    for names in out.values_mut() {
        names.sort();
        names.dedup();
    }
    out
}

fn markers(node: &str) -> (String, String) {
    (
        format!("# BEGIN rill-node-agent {node}: Service names (managed, do not edit)"),
        format!("# END rill-node-agent {node}"),
    )
}

/// `content` (a hosts file) with the block of `node` replaced by `entries`,
/// or removed when `entries` is `None`. Lines outside the block are kept.
pub fn splice(content: &str, node: &str, entries: Option<&HostEntries>) -> String {
    let (begin, end) = markers(node);
    let mut out = String::with_capacity(content.len());
    let mut inside = false;
    for line in content.lines() {
        if line == begin {
            inside = true;
        } else if inside && line == end {
            inside = false;
        } else if !inside {
            out.push_str(line);
            out.push('\n');
        }
    }
    if let Some(entries) = entries {
        out.push_str(&begin);
        out.push('\n');
        for (ip, names) in entries {
            out.push_str(&format!("{ip} {}\n", names.join(" ")));
        }
        out.push_str(&end);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(ns: &str, name: &str, selector: serde_json::Value, publish: bool) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": ns},
            "spec": {"selector": selector, "publishNotReadyAddresses": publish, "clusterIP": "None"},
        }))
        .expect("service")
    }

    fn pod(ns: &str, name: &str, ip: &str, ready: bool, subdomain: Option<&str>) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": ns, "labels": {"app": "events"}},
            "spec": {"containers": [], "hostname": name, "subdomain": subdomain},
            "status": {"podIP": ip, "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]},
        }))
        .expect("pod")
    }

    #[test]
    fn given_services_and_pods_when_rendering_then_names_map_to_ready_selected_loopback_pods() {
        let services = [
            service("data", "events-brokers", json!({"app": "events"}), true),
            service("data", "events", json!({"app": "events"}), false),
            service("data", "manual", json!({}), false),
        ];
        let pods = [
            pod(
                "data",
                "events-0",
                "127.0.16.1",
                true,
                Some("events-brokers"),
            ),
            pod(
                "data",
                "events-1",
                "127.0.16.2",
                false,
                Some("events-brokers"),
            ),
            pod("data", "events-2", "10.1.2.3", true, Some("events-brokers")),
            pod(
                "other",
                "events-0",
                "127.0.16.9",
                true,
                Some("events-brokers"),
            ),
        ];
        let refs: Vec<&Pod> = pods.iter().collect();
        let entries = entries(&services, &refs);
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert_eq!(
            entries[&ip("127.0.16.1")],
            vec![
                "events-0.events-brokers.data.svc",
                "events-0.events-brokers.data.svc.cluster.local",
                "events-brokers.data.svc",
                "events-brokers.data.svc.cluster.local",
                "events.data.svc",
                "events.data.svc.cluster.local",
            ]
        );
        // Not ready: only through the Service that publishes not-ready pods.
        assert_eq!(
            entries[&ip("127.0.16.2")],
            vec![
                "events-1.events-brokers.data.svc",
                "events-1.events-brokers.data.svc.cluster.local",
                "events-brokers.data.svc",
                "events-brokers.data.svc.cluster.local",
            ]
        );
        assert!(!entries.contains_key(&ip("10.1.2.3")), "not loopback");
        assert!(!entries.contains_key(&ip("127.0.16.9")), "other namespace");
    }

    #[test]
    fn given_a_hosts_file_when_splicing_then_only_the_managed_block_changes() {
        let original = "127.0.0.1 localhost\n::1 localhost\n";
        let mut entries = HostEntries::new();
        entries.insert(
            "127.0.16.1".parse().expect("ip"),
            vec!["a.b.svc".to_owned(), "a.b.svc.cluster.local".to_owned()],
        );
        let with = splice(original, "n1", Some(&entries));
        assert_eq!(
            with,
            "127.0.0.1 localhost\n::1 localhost\n\
             # BEGIN rill-node-agent n1: Service names (managed, do not edit)\n\
             127.0.16.1 a.b.svc a.b.svc.cluster.local\n\
             # END rill-node-agent n1\n"
        );
        // Re-rendering replaces the block instead of adding another.
        entries.clear();
        let replaced = splice(&with, "n1", Some(&entries));
        assert_eq!(replaced.matches("# BEGIN").count(), 1);
        assert!(!replaced.contains("a.b.svc"));
        // Another node's block is left alone; removal restores the original.
        let other = splice(&with, "n2", Some(&HostEntries::new()));
        assert!(other.contains("a.b.svc"));
        assert_eq!(splice(&with, "n1", None), original);
    }
}
