//! Volume growth: `spec.storage.size` may grow (the CRD's CEL rule refuses
//! a smaller size), and the operator grows each broker's PersistentVolumeClaim.
//!
//! A StatefulSet's volume claim template cannot change, so the operator:
//!
//! 1. keeps applying the live template's size while the claims grow;
//! 2. checks the claims' StorageClass allows expansion
//!    (`allowVolumeExpansion: true`), else reports `VolumeResizeFailed`
//!    (Degraded) naming the class, and changes nothing;
//! 3. raises `spec.resources.requests.storage` of every broker claim
//!    `data-<cluster>-<n>`; the storage driver grows the volume and, for
//!    filesystems, the node grows the filesystem (the claim's
//!    `FileSystemResizePending` condition shows that wait);
//! 4. once every claim asks for the new size, deletes the StatefulSet with
//!    `propagationPolicy: Orphan` (pods keep running) and creates it again
//!    with the new template, so brokers added later get the new size. The
//!    pods are adopted unchanged: same template, same revision, no restart.
//!
//! Progress is `status.storage` (claims at the new capacity out of all) and
//! `Progressing=True, ResizingVolumes` until every claim reports it.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PropagationPolicy};
use kube::{Client, ResourceExt};
use serde_json::json;

use super::Error;
use super::build::{DATA_VOLUME, owned_objects_selector};
use crate::crd::{StorageStatus, StreamCluster};

/// The size in bytes of a Kubernetes quantity such as `10Gi`, `500M` or
/// `1.5Ti`; None when it is not one.
pub fn quantity_bytes(q: &str) -> Option<u128> {
    const SUFFIXES: [(&str, u128); 13] = [
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("Ti", 1 << 40),
        ("Pi", 1 << 50),
        ("Ei", 1 << 60),
        ("k", 1_000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
        ("T", 1_000_000_000_000),
        ("P", 1_000_000_000_000_000),
        ("E", 1_000_000_000_000_000_000),
        ("", 1),
    ];
    let q = q.trim();
    SUFFIXES.iter().find_map(|(suffix, unit)| {
        let number = q.strip_suffix(suffix)?;
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        if !fraction.bytes().all(|b| b.is_ascii_digit()) || fraction.len() > 9 {
            return None;
        }
        let whole: u128 = whole.parse().ok()?;
        let scale = 10u128.pow(fraction.len() as u32);
        let fraction: u128 = if fraction.is_empty() {
            0
        } else {
            fraction.parse().ok()?
        };
        Some(whole * unit + fraction * unit / scale)
    })
}

/// The storage request of a claim spec.
fn requested(claim: &PersistentVolumeClaim) -> Option<u128> {
    claim
        .spec
        .as_ref()?
        .resources
        .as_ref()?
        .requests
        .as_ref()?
        .get("storage")
        .and_then(|q| quantity_bytes(&q.0))
}

/// The capacity a claim reports.
fn capacity(claim: &PersistentVolumeClaim) -> Option<u128> {
    claim
        .status
        .as_ref()?
        .capacity
        .as_ref()?
        .get("storage")
        .and_then(|q| quantity_bytes(&q.0))
}

/// The storage size of the live StatefulSet's claim template.
pub fn template_size(sts: &StatefulSet) -> Option<Quantity> {
    sts.spec
        .volume_claim_templates
        .as_ref()?
        .iter()
        .find(|t| t.metadata.name.as_deref() == Some(DATA_VOLUME))?
        .spec
        .as_ref()?
        .resources
        .as_ref()?
        .requests
        .as_ref()?
        .get("storage")
        .cloned()
}

/// What the volume step found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeOutcome {
    /// `status.storage`.
    pub status: StorageStatus,
    /// Why the claims cannot grow, when they cannot.
    pub failure: Option<String>,
    /// Claims still growing, with what they wait for.
    pub pending: Vec<String>,
    /// The StatefulSet is being re-created with the new template: do not
    /// apply it this time.
    pub recreating: bool,
}

impl VolumeOutcome {
    /// Whether every claim has the new capacity.
    pub fn done(&self) -> bool {
        self.failure.is_none() && !self.recreating && self.status.resized >= self.status.claims
    }

    /// One line for conditions and Events.
    pub fn message(&self) -> String {
        if let Some(failure) = &self.failure {
            return failure.clone();
        }
        let mut m = format!(
            "growing broker volumes to {}: {}/{} claims have the new capacity",
            self.status.size, self.status.resized, self.status.claims
        );
        if !self.pending.is_empty() {
            m.push_str(&format!("; waiting for {}", self.pending.join(", ")));
        }
        m
    }
}

/// Whether a resize is due or under way: the live template is smaller than
/// the spec, or the last status says claims are still growing.
pub fn due(sc: &StreamCluster, sts: Option<&StatefulSet>) -> bool {
    let desired = quantity_bytes(&sc.spec.storage.size.0);
    let template = sts
        .and_then(template_size)
        .and_then(|q| quantity_bytes(&q.0));
    let unfinished = sc
        .status
        .as_ref()
        .and_then(|s| s.storage.as_ref())
        .is_some_and(|s| s.resized < s.claims);
    (template.is_some() && desired > template) || unfinished
}

/// Grows the broker claims of `sc` to `spec.storage.size` (see the module
/// docs). Call only when [`due`].
pub async fn grow(
    client: &Client,
    sc: &StreamCluster,
    sts: Option<&StatefulSet>,
) -> Result<VolumeOutcome, Error> {
    let namespace = sc.namespace().unwrap_or_default();
    let name = sc.name_any();
    let size = sc.spec.storage.size.clone();
    let desired = quantity_bytes(&size.0).unwrap_or(0);
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &namespace);
    let prefix = format!("{DATA_VOLUME}-{name}-");
    let mut list: Vec<PersistentVolumeClaim> = claims
        .list(&ListParams::default().labels(&owned_objects_selector(&name)))
        .await
        .map_err(|source| Error::Observe {
            kind: "PersistentVolumeClaim".to_owned(),
            source,
        })?
        .items
        .into_iter()
        .filter(|c| c.name_any().starts_with(&prefix) && c.metadata.deletion_timestamp.is_none())
        .collect();
    list.sort_by_key(|c| c.name_any());

    let mut outcome = VolumeOutcome {
        status: StorageStatus {
            size: size.0.clone(),
            claims: list.len() as i32,
            resized: 0,
        },
        failure: None,
        pending: Vec::new(),
        recreating: false,
    };

    // Expansion must be allowed by each claim's StorageClass.
    let classes: Api<StorageClass> = Api::all(client.clone());
    let mut all_requested = true;
    for claim in &list {
        let claim_name = claim.name_any();
        if capacity(claim).is_some_and(|c| c >= desired) {
            outcome.status.resized += 1;
            continue;
        }
        if requested(claim).is_some_and(|r| r >= desired) {
            let waiting = claim
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|c| c.iter().find(|c| c.status == "True"))
                .map(|c| c.type_.clone())
                .unwrap_or_else(|| "the storage driver".to_owned());
            outcome.pending.push(format!("{claim_name} ({waiting})"));
            continue;
        }
        let class_name = claim
            .spec
            .as_ref()
            .and_then(|s| s.storage_class_name.clone());
        let allowed = match &class_name {
            Some(class) => classes
                .get_opt(class)
                .await
                .map_err(|source| Error::Observe {
                    kind: "StorageClass".to_owned(),
                    source,
                })?
                .is_some_and(|c| c.allow_volume_expansion == Some(true)),
            None => false,
        };
        if !allowed {
            outcome.failure = Some(format!(
                "cannot grow {claim_name} to {}: its StorageClass {} does not allow volume expansion (allowVolumeExpansion is not true); \
                 set spec.storage.size back to the current size, or use a StorageClass that can expand",
                size.0,
                class_name.as_deref().unwrap_or("(none)")
            ));
            all_requested = false;
            break;
        }
        claims
            .patch(
                &claim_name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"resources": {"requests": {"storage": size.0}}}})),
            )
            .await
            .map_err(|source| Error::Resize {
                claim: claim_name.clone(),
                source,
            })?;
        outcome.pending.push(format!("{claim_name} (requested)"));
    }

    // Every claim asks for the new size: give the StatefulSet the new
    // template (delete, orphaning the pods; the apply step creates it).
    if let Some(sts) = sts
        && all_requested
        && outcome.failure.is_none()
    {
        let template = template_size(sts).and_then(|q| quantity_bytes(&q.0));
        if sts.metadata.deletion_timestamp.is_some() {
            outcome.recreating = true;
        } else if template.is_some_and(|t| t < desired) {
            let api: Api<StatefulSet> = Api::namespaced(client.clone(), &namespace);
            let params = DeleteParams {
                propagation_policy: Some(PropagationPolicy::Orphan),
                ..DeleteParams::default()
            };
            match api.delete(&sts.name_any(), &params).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(source) => {
                    return Err(Error::DeleteOrphan {
                        kind: "StatefulSet".to_owned(),
                        name: sts.name_any(),
                        source,
                    });
                }
            }
            outcome.recreating = true;
        }
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_quantities_when_parsing_then_binary_decimal_and_fractions_are_bytes() {
        assert_eq!(quantity_bytes("10Gi"), Some(10 << 30));
        assert_eq!(quantity_bytes("1.5Gi"), Some(3 << 29));
        assert_eq!(quantity_bytes("500M"), Some(500_000_000));
        assert_eq!(quantity_bytes("1024"), Some(1024));
        assert_eq!(quantity_bytes("Gi"), None);
        assert_eq!(quantity_bytes("ten"), None);
        assert!(quantity_bytes("20Gi") > quantity_bytes("10Gi"));
        assert!(quantity_bytes("11G") > quantity_bytes("10Gi"));
    }
}
