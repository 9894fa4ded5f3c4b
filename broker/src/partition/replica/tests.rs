//! Two replicas of one partition wired by direct calls (no sockets):
//! acks=all waits for the follower, the HW follows the ISR, a new leader
//! makes a diverged old leader truncate, min.insync.replicas refuses.

use std::sync::Arc;

use super::*;
use crate::log::batch::test_util::batch;
use crate::log::{LogConfig, PartitionLog};
use crate::metrics::Metrics;
use crate::partition::Acks;

const WAIT: Duration = Duration::from_secs(10);

fn replica(dir: &std::path::Path, min_isr: u32) -> Arc<Partition> {
    let config = LogConfig {
        min_insync_replicas: min_isr,
        ..LogConfig::default()
    };
    Partition::open_for_test(dir, config)
}

/// One follower fetch round trip; returns whether data moved.
async fn pump(leader: &Partition, follower: &Partition, follower_id: i32) -> bool {
    let (offset, last_epoch, epoch) = follower.fetch_position().expect("following");
    match leader
        .replica_fetch(follower_id, 1, offset, last_epoch, epoch, 1 << 20)
        .unwrap()
    {
        ReplicaRead::Data {
            records,
            high_watermark,
            ..
        } => {
            let moved = !records.is_empty();
            follower
                .append_as_follower(records, high_watermark)
                .await
                .unwrap();
            moved
        }
        ReplicaRead::Diverging {
            epoch,
            end_offset,
            log_start_offset,
            ..
        } => {
            follower
                .truncate_diverging(epoch, end_offset, log_start_offset)
                .unwrap();
            true
        }
        other => panic!("unexpected {other:?}"),
    }
}

/// Broker 0 leads epoch 3 with broker 1 following (min.insync.replicas
/// 1); both hold "a" and "b" at offsets 0 and 1.
async fn leader_epoch_3_with_a_follower(
    d0: &std::path::Path,
    d1: &std::path::Path,
) -> (Arc<Partition>, Arc<Partition>) {
    let (b0, b1) = (replica(d0, 1), replica(d1, 1));
    b0.become_leader(0, 3, 0, vec![0, 1], vec![0, 1]).unwrap();
    assert!(b1.become_follower(0, 3));
    b0.produce(batch(&[b"a", b"b"]), Acks::Leader, WAIT)
        .await
        .unwrap();
    assert!(pump(&b0, &b1, 1).await);
    (b0, b1)
}

fn values(p: &Partition) -> Vec<u8> {
    let log = p.log.read();
    log.read(0, 1 << 20, log.next_offset())
        .unwrap()
        .data
        .to_vec()
}

#[tokio::test]
async fn given_two_replicas_then_acks_all_waits_for_follower_and_failover_truncates_divergence() {
    let (d0, d1) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (b0, b1) = (replica(d0.path(), 2), replica(d1.path(), 2));
    b0.become_leader(0, 1, 0, vec![0, 1], vec![0, 1]).unwrap();
    assert!(b1.become_follower(0, 1));

    // acks=all completes only after the follower fetched past it.
    let produce = {
        let b0 = Arc::clone(&b0);
        tokio::spawn(async move { b0.produce(batch(&[b"a", b"b"]), Acks::All, WAIT).await })
    };
    while b0.log.read().next_offset() < 2 {
        tokio::task::yield_now().await;
    }
    assert!(!produce.is_finished());
    assert_eq!(b0.high_watermark(), 0);
    assert!(pump(&b0, &b1, 1).await); // follower copies 0..2
    assert!(!pump(&b0, &b1, 1).await); // its next fetch confirms them
    let r = tokio::time::timeout(WAIT, produce)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(r.base_offset, 0);
    assert_eq!(b0.high_watermark(), 2);
    assert_eq!(values(&b0), values(&b1));

    // Consumers are refused by the follower.
    assert!(matches!(
        b1.fetch(0, 100, 0, Duration::ZERO).await,
        Err(Error::NotLeader {
            leader: Some(0),
            ..
        })
    ));

    // b0 appends more that never reaches b1 (acks=1), then loses
    // leadership: b1 leads epoch 2 and writes its own data.
    b0.produce(batch(&[b"lost-1", b"lost-2"]), Acks::Leader, WAIT)
        .await
        .unwrap();
    b1.become_leader(1, 2, 1, vec![0, 1], vec![0, 1]).unwrap();
    assert!(b0.become_follower(1, 2));
    let ack = {
        let b1 = Arc::clone(&b1);
        tokio::spawn(async move { b1.produce(batch(&[b"new"]), Acks::All, WAIT).await })
    };
    while b1.log.read().next_offset() < 3 {
        tokio::task::yield_now().await;
    }
    // First fetch: b0's last epoch (1) ends at 2 on the new leader, but
    // b0 has 4 records: it truncates to 2, then copies the new record.
    assert!(pump(&b1, &b0, 0).await);
    assert_eq!(b0.log.read().next_offset(), 2);
    assert!(pump(&b1, &b0, 0).await);
    assert!(!pump(&b1, &b0, 0).await);
    let r = tokio::time::timeout(WAIT, ack)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(r.base_offset, 2);
    assert_eq!(
        values(&b0),
        values(&b1),
        "replicas byte-identical after truncation"
    );
    assert_eq!(b0.epochs.lock().entries(), b1.epochs.lock().entries());
}

#[tokio::test]
async fn given_an_empty_replica_that_led_an_older_epoch_when_it_follows_then_only_its_epochs_go() {
    // Broker 1 led epoch 1 of an empty partition; leadership moved to
    // broker 0 at epoch 2 before anything was written.
    let (d0, d1) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (b0, b1) = (replica(d0.path(), 1), replica(d1.path(), 1));
    b1.become_leader(1, 1, 0, vec![0, 1], vec![0, 1]).unwrap();
    b0.become_leader(0, 2, 0, vec![0, 1], vec![0, 1]).unwrap();
    assert!(b1.become_follower(0, 2));
    let (_, last_epoch, _) = b1.fetch_position().unwrap();
    assert_eq!(last_epoch, 1, "the follower still names the epoch it led");

    // The leader knows no epoch 1: the follower diverged with nothing in
    // its log. It drops its epochs without rewriting the log's files.
    assert!(pump(&b0, &b1, 1).await);
    assert!(b1.epochs.lock().entries().is_empty());
    assert!(
        !d1.path().join("log-start-offset").exists(),
        "an empty log starting where the leader's does is not reset"
    );
    assert_eq!(b1.log.read().next_offset(), 0);

    // Replication then goes on as usual.
    b0.produce(batch(&[b"a"]), Acks::Leader, WAIT)
        .await
        .unwrap();
    assert!(pump(&b0, &b1, 1).await);
    assert_eq!(values(&b0), values(&b1));
    assert_eq!(b0.epochs.lock().entries(), b1.epochs.lock().entries());
}

#[tokio::test]
async fn given_a_diverging_answer_that_arrives_after_the_follower_became_leader_then_its_log_stays()
{
    let (d0, d1) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (_b0, b1) = leader_epoch_3_with_a_follower(d0.path(), d1.path()).await;
    let before = values(&b1);
    b1.become_leader(1, 4, 0, vec![0, 1], vec![0, 1]).unwrap();
    // The old leader's answer to a fetch from before: no common epoch.
    b1.truncate_diverging(-1, -1, 0).unwrap();
    assert_eq!(b1.log.read().next_offset(), 2);
    assert_eq!(values(&b1), before);
}

#[tokio::test]
async fn given_isr_below_min_insync_then_acks_all_refused_and_nothing_written() {
    let d = tempfile::tempdir().unwrap();
    let p = replica(d.path(), 2);
    p.become_leader(0, 1, 0, vec![0, 1], vec![0]).unwrap();
    let err = p
        .produce(batch(&[b"x"]), Acks::All, WAIT)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::NotEnoughReplicas { isr: 1, min: 2, .. }),
        "{err}"
    );
    assert_eq!(p.log.read().next_offset(), 0);
    // acks=1 still works, and with ISR = [leader] the HW is its LEO.
    p.produce(batch(&[b"x"]), Acks::Leader, WAIT).await.unwrap();
    assert_eq!(p.high_watermark(), 1);
}

#[tokio::test]
async fn given_isr_shrinking_below_min_insync_while_waiting_then_acks_all_refused_after_append() {
    // The write is appended with ISR [0, 1] (min 2). Follower 1 stops
    // fetching; the controller commits the shrink to [0]. The HW then
    // reaches the write with the leader alone: that is one replica, not
    // the two acks=all promised, so it must not be acknowledged.
    let d = tempfile::tempdir().unwrap();
    let p = replica(d.path(), 2);
    p.become_leader(0, 1, 0, vec![0, 1], vec![0, 1]).unwrap();
    let waiter = {
        let p = Arc::clone(&p);
        tokio::spawn(async move { p.produce(batch(&[b"x"]), Acks::All, WAIT).await })
    };
    while p.log.read().next_offset() < 1 {
        tokio::task::yield_now().await;
    }
    p.isr_change_done(1, Some((1, vec![0, 1], vec![0])));
    assert_eq!(p.high_watermark(), 1, "the HW follows the shrunk ISR");
    let r = tokio::time::timeout(WAIT, waiter).await.unwrap().unwrap();
    assert!(
        matches!(
            r,
            Err(Error::NotEnoughReplicasAfterAppend {
                isr: 1,
                min: 2,
                base_offset: 0,
                ..
            })
        ),
        "{r:?}"
    );
}

#[tokio::test]
async fn given_a_replica_restarted_with_records_above_its_hw_then_it_restarts_at_its_hw() {
    // The leader appended "x" with acks=1; no follower has it, so the
    // HW is 0. After a restart the replica must not start at its log
    // end: as the next leader it would expose "x" to consumers before
    // any follower confirmed it.
    let d = tempfile::tempdir().unwrap();
    {
        let p = replica(d.path(), 1);
        p.become_leader(0, 1, 0, vec![0, 1], vec![0, 1]).unwrap();
        p.produce(batch(&[b"x"]), Acks::Leader, WAIT).await.unwrap();
        assert_eq!((p.high_watermark(), p.log.read().next_offset()), (0, 1));
        p.flush_blocking().unwrap();
    }
    let p = replica(d.path(), 1);
    assert_eq!(p.log.read().next_offset(), 1);
    assert_eq!(p.high_watermark(), 0, "restarted at the checkpointed HW");
    p.become_leader(0, 2, 1, vec![0, 1], vec![0, 1]).unwrap();
    let read = p
        .read_for_client(
            0,
            1 << 20,
            true,
            -1,
            -1,
            crate::partition::Isolation::ReadUncommitted,
        )
        .unwrap();
    assert!(read.data.is_empty(), "nothing above the HW is exposed");
    // A standalone broker is its own ISR: the HW is its log end.
    let alone = replica(d.path(), 1);
    alone.serve_alone();
    assert_eq!(alone.high_watermark(), 1);
}

#[tokio::test]
async fn given_a_crash_before_the_epoch_cache_was_saved_then_reopening_rebuilds_it_from_the_log() {
    let (d0, d1) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (b0, b1) = leader_epoch_3_with_a_follower(d0.path(), d1.path()).await;
    b0.become_leader(0, 5, 1, vec![0, 1], vec![0, 1]).unwrap();
    assert!(b1.become_follower(0, 5));
    b0.produce(batch(&[b"c"]), Acks::Leader, WAIT)
        .await
        .unwrap();
    assert!(pump(&b0, &b1, 1).await);
    assert_eq!(b1.epochs.lock().entries(), &[(3, 0), (5, 2)]);
    drop(b1);
    // A follower's new epochs wait for its next flush: a crash before it
    // leaves no cache file.
    assert!(!d1.path().join(crate::replication::epochs::FILE).exists());
    let b1 = replica(d1.path(), 1);
    assert_eq!(b1.epochs.lock().entries(), &[(3, 0), (5, 2)]);
}

#[tokio::test]
async fn given_a_new_leader_epoch_then_it_is_saved_before_the_recovery_point_passes_it_and_rebuilt_after_a_crash()
 {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(crate::replication::epochs::FILE);
    let on_disk = || {
        crate::replication::epochs::EpochCache::open(dir.path())
            .unwrap()
            .entries()
            .to_vec()
    };
    let b0 = replica(dir.path(), 1);
    b0.become_leader(0, 3, 0, vec![0], vec![0]).unwrap();
    assert!(!file.exists(), "taking over writes nothing");
    b0.produce(batch(&[b"a", b"b"]), Acks::Leader, WAIT)
        .await
        .unwrap();
    // A crash before any flush: the batches carry the epoch.
    drop(b0);
    let b0 = replica(dir.path(), 1);
    assert_eq!(b0.epochs.lock().entries(), &[(3, 0)]);

    b0.become_leader(0, 4, 1, vec![0], vec![0]).unwrap();
    b0.produce(batch(&[b"c"]), Acks::Leader, WAIT)
        .await
        .unwrap();
    assert!(b0.epochs.lock().is_unsaved());
    let later = Instant::now() + Duration::from_secs(3600);
    assert!(b0.flush_if_due(later).await.unwrap(), "unflushed data");
    assert!(!b0.epochs.lock().is_unsaved());
    assert_eq!(on_disk(), &[(3, 0), (4, 2)]);
    let recovery_point = crate::log::number_file::read(&dir.path().join("recovery-point"))
        .unwrap()
        .unwrap();
    assert_eq!(
        recovery_point, 3,
        "past the epoch-4 batch, which the file names"
    );
}

/// Makes every save of the epoch cache in `dir` fail, as on a full disk:
/// its temporary file's name is taken by a directory, which is returned
/// (removing it gives the disk room again).
fn block_epoch_saves(dir: &std::path::Path) -> std::path::PathBuf {
    let tmp = dir
        .join(crate::replication::epochs::FILE)
        .with_extension(".tmp");
    std::fs::create_dir(&tmp).unwrap();
    let mut probe = crate::replication::epochs::EpochCache::open(dir).unwrap();
    probe.assign_unsaved(i32::MAX, i64::MAX);
    assert!(probe.save_if_unsaved().is_err(), "saves must fail");
    tmp
}

#[tokio::test]
async fn given_an_epoch_cache_that_cannot_be_saved_then_follower_truncations_and_appends_keep_the_replica_state_whole()
 {
    let (d0, d1) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (b0, b1) = leader_epoch_3_with_a_follower(d0.path(), d1.path()).await;
    assert!(!pump(&b0, &b1, 1).await);
    assert_eq!(b0.high_watermark(), 2);

    // b0 leads epoch 5 and appends what never reaches b1; then b1 takes
    // over with epoch 6 and b0's disk is full for the epoch cache.
    b0.become_leader(0, 5, 1, vec![0, 1], vec![0, 1]).unwrap();
    b0.produce(batch(&[b"c"]), Acks::Leader, WAIT)
        .await
        .unwrap();
    let blocker = block_epoch_saves(d0.path());
    b1.become_leader(1, 6, 2, vec![0, 1], vec![0, 1]).unwrap();
    assert!(b0.become_follower(1, 6));
    b1.produce(batch(&[b"d"]), Acks::Leader, WAIT)
        .await
        .unwrap();

    // The truncation completes: log end, HW and epochs all follow it.
    assert!(pump(&b1, &b0, 0).await);
    assert_eq!(b0.log.read().next_offset(), 2);
    assert_eq!(*b0.log_end.borrow(), 2);
    assert!(b0.high_watermark() <= 2);
    assert_eq!(b0.epochs.lock().entries(), &[(3, 0)]);
    // And the epoch-6 batch appends with its epoch recorded.
    assert!(pump(&b1, &b0, 0).await);
    assert_eq!(b0.log.read().next_offset(), 3);
    assert_eq!(*b0.log_end.borrow(), 3);
    assert_eq!(b0.epochs.lock().entries(), &[(3, 0), (6, 2)]);
    assert_eq!(values(&b0), values(&b1));

    // Once the disk has room, the next flush saves the cache.
    std::fs::remove_dir(&blocker).unwrap();
    let later = Instant::now() + Duration::from_secs(3600);
    b0.flush_if_due(later).await.unwrap();
    assert_eq!(
        crate::replication::epochs::EpochCache::open(d0.path())
            .unwrap()
            .entries(),
        &[(3, 0), (6, 2)]
    );
}

#[tokio::test]
async fn given_a_follower_whose_fsync_fails_then_it_goes_offline_and_stops_fetching() {
    let (d0, d1) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let fsync = LogConfig {
        flush: FlushPolicy::Fsync,
        ..LogConfig::default()
    };
    let open = |d: &std::path::Path| Partition::open_for_test(d, fsync.clone());
    let (b0, b1) = (open(d0.path()), open(d1.path()));
    b0.become_leader(0, 1, 0, vec![0, 1], vec![0, 1]).unwrap();
    assert!(b1.become_follower(0, 1));
    b0.produce(batch(&[b"a"]), Acks::Leader, WAIT)
        .await
        .unwrap();
    b1.log
        .read()
        .fail_next_fsync
        .store(true, std::sync::atomic::Ordering::Release);
    let (offset, last_epoch, epoch) = b1.fetch_position().unwrap();
    let ReplicaRead::Data {
        records,
        high_watermark,
        ..
    } = b0
        .replica_fetch(1, 1, offset, last_epoch, epoch, 1 << 20)
        .unwrap()
    else {
        panic!("data expected")
    };
    let err = b1
        .append_as_follower(records, high_watermark)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Log { .. }), "{err}");
    assert!(
        matches!(b1.check_state(), Err(Error::PartitionOffline { .. })),
        "the page cache may have dropped what it held: the replica must stop serving"
    );
    assert_eq!(
        b1.fetch_position(),
        None,
        "an offline follower stops fetching"
    );
    assert!(
        b1.append_as_follower(Bytes::new(), 1).await.is_err(),
        "and appends nothing more"
    );
    assert_eq!(
        b1.offline_leadership(),
        None,
        "a follower has nothing to hand over"
    );
    // The leader's fsync fails too: it must hand its leadership over.
    assert_eq!(b0.offline_leadership(), None);
    b0.log
        .read()
        .fail_next_fsync
        .store(true, std::sync::atomic::Ordering::Release);
    assert!(
        b0.produce(batch(&[b"b"]), Acks::Leader, WAIT)
            .await
            .is_err()
    );
    assert_eq!(b0.offline_leadership(), Some(1));
}

#[tokio::test]
async fn given_leadership_lost_while_waiting_then_write_not_acknowledged() {
    let d = tempfile::tempdir().unwrap();
    let p = replica(d.path(), 1);
    p.become_leader(0, 1, 0, vec![0, 1], vec![0, 1]).unwrap();
    let waiter = {
        let p = Arc::clone(&p);
        tokio::spawn(async move { p.produce(batch(&[b"x"]), Acks::All, WAIT).await })
    };
    while p.log.read().next_offset() < 1 {
        tokio::task::yield_now().await;
    }
    p.become_follower(1, 2);
    let r = tokio::time::timeout(WAIT, waiter).await.unwrap().unwrap();
    assert!(matches!(r, Err(Error::LeadershipLost { .. })), "{r:?}");
}

#[tokio::test]
async fn given_deposed_leader_waiting_when_its_log_is_overwritten_past_the_write_then_not_acknowledged()
 {
    // A deposed leader (say SIGSTOPped past its lease, then resumed)
    // appended a write in its old epoch and waits for acks=all. Before
    // the waiter runs again, it becomes follower, truncates that write
    // and copies the new leader's records and HW past its offset. The
    // HW now covers the offset, but it holds another record.
    let (d0, d1) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (b0, b1) = (replica(d0.path(), 1), replica(d1.path(), 1));
    b0.become_leader(0, 1, 0, vec![0, 1], vec![0, 1]).unwrap();
    assert!(b1.become_follower(0, 1));
    let zombie = {
        let b0 = Arc::clone(&b0);
        tokio::spawn(async move { b0.produce(batch(&[b"zombie"]), Acks::All, WAIT).await })
    };
    while b0.log.read().next_offset() < 1 {
        tokio::task::yield_now().await;
    }
    b1.become_leader(1, 2, 1, vec![0, 1], vec![0, 1]).unwrap();
    b1.produce(batch(&[b"new-0", b"new-1"]), Acks::Leader, WAIT)
        .await
        .unwrap();
    // No yield from here on: the waiter sees only the final state.
    assert!(b0.become_follower(1, 2));
    while b0.high_watermark() < 2 {
        pump(&b1, &b0, 0).await;
    }
    assert_eq!(values(&b0), values(&b1), "the zombie write was truncated");
    let r = tokio::time::timeout(WAIT, zombie).await.unwrap().unwrap();
    assert!(
        matches!(r, Err(Error::LeadershipLost { .. })),
        "a write truncated away must not be acknowledged: {r:?}"
    );
}

#[tokio::test]
async fn given_stale_or_future_follower_epoch_then_fetch_refused() {
    let d = tempfile::tempdir().unwrap();
    let p = replica(d.path(), 1);
    p.become_leader(0, 5, 0, vec![0, 1], vec![0, 1]).unwrap();
    assert_eq!(
        p.replica_fetch(1, 1, 0, -1, 4, 100).unwrap(),
        ReplicaRead::FencedEpoch
    );
    assert_eq!(
        p.replica_fetch(1, 1, 0, -1, 6, 100).unwrap(),
        ReplicaRead::UnknownEpoch
    );
    p.become_follower(1, 6);
    assert_eq!(
        p.replica_fetch(1, 1, 0, -1, 6, 100).unwrap(),
        ReplicaRead::NotLeader
    );
}

#[tokio::test]
async fn given_a_follower_outside_the_isr_when_it_fetches_then_its_partition_is_due_for_an_isr_check_once_until_checked()
 {
    let (d0, d1) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let due = Arc::new(crate::partition::IsrDue::default());
    let log = PartitionLog::open(d0.path(), LogConfig::default()).unwrap();
    let b0 = Arc::new(
        Partition::new(
            "t".into(),
            0,
            log,
            0,
            Arc::new(Metrics::new()),
            Arc::clone(&due),
        )
        .unwrap(),
    );
    let b1 = replica(d1.path(), 1);
    let marked = || vec![(Arc::<str>::from("t"), 0)];

    // Leadership asks for a check.
    b0.become_leader(0, 3, 0, vec![0, 1], vec![0]).unwrap();
    assert_eq!(due.take(), marked());
    b0.isr_check_started();

    // The follower outside the ISR fetches twice: marked once.
    assert!(b1.become_follower(0, 3));
    b0.produce(batch(&[b"a"]), Acks::Leader, WAIT)
        .await
        .unwrap();
    assert!(pump(&b0, &b1, 1).await);
    assert!(!pump(&b0, &b1, 1).await);
    assert_eq!(due.take(), marked());

    // The check finds it caught up; the controller's answer asks for the
    // next check.
    b0.isr_check_started();
    let proposal = b0
        .propose_isr(Duration::from_secs(10))
        .expect("an expansion");
    assert_eq!(proposal.isr, vec![0, 1]);
    assert!(
        due.take().is_empty(),
        "nothing new while the change is pending"
    );
    b0.isr_change_done(3, Some((1, vec![0, 1], vec![0, 1])));
    assert_eq!(due.take(), marked());
    b0.isr_check_started();

    // A follower in the ISR fetching marks nothing.
    assert!(!pump(&b0, &b1, 1).await);
    assert!(due.take().is_empty());
}
