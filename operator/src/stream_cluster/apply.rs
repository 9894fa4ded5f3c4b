//! Step 3 of the StreamCluster pipeline: server-side apply each desired
//! object that differs from the live one, in dependency order (ConfigMap and
//! Services before the StatefulSet whose pods use them).

use k8s_openapi::api::apps::v1::StatefulSet;
use kube::Client;
use kube::api::Api;

use super::build::DesiredObjects;
use super::observe::{LiveObjects, by_name};
use super::{CONTROLLER, Error, OwnedObject};
use crate::metrics::Metrics;
use crate::ssa::{Applied, apply_if_changed};

/// What the apply step changed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApplyReport {
    /// `Kind/name` of created objects.
    pub created: Vec<String>,
    /// `Kind/name` of updated objects.
    pub updated: Vec<String>,
    /// The StatefulSet as the API server returned it, when it was written.
    pub stateful_set: Option<StatefulSet>,
}

impl ApplyReport {
    /// Whether anything was written.
    pub fn changed(&self) -> bool {
        !self.created.is_empty() || !self.updated.is_empty()
    }
}

async fn apply_one<K>(
    client: &Client,
    namespace: &str,
    desired: &K,
    live: &[K],
    metrics: &Metrics,
    report: &mut ApplyReport,
) -> Result<Option<K>, Error>
where
    K: OwnedObject,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let name = kube::ResourceExt::name_any(desired);
    let kind = K::kind(&()).into_owned();
    let applied = apply_if_changed(&api, desired, by_name(live, &name)).await?;
    match applied {
        Applied::Unchanged => Ok(None),
        Applied::Created(obj) => {
            metrics.record_write(CONTROLLER, &kind, "apply");
            report.created.push(format!("{kind}/{name}"));
            Ok(Some(obj))
        }
        Applied::Updated(obj) => {
            metrics.record_write(CONTROLLER, &kind, "apply");
            report.updated.push(format!("{kind}/{name}"));
            Ok(Some(obj))
        }
    }
}

/// Applies every desired object that differs from what exists.
pub async fn apply(
    client: &Client,
    namespace: &str,
    desired: &DesiredObjects,
    live: &LiveObjects,
    metrics: &Metrics,
) -> Result<ApplyReport, Error> {
    let mut report = ApplyReport::default();
    apply_one(
        client,
        namespace,
        &desired.config_map,
        &live.config_maps,
        metrics,
        &mut report,
    )
    .await?;
    apply_one(
        client,
        namespace,
        &desired.headless_service,
        &live.services,
        metrics,
        &mut report,
    )
    .await?;
    apply_one(
        client,
        namespace,
        &desired.bootstrap_service,
        &live.services,
        metrics,
        &mut report,
    )
    .await?;
    report.stateful_set = apply_one(
        client,
        namespace,
        &desired.stateful_set,
        &live.stateful_sets,
        metrics,
        &mut report,
    )
    .await?;
    apply_one(
        client,
        namespace,
        &desired.pod_disruption_budget,
        &live.pod_disruption_budgets,
        metrics,
        &mut report,
    )
    .await?;
    Ok(report)
}
