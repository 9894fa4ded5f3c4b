//! Wiring of the kube-runtime Controllers (StreamCluster, Topic, User):
//! what each watches, how errors turn into backoff and metrics, and how
//! they stop.

use std::future::Future;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use tracing::{debug, warn};

use crate::context::Context;
use crate::crd::{StreamCluster, Topic, User};
use crate::stream_cluster::build::labels;
use crate::user::{certificate, cluster_ca_secret, naming};
use crate::{stream_cluster, topic, user};

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

async fn reconcile_user(obj: Arc<User>, ctx: Arc<Context>) -> Result<Action, user::Error> {
    let key = key(obj.as_ref());
    let action = user::reconcile(obj, ctx.clone()).await?;
    ctx.backoff.reset(&key);
    Ok(action)
}

fn user_error(obj: Arc<User>, error: &user::Error, ctx: Arc<Context>) -> Action {
    let label = error.metric_label();
    ctx.metrics.record_error(user::CONTROLLER, label);
    let delay = ctx.backoff.next_delay(&key(obj.as_ref()));
    warn!(%error, reason = label, user = %obj.name_any(), namespace = ?obj.namespace(), retry_in = ?delay, "User reconcile failed");
    Action::requeue(delay)
}

/// The Users (from `users`) that name the StreamCluster `namespace/name`.
fn users_of(users: &Store<User>, namespace: &str, name: &str) -> Vec<ObjectRef<User>> {
    users
        .state()
        .iter()
        .filter(|u| u.spec.cluster.name == name && naming::cluster_namespace(u) == namespace)
        .map(|u| ObjectRef::from_obj(u.as_ref()))
        .collect()
}

/// The Users a change of an operator-labelled Secret concerns: its owner
/// (a User's client Secret), or every User of the cluster whose CA
/// Secret it is.
fn users_of_secret(users: &Store<User>, secret: &Secret) -> Vec<ObjectRef<User>> {
    let namespace = secret.namespace().unwrap_or_default();
    let owners: Vec<ObjectRef<User>> = secret
        .owner_references()
        .iter()
        .filter(|r| r.kind == "User")
        .map(|r| ObjectRef::new(&r.name).within(&namespace))
        .collect();
    if !owners.is_empty() {
        return owners;
    }
    let name = secret.name_any();
    let cluster = name
        .strip_suffix("-cluster-ca-cert")
        .or_else(|| name.strip_suffix("-clients-ca"));
    match cluster {
        Some(cluster)
            if name == cluster_ca_secret(cluster)
                || name == certificate::clients_ca_secret(cluster) =>
        {
            users_of(users, &namespace, cluster)
        }
        _ => Vec::new(),
    }
}

/// Runs every controller until a future made by `stop` completes. Owned objects are watched
/// only through the `app.kubernetes.io/managed-by=rill-operator` label, so
/// the operator does not cache every ConfigMap, Service and Secret of the
/// cluster.
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
    let owned_secrets = owned.clone();
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
        Api::<Topic>::all(client.clone()),
        watcher::Config::default().any_semantic(),
    )
    .graceful_shutdown_on(stop())
    .run(reconcile_topic, topic_error, ctx.clone())
    .for_each(|result| async move {
        match result {
            Ok((obj, _)) => debug!(topic = %obj.name, "reconciled Topic"),
            Err(error) => debug!(%error, "Topic controller event"),
        }
    });
    // Users: their own changes, their StreamCluster's (listeners,
    // admission, CA renewal) and their Secrets' (the client Secret, the
    // cluster's CA Secrets), through the operator's label.
    let user_controller = Controller::new(
        Api::<User>::all(client.clone()),
        watcher::Config::default().any_semantic(),
    );
    let (by_cluster, by_secret) = (user_controller.store(), user_controller.store());
    let users = user_controller
        .watches(
            Api::<StreamCluster>::all(client.clone()),
            watcher::Config::default(),
            move |sc: StreamCluster| {
                users_of(
                    &by_cluster,
                    &sc.namespace().unwrap_or_default(),
                    &sc.name_any(),
                )
            },
        )
        .watches(
            Api::<Secret>::all(client),
            owned_secrets,
            move |secret: Secret| users_of_secret(&by_secret, &secret),
        )
        .graceful_shutdown_on(stop())
        .run(reconcile_user, user_error, ctx)
        .for_each(|result| async move {
            match result {
                Ok((obj, _)) => debug!(user = %obj.name, "reconciled User"),
                Err(error) => debug!(%error, "User controller event"),
            }
        });
    futures::join!(clusters, topics, users);
}
