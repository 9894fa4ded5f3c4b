//! Step 2 of the StreamCluster pipeline: build the desired Kubernetes objects.
//!
//! Pure functions only: given a validated StreamCluster, the replica count the
//! scale-down check allowed and the operator [`Settings`], return the exact
//! objects to server-side apply. No client, no clock, no randomness, so the
//! same input always yields byte-identical objects (which is what makes
//! re-applying a no-op) and every field can be unit tested.

mod configmap;
mod networkpolicy;
mod pdb;
mod services;
mod statefulset;

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};

use crate::context::Settings;
use crate::crd::{ListenerStatus, StreamCluster};
use crate::stream_cluster::certs::Material;

pub use configmap::{CONFIG_FILE_NAME, config_hash, content_hash};
pub use statefulset::{
    BROKER_TLS_DIR, CLIENTS_CA_DIR, CLUSTER_CA_DIR, DATA_VOLUME, SCRAM_DIR, controller_server_name,
    listener_flag,
};

/// Label keys and values the operator puts on everything it creates.
pub mod labels {
    /// Standard name label; value [`NAME_VALUE`].
    pub const NAME: &str = "app.kubernetes.io/name";
    /// Value of [`NAME`] on broker objects.
    pub const NAME_VALUE: &str = "rill-broker";
    /// Standard instance label: the StreamCluster name.
    pub const INSTANCE: &str = "app.kubernetes.io/instance";
    /// Standard component label.
    pub const COMPONENT: &str = "app.kubernetes.io/component";
    /// Standard part-of label.
    pub const PART_OF: &str = "app.kubernetes.io/part-of";
    /// Standard managed-by label; value [`MANAGED_BY_VALUE`].
    pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
    /// Value of [`MANAGED_BY`].
    pub const MANAGED_BY_VALUE: &str = "rill-operator";
    /// The StreamCluster an object belongs to.
    pub const CLUSTER: &str = "rill.dev/cluster";
}

/// Annotation on the pod template carrying a hash of the broker
/// configuration keys that need a restart, so changing one changes the pod
/// template (and rolls the brokers).
pub const CONFIG_HASH_ANNOTATION: &str = "rill.dev/config-hash";

/// Annotation the operator sets on running broker pods with a hash of the
/// whole configuration file when it changed: a pod update makes the kubelet
/// refresh the mounted file at once, instead of at its next periodic sync,
/// so brokers apply the live keys within seconds.
pub const CONFIG_CONTENT_ANNOTATION: &str = "rill.dev/config-content";

/// Every object a StreamCluster owns.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredObjects {
    /// Broker configuration file.
    pub config_map: ConfigMap,
    /// Headless Service giving each broker a stable DNS name.
    pub headless_service: Service,
    /// Client/bootstrap Service.
    pub bootstrap_service: Service,
    /// The brokers.
    pub stateful_set: StatefulSet,
    /// Voluntary disruption limit.
    pub pod_disruption_budget: PodDisruptionBudget,
    /// Who may reach which broker port (`spec.networkPolicy.enabled`).
    pub network_policy: Option<NetworkPolicy>,
}

/// Names of the objects of a StreamCluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Names {
    /// StatefulSet and PodDisruptionBudget name: the cluster name.
    pub cluster: String,
    /// ConfigMap: `<cluster>-config`.
    pub config_map: String,
    /// Headless Service: `<cluster>-brokers`.
    pub headless_service: String,
    /// Bootstrap Service: `<cluster>-bootstrap`.
    pub bootstrap_service: String,
    /// NetworkPolicy: `<cluster>-brokers`.
    pub network_policy: String,
}

impl Names {
    /// Names derived from the cluster name.
    pub fn new(cluster: &str) -> Self {
        Self {
            cluster: cluster.to_owned(),
            config_map: format!("{cluster}-config"),
            headless_service: format!("{cluster}-brokers"),
            bootstrap_service: format!("{cluster}-bootstrap"),
            network_policy: format!("{cluster}-brokers"),
        }
    }
}

/// Labels that select a cluster's broker pods (also the StatefulSet and PDB
/// selector, which Kubernetes never lets change).
pub fn selector_labels(cluster: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (labels::NAME.to_owned(), labels::NAME_VALUE.to_owned()),
        (labels::INSTANCE.to_owned(), cluster.to_owned()),
    ])
}

/// The selector as a string, for the scale subresource.
pub fn selector_string(cluster: &str) -> String {
    selector_labels(cluster)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Label selector matching every object the operator made for a cluster.
pub fn owned_objects_selector(cluster: &str) -> String {
    format!(
        "{}={},{}={}",
        labels::MANAGED_BY,
        labels::MANAGED_BY_VALUE,
        labels::CLUSTER,
        cluster
    )
}

/// Labels on every object of a cluster.
pub fn common_labels(cluster: &str) -> BTreeMap<String, String> {
    let mut l = selector_labels(cluster);
    l.insert(labels::COMPONENT.to_owned(), "broker".to_owned());
    l.insert(labels::PART_OF.to_owned(), "rill".to_owned());
    l.insert(
        labels::MANAGED_BY.to_owned(),
        labels::MANAGED_BY_VALUE.to_owned(),
    );
    l.insert(labels::CLUSTER.to_owned(), cluster.to_owned());
    l
}

/// The Kafka bootstrap address of a cluster's first listener, `host:port`.
pub fn kafka_bootstrap(sc: &StreamCluster) -> String {
    listener_statuses(sc)
        .into_iter()
        .next()
        .map(|l| l.bootstrap)
        .unwrap_or_default()
}

/// Every listener with its bootstrap address (the bootstrap Service).
pub fn listener_statuses(sc: &StreamCluster) -> Vec<ListenerStatus> {
    let names = Names::new(&sc.name_any());
    let namespace = sc.namespace().unwrap_or_default();
    sc.spec
        .effective_listeners()
        .into_iter()
        .map(|l| ListenerStatus {
            bootstrap: format!("{}.{namespace}.svc:{}", names.bootstrap_service, l.port),
            tls: l.tls,
            authentication: l.authentication.as_str().to_owned(),
            name: l.name,
        })
        .collect()
}

/// Metadata shared by every owned object: name, namespace, labels and a
/// controller owner reference to the StreamCluster (so Kubernetes garbage
/// collects them and the controller is woken by their changes).
fn object_meta(sc: &StreamCluster, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: sc.namespace(),
        labels: Some(common_labels(&sc.name_any())),
        owner_references: owner_reference(sc).map(|r| vec![r]),
        ..ObjectMeta::default()
    }
}

/// Controller owner reference to the StreamCluster (needs its uid).
pub fn owner_reference(sc: &StreamCluster) -> Option<OwnerReference> {
    let mut reference = sc.controller_owner_ref(&())?;
    reference.block_owner_deletion = Some(true);
    Some(reference)
}

/// Sets the storage request of the StatefulSet's claim template: the live
/// StatefulSet's template cannot change, so a grown `spec.storage.size`
/// reaches it only when the StatefulSet is created again.
pub fn keep_claim_size(
    sts: &mut StatefulSet,
    size: &k8s_openapi::apimachinery::pkg::api::resource::Quantity,
) {
    for template in sts.spec.volume_claim_templates.iter_mut().flatten() {
        if let Some(requests) = template
            .spec
            .as_mut()
            .and_then(|s| s.resources.as_mut())
            .and_then(|r| r.requests.as_mut())
        {
            requests.insert("storage".to_owned(), size.clone());
        }
    }
}

/// Builds every desired object. `replicas` is the broker count to apply:
/// `spec.brokers`, or the current count while a scale-down is refused;
/// `tls` is what the certificates step found or made.
pub fn desired_objects(
    sc: &StreamCluster,
    replicas: i32,
    settings: &Settings,
    tls: &Material,
) -> DesiredObjects {
    let names = Names::new(&sc.name_any());
    let config_map = configmap::build(sc, &names);
    let hash = config_hash(&config_map);
    DesiredObjects {
        headless_service: services::headless(sc, &names),
        bootstrap_service: services::bootstrap(sc, &names),
        stateful_set: statefulset::build(sc, &names, replicas, &hash, settings, tls),
        pod_disruption_budget: pdb::build(sc, &names),
        network_policy: sc
            .spec
            .network_policy
            .enabled
            .then(|| networkpolicy::build(sc, &names, settings)),
        config_map,
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! StreamClusters used by builder and reconcile tests.
    use super::*;
    use crate::crd::StreamClusterSpec;

    /// What the certificates step yields for [`cluster`].
    pub fn material() -> Material {
        Material {
            annotations: BTreeMap::from([(
                "rill.dev/cluster-ca-bundle".to_owned(),
                "0123456789abcdef".to_owned(),
            )]),
            broker_secret: "events-broker-certs".to_owned(),
            ..Material::default()
        }
    }

    /// A 3-broker cluster `events` in namespace `data` with a uid.
    pub fn cluster() -> StreamCluster {
        let spec: StreamClusterSpec =
            serde_json::from_value(serde_json::json!({ "brokers": 3 })).expect("spec");
        let mut sc = StreamCluster::new("events", spec);
        sc.metadata.namespace = Some("data".to_owned());
        sc.metadata.uid = Some("1b2c3d4e-0000-4000-8000-000000000001".to_owned());
        sc.metadata.generation = Some(1);
        sc
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{cluster, material};
    use super::*;

    #[test]
    fn given_a_cluster_when_building_then_names_labels_and_owner_refs_are_set() {
        let sc = cluster();
        let objects = desired_objects(&sc, 3, &Settings::default(), &material());
        assert_eq!(
            objects.config_map.metadata.name.as_deref(),
            Some("events-config")
        );
        assert_eq!(
            objects.headless_service.metadata.name.as_deref(),
            Some("events-brokers")
        );
        assert_eq!(
            objects.bootstrap_service.metadata.name.as_deref(),
            Some("events-bootstrap")
        );
        assert_eq!(
            objects.stateful_set.metadata.name.as_deref(),
            Some("events")
        );
        assert_eq!(
            objects.pod_disruption_budget.metadata.name.as_deref(),
            Some("events")
        );
        for meta in [
            &objects.config_map.metadata,
            &objects.headless_service.metadata,
            &objects.bootstrap_service.metadata,
            &objects.stateful_set.metadata,
            &objects.pod_disruption_budget.metadata,
            &objects.network_policy.as_ref().expect("policy").metadata,
        ] {
            assert_eq!(meta.namespace.as_deref(), Some("data"));
            let owners = meta.owner_references.as_ref().expect("owner references");
            assert_eq!(owners.len(), 1);
            assert_eq!(owners[0].kind, "StreamCluster");
            assert_eq!(owners[0].api_version, "rill.dev/v1alpha1");
            assert_eq!(owners[0].uid, "1b2c3d4e-0000-4000-8000-000000000001");
            assert_eq!(owners[0].controller, Some(true));
            let labels = meta.labels.as_ref().expect("labels");
            assert_eq!(
                labels.get(labels::MANAGED_BY).map(String::as_str),
                Some("rill-operator")
            );
            assert_eq!(
                labels.get(labels::CLUSTER).map(String::as_str),
                Some("events")
            );
        }
    }

    #[test]
    fn given_the_same_cluster_when_building_twice_then_objects_are_identical() {
        let sc = cluster();
        assert_eq!(
            desired_objects(&sc, 3, &Settings::default(), &material()),
            desired_objects(&sc, 3, &Settings::default(), &material())
        );
    }

    #[test]
    fn given_a_cluster_when_asking_for_bootstrap_then_it_is_the_bootstrap_service_dns_name() {
        assert_eq!(
            kafka_bootstrap(&cluster()),
            "events-bootstrap.data.svc:9093"
        );
        assert_eq!(
            selector_string("events"),
            "app.kubernetes.io/instance=events,app.kubernetes.io/name=rill-broker"
        );
    }
}
