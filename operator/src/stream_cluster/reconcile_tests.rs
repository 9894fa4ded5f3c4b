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

use std::collections::BTreeMap;

use super::build::{DesiredObjects, desired_objects, fixtures::cluster};
use super::certs::{self, Material};
use super::scale_down::{ScaleDecision, tests::Holding};
use super::{RESYNC, reconcile, status};
use crate::conditions;
use crate::context::{Context, Settings};
use crate::crd::StreamCluster;
use crate::test_support::{ApiServer, finished, list, mock_client, mock_context};

const CM: &str = "/api/v1/namespaces/data/configmaps";
const SVC: &str = "/api/v1/namespaces/data/services";
const STS: &str = "/apis/apps/v1/namespaces/data/statefulsets";
const PDB: &str = "/apis/policy/v1/namespaces/data/poddisruptionbudgets";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/data/events";
const STATUS: &str = "/apis/rill.dev/v1alpha1/namespaces/data/streamclusters/events/status";
const SECRETS: &str = "/api/v1/namespaces/data/secrets";
const PODS: &str = "/api/v1/namespaces/data/pods";
const NETPOL: &str = "/apis/networking.k8s.io/v1/namespaces/data/networkpolicies";

/// The Secrets the certificates step reads, in its order, after the SCRAM
/// credentials and the pod list.
const CA_SECRETS: [&str; 4] = [
    "events-cluster-ca",
    "events-cluster-ca-cert",
    "events-clients-ca",
    "events-clients-ca-cert",
];

/// Secrets of a cluster whose certificates exist, and what the
/// certificates step yields for them.
struct Tls {
    secrets: BTreeMap<String, Value>,
    material: Material,
}

/// Plays the API server for the certificates step of a new cluster: every
/// Secret is missing and gets created. Returns the created Secrets by name.
async fn answer_certs_new(server: &mut ApiServer) -> BTreeMap<String, Value> {
    let mut created = BTreeMap::new();
    let create = async |server: &mut ApiServer, name: &str| {
        server
            .expect(Method::GET, &format!("{SECRETS}/{name}"))
            .await
            .not_found();
    };
    create(server, "events-scram-credentials").await;
    let exchange = server.expect(Method::POST, SECRETS).await;
    assert_eq!(
        exchange.body["metadata"]["name"],
        "events-scram-credentials"
    );
    assert_eq!(exchange.body["data"], json!({"credentials": ""}));
    created.insert("events-scram-credentials".to_owned(), exchange.body.clone());
    exchange.echo();
    server
        .expect(Method::GET, PODS)
        .await
        .respond(200, &list::<Value>("PodList", &[]));
    for name in CA_SECRETS {
        create(server, name).await;
    }
    for name in CA_SECRETS {
        let exchange = server.expect(Method::POST, SECRETS).await;
        assert_eq!(exchange.body["metadata"]["name"], name);
        assert_eq!(
            exchange.body["metadata"]["ownerReferences"][0]["kind"],
            "StreamCluster"
        );
        created.insert(name.to_owned(), exchange.body.clone());
        exchange.echo();
    }
    create(server, "events-broker-certs").await;
    let exchange = server.expect(Method::POST, SECRETS).await;
    assert_eq!(exchange.body["metadata"]["name"], "events-broker-certs");
    created.insert("events-broker-certs".to_owned(), exchange.body.clone());
    exchange.echo();
    created
}

/// Plays the API server for the certificates step of a cluster whose
/// Secrets exist and are current: reads only.
async fn answer_certs_existing(server: &mut ApiServer, tls: &Tls) {
    let get = async |server: &mut ApiServer, name: &str| {
        server
            .expect(Method::GET, &format!("{SECRETS}/{name}"))
            .await
            .respond(200, &tls.secrets[name]);
    };
    get(server, "events-scram-credentials").await;
    server
        .expect(Method::GET, PODS)
        .await
        .respond(200, &list::<Value>("PodList", &[]));
    for name in CA_SECRETS {
        get(server, name).await;
    }
    get(server, "events-broker-certs").await;
}

/// Makes the certificates of `cluster()` once, against a scripted server.
async fn made_tls() -> Tls {
    let (client, mut server) = mock_client();
    let task = tokio::spawn(async move {
        certs::ensure(&client, &cluster(), jiff::Timestamp::now().as_second()).await
    });
    let secrets = answer_certs_new(&mut server).await;
    let material = finished(task)
        .await
        .expect("certificates made")
        .expect("no Secret of the user's");
    Tls { secrets, material }
}

/// The status a healthy cluster with `tls` stores.
fn healthy_status(
    sc: &StreamCluster,
    sts: &StatefulSet,
    tls: &Tls,
) -> crate::crd::StreamClusterStatus {
    let mut stored = status::compute(
        sc,
        Some(sts),
        &ScaleDecision::Proceed { replicas: 3 },
        None,
        None,
        &conditions::now(),
    );
    stored.certificates = Some(tls.material.status.clone());
    stored
}

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
    server.expect(Method::GET, NETPOL).await.respond(
        200,
        &list(
            "NetworkPolicyList",
            live.and_then(|l| l.network_policy.clone()).as_slice(),
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

    let secrets = answer_certs_new(&mut server).await;
    let certificates = expect_event(&mut server, "Certificates").await;
    assert!(
        certificates["note"]
            .as_str()
            .unwrap_or_default()
            .contains("made a new CA"),
        "{certificates}"
    );
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
    let template = &sts["spec"]["template"];
    let bundle = template["metadata"]["annotations"]["rill.dev/cluster-ca-bundle"]
        .as_str()
        .expect("bundle annotation");
    assert_eq!(bundle.len(), 16);
    let volumes = template["spec"]["volumes"].as_array().expect("volumes");
    assert!(
        volumes
            .iter()
            .any(|v| v["secret"]["secretName"] == "events-broker-certs")
    );
    assert!(secrets.contains_key("events-broker-certs"));
    let pdb = expect_apply(&mut server, &format!("{PDB}/events")).await;
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
    let policy = expect_apply(&mut server, &format!("{NETPOL}/events-brokers")).await;
    assert_eq!(policy["spec"]["policyTypes"], json!(["Ingress"]));
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
    assert_eq!(status["kafkaBootstrap"], "events-bootstrap.data.svc:9093");
    assert_eq!(
        status["listeners"],
        json!([{"name": "tls", "bootstrap": "events-bootstrap.data.svc:9093", "tls": true, "authentication": "scram"}])
    );
    assert_eq!(
        status["certificates"]["clusterCa"]["secret"],
        "events-cluster-ca"
    );
    assert_eq!(status["certificates"]["clusterCa"]["managed"], true);
    assert_eq!(
        status["certificates"]["broker"]["secret"],
        "events-broker-certs"
    );
    exchange.ok(&cluster());
    expect_event(&mut server, "BrokersNotReady").await;

    let action = finished(task).await.expect("reconcile succeeds");
    assert_eq!(action, Action::requeue(RESYNC));
    assert_eq!(ctx.metrics.write_count(super::CONTROLLER), 7);
}

#[tokio::test]
async fn given_an_unchanged_cluster_when_reconciling_then_nothing_is_written() {
    let tls = made_tls().await;
    let (ctx, mut server) = mock_context();
    let mut sc = cluster();
    let live = desired_objects(&sc, 3, &Settings::default(), &tls.material);
    let sts = ready_sts(&live.stateful_set, 3);
    sc.status = Some(healthy_status(&sc, &sts, &tls));
    let (ctx, task) = spawn(sc, ctx);

    answer_certs_existing(&mut server, &tls).await;
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
    let tls = made_tls().await;
    let (ctx, mut server) = mock_context();
    let mut sc = cluster();
    let mut live = desired_objects(&sc, 3, &Settings::default(), &tls.material);
    let sts = ready_sts(&live.stateful_set, 3);
    sc.status = Some(healthy_status(&sc, &sts, &tls));
    sc.spec.brokers = 5;
    sc.metadata.generation = Some(2);
    // A Service from an older operator version, owned by this cluster.
    let mut legacy = live.bootstrap_service.clone();
    legacy.metadata.name = Some("events-legacy".into());
    let (ctx, task) = spawn(sc, ctx);

    // Five brokers need more names on the broker certificate: it is
    // signed again, which needs no roll (brokers reload it).
    server
        .expect(Method::GET, &format!("{SECRETS}/events-scram-credentials"))
        .await
        .respond(200, &tls.secrets["events-scram-credentials"]);
    server
        .expect(Method::GET, PODS)
        .await
        .respond(200, &list::<Value>("PodList", &[]));
    for name in CA_SECRETS {
        server
            .expect(Method::GET, &format!("{SECRETS}/{name}"))
            .await
            .respond(200, &tls.secrets[name]);
    }
    server
        .expect(Method::GET, &format!("{SECRETS}/events-broker-certs"))
        .await
        .respond(200, &tls.secrets["events-broker-certs"]);
    let resigned = server
        .expect(Method::PATCH, &format!("{SECRETS}/events-broker-certs"))
        .await;
    assert_eq!(resigned.content_type, "application/merge-patch+json");
    assert!(resigned.body["data"]["tls.crt"].is_string());
    resigned.echo();
    let event = expect_event(&mut server, "Certificates").await;
    assert!(
        event["note"]
            .as_str()
            .unwrap_or_default()
            .contains("4 more names"),
        "{event}"
    );

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
    server.expect(Method::GET, NETPOL).await.respond(
        200,
        &list("NetworkPolicyList", live.network_policy.as_slice()),
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
    let tls = made_tls().await;
    let (mut ctx, mut server) = mock_context();
    ctx.placement = Arc::new(Holding(vec![4]));
    let mut sc = cluster();
    let live = desired_objects(&sc, 5, &Settings::default(), &tls.material);
    let sts = ready_sts(&live.stateful_set, 5);
    sc.spec.brokers = 3;
    let (_ctx, task) = spawn(sc, ctx);

    answer_certs_existing(&mut server, &tls).await;
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
    let tls = made_tls().await;
    let (ctx, mut server) = mock_context();
    let (_ctx, task) = spawn(cluster(), ctx);
    answer_certs_existing(&mut server, &tls).await;
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
    let tls = made_tls().await;
    let (mut ctx, mut server) = mock_context();
    ctx.placement = Arc::new(InSync);
    let mut sc = cluster();
    let live = desired_objects(&sc, 3, &Settings::default(), &tls.material);
    let mut sts = ready_sts(&live.stateful_set, 3);
    if let Some(s) = sts.status.as_mut() {
        s.updated_replicas = Some(0);
        s.update_revision = Some("events-new".into());
    }
    sc.status = Some(healthy_status(&sc, &sts, &tls));
    let (ctx, task) = spawn(sc, ctx);
    answer_certs_existing(&mut server, &tls).await;
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
