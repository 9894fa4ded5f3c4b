//! Contract of [`PartitionLog`] as a whole: appends across segment rolls,
//! reads from any offset, timestamp lookup, truncation, retention,
//! compaction, reopening, and disk-full behaviour on a real (tmpfs) disk.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use bytes::Bytes;
use kafka_protocol::records::Compression;

use super::batch::test_util::{Rec, decode, encode};
use super::*;

fn config(segment_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        index_interval_bytes: 256,
        ..LogConfig::default()
    }
}

fn append_values(log: &mut PartitionLog, values: &[&[u8]], ts: i64) -> AppendInfo {
    let recs: Vec<Rec<'_>> = values.iter().map(|v| (None, *v, ts)).collect();
    let b = encode(&recs, Compression::None);
    log.append(&b, 3).unwrap()
}

fn read_all(log: &PartitionLog) -> Vec<(i64, Option<Bytes>, Bytes, i64)> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    loop {
        let r = log.read(offset, 4096, i64::MAX).unwrap();
        if r.data.is_empty() {
            return out;
        }
        out.extend(decode(&r.data).into_iter().filter(|rec| rec.0 >= offset));
        offset = r.next_offset;
    }
}

#[test]
fn given_appends_across_rolls_then_offsets_dense_and_every_offset_readable() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(600)).unwrap();
    let mut expected = Vec::new();
    for i in 0..50 {
        let v1 = format!("value-{i}-a");
        let v2 = format!("value-{i}-b-{}", "x".repeat(i % 7 * 20));
        let info = append_values(&mut log, &[v1.as_bytes(), v2.as_bytes()], 1000 + i as i64);
        assert_eq!(info.base_offset, 2 * i as i64);
        assert_eq!(info.next_offset, 2 * i as i64 + 2);
        expected.push(v1);
        expected.push(v2);
    }
    assert!(
        log.segment_count() > 5,
        "small segment.bytes must roll: {}",
        log.segment_count()
    );
    // Sealed segments look offsets up in their index files, not the heap.
    let active = log.active_segment_base();
    assert!(
        log.segments
            .iter()
            .all(|(base, s)| s.index_saved_only() == (*base != active))
    );
    let all = read_all(&log);
    assert_eq!(all.len(), 100);
    for (i, rec) in all.iter().enumerate() {
        assert_eq!(rec.0, i as i64);
        assert_eq!(rec.2, expected[i].as_bytes());
    }
    // Every single offset starts a read at the batch holding it, with the
    // leader epoch stamped.
    for offset in 0..100 {
        let r = log.read(offset, 1, i64::MAX).unwrap();
        let recs = decode(&r.data);
        assert!(recs.iter().any(|rec| rec.0 == offset), "offset {offset}");
        let header = batch::BatchHeader::parse(&r.data).unwrap();
        assert_eq!(header.partition_leader_epoch, 3);
    }
    // Reopen: same content, appends continue.
    drop(log);
    let mut log = PartitionLog::open(dir.path(), config(600)).unwrap();
    assert_eq!(log.next_offset(), 100);
    assert_eq!(read_all(&log), all);
    assert_eq!(append_values(&mut log, &[b"after"], 5).base_offset, 100);
}

#[test]
fn given_offsets_outside_log_then_out_of_range_and_end_reads_empty() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(1 << 20)).unwrap();
    append_values(&mut log, &[b"a", b"b"], 1);
    assert!(log.read(2, 100, i64::MAX).unwrap().data.is_empty());
    assert!(matches!(
        log.read(3, 100, i64::MAX),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert!(matches!(
        log.read(-1, 100, i64::MAX),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    // max_offset (a high watermark) hides the batch.
    assert!(log.read(0, 100, 1).unwrap().data.is_empty());
}

#[test]
fn given_garbage_append_then_rejected_and_log_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(1 << 20)).unwrap();
    append_values(&mut log, &[b"a"], 1);
    let good = encode(&[(None, b"b", 1)], Compression::None);
    let mut corrupt = good.clone();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 1;
    assert!(matches!(
        log.append(&corrupt, 0),
        Err(LogError::InvalidBatch(BatchError::CrcMismatch { .. }))
    ));
    let garbage = vec![0xffu8; 100];
    assert!(matches!(
        log.append(&garbage, 0),
        Err(LogError::InvalidBatch(_))
    ));
    // A good batch followed by a bad one is refused as a whole.
    let mut mixed = good.clone();
    mixed.extend_from_slice(&corrupt);
    assert!(log.append(&mixed, 0).is_err());
    assert_eq!(log.next_offset(), 1);
    assert_eq!(log.append(&good, 0).unwrap().base_offset, 1);
}

#[test]
fn given_timestamps_then_lookup_finds_first_record_at_or_after() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(300)).unwrap();
    // Batches with per-record timestamps, across several segments.
    for b in 0..10i64 {
        let recs: Vec<Rec<'_>> = (0..3)
            .map(|r| (None, &b"v"[..], 1000 * b + 100 * r))
            .collect();
        let data = encode(&recs, Compression::None);
        log.append(&data, 0).unwrap();
    }
    assert!(log.segment_count() > 1);
    assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((0, 0)));
    assert_eq!(log.offset_for_timestamp(150).unwrap(), Some((2, 200)));
    assert_eq!(log.offset_for_timestamp(4000).unwrap(), Some((12, 4000)));
    assert_eq!(log.offset_for_timestamp(4001).unwrap(), Some((13, 4100)));
    assert_eq!(log.offset_for_timestamp(9200).unwrap(), Some((29, 9200)));
    assert_eq!(log.offset_for_timestamp(9201).unwrap(), None);
}

#[test]
fn given_truncation_then_log_end_moves_back_and_appends_continue() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(400)).unwrap();
    for i in 0..20 {
        append_values(&mut log, &[format!("v{i}").as_bytes(), b"w"], i);
    }
    let segments = log.segment_count();
    log.truncate_to(21).unwrap(); // mid-batch: the batch 20..21 goes too
    assert_eq!(log.next_offset(), 20);
    assert!(log.segment_count() < segments);
    assert_eq!(read_all(&log).len(), 20);
    assert_eq!(append_values(&mut log, &[b"new"], 99).base_offset, 20);
    drop(log);
    let log = PartitionLog::open(dir.path(), config(400)).unwrap();
    assert_eq!(log.next_offset(), 21);
    assert_eq!(read_all(&log).last().unwrap().2, &b"new"[..]);
    let mut log = log;
    log.truncate_to(0).unwrap();
    assert_eq!((log.log_start_offset(), log.next_offset()), (0, 0));
    log.reset_to(500).unwrap();
    assert_eq!(
        (
            log.log_start_offset(),
            log.next_offset(),
            log.segment_count()
        ),
        (500, 500, 1)
    );
    assert_eq!(append_values(&mut log, &[b"x"], 1).base_offset, 500);
}

#[test]
fn given_follower_appends_then_offsets_kept_and_regressions_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut leader = PartitionLog::open(&dir.path().join("l"), config(1 << 20)).unwrap();
    let mut follower = PartitionLog::open(&dir.path().join("f"), config(1 << 20)).unwrap();
    for i in 0..5 {
        append_values(&mut leader, &[format!("{i}").as_bytes()], i);
    }
    let chunk = leader.read(0, 1 << 20, i64::MAX).unwrap();
    let info = follower.append_replicated(&chunk.data).unwrap();
    assert_eq!(info.next_offset, 5);
    assert_eq!(
        follower.read(0, 1 << 20, i64::MAX).unwrap().data,
        chunk.data
    );
    assert!(matches!(
        follower.append_replicated(&chunk.data),
        Err(LogError::NonMonotonic { .. })
    ));
}

#[test]
fn given_retention_by_time_and_size_then_whole_old_segments_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        retention_ms: 10_000,
        ..config(200)
    };
    let mut log = PartitionLog::open(dir.path(), cfg.clone()).unwrap();
    let now = 1_000_000;
    for i in 0..10 {
        // Old records for the first five batches, fresh ones after.
        let ts = if i < 5 { now - 50_000 } else { now - 1_000 };
        append_values(&mut log, &[&[b'x'; 120]], ts);
    }
    assert_eq!(log.segment_count(), 10);
    let r = log.enforce_retention(now).unwrap().0;
    assert_eq!(r.segments_deleted, 5);
    assert_eq!(log.log_start_offset(), 5);
    assert!(matches!(
        log.read(4, 100, i64::MAX),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert_eq!(read_all(&log).len(), 5);

    // Size: keep at most ~2 segments' worth.
    let per_segment = log.size_bytes() / log.segment_count() as u64;
    log.set_config(LogConfig {
        retention_ms: -1,
        retention_bytes: (per_segment * 2) as i64,
        ..cfg.clone()
    });
    let r = log.enforce_retention(now).unwrap().0;
    assert_eq!(r.segments_deleted, 3);
    assert!(log.size_bytes() <= per_segment * 2);
    assert_eq!(log.log_start_offset(), 8);
    drop(log);
    let log = PartitionLog::open(dir.path(), cfg).unwrap();
    assert_eq!((log.log_start_offset(), log.next_offset()), (8, 10));

    // Compact-only topics never delete.
    let dir2 = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(
        dir2.path(),
        LogConfig {
            cleanup_policy: CleanupPolicy::Compact,
            retention_ms: 1,
            ..config(200)
        },
    )
    .unwrap();
    append_values(&mut log, &[b"x"], 0);
    append_values(&mut log, &[&[b'y'; 200]], 0);
    assert_eq!(log.enforce_retention(now).unwrap().0.segments_deleted, 0);
}

#[test]
fn given_expired_single_active_segment_then_rolled_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(
        dir.path(),
        LogConfig {
            retention_ms: 10,
            ..config(1 << 20)
        },
    )
    .unwrap();
    append_values(&mut log, &[b"old"], 5);
    let r = log.enforce_retention(1_000).unwrap().0;
    assert_eq!(r.segments_deleted, 1);
    assert_eq!((log.log_start_offset(), log.next_offset()), (1, 1));
    assert!(read_all(&log).is_empty());
}

#[test]
fn given_compacted_topic_then_only_latest_value_per_key_survives_in_sealed_segments() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        cleanup_policy: CleanupPolicy::Compact,
        ..config(400)
    };
    let mut log = PartitionLog::open(dir.path(), cfg.clone()).unwrap();
    let mut latest: BTreeMap<String, (i64, String)> = BTreeMap::new();
    let mut offset = 0;
    for round in 0..8 {
        let compression = if round % 2 == 0 {
            Compression::None
        } else {
            Compression::Lz4
        };
        let keys: Vec<String> = (0..4).map(|k| format!("key-{k}")).collect();
        let values: Vec<String> = (0..4).map(|k| format!("round-{round}-key-{k}")).collect();
        let mut recs: Vec<Rec<'_>> = keys
            .iter()
            .zip(&values)
            .map(|(k, v)| (Some(k.as_bytes()), v.as_bytes(), round))
            .collect();
        recs.push((None, b"unkeyed", round));
        let data = encode(&recs, compression);
        log.append(&data, 1).unwrap();
        for (k, v) in keys.iter().zip(&values) {
            latest.insert(k.clone(), (offset, v.clone()));
            offset += 1;
        }
        offset += 1;
    }
    assert!(log.segment_count() > 2);
    let before = read_all(&log);
    let end = log.next_offset();
    let stats = cleaner::compact(&mut log, end, &[]).unwrap();
    assert!(stats.records_removed > 0);
    assert!(stats.bytes_after < stats.bytes_before);
    let after = read_all(&log);
    // Offsets keep their values; keyed records are either the latest for
    // their key or in the active segment; unkeyed records all survive.
    let active_base = *log.segment_bases().last().unwrap();
    for rec in &after {
        let orig = before
            .iter()
            .find(|b| b.0 == rec.0)
            .expect("offset existed");
        assert_eq!(orig, rec);
        if let Some(k) = &rec.1 {
            let (latest_offset, _) = &latest[std::str::from_utf8(k).unwrap()];
            assert!(
                rec.0 == *latest_offset || rec.0 >= active_base,
                "stale record {rec:?}"
            );
        }
    }
    for (k, (off, v)) in &latest {
        assert!(
            after.iter().any(|r| r.0 == *off && r.2 == v.as_bytes()),
            "{k} lost"
        );
    }
    assert_eq!(
        after.iter().filter(|r| r.1.is_none()).count(),
        before.iter().filter(|r| r.1.is_none()).count()
    );
    // Reads in the middle of removed ranges land on the next kept batch;
    // reopening gives the same log.
    for o in 0..log.next_offset() {
        let r = log.read(o, 1, i64::MAX).unwrap();
        assert!(decode(&r.data).iter().all(|rec| rec.0 <= log.next_offset()));
    }
    drop(log);
    let log = PartitionLog::open(dir.path(), cfg).unwrap();
    assert_eq!(read_all(&log), after);
}

/// Mounts a tmpfs of `size` at `dir`; unmounts on drop.
pub(crate) struct Tmpfs<'a>(&'a Path);

impl<'a> Tmpfs<'a> {
    pub(crate) fn mount(dir: &'a Path, size: &str) -> Self {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("running mount");
        assert!(
            out.status.success(),
            "the disk-full test needs root to mount a small tmpfs: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self(dir)
    }
    fn resize(&self, size: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(self.0)
            .status()
            .expect("running mount")
            .success();
        assert!(ok, "remount failed");
    }
}

impl Drop for Tmpfs<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0).status();
    }
}

#[test]
fn given_full_disk_then_append_fails_cleanly_log_stays_readable_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let fs = Tmpfs::mount(dir.path(), "256k");
    let cfg = config(1 << 20);
    let mut log = PartitionLog::open(dir.path(), cfg.clone()).unwrap();
    let value = vec![b'z'; 8000];
    let mut acked = 0;
    let err = loop {
        match log.append(&encode(&[(None, &value, 1)], Compression::None), 0) {
            Ok(info) => {
                assert_eq!(info.base_offset, acked);
                acked += 1;
            }
            Err(e) => break e,
        }
        assert!(acked < 1000, "tmpfs never filled up");
    };
    assert!(matches!(err, LogError::DiskFull { .. }), "{err}");
    assert_eq!(err.metric_label(), "disk_full");
    assert_eq!(log.next_offset(), acked);
    let all = read_all(&log);
    assert_eq!(all.len() as i64, acked);
    assert!(all.iter().all(|r| r.2 == value));
    // Still full: still a clean error, nothing changes.
    assert!(
        log.append(&encode(&[(None, &value, 1)], Compression::None), 0)
            .is_err()
    );
    assert_eq!(log.next_offset(), acked);
    // Space returns: appends work again and recovery sees a clean log.
    fs.resize("1m");
    assert_eq!(
        log.append(&encode(&[(None, &value, 1)], Compression::None), 0)
            .unwrap()
            .base_offset,
        acked
    );
    drop(log);
    let log = PartitionLog::open(dir.path(), cfg).unwrap();
    assert_eq!(log.next_offset(), acked + 1);
    assert_eq!(read_all(&log).len() as i64, acked + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_concurrent_fsync_appenders_then_group_commit_shares_fsyncs() {
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(parking_lot::Mutex::new(
        PartitionLog::open(
            dir.path(),
            LogConfig {
                flush: FlushPolicy::Fsync,
                ..config(1 << 30)
            },
        )
        .unwrap(),
    ));
    let gc = Arc::new(GroupCommit::default());
    let mut tasks = Vec::new();
    for t in 0..8 {
        let (log, gc) = (Arc::clone(&log), Arc::clone(&gc));
        tasks.push(tokio::spawn(async move {
            for i in 0..25 {
                let v = format!("{t}-{i}");
                let b = encode(&[(None, v.as_bytes(), 1)], Compression::None);
                let info = log.lock().append(&b, 0).unwrap();
                gc.wait_durable(info.next_offset, || log.lock().sync_handle())
                    .await
                    .unwrap();
                assert!(log.lock().flushed_offset() >= info.next_offset);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(log.lock().next_offset(), 200);
    assert!(gc.syncs() >= 1 && gc.syncs() <= 200, "syncs {}", gc.syncs());
}

fn recovery_point(dir: &Path) -> i64 {
    super::number_file::read(&dir.join("recovery-point"))
        .unwrap()
        .unwrap()
}

#[test]
fn given_unflushed_sealed_segments_then_recovery_validates_them_and_flush_moves_the_recovery_point()
{
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(300)).unwrap();
    for i in 0..12 {
        append_values(
            &mut log,
            &[format!("value-{i}").as_bytes(), &[b'p'; 100]],
            i,
        );
    }
    let bases = log.segment_bases();
    assert!(bases.len() >= 4);
    drop(log);
    // A sealed (indexed) but never flushed segment is damaged: recovery
    // must find it and cut the log there, dropping later segments.
    let victim = bases[1];
    let path = segment::Segment::log_path(dir.path(), victim);
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n - 5] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let mut log = PartitionLog::open(dir.path(), config(300)).unwrap();
    assert!(log.next_offset() < bases[2], "cut inside segment {victim}");
    assert!(log.next_offset() >= victim);
    assert_eq!(log.segment_bases().last(), Some(&victim));
    // Flushing persists the recovery point; later segments below it are
    // trusted (opened from their index files).
    for i in 0..12 {
        append_values(
            &mut log,
            &[format!("again-{i}").as_bytes(), &[b'q'; 100]],
            i,
        );
    }
    log.flush().unwrap();
    assert_eq!(recovery_point(dir.path()), log.next_offset());
    let end = log.next_offset();
    drop(log);
    let mut log = PartitionLog::open(dir.path(), config(300)).unwrap();
    assert_eq!(log.next_offset(), end);
    assert_eq!(log.flushed_offset(), end);
    // Truncation lowers the recovery point on disk at once.
    log.truncate_to(victim + 1).unwrap();
    assert!(recovery_point(dir.path()) <= log.next_offset());
}

#[test]
fn given_an_fsync_started_before_a_truncation_when_it_completes_then_new_appends_are_not_reported_durable()
 {
    // A flush=fsync follower with 0..2 on disk: an fsync of offsets 0..4
    // starts (outside the log lock), the log is truncated to 2 and new records take offsets 2
    // and 3, then the fsync completes. It synced the old records 2 and 3,
    // not the new ones: the flushed offset and the recovery point must stay
    // at the truncation point.
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(1 << 20)).unwrap();
    append_values(&mut log, &[b"a", b"b"], 1000);
    log.flush().unwrap();
    append_values(&mut log, &[b"c", b"d"], 1000);
    let in_flight = log.sync_handle();
    assert_eq!(in_flight.target(), 4);
    log.truncate_to(2).unwrap();
    append_values(&mut log, &[b"new-c", b"new-d"], 1000);
    in_flight.sync().unwrap();
    assert_eq!(
        log.flushed_offset(),
        2,
        "the appends after the truncation were never fsynced"
    );
    log.checkpoint().unwrap();
    drop(log);
    assert_eq!(recovery_point(dir.path()), 2, "recovery point");
    // A fresh fsync covers them.
    let log = PartitionLog::open(dir.path(), config(1 << 20)).unwrap();
    log.flush().unwrap();
    assert_eq!(log.flushed_offset(), 4);
}

#[test]
fn given_a_newer_value_above_the_high_watermark_when_compacted_then_the_committed_value_is_kept() {
    // key's committed value is in the first segment; a newer value sits in
    // a later sealed segment but above the HW (not yet replicated: a new
    // leader may truncate it). Compaction must not let it replace the
    // committed one, nor rewrite anything above the HW.
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        cleanup_policy: CleanupPolicy::Compact,
        ..config(120)
    };
    let mut log = PartitionLog::open(dir.path(), cfg).unwrap();
    let pad = "p".repeat(60);
    let append = |log: &mut PartitionLog, k: &[u8], v: &str| {
        let b = encode(&[(Some(k), v.as_bytes(), 1)], Compression::None);
        log.append(&b, 1).unwrap()
    };
    append(&mut log, b"key", &format!("committed-{pad}"));
    let hw = append(&mut log, b"other", &format!("other-{pad}")).next_offset;
    append(&mut log, b"key", &format!("uncommitted-{pad}"));
    append(&mut log, b"other", &format!("more-{pad}"));
    assert!(log.segment_count() >= 3, "{}", log.segment_count());
    let before = read_all(&log);
    let stats = cleaner::compact(&mut log, hw, &[]).unwrap();
    let after = read_all(&log);
    assert_eq!(stats.records_removed, 0, "{stats:?}");
    assert_eq!(after, before);
}

/// The transactional entries of the log read from every segment's batch
/// headers, to compare with what the transaction indexes give.
fn scanned_txn_batches(log: &PartitionLog) -> Vec<(i64, txnindex::TxnBatch)> {
    let mut out = Vec::new();
    for base in log.segment_bases() {
        let seg = log.segments.get(&base).unwrap();
        out.extend(
            seg.scan_txns()
                .unwrap()
                .entries()
                .iter()
                .map(|b| (base, *b)),
        );
    }
    out
}

#[test]
fn given_transactions_across_rolls_when_reopened_or_recovered_then_the_txn_indexes_agree_with_the_log()
 {
    use rill_client::batch::{ControlType, marker_batch};
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(700)).unwrap();
    for i in 0..30i64 {
        let v = format!("value-{i}");
        let plain = batch::test_util::batch(&[v.as_bytes()]);
        log.append(&plain, 1).unwrap();
        let pid = 100 + i % 3;
        let t = batch::test_util::transactional(&[v.as_bytes(), b"second"], pid, 0);
        log.append(&t, 1).unwrap();
        if i % 4 == 3 {
            let kind = if i % 8 == 3 {
                ControlType::Abort
            } else {
                ControlType::Commit
            };
            let m = marker_batch(pid, 0, kind, 0, 1_700_000_000_000).to_vec();
            log.append(&m, 1).unwrap();
        }
    }
    assert!(
        log.segment_count() > 5,
        "must roll: {}",
        log.segment_count()
    );
    let live = log.transaction_batches().unwrap();
    assert!(
        live.iter()
            .any(|(_, b)| b.control == Some(ControlType::Abort))
    );
    assert_eq!(live, scanned_txn_batches(&log));
    log.flush().unwrap();
    log.checkpoint().unwrap();
    let sealed = log.segment_count() - 1;
    let files = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "txnindex")
        })
        .count();
    assert_eq!(
        files, sealed,
        "every sealed segment saves its transaction index"
    );

    // Reopened: trusted segments load their indexes, the last is recovered.
    drop(log);
    let log = PartitionLog::open(dir.path(), config(700)).unwrap();
    assert!(log.segments.values().all(|s| s.txn_batches().is_some()));
    assert_eq!(log.transaction_batches().unwrap(), live);

    // A damaged index is not used: that segment's headers are read.
    drop(log);
    let first = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "txnindex"))
        .min()
        .unwrap();
    std::fs::write(&first, b"RTXI garbage").unwrap();
    let mut log = PartitionLog::open(dir.path(), config(700)).unwrap();
    assert!(log.segments.values().any(|s| s.txn_batches().is_none()));
    assert_eq!(log.transaction_batches().unwrap(), live);

    // Truncation inside a merged run: the index is rebuilt from what is left.
    let cut = live
        .iter()
        .rev()
        .find(|(_, b)| b.control.is_none())
        .unwrap()
        .1
        .last_offset;
    log.truncate_to(cut).unwrap();
    assert_eq!(
        log.transaction_batches().unwrap(),
        scanned_txn_batches(&log)
    );
}

#[test]
fn given_records_deleted_when_the_log_start_advances_should_refuse_reads_below_drop_old_segments_and_survive_reopen()
 {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(600)).unwrap();
    for i in 0..30 {
        let v = format!("value-{i}-{}", "x".repeat(40));
        append_values(&mut log, &[v.as_bytes()], 1000 + i);
    }
    let segments = log.segment_count();
    assert!(segments > 3, "{segments}");
    assert!(log.advance_log_start(17).unwrap());
    assert_eq!(log.log_start_offset(), 17);
    assert!(log.segment_count() < segments, "segments below 17 are gone");
    assert!(matches!(
        log.read(16, 4096, i64::MAX),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    let first = decode(&log.read(17, 4096, i64::MAX).unwrap().data);
    assert!(first.iter().any(|r| r.0 == 17));
    // Never backwards, never past the log end.
    assert!(!log.advance_log_start(5).unwrap());
    drop(log);
    let mut log = PartitionLog::open(dir.path(), config(600)).unwrap();
    assert_eq!(log.log_start_offset(), 17, "the start survives a restart");
    assert_eq!(read_all(&log).first().map(|r| r.0), Some(17));
    assert!(log.advance_log_start(1_000).unwrap());
    assert_eq!(log.log_start_offset(), 30);
    // A follower reset below it starts over there, and so does a reopen.
    log.reset_to(10).unwrap();
    drop(log);
    let log = PartitionLog::open(dir.path(), config(600)).unwrap();
    assert_eq!((log.log_start_offset(), log.next_offset()), (10, 10));
}

/// Appends 60 batches of two records (timestamps 1000 + i) to one segment.
fn fill_one_segment(log: &mut PartitionLog) {
    for i in 0..60 {
        let v = format!("value-{i}-{}", "y".repeat(i % 5 * 30));
        append_values(log, &[v.as_bytes(), b"second"], 1000 + i as i64);
    }
    assert_eq!(log.segment_count(), 1);
}

fn active_log_path(log: &PartitionLog) -> std::path::PathBuf {
    segment::Segment::log_path(log.dir(), log.active_segment_base())
}

#[test]
fn given_a_clean_shutdown_then_the_active_segment_is_trusted_on_reopen_and_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(1 << 20)).unwrap();
    fill_one_segment(&mut log);
    let records = read_all(&log);
    let by_time: Vec<_> = (990..1070)
        .map(|ts| log.offset_for_timestamp(ts).unwrap())
        .collect();
    log.flush_for_restart().unwrap();
    let path = active_log_path(&log);
    drop(log);

    // Damage a record (not a header) of the first batch: a trusted segment
    // is not read batch by batch, so the damage goes unseen and nothing is
    // cut. (Bit rot below the recovery point is not what recovery is for:
    // this only shows which path the start took.)
    let mut bytes = std::fs::read(&path).unwrap();
    let first_batch_len = super::batch::HEADER_LEN + 20;
    bytes[first_batch_len] ^= 0xff;
    let pristine = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes).unwrap();
    let log = PartitionLog::open(dir.path(), config(1 << 20)).unwrap();
    assert_eq!(log.next_offset(), 120, "trusted: no batch was validated");
    drop(log);
    std::fs::write(&path, &pristine).unwrap();

    // Undamaged: every record, timestamp lookup and later append is as
    // before the restart.
    let mut log = PartitionLog::open(dir.path(), config(1 << 20)).unwrap();
    assert_eq!(log.next_offset(), 120);
    assert_eq!(read_all(&log), records);
    let again: Vec<_> = (990..1070)
        .map(|ts| log.offset_for_timestamp(ts).unwrap())
        .collect();
    assert_eq!(again, by_time);
    let info = append_values(&mut log, &[b"after"], 5000);
    assert_eq!(info.base_offset, 120);
    assert_eq!(
        log.offset_for_timestamp(5000).unwrap().map(|(o, _)| o),
        Some(120)
    );
    assert_eq!(read_all(&log).len(), 121);
}

#[test]
fn given_a_crash_then_only_the_batches_above_the_recovery_point_are_validated() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(1 << 20)).unwrap();
    fill_one_segment(&mut log);
    log.flush().unwrap();
    let path = active_log_path(&log);
    let flushed_len = std::fs::metadata(&path).unwrap().len() as usize;
    for i in 0..10 {
        append_values(&mut log, &[format!("late-{i}").as_bytes()], 2000 + i);
    }
    // A crash: offsets 120..130 were never flushed, and no index was saved.
    drop(log);
    let mut bytes = std::fs::read(&path).unwrap();
    let late = (bytes.len() - flushed_len) / 10;
    // A record of the first batch, below the recovery point: known to be
    // on disk, so only its header is read and the damage goes unseen.
    bytes[super::batch::HEADER_LEN + 20] ^= 0xff;
    // A record of the batch at offset 125, above it: validated, cut there.
    bytes[flushed_len + 6 * late - 3] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let log = PartitionLog::open(dir.path(), config(1 << 20)).unwrap();
    assert_eq!(log.next_offset(), 125);
    let last = log.read(124, 4096, i64::MAX).unwrap();
    assert_eq!(decode(&last.data)[0].0, 124);
    assert_eq!(last.next_offset, 125);
}

#[test]
fn given_indexes_saved_at_a_clean_shutdown_and_later_unflushed_appends_then_a_crash_validates_and_keeps_every_batch()
 {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(1 << 20)).unwrap();
    fill_one_segment(&mut log);
    log.flush_for_restart().unwrap();
    drop(log);
    let mut log = PartitionLog::open(dir.path(), config(1 << 20)).unwrap();
    for i in 0..10 {
        append_values(&mut log, &[format!("late-{i}").as_bytes()], 2000 + i);
    }
    let records = read_all(&log);
    // A crash: no flush, the recovery point stays at 120 while the saved
    // indexes of the earlier shutdown are still there.
    drop(log);
    let log = PartitionLog::open(dir.path(), config(1 << 20)).unwrap();
    assert_eq!(log.next_offset(), 130);
    assert_eq!(read_all(&log), records);
}

#[test]
fn given_a_truncation_after_a_clean_restart_then_the_next_start_does_not_use_the_old_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(1 << 20)).unwrap();
    fill_one_segment(&mut log);
    log.flush_for_restart().unwrap();
    drop(log);
    let mut log = PartitionLog::open(dir.path(), config(1 << 20)).unwrap();
    let path = active_log_path(&log);
    assert!(path.with_extension("index").exists());
    // A follower's truncation, then other batches at the same positions.
    log.truncate_to(20).unwrap();
    assert!(!path.with_extension("index").exists());
    for i in 0..40i64 {
        let v = format!("new-{i}-{}", "z".repeat(i as usize % 3 * 50));
        append_values(&mut log, &[v.as_bytes()], 3000 + i);
    }
    let records = read_all(&log);
    log.flush().unwrap();
    drop(log);
    let log = PartitionLog::open(dir.path(), config(1 << 20)).unwrap();
    assert_eq!(log.next_offset(), 60);
    assert_eq!(read_all(&log), records);
}

#[test]
fn given_a_compacted_segment_whose_indexes_cannot_be_saved_then_every_record_is_still_read_at_its_offset()
 {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        cleanup_policy: CleanupPolicy::Compact,
        ..config(400)
    };
    let mut log = PartitionLog::open(dir.path(), cfg).unwrap();
    for round in 0..8 {
        let values: Vec<String> = (0..4).map(|k| format!("round-{round}-key-{k}")).collect();
        let keys: Vec<String> = (0..4).map(|k| format!("key-{k}")).collect();
        let recs: Vec<Rec<'_>> = keys
            .iter()
            .zip(&values)
            .map(|(k, v)| (Some(k.as_bytes()), v.as_bytes(), round))
            .collect();
        let data = encode(&recs, Compression::None);
        log.append(&data, 1).unwrap();
    }
    assert!(log.segment_count() > 2);
    let before = read_all(&log);
    // A full disk, for index files: their temporary names are taken.
    for base in log.segment_bases() {
        std::fs::create_dir(
            dir.path()
                .join(format!("{}.index.tmp", segment::file_stem(base))),
        )
        .unwrap();
    }
    let end = log.next_offset();
    assert!(
        cleaner::compact(&mut log, end, &[]).is_err(),
        "the compacted segment's indexes cannot be saved"
    );
    // The compacted segment is in place with its indexes on the heap, and
    // every segment still reads: each record read is the one at its offset.
    let after = read_all(&log);
    assert!(after.len() < before.len(), "one segment was compacted");
    for rec in &after {
        assert_eq!(before.iter().find(|b| b.0 == rec.0), Some(rec));
    }
    let last = before.last().unwrap();
    assert_eq!(after.last(), Some(last), "the newest record stays");
}

#[test]
fn given_a_roll_that_cannot_create_the_next_segment_then_the_active_segment_keeps_taking_appends() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(
        dir.path(),
        LogConfig {
            segment_bytes: 1000,
            index_interval_bytes: 1,
            ..LogConfig::default()
        },
    )
    .unwrap();
    append_values(&mut log, &[&[b'a'; 300]], 1);
    append_values(&mut log, &[&[b'b'; 300]], 2);
    // The next segment's file cannot be created (a full disk).
    let next = log.next_offset();
    std::fs::create_dir(segment::Segment::log_path(dir.path(), next)).unwrap();
    let recs: Vec<Rec<'_>> = vec![(None, &[b'c'; 600][..], 3)];
    let big = encode(&recs, Compression::None);
    assert!(log.append(&big, 3).is_err(), "a roll was needed");
    assert_eq!(log.segment_count(), 1);
    // A smaller batch still fits the active segment, which is not sealed:
    // it is indexed and read like the others.
    append_values(&mut log, &[b"d"], 4);
    let values: Vec<Bytes> = read_all(&log).into_iter().map(|r| r.2).collect();
    assert_eq!(values.len(), 3);
    assert_eq!(&values[2][..], b"d");
    assert_eq!(log.segment_count(), 1);
}

#[test]
fn given_a_leader_append_of_two_batches_then_the_file_holds_them_stamped_and_the_producers_bytes_are_untouched()
 {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(1 << 20)).unwrap();
    append_values(&mut log, &[b"first"], 1);
    let mut data = encode(&[(None, b"a", 2), (None, b"b", 2)], Compression::None);
    data.extend(encode(&[(None, b"c", 3)], Compression::None));
    let sent = data.clone();

    let info = log.append(&data, 7).unwrap();
    assert_eq!(
        (info.base_offset, info.next_offset, info.batches),
        (1, 4, 2)
    );
    assert_eq!(data, sent, "the producer's bytes are not changed");

    let check = |log: &PartitionLog| {
        let stored = log.read(1, 1 << 20, i64::MAX).unwrap().data;
        let batches = batch::validate_all(&stored, stored.len(), batch::validate).unwrap();
        let stamped: Vec<(i64, i32, i32)> = batches
            .iter()
            .map(|(_, h)| (h.base_offset, h.partition_leader_epoch, h.records_count))
            .collect();
        assert_eq!(stamped, vec![(1, 7, 2), (3, 7, 1)]);
        assert_eq!(stored.len(), sent.len());
    };
    check(&log);
    drop(log);
    // Reopened (recovered), it holds the same.
    let log = PartitionLog::open(dir.path(), config(1 << 20)).unwrap();
    check(&log);
    assert_eq!(log.next_offset(), 4);
}

#[test]
fn given_retention_deleting_segments_then_their_files_stay_open_until_the_unlinked_segments_are_dropped()
 {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        retention_ms: 10_000,
        ..config(200)
    };
    let mut log = PartitionLog::open(dir.path(), cfg).unwrap();
    let now = 1_000_000;
    for i in 0..4 {
        let ts = if i < 2 { now - 50_000 } else { now - 1_000 };
        append_values(&mut log, &[&[b'x'; 120]], ts);
    }
    // Open files of this process whose names are gone from this log's
    // directory: their space is not free yet.
    let deleted_but_open = || {
        std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter(|target| {
                let t = target.to_string_lossy();
                t.starts_with(&*dir.path().to_string_lossy()) && t.ends_with(" (deleted)")
            })
            .count()
    };
    assert_eq!(deleted_but_open(), 0);

    let (result, unlinked) = log.enforce_retention(now).unwrap();
    assert_eq!(result.segments_deleted, 2);
    assert_eq!(log.log_start_offset(), 2);
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".log"))
        .collect();
    assert_eq!(
        names.len(),
        2,
        "the deleted segments' names are gone: {names:?}"
    );
    assert_eq!(deleted_but_open(), 2, "their files are still open");

    drop(unlinked);
    assert_eq!(deleted_but_open(), 0);
    assert_eq!(read_all(&log).len(), 2);
}
