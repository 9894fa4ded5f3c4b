use std::collections::BTreeSet;
use std::time::Duration;

use super::*;
use crate::partition::Acks;

fn manager(dir: &std::path::Path) -> ReplicaManager {
    let settings = Settings {
        broker: BrokerInfo {
            id: 0,
            address: "localhost:9093".into(),
            kafka_address: "localhost:9092".into(),
            kafka_listeners: Default::default(),
            rack: None,
            fenced: false,
        },
        log_defaults: LogConfig::default(),
        auto_create_partitions: None,
        default_replication_factor: 1,
        max_request_bytes: 1 << 20,
    };
    let store = TopicStore::open(dir).expect("store");
    ReplicaManager::open(store, settings, Arc::new(Metrics::new())).expect("open")
}

fn create(name: &str, partitions: i32, rf: i32, config: &[(&str, &str)]) -> CreateTopic {
    CreateTopic {
        name: name.into(),
        partitions,
        replication_factor: rf,
        config: config
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

#[tokio::test]
async fn given_bad_create_requests_when_created_should_fail_with_the_reason() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let m = manager(tmp.path());
    let cases = [
        (create("a b", 1, 1, &[]), "invalid topic name"),
        (create("t", 0, 1, &[]), "between 1 and"),
        (create("t", 1, 3, &[]), "must be 1"),
        (
            create("t", 1, 1, &[("retention.mss", "1")]),
            "retention.mss",
        ),
        (create("t", 1, 1, &[("flush", "sometimes")]), "flush"),
    ];
    for (request, why) in cases {
        let err = m.create_topic(request).await.expect_err(why).to_string();
        assert!(err.contains(why), "{err}");
    }
    assert!(m.metadata(&[]).expect("metadata").is_empty());
    m.create_topic(create("t", 2, 0, &[]))
        .await
        .expect("create");
    let err = m
        .create_topic(create("t", 2, 1, &[]))
        .await
        .expect_err("dup");
    assert!(matches!(err, Error::TopicExists(_)), "{err}");
}

#[tokio::test]
async fn given_unknown_partition_when_produced_should_name_the_valid_range() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let m = manager(tmp.path());
    m.create_topic(create("t", 2, 1, &[]))
        .await
        .expect("create");
    let err = m
        .produce("t", 2, vec![], Acks::Leader, 0)
        .await
        .expect_err("no partition 2")
        .to_string();
    assert!(err.contains("partitions 0..2"), "{err}");
}

#[tokio::test]
async fn given_a_local_log_of_an_earlier_topic_with_the_same_name_when_hosted_then_it_is_deleted_not_reused()
 {
    let tmp = tempfile::tempdir().expect("tempdir");
    let m = manager(tmp.path());
    let hosted = BTreeSet::from([0]);
    let (old, new) = (
        "6f1e2d3c-0000-4000-8000-000000000001",
        "6f1e2d3c-0000-4000-8000-000000000002",
    );
    let p = m
        .host("t", old, 1, &hosted, &BTreeMap::new())
        .expect("host the first topic t")
        .remove(0);
    p.become_leader(0, 0, 0, vec![0], vec![0]).expect("leader");
    let batch = crate::log::batch::test_util::batch(&[b"old"]);
    p.produce(batch, Acks::Leader, Duration::from_secs(5))
        .await
        .expect("produce");
    assert_eq!(p.latest_offset().expect("leo"), 1);

    // The controller's metadata now says "t" is another topic (deleted
    // and created again while this broker was away): same name,
    // partition 0 again at leader epoch 0.
    let p = m
        .host("t", new, 1, &hosted, &BTreeMap::new())
        .expect("host the new topic t")
        .remove(0);
    assert_eq!(
        p.latest_offset().expect("leo"),
        0,
        "the new topic starts empty; the old log is not reused"
    );
    assert_eq!(m.local_topic_id("t").as_deref(), Some(new));
    let dir = tmp.path().join("topics/t/0");
    assert_eq!(
        crate::partition::store::partition_topic_id(&dir).expect("read"),
        Some(new.to_owned())
    );
    assert!(
        m.partition_of("t", old, 0).is_err(),
        "replica fetches for the old topic are refused"
    );
    m.partition_of("t", new, 0)
        .expect("the new topic is served");
}

#[test]
fn given_a_partition_directory_of_another_topic_id_on_disk_when_hosted_after_a_restart_then_it_is_deleted()
 {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("topics/t/0");
    crate::partition::store::write_partition_topic_id(&dir, "old-id").expect("stamp");
    std::fs::write(dir.join("00000000000000000000.log"), b"stale").expect("stale log");
    std::fs::create_dir_all(tmp.path().join("topics/t/3")).expect("mkdir");
    crate::partition::store::write_partition_topic_id(&tmp.path().join("topics/t/3"), "old-id")
        .expect("stamp");
    let m = manager(tmp.path());
    m.host("t", "new-id", 1, &BTreeSet::from([0]), &BTreeMap::new())
        .expect("host");
    assert_eq!(
        crate::partition::store::partition_topic_id(&dir).expect("read"),
        Some("new-id".to_owned())
    );
    assert!(
        !dir.join("00000000000000000000.log").exists()
            || std::fs::metadata(dir.join("00000000000000000000.log"))
                .expect("meta")
                .len()
                == 0,
        "the old log's data is gone"
    );
    assert!(
        !tmp.path().join("topics/t/3").exists(),
        "a partition of the earlier topic not hosted here is deleted too"
    );
}

#[tokio::test]
async fn given_a_standalone_topic_when_created_then_it_has_a_random_id_recorded_in_each_partition()
{
    let tmp = tempfile::tempdir().expect("tempdir");
    let m = manager(tmp.path());
    let view = m
        .create_topic(create("t", 2, 1, &[]))
        .await
        .expect("create");
    assert!(!view.id.is_nil());
    for p in 0..2 {
        let dir = tmp.path().join(format!("topics/t/{p}"));
        assert_eq!(
            crate::partition::store::partition_topic_id(&dir).expect("read"),
            Some(view.id.to_string())
        );
    }
    m.delete_topic("t").await.expect("delete");
    let again = m.create_topic(create("t", 1, 1, &[])).await.expect("again");
    assert_ne!(again.id, view.id, "a topic created again is a new topic");
    let err = m
        .delete_topic_with_id("t", Some(&view.id.to_string()))
        .await
        .expect_err("the old id names no topic");
    assert!(matches!(err, Error::UnknownTopic(_)), "{err}");
    drop(m);
    let m = manager(tmp.path());
    assert_eq!(
        m.metadata(&[]).expect("md")[0].id,
        again.id,
        "the id survives a restart"
    );
}

#[tokio::test]
async fn given_cluster_replicas_with_hws_when_the_broker_restarts_then_each_restarts_at_its_checkpointed_hw()
 {
    let tmp = tempfile::tempdir().expect("tempdir");
    let id = "6f1e2d3c-0000-4000-8000-000000000003";
    let both = BTreeSet::from([0, 1]);
    {
        let m = manager(tmp.path());
        let replicas = m.host("t", id, 2, &both, &BTreeMap::new()).expect("host");
        for (p, records) in replicas.iter().zip([3usize, 5]) {
            p.become_leader(0, 0, 0, vec![0], vec![0]).expect("leader");
            let values = vec![b"v".as_slice(); records];
            let batch = crate::log::batch::test_util::batch(&values);
            p.produce(batch, Acks::All, Duration::from_secs(5))
                .await
                .expect("produce");
            assert_eq!(p.high_watermark(), records as i64);
        }
        // Partition 0 takes two records its new follower never confirms:
        // they stay above its HW, and must after the restart too.
        let p = &replicas[0];
        p.become_leader(0, 1, 3, vec![0, 1], vec![0, 1])
            .expect("leader with a follower");
        let batch = crate::log::batch::test_util::batch(&[b"x", b"y"]);
        p.produce(batch, Acks::Leader, Duration::from_secs(5))
            .await
            .expect("produce");
        assert_eq!((p.high_watermark(), p.log.read().next_offset()), (3, 5));
        assert_eq!(m.flush_all(), 0);
    }
    // One file for the data directory, none per partition.
    assert!(
        tmp.path()
            .join(crate::partition::hw_checkpoint::FILE)
            .is_file()
    );
    assert!(
        !tmp.path()
            .join("topics/t/0")
            .join(crate::partition::hw_checkpoint::PARTITION_FILE)
            .exists()
    );
    {
        // Only partition 0 is assigned here for a while; partition 1's
        // directory stays, and so does its HW through a periodic write.
        let m = manager(tmp.path());
        let replicas = m
            .host("t", id, 2, &BTreeSet::from([0]), &BTreeMap::new())
            .expect("host");
        let p = &replicas[0];
        assert_eq!(
            (p.high_watermark(), p.log.read().next_offset()),
            (3, 5),
            "the checkpointed HW, not the log end"
        );
        std::fs::create_dir_all(tmp.path().join("topics/t/1")).expect("kept dir");
        let later = std::time::Instant::now() + crate::partition::hw_checkpoint::INTERVAL;
        m.write_high_watermarks(&replicas, later, false)
            .expect("periodic write");
    }
    let m = manager(tmp.path());
    let replicas = m.host("t", id, 2, &both, &BTreeMap::new()).expect("host");
    let hws: Vec<i64> = replicas.iter().map(|p| p.high_watermark()).collect();
    assert_eq!(hws, [3, 5]);
}

#[tokio::test]
async fn given_a_topic_deleted_while_the_broker_was_away_then_its_hw_entry_does_not_outlive_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (old, new) = (
        "6f1e2d3c-0000-4000-8000-000000000004",
        "6f1e2d3c-0000-4000-8000-000000000005",
    );
    let hosted = BTreeSet::from([0]);
    {
        let m = manager(tmp.path());
        let p = m
            .host("t", old, 1, &hosted, &BTreeMap::new())
            .expect("host")
            .remove(0);
        p.become_leader(0, 0, 0, vec![0], vec![0]).expect("leader");
        let batch = crate::log::batch::test_util::batch(&[b"a", b"b"]);
        p.produce(batch, Acks::All, Duration::from_secs(5))
            .await
            .expect("produce");
        assert_eq!(m.flush_all(), 0);
    }
    // The topic's directory went while the broker was down.
    std::fs::remove_dir_all(tmp.path().join("topics/t")).expect("remove");
    let m = manager(tmp.path());
    let p = m
        .host("t", new, 1, &hosted, &BTreeMap::new())
        .expect("host")
        .remove(0);
    assert_eq!(p.high_watermark(), 0);
    m.flush_all();
    let text = std::fs::read_to_string(tmp.path().join(crate::partition::hw_checkpoint::FILE))
        .expect("read");
    assert!(text.contains("\nt 0 0\n"), "{text}");
}
