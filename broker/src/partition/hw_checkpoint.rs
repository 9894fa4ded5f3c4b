//! The high watermark checkpoint of one partition replica (Kafka's
//! `replication-offset-checkpoint`, here one small file per partition
//! directory).
//!
//! A replica restarts with the HW it last checkpointed, never with its log
//! end: records above the HW may never have been committed, and a restarted
//! replica that becomes leader must not expose them before its followers
//! confirm them in its epoch. The checkpoint may lag the real HW (it is
//! written every [`INTERVAL`] and at shutdown); a lower HW only delays what
//! consumers see until the leader's HW passes it again. For the same reason
//! an unreadable checkpoint (a crash can tear one written without an
//! fsync) is read as none.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// File name in the partition directory.
pub const FILE: &str = "high-watermark";

/// How often a changed HW is written (Kafka's
/// `replica.high.watermark.checkpoint.interval.ms` default).
pub const INTERVAL: Duration = Duration::from_secs(5);

/// The checkpoint file and what was last written to it.
#[derive(Debug)]
pub struct HighWatermarkCheckpoint {
    path: PathBuf,
    /// The HW last written, and when.
    written: Mutex<(i64, Instant)>,
}

impl HighWatermarkCheckpoint {
    /// Reads the checkpoint in `dir` and returns it with the HW to restart
    /// with, within `[log_start, log_end]`. Without a checkpoint (a new
    /// partition, or a log written before Rill kept one) the HW starts at
    /// the log start: nothing is exposed until the leader's HW passes it
    /// again (a standalone broker raises it to the log end).
    pub fn open(dir: &Path, log_start: i64, log_end: i64) -> io::Result<(Self, i64)> {
        let path = dir.join(FILE);
        let stored = match crate::log::number_file::read(&path) {
            Ok(stored) => stored,
            // A checkpoint written without an fsync (the batched interval
            // flush) can be torn by a crash: read as none.
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                tracing::warn!(error = %e, "unreadable high watermark checkpoint; starting from the log start");
                None
            }
            Err(e) => return Err(e),
        };
        let hw = stored.unwrap_or(log_start).clamp(log_start, log_end);
        let checkpoint = Self {
            path,
            // Nothing written yet: the first change is written at once.
            written: Mutex::new((
                stored.unwrap_or(-1),
                Instant::now()
                    .checked_sub(INTERVAL)
                    .unwrap_or_else(Instant::now),
            )),
        };
        Ok((checkpoint, hw))
    }

    /// Writes `hw` if it changed and the last write is older than
    /// [`INTERVAL`] (or `force`), in place ([`crate::log::number_file`]).
    /// `durable`: fsynced before returning; otherwise left to the next
    /// sync, so a crash may leave the older checkpoint or a torn one that
    /// reads as none. Returns whether it wrote.
    pub fn maybe_write(
        &self,
        hw: i64,
        now: Instant,
        force: bool,
        durable: bool,
    ) -> io::Result<bool> {
        let mut written = self.written.lock();
        if written.0 == hw || (!force && now.duration_since(written.1) < INTERVAL) {
            return Ok(false);
        }
        crate::log::number_file::write(&self.path, hw, durable)?;
        *written = (hw, now);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_an_empty_or_garbled_checkpoint_then_the_hw_starts_at_the_log_start() {
        let dir = tempfile::tempdir().unwrap();
        for text in ["", "12x\n"] {
            std::fs::write(dir.path().join(FILE), text).unwrap();
            let (_, hw) = HighWatermarkCheckpoint::open(dir.path(), 5, 50).unwrap();
            assert_eq!(hw, 5, "{text:?}");
        }
    }

    #[test]
    fn given_an_unsynced_write_then_it_is_read_back_and_the_interval_still_applies() {
        let dir = tempfile::tempdir().unwrap();
        let (checkpoint, _) = HighWatermarkCheckpoint::open(dir.path(), 0, 100).unwrap();
        let now = Instant::now();
        assert!(checkpoint.maybe_write(40, now, false, false).unwrap());
        assert!(!checkpoint.maybe_write(41, now, false, false).unwrap());
        let (_, hw) = HighWatermarkCheckpoint::open(dir.path(), 0, 100).unwrap();
        assert_eq!(hw, 40);
    }
}
