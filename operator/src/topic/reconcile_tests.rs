//! Topic reconcile tests against a scripted API server: the finalizer is
//! added first, acceptance writes status once, an unchanged topic causes no
//! write, conflicts and shrinks are refused with their reasons, and deletion
//! runs the data deleter (or keeps data) before the finalizer goes.

use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use http::Method;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::Action;
use serde_json::Value;

use super::build::TopicPlan;
use super::cleanup::{DataDeletionError, DeletionOutcome, TopicDataDeleter, TopicDataRef};
use super::fixtures::topic;
use super::place::{ConfigSync, PlacementError, TopicPlacer};
use super::status::{Outcome, compute, reasons};
use super::{CONFIG_RESYNC, FINALIZER, PLACEMENT_RETRY, RECHECK, reconcile};
use crate::conditions;
use crate::context::Context;
use crate::crd::{KEEP_DATA_ANNOTATION, Topic};
use crate::stream_cluster::build::fixtures::cluster;
use crate::test_support::{ApiServer, finished, list, mock_context};

const TOPICS: &str = "/apis/rill.dev/v1alpha1/namespaces/data/topics";
const CLUSTER: &str = "/apis/rill.dev/v1alpha1/namespaces/data/streamclusters/events";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/data/events";

/// Refuses every placement as not possible yet.
struct PendingPlacer;

impl TopicPlacer for PendingPlacer {
    fn place<'a>(
        &'a self,
        _namespace: &'a str,
        _plan: &'a TopicPlan,
    ) -> BoxFuture<'a, Result<ConfigSync, PlacementError>> {
        Box::pin(async {
            Err(PlacementError::Pending(
                "PLACEMENT: replication factor 3 needs 3 brokers, 1 registered".into(),
            ))
        })
    }
}

/// A controller that held another config: every placement pushes the
/// plan's config, which differed in `retention.ms`. Records the plans.
#[derive(Default)]
struct PushingPlacer(Mutex<Vec<TopicPlan>>);

impl TopicPlacer for PushingPlacer {
    fn place<'a>(
        &'a self,
        _namespace: &'a str,
        plan: &'a TopicPlan,
    ) -> BoxFuture<'a, Result<ConfigSync, PlacementError>> {
        self.0.lock().expect("lock").push(plan.clone());
        Box::pin(async {
            Ok(ConfigSync::Pushed {
                keys: vec!["retention.ms".into()],
            })
        })
    }
}

/// The resource changed since the reconcile read it: nothing pushed.
struct SupersededPlacer;

impl TopicPlacer for SupersededPlacer {
    fn place<'a>(
        &'a self,
        _namespace: &'a str,
        _plan: &'a TopicPlan,
    ) -> BoxFuture<'a, Result<ConfigSync, PlacementError>> {
        Box::pin(async { Ok(ConfigSync::Superseded) })
    }
}

/// Records every deletion request.
#[derive(Default)]
struct RecordingDeleter(Mutex<Vec<TopicDataRef>>);

impl TopicDataDeleter for RecordingDeleter {
    fn delete_topic_data<'a>(
        &'a self,
        topic: &'a TopicDataRef,
    ) -> BoxFuture<'a, Result<DeletionOutcome, DataDeletionError>> {
        self.0.lock().expect("lock").push(topic.clone());
        Box::pin(async { Ok(DeletionOutcome::Deleted) })
    }
}

fn with_finalizer(mut t: Topic) -> Topic {
    t.metadata.finalizers = Some(vec![FINALIZER.to_owned()]);
    t
}

fn accepted(mut t: Topic) -> Topic {
    let outcome = Outcome::Accepted {
        partitions: t.spec.partitions,
        replication_factor: t.spec.replication_factor,
        config_applied: true,
    };
    t.status = Some(compute(&t, &outcome, &conditions::now()));
    t
}

fn ready(status: &Value) -> &Value {
    status["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .unwrap_or_else(|| panic!("no Ready condition in {status}"))
}

fn spawn(
    t: Topic,
    ctx: Context,
) -> (
    Arc<Context>,
    tokio::task::JoinHandle<Result<Action, super::Error>>,
) {
    let ctx = Arc::new(ctx);
    let task = tokio::spawn(reconcile(Arc::new(t), ctx.clone()));
    (ctx, task)
}

async fn expect_event(server: &mut ApiServer, reason: &str) -> Value {
    let exchange = server.expect(Method::POST, EVENTS).await;
    assert_eq!(exchange.body["reason"], reason, "{}", exchange.body);
    let body = exchange.body.clone();
    exchange.echo();
    body
}

/// Answers the cluster GET and the Topic LIST of the Apply branch.
async fn answer_lookups(server: &mut ApiServer, topics: &[Topic]) {
    server.expect(Method::GET, CLUSTER).await.ok(&cluster());
    server
        .expect(Method::GET, TOPICS)
        .await
        .respond(200, &list("TopicList", topics));
}

#[tokio::test]
async fn given_a_topic_without_finalizer_when_reconciling_then_the_finalizer_is_added_first() {
    let (ctx, mut server) = mock_context();
    let t = topic("orders", "2024-01-01T00:00:00Z");
    let (_ctx, task) = spawn(t.clone(), ctx);
    let exchange = server
        .expect(Method::PATCH, &format!("{TOPICS}/orders"))
        .await;
    assert_eq!(exchange.content_type, "application/json-patch+json");
    assert_eq!(exchange.body[1]["op"], "add");
    assert_eq!(exchange.body[1]["value"][0], FINALIZER);
    exchange.ok(&with_finalizer(t));
    assert_eq!(
        finished(task).await.expect("reconcile succeeds"),
        Action::await_change()
    );
}

#[tokio::test]
async fn given_a_valid_topic_when_reconciling_then_it_is_accepted_once_and_then_left_alone() {
    let (ctx, mut server) = mock_context();
    let t = with_finalizer(topic("orders", "2024-01-01T00:00:00Z"));
    let (ctx, task) = spawn(t.clone(), ctx);
    answer_lookups(&mut server, std::slice::from_ref(&t)).await;
    let exchange = server
        .expect(Method::PATCH, &format!("{TOPICS}/orders/status"))
        .await;
    let status = exchange.body["status"].clone();
    assert_eq!(ready(&status)["status"], "True");
    assert_eq!(ready(&status)["reason"], "Accepted");
    assert_eq!(status["partitionCount"], 6);
    assert_eq!(status["topicName"], "orders");
    assert_eq!(status["configGeneration"], 1);
    assert!(
        status.get("partitions").is_none() && status.get("controllerEpoch").is_none(),
        "partitions belong to the metadata controller, never to this patch: {status}"
    );
    exchange.ok(&t);
    expect_event(&mut server, "Accepted").await;
    // Checked again later, so config drift is noticed.
    assert_eq!(
        finished(task).await.expect("reconcile succeeds"),
        Action::requeue(CONFIG_RESYNC)
    );

    // Re-applying the same topic: reads only.
    let stored = accepted(t);
    let task = tokio::spawn(reconcile(Arc::new(stored.clone()), ctx.clone()));
    answer_lookups(&mut server, &[stored]).await;
    assert_eq!(
        finished(task).await.expect("reconcile succeeds"),
        Action::requeue(CONFIG_RESYNC)
    );
    assert_eq!(ctx.metrics.write_count(super::CONTROLLER), 1);
}

#[tokio::test]
async fn given_a_newer_topic_with_the_same_name_when_reconciling_then_it_gets_resource_conflict() {
    let (ctx, mut server) = mock_context();
    let older = accepted(with_finalizer(topic("orders", "2024-01-01T00:00:00Z")));
    let mut newer = with_finalizer(topic("orders-copy", "2024-03-01T00:00:00Z"));
    newer.spec.topic_name = Some("orders".into());
    let (_ctx, task) = spawn(newer.clone(), ctx);
    answer_lookups(&mut server, &[older, newer.clone()]).await;
    let exchange = server
        .expect(Method::PATCH, &format!("{TOPICS}/orders-copy/status"))
        .await;
    let status = exchange.body["status"].clone();
    assert_eq!(ready(&status)["reason"], reasons::RESOURCE_CONFLICT);
    assert!(
        ready(&status)["message"]
            .as_str()
            .unwrap_or_default()
            .contains("Topic \"orders\"")
    );
    exchange.ok(&newer);
    expect_event(&mut server, reasons::RESOURCE_CONFLICT).await;
    assert_eq!(
        finished(task).await.expect("reconcile succeeds"),
        Action::requeue(RECHECK)
    );
}

#[tokio::test]
async fn given_fewer_partitions_than_accepted_when_reconciling_then_not_supported_and_the_count_is_kept()
 {
    let (ctx, mut server) = mock_context();
    let mut t = accepted(with_finalizer(topic("orders", "2024-01-01T00:00:00Z")));
    t.spec.partitions = 3;
    t.metadata.generation = Some(2);
    let (_ctx, task) = spawn(t.clone(), ctx);
    answer_lookups(&mut server, std::slice::from_ref(&t)).await;
    let exchange = server
        .expect(Method::PATCH, &format!("{TOPICS}/orders/status"))
        .await;
    let status = exchange.body["status"].clone();
    assert_eq!(ready(&status)["reason"], reasons::NOT_SUPPORTED);
    assert_eq!(
        ready(&status)["message"],
        "partitions can only grow: the spec asks for 3, the topic has 6"
    );
    assert_eq!(status["partitionCount"], 6);
    assert_eq!(status["observedGeneration"], 2);
    exchange.ok(&t);
    expect_event(&mut server, reasons::NOT_SUPPORTED).await;
    assert_eq!(
        finished(task).await.expect("reconcile succeeds"),
        Action::await_change()
    );
}

#[tokio::test]
async fn given_an_invalid_spec_when_reconciling_then_no_cluster_lookup_and_no_retry() {
    let (ctx, mut server) = mock_context();
    let mut t = with_finalizer(topic("orders", "2024-01-01T00:00:00Z"));
    t.spec.config = Some(crate::crd::TopicConfig {
        min_insync_replicas: Some(5),
        ..Default::default()
    });
    let (_ctx, task) = spawn(t.clone(), ctx);
    let exchange = server
        .expect(Method::PATCH, &format!("{TOPICS}/orders/status"))
        .await;
    assert_eq!(
        ready(&exchange.body["status"])["reason"],
        reasons::INVALID_SPEC
    );
    exchange.ok(&t);
    expect_event(&mut server, reasons::INVALID_SPEC).await;
    assert_eq!(
        finished(task).await.expect("reconcile succeeds"),
        Action::await_change()
    );
}

#[tokio::test]
async fn given_a_missing_cluster_or_too_few_brokers_when_reconciling_then_refused_and_rechecked_later()
 {
    let (ctx, mut server) = mock_context();
    let t = with_finalizer(topic("orders", "2024-01-01T00:00:00Z"));
    let (ctx, task) = spawn(t.clone(), ctx);
    server.expect(Method::GET, CLUSTER).await.not_found();
    let exchange = server
        .expect(Method::PATCH, &format!("{TOPICS}/orders/status"))
        .await;
    assert_eq!(
        ready(&exchange.body["status"])["reason"],
        reasons::CLUSTER_NOT_FOUND
    );
    exchange.ok(&t);
    expect_event(&mut server, reasons::CLUSTER_NOT_FOUND).await;
    assert_eq!(
        finished(task).await.expect("reconcile succeeds"),
        Action::requeue(RECHECK)
    );

    let task = tokio::spawn(reconcile(Arc::new(t.clone()), ctx));
    let mut small = cluster();
    small.spec.brokers = 1;
    server.expect(Method::GET, CLUSTER).await.ok(&small);
    let exchange = server
        .expect(Method::PATCH, &format!("{TOPICS}/orders/status"))
        .await;
    assert_eq!(
        ready(&exchange.body["status"])["reason"],
        reasons::INSUFFICIENT_BROKERS
    );
    exchange.ok(&t);
    expect_event(&mut server, reasons::INSUFFICIENT_BROKERS).await;
    assert_eq!(
        finished(task).await.expect("reconcile succeeds"),
        Action::requeue(RECHECK)
    );
}

/// The topic id the metadata controller recorded when it placed `t`.
fn placed_with_id(mut t: Topic, id: &str) -> Topic {
    t.status.get_or_insert_with(Default::default).topic_id = Some(id.to_owned());
    t
}

fn deleting(t: Topic) -> Topic {
    let mut t = t;
    t.metadata.deletion_timestamp = Some(Time("2024-06-01T00:00:00Z".parse().expect("timestamp")));
    t
}

#[tokio::test]
async fn given_a_deleted_topic_when_reconciling_then_data_is_deleted_before_the_finalizer_goes() {
    let (mut ctx, mut server) = mock_context();
    let deleter = Arc::new(RecordingDeleter::default());
    ctx.data_deleter = deleter.clone();
    let t = deleting(placed_with_id(
        accepted(with_finalizer(topic("orders", "2024-01-01T00:00:00Z"))),
        "8e0f6c3a-2b0e-4d7c-9a51-3c1f0e7d2b44",
    ));
    let (_ctx, task) = spawn(t.clone(), ctx);

    server
        .expect(Method::GET, TOPICS)
        .await
        .respond(200, &list("TopicList", std::slice::from_ref(&t)));
    expect_event(&mut server, "DataDeleted").await;
    let exchange = server
        .expect(Method::PATCH, &format!("{TOPICS}/orders"))
        .await;
    assert_eq!(exchange.body[0]["op"], "test");
    assert_eq!(exchange.body[0]["value"], FINALIZER);
    assert_eq!(exchange.body[1]["op"], "remove");
    assert_eq!(exchange.body[1]["path"], "/metadata/finalizers/0");
    exchange.ok(&t);
    finished(task).await.expect("reconcile succeeds");

    let calls = deleter.0.lock().expect("lock").clone();
    assert_eq!(
        calls,
        vec![TopicDataRef {
            namespace: "data".into(),
            cluster: "events".into(),
            topic: "orders".into(),
            topic_id: "8e0f6c3a-2b0e-4d7c-9a51-3c1f0e7d2b44".into(),
        }],
        "the data of the topic this resource was placed for, by its id"
    );
}

#[tokio::test]
async fn given_a_deleted_topic_without_a_recorded_topic_id_when_reconciling_then_nothing_is_deleted()
 {
    // Accepted, but the controller never placed it (no topic id): whatever
    // topic has this name now is not this resource's to delete.
    let (mut ctx, mut server) = mock_context();
    let deleter = Arc::new(RecordingDeleter::default());
    ctx.data_deleter = deleter.clone();
    let t = deleting(accepted(with_finalizer(topic(
        "orders",
        "2024-01-01T00:00:00Z",
    ))));
    let (_ctx, task) = spawn(t.clone(), ctx);
    server
        .expect(Method::GET, TOPICS)
        .await
        .respond(200, &list("TopicList", std::slice::from_ref(&t)));
    let event = expect_event(&mut server, "DataDeletionRecorded").await;
    assert!(
        event["note"]
            .as_str()
            .unwrap_or_default()
            .contains("no topic id recorded"),
        "{event}"
    );
    server
        .expect(Method::PATCH, &format!("{TOPICS}/orders"))
        .await
        .ok(&t);
    finished(task).await.expect("reconcile succeeds");
    assert!(
        deleter.0.lock().expect("lock").is_empty(),
        "the deleter is not called"
    );
}

#[tokio::test]
async fn given_keep_data_annotation_when_deleting_then_the_deleter_is_not_called() {
    let (mut ctx, mut server) = mock_context();
    let deleter = Arc::new(RecordingDeleter::default());
    ctx.data_deleter = deleter.clone();
    let mut t = deleting(accepted(with_finalizer(topic(
        "orders",
        "2024-01-01T00:00:00Z",
    ))));
    t.metadata.annotations = Some([(KEEP_DATA_ANNOTATION.to_owned(), "true".to_owned())].into());
    let (_ctx, task) = spawn(t.clone(), ctx);
    expect_event(&mut server, "DataKept").await;
    server
        .expect(Method::PATCH, &format!("{TOPICS}/orders"))
        .await
        .ok(&t);
    finished(task).await.expect("reconcile succeeds");
    assert!(deleter.0.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn given_the_default_deleter_when_deleting_then_the_intent_is_recorded_honestly() {
    let (ctx, mut server) = mock_context();
    let t = deleting(placed_with_id(
        accepted(with_finalizer(topic("orders", "2024-01-01T00:00:00Z"))),
        "8e0f6c3a-2b0e-4d7c-9a51-3c1f0e7d2b44",
    ));
    let (_ctx, task) = spawn(t.clone(), ctx);
    server
        .expect(Method::GET, TOPICS)
        .await
        .respond(200, &list("TopicList", std::slice::from_ref(&t)));
    let event = expect_event(&mut server, "DataDeletionRecorded").await;
    assert!(
        event["note"]
            .as_str()
            .unwrap_or_default()
            .contains("was not placed on any broker")
    );
    server
        .expect(Method::PATCH, &format!("{TOPICS}/orders"))
        .await
        .ok(&t);
    finished(task).await.expect("reconcile succeeds");
}

#[tokio::test]
async fn given_a_controller_that_cannot_place_yet_when_reconciling_then_ready_is_false_and_it_retries()
 {
    let (mut ctx, mut server) = mock_context();
    ctx.placer = Arc::new(PendingPlacer);
    let t = with_finalizer(topic("orders", "2024-01-01T00:00:00Z"));
    let (_ctx, task) = spawn(t.clone(), ctx);
    answer_lookups(&mut server, std::slice::from_ref(&t)).await;
    let exchange = server
        .expect(Method::PATCH, &format!("{TOPICS}/orders/status"))
        .await;
    let status = exchange.body["status"].clone();
    assert_eq!(ready(&status)["status"], "False");
    assert_eq!(ready(&status)["reason"], reasons::PLACEMENT_PENDING);
    let message = ready(&status)["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(message.contains("needs 3 brokers"), "{message}");
    assert!(
        status["partitionCount"].is_null(),
        "nothing is accepted until placed"
    );
    exchange.ok(&t);
    expect_event(&mut server, reasons::PLACEMENT_PENDING).await;
    assert_eq!(
        finished(task).await.expect("reconcile succeeds"),
        Action::requeue(PLACEMENT_RETRY)
    );
}

#[tokio::test]
async fn given_an_applied_generation_when_the_controller_config_differs_then_it_is_reverted_with_a_warning_event()
 {
    let (mut ctx, mut server) = mock_context();
    let placer = Arc::new(PushingPlacer::default());
    ctx.placer = placer.clone();
    let mut t = with_finalizer(topic("orders", "2024-01-01T00:00:00Z"));
    t.spec.config = Some(crate::crd::TopicConfig {
        retention_ms: Some(86_400_000),
        ..Default::default()
    });
    // The status says generation 1's config was applied already.
    let t = accepted(t);
    assert_eq!(t.status.as_ref().and_then(|s| s.config_generation), Some(1));
    let (_ctx, task) = spawn(t.clone(), ctx);
    answer_lookups(&mut server, std::slice::from_ref(&t)).await;
    let event = expect_event(&mut server, reasons::CONFIG_DRIFT_REVERTED).await;
    assert_eq!(event["type"], "Warning");
    let note = event["note"].as_str().unwrap_or_default();
    assert!(note.contains("retention.ms"), "{note}");
    assert_eq!(
        finished(task).await.expect("reconcile succeeds"),
        Action::requeue(CONFIG_RESYNC)
    );
    let pushed = placer.0.lock().expect("lock").clone();
    assert_eq!(
        pushed[0].config.get("retention.ms").map(String::as_str),
        Some("86400000"),
        "the spec's value is what the controller gets back"
    );
}

#[tokio::test]
async fn given_a_new_generation_when_its_config_is_pushed_then_the_status_records_it_and_no_drift_is_reported()
 {
    let (mut ctx, mut server) = mock_context();
    ctx.placer = Arc::new(PushingPlacer::default());
    let mut t = accepted(with_finalizer(topic("orders", "2024-01-01T00:00:00Z")));
    t.spec.config = Some(crate::crd::TopicConfig {
        retention_ms: Some(60_000),
        ..Default::default()
    });
    t.metadata.generation = Some(2);
    let (_ctx, task) = spawn(t.clone(), ctx);
    answer_lookups(&mut server, std::slice::from_ref(&t)).await;
    // The status patch comes first and no event precedes it.
    let exchange = server
        .expect(Method::PATCH, &format!("{TOPICS}/orders/status"))
        .await;
    assert_eq!(exchange.body["status"]["configGeneration"], 2);
    assert_eq!(exchange.body["status"]["observedGeneration"], 2);
    exchange.ok(&t);
    assert_eq!(
        finished(task).await.expect("reconcile succeeds"),
        Action::requeue(CONFIG_RESYNC)
    );
}

#[tokio::test]
async fn given_a_stale_copy_of_the_topic_when_its_config_would_be_pushed_then_the_status_does_not_claim_it_and_it_retries()
 {
    let (mut ctx, mut server) = mock_context();
    ctx.placer = Arc::new(SupersededPlacer);
    let mut t = accepted(with_finalizer(topic("orders", "2024-01-01T00:00:00Z")));
    t.metadata.generation = Some(2);
    let (_ctx, task) = spawn(t.clone(), ctx);
    answer_lookups(&mut server, std::slice::from_ref(&t)).await;
    let exchange = server
        .expect(Method::PATCH, &format!("{TOPICS}/orders/status"))
        .await;
    assert_eq!(exchange.body["status"]["observedGeneration"], 2);
    assert_eq!(
        exchange.body["status"]["configGeneration"], 1,
        "generation 2's config is not the controller's yet"
    );
    exchange.ok(&t);
    assert_eq!(
        finished(task).await.expect("reconcile succeeds"),
        Action::requeue(PLACEMENT_RETRY)
    );
}
