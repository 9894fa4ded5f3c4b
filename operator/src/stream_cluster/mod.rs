//! The StreamCluster reconciler.
//!
//! [`reconcile`] is a visible pipeline, one file per step:
//!
//! 1. [`validate`] — refuse specs the operator cannot honour (status only);
//! 2. [`certs`] — make, renew or read the certificates and credentials
//!    Secrets (a Secret of the user's that cannot be used stops here);
//! 3. [`build`] — pure functions from spec to desired objects;
//! 4. [`observe`] + [`apply`] — list what exists, server-side apply what differs;
//! 5. [`orphans`] — delete owned objects that are no longer desired;
//! 6. [`roll`] — restart outdated broker pods, one at a time, when it is
//!    safe (the broker restarted is recorded in the status first);
//! 7. [`status`] — conditions and counts, written only when they change.
//!
//! [`scale_down`] sits between 3 and 4: it decides the replica count the
//! build step uses; [`volumes`] too: it grows the broker claims when
//! `spec.storage.size` grew, and re-creates the StatefulSet (orphaning its
//! pods) so its claim template follows. Events are published for objects created, updated or
//! deleted and for changes of the Ready condition, never for a reconcile
//! that changed nothing.

pub mod apply;
pub mod build;
pub mod certs;
pub mod observe;
pub mod orphans;
pub mod roll;
pub mod scale_down;
pub mod status;
pub mod validate;
pub mod volumes;

use std::sync::Arc;
use std::time::Duration;

use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use tracing::info;

use crate::conditions::{self, READY};
use crate::context::Context;
use crate::crd::{StreamCluster, StreamClusterStatus};
use crate::ssa::ApplyError;

/// Controller name in metrics and logs.
pub const CONTROLLER: &str = "streamcluster";

/// A namespaced Kubernetes object a StreamCluster owns (StatefulSet,
/// Services, ConfigMap, PodDisruptionBudget): what observing, applying and
/// deleting orphans need of it.
pub trait OwnedObject:
    kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
    + serde::Serialize
    + serde::de::DeserializeOwned
    + Clone
    + std::fmt::Debug
{
}

impl<K> OwnedObject for K where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + serde::Serialize
        + serde::de::DeserializeOwned
        + Clone
        + std::fmt::Debug
{
}

/// How often a healthy cluster is re-checked even without watch events
/// (drift that no event reveals). Costs reads only.
pub const RESYNC: Duration = Duration::from_secs(300);

/// How often a blocked scale-down checks whether the brokers to remove are
/// drained.
pub const SCALE_DOWN_RECHECK: Duration = Duration::from_secs(5);

/// How often a cluster whose Secret of the user's is missing or unusable
/// looks again (Secrets are not watched).
pub const SECRET_RECHECK: Duration = Duration::from_secs(15);

/// How often a rolling restart looks again: pods are not watched, and the
/// next step depends on the restarted broker rejoining its ISRs.
pub const ROLL_RECHECK: Duration = Duration::from_secs(3);

/// Errors of one StreamCluster reconcile. Each is retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The object has no namespace (the CRD is namespaced, so never expected).
    #[error("StreamCluster has no namespace")]
    MissingNamespace,
    /// Listing the cluster's objects failed.
    #[error("cannot list {kind} objects: {source}")]
    Observe {
        /// Kind listed.
        kind: String,
        /// Client error.
        #[source]
        source: kube::Error,
    },
    /// Server-side apply failed.
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// Deleting an orphaned object failed.
    #[error("cannot delete orphaned {kind} {name}: {source}")]
    DeleteOrphan {
        /// Kind.
        kind: String,
        /// Name.
        name: String,
        /// Client error.
        #[source]
        source: kube::Error,
    },
    /// Writing the status failed.
    #[error("cannot update StreamCluster status: {0}")]
    Status(#[source] kube::Error),
    /// Growing a broker's PersistentVolumeClaim failed.
    #[error("cannot grow PersistentVolumeClaim {claim}: {source}")]
    Resize {
        /// Claim name.
        claim: String,
        /// Client error.
        #[source]
        source: kube::Error,
    },
    /// Reading or writing a certificate or credentials Secret failed.
    #[error("cannot read or write Secret {name}: {source}")]
    Secret {
        /// Secret name.
        name: String,
        /// Client error.
        #[source]
        source: kube::Error,
    },
    /// A certificate could not be made (never expected: rcgen refused).
    #[error("cannot make a certificate: {0}")]
    Certificate(String),
    /// Deleting a broker pod for a rolling restart failed.
    #[error("cannot delete pod {pod} to restart it: {source}")]
    Restart {
        /// Pod name.
        pod: String,
        /// Client error.
        #[source]
        source: kube::Error,
    },
}

impl Error {
    /// Short label for the `reason` of `rill_operator_reconcile_errors_total`.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::MissingNamespace => "missing_namespace",
            Error::Observe { .. } => "observe",
            Error::Apply(e) => e.metric_label(),
            Error::DeleteOrphan { .. } => "delete_orphan",
            Error::Status(_) => "status",
            Error::Restart { .. } => "restart",
            Error::Resize { .. } => "resize",
            Error::Secret { .. } => "secret",
            Error::Certificate(_) => "certificate",
        }
    }
}

/// Reconciles one StreamCluster.
pub async fn reconcile(sc: Arc<StreamCluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile_started(CONTROLLER);
    let namespace = sc.namespace().ok_or(Error::MissingNamespace)?;
    let name = sc.name_any();
    let api: Api<StreamCluster> = Api::namespaced(ctx.client.clone(), &namespace);
    let now = conditions::now();

    // 1. Validate.
    if let Err(invalid) = validate::validate(&sc) {
        let new_status = status::invalid(&sc, &invalid, &now);
        write_status(&ctx, &api, &sc, &new_status).await?;
        // Nothing to retry: the next spec change triggers a new reconcile.
        return Ok(Action::await_change());
    }

    // 2. Certificates and credentials Secrets: made, renewed, or read from
    // the user's Secrets. A Secret of the user's that cannot be used stops
    // here, like an invalid spec, and is looked at again soon (Secrets are
    // not watched).
    let tls = match certs::ensure(&ctx.client, &sc, now.0.as_second()).await? {
        Ok(material) => material,
        Err(problem) => {
            let new_status = status::secret_problem(&sc, &problem, &now);
            write_status(&ctx, &api, &sc, &new_status).await?;
            return Ok(Action::requeue(SECRET_RECHECK));
        }
    };
    if !tls.changes.is_empty() {
        info!(cluster = %name, namespace = %namespace, changes = ?tls.changes, "certificates");
        ctx.publish(
            sc.as_ref(),
            EventType::Normal,
            "Certificates",
            "Certificates",
            tls.changes.join("; "),
        )
        .await;
    }

    // 3. Observe what exists, decide the replica count, build the desired objects.
    let live = observe::observe(&ctx.client, &namespace, &name).await?;
    let current_replicas =
        observe::by_name(&live.stateful_sets, &name).and_then(|sts| sts.spec.replicas);
    let decision = scale_down::decide(
        ctx.placement.as_ref(),
        &namespace,
        &name,
        current_replicas,
        sc.spec.brokers,
    );
    let mut desired = build::desired_objects(&sc, decision.replicas(), &ctx.settings, &tls);
    let live_sts = observe::by_name(&live.stateful_sets, &name);
    let volumes = if volumes::due(&sc, live_sts) {
        Some(volumes::grow(&ctx.client, &sc, live_sts).await?)
    } else {
        None
    };
    if let Some(size) = live_sts.and_then(volumes::template_size) {
        build::keep_claim_size(&mut desired.stateful_set, &size);
    }

    // 4. Apply what differs.
    let report = apply::apply(&ctx.client, &namespace, &desired, &live, &ctx.metrics).await?;
    let config_map_changed = report
        .updated
        .iter()
        .any(|o| o == &format!("ConfigMap/{}", build::Names::new(&name).config_map));
    if config_map_changed {
        let hash = build::content_hash(&desired.config_map);
        roll::nudge_pods(&ctx.client, &namespace, &name, &hash).await;
    }
    if report.changed() {
        info!(cluster = %name, namespace = %namespace, created = ?report.created, updated = ?report.updated, "applied objects");
        let note = describe_changes(&report.created, &report.updated);
        ctx.publish(sc.as_ref(), EventType::Normal, "Applied", "Apply", note)
            .await;
    }

    // 5. Delete orphans.
    let deleted =
        orphans::delete_orphans(&ctx.client, &namespace, &sc, &desired, &live, &ctx.metrics)
            .await?;
    if !deleted.is_empty() {
        info!(cluster = %name, namespace = %namespace, deleted = ?deleted, "deleted orphaned objects");
        ctx.publish(
            sc.as_ref(),
            EventType::Normal,
            "DeletedOrphans",
            "Delete",
            format!("deleted {}", deleted.join(", ")),
        )
        .await;
    }

    // 6. Roll.
    let sts = report
        .stateful_set
        .as_ref()
        .or_else(|| observe::by_name(&live.stateful_sets, &name));
    let roll = roll::observe(&ctx.client, ctx.placement.as_ref(), &sc, sts, &decision).await?;
    let key = format!("{namespace}/{name}");
    match &roll {
        Some(r) => ctx.metrics.set_roll(
            &key,
            i64::from(r.replicas - r.updated),
            matches!(&r.step, roll::Step::Wait(w) if w.is_blocked()),
        ),
        None => ctx.metrics.set_roll(&key, 0, false),
    }

    // 7. Status.
    let mut new_status =
        status::compute(&sc, sts, &decision, roll.as_ref(), volumes.as_ref(), &now);
    new_status.certificates = Some(tls.status.clone());
    if let Some(outcome) = &roll
        && let roll::Step::Restart { pod, .. } = &outcome.step
    {
        // Record the broker before touching it: an operator that stops
        // after the delete still knows which broker must come back first.
        write_status(&ctx, &api, &sc, &new_status).await?;
        roll::restart(&ctx.client, &namespace, pod).await?;
        ctx.metrics.record_roll_restart();
        info!(cluster = %name, namespace = %namespace, broker = pod.broker, pod = %pod.name, revision = %outcome.revision, "rolling restart: restarting broker");
        ctx.publish(
            sc.as_ref(),
            EventType::Normal,
            "RestartingBroker",
            "Restart",
            outcome.message(),
        )
        .await;
        return Ok(Action::requeue(ROLL_RECHECK));
    }
    write_status(&ctx, &api, &sc, &new_status).await?;
    if roll
        .as_ref()
        .is_some_and(|r| !matches!(r.step, roll::Step::Done))
        || volumes
            .as_ref()
            .is_some_and(|v| !v.done() && v.failure.is_none())
    {
        return Ok(Action::requeue(ROLL_RECHECK));
    }
    if matches!(decision, scale_down::ScaleDecision::Blocked { .. }) {
        // The controller is moving replicas off the brokers to remove;
        // nothing in Kubernetes changes when it is done, so look again soon.
        return Ok(Action::requeue(SCALE_DOWN_RECHECK));
    }
    Ok(Action::requeue(RESYNC))
}

/// Writes the status if it changed and publishes an Event when the Ready
/// condition changed its status or reason.
async fn write_status(
    ctx: &Context,
    api: &Api<StreamCluster>,
    sc: &StreamCluster,
    new_status: &StreamClusterStatus,
) -> Result<(), Error> {
    let written = status::patch_if_changed(api, sc, new_status)
        .await
        .map_err(Error::Status)?;
    if !written {
        return Ok(());
    }
    ctx.metrics
        .record_write(CONTROLLER, "StreamCluster", "status");
    let old_ready = sc
        .status
        .as_ref()
        .and_then(|s| conditions::find(&s.conditions, READY))
        .map(|c| (c.status.clone(), c.reason.clone()));
    if let Some(ready) = conditions::find(&new_status.conditions, READY)
        && old_ready != Some((ready.status.clone(), ready.reason.clone()))
    {
        let type_ = if ready.status == "True" {
            EventType::Normal
        } else {
            EventType::Warning
        };
        let reason = ready.reason.clone();
        ctx.publish(sc, type_, &reason, "Reconcile", ready.message.clone())
            .await;
    }
    // A roll that starts waiting on partition safety is worth a Warning:
    // it may need someone to look at the lagging replicas.
    let old_progressing = sc
        .status
        .as_ref()
        .and_then(|s| conditions::find(&s.conditions, conditions::PROGRESSING))
        .map(|c| c.reason.clone());
    if let Some(progressing) = conditions::find(&new_status.conditions, conditions::PROGRESSING)
        && progressing.reason == status::reasons::ROLL_BLOCKED
        && old_progressing.as_deref() != Some(status::reasons::ROLL_BLOCKED)
    {
        ctx.publish(
            sc,
            EventType::Warning,
            status::reasons::ROLL_BLOCKED,
            "Restart",
            progressing.message.clone(),
        )
        .await;
    }
    Ok(())
}

fn describe_changes(created: &[String], updated: &[String]) -> String {
    let mut parts = Vec::new();
    if !created.is_empty() {
        parts.push(format!("created {}", created.join(", ")));
    }
    if !updated.is_empty() {
        parts.push(format!("updated {}", updated.join(", ")));
    }
    parts.join("; ")
}

#[cfg(test)]
mod reconcile_tests;
