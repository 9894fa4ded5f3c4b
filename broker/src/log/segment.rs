//! One segment of a partition log: a `.log` file of record batches named by
//! its 20-digit base offset, with an in-memory sparse offset index and time
//! index that are saved as `.index` / `.timeindex` (and the transaction
//! index as `.txnindex`, see [`super::txnindex`]) when the segment is
//! sealed.
//!
//! Writes go to the file with positional writes at `size`, the end of the
//! valid data; `size` only moves after a write fully succeeded, so readers
//! (which never look past `size`) cannot see a torn append, and a failed
//! write (for example ENOSPC) is cut off again with `set_len`.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::batch::{self, BatchHeader, HEADER_LEN, LOG_OVERHEAD};
use super::index::{OffsetIndex, TimeIndex};
use super::txnindex::{self, TxnBatch, TxnIndex};

/// How a segment writes the batches it appends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stamp {
    /// As they are (a follower stores the leader's batches verbatim).
    AsIs,
    /// With the base offset and leader epoch of their headers (a leader's
    /// append assigns both; the producer's bytes stay untouched).
    FromHeaders,
}

/// A batch's first bytes: base offset, length and partition leader epoch,
/// the part outside its CRC that a leader stamps.
const STAMPED_LEN: usize = 16;

/// `pwritev` of two buffers at `offset`, until all of both is written.
fn write_all_vectored_at(file: &File, parts: [&[u8]; 2], mut offset: u64) -> io::Result<()> {
    let [mut first, mut second] = parts;
    while !first.is_empty() || !second.is_empty() {
        let slices = [io::IoSlice::new(first), io::IoSlice::new(second)];
        let n = match rustix::io::pwritev(file, &slices, offset) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        };
        offset += n as u64;
        let from_first = n.min(first.len());
        first = &first[from_first..];
        second = &second[n - from_first..];
    }
    Ok(())
}

/// File name stem of a segment: its base offset, zero-padded to 20 digits.
pub fn file_stem(base_offset: i64) -> String {
    format!("{base_offset:020}")
}

/// Parses a segment base offset out of a `.log` file name.
pub fn parse_log_name(name: &str) -> Option<i64> {
    let stem = name.strip_suffix(".log")?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// Whole batches read from a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadSlice {
    /// Concatenated batches, verbatim.
    pub data: Vec<u8>,
    /// Base offset of the first batch.
    pub first_offset: i64,
    /// Offset after the last batch.
    pub next_offset: i64,
}

/// What recovery cut off the tail of a segment, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncation {
    pub position: u64,
    pub discarded_bytes: u64,
    pub reason: String,
}

/// How much of a segment [`Segment::open`] may take from disk without
/// validating every batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// Nothing: every batch is validated (CRC included), the indexes are
    /// rebuilt, and the file is cut at the first torn or corrupt batch.
    Nothing,
    /// The segment lies wholly below the log's recovery point: its saved
    /// indexes (when usable) and a walk over the batch headers after the
    /// last index entry.
    Sealed,
    /// Batches ending at or below this offset (the log's recovery point,
    /// below which everything was fsynced) by their headers, starting
    /// after the saved indexes when they are usable (a clean shutdown
    /// saves them for the segment it was appending to); every batch after
    /// those is validated. The transaction index is rebuilt from the batch
    /// headers, as that file is only written when a segment is sealed.
    Below(i64),
}

#[derive(Debug)]
pub struct Segment {
    pub(super) base_offset: i64,
    dir: PathBuf,
    /// Shared so fsync (group commit) can run without holding the log lock.
    file: Arc<File>,
    /// End of the valid data; nothing at or past it is ever read.
    size: u64,
    /// Offset after the last batch (the base offset when empty).
    next_offset: i64,
    /// Largest batch max-timestamp seen, -1 when none.
    max_timestamp: i64,
    /// When the segment was opened or created (ms), for roll by age.
    created_ms: i64,
    index: OffsetIndex,
    time_index: TimeIndex,
    /// The transactional batches and markers (`None`: a trusted segment
    /// without a usable `.txnindex`; read its headers instead).
    txns: Option<TxnIndex>,
    /// Bytes appended since the last index entry.
    bytes_since_index: u32,
    index_interval: u32,
}

impl Segment {
    pub fn log_path(dir: &Path, base_offset: i64) -> PathBuf {
        dir.join(format!("{}.log", file_stem(base_offset)))
    }
    fn index_path(&self) -> PathBuf {
        self.dir
            .join(format!("{}.index", file_stem(self.base_offset)))
    }
    fn time_index_path(&self) -> PathBuf {
        self.dir
            .join(format!("{}.timeindex", file_stem(self.base_offset)))
    }
    fn txn_index_path(&self) -> PathBuf {
        self.dir
            .join(format!("{}.txnindex", file_stem(self.base_offset)))
    }

    fn open_file(path: &Path, create_new: bool) -> io::Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(create_new)
            .open(path)
    }

    /// Creates a new, empty segment file.
    pub fn create(
        dir: &Path,
        base_offset: i64,
        index_interval: u32,
        now_ms: i64,
    ) -> io::Result<Self> {
        let path = Self::log_path(dir, base_offset);
        let file = match Self::open_file(&path, true) {
            Ok(f) => f,
            // A leftover empty file (crash right after creating it) is reused.
            Err(e)
                if e.kind() == io::ErrorKind::AlreadyExists && fs::metadata(&path)?.len() == 0 =>
            {
                Self::open_file(&path, false)?
            }
            Err(e) => return Err(e),
        };
        Ok(Self::empty(dir, base_offset, file, index_interval, now_ms))
    }

    fn empty(dir: &Path, base_offset: i64, file: File, index_interval: u32, now_ms: i64) -> Self {
        Self {
            base_offset,
            dir: dir.to_owned(),
            file: Arc::new(file),
            size: 0,
            next_offset: base_offset,
            max_timestamp: -1,
            created_ms: now_ms,
            index: OffsetIndex::default(),
            time_index: TimeIndex::default(),
            txns: Some(TxnIndex::default()),
            bytes_since_index: 0,
            index_interval,
        }
    }

    /// Opens an existing segment, taking from disk what `trust` allows
    /// (see [`Trust`]) and validating every batch it does not (CRC
    /// included): indexes are rebuilt for those, and the file is cut at the
    /// first torn or corrupt one.
    pub fn open(
        dir: &Path,
        base_offset: i64,
        index_interval: u32,
        trust: Trust,
        now_ms: i64,
    ) -> io::Result<(Self, Option<Truncation>)> {
        let file = Self::open_file(&Self::log_path(dir, base_offset), false)?;
        let len = file.metadata()?.len();
        let mut seg = Self::empty(dir, base_offset, file, index_interval, now_ms);
        match trust {
            Trust::Sealed => {
                if seg.load_saved_indexes(len, i64::MAX)? {
                    let from = seg.index.last().map_or(0, |e| u64::from(e.position));
                    let saved = seg.index.len();
                    if seg.walk_headers(from, len, i64::MAX)? == Some(len) {
                        seg.txns =
                            TxnIndex::load(&seg.txn_index_path(), base_offset, seg.next_offset)?;
                        // The files hold every entry unless the walk added
                        // some (a different `index.interval.bytes`).
                        if seg.index.len() == saved {
                            seg.keep_indexes_in_files();
                        }
                        return Ok((seg, None));
                    }
                }
            }
            Trust::Below(point) => {
                // Saved indexes (a clean shutdown) spare most of the walk;
                // without them the walk starts at the first batch.
                let from = if seg.load_saved_indexes(len, point)? {
                    seg.index.last().map_or(0, |e| u64::from(e.position))
                } else {
                    0
                };
                if let Some(pos) = seg.walk_headers(from, len, point)? {
                    let truncation = seg.recover(pos, len)?;
                    seg.txns = Some(seg.scan_txns()?);
                    return Ok((seg, truncation));
                }
            }
            Trust::Nothing => {}
        }
        // A refused load or walk may have filled in some of the state.
        seg.reset();
        seg.remove_saved_indexes();
        let truncation = seg.recover(0, len)?;
        Ok((seg, truncation))
    }

    /// Back to the state of an empty segment (the file is untouched).
    fn reset(&mut self) {
        self.size = 0;
        self.next_offset = self.base_offset;
        self.max_timestamp = -1;
        self.index = OffsetIndex::default();
        self.time_index = TimeIndex::default();
        self.txns = Some(TxnIndex::default());
        self.bytes_since_index = 0;
    }

    /// Loads the saved offset and time indexes. False when they are
    /// missing, inconsistent, or index a batch at or above `point`.
    fn load_saved_indexes(&mut self, len: u64, point: i64) -> io::Result<bool> {
        let Some(index) = OffsetIndex::load(&self.index_path(), len)? else {
            return Ok(false);
        };
        let max_rel = index.last().map_or(0, |e| e.relative_offset);
        if self.base_offset + i64::from(max_rel) >= point {
            return Ok(false);
        }
        let Some(time_index) = TimeIndex::load(&self.time_index_path(), max_rel)? else {
            return Ok(false);
        };
        self.index = index;
        self.time_index = time_index;
        self.max_timestamp = self.time_index.last().map_or(-1, |e| e.timestamp);
        Ok(true)
    }

    /// Walks batch headers from `pos` (the start of a batch), indexing each
    /// batch, as long as batches end at or below `point`. Returns where it
    /// stopped (`len` when it walked the whole file), or `None` when a
    /// header does not fit the file or the offsets before it.
    fn walk_headers(&mut self, mut pos: u64, len: u64, point: i64) -> io::Result<Option<u64>> {
        let mut header = [0u8; HEADER_LEN];
        while pos < len {
            if len - pos < HEADER_LEN as u64 {
                // A torn tail: validation cuts it (a sealed segment's walk
                // must reach `len`, so it is refused).
                break;
            }
            self.file.read_exact_at(&mut header, pos)?;
            let h = BatchHeader::parse(&header).expect("HEADER_LEN bytes");
            if h.next_offset() > point {
                break;
            }
            if h.batch_length < (HEADER_LEN - LOG_OVERHEAD) as i32
                || pos + h.total_len() as u64 > len
                || h.base_offset < self.next_offset
                || h.last_offset() - self.base_offset > i64::from(u32::MAX)
            {
                return Ok(None);
            }
            self.track(&h, pos as u32);
            pos += h.total_len() as u64;
        }
        self.size = pos;
        Ok(Some(pos))
    }

    /// Validates batch by batch from `from` (the start of a batch, with the
    /// state of everything before it in place), indexing each, and
    /// truncates at the first bad batch.
    fn recover(&mut self, from: u64, len: u64) -> io::Result<Option<Truncation>> {
        let mut pos = from;
        let mut buf = Vec::new();
        let mut frame = [0u8; LOG_OVERHEAD];
        let bad = loop {
            if pos == len {
                break None;
            }
            let remaining = len - pos;
            if remaining < HEADER_LEN as u64 {
                break Some(format!(
                    "{remaining} trailing bytes, shorter than a batch header"
                ));
            }
            self.file.read_exact_at(&mut frame, pos)?;
            let max = remaining.min(i32::MAX as u64) as usize;
            let total = match batch::frame_len(&frame, max) {
                Ok(t) => t,
                Err(e) => break Some(e.to_string()),
            };
            buf.resize(total, 0);
            self.file.read_exact_at(&mut buf, pos)?;
            let h = match batch::validate(&buf, total) {
                Ok(h) => h,
                Err(e) => break Some(e.to_string()),
            };
            if h.base_offset < self.next_offset {
                break Some(format!(
                    "batch base offset {} goes backwards (expected >= {})",
                    h.base_offset, self.next_offset
                ));
            }
            if h.last_offset() - self.base_offset > i64::from(u32::MAX) {
                break Some(format!(
                    "batch offset {} too far from segment base",
                    h.base_offset
                ));
            }
            self.track(&h, pos as u32);
            self.track_txn(&h, &buf);
            pos += total as u64;
        };
        self.size = pos;
        let Some(reason) = bad else {
            return Ok(None);
        };
        self.file.set_len(pos)?;
        self.file.sync_all()?;
        Ok(Some(Truncation {
            position: pos,
            discarded_bytes: len - pos,
            reason,
        }))
    }

    /// Records a transactional batch or marker (`bytes`: the whole batch)
    /// in the transaction index.
    fn track_txn(&mut self, h: &BatchHeader, bytes: &[u8]) {
        if !txnindex::is_txn_header(h) {
            return;
        }
        let control = h
            .is_control()
            .then(|| rill_client::batch::control_type(h, bytes))
            .flatten();
        if let (Some(txns), Some(b)) = (self.txns.as_mut(), TxnBatch::from_header(h, control)) {
            txns.record(b);
        }
    }

    /// The transactional batches and markers of the segment, oldest first
    /// (a producer's consecutive data batches merged), or `None` when the
    /// segment has no usable index and its headers must be read.
    pub fn txn_batches(&self) -> Option<&[TxnBatch]> {
        self.txns.as_ref().map(TxnIndex::entries)
    }

    /// Reads the transactional batches and markers from the file.
    pub fn scan_txns(&self) -> io::Result<TxnIndex> {
        let mut index = TxnIndex::default();
        for (pos, h) in self.batch_positions()? {
            if !txnindex::is_txn_header(&h) {
                continue;
            }
            let control = if h.is_control() {
                rill_client::batch::control_type(&h, &self.read_batch(pos, &h)?)
            } else {
                None
            };
            if let Some(b) = TxnBatch::from_header(&h, control) {
                index.record(b);
            }
        }
        Ok(index)
    }

    /// Updates offsets, timestamps and indexes for a batch written at `position`.
    fn track(&mut self, h: &BatchHeader, position: u32) {
        let rel = (h.base_offset - self.base_offset) as u32;
        self.max_timestamp = self.max_timestamp.max(h.max_timestamp);
        if self.index.is_empty() || self.bytes_since_index >= self.index_interval {
            self.index.push(rel, position);
            // The running maximum, so every batch before an entry is known
            // to be no newer than the entry's timestamp.
            self.time_index.maybe_push(self.max_timestamp, rel);
            self.bytes_since_index = 0;
        }
        self.bytes_since_index = self.bytes_since_index.saturating_add(h.total_len() as u32);
        self.next_offset = h.next_offset();
    }

    /// Appends already validated batches (`data`, with each batch's start
    /// position within it and its final header). With [`Stamp::FromHeaders`]
    /// each batch's base offset and leader epoch are written from its
    /// header instead of from `data`. On a write error the file is cut back
    /// so nothing partial remains, and the error is returned.
    pub fn append(
        &mut self,
        data: &[u8],
        batches: &[(usize, BatchHeader)],
        stamp: Stamp,
    ) -> io::Result<()> {
        let written = match stamp {
            Stamp::AsIs => self.file.write_all_at(data, self.size),
            Stamp::FromHeaders => self.write_stamped(data, batches),
        };
        if let Err(e) = written {
            // Best effort: the bytes past `size` are invisible anyway and
            // recovery would cut them, but keep the file tidy.
            let _ = self.file.set_len(self.size);
            return Err(e);
        }
        let start = self.size as u32;
        for (pos, h) in batches {
            self.track(h, start + *pos as u32);
            if txnindex::is_txn_header(h) {
                let end = (*pos + h.total_len()).min(data.len());
                self.track_txn(h, &data[*pos..end]);
            }
        }
        self.size += data.len() as u64;
        Ok(())
    }

    /// Writes each batch of `data` at the end of the file: its first bytes
    /// as stamped in its header, then the rest of it as it is.
    fn write_stamped(&self, data: &[u8], batches: &[(usize, BatchHeader)]) -> io::Result<()> {
        for (pos, h) in batches {
            let (pos, end) = (*pos, *pos + h.total_len());
            let mut stamped = [0u8; STAMPED_LEN];
            stamped.copy_from_slice(&data[pos..pos + STAMPED_LEN]);
            batch::set_base_offset(&mut stamped, h.base_offset);
            batch::set_leader_epoch(&mut stamped, h.partition_leader_epoch);
            write_all_vectored_at(
                &self.file,
                [&stamped, &data[pos + STAMPED_LEN..end]],
                self.size + pos as u64,
            )?;
        }
        Ok(())
    }

    /// Finds the first batch whose last offset is >= `offset`, returning its
    /// position and header.
    pub fn find_batch(&self, offset: i64) -> io::Result<Option<(u64, BatchHeader)>> {
        let rel = (offset.max(self.base_offset) - self.base_offset).min(i64::from(u32::MAX)) as u32;
        let mut pos = u64::from(self.index.lookup(rel)?.position);
        self.scan_from(pos, |p, h| {
            pos = p;
            h.last_offset() >= offset
        })
    }

    /// Walks batch headers from `pos` until `stop` says so.
    fn scan_from(
        &self,
        mut pos: u64,
        mut stop: impl FnMut(u64, &BatchHeader) -> bool,
    ) -> io::Result<Option<(u64, BatchHeader)>> {
        let mut header = [0u8; HEADER_LEN];
        while pos + HEADER_LEN as u64 <= self.size {
            self.file.read_exact_at(&mut header, pos)?;
            let h = BatchHeader::parse(&header).expect("HEADER_LEN bytes");
            if stop(pos, &h) {
                return Ok(Some((pos, h)));
            }
            pos += h.total_len() as u64;
        }
        Ok(None)
    }

    /// Reads whole batches starting with the one holding `offset`, up to
    /// `max_bytes` (but always at least one batch), stopping before any
    /// batch that is not entirely below `max_offset`.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        max_offset: i64,
    ) -> io::Result<Option<ReadSlice>> {
        let Some((pos, first)) = self.find_batch(offset)? else {
            return Ok(None);
        };
        if first.last_offset() >= max_offset {
            return Ok(None);
        }
        let available = (self.size - pos) as usize;
        let want = max_bytes.max(first.total_len()).min(available);
        let mut data = self.read_exact(pos, want)?;
        // Keep only whole batches below `max_offset`.
        let mut end = 0usize;
        let mut next_offset = first.next_offset();
        while end + HEADER_LEN <= data.len() {
            let h = BatchHeader::parse(&data[end..]).expect("HEADER_LEN bytes");
            if end + h.total_len() > data.len() || h.last_offset() >= max_offset {
                break;
            }
            end += h.total_len();
            next_offset = h.next_offset();
        }
        data.truncate(end);
        Ok(Some(ReadSlice {
            data,
            first_offset: first.base_offset,
            next_offset,
        }))
    }

    /// Finds the first batch whose max timestamp is >= `timestamp`.
    pub fn find_by_timestamp(&self, timestamp: i64) -> io::Result<Option<(u64, BatchHeader)>> {
        if self.max_timestamp < timestamp {
            return Ok(None);
        }
        let rel = self.time_index.lookup(timestamp)?;
        let pos = u64::from(self.index.lookup(rel)?.position);
        self.scan_from(pos, |_, h| h.max_timestamp >= timestamp)
    }

    /// Positions and headers of every batch, in order.
    pub fn batch_positions(&self) -> io::Result<Vec<(u64, BatchHeader)>> {
        let mut out = Vec::new();
        self.scan_from(0, |p, h| {
            out.push((p, *h));
            false
        })?;
        Ok(out)
    }

    /// Reads the bytes of one batch found by [`Self::find_batch`].
    pub fn read_batch(&self, pos: u64, header: &BatchHeader) -> io::Result<Vec<u8>> {
        self.read_exact(pos, header.total_len())
    }

    /// `len` bytes at `pos`, read straight into a new buffer's spare
    /// capacity: a fetch of a megabyte neither zeroes it first nor copies it
    /// again.
    fn read_exact(&self, pos: u64, len: usize) -> io::Result<Vec<u8>> {
        let mut data = Vec::with_capacity(len);
        while data.len() < len {
            let at = pos + data.len() as u64;
            let n = rustix::io::pread(&self.file, rustix::buffer::spare_capacity(&mut data), at)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "segment ends at {at}, {} bytes short of a read",
                        len - data.len()
                    ),
                ));
            }
        }
        // The buffer may have had room for more than asked.
        data.truncate(len);
        Ok(data)
    }

    /// Removes the batch holding `offset` and everything after it. The
    /// segment's end offset becomes that batch's base offset.
    ///
    /// The segment is the log's active one again afterwards (the ones
    /// after it are gone), so its indexes come back to the heap.
    pub fn truncate_to(&mut self, offset: i64) -> io::Result<()> {
        self.indexes_to_heap()?;
        let Some((pos, h)) = self.find_batch(offset)? else {
            return Ok(());
        };
        self.file.set_len(pos)?;
        self.size = pos;
        self.next_offset = h.base_offset.max(self.base_offset);
        let rel = (h.base_offset - self.base_offset) as u32;
        self.index.truncate_to_position(pos as u32)?;
        self.time_index.truncate_to_offset(rel)?;
        self.max_timestamp = self.time_index.last().map_or(-1, |e| e.timestamp);
        // Recompute the max timestamp and index spacing of what is left
        // after the last remaining index entry.
        let from = self.index.last().map_or(0, |e| u64::from(e.position));
        let mut max_ts = self.max_timestamp;
        let mut since = 0u32;
        self.scan_from(from, |_, h| {
            max_ts = max_ts.max(h.max_timestamp);
            since = since.saturating_add(h.total_len() as u32);
            false
        })?;
        self.max_timestamp = max_ts;
        self.bytes_since_index = since;
        // Saved indexes no longer match; the segment is active again. Their
        // removal is made durable before anything is appended at the
        // positions they describe: after a crash, files brought back by the
        // directory would map offsets to positions now holding other
        // batches, and could be trusted (see [`Trust::Below`]).
        self.remove_saved_indexes();
        super::index::sync_dir(&self.dir)?;
        self.txns = Some(self.scan_txns()?);
        Ok(())
    }

    /// Makes the segment durable and writes its index files.
    pub fn seal(&mut self) -> io::Result<()> {
        self.file.sync_data()?;
        self.save_indexes()
    }

    /// Writes the index files of a segment no longer appended to, and from
    /// then on looks its offsets and timestamps up in them instead of
    /// keeping their entries on the heap. They are used on the next start
    /// only while the segment lies below the log's recovery point.
    pub fn save_indexes(&mut self) -> io::Result<()> {
        self.index.save(&self.index_path())?;
        self.time_index.save(&self.time_index_path())?;
        if let Some(txns) = &self.txns {
            txns.save(&self.txn_index_path())?;
        }
        self.keep_indexes_in_files();
        Ok(())
    }

    /// Drops the offset and time index entries from the heap: lookups read
    /// the saved files, which must hold exactly these entries.
    fn keep_indexes_in_files(&mut self) {
        let (index, time_index) = (self.index_path(), self.time_index_path());
        self.index.keep_in_file(&index);
        self.time_index.keep_in_file(&time_index);
    }

    /// Writes the offset and time index files of the segment being
    /// appended to, at a clean shutdown, so the next start can trust it
    /// (see [`Trust::Below`]) instead of validating every batch. Not
    /// fsynced: they are derived from the segment and checked on load, and
    /// a file lost or cut short by a crash is either refused or a valid
    /// prefix (the header walk indexes the rest).
    pub fn save_indexes_for_restart(&self) -> io::Result<()> {
        self.index.save_unsynced(&self.index_path())?;
        self.time_index.save_unsynced(&self.time_index_path())
    }

    /// Reads saved offset and time indexes back to the heap: lookups stop
    /// depending on the files (which are about to go or change).
    pub fn indexes_to_heap(&mut self) -> io::Result<()> {
        self.index.load_to_heap()?;
        self.time_index.load_to_heap()
    }

    /// fdatasync of the segment file.
    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    pub fn file(&self) -> Arc<File> {
        Arc::clone(&self.file)
    }

    /// Deletes the segment's files.
    pub fn delete_files(&self) -> io::Result<()> {
        fs::remove_file(Self::log_path(&self.dir, self.base_offset))?;
        self.remove_saved_indexes();
        Ok(())
    }

    /// Removes the saved index files (best effort: a missing one is fine),
    /// so that the next start rebuilds them from the segment file.
    pub fn remove_saved_indexes(&self) {
        let _ = fs::remove_file(self.index_path());
        let _ = fs::remove_file(self.time_index_path());
        let _ = fs::remove_file(self.txn_index_path());
    }

    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }
    pub fn size(&self) -> u64 {
        self.size
    }
    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp
    }
    pub fn created_ms(&self) -> i64 {
        self.created_ms
    }
    /// When the broker last wrote this segment's log file (its mtime, in
    /// ms since the epoch): a broker clock, unlike record timestamps.
    pub fn last_written_ms(&self) -> io::Result<i64> {
        let modified = self.file.metadata()?.modified()?;
        Ok(modified
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64))
    }
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }
    pub fn index_entries(&self) -> usize {
        self.index.len()
    }
    /// Whether the offset index lives only in its file (a sealed segment).
    #[cfg(test)]
    pub fn index_saved_only(&self) -> bool {
        self.index.is_saved_only()
    }
}

#[cfg(test)]
mod tests {
    use super::super::batch::test_util::batch;
    use super::super::batch::{set_base_offset, validate};
    use super::*;

    const MAX: usize = 1 << 20;

    /// Builds a segment at base 100 holding `n` batches of 2 records each.
    fn filled(dir: &Path, n: usize, interval: u32) -> (Segment, Vec<Vec<u8>>) {
        let mut seg = Segment::create(dir, 100, interval, 0).unwrap();
        let mut written = Vec::new();
        for i in 0..n {
            let mut b = batch(&[format!("v{i}a").as_bytes(), format!("v{i}b").as_bytes()]);
            set_base_offset(&mut b, seg.next_offset());
            let h = validate(&b, MAX).unwrap();
            seg.append(&b, &[(0, h)], Stamp::AsIs).unwrap();
            written.push(b);
        }
        (seg, written)
    }

    #[test]
    fn names_round_trip() {
        assert_eq!(file_stem(42), "00000000000000000042");
        assert_eq!(parse_log_name("00000000000000000042.log"), Some(42));
        assert_eq!(parse_log_name("42.log"), None);
        assert_eq!(parse_log_name("00000000000000000042.index"), None);
    }

    #[test]
    fn given_batches_when_read_from_any_offset_then_batch_holding_it_comes_first() {
        let dir = tempfile::tempdir().unwrap();
        let (seg, written) = filled(dir.path(), 20, 100);
        assert!(
            seg.index_entries() > 1,
            "interval 100 must index several batches"
        );
        for offset in 100..140 {
            let r = seg.read(offset, 1, i64::MAX).unwrap().unwrap();
            let i = ((offset - 100) / 2) as usize;
            assert_eq!(r.data, written[i], "offset {offset}");
            assert_eq!(r.first_offset, 100 + 2 * i as i64);
        }
        assert_eq!(seg.read(140, 1, i64::MAX).unwrap(), None);
        // max_offset stops before batches that are not fully below it.
        let r = seg.read(100, MAX, 105).unwrap().unwrap();
        assert_eq!(r.next_offset, 104);
        assert_eq!(r.data, [written[0].clone(), written[1].clone()].concat());
        assert_eq!(seg.read(104, MAX, 105).unwrap(), None);
    }

    #[test]
    fn given_max_bytes_then_only_whole_batches_returned() {
        let dir = tempfile::tempdir().unwrap();
        let (seg, written) = filled(dir.path(), 5, 4096);
        let one = written[0].len();
        let r = seg.read(100, one * 2 + one / 2, i64::MAX).unwrap().unwrap();
        assert_eq!(r.data.len(), one * 2);
        assert_eq!(r.next_offset, 104);
    }

    #[test]
    fn given_truncation_at_every_byte_then_recovery_keeps_exactly_whole_valid_batches() {
        let dir = tempfile::tempdir().unwrap();
        let (seg, written) = filled(dir.path(), 4, 0);
        let full = fs::read(Segment::log_path(dir.path(), 100)).unwrap();
        drop(seg);
        let ends: Vec<usize> = written
            .iter()
            .scan(0, |acc, b| {
                *acc += b.len();
                Some(*acc)
            })
            .collect();
        for cut in 0..=full.len() {
            let d = tempfile::tempdir().unwrap();
            fs::write(Segment::log_path(d.path(), 100), &full[..cut]).unwrap();
            let (seg, trunc) = Segment::open(d.path(), 100, 0, Trust::Nothing, 0).unwrap();
            let whole = ends.iter().filter(|&&e| e <= cut).count();
            let valid_len = if whole == 0 { 0 } else { ends[whole - 1] };
            assert_eq!(seg.size(), valid_len as u64, "cut {cut}");
            assert_eq!(seg.next_offset(), 100 + 2 * whole as i64, "cut {cut}");
            assert_eq!(trunc.is_some(), cut != valid_len, "cut {cut}");
            assert_eq!(
                fs::metadata(Segment::log_path(d.path(), 100))
                    .unwrap()
                    .len(),
                valid_len as u64
            );
            if whole > 0 {
                let r = seg.read(100, MAX, i64::MAX).unwrap().unwrap();
                assert_eq!(r.data, full[..valid_len]);
            }
        }
    }

    #[test]
    fn given_corrupt_byte_then_recovery_cuts_at_that_batch() {
        let dir = tempfile::tempdir().unwrap();
        let (seg, written) = filled(dir.path(), 4, 0);
        drop(seg);
        let path = Segment::log_path(dir.path(), 100);
        let mut full = fs::read(&path).unwrap();
        let third = written[0].len() * 2;
        full[third + 40] ^= 0xff; // inside the third batch's CRC range
        fs::write(&path, &full).unwrap();
        let (seg, trunc) = Segment::open(dir.path(), 100, 0, Trust::Nothing, 0).unwrap();
        assert_eq!(seg.next_offset(), 104);
        assert!(trunc.unwrap().reason.contains("CRC"));
    }

    #[test]
    fn given_sealed_segment_then_reopen_trusts_index_and_finds_end() {
        let dir = tempfile::tempdir().unwrap();
        let (mut seg, _) = filled(dir.path(), 10, 100);
        seg.seal().unwrap();
        assert!(seg.index_saved_only());
        let (entries, next, max_ts) = (seg.index_entries(), seg.next_offset(), seg.max_timestamp());
        drop(seg);
        let (seg, trunc) = Segment::open(dir.path(), 100, 100, Trust::Sealed, 0).unwrap();
        assert!(trunc.is_none());
        assert!(seg.index_saved_only());
        assert_eq!(seg.index_entries(), entries);
        assert_eq!(seg.next_offset(), next);
        assert_eq!(seg.max_timestamp(), max_ts);
        // A deleted index forces a rebuild with the same result.
        fs::remove_file(dir.path().join(format!("{}.index", file_stem(100)))).unwrap();
        let (seg2, _) = Segment::open(dir.path(), 100, 100, Trust::Sealed, 0).unwrap();
        assert_eq!(seg2.index_entries(), entries);
        assert_eq!(seg2.next_offset(), next);
    }

    #[test]
    fn given_truncate_to_mid_batch_then_whole_batch_removed() {
        let dir = tempfile::tempdir().unwrap();
        let (mut seg, written) = filled(dir.path(), 6, 0);
        seg.truncate_to(105).unwrap(); // batch 104..105 goes
        assert_eq!(seg.next_offset(), 104);
        assert_eq!(seg.size() as usize, written[0].len() * 2);
        assert_eq!(seg.read(104, MAX, i64::MAX).unwrap(), None);
        seg.truncate_to(100).unwrap();
        assert!(seg.is_empty());
        assert_eq!(seg.next_offset(), 100);
    }
}
