//! A controller and three brokers in one process on loopback. Pins: a
//! topic with replication factor 3 gets a leader and followers from the
//! controller; acks=all writes complete once every in-sync replica has
//! them and replicas are byte-identical; a leader that shuts down hands
//! leadership to an in-sync follower and no acknowledged record is lost;
//! followers refuse consumers and producers with "not the leader".

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use rill_broker::BrokerHandle;
use rill_proto::client::{
    Acks, CreateTopicRequest, ListOffsetsRequest, MetadataRequest, OffsetSpec, ProduceRequest,
    TopicInfo, offset_spec,
};

use common::{Client, connect, fetch_all, simple_batch};

/// Longest the cluster may take to agree on leaders and ISRs.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(20);
const TOPIC: &str = "replicated";

async fn start_controller(dir: &Path) -> rill_controller::ControllerHandle {
    let config =
        rill_controller::config::ServerConfig::ephemeral(dir.join("controller/metadata.json"));
    rill_controller::start(config)
        .await
        .expect("controller starts")
}

async fn start_broker(dir: &Path, id: i32, controller: &str) -> BrokerHandle {
    common::start(&dir.join(format!("broker-{id}")), |c| {
        c.broker_id = id;
        c.controller_addr = vec![controller.to_owned()];
    })
    .await
}

async fn topic(client: &mut Client) -> TopicInfo {
    client
        .metadata(MetadataRequest {
            topics: vec![TOPIC.into()],
        })
        .await
        .expect("metadata")
        .into_inner()
        .topics
        .remove(0)
}

/// Waits until every partition has a leader among `alive` and `isr_size`
/// in-sync replicas, as seen through `client`.
async fn converge(client: &mut Client, alive: &[i32], isr_size: usize) -> TopicInfo {
    let deadline = tokio::time::Instant::now() + CONVERGE_TIMEOUT;
    loop {
        let t = topic(client).await;
        if t.partitions
            .iter()
            .all(|p| alive.contains(&p.leader) && p.isr.len() == isr_size)
        {
            return t;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "cluster did not converge: {t:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until each partition's leader serves it: the controller names a
/// leader as soon as it places the partition, while the leader may still
/// be opening its log (a client then gets "unknown topic" and retries).
async fn leaders_serve(brokers: &BTreeMap<i32, BrokerHandle>, t: &TopicInfo) {
    let deadline = tokio::time::Instant::now() + CONVERGE_TIMEOUT;
    for p in &t.partitions {
        let mut leader = connect(&brokers[&p.leader]).await;
        loop {
            let asked = leader
                .list_offsets(ListOffsetsRequest {
                    topic: TOPIC.into(),
                    partition: p.partition,
                    spec: Some(OffsetSpec {
                        spec: Some(offset_spec::Spec::Latest(true)),
                    }),
                })
                .await;
            match asked {
                Ok(_) => break,
                Err(e) => assert!(
                    tokio::time::Instant::now() < deadline,
                    "leader {} does not serve partition {}: {e}",
                    p.leader,
                    p.partition
                ),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A controller and brokers 0, 1 and 2 with topic [`TOPIC`] of
/// `partitions` partitions at replication factor 3 and `config`, once
/// every partition has a serving leader and three in-sync replicas.
async fn start_cluster(
    dir: &Path,
    partitions: i32,
    config: BTreeMap<String, String>,
) -> (
    rill_controller::ControllerHandle,
    BTreeMap<i32, BrokerHandle>,
    TopicInfo,
) {
    let controller = start_controller(dir).await;
    let addr = controller.grpc_addr.to_string();
    let mut brokers = BTreeMap::new();
    for id in 0..3 {
        brokers.insert(id, start_broker(dir, id, &addr).await);
    }
    let mut any = connect(&brokers[&0]).await;
    any.create_topic(CreateTopicRequest {
        name: TOPIC.into(),
        partitions,
        replication_factor: 3,
        config: config.into_iter().collect(),
    })
    .await
    .expect("topic created through a broker");
    let t = converge(&mut any, &[0, 1, 2], 3).await;
    leaders_serve(&brokers, &t).await;
    (controller, brokers, t)
}

async fn produce_all(
    client: &mut Client,
    partition: i32,
    prefix: &str,
) -> Result<i64, tonic::Status> {
    client
        .produce(ProduceRequest {
            topic: TOPIC.into(),
            partition,
            acks: Acks::All as i32,
            timeout_ms: 10_000,
            record_batches: simple_batch(prefix, 10),
        })
        .await
        .map(|r| r.into_inner().base_offset)
}

fn segment(dir: &Path, id: i32, partition: i32) -> Vec<u8> {
    std::fs::read(dir.join(format!(
        "broker-{id}/topics/{TOPIC}/{partition}/00000000000000000000.log"
    )))
    .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_rf3_topic_then_acks_all_reaches_every_replica_and_survives_leader_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let (controller, mut brokers, t) = start_cluster(
        dir.path(),
        3,
        [("min.insync.replicas".to_owned(), "2".to_owned())].into(),
    )
    .await;

    // acks=all to each partition's leader; followers refuse.
    let mut acked: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for p in &t.partitions {
        let mut leader = connect(&brokers[&p.leader]).await;
        for round in 0..5 {
            let offset = produce_all(
                &mut leader,
                p.partition,
                &format!("p{}-r{round}", p.partition),
            )
            .await
            .expect("acks=all");
            acked.entry(p.partition).or_default().push(offset);
        }
        let follower = p.replicas.iter().find(|r| **r != p.leader).unwrap();
        let mut f = connect(&brokers[follower]).await;
        let err = produce_all(&mut f, p.partition, "x").await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err}");
        assert!(err.message().contains("not the leader"), "{err}");
    }
    // Every replica holds byte-identical logs once followers caught up.
    let deadline = tokio::time::Instant::now() + CONVERGE_TIMEOUT;
    for p in &t.partitions {
        loop {
            let logs: Vec<Vec<u8>> = (0..3)
                .map(|id| segment(dir.path(), id, p.partition))
                .collect();
            if logs.iter().all(|l| l == &logs[0] && !l.is_empty()) {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "replicas of {} differ",
                p.partition
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    // The leader of partition 0 shuts down: leadership moves, nothing
    // acknowledged is lost, writes continue at the new leader.
    let old = t.partitions[0].leader;
    brokers
        .remove(&old)
        .unwrap()
        .shutdown()
        .await
        .expect("clean shutdown");
    let alive: Vec<i32> = (0..3).filter(|id| *id != old).collect();
    let mut survivor = connect(&brokers[&alive[0]]).await;
    let t2 = converge(&mut survivor, &alive, 2).await;
    let new_leader = t2.partitions[0].leader;
    let mut leader = connect(&brokers[&new_leader]).await;
    let next = produce_all(&mut leader, 0, "after-failover")
        .await
        .expect("writes continue");
    assert_eq!(next, 50, "offsets continue after the acknowledged ones");
    let records = fetch_all(&mut leader, TOPIC, 0, 0).await;
    assert_eq!(records.len(), 60);
    for (i, (offset, _)) in records.iter().enumerate() {
        assert_eq!(*offset, i as i64, "dense offsets");
    }

    for (_, b) in brokers {
        b.shutdown().await.expect("clean shutdown");
    }
    controller.shutdown().await.expect("controller stops");
}

/// One request of a session opened by a follower that is not a replica
/// (its fetches record nothing on the leader).
fn session_request(
    version: u32,
    partitions: Vec<rill_proto::replication::FetchPartition>,
    forgotten: &[i32],
    max_wait_ms: u32,
) -> rill_proto::replication::ReplicaFetchRequest {
    rill_proto::replication::ReplicaFetchRequest {
        follower_id: 99,
        follower_broker_epoch: 1,
        partitions,
        max_wait_ms,
        min_bytes: 1,
        max_bytes_per_partition: 1 << 20,
        protocol_version: version,
        forgotten: forgotten
            .iter()
            .map(|p| rill_proto::replication::PartitionKey {
                topic: TOPIC.into(),
                partition: *p,
            })
            .collect(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_replica_fetch_session_then_answers_carry_only_what_changed_and_v1_gets_everything()
{
    use rill_proto::replication::replication_client::ReplicationClient;
    use rill_proto::replication::{FetchPartition, ReplicaFetchResponse};

    let dir = tempfile::tempdir().unwrap();
    let (controller, brokers, t) = start_cluster(dir.path(), 6, BTreeMap::new()).await;
    // The broker leading the most partitions, and those partitions.
    let leader = (0..3)
        .max_by_key(|id| t.partitions.iter().filter(|p| p.leader == *id).count())
        .unwrap();
    let led: Vec<_> = t.partitions.iter().filter(|p| p.leader == leader).collect();
    assert!(led.len() >= 2, "{t:?}");
    let positions: Vec<FetchPartition> = led
        .iter()
        .map(|p| FetchPartition {
            topic: TOPIC.into(),
            partition: p.partition,
            leader_epoch: p.leader_epoch,
            last_fetched_epoch: -1,
            ..Default::default()
        })
        .collect();
    let replication = brokers[&leader].replication_addr.expect("replication port");
    let mut client = ReplicationClient::connect(format!("http://{replication}"))
        .await
        .expect("connects");
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let mut answers = client
        .replica_fetch(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .expect("stream")
        .into_inner();
    let mut ask = async |req| -> ReplicaFetchResponse {
        tx.send(req).await.expect("request sent");
        tokio::time::timeout(Duration::from_secs(10), answers.message())
            .await
            .expect("answered in time")
            .expect("no error")
            .expect("stream open")
    };
    let named = |a: &ReplicaFetchResponse| -> Vec<i32> {
        a.partitions.iter().map(|p| p.partition).collect()
    };
    let led_ids: Vec<i32> = led.iter().map(|p| p.partition).collect();

    // The first answer carries every partition: none of their HWs was sent.
    let first = ask(session_request(2, positions.clone(), &[], 200)).await;
    assert_eq!(named(&first), led_ids);
    // Nothing changed: a request naming nothing waits and carries nothing.
    let quiet = ask(session_request(2, vec![], &[], 300)).await;
    assert_eq!(named(&quiet), Vec::<i32>::new());

    // An append to one partition wakes a waiting round, which carries only
    // that partition.
    let target = led_ids[0];
    let mut producer = connect(&brokers[&leader]).await;
    let waiting = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        produce_all(&mut producer, target, "session")
            .await
            .expect("acks=all");
        producer
    });
    let woken = ask(session_request(2, vec![], &[], 5_000)).await;
    assert_eq!(named(&woken), vec![target]);
    assert!(!woken.partitions[0].records.is_empty());
    let mut producer = waiting.await.unwrap();

    // A forgotten partition is no longer served to the session.
    let forget = ask(session_request(2, vec![], &[target], 300)).await;
    assert!(!named(&forget).contains(&target), "{:?}", named(&forget));
    produce_all(&mut producer, target, "forgotten")
        .await
        .expect("acks=all");
    let after = ask(session_request(2, vec![], &[], 300)).await;
    assert!(!named(&after).contains(&target), "{:?}", named(&after));

    // Version 1: every request starts afresh and is answered in full.
    let v1 = ask(session_request(1, positions.clone(), &[], 200)).await;
    assert_eq!(named(&v1), led_ids);
    let again = ask(session_request(1, positions.clone(), &[], 200)).await;
    assert_eq!(named(&again), led_ids);

    // A version this leader does not serve is refused with the fix.
    tx.send(session_request(
        rill_proto::versions::REPLICATION.current + 1,
        positions,
        &[],
        200,
    ))
    .await
    .expect("request sent");
    let refused = answers.message().await.expect_err("refused");
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition, "{refused}");
    assert!(
        refused.message().contains("replication protocol"),
        "{refused}"
    );

    for (_, b) in brokers {
        b.shutdown().await.expect("clean shutdown");
    }
    controller.shutdown().await.expect("controller stops");
}
