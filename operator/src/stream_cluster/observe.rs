//! Between build and apply: read the objects that exist for a cluster.
//!
//! One LIST per kind, filtered by the labels every owned object carries.
//! The result serves both the apply step (skip objects that already match)
//! and the orphan step (objects no longer desired). Reads only.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};

use super::build::owned_objects_selector;
use super::{Error, OwnedObject};

/// Objects the operator created for one cluster, as they are now.
#[derive(Debug, Clone, Default)]
pub struct LiveObjects {
    /// ConfigMaps.
    pub config_maps: Vec<ConfigMap>,
    /// Services (headless and bootstrap).
    pub services: Vec<Service>,
    /// StatefulSets.
    pub stateful_sets: Vec<StatefulSet>,
    /// PodDisruptionBudgets.
    pub pod_disruption_budgets: Vec<PodDisruptionBudget>,
    /// NetworkPolicies.
    pub network_policies: Vec<NetworkPolicy>,
}

/// Finds an object by name in a list.
pub fn by_name<'a, K: ResourceExt>(objects: &'a [K], name: &str) -> Option<&'a K> {
    objects.iter().find(|o| o.name_any() == name)
}

async fn list<K>(client: &Client, namespace: &str, selector: &str) -> Result<Vec<K>, Error>
where
    K: OwnedObject,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    api.list(&ListParams::default().labels(selector))
        .await
        .map(|list| list.items)
        .map_err(|source| Error::Observe {
            kind: K::kind(&()).into_owned(),
            source,
        })
}

/// Lists every kind the cluster owns.
pub async fn observe(
    client: &Client,
    namespace: &str,
    cluster: &str,
) -> Result<LiveObjects, Error> {
    let selector = owned_objects_selector(cluster);
    Ok(LiveObjects {
        config_maps: list(client, namespace, &selector).await?,
        services: list(client, namespace, &selector).await?,
        stateful_sets: list(client, namespace, &selector).await?,
        pod_disruption_budgets: list(client, namespace, &selector).await?,
        network_policies: list(client, namespace, &selector).await?,
    })
}
