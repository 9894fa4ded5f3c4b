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

/// Applies objects of one StreamCluster and notes what it wrote.
struct Applier<'a> {
    client: &'a Client,
    namespace: &'a str,
    metrics: &'a Metrics,
    report: ApplyReport,
}

impl Applier<'_> {
    /// Applies `desired` unless the live object of its name (in `live`)
    /// already has every field it sets; returns the object written.
    async fn apply<K: OwnedObject>(&mut self, desired: &K, live: &[K]) -> Result<Option<K>, Error> {
        let api: Api<K> = Api::namespaced(self.client.clone(), self.namespace);
        let name = kube::ResourceExt::name_any(desired);
        let kind = K::kind(&()).into_owned();
        let (written, list) = match apply_if_changed(&api, desired, by_name(live, &name)).await? {
            Applied::Unchanged => return Ok(None),
            Applied::Created(obj) => (obj, &mut self.report.created),
            Applied::Updated(obj) => (obj, &mut self.report.updated),
        };
        self.metrics.record_write(CONTROLLER, &kind, "apply");
        list.push(format!("{kind}/{name}"));
        Ok(Some(written))
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
    let mut applier = Applier {
        client,
        namespace,
        metrics,
        report: ApplyReport::default(),
    };
    applier
        .apply(&desired.config_map, &live.config_maps)
        .await?;
    applier
        .apply(&desired.headless_service, &live.services)
        .await?;
    applier
        .apply(&desired.bootstrap_service, &live.services)
        .await?;
    let stateful_set = applier
        .apply(&desired.stateful_set, &live.stateful_sets)
        .await?;
    applier
        .apply(&desired.pod_disruption_budget, &live.pod_disruption_budgets)
        .await?;
    if let Some(policy) = &desired.network_policy {
        applier.apply(policy, &live.network_policies).await?;
    }
    Ok(ApplyReport {
        stateful_set,
        ..applier.report
    })
}
