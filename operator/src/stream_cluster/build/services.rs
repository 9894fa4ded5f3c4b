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

/// One port per Kafka listener, named as the listener.
fn listener_ports(sc: &StreamCluster) -> Vec<ServicePort> {
    sc.spec
        .effective_listeners()
        .iter()
        .map(|l| port(&l.name, l.port))
        .collect()
}

/// Headless Service: all broker ports, DNS records even for unready pods
/// (brokers must find each other while starting).
pub(super) fn headless(sc: &StreamCluster, names: &Names) -> Service {
    let ports = &sc.spec.ports;
    let mut service_ports = listener_ports(sc);
    service_ports.extend([
        port("client", ports.client),
        port("replication", ports.replication),
        port("http", ports.http),
    ]);
    Service {
        metadata: object_meta(sc, &names.headless_service),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".to_owned()),
            publish_not_ready_addresses: Some(true),
            selector: Some(selector_labels(&names.cluster)),
            ports: Some(service_ports),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// Bootstrap Service: the Kafka listener and client gRPC ports of ready
/// brokers.
pub(super) fn bootstrap(sc: &StreamCluster, names: &Names) -> Service {
    let mut service_ports = listener_ports(sc);
    service_ports.push(port("client", sc.spec.ports.client));
    Service {
        metadata: object_meta(sc, &names.bootstrap_service),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            selector: Some(selector_labels(&names.cluster)),
            ports: Some(service_ports),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::cluster;
    use super::*;
    use crate::crd::{ListenerAuthentication, ListenerSpec};

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
                ("tls".into(), 9093),
                ("client".into(), 9091),
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
    fn given_listeners_when_building_bootstrap_then_it_exposes_every_listener_and_client_only() {
        let mut sc = cluster();
        sc.spec.listeners = Some(vec![
            ListenerSpec {
                name: "plain".into(),
                port: 9092,
                tls: false,
                authentication: ListenerAuthentication::None,
            },
            ListenerSpec {
                name: "mtls".into(),
                port: 9095,
                tls: true,
                authentication: ListenerAuthentication::Mtls,
            },
        ]);
        let svc = bootstrap(&sc, &Names::new("events"));
        assert_eq!(
            port_numbers(&svc),
            vec![
                ("plain".into(), 9092),
                ("mtls".into(), 9095),
                ("client".into(), 9091)
            ]
        );
        let headless = headless(&sc, &Names::new("events"));
        assert_eq!(port_numbers(&headless).len(), 5);
        sc.spec.listeners = None;
        sc.spec.ports.kafka = Some(19093);
        assert_eq!(
            port_numbers(&bootstrap(&sc, &Names::new("events")))[0],
            ("tls".into(), 19093),
            "spec.ports.kafka moves the default listener"
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
