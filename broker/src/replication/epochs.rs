//! The leader epoch cache of one partition replica: which leader epoch
//! started at which offset (Kafka's `leader-epoch-checkpoint`).
//!
//! A leader records `(epoch, log end)` when it takes over; a follower
//! records `(epoch, base offset)` when it appends the first batch stamped
//! with a newer epoch. With it, a replica that becomes follower finds where
//! its log and the leader's diverge — the end of the last epoch both have —
//! and truncates exactly there, never to a stale high watermark
//! (KIP-101/279).
//!
//! The file is `leader-epoch-checkpoint` in the partition directory, one
//! `epoch start_offset` line per entry, replaced atomically on change.
//!
//! A leader's new epoch, a follower's first batch of a new epoch
//! ([`EpochCache::assign_unsaved`]) and a truncation
//! ([`EpochCache::truncate_from_end`], [`EpochCache::clear`]) are only
//! held in memory until the partition's next flush saves them
//! ([`EpochCache::save_if_unsaved`]), which happens before the recovery
//! point may pass any batch of a new epoch. A broker taking over thousands
//! of leaderships at once would otherwise wait for two fsyncs per
//! partition before serving any of them, and a follower whose disk is full
//! could store a batch and then fail to record its epoch, leaving its
//! producer and transaction state behind its log. Nothing is lost by a
//! crash before the save: recovery re-reads the batches from the recovery
//! point on and adds the epochs they carry, an epoch without a batch here
//! ends where the log ends, which is what the lost entry said, and entries
//! past the recovered log end are dropped when the partition opens.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// File name in the partition directory.
pub const FILE: &str = "leader-epoch-checkpoint";

/// Epoch -> start offset entries, epochs and offsets increasing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpochCache {
    path: PathBuf,
    entries: Vec<(i32, i64)>,
    /// `entries` differ from the file (an [`EpochCache::assign_unsaved`]).
    unsaved: bool,
    /// The file was written without an fsync ([`EpochCache::save_unsynced`])
    /// and no filesystem sync has covered it yet.
    unsynced: bool,
}

impl EpochCache {
    /// Loads the cache of the partition in `dir` (empty when missing).
    /// Entries that do not increase are dropped, keeping a usable prefix.
    pub fn open(dir: &Path) -> io::Result<Self> {
        let path = dir.join(FILE);
        let mut entries: Vec<(i32, i64)> = Vec::new();
        match fs::read_to_string(&path) {
            Ok(text) => {
                for line in text.lines() {
                    let mut it = line.split_whitespace();
                    let (Some(e), Some(o)) = (it.next(), it.next()) else {
                        break;
                    };
                    let (Ok(e), Ok(o)) = (e.parse::<i32>(), o.parse::<i64>()) else {
                        break;
                    };
                    if entries.last().is_some_and(|(le, lo)| e <= *le || o < *lo) {
                        break;
                    }
                    entries.push((e, o));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        Ok(Self {
            path,
            entries,
            unsaved: false,
            unsynced: false,
        })
    }

    /// The newest (epoch, start offset).
    pub fn latest(&self) -> Option<(i32, i64)> {
        self.entries.last().copied()
    }

    /// Epoch of the last batch in a log ending at `log_end`, or -1.
    pub fn latest_epoch(&self) -> i32 {
        self.latest().map_or(-1, |(e, _)| e)
    }

    pub fn entries(&self) -> &[(i32, i64)] {
        &self.entries
    }

    /// Records that `epoch` starts at `start_offset`. Ignored unless the
    /// epoch is newer than the latest; an entry starting at or after
    /// `start_offset` with an older epoch is replaced (it held no data).
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> io::Result<bool> {
        if !self.assign_unsaved(epoch, start_offset) {
            return Ok(false);
        }
        self.save()?;
        Ok(true)
    }

    /// [`EpochCache::assign`] in memory only; the file follows at the next
    /// [`EpochCache::save_if_unsaved`] (or any saving change). For a
    /// leader's new epoch at its log end, before it has appended anything
    /// in that epoch (see the module docs for why that is safe).
    pub fn assign_unsaved(&mut self, epoch: i32, start_offset: i64) -> bool {
        if self.latest().is_some_and(|(e, _)| epoch <= e) {
            return false;
        }
        while self.entries.last().is_some_and(|(_, o)| *o >= start_offset) {
            self.entries.pop();
        }
        self.entries.push((epoch, start_offset));
        self.unsaved = true;
        true
    }

    /// Whether the file is not yet durably what `entries` say: entries are
    /// waiting for [`EpochCache::save_if_unsaved`], or were written without
    /// an fsync that no sync has covered yet.
    pub fn is_unsaved(&self) -> bool {
        self.unsaved || self.unsynced
    }

    /// Writes the file (fsynced) unless it already durably holds `entries`.
    pub fn save_if_unsaved(&mut self) -> io::Result<()> {
        if self.is_unsaved() {
            self.save()?;
        }
        Ok(())
    }

    /// Writes the file if `entries` changed, without fsyncs (a temporary
    /// file renamed over it): for the batched flush, whose next
    /// filesystem-wide sync makes it durable ([`EpochCache::synced`]).
    /// Until then [`EpochCache::is_unsaved`] stays true, so the recovery
    /// point must wait. Returns whether it wrote.
    pub fn save_unsynced(&mut self) -> io::Result<bool> {
        if !self.unsaved {
            return Ok(false);
        }
        crate::log::write_replacing(&self.path, self.encode().as_bytes())?;
        self.unsaved = false;
        self.unsynced = true;
        Ok(true)
    }

    /// A filesystem-wide sync that began after the last
    /// [`EpochCache::save_unsynced`] completed: the file is durable.
    pub fn synced(&mut self) {
        self.unsynced = false;
    }

    /// The largest epoch <= `epoch` this replica has, with the offset where
    /// it ends: the next epoch's start, or `log_end` for the latest one.
    /// `(-1, -1)` when every known epoch is newer (or none is known).
    pub fn end_offset_for(&self, epoch: i32, log_end: i64) -> (i32, i64) {
        let i = self.entries.partition_point(|(e, _)| *e <= epoch);
        if i == 0 {
            return (-1, -1);
        }
        let found = self.entries[i - 1].0;
        let end = self.entries.get(i).map_or(log_end, |(_, o)| *o);
        (found, end)
    }

    /// Forgets epochs that start at or after `end_offset` (the log was
    /// truncated there). In memory: the file follows at the next
    /// [`EpochCache::save_if_unsaved`]. Until then it may hold entries past
    /// the log end, which [`crate::partition::Partition`] drops again when
    /// it opens the log, so the change cannot be lost by a crash, and a
    /// full disk cannot leave the replica's state half truncated. Returns
    /// whether entries went.
    pub fn truncate_from_end(&mut self, end_offset: i64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|(_, o)| *o < end_offset);
        let changed = self.entries.len() != before;
        self.unsaved |= changed;
        changed
    }

    /// The log was emptied and restarts at some offset. In memory, like
    /// [`EpochCache::truncate_from_end`].
    pub fn clear(&mut self) {
        if !self.entries.is_empty() {
            self.entries.clear();
            self.unsaved = true;
        }
    }

    fn encode(&self) -> String {
        let mut text = String::new();
        for (e, o) in &self.entries {
            text.push_str(&format!("{e} {o}\n"));
        }
        text
    }

    fn save(&mut self) -> io::Result<()> {
        crate::log::write_atomically(&self.path, self.encode().as_bytes())?;
        self.unsaved = false;
        self.unsynced = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_epochs_then_end_offsets_follow_kafka_rules() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = EpochCache::open(dir.path()).unwrap();
        assert_eq!(c.end_offset_for(0, 0), (-1, -1));
        c.assign(1, 0).unwrap();
        c.assign(3, 10).unwrap();
        c.assign(4, 25).unwrap();
        assert!(!c.assign(2, 30).unwrap(), "older epochs are ignored");
        assert_eq!(c.end_offset_for(0, 40), (-1, -1));
        assert_eq!(c.end_offset_for(1, 40), (1, 10));
        // Epoch 2 never led here: the largest epoch below it is 1.
        assert_eq!(c.end_offset_for(2, 40), (1, 10));
        assert_eq!(c.end_offset_for(3, 40), (3, 25));
        assert_eq!(c.end_offset_for(4, 40), (4, 40));
        assert_eq!(c.end_offset_for(9, 40), (4, 40));
        assert_eq!(c.latest_epoch(), 4);
    }

    #[test]
    fn given_an_unsaved_assignment_then_only_a_save_writes_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = EpochCache::open(dir.path()).unwrap();
        c.assign(1, 0).unwrap();
        assert!(c.assign_unsaved(2, 7));
        assert!(!c.assign_unsaved(2, 9), "not newer");
        assert!(c.is_unsaved());
        assert_eq!(c.latest(), Some((2, 7)));
        assert_eq!(
            EpochCache::open(dir.path()).unwrap().entries(),
            &[(1, 0)],
            "the file still holds what was saved"
        );
        c.save_if_unsaved().unwrap();
        assert!(!c.is_unsaved());
        assert_eq!(
            EpochCache::open(dir.path()).unwrap().entries(),
            &[(1, 0), (2, 7)]
        );
        // A saving change saves the unsaved entries with it.
        assert!(c.assign_unsaved(3, 9));
        c.assign(4, 12).unwrap();
        assert!(!c.is_unsaved());
        assert_eq!(
            EpochCache::open(dir.path()).unwrap().entries(),
            &[(1, 0), (2, 7), (3, 9), (4, 12)]
        );
    }

    #[test]
    fn given_truncation_and_reopen_then_entries_persist() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = EpochCache::open(dir.path()).unwrap();
        c.assign(1, 0).unwrap();
        c.assign(2, 10).unwrap();
        c.assign(5, 20).unwrap();
        assert!(c.truncate_from_end(20));
        assert_eq!(c.entries(), &[(1, 0), (2, 10)]);
        assert_eq!(
            EpochCache::open(dir.path()).unwrap().entries(),
            &[(1, 0), (2, 10), (5, 20)],
            "a truncation reaches the file only when saved"
        );
        c.save_if_unsaved().unwrap();
        let again = EpochCache::open(dir.path()).unwrap();
        assert_eq!(again.entries(), c.entries());
        // A newer epoch starting where an empty older one starts replaces it.
        c.assign(6, 10).unwrap();
        assert_eq!(c.entries(), &[(1, 0), (6, 10)]);
        c.clear();
        c.save_if_unsaved().unwrap();
        assert_eq!(EpochCache::open(dir.path()).unwrap().latest(), None);
    }

    #[test]
    fn given_an_unsynced_save_then_it_counts_as_saved_only_after_a_sync() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = EpochCache::open(dir.path()).unwrap();
        c.assign_unsaved(3, 0);
        assert!(c.save_unsynced().unwrap());
        assert_eq!(EpochCache::open(dir.path()).unwrap().entries(), &[(3, 0)]);
        assert!(c.is_unsaved(), "not durable before a sync");
        assert!(!c.save_unsynced().unwrap(), "nothing new to write");
        c.synced();
        assert!(!c.is_unsaved());
        // A durable save also covers an unsynced one.
        c.assign_unsaved(4, 5);
        c.save_unsynced().unwrap();
        c.save_if_unsaved().unwrap();
        assert!(!c.is_unsaved());
        assert_eq!(
            EpochCache::open(dir.path()).unwrap().entries(),
            &[(3, 0), (4, 5)]
        );
    }

    #[test]
    fn given_damaged_file_then_valid_prefix_kept() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(FILE), "1 0\n3 10\n2 20\ngarbage\n").unwrap();
        let c = EpochCache::open(dir.path()).unwrap();
        assert_eq!(c.entries(), &[(1, 0), (3, 10)]);
    }
}
