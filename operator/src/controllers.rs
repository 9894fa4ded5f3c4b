//! Wiring of the two kube-runtime Controllers: what each watches, how
//! errors turn into backoff and metrics, and how they stop.

use std::future::Future;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use tracing::{debug, warn};

use crate::context::Context;
use crate::crd::{StreamCluster, Topic};
use crate::stream_cluster::build::labels;
use crate::{stream_cluster, topic};

fn key<K: Resource<DynamicType = ()>>(obj: &K) -> String {
    format!(
        "{}/{}/{}",
        K::kind(&()),
        obj.namespace().unwrap_or_default(),
        obj.name_any()
    )
}

async fn reconcile_cluster(
    obj: Arc<StreamCluster>,
    ctx: Arc<Context>,
) -> Result<Action, stream_cluster::Error> {
    let key = key(obj.as_ref());
    let action = stream_cluster::reconcile(obj, ctx.clone()).await?;
    ctx.backoff.reset(&key);
    Ok(action)
}

fn cluster_error(
    obj: Arc<StreamCluster>,
    error: &stream_cluster::Error,
    ctx: Arc<Context>,
) -> Action {
    let label = error.metric_label();
    ctx.metrics.record_error(stream_cluster::CONTROLLER, label);
    let delay = ctx.backoff.next_delay(&key(obj.as_ref()));
    warn!(%error, reason = label, cluster = %obj.name_any(), namespace = ?obj.namespace(), retry_in = ?delay, "StreamCluster reconcile failed");
    Action::requeue(delay)
}

async fn reconcile_topic(obj: Arc<Topic>, ctx: Arc<Context>) -> Result<Action, topic::Error> {
    let key = key(obj.as_ref());
    let action = topic::reconcile(obj, ctx.clone()).await?;
    ctx.backoff.reset(&key);
    Ok(action)
}

fn topic_error(obj: Arc<Topic>, error: &topic::Error, ctx: Arc<Context>) -> Action {
    let label = error.metric_label();
    ctx.metrics.record_error(topic::CONTROLLER, label);
    let delay = ctx.backoff.next_delay(&key(obj.as_ref()));
    warn!(%error, reason = label, topic = %obj.name_any(), namespace = ?obj.namespace(), retry_in = ?delay, "Topic reconcile failed");
    Action::requeue(delay)
}

/// Runs both controllers until a future made by `stop` completes. Owned objects are watched
/// only through the `app.kubernetes.io/managed-by=rill-operator` label, so
/// the operator does not cache every ConfigMap and Service of the cluster.
pub async fn run<S, F>(ctx: Arc<Context>, stop: S)
where
    S: Fn() -> F,
    F: Future<Output = ()> + Send + Sync + 'static,
{
    let client = ctx.client.clone();
    let owned = watcher::Config::default().labels(&format!(
        "{}={}",
        labels::MANAGED_BY,
        labels::MANAGED_BY_VALUE
    ));
    let clusters = Controller::new(
        Api::<StreamCluster>::all(client.clone()),
        watcher::Config::default().any_semantic(),
    )
    .owns(Api::<StatefulSet>::all(client.clone()), owned.clone())
    .owns(Api::<ConfigMap>::all(client.clone()), owned.clone())
    .owns(Api::<Service>::all(client.clone()), owned.clone())
    .owns(
        Api::<PodDisruptionBudget>::all(client.clone()),
        owned.clone(),
    )
    .owns(Api::<NetworkPolicy>::all(client.clone()), owned)
    .graceful_shutdown_on(stop())
    .run(reconcile_cluster, cluster_error, ctx.clone())
    .for_each(|result| async move {
        match result {
            Ok((obj, _)) => debug!(cluster = %obj.name, "reconciled StreamCluster"),
            Err(error) => debug!(%error, "StreamCluster controller event"),
        }
    });
    let topics = Controller::new(
        Api::<Topic>::all(client),
        watcher::Config::default().any_semantic(),
    )
    .graceful_shutdown_on(stop())
    .run(reconcile_topic, topic_error, ctx)
    .for_each(|result| async move {
        match result {
            Ok((obj, _)) => debug!(topic = %obj.name, "reconciled Topic"),
            Err(error) => debug!(%error, "Topic controller event"),
        }
    });
    futures::join!(clusters, topics);
}
