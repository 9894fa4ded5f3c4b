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
//! While a segment is appended to, its entries live on the heap. Once it is
//! sealed they are written to `.index` / `.timeindex` files and dropped from
//! the heap: lookups then binary-search the file (a few positional reads,
//! served by the page cache), so a broker's memory does not grow with the
//! log it retains. Files are validated on load; a missing or inconsistent
//! file is rebuilt from the log by the caller.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

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

/// An entry's fixed-size big-endian encoding in its file.
trait Entry: Copy {
    const SIZE: usize;
    fn decode(b: &[u8]) -> Self;
    fn encode(&self, out: &mut Vec<u8>);
}

impl Entry for IndexEntry {
    const SIZE: usize = 8;
    fn decode(b: &[u8]) -> Self {
        Self {
            relative_offset: u32::from_be_bytes(b[0..4].try_into().expect("4")),
            position: u32::from_be_bytes(b[4..8].try_into().expect("4")),
        }
    }
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.relative_offset.to_be_bytes());
        out.extend_from_slice(&self.position.to_be_bytes());
    }
}

impl Entry for TimeEntry {
    const SIZE: usize = 12;
    fn decode(b: &[u8]) -> Self {
        Self {
            timestamp: i64::from_be_bytes(b[0..8].try_into().expect("8")),
            relative_offset: u32::from_be_bytes(b[8..12].try_into().expect("4")),
        }
    }
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.relative_offset.to_be_bytes());
    }
}

/// The entries of an index: on the heap, or only in its saved file.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entries<E> {
    Memory(Vec<E>),
    Saved {
        path: PathBuf,
        count: usize,
        last: Option<E>,
    },
}

impl<E> Default for Entries<E> {
    fn default() -> Self {
        Self::Memory(Vec::new())
    }
}

impl<E: Entry> Entries<E> {
    fn len(&self) -> usize {
        match self {
            Self::Memory(v) => v.len(),
            Self::Saved { count, .. } => *count,
        }
    }

    fn last(&self) -> Option<E> {
        match self {
            Self::Memory(v) => v.last().copied(),
            Self::Saved { last, .. } => *last,
        }
    }

    /// The heap entries, read back from the file first if saved (before a
    /// sealed segment is appended to again).
    fn memory(&mut self) -> io::Result<&mut Vec<E>> {
        if let Self::Saved { path, .. } = self {
            let buf = fs::read(&*path)?;
            *self = Self::Memory(buf.chunks_exact(E::SIZE).map(E::decode).collect());
        }
        match self {
            Self::Memory(v) => Ok(v),
            Self::Saved { .. } => unreachable!("read back above"),
        }
    }

    /// The number of entries for which `pred` holds (they come first), and
    /// the last of them.
    fn partition_point(&self, pred: impl Fn(&E) -> bool) -> io::Result<(usize, Option<E>)> {
        match self {
            Self::Memory(v) => {
                let i = v.partition_point(pred);
                Ok((i, i.checked_sub(1).map(|j| v[j])))
            }
            Self::Saved { path, count, .. } => {
                let file = fs::File::open(path)?;
                let mut buf = [0u8; 16];
                let mut read = |i: usize| -> io::Result<E> {
                    file.read_exact_at(&mut buf[..E::SIZE], (i * E::SIZE) as u64)?;
                    Ok(E::decode(&buf[..E::SIZE]))
                };
                let (mut lo, mut hi, mut found) = (0, *count, None);
                while lo < hi {
                    let mid = lo + (hi - lo) / 2;
                    let e = read(mid)?;
                    if pred(&e) {
                        lo = mid + 1;
                        found = Some(e);
                    } else {
                        hi = mid;
                    }
                }
                // `found` is the entry at `lo - 1`: `lo` only moves past a
                // matching entry.
                Ok((lo, found))
            }
        }
    }

    fn encode(&self) -> io::Result<Vec<u8>> {
        match self {
            Self::Memory(v) => {
                let mut buf = Vec::with_capacity(v.len() * E::SIZE);
                for e in v {
                    e.encode(&mut buf);
                }
                Ok(buf)
            }
            Self::Saved { path, .. } => fs::read(path),
        }
    }

    /// Drops the heap entries, leaving lookups to the file at `path`, which
    /// must hold exactly these entries.
    fn keep_in_file(&mut self, path: &Path) {
        *self = Self::Saved {
            path: path.to_owned(),
            count: self.len(),
            last: self.last(),
        };
    }

    /// Reads a saved file, checking that each entry follows the one before
    /// (`next`) and fits (`fits`); `None` when it is missing or does not.
    fn load(
        path: &Path,
        next: impl Fn(&E, &E) -> bool,
        fits: impl Fn(&E) -> bool,
    ) -> io::Result<Option<Self>> {
        let Some(buf) = read_if_exists(path)? else {
            return Ok(None);
        };
        if buf.len() % E::SIZE != 0 {
            return Ok(None);
        }
        let mut entries: Vec<E> = Vec::with_capacity(buf.len() / E::SIZE);
        for chunk in buf.chunks_exact(E::SIZE) {
            let e = E::decode(chunk);
            if !entries.last().is_none_or(|l| next(l, &e)) || !fits(&e) {
                return Ok(None);
            }
            entries.push(e);
        }
        Ok(Some(Self::Memory(entries)))
    }
}

/// Sparse offset -> position index.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OffsetIndex {
    entries: Entries<IndexEntry>,
}

impl OffsetIndex {
    /// Adds an entry; relative offsets and positions must grow. The index
    /// must be on the heap (its segment is being appended to).
    pub fn push(&mut self, relative_offset: u32, position: u32) {
        let Entries::Memory(v) = &mut self.entries else {
            panic!("appending to a sealed segment's saved index");
        };
        debug_assert!(
            v.last()
                .is_none_or(|e| e.relative_offset < relative_offset && e.position < position)
        );
        v.push(IndexEntry {
            relative_offset,
            position,
        });
    }

    /// Position of the last indexed batch starting at or before
    /// `relative_offset` (0 when none is).
    pub fn lookup(&self, relative_offset: u32) -> io::Result<IndexEntry> {
        let (_, e) = self
            .entries
            .partition_point(|e| e.relative_offset <= relative_offset)?;
        Ok(e.unwrap_or(IndexEntry {
            relative_offset: 0,
            position: 0,
        }))
    }

    /// Last entry, if any.
    pub fn last(&self) -> Option<IndexEntry> {
        self.entries.last()
    }

    /// Drops entries at or beyond `position` (after truncating the log).
    pub fn truncate_to_position(&mut self, position: u32) -> io::Result<()> {
        let v = self.entries.memory()?;
        let keep = v.partition_point(|e| e.position < position);
        v.truncate(keep);
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the entries are only in the saved file.
    #[cfg(test)]
    pub fn is_saved_only(&self) -> bool {
        matches!(self.entries, Entries::Saved { .. })
    }

    /// Writes the index to `path` atomically and durably (temp file,
    /// fsync, rename, directory fsync).
    pub fn save(&self, path: &Path) -> io::Result<()> {
        write_atomically(path, &self.entries.encode()?)
    }

    /// Writes the index to `path` through a temp file and a rename, without
    /// fsync.
    pub fn save_unsynced(&self, path: &Path) -> io::Result<()> {
        write_replacing(path, &self.entries.encode()?)
    }

    /// Drops the entries from the heap; lookups read `path`, which
    /// [`Self::save`] wrote.
    pub fn keep_in_file(&mut self, path: &Path) {
        self.entries.keep_in_file(path);
    }

    /// Reads the entries back to the heap if only the file held them (the
    /// segment is appended to again).
    pub fn load_to_heap(&mut self) -> io::Result<()> {
        self.entries.memory().map(|_| ())
    }

    /// Loads an index file, returning `None` when it is missing or
    /// inconsistent (wrong size, entries not increasing, positions at or
    /// beyond `log_len`).
    pub fn load(path: &Path, log_len: u64) -> io::Result<Option<Self>> {
        Ok(Entries::load(
            path,
            |l: &IndexEntry, e| l.relative_offset < e.relative_offset && l.position < e.position,
            |e| u64::from(e.position) < log_len,
        )?
        .map(|entries| Self { entries }))
    }
}

/// Sparse timestamp -> offset index.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TimeIndex {
    entries: Entries<TimeEntry>,
}

impl TimeIndex {
    /// Records that the running max timestamp reached `timestamp` in the
    /// batch at `relative_offset`. Ignored unless the timestamp grows. The
    /// index must be on the heap (its segment is being appended to).
    pub fn maybe_push(&mut self, timestamp: i64, relative_offset: u32) {
        let Entries::Memory(v) = &mut self.entries else {
            panic!("appending to a sealed segment's saved time index");
        };
        if v.last().is_none_or(|e| timestamp > e.timestamp) {
            v.push(TimeEntry {
                timestamp,
                relative_offset,
            });
        }
    }

    /// Relative offset to start scanning from to find the first batch whose
    /// max timestamp is >= `timestamp`: the last entry older than it.
    pub fn lookup(&self, timestamp: i64) -> io::Result<u32> {
        let (_, e) = self.entries.partition_point(|e| e.timestamp < timestamp)?;
        Ok(e.map_or(0, |e| e.relative_offset))
    }

    pub fn last(&self) -> Option<TimeEntry> {
        self.entries.last()
    }

    /// Drops entries for batches at or after `relative_offset`.
    pub fn truncate_to_offset(&mut self, relative_offset: u32) -> io::Result<()> {
        let v = self.entries.memory()?;
        let keep = v.partition_point(|e| e.relative_offset < relative_offset);
        v.truncate(keep);
        Ok(())
    }

    /// Writes the index to `path` atomically and durably.
    pub fn save(&self, path: &Path) -> io::Result<()> {
        write_atomically(path, &self.entries.encode()?)
    }

    /// Writes the index to `path` through a temp file and a rename, without
    /// fsync.
    pub fn save_unsynced(&self, path: &Path) -> io::Result<()> {
        write_replacing(path, &self.entries.encode()?)
    }

    /// Drops the entries from the heap; lookups read `path`, which
    /// [`Self::save`] wrote.
    pub fn keep_in_file(&mut self, path: &Path) {
        self.entries.keep_in_file(path);
    }

    /// Reads the entries back to the heap if only the file held them (the
    /// segment is appended to again).
    pub fn load_to_heap(&mut self) -> io::Result<()> {
        self.entries.memory().map(|_| ())
    }

    /// Loads a time index file; `None` when missing or inconsistent
    /// (timestamps or offsets not increasing, offsets past `max_relative`).
    pub fn load(path: &Path, max_relative: u32) -> io::Result<Option<Self>> {
        Ok(Entries::load(
            path,
            |l: &TimeEntry, e| l.timestamp < e.timestamp && l.relative_offset < e.relative_offset,
            |e| e.relative_offset <= max_relative,
        )?
        .map(|entries| Self { entries }))
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
        assert_eq!(i.lookup(0).unwrap().position, 0);
        assert_eq!(i.lookup(9).unwrap().position, 0);
        assert_eq!(i.lookup(10).unwrap().position, 4096);
        assert_eq!(i.lookup(24).unwrap().position, 4096);
        assert_eq!(i.lookup(25).unwrap().position, 8200);
        assert_eq!(i.lookup(u32::MAX).unwrap().position, 8200);
        assert_eq!(OffsetIndex::default().lookup(5).unwrap().position, 0);
    }

    #[test]
    fn given_truncation_then_later_entries_dropped() {
        let mut i = sample();
        i.truncate_to_position(8200).unwrap();
        assert_eq!(i.last().unwrap().relative_offset, 10);
        i.truncate_to_position(1).unwrap();
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
        assert_eq!(t.lookup(50).unwrap(), 0);
        assert_eq!(t.lookup(100).unwrap(), 0);
        assert_eq!(t.lookup(150).unwrap(), 0);
        assert_eq!(t.lookup(201).unwrap(), 10);
        assert_eq!(t.lookup(1000).unwrap(), 20);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("0.timeindex");
        t.save(&p).unwrap();
        assert_eq!(TimeIndex::load(&p, 20).unwrap(), Some(t.clone()));
        assert_eq!(TimeIndex::load(&p, 19).unwrap(), None);
        t.truncate_to_offset(10).unwrap();
        assert_eq!(t.last().unwrap().relative_offset, 0);
    }

    #[test]
    fn given_indexes_kept_only_in_their_files_then_lookups_match_the_heap_and_truncation_reads_them_back()
     {
        let dir = tempfile::tempdir().unwrap();
        let (mut i, mut t) = (OffsetIndex::default(), TimeIndex::default());
        for n in 0..1000u32 {
            i.push(n * 3 + 1, n * 4096 + 7);
            t.maybe_push(i64::from(n) * 10 + 5, n * 3 + 1);
        }
        let (heap_i, heap_t) = (i.clone(), t.clone());
        let (pi, pt) = (dir.path().join("0.index"), dir.path().join("0.timeindex"));
        i.save(&pi).unwrap();
        t.save(&pt).unwrap();
        i.keep_in_file(&pi);
        t.keep_in_file(&pt);
        assert!(i.is_saved_only());
        assert_eq!((i.len(), i.last()), (heap_i.len(), heap_i.last()));
        assert_eq!(t.last(), heap_t.last());
        for rel in 0..3010 {
            assert_eq!(
                i.lookup(rel).unwrap(),
                heap_i.lookup(rel).unwrap(),
                "offset {rel}"
            );
        }
        for ts in 0..10_020 {
            assert_eq!(
                t.lookup(ts).unwrap(),
                heap_t.lookup(ts).unwrap(),
                "timestamp {ts}"
            );
        }
        // Saving again writes the same bytes.
        let again = dir.path().join("1.index");
        i.save(&again).unwrap();
        assert_eq!(fs::read(&again).unwrap(), fs::read(&pi).unwrap());
        // Truncation brings the entries back to the heap.
        i.truncate_to_position(4096 * 10).unwrap();
        t.truncate_to_offset(30).unwrap();
        assert!(!i.is_saved_only());
        assert_eq!(i.len(), 10);
        assert_eq!(t.last().unwrap().relative_offset, 28);
        i.push(31, 4096 * 10 + 7);
        assert_eq!(i.lookup(40).unwrap().position, 4096 * 10 + 7);
    }
}
