//! The partitions led here whose ISR may change soon, so that the cluster
//! link's ISR check looks at them at once instead of walking every
//! partition ten times a second.
//!
//! What makes an expansion (or a resignation) possible is an event on the
//! partition, and each marks it here:
//! - a follower outside the ISR fetched (it may have caught up);
//! - the controller answered an ISR change (a failed or partial one is
//!   proposed again);
//! - this broker became leader, or new metadata changed its replicas;
//! - the replica went offline (its leadership must move).
//!
//! A shrink follows time alone (a follower stopped fetching), so the link
//! still walks every partition, but only every tenth of
//! `replica.lag.time.max.ms` (at most once a second).

use std::sync::Arc;

/// Partitions marked since the ISR check last took them; each at most once
/// (the partition's own flag keeps it from being queued twice).
#[derive(Debug, Default)]
pub struct IsrDue {
    marked: parking_lot::Mutex<Vec<(Arc<str>, i32)>>,
}

impl IsrDue {
    pub(super) fn mark(&self, topic: &Arc<str>, partition: i32) {
        self.marked.lock().push((Arc::clone(topic), partition));
    }

    /// The partitions marked since the last call.
    pub fn take(&self) -> Vec<(Arc<str>, i32)> {
        std::mem::take(&mut *self.marked.lock())
    }
}
