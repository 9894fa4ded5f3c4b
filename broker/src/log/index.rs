//! Sparse per-segment indexes.
//!
//! - The offset index maps a batch's base offset (relative to the segment's
//!   base offset) to its byte position in the `.log` file, one entry per
//!   ~`index.interval.bytes` of log. A lookup returns the last entry at or
//!   before the wanted offset; the reader scans forward from there.
//! - The time index maps the running maximum timestamp to the relative base
//!   offset of the batch where that maximum was reached, so everything
//!   before an entry has an older timestamp.
//!
//! Both live in memory and are written to `.index` / `.timeindex` files when
//! a segment is sealed or the log is closed. Files are validated on load; a
//! missing or inconsistent file is rebuilt from the log by the caller.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

/// One offset index entry: relative offset and file position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    pub relative_offset: u32,
    pub position: u32,
}

/// One time index entry: running max timestamp and relative offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeEntry {
    pub timestamp: i64,
    pub relative_offset: u32,
}

const INDEX_ENTRY: usize = 8;
const TIME_ENTRY: usize = 12;

/// Sparse offset -> position index.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OffsetIndex {
    entries: Vec<IndexEntry>,
}

impl OffsetIndex {
    /// Adds an entry; relative offsets and positions must grow.
    pub fn push(&mut self, relative_offset: u32, position: u32) {
        debug_assert!(
            self.entries
                .last()
                .is_none_or(|e| e.relative_offset < relative_offset && e.position < position)
        );
        self.entries.push(IndexEntry {
            relative_offset,
            position,
        });
    }

    /// Position of the last indexed batch starting at or before
    /// `relative_offset` (0 when none is).
    pub fn lookup(&self, relative_offset: u32) -> IndexEntry {
        let i = self
            .entries
            .partition_point(|e| e.relative_offset <= relative_offset);
        if i == 0 {
            IndexEntry {
                relative_offset: 0,
                position: 0,
            }
        } else {
            self.entries[i - 1]
        }
    }

    /// Last entry, if any.
    pub fn last(&self) -> Option<IndexEntry> {
        self.entries.last().copied()
    }

    /// Drops entries at or beyond `position` (after truncating the log).
    pub fn truncate_to_position(&mut self, position: u32) {
        let keep = self.entries.partition_point(|e| e.position < position);
        self.entries.truncate(keep);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn encode(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(self.entries.len() * INDEX_ENTRY);
        for e in &self.entries {
            buf.extend_from_slice(&e.relative_offset.to_be_bytes());
            buf.extend_from_slice(&e.position.to_be_bytes());
        }
        buf
    }

    /// Writes the index to `path` atomically and durably (temp file,
    /// fsync, rename, directory fsync).
    pub fn save(&self, path: &Path) -> io::Result<()> {
        write_atomically(path, &self.encode())
    }

    /// Writes the index to `path` through a temp file and a rename, without
    /// fsync.
    pub fn save_unsynced(&self, path: &Path) -> io::Result<()> {
        write_replacing(path, &self.encode())
    }

    /// Loads an index file, returning `None` when it is missing or
    /// inconsistent (wrong size, entries not increasing, positions at or
    /// beyond `log_len`).
    pub fn load(path: &Path, log_len: u64) -> io::Result<Option<Self>> {
        let Some(buf) = read_if_exists(path)? else {
            return Ok(None);
        };
        if buf.len() % INDEX_ENTRY != 0 {
            return Ok(None);
        }
        let mut index = Self::default();
        for chunk in buf.chunks_exact(INDEX_ENTRY) {
            let e = IndexEntry {
                relative_offset: u32::from_be_bytes(chunk[0..4].try_into().expect("4")),
                position: u32::from_be_bytes(chunk[4..8].try_into().expect("4")),
            };
            let increasing = index
                .last()
                .is_none_or(|l| l.relative_offset < e.relative_offset && l.position < e.position);
            if !increasing || u64::from(e.position) >= log_len {
                return Ok(None);
            }
            index.entries.push(e);
        }
        Ok(Some(index))
    }
}

/// Sparse timestamp -> offset index.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TimeIndex {
    entries: Vec<TimeEntry>,
}

impl TimeIndex {
    /// Records that the running max timestamp reached `timestamp` in the
    /// batch at `relative_offset`. Ignored unless the timestamp grows.
    pub fn maybe_push(&mut self, timestamp: i64, relative_offset: u32) {
        if self.entries.last().is_none_or(|e| timestamp > e.timestamp) {
            self.entries.push(TimeEntry {
                timestamp,
                relative_offset,
            });
        }
    }

    /// Relative offset to start scanning from to find the first batch whose
    /// max timestamp is >= `timestamp`: the last entry older than it.
    pub fn lookup(&self, timestamp: i64) -> u32 {
        let i = self.entries.partition_point(|e| e.timestamp < timestamp);
        if i == 0 {
            0
        } else {
            self.entries[i - 1].relative_offset
        }
    }

    pub fn last(&self) -> Option<TimeEntry> {
        self.entries.last().copied()
    }

    /// Drops entries for batches at or after `relative_offset`.
    pub fn truncate_to_offset(&mut self, relative_offset: u32) {
        let keep = self
            .entries
            .partition_point(|e| e.relative_offset < relative_offset);
        self.entries.truncate(keep);
    }

    fn encode(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(self.entries.len() * TIME_ENTRY);
        for e in &self.entries {
            buf.extend_from_slice(&e.timestamp.to_be_bytes());
            buf.extend_from_slice(&e.relative_offset.to_be_bytes());
        }
        buf
    }

    /// Writes the index to `path` atomically and durably.
    pub fn save(&self, path: &Path) -> io::Result<()> {
        write_atomically(path, &self.encode())
    }

    /// Writes the index to `path` through a temp file and a rename, without
    /// fsync.
    pub fn save_unsynced(&self, path: &Path) -> io::Result<()> {
        write_replacing(path, &self.encode())
    }

    /// Loads a time index file; `None` when missing or inconsistent
    /// (timestamps or offsets not increasing, offsets past `max_relative`).
    pub fn load(path: &Path, max_relative: u32) -> io::Result<Option<Self>> {
        let Some(buf) = read_if_exists(path)? else {
            return Ok(None);
        };
        if buf.len() % TIME_ENTRY != 0 {
            return Ok(None);
        }
        let mut index = Self::default();
        for chunk in buf.chunks_exact(TIME_ENTRY) {
            let e = TimeEntry {
                timestamp: i64::from_be_bytes(chunk[0..8].try_into().expect("8")),
                relative_offset: u32::from_be_bytes(chunk[8..12].try_into().expect("4")),
            };
            let increasing = index
                .last()
                .is_none_or(|l| l.timestamp < e.timestamp && l.relative_offset < e.relative_offset);
            if !increasing || e.relative_offset > max_relative {
                return Ok(None);
            }
            index.entries.push(e);
        }
        Ok(Some(index))
    }
}

pub(super) fn read_if_exists(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes `data` to `path` through a temporary file and a rename, so a crash
/// leaves either the old or the new file, never a torn one.
pub fn write_atomically(path: &Path, data: &[u8]) -> io::Result<()> {
    let tmp = tmp_path(path);
    {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_data()?;
    }
    fs::rename(&tmp, path)?;
    // The rename is durable only once the directory entry is: without
    // this, a crash can bring back the old file (or none).
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

fn tmp_path(path: &Path) -> std::path::PathBuf {
    path.with_extension(format!(
        "{}.tmp",
        path.extension().and_then(|e| e.to_str()).unwrap_or("")
    ))
}

/// Replaces `path` with `data` through a temp file and a rename, so a
/// reader never sees a half-written file while the system runs; nothing
/// is fsynced, so after a crash the file may be old, missing or cut short.
pub fn write_replacing(path: &Path, data: &[u8]) -> io::Result<()> {
    let tmp = tmp_path(path);
    fs::write(&tmp, data)?;
    fs::rename(&tmp, path)
}

/// fsyncs a directory, making renames and new entries in it durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> OffsetIndex {
        let mut i = OffsetIndex::default();
        i.push(0, 0);
        i.push(10, 4096);
        i.push(25, 8200);
        i
    }

    #[test]
    fn given_sparse_entries_when_lookup_then_floor_entry() {
        let i = sample();
        assert_eq!(i.lookup(0).position, 0);
        assert_eq!(i.lookup(9).position, 0);
        assert_eq!(i.lookup(10).position, 4096);
        assert_eq!(i.lookup(24).position, 4096);
        assert_eq!(i.lookup(25).position, 8200);
        assert_eq!(i.lookup(u32::MAX).position, 8200);
        assert_eq!(OffsetIndex::default().lookup(5).position, 0);
    }

    #[test]
    fn given_truncation_then_later_entries_dropped() {
        let mut i = sample();
        i.truncate_to_position(8200);
        assert_eq!(i.last().unwrap().relative_offset, 10);
        i.truncate_to_position(1);
        assert_eq!(i.len(), 1);
    }

    #[test]
    fn given_saved_index_then_loads_and_rejects_inconsistent_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("0.index");
        let i = sample();
        i.save(&p).unwrap();
        assert_eq!(OffsetIndex::load(&p, 10_000).unwrap(), Some(i.clone()));
        // A log shorter than an indexed position makes the index stale.
        assert_eq!(OffsetIndex::load(&p, 8200).unwrap(), None);
        // Torn file.
        let mut bytes = fs::read(&p).unwrap();
        bytes.pop();
        fs::write(&p, &bytes).unwrap();
        assert_eq!(OffsetIndex::load(&p, 10_000).unwrap(), None);
        // Missing file.
        assert_eq!(
            OffsetIndex::load(&dir.path().join("x.index"), 1).unwrap(),
            None
        );
    }

    #[test]
    fn given_time_entries_then_lookup_returns_last_older_entry() {
        let mut t = TimeIndex::default();
        t.maybe_push(100, 0);
        t.maybe_push(90, 5); // not growing: ignored
        t.maybe_push(200, 10);
        t.maybe_push(300, 20);
        assert_eq!(t.lookup(50), 0);
        assert_eq!(t.lookup(100), 0);
        assert_eq!(t.lookup(150), 0);
        assert_eq!(t.lookup(201), 10);
        assert_eq!(t.lookup(1000), 20);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("0.timeindex");
        t.save(&p).unwrap();
        assert_eq!(TimeIndex::load(&p, 20).unwrap(), Some(t.clone()));
        assert_eq!(TimeIndex::load(&p, 19).unwrap(), None);
        t.truncate_to_offset(10);
        assert_eq!(t.last().unwrap().relative_offset, 0);
    }
}
