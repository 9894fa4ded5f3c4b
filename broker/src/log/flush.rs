//! Group commit for `flush=fsync`: producers that appended wait until an
//! fsync covering their offset has completed. While one fsync runs, later
//! appenders queue; the next fsync covers all of them at once, so the cost
//! of an fsync is shared by every producer that waited for it.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Mutex;

use super::SyncHandle;

/// Serialises fsyncs of one partition and lets each cover every append
/// made before it started.
#[derive(Debug, Default)]
pub struct GroupCommit {
    /// Held while an fsync runs; waiters queue here.
    running: Mutex<()>,
    /// fsyncs performed, for metrics and tests.
    syncs: AtomicU64,
}

impl GroupCommit {
    /// Returns once everything below `target` is durable. `current` is
    /// called after queueing, to fsync the freshest log end (covering every
    /// append made meanwhile).
    pub async fn wait_durable(
        &self,
        target: i64,
        current: impl FnOnce() -> SyncHandle,
    ) -> io::Result<()> {
        let _turn = self.running.lock().await;
        let handle = current();
        if handle.flushed_offset() >= target {
            return Ok(());
        }
        let h = handle.clone();
        tokio::task::spawn_blocking(move || h.sync())
            .await
            .map_err(io::Error::other)??;
        self.syncs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Number of fsyncs performed.
    pub fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }
}
