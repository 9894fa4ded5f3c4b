//! The two Services of a cluster: a headless one that gives every broker a
//! stable DNS name (`<pod>.<cluster>-brokers.<ns>.svc`) and a bootstrap one
//! that clients connect to first.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{Names, object_meta, selector_labels};
use crate::crd::StreamCluster;

fn port(name: &str, number: i32) -> ServicePort {
    ServicePort {
        name: Some(name.to_owned()),
        port: number,
        target_port: Some(IntOrString::String(name.to_owned())),
        protocol: Some("TCP".to_owned()),
        ..ServicePort::default()
    }
}

/// Headless Service: all broker ports, DNS records even for unready pods
/// (brokers must find each other while starting).
pub(super) fn headless(sc: &StreamCluster, names: &Names) -> Service {
    let ports = &sc.spec.ports;
    Service {
        metadata: object_meta(sc, &names.headless_service),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".to_owned()),
            publish_not_ready_addresses: Some(true),
            selector: Some(selector_labels(&names.cluster)),
            ports: Some(vec![
                port("kafka", ports.kafka),
                port("client", ports.client),
                port("replication", ports.replication),
                port("http", ports.http),
            ]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// Bootstrap Service: the Kafka and client gRPC ports of ready brokers.
pub(super) fn bootstrap(sc: &StreamCluster, names: &Names) -> Service {
    let ports = &sc.spec.ports;
    Service {
        metadata: object_meta(sc, &names.bootstrap_service),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            selector: Some(selector_labels(&names.cluster)),
            ports: Some(vec![
                port("kafka", ports.kafka),
                port("client", ports.client),
            ]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::cluster;
    use super::*;

    fn port_numbers(svc: &Service) -> Vec<(String, i32)> {
        svc.spec
            .as_ref()
            .and_then(|s| s.ports.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|p| (p.name.unwrap_or_default(), p.port))
            .collect()
    }

    #[test]
    fn given_a_cluster_when_building_headless_then_it_publishes_not_ready_addresses_on_all_ports() {
        let svc = headless(&cluster(), &Names::new("events"));
        let spec = svc.spec.as_ref().expect("spec");
        assert_eq!(spec.cluster_ip.as_deref(), Some("None"));
        assert_eq!(spec.publish_not_ready_addresses, Some(true));
        assert_eq!(
            port_numbers(&svc),
            vec![
                ("kafka".into(), 9092),
                ("client".into(), 9093),
                ("replication".into(), 9094),
                ("http".into(), 9644)
            ]
        );
        assert_eq!(
            spec.selector.as_ref().expect("selector")["app.kubernetes.io/instance"],
            "events"
        );
    }

    #[test]
    fn given_custom_ports_when_building_bootstrap_then_it_exposes_kafka_and_client_only() {
        let mut sc = cluster();
        sc.spec.ports.kafka = 19092;
        let svc = bootstrap(&sc, &Names::new("events"));
        assert_eq!(
            port_numbers(&svc),
            vec![("kafka".into(), 19092), ("client".into(), 9093)]
        );
        assert_ne!(
            svc.spec
                .as_ref()
                .and_then(|s| s.cluster_ip.clone())
                .as_deref(),
            Some("None")
        );
    }
}
