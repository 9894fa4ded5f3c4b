//! Background maintenance of partition logs, stopped by a cancellation
//! token at shutdown:
//!
//! - **flush**: every [`FLUSH_TICK`], fsyncs each partition whose
//!   `flush.ms` has passed since its last fsync and that has unflushed
//!   data (for `flush=fsync` topics this is a safety net: producers already
//!   fsync through the group commit); from [`SYNCFS_MIN_PARTITIONS`]
//!   partitions with unflushed appends on, one `syncfs` of the data
//!   directory covers them all. While no log takes appends after a walk
//!   found nothing unflushed, the walk over every partition runs once a
//!   second instead;
//! - **retention**: every `--retention-check-interval-ms`, deletes expired
//!   or excess segments (`retention.ms`, `retention.bytes`);
//! - **compaction**: every `--compaction-interval-ms`, cleans
//!   `cleanup.policy=compact` topics.
//!
//! Retention and compaction take a partition's write lock and do file I/O,
//! so they run on the blocking thread pool, one partition at a time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::Error;
use super::manager::ReplicaManager;
use crate::log::{LogError, cleaner};
use crate::metrics::Metrics;

/// How often the flusher checks which partitions are due.
pub const FLUSH_TICK: Duration = Duration::from_millis(100);

/// Partitions with unflushed appends from which one `syncfs` replaces
/// their interval fsyncs.
pub const SYNCFS_MIN_PARTITIONS: usize = 16;

/// Intervals of the background tasks.
#[derive(Debug, Clone, Copy)]
pub struct Intervals {
    pub retention: Duration,
    pub compaction: Duration,
}

/// Starts the background tasks; they end when `stop` is cancelled.
pub fn spawn(
    manager: Arc<ReplicaManager>,
    metrics: Arc<Metrics>,
    intervals: Intervals,
    stop: CancellationToken,
) -> Vec<JoinHandle<()>> {
    vec![
        tokio::spawn(flush_loop(
            Arc::clone(&manager),
            Arc::clone(&metrics),
            stop.clone(),
        )),
        tokio::spawn(every(intervals.retention, stop.clone(), {
            let (manager, metrics) = (Arc::clone(&manager), Arc::clone(&metrics));
            move || retention_pass(Arc::clone(&manager), Arc::clone(&metrics))
        })),
        tokio::spawn(every(intervals.compaction, stop, move || {
            compaction_pass(Arc::clone(&manager), Arc::clone(&metrics))
        })),
    ]
}

async fn every<F, Fut>(period: Duration, stop: CancellationToken, mut pass: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => pass().await,
        }
    }
}

async fn flush_loop(manager: Arc<ReplicaManager>, metrics: Arc<Metrics>, stop: CancellationToken) {
    let mut ticker = tokio::time::interval(FLUSH_TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut quiet = Quiet::default();
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let now = Instant::now();
        write_high_watermarks(&manager, &metrics, now).await;
        let appends = crate::log::appends_in_process();
        if quiet.holds(appends, now) {
            continue;
        }
        let partitions = manager.all_partitions();
        if flush_filesystem(&manager, &metrics, &partitions, now).await {
            continue;
        }
        for p in &partitions {
            match p.flush_if_due(now).await {
                Ok(true) => debug!(topic = %p.topic, partition = p.id, "interval flush"),
                Ok(false) => {}
                Err(e) => {
                    metrics
                        .background_errors
                        .with_label_values(&["flush", e.metric_label()])
                        .inc();
                    warn!(topic = %p.topic, partition = p.id, error = %e, "interval flush failed");
                }
            }
        }
        quiet.walked(&partitions, appends, now);
    }
}

/// Every [`super::hw_checkpoint::INTERVAL`], writes the HW checkpoint of
/// every replica if a HW moved (one file for the data directory).
async fn write_high_watermarks(manager: &Arc<ReplicaManager>, metrics: &Metrics, now: Instant) {
    if !manager.high_watermarks_due(now) {
        return;
    }
    let m = Arc::clone(manager);
    let written = tokio::task::spawn_blocking(move || {
        m.write_high_watermarks(&m.all_partitions(), now, false)
    })
    .await;
    match written {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            metrics
                .background_errors
                .with_label_values(&["flush", e.metric_label()])
                .inc();
            warn!(error = %e, "writing the high watermark checkpoint failed");
        }
        Err(e) => warn!(error = %e, "the high watermark checkpoint task failed"),
    }
}

/// Longest the flusher goes without walking the partitions while no log
/// takes appends: leader epochs and high watermarks that change without
/// an append are checkpointed by the walk, at most this much later.
const QUIET_WALK: Duration = Duration::from_secs(1);

/// Lets the flusher skip its walk over every partition while nothing can
/// need a flush: the last walk found no unflushed appends and no log has
/// taken one since. A broker at rest with 10,000 partitions otherwise
/// spends most of its CPU on walks that find nothing.
#[derive(Debug, Default)]
struct Quiet {
    /// The append count read before the last walk that found nothing
    /// unflushed, and when that walk was.
    since: Option<(u64, Instant)>,
}

impl Quiet {
    /// Whether this tick's walk can be skipped.
    fn holds(&self, appends: u64, now: Instant) -> bool {
        self.since
            .is_some_and(|(seen, at)| seen == appends && now < at + QUIET_WALK)
    }

    /// After a walk that began with `appends` read at `now`: quiet from
    /// here when no partition has unflushed appends.
    fn walked(&mut self, partitions: &[Arc<super::Partition>], appends: u64, now: Instant) {
        let clean = partitions.iter().all(|p| !p.has_unflushed());
        self.since = clean.then_some((appends, now));
    }
}

/// The batched interval flush: when a partition is due and at least
/// [`SYNCFS_MIN_PARTITIONS`] partitions have unflushed appends, one
/// `syncfs` of the data directory's filesystem replaces the fsyncs of all
/// of them (those not due yet are flushed early, and from then on fall due
/// together), and their recovery points and HW checkpoints are written at
/// most every 5 s, without fsyncs of their own. One sync instead of
/// several per partition each `flush.ms`. Returns whether it ran; when the `syncfs`
/// fails, the per-partition fsyncs run instead and report each partition's
/// error.
async fn flush_filesystem(
    manager: &ReplicaManager,
    metrics: &Metrics,
    partitions: &[Arc<super::Partition>],
    now: Instant,
) -> bool {
    if !partitions.iter().any(|p| p.flush_due(now)) {
        return false;
    }
    let batch: Vec<_> = partitions
        .iter()
        .filter_map(|p| Some((Arc::clone(p), p.unflushed_handle()?)))
        .collect();
    if batch.len() < SYNCFS_MIN_PARTITIONS {
        return false;
    }
    let dir = manager.data_dir().to_owned();
    let started = Instant::now();
    let synced = tokio::task::spawn_blocking(move || {
        let root = std::fs::File::open(&dir)?;
        rustix::fs::syncfs(&root).map_err(std::io::Error::from)?;
        let after = Instant::now();
        Ok::<_, std::io::Error>(
            batch
                .into_iter()
                .filter_map(|(p, handle)| {
                    let failed = p.synced_with_filesystem(&handle, after).err()?;
                    Some((p, failed))
                })
                .collect::<Vec<_>>(),
        )
    })
    .await
    .map_err(std::io::Error::other)
    .and_then(|r| r);
    metrics
        .fsync_seconds
        .with_label_values(&["syncfs"])
        .observe(started.elapsed().as_secs_f64());
    match synced {
        Ok(failed) => {
            metrics.fsyncs.with_label_values(&["syncfs"]).inc();
            for (p, e) in failed {
                metrics
                    .background_errors
                    .with_label_values(&["flush", e.metric_label()])
                    .inc();
                warn!(topic = %p.topic, partition = p.id, error = %e, "checkpoint after the batched flush failed");
            }
            true
        }
        Err(e) => {
            warn!(error = %e, "syncfs of the data directory failed; fsyncing partition by partition");
            false
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Partitions whose retention one blocking task checks: most passes find
/// nothing to delete, and a task per partition cost more than the checks.
const RETENTION_CHUNK: usize = 256;

/// One retention pass over every partition.
pub async fn retention_pass(manager: Arc<ReplicaManager>, metrics: Arc<Metrics>) {
    let mut segments = 0;
    for chunk in manager.all_partitions().chunks(RETENTION_CHUNK) {
        let chunk = chunk.to_vec();
        let results = tokio::task::spawn_blocking(move || {
            chunk
                .into_iter()
                .map(|part| {
                    let result = if part.state.load(std::sync::atomic::Ordering::Acquire)
                        == super::DELETED
                    {
                        Ok(Default::default())
                    } else {
                        let mut log = part.log.write();
                        let result = log.enforce_retention(now_ms());
                        // Appends and fetches of the partition go on while
                        // the deleted segments' space is freed.
                        drop(log);
                        result.map(|(result, unlinked)| {
                            drop(unlinked);
                            result
                        })
                    };
                    (part, result)
                })
                .collect::<Vec<_>>()
        })
        .await;
        let results = match results {
            Ok(results) => results,
            Err(e) => {
                metrics
                    .background_errors
                    .with_label_values(&["retention", "io"])
                    .inc();
                warn!(error = %e, "retention task failed");
                continue;
            }
        };
        for (p, result) in results {
            match result {
                Ok(r) => {
                    if r.segments_deleted > 0 {
                        segments += r.segments_deleted;
                        metrics
                            .retention_segments_deleted
                            .with_label_values(&[&p.topic])
                            .inc_by(r.segments_deleted as u64);
                        metrics
                            .retention_bytes_deleted
                            .with_label_values(&[&p.topic])
                            .inc_by(r.bytes_deleted);
                        info!(topic = %p.topic, partition = p.id, segments = r.segments_deleted, bytes = r.bytes_deleted, "retention deleted segments");
                    }
                }
                Err(e) => background_failure(&metrics, "retention", &p, e),
            }
        }
    }
    debug!(segments_deleted = segments, "retention pass done");
}

/// One compaction pass over every compacted partition.
pub async fn compaction_pass(manager: Arc<ReplicaManager>, metrics: Arc<Metrics>) {
    for p in manager.all_partitions() {
        if !p.config().cleanup_policy.compacts() {
            continue;
        }
        let part = Arc::clone(&p);
        let result = tokio::task::spawn_blocking(move || {
            if part.state.load(std::sync::atomic::Ordering::Acquire) == super::DELETED {
                return Ok(Default::default());
            }
            let mut log = part.log.write();
            let hw = part.high_watermark();
            let (stable, aborted) = {
                let mut slot = part.txns.lock();
                let txns = part.load_txns(&log, &mut slot, hw).map_err(|e| {
                    LogError::io(
                        "loading transactions for compaction".into(),
                        std::io::Error::other(e.to_string()),
                    )
                })?;
                (
                    txns.last_stable_offset(hw),
                    txns.aborted_overlapping(i64::MIN, i64::MAX),
                )
            };
            cleaner::compact(&mut log, stable, &aborted)
        })
        .await
        .unwrap_or_else(|e| {
            Err(LogError::io(
                "compaction task".into(),
                std::io::Error::other(e),
            ))
        });
        match result {
            Ok(stats) => {
                if stats.records_removed > 0 || stats.segments_rewritten > 0 {
                    metrics
                        .compaction_records_removed
                        .with_label_values(&[&p.topic])
                        .inc_by(stats.records_removed);
                    info!(
                        topic = %p.topic, partition = p.id,
                        segments = stats.segments_rewritten, records_removed = stats.records_removed,
                        bytes_before = stats.bytes_before, bytes_after = stats.bytes_after,
                        "compaction cleaned the log"
                    );
                } else {
                    debug!(topic = %p.topic, partition = p.id, "compaction found nothing to remove");
                }
            }
            Err(e) => background_failure(&metrics, "compaction", &p, e),
        }
    }
}

fn background_failure(metrics: &Metrics, task: &str, p: &super::Partition, e: LogError) {
    let e = Error::Log {
        topic: p.topic.to_string(),
        partition: p.id,
        source: e,
    };
    metrics
        .background_errors
        .with_label_values(&[task, e.metric_label()])
        .inc();
    warn!(error = %e, task, "background task failed on a partition");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_a_walk_that_found_nothing_unflushed_then_walks_are_skipped_until_an_append_or_a_second_passes()
     {
        let t0 = Instant::now();
        let mut quiet = Quiet::default();
        assert!(!quiet.holds(7, t0), "nothing walked yet");
        quiet.walked(&[], 7, t0);
        assert!(quiet.holds(7, t0 + FLUSH_TICK));
        assert!(!quiet.holds(8, t0 + FLUSH_TICK), "a log took an append");
        assert!(!quiet.holds(7, t0 + QUIET_WALK), "a second passed");
    }
}
