//! Contract of the gRPC `Controller` service, through the real
//! [`ControllerClient`] over loopback: brokers register and heartbeat; a
//! watcher gets a snapshot, then deltas stamped with the controller epoch;
//! a broker that stops heartbeating is fenced within its session timeout,
//! its leaderships move, watchers learn its FENCED state and its next
//! heartbeat is told to register again; AlterPartition commits with the
//! current epochs and refuses stale ones as "refresh and retry"; controlled
//! shutdown moves leadership away; bad topic requests are refused with the
//! documented reasons; a lagging watcher gets a fresh snapshot
//! (pinned in-process in `service::tests`, where the lag is deterministic).

mod common;

use std::time::{Duration, Instant};

use common::*;
use rill_controller::client::{AlterPartition, Retry};
use rill_controller::{ClientError, Liveness, NO_LEADER};

/// Slack over the session timeout for a fencing to be committed and seen
/// (tick interval, persist, delivery, a loaded test machine).
const FENCING_SLACK: Duration = Duration::from_secs(5);

#[tokio::test]
async fn given_three_brokers_when_a_topic_is_created_should_stream_snapshot_then_delta() {
    let ctl = start_memory().await;
    let client = client(&[&ctl]).await;
    let _brokers = three_brokers(&client).await;

    let mut watcher = Watcher::start(&client).await;
    let snapshot = watcher.next().await;
    assert!(snapshot.snapshot, "the first message is a snapshot");
    assert_eq!(snapshot.controller_epoch, ctl.controller_epoch);
    assert_eq!(snapshot.brokers.len(), 3);
    assert!(
        snapshot.brokers.iter().all(|b| b.state == Liveness::Active),
        "{snapshot:?}"
    );

    let created = client
        .create_topic("orders", 3, 3, no_config())
        .await
        .expect("created");
    assert_eq!(created.partitions.len(), 3);
    let leaders: Vec<_> = created.partitions.iter().map(|p| p.leader).collect();
    assert_eq!(
        leaders
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        3,
        "leaders are balanced: {leaders:?}"
    );

    let delta = watcher.next().await;
    assert!(!delta.snapshot);
    assert_eq!(delta.controller_epoch, ctl.controller_epoch);
    assert_eq!(delta.topics, vec![created]);

    let err = client
        .create_topic("orders", 1, 1, no_config())
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::AlreadyExists { .. }), "{err:?}");
    ctl.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn given_a_broker_that_stops_heartbeating_when_its_session_expires_should_fence_it_and_move_its_leaderships()
 {
    let ctl = start_memory().await;
    let client = client(&[&ctl]).await;
    let brokers = three_brokers(&client).await;
    client
        .create_topic("orders", 3, 3, no_config())
        .await
        .expect("created");
    let mut watcher = Watcher::start(&client).await;
    watcher
        .until("the topic", |v| v.topics.contains_key("orders"))
        .await;

    let victim = &brokers[1];
    let led: Vec<i32> = watcher.view.topics["orders"]
        .partitions
        .iter()
        .enumerate()
        .filter(|(_, p)| p.leader == victim.id)
        .map(|(i, _)| i as i32)
        .collect();
    assert!(!led.is_empty(), "broker 1 leads something");

    let stopped = Instant::now();
    victim.kill();
    watcher
        .until("broker 1 fenced and leading nothing", |v| {
            v.brokers[&1].state == Liveness::Fenced
                && v.topics["orders"]
                    .partitions
                    .iter()
                    .all(|p| p.leader != 1 && p.leader != NO_LEADER && !p.isr.contains(&1))
        })
        .await;
    let took = stopped.elapsed();
    println!("fencing of a silent broker took {took:?} (session timeout 1500 ms)");
    assert!(
        took < Duration::from_millis(1500) + FENCING_SLACK,
        "fencing took {took:?}"
    );
    for p in &led {
        let state = watcher.view.partition("orders", *p).expect("known");
        assert!(state.leader_epoch >= 1, "new leader epoch: {state:?}");
    }

    let err = client.heartbeat(victim.id, victim.epoch).await.unwrap_err();
    assert_eq!(err.retry(), Retry::AfterRegister, "{err:?}");
    assert_eq!(err.reason(), Some("FENCED_BROKER"));
    assert!(err.to_string().contains("register again"), "{err}");

    let metrics = ctl.metrics().encode();
    assert!(
        metrics.contains("rill_controller_brokers{state=\"fenced\"} 1"),
        "{metrics}"
    );
    assert!(
        ctl.metrics().leader_elections.get() >= led.len() as u64,
        "{metrics}"
    );
    assert!(ctl.metrics().isr_shrinks.get() >= 3, "{metrics}");
    assert_eq!(ctl.metrics().under_replicated_partitions.get(), 3);

    // Registering again brings it back as a new incarnation.
    let back = client.register(&registration(1)).await.expect("registers");
    assert!(back.broker_epoch > victim.epoch);
    watcher
        .until("broker 1 active again", |v| {
            v.brokers[&1].state == Liveness::Active && v.brokers[&1].epoch == back.broker_epoch
        })
        .await;
    ctl.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn given_a_leader_when_it_alters_the_isr_should_commit_with_current_epochs_and_refuse_stale_ones()
 {
    let ctl = start_memory().await;
    let client = client(&[&ctl]).await;
    let brokers = three_brokers(&client).await;
    let topic = client
        .create_topic("events", 1, 3, no_config())
        .await
        .expect("created");
    let p = topic.partitions[0].clone();
    let leader = brokers.iter().find(|b| b.id == p.leader).expect("leader");
    let follower = *p.isr.iter().find(|r| **r != p.leader).expect("follower");
    let mut watcher = Watcher::start(&client).await;
    watcher.next().await;

    let shrink = AlterPartition {
        broker_id: leader.id,
        broker_epoch: leader.epoch,
        topic: "events".into(),
        partition: 0,
        leader_epoch: p.leader_epoch,
        partition_epoch: p.partition_epoch,
        new_isr: p.isr.iter().copied().filter(|r| *r != follower).collect(),
        new_isr_epochs: vec![],
        leader_offline: false,
    };
    let altered = client.alter_partition(&shrink).await.expect("committed");
    assert_eq!(altered.controller_epoch, ctl.controller_epoch);
    assert_eq!(altered.state.isr, shrink.new_isr);
    assert_eq!(altered.state.partition_epoch, p.partition_epoch + 1);
    assert_eq!(altered.state.leader, p.leader);

    let delta = watcher.next().await;
    assert_eq!(delta.partitions.len(), 1);
    assert_eq!(delta.partitions[0].state, altered.state);

    // The same request again is based on an old partition epoch.
    let err = client.alter_partition(&shrink).await.unwrap_err();
    assert_eq!(err.retry(), Retry::AfterRefresh, "{err:?}");
    assert_eq!(err.reason(), Some("INVALID_UPDATE_VERSION"));

    let stale_leader = AlterPartition {
        leader_epoch: p.leader_epoch + 7,
        partition_epoch: altered.state.partition_epoch,
        ..shrink.clone()
    };
    let err = client.alter_partition(&stale_leader).await.unwrap_err();
    assert_eq!(err.reason(), Some("FENCED_LEADER_EPOCH"), "{err:?}");

    let follower_broker = brokers.iter().find(|b| b.id == follower).expect("known");
    let not_leader = AlterPartition {
        broker_id: follower_broker.id,
        broker_epoch: follower_broker.epoch,
        partition_epoch: altered.state.partition_epoch,
        ..shrink.clone()
    };
    let err = client.alter_partition(&not_leader).await.unwrap_err();
    assert_eq!(err.reason(), Some("NOT_LEADER"), "{err:?}");
    assert_eq!(err.retry(), Retry::AfterRefresh);

    let without_leader = AlterPartition {
        partition_epoch: altered.state.partition_epoch,
        new_isr: vec![follower],
        new_isr_epochs: vec![],
        leader_offline: false,
        ..shrink.clone()
    };
    let err = client.alter_partition(&without_leader).await.unwrap_err();
    assert_eq!(err.reason(), Some("INVALID_ISR"), "{err:?}");
    assert_eq!(err.retry(), Retry::Never);

    let stale_broker = AlterPartition {
        broker_epoch: leader.epoch - 100,
        ..shrink
    };
    let err = client.alter_partition(&stale_broker).await.unwrap_err();
    assert_eq!(err.retry(), Retry::AfterRegister, "{err:?}");
    ctl.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn given_a_leader_when_it_asks_for_controlled_shutdown_should_hand_over_its_leaderships() {
    let ctl = start_memory().await;
    let client = client(&[&ctl]).await;
    let brokers = three_brokers(&client).await;
    client
        .create_topic("orders", 6, 3, no_config())
        .await
        .expect("created");
    let mut watcher = Watcher::start(&client).await;
    watcher.next().await;
    let leaving = &brokers[0];
    assert!(
        watcher.view.topics["orders"]
            .partitions
            .iter()
            .any(|p| p.leader == leaving.id)
    );

    let reply = client
        .controlled_shutdown(leaving.id, leaving.epoch)
        .await
        .expect("accepted");
    assert_eq!(reply.remaining_leaderships, 0);
    watcher
        .until("broker 0 shutting down and leading nothing", |v| {
            v.brokers[&0].state == Liveness::ShuttingDown
                && v.topics["orders"].partitions.iter().all(|p| p.leader != 0)
        })
        .await;
    let hb = client
        .heartbeat(leaving.id, leaving.epoch)
        .await
        .expect("still leased");
    assert_eq!(hb.state, Liveness::ShuttingDown);
    ctl.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn given_bad_topic_requests_when_sent_should_be_refused_with_clear_reasons() {
    let ctl = start_memory().await;
    let client = client(&[&ctl]).await;
    let _brokers = three_brokers(&client).await;
    // (name, partitions, replication factor, config, expected reason)
    type Case = (
        &'static str,
        i32,
        i32,
        Vec<(&'static str, &'static str)>,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        ("bad name", 1, 1, vec![], "INVALID_TOPIC_NAME"),
        ("..", 1, 1, vec![], "INVALID_TOPIC_NAME"),
        ("ok", 0, 1, vec![], "INVALID_ARGUMENT"),
        ("ok", 1, 0, vec![], "INVALID_ARGUMENT"),
        ("ok", 1, 4, vec![], "PLACEMENT"),
        ("ok", 1, 3, vec![("retention.ms", "soon")], "INVALID_CONFIG"),
        ("ok", 1, 3, vec![("no.such", "1")], "INVALID_CONFIG"),
    ];
    for (name, partitions, rf, config, reason) in cases {
        let config = config
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let err = client
            .create_topic(name, partitions, rf, config)
            .await
            .unwrap_err();
        assert!(
            matches!(err, ClientError::Invalid { .. }),
            "{name}: {err:?}"
        );
        assert_eq!(err.reason(), Some(reason), "{name}: {err}");
    }
    let err = client.delete_topic("missing").await.unwrap_err();
    assert!(matches!(err, ClientError::NotFound { .. }), "{err:?}");
    let err = client.create_partitions("missing", 3).await.unwrap_err();
    assert_eq!(err.reason(), Some("UNKNOWN_TOPIC"), "{err:?}");

    client
        .create_topic("grow", 1, 2, no_config())
        .await
        .expect("created");
    let grown = client.create_partitions("grow", 4).await.expect("grown");
    assert_eq!(grown.partitions.len(), 4);
    let err = client.create_partitions("grow", 2).await.unwrap_err();
    assert_eq!(err.reason(), Some("INVALID_ARGUMENT"), "{err:?}");
    client.delete_topic("grow").await.expect("deleted");

    let err = client.heartbeat(42, 1).await.unwrap_err();
    assert_eq!(err.reason(), Some("UNKNOWN_BROKER"), "{err:?}");
    assert_eq!(err.retry(), Retry::AfterRegister);
    ctl.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn given_a_metadata_file_from_before_topic_ids_when_a_controller_claims_it_then_each_topic_gets_an_id_once()
 {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("metadata.json");
    // As written by a controller from before topic ids: no "id" key.
    std::fs::write(
        &file,
        r#"{"controller_epoch": 3, "brokers": {}, "topics": {"old": {"name": "old",
            "partitions": [{"replicas": [0], "isr": [0], "leader": 0, "leader_epoch": 0, "partition_epoch": 0}],
            "config": {}}}}"#,
    )
    .expect("write legacy metadata");

    let ctl = start_file(&file).await;
    let client = client(&[&ctl]).await;
    let mut watcher = Watcher::start(&client).await;
    let snapshot = watcher.next().await;
    let id = snapshot.topics[0].id.clone();
    assert!(
        uuid::Uuid::parse_str(&id).is_ok(),
        "brokers see an id: {id:?}"
    );
    ctl.shutdown().await.expect("clean shutdown");

    let stored: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).expect("read")).expect("json");
    assert_eq!(
        stored["topics"]["old"]["id"],
        id.as_str(),
        "the id is durable"
    );

    let again = start_file(&file).await;
    let client = common::client(&[&again]).await;
    let mut watcher = Watcher::start(&client).await;
    assert_eq!(
        watcher.next().await.topics[0].id,
        id,
        "a later claim keeps the id"
    );
    again.shutdown().await.expect("clean shutdown");
}
