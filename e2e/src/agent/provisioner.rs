//! A local volume provisioner for the StorageClass `rill-local` (the
//! cluster default): for a claim of that class that the scheduler placed
//! on this node (`volume.kubernetes.io/selected-node`, with
//! `WaitForFirstConsumer` binding) the agent creates a directory under
//! `<root>/volumes/` and a `local` PersistentVolume with node affinity to
//! this node and a `claimRef`, which the persistentvolume-binder controller
//! binds. Released volumes of reclaim policy Delete lose their directory
//! and PersistentVolume. The size is recorded, not enforced.
//!
//! The class allows volume expansion, and the agent also stands in for a
//! storage driver's resizer and the kubelet's filesystem expansion: when a
//! bound claim of the class asks for more than its volume holds, the agent
//! raises the volume's capacity and then the claim's `status.capacity`.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;

use super::node::FIELD_MANAGER;
use super::{AgentConfig, AgentError};

/// The StorageClass the agent provisions.
pub const STORAGE_CLASS: &str = "rill-local";
/// Its provisioner name.
pub const PROVISIONER: &str = "rill.dev/node-agent";
const SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
const STORAGE_PROVISIONER: &str = "volume.kubernetes.io/storage-provisioner";
const BETA_STORAGE_PROVISIONER: &str = "volume.beta.kubernetes.io/storage-provisioner";
const PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";

/// Creates (or updates) the default StorageClass `rill-local`.
pub async fn ensure_storage_class(client: &Client) -> Result<(), AgentError> {
    let class = json!({
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": STORAGE_CLASS,
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
        },
        "provisioner": PROVISIONER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "WaitForFirstConsumer",
        "allowVolumeExpansion": true,
    });
    Api::<StorageClass>::all(client.clone())
        .patch(
            STORAGE_CLASS,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(class),
        )
        .await?;
    Ok(())
}

/// Whether this agent should provision `claim`.
pub fn wants(claim: &PersistentVolumeClaim, node: &str) -> bool {
    let annotations = claim.annotations();
    let ours = [STORAGE_PROVISIONER, BETA_STORAGE_PROVISIONER]
        .iter()
        .any(|k| annotations.get(*k).map(String::as_str) == Some(PROVISIONER));
    let spec = claim.spec.as_ref();
    let unbound = spec
        .and_then(|s| s.volume_name.as_deref())
        .is_none_or(str::is_empty);
    ours && unbound
        && claim.metadata.deletion_timestamp.is_none()
        && annotations.get(SELECTED_NODE).map(String::as_str) == Some(node)
}

/// The PersistentVolume for `claim`, at `path`.
pub fn volume_for(claim: &PersistentVolumeClaim, node: &str, path: &str) -> PersistentVolume {
    let spec = claim.spec.clone().unwrap_or_default();
    let size = spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage").cloned());
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": format!("pvc-{}", claim.uid().unwrap_or_default()),
            "annotations": {PROVISIONED_BY: PROVISIONER},
            "labels": {"rill.dev/node": node},
        },
        "spec": {
            "capacity": {"storage": size.map(|q| q.0).unwrap_or_else(|| "1Gi".to_owned())},
            "accessModes": spec.access_modes.unwrap_or_else(|| vec!["ReadWriteOnce".to_owned()]),
            "volumeMode": spec.volume_mode.unwrap_or_else(|| "Filesystem".to_owned()),
            "storageClassName": STORAGE_CLASS,
            "persistentVolumeReclaimPolicy": "Delete",
            "claimRef": {
                "apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "namespace": claim.namespace(), "name": claim.name_any(), "uid": claim.uid(),
            },
            "local": {"path": path},
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}
            ]}]}},
        },
    }))
    .expect("a PersistentVolume")
}

async fn provision(client: &Client, config: &AgentConfig, claim: &PersistentVolumeClaim) {
    let name = format!("pvc-{}", claim.uid().unwrap_or_default());
    let dir = config.root_dir.join("volumes").join(&name);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        tracing::error!(volume = %name, error = %e, "cannot create the volume directory");
        return;
    }
    let pv = volume_for(claim, &config.node_name, &dir.to_string_lossy());
    match Api::<PersistentVolume>::all(client.clone())
        .create(&PostParams::default(), &pv)
        .await
    {
        Ok(_) => tracing::info!(
            volume = %name,
            claim = %format!("{}/{}", claim.namespace().unwrap_or_default(), claim.name_any()),
            dir = %dir.display(),
            "provisioned"
        ),
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => tracing::warn!(volume = %name, error = %e, "provisioning failed"),
    }
}

/// The storage request of a bound claim of the class when it exceeds the
/// capacity the claim reports: the size to grow its volume to.
pub fn wants_growth(claim: &PersistentVolumeClaim) -> Option<String> {
    let spec = claim.spec.as_ref()?;
    if spec.storage_class_name.as_deref() != Some(STORAGE_CLASS)
        || spec.volume_name.as_deref().is_none_or(str::is_empty)
    {
        return None;
    }
    let requested = spec.resources.as_ref()?.requests.as_ref()?.get("storage")?;
    let capacity = claim
        .status
        .as_ref()
        .and_then(|s| s.capacity.as_ref())
        .and_then(|c| c.get("storage"));
    (capacity != Some(requested)).then(|| requested.0.clone())
}

/// Grows the volume of `claim` to `size` (the volume, then the claim's
/// reported capacity, as a resizer and the kubelet would).
async fn grow(client: &Client, claim: &PersistentVolumeClaim, size: &str) {
    let Some(volume) = claim.spec.as_ref().and_then(|s| s.volume_name.clone()) else {
        return;
    };
    let claim_name = format!(
        "{}/{}",
        claim.namespace().unwrap_or_default(),
        claim.name_any()
    );
    let patch = Patch::Merge(json!({"spec": {"capacity": {"storage": size}}}));
    if let Err(e) = Api::<PersistentVolume>::all(client.clone())
        .patch(&volume, &PatchParams::default(), &patch)
        .await
    {
        tracing::warn!(%volume, error = %e, "cannot grow the volume");
        return;
    }
    let claims: Api<PersistentVolumeClaim> =
        Api::namespaced(client.clone(), &claim.namespace().unwrap_or_default());
    let status = Patch::Merge(json!({"status": {"capacity": {"storage": size}}}));
    match claims
        .patch_status(&claim.name_any(), &PatchParams::default(), &status)
        .await
    {
        Ok(_) => tracing::info!(claim = %claim_name, %volume, %size, "volume grown"),
        Err(e) => {
            tracing::warn!(claim = %claim_name, error = %e, "cannot report the grown capacity")
        }
    }
}

async fn reclaim(client: &Client, config: &AgentConfig, pv: &PersistentVolume) {
    let ours = pv.annotations().get(PROVISIONED_BY).map(String::as_str) == Some(PROVISIONER)
        && pv.labels().get("rill.dev/node").map(String::as_str) == Some(config.node_name.as_str());
    let released = pv.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Released");
    let delete = pv
        .spec
        .as_ref()
        .and_then(|s| s.persistent_volume_reclaim_policy.as_deref())
        == Some("Delete");
    if !(ours && released && delete) {
        return;
    }
    let name = pv.name_any();
    if let Some(path) = pv
        .spec
        .as_ref()
        .and_then(|s| s.local.as_ref())
        .map(|l| l.path.clone())
    {
        // Only directories this agent created are removed.
        if std::path::Path::new(&path).starts_with(config.root_dir.join("volumes"))
            && let Err(e) = std::fs::remove_dir_all(&path)
        {
            tracing::warn!(volume = %name, error = %e, "cannot remove the volume directory");
        }
    }
    match Api::<PersistentVolume>::all(client.clone())
        .delete(&name, &DeleteParams::default())
        .await
    {
        Ok(_) => tracing::info!(volume = %name, "released volume deleted"),
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(e) => tracing::warn!(volume = %name, error = %e, "cannot delete the volume"),
    }
}

/// Watches claims and volumes, provisioning and reclaiming, until dropped.
pub async fn run(client: Client, config: Arc<AgentConfig>) {
    let claims = watcher(
        Api::<PersistentVolumeClaim>::all(client.clone()),
        watcher::Config::default(),
    );
    let volumes = watcher(
        Api::<PersistentVolume>::all(client.clone()),
        watcher::Config::default(),
    );
    enum Seen {
        Claim(Box<PersistentVolumeClaim>),
        Volume(Box<PersistentVolume>),
    }
    let claims = WatchStreamExt::applied_objects(WatchStreamExt::default_backoff(claims))
        .map(|r| r.map(|c| Seen::Claim(Box::new(c))));
    let volumes = kube::runtime::WatchStreamExt::applied_objects(volumes)
        .map(|r| r.map(|v| Seen::Volume(Box::new(v))));
    let mut events = futures::stream::select(claims.boxed(), volumes.boxed());
    // Claims provisioned by this run, so a repeated event does not retry.
    let mut done: BTreeMap<String, ()> = BTreeMap::new();
    while let Some(event) = events.next().await {
        match event {
            Ok(Seen::Claim(claim)) => {
                let uid = claim.uid().unwrap_or_default();
                if wants(&claim, &config.node_name) && !done.contains_key(&uid) {
                    provision(&client, &config, &claim).await;
                    done.insert(uid, ());
                } else if let Some(size) = wants_growth(&claim) {
                    grow(&client, &claim, &size).await;
                }
            }
            Ok(Seen::Volume(pv)) => reclaim(&client, &config, &pv).await,
            Err(e) => {
                tracing::warn!(error = %e, "volume watch error");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(annotations: serde_json::Value, volume: Option<&str>) -> PersistentVolumeClaim {
        serde_json::from_value(json!({
            "metadata": {"name": "data-events-0", "namespace": "ns", "uid": "u1", "annotations": annotations},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": STORAGE_CLASS,
                     "resources": {"requests": {"storage": "20Gi"}}, "volumeName": volume},
        }))
        .expect("claim")
    }

    #[test]
    fn given_claims_when_deciding_then_only_unbound_ones_selected_for_this_node_are_provisioned() {
        let ok = json!({STORAGE_PROVISIONER: PROVISIONER, SELECTED_NODE: "n1"});
        assert!(wants(&claim(ok.clone(), None), "n1"));
        assert!(!wants(&claim(ok.clone(), None), "n2"));
        assert!(!wants(&claim(ok, Some("pvc-u1")), "n1"));
        assert!(!wants(&claim(json!({SELECTED_NODE: "n1"}), None), "n1"));
        assert!(!wants(
            &claim(
                json!({STORAGE_PROVISIONER: "other", SELECTED_NODE: "n1"}),
                None
            ),
            "n1"
        ));
    }

    #[test]
    fn given_a_bound_claim_asking_for_more_when_checking_then_it_is_grown_to_the_request() {
        let mut bound = claim(json!({}), Some("pvc-u1"));
        bound.status = serde_json::from_value(json!({"capacity": {"storage": "10Gi"}})).ok();
        assert_eq!(wants_growth(&bound), Some("20Gi".to_owned()));
        bound.status = serde_json::from_value(json!({"capacity": {"storage": "20Gi"}})).ok();
        assert_eq!(wants_growth(&bound), None);
        assert_eq!(wants_growth(&claim(json!({}), None)), None, "unbound");
    }

    #[test]
    fn given_a_claim_when_building_its_volume_then_it_is_local_to_the_node_and_claimed() {
        let pv = volume_for(&claim(json!({}), None), "n1", "/data/pvc-u1");
        assert_eq!(pv.metadata.name.as_deref(), Some("pvc-u1"));
        let spec = pv.spec.expect("spec");
        assert_eq!(spec.capacity.expect("capacity")["storage"].0, "20Gi");
        assert_eq!(spec.local.expect("local").path, "/data/pvc-u1");
        let claim_ref = spec.claim_ref.expect("claimRef");
        assert_eq!(claim_ref.name.as_deref(), Some("data-events-0"));
        assert_eq!(claim_ref.uid.as_deref(), Some("u1"));
        let affinity = spec
            .node_affinity
            .expect("affinity")
            .required
            .expect("required");
        let expr = &affinity.node_selector_terms[0]
            .match_expressions
            .as_ref()
            .expect("exprs")[0];
        assert_eq!(expr.values.as_deref(), Some(&["n1".to_owned()][..]));
        assert_eq!(spec.storage_class_name.as_deref(), Some(STORAGE_CLASS));
    }
}
