use super::*;
use crate::log::batch::test_util::{batch, idempotent};

fn open(dir: &std::path::Path, flush: FlushPolicy) -> Arc<Partition> {
    let config = LogConfig {
        flush,
        ..LogConfig::default()
    };
    Partition::open_for_test(dir, config)
}

#[tokio::test]
async fn given_fsync_flush_when_produced_with_acks_leader_should_be_durable_and_visible() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let p = open(tmp.path(), FlushPolicy::Fsync);
    let r = p
        .produce(batch(&[b"a", b"b"]), Acks::Leader, Duration::from_secs(5))
        .await
        .expect("produce");
    assert_eq!(r.base_offset, 0);
    assert_eq!(p.high_watermark(), 2);
    assert_eq!(p.log.read().flushed_offset(), 2);
}

#[tokio::test]
async fn given_an_idempotent_batch_with_an_old_create_time_in_an_old_segment_when_retried_after_a_rebuild_should_not_be_appended_twice()
 {
    // The producer's clock is years behind (CreateTime 1000 ms after
    // the epoch). Its batch sits in a segment that is neither of the
    // last two; the producer state is then rebuilt from the log (as
    // after a restart or a new leader) and the batch is retried.
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        segment_bytes: 200,
        ..LogConfig::default()
    };
    let p = Partition::open_for_test(tmp.path(), config);
    p.serve_alone();
    let wait = Duration::from_secs(5);
    let first = idempotent(&[b"once"], 7, 0, 0, 1000);
    let r = p.produce(first.clone(), Acks::Leader, wait).await.unwrap();
    assert_eq!(r.base_offset, 0);
    for i in 0..4 {
        let v = format!("filler-{i}-{}", "x".repeat(150));
        p.produce(batch(&[v.as_bytes()]), Acks::Leader, wait)
            .await
            .unwrap();
    }
    assert!(p.log.read().segment_count() >= 4);
    p.reset_producers();
    let end = p.log.read().next_offset();
    let retry = p.produce(first, Acks::Leader, wait).await.unwrap();
    assert_eq!(retry.base_offset, 0, "answered with the original offset");
    assert_eq!(p.log.read().next_offset(), end, "nothing appended");
}

/// Writes zeros into `dir/filler` until the file system refuses.
fn fill_disk(dir: &std::path::Path) -> std::path::PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).expect("filler");
    let block = [0u8; 4096];
    while f.write_all(&block).and_then(|()| f.flush()).is_ok() {}
    path
}

#[tokio::test]
async fn given_an_idempotent_append_failing_on_a_full_disk_when_the_next_pipelined_batch_arrives_should_refuse_it_as_a_storage_error_not_out_of_order()
 {
    // A client pipelines requests: the batch at sequence 1 fails to
    // append (disk full) while the one at sequence 2 is already on its
    // way. Answered OUT_OF_ORDER_SEQUENCE_NUMBER, the second makes
    // librdkafka bump its producer epoch and re-send batches that are
    // already stored in other partitions (written twice); it must get
    // the retriable storage error instead, and both retries must then
    // land in order.
    let tmp = tempfile::tempdir().expect("tempdir");
    let _fs = crate::log::tests::Tmpfs::mount(tmp.path(), "256k");
    let dir = tmp.path().join("t-0");
    std::fs::create_dir(&dir).expect("partition dir");
    let p = open(&dir, FlushPolicy::Replicated);
    p.serve_alone();
    let wait = Duration::from_secs(5);
    let ts = 1_700_000_000_000;
    let big = vec![b'x'; 8000];
    let first = idempotent(&[b"s0"], 7, 0, 0, ts);
    let second = idempotent(&[&big], 7, 0, 1, ts);
    let third = idempotent(&[b"s2"], 7, 0, 2, ts);
    assert_eq!(
        p.produce(first, Acks::Leader, wait)
            .await
            .unwrap()
            .base_offset,
        0
    );

    let filler = fill_disk(tmp.path());
    let err = p
        .produce(second.clone(), Acks::Leader, wait)
        .await
        .expect_err("disk full");
    assert!(err.is_disk_full(), "{err}");
    let err = p
        .produce(third.clone(), Acks::Leader, wait)
        .await
        .expect_err("behind a failed batch");
    assert!(
        !matches!(
            err,
            Error::Sequence {
                source: producers::SequenceError::OutOfOrder { .. },
                ..
            }
        ),
        "{err}"
    );
    let (code, _) = crate::kafka::errors::code_and_message(&err);
    assert_eq!(
        code,
        kafka_protocol::ResponseError::KafkaStorageError.code(),
        "{err}"
    );
    assert_eq!(p.log.read().next_offset(), 1, "nothing appended");

    // Space again: the client retries in order with the same sequences.
    std::fs::remove_file(filler).expect("free the disk");
    let r = p.produce(second.clone(), Acks::Leader, wait).await.unwrap();
    assert_eq!(r.base_offset, 1);
    let r = p.produce(third, Acks::Leader, wait).await.unwrap();
    assert_eq!(r.base_offset, 2);
    let r = p.produce(second, Acks::Leader, wait).await.unwrap();
    assert_eq!(r.base_offset, 1, "a later retry is a duplicate");
    assert_eq!(p.log.read().next_offset(), 3);
}

#[tokio::test]
async fn given_acks_none_when_produced_should_return_no_offset_but_append() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let p = open(tmp.path(), FlushPolicy::Replicated);
    let r = p
        .produce(batch(&[b"a"]), Acks::None, Duration::from_secs(5))
        .await
        .expect("produce");
    assert_eq!(r.base_offset, -1);
    assert_eq!(r.log_end_offset, 1);
    assert_eq!(p.high_watermark(), 1);
}

#[tokio::test]
async fn given_a_client_control_batch_when_produced_should_be_refused_and_nothing_appended() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let p = open(tmp.path(), FlushPolicy::Replicated);
    let marker =
        rill_client::batch::marker_batch(7, 0, rill_client::batch::ControlType::Commit, 0, 1);
    let mut after_data = bytes::BytesMut::from(&batch(&[b"a"])[..]);
    after_data.extend_from_slice(&marker);
    for data in [marker.clone(), after_data.freeze()] {
        let r = p.produce(data, Acks::All, Duration::from_secs(5)).await;
        assert!(matches!(r, Err(Error::InvalidRequest(_))), "{r:?}");
    }
    assert_eq!(p.log.read().next_offset(), 0);
}

#[tokio::test]
async fn given_a_batch_or_marker_with_a_wrong_crc_when_produced_should_be_refused_by_the_log() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let p = open(tmp.path(), FlushPolicy::Replicated);
    let marker =
        rill_client::batch::marker_batch(7, 0, rill_client::batch::ControlType::Commit, 0, 1);
    for good in [batch(&[b"a"]), marker.to_vec()] {
        let mut data = bytes::BytesMut::from(&good[..]);
        let last = data.len() - 1;
        data[last] ^= 0xff;
        let r = p
            .produce(data.freeze(), Acks::All, Duration::from_secs(5))
            .await;
        assert!(r.is_err(), "{r:?}");
        assert!(!matches!(r, Err(Error::InvalidRequest(_))), "{r:?}");
    }
    assert_eq!(p.log.read().next_offset(), 0);
}

#[tokio::test]
async fn given_deleted_partition_when_fetch_is_waiting_should_fail_promptly() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let p = open(tmp.path(), FlushPolicy::Replicated);
    let waiter = {
        let p = Arc::clone(&p);
        tokio::spawn(async move { p.fetch(0, 1024, 1, Duration::from_secs(60)).await })
    };
    tokio::task::yield_now().await;
    p.mark_deleted();
    let r = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("woken")
        .expect("joined");
    assert!(matches!(r, Err(Error::TopicDeleted(_))), "{r:?}");
}

#[tokio::test]
async fn given_a_clean_partition_past_its_flush_interval_then_a_due_check_restarts_its_interval() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let p = open(tmp.path(), FlushPolicy::Replicated);
    p.serve_alone();
    p.produce(batch(&[b"a"]), Acks::Leader, Duration::from_secs(5))
        .await
        .expect("produce");
    let interval = p.config().flush_interval;
    let t1 = Instant::now() + interval;
    assert!(p.flush_if_due(t1).await.unwrap(), "unflushed data");
    // Due again but clean: the checks run once, then wait an interval.
    let t2 = t1 + interval;
    assert!(!p.flush_if_due(t2).await.unwrap());
    assert_eq!(*p.last_flush.lock(), t2, "the clock restarts");
    let t3 = t2 + interval / 2;
    assert!(!p.flush_if_due(t3).await.unwrap());
    assert_eq!(*p.last_flush.lock(), t2, "not due yet");
}

#[tokio::test]
async fn given_a_new_leader_epoch_in_the_batched_flush_then_its_file_is_written_unsynced_and_the_recovery_point_waits_for_the_next_sync()
 {
    let tmp = tempfile::tempdir().expect("tempdir");
    let p = open(tmp.path(), FlushPolicy::Replicated);
    p.become_leader(0, 3, 0, vec![0], vec![0]).unwrap();
    p.produce(batch(&[b"a", b"b"]), Acks::Leader, Duration::from_secs(5))
        .await
        .expect("produce");
    let on_disk = || {
        crate::replication::epochs::EpochCache::open(tmp.path())
            .unwrap()
            .entries()
            .to_vec()
    };
    let recovery_point =
        || crate::log::number_file::read(&tmp.path().join("recovery-point")).unwrap();
    let t0 = Instant::now();
    let handle = p.unflushed_handle().expect("unflushed appends");
    p.synced_with_filesystem(&handle, t0).unwrap();
    assert_eq!(on_disk(), &[(3, 0)], "written, without an fsync");
    assert!(p.epochs.lock().is_unsaved(), "not durable until a sync");
    assert_eq!(recovery_point(), None, "waits for the epoch to be durable");
    // The next round's sync covered the file: the recovery point moves.
    p.produce(batch(&[b"c"]), Acks::Leader, Duration::from_secs(5))
        .await
        .expect("produce");
    let handle = p.unflushed_handle().expect("unflushed appends");
    p.synced_with_filesystem(&handle, t0 + BATCHED_RECOVERY_POINT_INTERVAL)
        .unwrap();
    assert!(!p.epochs.lock().is_unsaved());
    assert_eq!(recovery_point(), Some(3));
}
