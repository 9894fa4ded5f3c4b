//! Contract of controller restarts and takeovers on the file store:
//! - a topic config changed through `AlterTopicConfig` is durable in the
//!   file: a restarted controller serves it;
//! - a controller restarted on the same metadata file keeps topics and
//!   brokers, runs with a higher controller epoch, and watchers that watch
//!   again get a snapshot carrying it; brokers keep their incarnation
//!   (their heartbeats are accepted) thanks to the grace period;
//! - a second controller claiming the same file deposes the first: the
//!   first's next write fails, it answers UNAVAILABLE "not the active
//!   controller" to everything, its watch streams end, its handle reports
//!   `Deposed`, and a client given both addresses fails over to the new one;
//! - partitions a controller left leaderless when it fenced every broker
//!   (they could not reach it) get a leader from the next controller as
//!   soon as those brokers heartbeat to it, without registering again.

mod common;

use common::*;
use rill_controller::client::Retry;
use rill_controller::service::Phase;
use rill_controller::{ClientError, ConfigOrigin, ServerError};
use std::time::Duration;

#[tokio::test]
async fn given_a_controller_restarted_on_the_same_file_should_keep_metadata_and_raise_the_epoch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("metadata.json");
    let first = start_file(&file).await;
    let addr = first.grpc_addr;
    let client = client(&[&first]).await;
    let brokers = three_brokers(&client).await;
    let topic = client
        .create_topic("orders", 3, 3, no_config())
        .await
        .expect("created");
    let mut watcher = Watcher::start(&client).await;
    let before = watcher.next().await;
    assert_eq!(before.controller_epoch, first.controller_epoch);
    let first_epoch = first.controller_epoch;

    first.shutdown().await.expect("clean shutdown");
    match watcher.next_raw().await {
        Some(Err(e)) => assert_eq!(e.reason(), Some("SHUTTING_DOWN"), "{e:?}"),
        other => panic!("the stream should end with an error, got {other:?}"),
    }

    // Same address, so the same client reconnects.
    let mut config = config(&file);
    config.listen_addr = addr;
    let second = rill_controller::start(config)
        .await
        .expect("restarts on the same address");
    assert!(second.controller_epoch > first_epoch);

    let mut watcher = Watcher::start(&client).await;
    let snapshot = watcher.next().await;
    assert!(snapshot.snapshot);
    assert_eq!(snapshot.controller_epoch, second.controller_epoch);
    assert_eq!(watcher.view.topics["orders"], topic);
    assert_eq!(watcher.view.brokers.len(), 3);
    for b in &brokers {
        assert_eq!(watcher.view.brokers[&b.id].epoch, b.epoch);
        let hb = client
            .heartbeat(b.id, b.epoch)
            .await
            .expect("the incarnation survives a controller restart");
        assert_eq!(hb.controller_epoch, second.controller_epoch);
    }
    second.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn given_partitions_left_leaderless_by_fencing_when_another_controller_takes_over_then_heartbeating_brokers_lead_them()
 {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("metadata.json");
    let first = start_file(&file).await;
    let addr = first.grpc_addr;
    let client = client(&[&first]).await;
    let brokers = three_brokers(&client).await;
    client
        .create_topic("orders", 3, 3, no_config())
        .await
        .expect("created");
    let mut watcher = Watcher::start(&client).await;
    watcher.next().await;
    // The brokers cannot reach the controller: it fences all three, and
    // every partition is left without a leader.
    for b in &brokers {
        b.kill();
    }
    watcher
        .until("every partition leaderless", |v| {
            v.topics["orders"]
                .partitions
                .iter()
                .all(|p| p.leader == rill_controller::NO_LEADER)
        })
        .await;
    first.shutdown().await.expect("clean shutdown");

    let mut config = config(&file);
    config.listen_addr = addr;
    let second = rill_controller::start(config)
        .await
        .expect("restarts on the same address");
    // The same incarnations heartbeat on: they never learnt they were
    // fenced, so they do not register again.
    let resumed: Vec<Broker> = brokers
        .iter()
        .map(|b| Broker::resume(&client, b.id, b.epoch, Duration::from_millis(100)))
        .collect();
    let mut watcher = Watcher::start(&client).await;
    assert!(watcher.next().await.snapshot);
    watcher
        .until("every partition led by a broker of its ISR", |v| {
            v.topics["orders"]
                .partitions
                .iter()
                .all(|p| p.leader >= 0 && p.isr.contains(&p.leader))
        })
        .await;
    drop(resumed);
    second.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn given_a_topic_config_change_when_the_controller_restarts_should_keep_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("metadata.json");
    let first = start_file(&file).await;
    let addr = first.grpc_addr;
    let client = client(&[&first]).await;
    three_brokers(&client).await;
    client
        .create_topic("orders", 1, 3, no_config())
        .await
        .expect("created");
    let config = std::collections::BTreeMap::from([
        ("retention.ms".to_owned(), "60000".to_owned()),
        ("min.insync.replicas".to_owned(), "2".to_owned()),
    ]);
    // The file store has no policy: a change from Kafka is allowed.
    let altered = client
        .alter_topic_config("orders", config.clone(), false, ConfigOrigin::Kafka)
        .await
        .expect("altered");
    assert_eq!(altered.config, config);
    first.shutdown().await.expect("clean shutdown");

    let mut restarted = self::config(&file);
    restarted.listen_addr = addr;
    let second = rill_controller::start(restarted)
        .await
        .expect("restarts on the same address");
    let mut watcher = Watcher::start(&client).await;
    assert!(watcher.next().await.snapshot);
    assert_eq!(watcher.view.topics["orders"].config, config);
    second.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn given_a_second_controller_on_the_same_file_should_depose_the_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("metadata.json");
    let mut first = start_file(&file).await;
    let first_client = client(&[&first]).await;
    let broker = Broker::start(&first_client, 0).await;
    let mut watcher = Watcher::start(&first_client).await;
    watcher.next().await;

    let second = start_file(&file).await;
    assert!(second.controller_epoch > first.controller_epoch);

    // The first only notices at its next write.
    let err = first_client
        .create_topic("orders", 1, 1, no_config())
        .await
        .unwrap_err();
    match &err {
        ClientError::NoController { last, .. } => {
            assert!(last.contains("not the active controller"), "{err}")
        }
        other => panic!("expected NoController, got {other:?}"),
    }
    assert_eq!(err.retry(), Retry::Later);
    match first.stopped().await {
        ServerError::Deposed { ours, current } => {
            assert_eq!(ours, first.controller_epoch);
            assert_eq!(current, second.controller_epoch);
        }
        other => panic!("expected Deposed, got {other:?}"),
    }
    assert!(matches!(first.phase(), Phase::Deposed { .. }));
    match watcher.next_raw().await {
        Some(Err(e)) => assert_eq!(e.reason(), Some("NOT_ACTIVE_CONTROLLER"), "{e:?}"),
        other => panic!("the stream should end with an error, got {other:?}"),
    }
    let err = first_client.heartbeat(0, broker.epoch).await.unwrap_err();
    assert!(matches!(err, ClientError::NoController { .. }), "{err:?}");

    // A client that knows both addresses finds the active one.
    let both = client(&[&first, &second]).await;
    let topic = both
        .create_topic("orders", 1, 1, no_config())
        .await
        .expect("created on the active controller");
    assert_eq!(topic.partitions.len(), 1);
    assert_eq!(
        both.active_address(),
        Some(second.grpc_addr.to_string().as_str())
    );
    let hb = both
        .heartbeat(0, broker.epoch)
        .await
        .expect("the new controller knows the broker");
    assert_eq!(hb.controller_epoch, second.controller_epoch);

    first.shutdown().await.expect("shutdown after deposition");
    second.shutdown().await.expect("clean shutdown");
}
