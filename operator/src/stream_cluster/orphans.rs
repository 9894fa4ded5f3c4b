//! Step 4 of the StreamCluster pipeline: delete objects this cluster owns
//! that are no longer desired (for example after a rename of an object in a
//! newer operator version). Only objects whose controller owner reference
//! points at this StreamCluster's uid are ever deleted.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, DeleteParams};
use kube::{Client, ResourceExt};

use super::build::DesiredObjects;
use super::observe::LiveObjects;
use super::{CONTROLLER, Error, OwnedObject};
use crate::crd::StreamCluster;
use crate::metrics::Metrics;

fn owned_by(obj: &impl ResourceExt, uid: &str) -> bool {
    obj.owner_references()
        .iter()
        .any(|r| r.controller == Some(true) && r.uid == uid)
}

/// Names of live objects of one kind that are owned by `uid` and not desired.
pub fn orphan_names<K: ResourceExt>(
    live: &[K],
    desired_names: &[String],
    uid: &str,
) -> Vec<String> {
    live.iter()
        .filter(|o| owned_by(*o, uid) && !desired_names.contains(&o.name_any()))
        .filter(|o| o.meta().deletion_timestamp.is_none())
        .map(|o| o.name_any())
        .collect()
}

async fn delete_kind<K>(
    client: &Client,
    namespace: &str,
    names: Vec<String>,
    metrics: &Metrics,
    deleted: &mut Vec<String>,
) -> Result<(), Error>
where
    K: OwnedObject,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let kind = K::kind(&()).into_owned();
    for name in names {
        match api.delete(&name, &DeleteParams::background()).await {
            Ok(_) => {}
            // Already gone: the goal is reached.
            Err(kube::Error::Api(status)) if status.is_not_found() => {}
            Err(source) => {
                return Err(Error::DeleteOrphan { kind, name, source });
            }
        }
        metrics.record_write(CONTROLLER, &kind, "delete");
        deleted.push(format!("{kind}/{name}"));
    }
    Ok(())
}

fn names_of<K: ResourceExt>(objects: &[&K]) -> Vec<String> {
    objects.iter().map(|o| o.name_any()).collect()
}

/// Deletes owned objects that are not desired; returns `Kind/name` of each.
pub async fn delete_orphans(
    client: &Client,
    namespace: &str,
    sc: &StreamCluster,
    desired: &DesiredObjects,
    live: &LiveObjects,
    metrics: &Metrics,
) -> Result<Vec<String>, Error> {
    let Some(uid) = sc.uid() else {
        return Ok(Vec::new());
    };
    let mut deleted = Vec::new();
    let config_maps = orphan_names(&live.config_maps, &names_of(&[&desired.config_map]), &uid);
    let services = orphan_names(
        &live.services,
        &names_of(&[&desired.headless_service, &desired.bootstrap_service]),
        &uid,
    );
    let stateful_sets = orphan_names(
        &live.stateful_sets,
        &names_of(&[&desired.stateful_set]),
        &uid,
    );
    let pdbs = orphan_names(
        &live.pod_disruption_budgets,
        &names_of(&[&desired.pod_disruption_budget]),
        &uid,
    );
    let policies = orphan_names(
        &live.network_policies,
        &desired
            .network_policy
            .iter()
            .map(|p| p.name_any())
            .collect::<Vec<_>>(),
        &uid,
    );
    delete_kind::<ConfigMap>(client, namespace, config_maps, metrics, &mut deleted).await?;
    delete_kind::<Service>(client, namespace, services, metrics, &mut deleted).await?;
    delete_kind::<StatefulSet>(client, namespace, stateful_sets, metrics, &mut deleted).await?;
    delete_kind::<PodDisruptionBudget>(client, namespace, pdbs, metrics, &mut deleted).await?;
    delete_kind::<NetworkPolicy>(client, namespace, policies, metrics, &mut deleted).await?;
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

    fn service(name: &str, owner_uid: Option<&str>) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some(name.into()),
                owner_references: owner_uid.map(|uid| {
                    vec![OwnerReference {
                        api_version: "rill.dev/v1alpha1".into(),
                        kind: "StreamCluster".into(),
                        name: "events".into(),
                        uid: uid.into(),
                        controller: Some(true),
                        block_owner_deletion: Some(true),
                    }]
                }),
                ..ObjectMeta::default()
            },
            ..Service::default()
        }
    }

    #[test]
    fn given_owned_and_foreign_services_when_finding_orphans_then_only_owned_undesired_ones_are_returned()
     {
        let live = vec![
            service("events-brokers", Some("u1")),
            service("events-old", Some("u1")),
            service("events-foreign", Some("u2")),
            service("events-unowned", None),
        ];
        let orphans = orphan_names(&live, &["events-brokers".into()], "u1");
        assert_eq!(orphans, vec!["events-old".to_owned()]);
    }
}
