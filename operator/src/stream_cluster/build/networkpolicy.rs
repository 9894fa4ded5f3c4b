//! The brokers' NetworkPolicy: who may open a connection to which broker
//! port.
//!
//! | port | from |
//! |------|------|
//! | replication | this cluster's broker pods |
//! | client gRPC | this cluster's broker pods and the operator's pods |
//! | Kafka listeners | anyone, or `spec.networkPolicy.kafkaFrom` (and the brokers) |
//! | HTTP | anyone, or `spec.networkPolicy.httpFrom` |
//!
//! Egress is not restricted. Policies add up: another NetworkPolicy that
//! selects the broker pods can only allow more.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{Names, object_meta, selector_labels};
use crate::context::Settings;
use crate::crd::StreamCluster;

fn tcp(port: i32) -> NetworkPolicyPort {
    NetworkPolicyPort {
        port: Some(IntOrString::Int(port)),
        protocol: Some("TCP".to_owned()),
        ..NetworkPolicyPort::default()
    }
}

fn pods(labels: BTreeMap<String, String>) -> LabelSelector {
    LabelSelector {
        match_labels: Some(labels),
        ..LabelSelector::default()
    }
}

/// The namespace label Kubernetes sets on every namespace.
const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// The operator's pods: by their labels, in the operator's namespace when
/// it is known (else in any namespace).
fn operator_peer(settings: &Settings) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        namespace_selector: Some(match &settings.operator_namespace {
            Some(ns) => pods(BTreeMap::from([(
                NAMESPACE_NAME_LABEL.to_owned(),
                ns.clone(),
            )])),
            None => LabelSelector::default(),
        }),
        pod_selector: Some(pods(settings.operator_pod_labels.clone())),
        ..NetworkPolicyPeer::default()
    }
}

pub(super) fn build(sc: &StreamCluster, names: &Names, settings: &Settings) -> NetworkPolicy {
    let ports = &sc.spec.ports;
    let policy = &sc.spec.network_policy;
    let brokers = NetworkPolicyPeer {
        pod_selector: Some(pods(selector_labels(&names.cluster))),
        ..NetworkPolicyPeer::default()
    };
    let listeners: Vec<NetworkPolicyPort> = sc
        .spec
        .effective_listeners()
        .iter()
        .map(|l| tcp(l.port))
        .collect();
    // `from` absent means every source.
    let from = |peers: &Vec<NetworkPolicyPeer>, with_brokers: bool| {
        (!peers.is_empty()).then(|| {
            let mut all = peers.clone();
            if with_brokers {
                all.push(brokers.clone());
            }
            all
        })
    };
    NetworkPolicy {
        metadata: object_meta(sc, &names.network_policy),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(pods(selector_labels(&names.cluster))),
            policy_types: Some(vec!["Ingress".to_owned()]),
            ingress: Some(vec![
                NetworkPolicyIngressRule {
                    from: Some(vec![brokers.clone()]),
                    ports: Some(vec![tcp(ports.replication), tcp(ports.client)]),
                },
                NetworkPolicyIngressRule {
                    from: Some(vec![operator_peer(settings)]),
                    ports: Some(vec![tcp(ports.client)]),
                },
                NetworkPolicyIngressRule {
                    from: from(&policy.kafka_from, true),
                    ports: Some(listeners),
                },
                NetworkPolicyIngressRule {
                    from: from(&policy.http_from, false),
                    ports: Some(vec![tcp(ports.http)]),
                },
            ]),
            ..NetworkPolicySpec::default()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::cluster;
    use super::*;

    fn rules(policy: &NetworkPolicy) -> Vec<NetworkPolicyIngressRule> {
        policy
            .spec
            .as_ref()
            .and_then(|s| s.ingress.clone())
            .expect("ingress rules")
    }

    fn port_numbers(rule: &NetworkPolicyIngressRule) -> Vec<i32> {
        rule.ports
            .iter()
            .flatten()
            .filter_map(|p| match p.port {
                Some(IntOrString::Int(n)) => Some(n),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn given_a_cluster_when_building_its_policy_then_replication_is_brokers_only_and_kafka_is_open()
    {
        let settings = Settings {
            operator_namespace: Some("rill-system".into()),
            ..Settings::default()
        };
        let policy = build(&cluster(), &Names::new("events"), &settings);
        let spec = policy.spec.as_ref().expect("spec");
        assert_eq!(spec.policy_types, Some(vec!["Ingress".to_owned()]));
        assert_eq!(
            spec.pod_selector
                .as_ref()
                .and_then(|s| s.match_labels.clone()),
            Some(selector_labels("events"))
        );
        let rules = rules(&policy);
        assert_eq!(port_numbers(&rules[0]), vec![9094, 9091]);
        let brokers_only = rules[0].from.as_ref().expect("from");
        assert_eq!(brokers_only.len(), 1);
        assert_eq!(
            brokers_only[0]
                .pod_selector
                .as_ref()
                .and_then(|s| s.match_labels.clone()),
            Some(selector_labels("events"))
        );
        assert!(
            brokers_only[0].namespace_selector.is_none(),
            "same namespace only"
        );
        assert_eq!(port_numbers(&rules[1]), vec![9091]);
        let operator = &rules[1].from.as_ref().expect("from")[0];
        assert_eq!(
            operator
                .namespace_selector
                .as_ref()
                .and_then(|s| s.match_labels.clone()),
            Some(BTreeMap::from([(
                "kubernetes.io/metadata.name".to_owned(),
                "rill-system".to_owned()
            )]))
        );
        assert_eq!(port_numbers(&rules[2]), vec![9093]);
        assert_eq!(rules[2].from, None, "Kafka from anywhere by default");
        assert_eq!(port_numbers(&rules[3]), vec![9644]);
        assert_eq!(rules[3].from, None);
    }

    #[test]
    fn given_kafka_from_when_building_then_listeners_allow_those_peers_and_the_brokers() {
        let mut sc = cluster();
        let apps = NetworkPolicyPeer {
            namespace_selector: Some(pods(BTreeMap::from([(
                "team".to_owned(),
                "payments".to_owned(),
            )]))),
            ..NetworkPolicyPeer::default()
        };
        sc.spec.network_policy.kafka_from = vec![apps.clone()];
        let policy = build(&sc, &Names::new("events"), &Settings::default());
        let from = rules(&policy)[2].from.clone().expect("narrowed");
        assert_eq!(from.len(), 2);
        assert_eq!(from[0], apps);
    }
}
