//! The metadata controller hosted by the operator, against a real
//! kube-apiserver. Pins:
//! - a Topic gets partitions placed by the controller, with leader, replicas,
//!   ISR and epochs in `status.partitions`, on brokers that register through
//!   the operator's gRPC port with their cluster header;
//! - leader and ISR changes reach the Topic status; a restarted operator
//!   claims a higher controller epoch, stamps the Topics and brokers carry on;
//! - topics created through a broker become Topic resources; deleting a
//!   Topic resource deletes the topic on the brokers;
//! - only the Lease holder serves: a standby replica refuses, brokers given
//!   both addresses find the holder, and keep serving when it goes away;
//! - the store fences a deposed controller and keeps concurrent writers'
//!   fields (resourceVersion compare-and-swap).
//!
//! Ignored without a cluster: run through `e2e/scripts/run-tests.sh`.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use clap::Parser;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use rill_client::{Acks, Client as RillClient};
use rill_controller::{
    ClientOptions, ControllerClient, MetadataStore, PartitionState, StoreError, TopicState,
};
use rill_e2e::{client, free_port, namespace, wait_for};
use rill_operator::RunError;
use rill_operator::config::Config;
use rill_operator::crd::{StreamCluster, Topic};
use rill_operator::metadata::KubeStore;
use rill_operator::metadata::store::state_config_map;
use serde_json::json;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

// The broker runs as its own process, as in a pod: the helper the broker's
// process tests use (its binary is found next to this test's executable).
#[path = "../../broker/tests/broker_process/mod.rs"]
mod broker_process;
use broker_process::BrokerProcess;

/// Longest wait for the operator to start a controller and take the Lease.
const OPERATOR_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for placement, leader moves and ISR changes to show in status.
const STATUS_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for brokers to follow a new controller or drop a topic.
const BROKER_TIMEOUT: Duration = Duration::from_secs(30);

const CLUSTER: &str = "events";

struct Operator {
    controller: String,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), RunError>>,
}

impl Operator {
    /// Starts an operator on a controller port that was free a moment ago,
    /// and waits until it listens there. Should something else have taken
    /// the port meanwhile, it starts again on another one.
    async fn start(client: &Client, namespace: &str, identity: &str) -> Self {
        for _ in 0..5 {
            let mut operator = Self::start_on(client, namespace, identity, free_port()).await;
            match operator.listening().await {
                Ok(()) => return operator,
                Err(RunError::ControllerListen { addr, source }) => {
                    eprintln!(
                        "operator {identity}: controller port {addr} taken ({source}); trying another"
                    );
                }
                Err(e) => panic!("operator {identity} stopped before it listened: {e}"),
            }
        }
        panic!("operator {identity}: no free controller port in 5 attempts");
    }

    /// Waits until the operator accepts connections on its controller port,
    /// or returns why it stopped first.
    async fn listening(&mut self) -> Result<(), RunError> {
        let deadline = tokio::time::Instant::now() + OPERATOR_TIMEOUT;
        loop {
            if self.task.is_finished() {
                return (&mut self.task).await.expect("operator task");
            }
            if tokio::net::TcpStream::connect(&self.controller)
                .await
                .is_ok()
            {
                return Ok(());
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "operator did not listen on {} within {OPERATOR_TIMEOUT:?}",
                self.controller
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Starts an operator whose controller port is `controller`.
    async fn start_on(
        client: &Client,
        namespace: &str,
        identity: &str,
        controller: std::net::SocketAddr,
    ) -> Self {
        let config = Config::try_parse_from([
            "rill-operator",
            "--http-addr",
            "127.0.0.1:0",
            "--controller-listen-addr",
            &controller.to_string(),
            "--lease-name",
            "rill-e2e-operator",
            "--lease-namespace",
            namespace,
            "--identity",
            identity,
            // A stopped operator releases the Lease, so these bound only
            // how long a slow API server may delay renewals before the
            // leader steps down (which ends the test's operator).
            "--lease-duration-seconds",
            "12",
            "--renew-deadline-seconds",
            "10",
            "--retry-period-seconds",
            "1",
        ])
        .expect("operator flags");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn({
            let client = client.clone();
            let identity = identity.to_owned();
            async move {
                let result = rill_operator::run_with_client(client, config, async {
                    let _ = stopped.await;
                })
                .await;
                // Shown with a failing test's output: an operator that
                // stopped on its own (a lost Lease, a port) explains a wait
                // that then times out.
                if let Err(e) = &result {
                    eprintln!("operator {identity} stopped: {e}");
                }
                result
            }
        });
        Self {
            controller: controller.to_string(),
            stop,
            task,
        }
    }

    async fn shutdown(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

async fn start_broker(dir: &Path, id: i32, controllers: &[&str], cluster: &str) -> BrokerProcess {
    let data = dir.join(format!("broker-{id}"));
    let log = dir.join(format!("broker-{id}.log"));
    let args: Vec<String> = [
        "--broker-id",
        &id.to_string(),
        "--replication-addr",
        "127.0.0.1:0",
        "--controller-addr",
        &controllers.join(","),
        "--cluster",
        cluster,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        BrokerProcess::start(&data, &log, &args)
    })
    .await
    .expect("broker starts")
}

/// Stops a broker with SIGTERM; whether it shut down cleanly (exit 0).
async fn stop_broker(broker: BrokerProcess) -> bool {
    tokio::task::spawn_blocking(move || broker.terminate())
        .await
        .expect("broker stopped")
}

async fn apply_cluster(client: &Client, ns: &str, brokers: i32) {
    let sc: StreamCluster = serde_json::from_value(json!({
        "apiVersion": "rill.dev/v1alpha1",
        "kind": "StreamCluster",
        "metadata": {"name": CLUSTER, "namespace": ns},
        // The brokers here are processes the test starts on loopback with
        // plaintext flags, not the StatefulSet's pods with its certificates.
        "spec": {"brokers": brokers, "storage": {"size": "1Gi"}, "certificates": {"internalTls": false}},
    }))
    .expect("StreamCluster");
    Api::<StreamCluster>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &sc)
        .await
        .expect("StreamCluster created");
}

async fn apply_topic(client: &Client, ns: &str, name: &str, partitions: i32, rf: i32) {
    let topic: Topic = serde_json::from_value(json!({
        "apiVersion": "rill.dev/v1alpha1",
        "kind": "Topic",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "clusterRef": {"name": CLUSTER},
            "partitions": partitions,
            "replicationFactor": rf,
            "config": {"minInsyncReplicas": 2.min(rf)},
        },
    }))
    .expect("Topic");
    Api::<Topic>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &topic)
        .await
        .expect("Topic created");
}

async fn controller_epoch(client: &Client, ns: &str) -> Option<i64> {
    let cm = Api::<ConfigMap>::namespaced(client.clone(), ns)
        .get_opt(&state_config_map(CLUSTER))
        .await
        .ok()??;
    let text = cm.data?.get("state.json")?.clone();
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["controllerEpoch"].as_i64()
}

/// Waits until Topic `name` has `partitions` placed partitions that all
/// satisfy `ok`, and returns it.
async fn topic_status(
    client: &Client,
    ns: &str,
    name: &str,
    partitions: usize,
    what: &str,
    ok: impl Fn(&rill_operator::crd::PartitionStatus) -> bool,
) -> Topic {
    let api = Api::<Topic>::namespaced(client.clone(), ns);
    wait_for(what, STATUS_TIMEOUT, || async {
        let t = api.get_opt(name).await.ok()??;
        let s = t.status.as_ref()?;
        (s.partitions.len() == partitions && s.partitions.iter().all(&ok)).then_some(t)
    })
    .await
}

async fn produce_ok(rill: &RillClient, topic: &str, partition: i32, value: &str) -> bool {
    rill.produce(
        topic,
        partition,
        &[(None::<&[u8]>, value.as_bytes())],
        Acks::All,
    )
    .await
    .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs a Kubernetes API server: e2e/scripts/run-tests.sh"]
async fn given_an_operator_and_three_brokers_then_topic_status_follows_placement_failover_and_restarts()
 {
    let client = client().await;
    let ns = namespace(&client, "rill-md").await;
    let dir = tempfile::tempdir().expect("tempdir");
    apply_cluster(&client, &ns, 3).await;
    let operator = Operator::start(&client, &ns, "operator-a").await;
    wait_for(
        "the operator to claim the cluster's controller",
        OPERATOR_TIMEOUT,
        || async { controller_epoch(&client, &ns).await.filter(|e| *e >= 1) },
    )
    .await;
    let first_epoch = controller_epoch(&client, &ns).await.expect("epoch");

    let cluster = format!("{ns}/{CLUSTER}");
    let controllers = [operator.controller.as_str()];
    let mut brokers = HashMap::new();
    for id in 0..3 {
        brokers.insert(
            id,
            start_broker(dir.path(), id, &controllers, &cluster).await,
        );
    }

    apply_topic(&client, &ns, "orders", 3, 3).await;
    let placed = topic_status(
        &client,
        &ns,
        "orders",
        3,
        "orders placed with full ISRs",
        |p| p.leader.is_some() && p.isr.len() == 3 && p.replicas.len() == 3,
    )
    .await;
    let status = placed.status.clone().expect("status");
    assert_eq!(status.controller_epoch, Some(first_epoch));
    let leaders: Vec<i32> = status.partitions.iter().filter_map(|p| p.leader).collect();
    assert_eq!(
        {
            let mut l = leaders.clone();
            l.sort();
            l
        },
        vec![0, 1, 2],
        "preferred leaders are spread: {status:?}"
    );
    wait_for("Topic Ready=True", STATUS_TIMEOUT, || async {
        let t = Api::<Topic>::namespaced(client.clone(), &ns)
            .get("orders")
            .await
            .ok()?;
        let ready = t
            .status?
            .conditions
            .into_iter()
            .find(|c| c.type_ == "Ready")?;
        (ready.status == "True").then_some(())
    })
    .await;

    let rill = RillClient::connect(&brokers[&0].client_addr.to_string())
        .await
        .expect("client");
    wait_for("acks=all writes to partition 0", BROKER_TIMEOUT, || async {
        produce_ok(&rill, "orders", 0, "before").await.then_some(())
    })
    .await;

    // The leader of partition 0 stops: the new leader and epoch reach the status.
    let p0 = status.partitions[0].clone();
    let old_leader = p0.leader.expect("leader");
    assert!(
        stop_broker(brokers.remove(&old_leader).expect("leader broker")).await,
        "clean shutdown"
    );
    let moved = topic_status(
        &client,
        &ns,
        "orders",
        3,
        "partition 0 led by another broker",
        |p| {
            p.partition != 0
                || (p.leader.is_some_and(|l| l != old_leader) && p.leader_epoch > p0.leader_epoch)
        },
    )
    .await;
    let p0_moved = moved.status.expect("status").partitions[0].clone();
    assert!(!p0_moved.isr.contains(&old_leader), "{p0_moved:?}");
    let survivor = brokers.keys().copied().next().expect("a broker");
    let rill = RillClient::connect(&brokers[&survivor].client_addr.to_string())
        .await
        .expect("client");
    wait_for(
        "acks=all writes after the leader left",
        BROKER_TIMEOUT,
        || async {
            produce_ok(&rill, "orders", 0, "after-leader-stop")
                .await
                .then_some(())
        },
    )
    .await;

    // It comes back with its data and rejoins every ISR.
    brokers.insert(
        old_leader,
        start_broker(dir.path(), old_leader, &controllers, &cluster).await,
    );
    topic_status(
        &client,
        &ns,
        "orders",
        3,
        "the restarted broker back in every ISR",
        |p| p.isr.contains(&old_leader),
    )
    .await;

    // A new operator process (same address, as behind a Service) claims a
    // higher epoch and stamps the Topic; the brokers follow it on their own.
    let address = operator.controller.parse().expect("address");
    operator.shutdown().await;
    let operator = Operator::start_on(&client, &ns, "operator-b", address).await;
    let second_epoch = wait_for(
        "the new operator to claim a higher epoch",
        OPERATOR_TIMEOUT,
        || async {
            controller_epoch(&client, &ns)
                .await
                .filter(|e| *e > first_epoch)
        },
    )
    .await;
    // The claim bumps the epoch first, then stamps each placed Topic.
    let topics_api = Api::<Topic>::namespaced(client.clone(), &ns);
    wait_for(
        "the Topic stamped with the new controller epoch",
        STATUS_TIMEOUT,
        || async {
            let t = topics_api.get_opt("orders").await.ok()??;
            (t.status?.controller_epoch >= Some(second_epoch)).then_some(())
        },
    )
    .await;
    topic_status(
        &client,
        &ns,
        "orders",
        3,
        "partitions under the new controller",
        |p| p.leader.is_some() && p.isr.len() == 3,
    )
    .await;
    let rill = RillClient::connect(&brokers[&0].client_addr.to_string())
        .await
        .expect("client");
    for p in 0..3 {
        wait_for(
            "acks=all writes under the new controller",
            BROKER_TIMEOUT,
            || async {
                produce_ok(&rill, "orders", p, "after-operator-restart")
                    .await
                    .then_some(())
            },
        )
        .await;
    }

    // A topic created through a broker becomes a Topic resource.
    rill.create_topic("Audit_Log", 2, 3, HashMap::new())
        .await
        .expect("topic created through the broker");
    let topics = Api::<Topic>::namespaced(client.clone(), &ns);
    let created = wait_for("a Topic resource for Audit_Log", STATUS_TIMEOUT, || async {
        topics
            .list(&Default::default())
            .await
            .ok()?
            .items
            .into_iter()
            .find(|t| t.effective_topic_name() == "Audit_Log")
            .filter(|t| t.status.as_ref().is_some_and(|s| s.partitions.len() == 2))
    })
    .await;
    assert_eq!(created.spec.partitions, 2);
    assert_eq!(created.spec.replication_factor, 3);
    assert_eq!(created.spec.topic_name.as_deref(), Some("Audit_Log"));

    // Deleting a Topic resource deletes the topic on the brokers.
    topics
        .delete("orders", &DeleteParams::default())
        .await
        .expect("delete");
    wait_for(
        "orders gone from the brokers and its resource removed",
        BROKER_TIMEOUT,
        || async {
            let gone_on_brokers = rill.topic("orders").await.is_err();
            let gone_in_api = topics.get_opt("orders").await.ok()?.is_none();
            (gone_on_brokers && gone_in_api).then_some(())
        },
    )
    .await;

    for (_, b) in brokers {
        assert!(stop_broker(b).await, "clean shutdown");
    }
    operator.shutdown().await;
    let _ = Api::<StreamCluster>::namespaced(client.clone(), &ns)
        .delete(CLUSTER, &DeleteParams::default())
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs a Kubernetes API server: e2e/scripts/run-tests.sh"]
async fn given_two_operator_replicas_then_only_the_lease_holder_serves_and_brokers_follow_it() {
    let client = client().await;
    let ns = namespace(&client, "rill-ha").await;
    let dir = tempfile::tempdir().expect("tempdir");
    apply_cluster(&client, &ns, 1).await;
    let a = Operator::start(&client, &ns, "operator-a").await;
    let b = Operator::start(&client, &ns, "operator-b").await;
    let leases = Api::<Lease>::namespaced(client.clone(), &ns);
    let holder = wait_for(
        "an operator to hold the Lease",
        OPERATOR_TIMEOUT,
        || async {
            leases
                .get_opt("rill-e2e-operator")
                .await
                .ok()??
                .spec?
                .holder_identity
        },
    )
    .await;
    let (leader, standby) = if holder == "operator-a" {
        (a, b)
    } else {
        (b, a)
    };
    wait_for(
        "the leader to claim the cluster's controller",
        OPERATOR_TIMEOUT,
        || async { controller_epoch(&client, &ns).await },
    )
    .await;

    let cluster = format!("{ns}/{CLUSTER}");
    let options = ClientOptions {
        cluster: Some(cluster.clone()),
        ..ClientOptions::default()
    };
    // Both operators were spawned at once: the standby may still be
    // setting up when the leader has claimed, so wait for its listener.
    let to_standby = wait_for(
        "the standby to accept connections",
        OPERATOR_TIMEOUT,
        || async {
            ControllerClient::connect_with(vec![standby.controller.clone()], options.clone())
                .await
                .ok()
        },
    )
    .await;
    let refusal = to_standby
        .create_topic("t", 1, 1, Default::default())
        .await
        .expect_err("the standby refuses");
    assert!(
        refusal.to_string().contains("NOT_ACTIVE_CONTROLLER"),
        "{refusal}"
    );

    let both = [standby.controller.as_str(), leader.controller.as_str()];
    let broker = start_broker(dir.path(), 0, &both, &cluster).await;
    let rill = RillClient::connect(&broker.client_addr.to_string())
        .await
        .expect("client");
    rill.create_topic("ha", 1, 1, HashMap::new())
        .await
        .expect("created through whichever operator leads");
    wait_for("writes to ha", BROKER_TIMEOUT, || async {
        produce_ok(&rill, "ha", 0, "before").await.then_some(())
    })
    .await;

    // The leader goes away: the standby takes the Lease and the controller;
    // the broker keeps accepting writes throughout and registers with it.
    let epoch_before = controller_epoch(&client, &ns).await.expect("epoch");
    leader.shutdown().await;
    let mut failed_writes = 0;
    let deadline = tokio::time::Instant::now() + OPERATOR_TIMEOUT;
    loop {
        if !produce_ok(&rill, "ha", 0, "during").await {
            failed_writes += 1;
        }
        if controller_epoch(&client, &ns).await > Some(epoch_before) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the standby did not take over the controller"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        failed_writes, 0,
        "the broker kept serving while the operator changed"
    );
    wait_for(
        "a topic created through the new leader",
        BROKER_TIMEOUT,
        || async { rill.create_topic("ha-2", 1, 1, HashMap::new()).await.ok() },
    )
    .await;

    assert!(stop_broker(broker).await, "clean shutdown");
    standby.shutdown().await;
    let _ = Api::<StreamCluster>::namespaced(client.clone(), &ns)
        .delete(CLUSTER, &DeleteParams::default())
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Kubernetes API server: e2e/scripts/run-tests.sh"]
async fn given_a_newer_claim_then_the_old_store_is_superseded_and_concurrent_fields_survive() {
    let client = client().await;
    let ns = namespace(&client, "rill-store").await;
    apply_cluster(&client, &ns, 3).await;
    let old = KubeStore::new(client.clone(), &ns, CLUSTER);
    let meta = old.claim().await.expect("first claim");
    let ours = meta.controller_epoch;
    let partition = |leader: i32, epoch: i32| PartitionState {
        replicas: vec![0, 1, 2],
        isr: vec![0, 1, 2],
        leader,
        leader_epoch: epoch,
        partition_epoch: epoch,
        removing: Vec::new(),
        adding: Vec::new(),
    };
    let topic = TopicState {
        name: "payments".into(),
        id: rill_controller::new_topic_id(),
        partitions: vec![partition(0, 0), partition(1, 0)],
        config: [("min.insync.replicas".to_owned(), "2".to_owned())].into(),
    };
    old.persist(ours, &[rill_controller::Change::Topic(topic.clone())])
        .await
        .expect("old controller creates the topic");
    let topics = Api::<Topic>::namespaced(client.clone(), &ns);
    let created = topics.get("payments").await.expect("Topic resource");
    assert_eq!(created.spec.partitions, 2);

    // Another writer's conditions and the controller's partitions both land
    // although they race on the same object.
    let patch_conditions = async {
        for i in 0..10 {
            let conditions = json!({"status": {"conditions": [{
                "type": "Ready", "status": "True", "reason": "Accepted",
                "message": format!("write {i}"), "lastTransitionTime": "2026-01-01T00:00:00Z",
            }]}});
            topics
                .patch_status(
                    "payments",
                    &PatchParams::default(),
                    &Patch::Merge(&conditions),
                )
                .await
                .expect("conditions patch");
        }
    };
    let move_leaders = async {
        for epoch in 1..=10 {
            old.persist(
                ours,
                &[rill_controller::Change::Partition {
                    topic: "payments".into(),
                    partition: 1,
                    state: partition(2, epoch),
                }],
            )
            .await
            .expect("leader move persisted despite conflicts");
        }
    };
    tokio::join!(patch_conditions, move_leaders);
    let t = topics.get("payments").await.expect("Topic");
    let status = t.status.expect("status");
    assert_eq!(status.partitions[1].leader_epoch, 10);
    assert_eq!(status.partitions[1].leader, Some(2));
    assert_eq!(
        status.partitions[0].leader_epoch, 0,
        "other partitions untouched"
    );
    assert_eq!(status.conditions[0].message, "write 9");

    // A newer controller claims: it loads the topic, and the old one can no
    // longer write anything.
    let new = KubeStore::new(client.clone(), &ns, CLUSTER);
    let claimed = new.claim().await.expect("second claim");
    assert_eq!(claimed.controller_epoch, ours + 1);
    assert_eq!(
        claimed.topics["payments"].partitions[1],
        partition(2, 10),
        "the newer controller starts from what was persisted"
    );
    let err = old
        .persist(
            ours,
            &[rill_controller::Change::Partition {
                topic: "payments".into(),
                partition: 0,
                state: partition(1, 1),
            }],
        )
        .await
        .expect_err("a deposed controller is fenced");
    assert!(matches!(err, StoreError::Superseded { .. }), "{err}");
    let t = topics.get("payments").await.expect("Topic");
    assert_eq!(t.status.expect("status").partitions[0].leader_epoch, 0);

    let _ = topics.delete("payments", &DeleteParams::default()).await;
    let _ = Api::<StreamCluster>::namespaced(client.clone(), &ns)
        .delete(CLUSTER, &DeleteParams::default())
        .await;
}
