//! The Topic reconciler.
//!
//! Every reconcile goes through kube-runtime's [`finalizer`] helper, which
//! adds `rill.dev/topic-data` before anything else and then calls one of two
//! branches:
//!
//! * **Apply**: [`validate`] the spec, find the StreamCluster, check the
//!   replication factor against its brokers, resolve name [`conflict`]s,
//!   refuse partition shrinks, [`build`] the topic plan, have the metadata
//!   controller [`place`] it (create or grow; it writes `status.partitions`;
//!   and push `spec.config` when the controller holds another config) and
//!   write the [`status`] conditions and `configGeneration` (only when they
//!   changed). An accepted Topic is checked again every [`CONFIG_RESYNC`]:
//!   a controller config that differs although `status.configGeneration`
//!   is the current generation was changed behind the resource's back; it
//!   is reverted and a Warning event `ConfigDriftReverted` names the keys.
//! * **Cleanup**: delete the topic's data through the [`cleanup`] hook unless
//!   it is kept by annotation or owned by another Topic resource; then the
//!   helper removes the finalizer.
//!
//! Refusals that only a spec change can fix wait for that change; refusals
//! that depend on other objects (missing cluster, name conflict, too few
//! brokers) are re-checked every [`RECHECK`].

pub mod build;
pub mod cleanup;
pub mod conflict;
pub mod place;
pub mod status;
pub mod validate;

use std::sync::Arc;
use std::time::Duration;

use kube::ResourceExt;
use kube::api::{Api, ListParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use tracing::{info, warn};

use crate::conditions::{self, READY};
use crate::context::Context;
use crate::crd::{StreamCluster, Topic, TopicStatus};
use cleanup::{DataDeletionError, DeletionOutcome, TopicDataRef};
use place::ConfigSync;
use status::{Outcome, reasons};

/// Controller name in metrics and logs.
pub const CONTROLLER: &str = "topic";

/// Finalizer that guards data deletion.
pub const FINALIZER: &str = "rill.dev/topic-data";

/// Re-check interval for refusals caused by other objects.
pub const RECHECK: Duration = Duration::from_secs(60);

/// Retry interval while the metadata controller cannot place a topic yet
/// (brokers still registering).
pub const PLACEMENT_RETRY: Duration = Duration::from_secs(5);

/// How often an accepted Topic is compared with the metadata controller
/// again, so a config changed behind the resource's back is reverted.
pub const CONFIG_RESYNC: Duration = Duration::from_secs(60);

/// Errors of one Topic reconcile; retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The object has no namespace (never expected: the CRD is namespaced).
    #[error("Topic has no namespace")]
    MissingNamespace,
    /// Reading the StreamCluster failed.
    #[error("cannot read StreamCluster {name}: {source}")]
    GetCluster {
        /// Cluster name.
        name: String,
        /// Client error.
        #[source]
        source: kube::Error,
    },
    /// Listing Topics (for name conflicts) failed.
    #[error("cannot list Topics: {0}")]
    ListTopics(#[source] kube::Error),
    /// Writing the status failed.
    #[error("cannot update Topic status: {0}")]
    Status(#[source] kube::Error),
    /// The data deleter failed; the finalizer stays.
    #[error(transparent)]
    DeleteData(#[from] DataDeletionError),
    /// The finalizer helper failed (adding or removing the finalizer, or a
    /// branch above).
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
}

impl Error {
    /// Short label for the `reason` of `rill_operator_reconcile_errors_total`.
    pub fn metric_label(&self) -> &'static str {
        use kube::runtime::finalizer::Error as F;
        match self {
            Error::MissingNamespace => "missing_namespace",
            Error::GetCluster { .. } => "get_cluster",
            Error::ListTopics(_) => "list_topics",
            Error::Status(_) => "status",
            Error::DeleteData(e) => e.metric_label(),
            Error::Finalizer(inner) => match inner.as_ref() {
                F::ApplyFailed(e) | F::CleanupFailed(e) => e.metric_label(),
                F::AddFinalizer(_) => "add_finalizer",
                F::RemoveFinalizer(_) => "remove_finalizer",
                F::UnnamedObject | F::InvalidFinalizer => "finalizer",
            },
        }
    }
}

/// Reconciles one Topic.
pub async fn reconcile(topic: Arc<Topic>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile_started(CONTROLLER);
    let namespace = topic.namespace().ok_or(Error::MissingNamespace)?;
    let api: Api<Topic> = Api::namespaced(ctx.client.clone(), &namespace);
    let (ctx, api_ref, namespace) = (ctx.as_ref(), &api, namespace.as_str());
    finalizer(&api, FINALIZER, topic, |event| async move {
        match event {
            FinalizerEvent::Apply(topic) => apply(&topic, ctx, api_ref, namespace).await,
            FinalizerEvent::Cleanup(topic) => cleanup(&topic, ctx, api_ref, namespace).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

async fn list_topics(api: &Api<Topic>) -> Result<Vec<Topic>, Error> {
    api.list(&ListParams::default())
        .await
        .map(|l| l.items)
        .map_err(Error::ListTopics)
}

/// Decides the outcome of the Apply branch and how soon to look again.
async fn check(
    topic: &Topic,
    ctx: &Context,
    api: &Api<Topic>,
    namespace: &str,
) -> Result<(Outcome, Action), Error> {
    let refused = |reason, message| Outcome::Refused { reason, message };
    if let Err(invalid) = validate::validate(topic) {
        return Ok((
            refused(reasons::INVALID_SPEC, invalid.message()),
            Action::await_change(),
        ));
    }
    let cluster_name = &topic.spec.cluster_ref.name;
    let clusters: Api<StreamCluster> = Api::namespaced(ctx.client.clone(), namespace);
    let cluster = clusters
        .get_opt(cluster_name)
        .await
        .map_err(|source| Error::GetCluster {
            name: cluster_name.clone(),
            source,
        })?;
    let Some(cluster) = cluster else {
        let message =
            format!("StreamCluster {cluster_name:?} does not exist in namespace {namespace:?}");
        return Ok((
            refused(reasons::CLUSTER_NOT_FOUND, message),
            Action::requeue(RECHECK),
        ));
    };
    if let Err(message) = validate::fits_cluster(topic, &cluster) {
        return Ok((
            refused(reasons::INSUFFICIENT_BROKERS, message),
            Action::requeue(RECHECK),
        ));
    }
    let all = list_topics(api).await?;
    if let Some(owner) = conflict::owner_other_than(topic, &all, true) {
        let message = format!(
            "Topic {:?} already defines Kafka topic {:?} in StreamCluster {cluster_name:?}; the oldest resource wins",
            owner.name_any(),
            topic.effective_topic_name()
        );
        return Ok((
            refused(reasons::RESOURCE_CONFLICT, message),
            Action::requeue(RECHECK),
        ));
    }
    let accepted = topic.status.as_ref().and_then(|s| s.partition_count);
    if let Some(accepted) = accepted
        && topic.spec.partitions < accepted
    {
        let message = format!(
            "partitions can only grow: the spec asks for {}, the topic has {accepted}",
            topic.spec.partitions
        );
        return Ok((
            refused(reasons::NOT_SUPPORTED, message),
            Action::await_change(),
        ));
    }
    let plan = build::plan(topic);
    match ctx.placer.place(namespace, &plan).await {
        Ok(sync) => {
            if let ConfigSync::Pushed { keys } = &sync {
                config_pushed(topic, ctx, keys).await;
            }
            let superseded = sync == ConfigSync::Superseded;
            Ok((
                Outcome::Accepted {
                    partitions: plan.partitions,
                    replication_factor: plan.replication_factor,
                    config_applied: !superseded,
                },
                if superseded {
                    Action::requeue(PLACEMENT_RETRY)
                } else {
                    Action::requeue(CONFIG_RESYNC)
                },
            ))
        }
        Err(e) => {
            let message = format!("waiting for the metadata controller to place the topic: {e}");
            Ok((
                Outcome::Pending { message },
                Action::requeue(PLACEMENT_RETRY),
            ))
        }
    }
}

/// Reports a config push: the spec's new generation reaching the
/// controller (info log), or, when the status says the controller already
/// held this generation's config, a change made behind the resource's back
/// that the push reverted (Warning event `ConfigDriftReverted`).
async fn config_pushed(topic: &Topic, ctx: &Context, keys: &[String]) {
    let name = topic.effective_topic_name();
    let generation = topic.metadata.generation;
    let applied = topic.status.as_ref().and_then(|s| s.config_generation);
    if generation.is_some() && applied == generation {
        warn!(topic = %name, ?keys, "topic config changed behind the Topic resource's back; reverted to spec.config");
        let note = format!(
            "the config of Kafka topic {name:?} was changed outside this resource ({}); reverted to spec.config",
            keys.join(", ")
        );
        ctx.publish(
            topic,
            EventType::Warning,
            reasons::CONFIG_DRIFT_REVERTED,
            "Reconcile",
            note,
        )
        .await;
    } else {
        info!(topic = %name, ?keys, ?generation, "topic config of spec.config pushed to the metadata controller");
    }
}

async fn apply(
    topic: &Topic,
    ctx: &Context,
    api: &Api<Topic>,
    namespace: &str,
) -> Result<Action, Error> {
    let (outcome, action) = check(topic, ctx, api, namespace).await?;
    let new_status = status::compute(topic, &outcome, &conditions::now());
    write_status(ctx, api, topic, &new_status).await?;
    Ok(action)
}

async fn write_status(
    ctx: &Context,
    api: &Api<Topic>,
    topic: &Topic,
    new_status: &TopicStatus,
) -> Result<(), Error> {
    if !status::patch_if_changed(api, topic, new_status)
        .await
        .map_err(Error::Status)?
    {
        return Ok(());
    }
    ctx.metrics.record_write(CONTROLLER, "Topic", "status");
    let old = topic
        .status
        .as_ref()
        .and_then(|s| conditions::find(&s.conditions, READY))
        .map(|c| (c.status.clone(), c.reason.clone()));
    if let Some(ready) = conditions::find(&new_status.conditions, READY)
        && old != Some((ready.status.clone(), ready.reason.clone()))
    {
        let type_ = if ready.status == "True" {
            EventType::Normal
        } else {
            EventType::Warning
        };
        ctx.publish(
            topic,
            type_,
            &ready.reason.clone(),
            "Reconcile",
            ready.message.clone(),
        )
        .await;
    }
    Ok(())
}

async fn cleanup(
    topic: &Topic,
    ctx: &Context,
    api: &Api<Topic>,
    namespace: &str,
) -> Result<Action, Error> {
    let name = topic.effective_topic_name();
    if topic.keeps_data() {
        info!(topic = %name, "keeping data: rill.dev/keep-data is true");
        let note = format!("data of Kafka topic {name:?} is kept (rill.dev/keep-data: \"true\")");
        ctx.publish(topic, EventType::Normal, "DataKept", "Delete", note)
            .await;
        return Ok(Action::await_change());
    }
    if topic
        .status
        .as_ref()
        .and_then(|s| s.partition_count)
        .is_none()
    {
        info!(topic = %name, "never accepted: no data to delete");
        return Ok(Action::await_change());
    }
    let all = list_topics(api).await?;
    if let Some(owner) = conflict::owner_other_than(topic, &all, false) {
        let note = format!(
            "data of Kafka topic {name:?} belongs to Topic {:?}; not deleted",
            owner.name_any()
        );
        ctx.publish(
            topic,
            EventType::Normal,
            "DataOwnedElsewhere",
            "Delete",
            note,
        )
        .await;
        return Ok(Action::await_change());
    }
    // The data to delete is the topic this resource was placed for, named
    // by the id the controller recorded in its status; never "whatever
    // topic has this name now", which may be a topic created again since.
    let Some(topic_id) = topic.status.as_ref().and_then(|s| s.topic_id.clone()) else {
        info!(topic = %name, "no topic id recorded: never placed, no data to delete");
        let note = format!(
            "Kafka topic {name:?} was not placed on any broker (no topic id recorded); nothing to delete"
        );
        ctx.publish(
            topic,
            EventType::Normal,
            "DataDeletionRecorded",
            "Delete",
            note,
        )
        .await;
        return Ok(Action::await_change());
    };
    let target = TopicDataRef {
        namespace: namespace.to_owned(),
        cluster: topic.spec.cluster_ref.name.clone(),
        topic: name.clone(),
        topic_id,
    };
    let outcome = ctx.data_deleter.delete_topic_data(&target).await?;
    let (reason, note) = match outcome {
        DeletionOutcome::Deleted => (
            "DataDeleted",
            format!("deleted the data of Kafka topic {name:?}"),
        ),
        DeletionOutcome::Recorded => (
            "DataDeletionRecorded",
            format!(
                "Kafka topic {name:?} was not placed on any broker (or its cluster is gone); nothing to delete"
            ),
        ),
    };
    info!(topic = %name, reason, "topic cleanup done");
    ctx.publish(topic, EventType::Normal, reason, "Delete", note)
        .await;
    Ok(Action::await_change())
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Topics used by tests.
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use crate::crd::{Topic, TopicSpec};

    /// Topic `name` in namespace `data`, cluster `events`, 6 partitions, RF 3.
    pub fn topic(name: &str, created: &str) -> Topic {
        let spec: TopicSpec = serde_json::from_value(serde_json::json!({
            "clusterRef": {"name": "events"},
            "partitions": 6,
            "replicationFactor": 3,
        }))
        .expect("spec");
        let mut t = Topic::new(name, spec);
        t.metadata.namespace = Some("data".into());
        t.metadata.uid = Some(format!("uid-{name}"));
        t.metadata.generation = Some(1);
        t.metadata.creation_timestamp = Some(Time(created.parse().expect("timestamp")));
        t
    }
}

#[cfg(test)]
mod reconcile_tests;
