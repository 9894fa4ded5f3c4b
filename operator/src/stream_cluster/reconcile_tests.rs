//! Reconcile tests against a scripted API server. They pin the contract of
//! the pipeline: which requests a reconcile makes on create, update,
//! scale-down refusal and invalid specs, and that a reconcile of an
//! unchanged cluster makes no write at all.

use std::sync::Arc;

use http::Method;
use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::Service;
use kube::runtime::controller::Action;
use serde_json::{Value, json};

use super::build::{DesiredObjects, desired_objects, fixtures::cluster};
use super::scale_down::{ScaleDecision, tests::Holding};
use super::{RESYNC, reconcile, status};
use crate::conditions;
use crate::context::{Context, Settings};
use crate::crd::StreamCluster;
use crate::test_support::{ApiServer, finished, list, mock_context};

const CM: &str = "/api/v1/namespaces/data/configmaps";
const SVC: &str = "/api/v1/namespaces/data/services";
const STS: &str = "/apis/apps/v1/namespaces/data/statefulsets";
const PDB: &str = "/apis/policy/v1/namespaces/data/poddisruptionbudgets";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/data/events";
const STATUS: &str = "/apis/rill.dev/v1alpha1/namespaces/data/streamclusters/events/status";

fn ready_sts(sts: &StatefulSet, replicas: i32) -> StatefulSet {
    let mut sts = sts.clone();
    sts.metadata.generation = Some(1);
    sts.status = Some(StatefulSetStatus {
        observed_generation: Some(1),
        replicas,
        ready_replicas: Some(replicas),
        updated_replicas: Some(replicas),
        ..StatefulSetStatus::default()
    });
    sts
}

/// Answers the four LIST calls of the observe step.
async fn answer_lists(
    server: &mut ApiServer,
    live: Option<&DesiredObjects>,
    sts: Option<&StatefulSet>,
) {
    let exchange = server.expect(Method::GET, CM).await;
    assert!(
        exchange.uri.contains("labelSelector=app.kubernetes.io%2Fmanaged-by%3Drill-operator%2Crill.dev%2Fcluster%3Devents"),
        "{}",
        exchange.uri
    );
    exchange.respond(
        200,
        &list(
            "ConfigMapList",
            live.map(|l| vec![l.config_map.clone()])
                .unwrap_or_default()
                .as_slice(),
        ),
    );
    let services: Vec<Service> = live
        .map(|l| vec![l.headless_service.clone(), l.bootstrap_service.clone()])
        .unwrap_or_default();
    server
        .expect(Method::GET, SVC)
        .await
        .respond(200, &list("ServiceList", &services));
    server.expect(Method::GET, STS).await.respond(
        200,
        &list(
            "StatefulSetList",
            sts.map(|s| vec![s.clone()]).unwrap_or_default().as_slice(),
        ),
    );
    server.expect(Method::GET, PDB).await.respond(
        200,
        &list(
            "PodDisruptionBudgetList",
            live.map(|l| vec![l.pod_disruption_budget.clone()])
                .unwrap_or_default()
                .as_slice(),
        ),
    );
}

async fn expect_apply(server: &mut ApiServer, path: &str) -> Value {
    let exchange = server.expect(Method::PATCH, path).await;
    assert_eq!(exchange.content_type, "application/apply-patch+yaml");
    assert!(
        exchange.uri.contains("fieldManager=rill-operator"),
        "{}",
        exchange.uri
    );
    assert!(exchange.uri.contains("force=true"), "{}", exchange.uri);
    let body = exchange.body.clone();
    exchange.echo();
    body
}

async fn expect_event(server: &mut ApiServer, reason: &str) -> Value {
    let exchange = server.expect(Method::POST, EVENTS).await;
    assert_eq!(exchange.body["reason"], reason, "{}", exchange.body);
    let body = exchange.body.clone();
    exchange.echo();
    body
}

fn condition<'a>(status: &'a Value, type_: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == type_))
        .unwrap_or_else(|| panic!("no {type_} condition in {status}"))
}

fn spawn(
    sc: StreamCluster,
    ctx: Context,
) -> (
    Arc<Context>,
    tokio::task::JoinHandle<Result<Action, super::Error>>,
) {
    let ctx = Arc::new(ctx);
    let task = tokio::spawn(reconcile(Arc::new(sc), ctx.clone()));
    (ctx, task)
}

#[tokio::test]
async fn given_a_new_cluster_when_reconciling_then_every_object_is_applied_and_status_written() {
    let (ctx, mut server) = mock_context();
    let (ctx, task) = spawn(cluster(), ctx);

    answer_lists(&mut server, None, None).await;
    let cm = expect_apply(&mut server, &format!("{CM}/events-config")).await;
    assert_eq!(cm["kind"], "ConfigMap");
    assert_eq!(
        cm["metadata"]["ownerReferences"][0]["kind"],
        "StreamCluster"
    );
    let headless = expect_apply(&mut server, &format!("{SVC}/events-brokers")).await;
    assert_eq!(headless["spec"]["clusterIP"], "None");
    expect_apply(&mut server, &format!("{SVC}/events-bootstrap")).await;
    let sts = expect_apply(&mut server, &format!("{STS}/events")).await;
    assert_eq!(sts["spec"]["replicas"], 3);
    assert_eq!(sts["spec"]["updateStrategy"]["type"], "OnDelete");
    let pdb = expect_apply(&mut server, &format!("{PDB}/events")).await;
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
    let event = expect_event(&mut server, "Applied").await;
    assert!(
        event["note"]
            .as_str()
            .unwrap_or_default()
            .contains("created ConfigMap/events-config")
    );

    let exchange = server.expect(Method::PATCH, STATUS).await;
    assert_eq!(exchange.content_type, "application/merge-patch+json");
    let status = exchange.body["status"].clone();
    assert_eq!(status["observedGeneration"], 1);
    assert_eq!(condition(&status, "Ready")["status"], "False");
    assert_eq!(condition(&status, "Progressing")["reason"], "Creating");
    assert_eq!(status["kafkaBootstrap"], "events-bootstrap.data.svc:9092");
    exchange.ok(&cluster());
    expect_event(&mut server, "BrokersNotReady").await;

    let action = finished(task).await.expect("reconcile succeeds");
    assert_eq!(action, Action::requeue(RESYNC));
    assert_eq!(ctx.metrics.write_count(super::CONTROLLER), 6);
}

#[tokio::test]
async fn given_an_unchanged_cluster_when_reconciling_then_nothing_is_written() {
    let (ctx, mut server) = mock_context();
    let mut sc = cluster();
    let live = desired_objects(&sc, 3, &Settings::default());
    let sts = ready_sts(&live.stateful_set, 3);
    sc.status = Some(status::compute(
        &sc,
        Some(&sts),
        &ScaleDecision::Proceed { replicas: 3 },
        None,
        None,
        &conditions::now(),
    ));
    let (ctx, task) = spawn(sc, ctx);

    answer_lists(&mut server, Some(&live), Some(&sts)).await;

    let action = finished(task).await.expect("reconcile succeeds");
    assert_eq!(action, Action::requeue(RESYNC));
    assert_eq!(
        ctx.metrics.write_count(super::CONTROLLER),
        0,
        "a no-op reconcile writes nothing"
    );
}

#[tokio::test]
async fn given_more_brokers_and_an_orphan_when_reconciling_then_only_the_statefulset_changes_and_the_orphan_goes()
 {
    let (ctx, mut server) = mock_context();
    let mut sc = cluster();
    let mut live = desired_objects(&sc, 3, &Settings::default());
    let sts = ready_sts(&live.stateful_set, 3);
    sc.status = Some(status::compute(
        &sc,
        Some(&sts),
        &ScaleDecision::Proceed { replicas: 3 },
        None,
        None,
        &conditions::now(),
    ));
    sc.spec.brokers = 5;
    sc.metadata.generation = Some(2);
    // A Service from an older operator version, owned by this cluster.
    let mut legacy = live.bootstrap_service.clone();
    legacy.metadata.name = Some("events-legacy".into());
    let (ctx, task) = spawn(sc, ctx);

    // Observe: lists include the legacy Service.
    server
        .expect(Method::GET, CM)
        .await
        .respond(200, &list("ConfigMapList", &[live.config_map.clone()]));
    server.expect(Method::GET, SVC).await.respond(
        200,
        &list(
            "ServiceList",
            &[
                live.headless_service.clone(),
                live.bootstrap_service.clone(),
                legacy,
            ],
        ),
    );
    server
        .expect(Method::GET, STS)
        .await
        .respond(200, &list("StatefulSetList", std::slice::from_ref(&sts)));
    server.expect(Method::GET, PDB).await.respond(
        200,
        &list(
            "PodDisruptionBudgetList",
            &[live.pod_disruption_budget.clone()],
        ),
    );

    let exchange = server.expect(Method::PATCH, &format!("{STS}/events")).await;
    assert_eq!(exchange.body["spec"]["replicas"], 5);
    live.stateful_set.spec.replicas = Some(5);
    let mut applied = ready_sts(&live.stateful_set, 3);
    applied.metadata.generation = Some(2);
    exchange.ok(&applied);
    let event = expect_event(&mut server, "Applied").await;
    assert_eq!(event["note"], "updated StatefulSet/events");

    server
        .expect(Method::DELETE, &format!("{SVC}/events-legacy"))
        .await
        .respond(
            200,
            &json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
        );
    expect_event(&mut server, "DeletedOrphans").await;

    let exchange = server.expect(Method::PATCH, STATUS).await;
    let status = exchange.body["status"].clone();
    assert_eq!(condition(&status, "Progressing")["status"], "True");
    assert_eq!(condition(&status, "Ready")["reason"], "BrokersNotReady");
    assert_eq!(status["observedGeneration"], 2);
    exchange.ok(&cluster());
    expect_event(&mut server, "BrokersNotReady").await;

    finished(task).await.expect("reconcile succeeds");
    assert_eq!(ctx.metrics.write_count(super::CONTROLLER), 3);
}

#[tokio::test]
async fn given_brokers_holding_replicas_when_scaling_down_then_the_statefulset_keeps_its_size() {
    let (mut ctx, mut server) = mock_context();
    ctx.placement = Arc::new(Holding(vec![4]));
    let mut sc = cluster();
    let live = desired_objects(&sc, 5, &Settings::default());
    let sts = ready_sts(&live.stateful_set, 5);
    sc.spec.brokers = 3;
    let (_ctx, task) = spawn(sc, ctx);

    answer_lists(&mut server, Some(&live), Some(&sts)).await;
    // No StatefulSet apply: replicas stay 5. Only the status changes.
    let exchange = server.expect(Method::PATCH, STATUS).await;
    let status = exchange.body["status"].clone();
    assert_eq!(
        condition(&status, "Progressing")["reason"],
        "ScaleDownBlocked"
    );
    assert!(
        condition(&status, "Progressing")["message"]
            .as_str()
            .unwrap_or_default()
            .contains("brokers [4] still hold partition replicas")
    );
    exchange.ok(&cluster());
    expect_event(&mut server, "BrokersNotReady").await;
    finished(task).await.expect("reconcile succeeds");
}

#[tokio::test]
async fn given_an_invalid_spec_when_reconciling_then_status_says_why_and_no_retry_is_scheduled() {
    let (ctx, mut server) = mock_context();
    let mut sc = cluster();
    sc.spec.brokers = 0;
    let (ctx, task) = spawn(sc.clone(), ctx);

    let exchange = server.expect(Method::PATCH, STATUS).await;
    let status = exchange.body["status"].clone();
    assert_eq!(condition(&status, "Ready")["reason"], "InvalidSpec");
    assert_eq!(
        condition(&status, "Ready")["message"],
        "spec.brokers is 0; at least 1 broker is required"
    );
    assert_eq!(condition(&status, "Degraded")["status"], "True");
    exchange.ok(&sc);
    let event = expect_event(&mut server, "InvalidSpec").await;
    assert_eq!(event["type"], "Warning");
    assert_eq!(
        finished(task).await.expect("reconcile succeeds"),
        Action::await_change()
    );

    // The same invalid spec again, now with its status stored: no request at all.
    let stored: crate::crd::StreamClusterStatus = serde_json::from_value(status).expect("status");
    sc.status = Some(stored);
    let task = tokio::spawn(reconcile(Arc::new(sc), ctx.clone()));
    assert_eq!(
        finished(task).await.expect("reconcile succeeds"),
        Action::await_change()
    );
    assert_eq!(ctx.metrics.write_count(super::CONTROLLER), 1);
}

#[tokio::test]
async fn given_an_api_error_when_applying_then_the_reconcile_fails_with_a_labelled_error() {
    let (ctx, mut server) = mock_context();
    let (_ctx, task) = spawn(cluster(), ctx);
    answer_lists(&mut server, None, None).await;
    server.expect(Method::PATCH, &format!("{CM}/events-config")).await.respond(
        500,
        &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "InternalError", "code": 500, "message": "etcd timeout"}),
    );
    let error = finished(task).await.expect_err("reconcile fails");
    assert_eq!(error.metric_label(), "apply");
    assert!(
        error.to_string().contains("ConfigMap events-config"),
        "{error}"
    );
}

/// A controller view where every partition is fully in sync.
struct InSync;

impl super::scale_down::ReplicaPlacement for InSync {
    fn brokers_holding_replicas(&self, _: &str, _: &str, _: &[i32]) -> Vec<i32> {
        Vec::new()
    }

    fn cluster_view(&self, _: &str, _: &str) -> Option<super::roll::ClusterView> {
        Some(super::roll::ClusterView {
            broker_epochs: [(0, 10), (1, 11), (2, 12)].into_iter().collect(),
            partitions: vec![super::roll::PartitionView {
                name: "orders-0".into(),
                replicas: vec![0, 1, 2],
                isr: vec![0, 1, 2],
                min_insync: Some(2),
            }],
        })
    }
}

fn broker_pod(ordinal: i32, revision: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("events-{ordinal}"), "namespace": "data",
                     "uid": format!("pod-{ordinal}"),
                     "labels": {"controller-revision-hash": revision}},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    })
}

#[tokio::test]
async fn given_outdated_pods_when_reconciling_then_the_broker_is_recorded_before_its_pod_is_deleted()
 {
    let (mut ctx, mut server) = mock_context();
    ctx.placement = Arc::new(InSync);
    let mut sc = cluster();
    let live = desired_objects(&sc, 3, &Settings::default());
    let mut sts = ready_sts(&live.stateful_set, 3);
    if let Some(s) = sts.status.as_mut() {
        s.updated_replicas = Some(0);
        s.update_revision = Some("events-new".into());
    }
    sc.status = Some(status::compute(
        &sc,
        Some(&sts),
        &ScaleDecision::Proceed { replicas: 3 },
        None,
        None,
        &conditions::now(),
    ));
    let (ctx, task) = spawn(sc, ctx);
    answer_lists(&mut server, Some(&live), Some(&sts)).await;

    let pods = server
        .expect(Method::GET, "/api/v1/namespaces/data/pods")
        .await;
    assert!(
        pods.uri
            .contains("labelSelector=app.kubernetes.io%2Finstance%3Devents"),
        "{}",
        pods.uri
    );
    let items: Vec<Value> = (0..3).map(|i| broker_pod(i, "events-old")).collect();
    pods.respond(200, &list("PodList", &items));

    // First the record: broker 2 (highest ordinal) and its epoch.
    let exchange = server.expect(Method::PATCH, STATUS).await;
    let status = exchange.body["status"].clone();
    assert_eq!(
        status["roll"],
        json!({"revision": "events-new", "restarted": {"broker": 2, "podUid": "pod-2", "brokerEpoch": 12}})
    );
    assert_eq!(condition(&status, "Progressing")["reason"], "RollingUpdate");
    exchange.ok(&cluster());
    // Then the delete, with the uid as precondition.
    let delete = server
        .expect(Method::DELETE, "/api/v1/namespaces/data/pods/events-2")
        .await;
    assert_eq!(
        delete.body["preconditions"]["uid"], "pod-2",
        "{}",
        delete.body
    );
    delete.ok(&broker_pod(2, "events-old"));
    expect_event(&mut server, "RestartingBroker").await;

    let action = finished(task).await.expect("reconcile succeeds");
    assert_eq!(action, Action::requeue(super::ROLL_RECHECK));
    assert_eq!(ctx.metrics.write_count(super::CONTROLLER), 1);
}
