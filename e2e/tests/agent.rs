//! The node agent (`rill-node-agent`, started by `e2e/scripts/cluster.sh`)
//! with kube-controller-manager and kube-scheduler. Pins:
//! - a StatefulSet pod whose image maps to `rill-broker` (single-broker mode,
//!   data on a PVC of the default StorageClass `rill-local`) is scheduled,
//!   gets a loopback pod IP, a provisioned and bound volume, and becomes
//!   Ready through its readiness probe;
//! - deleting the pod stops the broker gracefully (SIGTERM, exit 0 within the
//!   grace period, reported before the pod goes away), the StatefulSet
//!   recreates it on the same claim, and a record produced before is read
//!   back after;
//! - a killed broker process (SIGKILL) is restarted: restartCount 1, last
//!   state exit code 137, Ready again;
//! - a Deployment whose image maps to no binary waits with ErrImagePull /
//!   ImagePullBackOff and a message naming the image;
//! - a container sees its own projected service-account files, ConfigMap
//!   and downward API volumes, env from a ConfigMap and the downward API
//!   with `$(VAR)` expansion, its pod's hostname, and its own `/tmp`
//!   (emptyDir); an exec readiness probe run inside the pod makes it Ready.
//!
//! Ignored without a cluster: run through `e2e/scripts/run-tests.sh`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ContainerStatus, Node, PersistentVolumeClaim, Pod, Service};
use kube::Client;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::watcher::{self, Event, watcher};
use parking_lot::Mutex;
use rill_client::{Acks, Client as RillClient};
use rill_e2e::{client, delete_namespace, free_port, namespace, wait_for};
use serde_json::json;

/// Longest wait for the agent's Node to be Ready.
const NODE_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for a pod to be scheduled, its volume provisioned and bound,
/// its process started and its readiness probe passing.
const POD_READY_TIMEOUT: Duration = Duration::from_secs(120);
/// Longest wait for a deleted broker pod to be gone and recreated.
const RECREATE_TIMEOUT: Duration = Duration::from_secs(90);
/// Longest wait for a killed container to be restarted.
const RESTART_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest wait for a pod of an unmapped image to report why it waits.
const WAITING_TIMEOUT: Duration = Duration::from_secs(60);
/// The broker pod's grace period: a graceful stop ends well within it.
const GRACE_SECONDS: i64 = 30;

const BROKER_IMAGE: &str = "rill/broker:e2e";
const TOPIC: &str = "kept";

async fn ready_node(client: &Client) -> String {
    wait_for(
        "a Ready node registered by rill-node-agent (e2e/scripts/cluster.sh up)",
        NODE_TIMEOUT,
        || async {
            let nodes = Api::<Node>::all(client.clone())
                .list(&Default::default())
                .await
                .ok()?;
            nodes.items.into_iter().find_map(|n| {
                let agent = n
                    .metadata
                    .labels
                    .as_ref()
                    .is_some_and(|l| l.contains_key("rill.dev/node-agent"));
                let ready = n
                    .status
                    .as_ref()?
                    .conditions
                    .as_ref()?
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True");
                (agent && ready).then(|| n.metadata.name.clone().unwrap_or_default())
            })
        },
    )
    .await
}

/// A headless Service and a one-replica StatefulSet running `rill-broker`
/// alone on its pod IP, data on a PVC. Returns the client and HTTP ports.
async fn create_broker_set(client: &Client, ns: &str) -> (u16, u16) {
    let client_port = free_port().port();
    let kafka_port = free_port().port();
    let replication_port = free_port().port();
    let http_port = free_port().port();
    let service: Service = serde_json::from_value(json!({
        "metadata": {"name": "solo"},
        "spec": {"clusterIP": "None", "selector": {"app": "solo"},
                 "ports": [{"name": "client", "port": client_port}]},
    }))
    .expect("service");
    Api::<Service>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &service)
        .await
        .expect("service created");
    let sts: StatefulSet = serde_json::from_value(json!({
        "metadata": {"name": "solo"},
        "spec": {
            "serviceName": "solo",
            "replicas": 1,
            "selector": {"matchLabels": {"app": "solo"}},
            "template": {
                "metadata": {"labels": {"app": "solo"}},
                "spec": {
                    "terminationGracePeriodSeconds": GRACE_SECONDS,
                    "automountServiceAccountToken": false,
                    "containers": [{
                        "name": "broker",
                        "image": BROKER_IMAGE,
                        "command": ["rill-broker"],
                        "env": [
                            {"name": "RILL_POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                            {"name": "RILL_DATA_DIR", "value": "/var/lib/rill"},
                            {"name": "RILL_LISTEN_ADDR", "value": format!("$(RILL_POD_IP):{client_port}")},
                            {"name": "RILL_KAFKA_ADDR", "value": format!("$(RILL_POD_IP):{kafka_port}")},
                            {"name": "RILL_REPLICATION_ADDR", "value": format!("$(RILL_POD_IP):{replication_port}")},
                            {"name": "RILL_HTTP_ADDR", "value": format!("$(RILL_POD_IP):{http_port}")},
                        ],
                        "ports": [{"name": "client", "containerPort": client_port},
                                  {"name": "http", "containerPort": http_port}],
                        "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"}, "periodSeconds": 1},
                        "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 5},
                        "volumeMounts": [{"name": "data", "mountPath": "/var/lib/rill"}],
                    }],
                },
            },
            "volumeClaimTemplates": [{
                "metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
            }],
        },
    }))
    .expect("statefulset");
    Api::<StatefulSet>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &sts)
        .await
        .expect("statefulset created");
    (client_port, http_port)
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn broker_status(pod: &Pod) -> Option<ContainerStatus> {
    container_status(pod, "broker")
}

/// Waits until pod `name` is Ready, optionally a different pod than `not_uid`.
async fn ready_pod(pods: &Api<Pod>, name: &str, not_uid: Option<&str>, timeout: Duration) -> Pod {
    wait_for(&format!("pod {name} Ready"), timeout, || async {
        let pod = pods.get_opt(name).await.ok()??;
        let fresh = not_uid.is_none_or(|u| pod.metadata.uid.as_deref() != Some(u));
        (fresh && is_ready(&pod) && pod.metadata.deletion_timestamp.is_none()).then_some(pod)
    })
    .await
}

fn pod_ip(pod: &Pod) -> std::net::IpAddr {
    pod.status
        .as_ref()
        .and_then(|s| s.pod_ip.as_deref())
        .expect("podIP reported")
        .parse()
        .expect("podIP is an address")
}

async fn connect(addr: &str) -> RillClient {
    wait_for(
        &format!("the broker's client API at {addr}"),
        POD_READY_TIMEOUT,
        || async { RillClient::connect(addr).await.ok() },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs the local cluster with the node agent: e2e/scripts/run-tests.sh"]
async fn given_a_broker_statefulset_when_deleted_or_killed_then_it_is_stopped_gracefully_recreated_with_its_data_and_restarted()
 {
    let client = client().await;
    let node = ready_node(&client).await;
    let ns = namespace(&client, "rill-agent").await;
    let (client_port, _http_port) = create_broker_set(&client, &ns).await;
    let pods = Api::<Pod>::namespaced(client.clone(), &ns);

    // Scheduled on the agent's node, on a loopback address, Ready.
    let first = ready_pod(&pods, "solo-0", None, POD_READY_TIMEOUT).await;
    assert_eq!(
        first.spec.as_ref().and_then(|s| s.node_name.as_deref()),
        Some(node.as_str())
    );
    let ip = pod_ip(&first);
    assert!(ip.is_loopback(), "pod IP {ip} stays on loopback");
    let claim = Api::<PersistentVolumeClaim>::namespaced(client.clone(), &ns)
        .get("data-solo-0")
        .await
        .expect("claim of the StatefulSet");
    assert_eq!(
        claim.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Bound")
    );
    assert_eq!(
        claim
            .spec
            .as_ref()
            .and_then(|s| s.storage_class_name.as_deref()),
        Some("rill-local"),
        "the agent's StorageClass is the default"
    );

    // A record on the PVC.
    let rill = connect(&format!("{ip}:{client_port}")).await;
    rill.create_topic(TOPIC, 1, 1, HashMap::new())
        .await
        .expect("topic created");
    rill.produce(
        TOPIC,
        0,
        &[(None::<&[u8]>, b"survives".as_slice())],
        Acks::All,
    )
    .await
    .expect("record produced");
    drop(rill);

    // Every status of the first pod seen until it is gone.
    let first_uid = first.metadata.uid.clone().expect("uid");
    let seen: Arc<Mutex<Vec<Pod>>> = Arc::default();
    let gone = Arc::new(tokio::sync::Notify::new());
    let watch = tokio::spawn({
        let seen = seen.clone();
        let gone = gone.clone();
        let uid = first_uid.clone();
        let stream = watcher(
            pods.clone(),
            watcher::Config::default().fields("metadata.name=solo-0"),
        );
        async move {
            let mut stream = stream.boxed();
            while let Some(event) = stream.next().await {
                match event {
                    Ok(Event::Apply(p) | Event::InitApply(p))
                        if p.metadata.uid.as_deref() == Some(uid.as_str()) =>
                    {
                        seen.lock().push(p)
                    }
                    Ok(Event::Delete(p)) if p.metadata.uid.as_deref() == Some(uid.as_str()) => {
                        seen.lock().push(p);
                        gone.notify_one();
                        return;
                    }
                    _ => {}
                }
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let deleted_at = tokio::time::Instant::now();
    pods.delete("solo-0", &DeleteParams::default())
        .await
        .expect("pod deleted");
    tokio::time::timeout(RECREATE_TIMEOUT, gone.notified())
        .await
        .expect("the deleted pod is removed from the API");
    let stop_took = deleted_at.elapsed();
    watch.abort();
    assert!(
        stop_took < Duration::from_secs(GRACE_SECONDS as u64),
        "the broker stopped on SIGTERM within its grace period (took {stop_took:?})"
    );
    let last = seen
        .lock()
        .iter()
        .rev()
        .find_map(|p| {
            let s = broker_status(p)?;
            s.state.as_ref()?.terminated.clone()
        })
        .expect("the agent reported the stopped container before removing the pod");
    assert_eq!(
        last.exit_code, 0,
        "graceful stop: the broker exited by itself after SIGTERM ({last:?})"
    );

    // Recreated by the StatefulSet on the same claim: the record is there.
    let second = ready_pod(&pods, "solo-0", Some(&first_uid), RECREATE_TIMEOUT).await;
    let ip = pod_ip(&second);
    let rill = connect(&format!("{ip}:{client_port}")).await;
    let fetched = wait_for(
        "the record produced before the pod was deleted",
        POD_READY_TIMEOUT,
        || async {
            let r = rill
                .fetch(TOPIC, 0, 0, 1 << 20, Duration::from_millis(200), 1)
                .await
                .ok()?;
            (!r.records.is_empty()).then_some(r)
        },
    )
    .await;
    assert_eq!(
        fetched.records[0].value.as_deref(),
        Some(b"survives".as_slice())
    );
    drop(rill);

    // A killed process is restarted in the same pod.
    let status = broker_status(&second).expect("broker status");
    assert_eq!(status.restart_count, 0);
    let pid: i32 = status
        .container_id
        .as_deref()
        .and_then(|id| id.strip_prefix("rill-node-agent://"))
        .and_then(|pid| pid.parse().ok())
        .expect("containerID names the process");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("broker process killed");
    let restarted = wait_for(
        "restartCount 1 and Ready again",
        RESTART_TIMEOUT,
        || async {
            let pod = pods.get_opt("solo-0").await.ok()??;
            let s = broker_status(&pod)?;
            (s.restart_count == 1 && is_ready(&pod)).then_some(pod)
        },
    )
    .await;
    assert_eq!(
        restarted.metadata.uid, second.metadata.uid,
        "the same pod, restarted"
    );
    let last = broker_status(&restarted)
        .and_then(|s| s.last_state?.terminated)
        .expect("last state terminated");
    assert_eq!(last.exit_code, 137, "SIGKILL");

    delete_namespace(&client, &ns).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local cluster with the node agent: e2e/scripts/run-tests.sh"]
async fn given_a_deployment_of_an_unmapped_image_then_its_pod_waits_with_an_image_pull_reason() {
    let client = client().await;
    ready_node(&client).await;
    let ns = namespace(&client, "rill-agent-img").await;
    let image = "registry.invalid/nobody/nothing:1";
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "unmapped"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "unmapped"}},
            "template": {
                "metadata": {"labels": {"app": "unmapped"}},
                "spec": {"containers": [{"name": "main", "image": image}]},
            },
        },
    }))
    .expect("deployment");
    Api::<Deployment>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &deployment)
        .await
        .expect("deployment created");
    let pods = Api::<Pod>::namespaced(client.clone(), &ns);
    let waiting = wait_for(
        "the pod waiting with an image reason",
        WAITING_TIMEOUT,
        || async {
            let list = pods.list(&Default::default()).await.ok()?;
            list.items
                .iter()
                .find_map(|p| {
                    let s = p
                        .status
                        .as_ref()?
                        .container_statuses
                        .as_ref()?
                        .first()?
                        .clone();
                    s.state?.waiting
                })
                .filter(|w| {
                    matches!(
                        w.reason.as_deref(),
                        Some("ErrImagePull" | "ImagePullBackOff")
                    )
                })
        },
    )
    .await;
    let message = waiting.message.unwrap_or_default();
    assert!(message.contains(image), "{message}");
    delete_namespace(&client, &ns).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local cluster with the node agent: e2e/scripts/run-tests.sh"]
async fn given_a_pod_with_volumes_env_and_an_exec_probe_then_the_container_sees_its_own_files_and_becomes_ready()
 {
    let client = client().await;
    ready_node(&client).await;
    let ns = namespace(&client, "rill-agent-vol").await;
    let cm: k8s_openapi::api::core::v1::ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "settings"},
        "data": {"greeting": "hello"},
    }))
    .expect("configmap");
    Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &cm)
        .await
        .expect("configmap created");
    // The container checks what it sees, then marks itself ready in its own
    // /tmp (an emptyDir); the exec probe reads that file inside the pod.
    let script = r#"set -e
test -s /var/run/secrets/kubernetes.io/serviceaccount/token
test -s /var/run/secrets/kubernetes.io/serviceaccount/ca.crt
test "$(cat /var/run/secrets/kubernetes.io/serviceaccount/namespace)" = "$POD_NAMESPACE"
test "$(cat /etc/config/greeting)" = hello
test "$(cat /etc/podinfo/name)" = "$POD_NAME"
test "$GREETING" = hello
test "$ADDRESS" = "$POD_IP:8080"
test "$(cat /proc/sys/kernel/hostname)" = "$POD_NAME"
touch /tmp/rill-e2e-ready
echo checks passed
exec sleep 3600"#;
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "probe"},
        "spec": {
            "terminationGracePeriodSeconds": 2,
            "containers": [{
                "name": "main",
                "image": "rill-e2e/shell:1",
                "command": ["sh", "-c", script],
                "env": [
                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                    {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    {"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "greeting"}}},
                    {"name": "ADDRESS", "value": "$(POD_IP):8080"},
                ],
                "readinessProbe": {"exec": {"command": ["test", "-f", "/tmp/rill-e2e-ready"]}, "periodSeconds": 1},
                "volumeMounts": [
                    {"name": "tmp", "mountPath": "/tmp"},
                    {"name": "config", "mountPath": "/etc/config", "readOnly": true},
                    {"name": "podinfo", "mountPath": "/etc/podinfo"},
                ],
            }],
            "volumes": [
                {"name": "tmp", "emptyDir": {}},
                {"name": "config", "configMap": {"name": "settings"}},
                {"name": "podinfo", "downwardAPI": {"items": [{"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}},
            ],
        },
    }))
    .expect("pod");
    let pods = Api::<Pod>::namespaced(client.clone(), &ns);
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("pod created");
    let ready = ready_pod(&pods, "probe", None, POD_READY_TIMEOUT).await;
    assert_eq!(
        container_status(&ready, "main").map(|s| s.restart_count),
        Some(0),
        "every check in the container passed the first time"
    );
    assert!(
        !std::path::Path::new("/tmp/rill-e2e-ready").exists(),
        "the pod's /tmp is its own emptyDir, not the host's"
    );
    delete_namespace(&client, &ns).await;
}

fn container_status(pod: &Pod, name: &str) -> Option<ContainerStatus> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == name)
        .cloned()
}
