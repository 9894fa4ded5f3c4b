//! [`PartitionLog`]: the ordered segments of one partition replica in one
//! directory, the active (last) segment taking appends.
//!
//! Appends come in two kinds: a leader's ([`PartitionLog::append`]), which
//! validates producer batches and stamps base offsets and the leader epoch,
//! and a follower's ([`PartitionLog::append_replicated`]), which stores the
//! leader's batches as they are. Reads return whole stored batches. Retention
//! deletes whole segments; compaction lives in [`super::cleaner`].

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use parking_lot::Mutex;

use bytes::Bytes;
use kafka_protocol::records::RecordBatchDecoder;
use tracing::{info, warn};

use super::LogError;
use super::batch::{self, BatchHeader};
use super::config::LogConfig;
use super::segment::{self, ReadSlice, Segment, Trust};
use super::txnindex::TxnBatch;

/// Hard cap on one stored batch (defined with the batch format, which the
/// client checks fetched batches against too).
pub use rill_client::batch::MAX_STORED_BATCH;

/// File holding the recovery point: every segment wholly below this
/// offset was fsynced and is trusted on start without a full scan.
const RECOVERY_POINT_FILE: &str = "recovery-point";
/// The log start offset moved inside a segment by DeleteRecords (absent:
/// the first segment's base).
const LOG_START_FILE: &str = "log-start-offset";

fn read_log_start(dir: &Path) -> i64 {
    fs::read_to_string(dir.join(LOG_START_FILE))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// The recovery point on disk; 0 (validate everything) when there is none
/// or it is unreadable.
fn read_recovery_point(dir: &Path) -> i64 {
    match super::number_file::read(&dir.join(RECOVERY_POINT_FILE)) {
        Ok(point) => point.unwrap_or(0),
        Err(e) => {
            warn!(dir = %dir.display(), error = %e, "unreadable recovery point; validating the whole log");
            0
        }
    }
}

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset of the first appended record.
    pub base_offset: i64,
    /// Offset of the last appended record.
    pub last_offset: i64,
    /// Log end offset after the append.
    pub next_offset: i64,
    pub batches: usize,
    pub bytes: usize,
    /// Largest record timestamp appended.
    pub max_timestamp: i64,
}

/// Outcome of [`PartitionLog::read`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadResult {
    /// Whole batches, verbatim; empty when nothing is available.
    pub data: Bytes,
    /// Offset after the last returned batch (the requested offset when empty).
    pub next_offset: i64,
}

/// Result of a retention pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionResult {
    pub segments_deleted: usize,
    pub bytes_deleted: u64,
}

/// Segments retention deleted whose files are still open: dropping this
/// closes them, and the filesystem frees their space then.
#[derive(Debug)]
pub struct Unlinked(Vec<Segment>);

/// Appends to every log of this process, counted after each is stored: a
/// flusher that found nothing unflushed and sees this unchanged knows
/// there still is nothing (see [`appends_in_process`]).
static APPENDS: AtomicU64 = AtomicU64::new(0);

/// How many appends the logs of this process have taken. Only ever grows;
/// read it before looking at logs, and an unchanged value afterwards means
/// no log took an append since.
pub fn appends_in_process() -> u64 {
    APPENDS.load(Ordering::Acquire)
}

/// One partition replica's log.
#[derive(Debug)]
pub struct PartitionLog {
    dir: PathBuf,
    config: LogConfig,
    /// By base offset; never empty. The last one is active.
    pub(super) segments: BTreeMap<i64, Segment>,
    /// First offset still stored (consumers starting earlier are moved here).
    log_start_offset: i64,
    /// Offset the next appended record gets (log end offset, LEO).
    next_offset: i64,
    /// Everything below this offset is known to be on disk (fsynced),
    /// shared with [`SyncHandle`]s running outside the log lock.
    flushed: Arc<Mutex<FlushMark>>,
    /// The recovery point last written to disk.
    checkpointed: AtomicI64,
    /// Tests: the next fsync of this log fails with EIO.
    #[cfg(test)]
    pub(crate) fail_next_fsync: Arc<std::sync::atomic::AtomicBool>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl PartitionLog {
    /// Opens (or creates) the log in `dir`. Sealed segments with valid
    /// indexes are trusted; the last segment and any segment without usable
    /// indexes are validated batch by batch and cut at the first torn or
    /// corrupt batch. Segments after a cut are removed: they can no longer
    /// follow the log without a gap in what was acknowledged as a prefix.
    pub fn open(dir: &Path, config: LogConfig) -> Result<Self, LogError> {
        let io_err = |what: &str| {
            let path = dir.display().to_string();
            let what = what.to_owned();
            move |e: io::Error| LogError::io(format!("{what} {path}"), e)
        };
        fs::create_dir_all(dir).map_err(io_err("creating log directory"))?;
        let mut bases = Vec::new();
        for entry in fs::read_dir(dir).map_err(io_err("listing log directory"))? {
            let entry = entry.map_err(io_err("listing log directory"))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if let Some(base) = segment::parse_log_name(&name) {
                bases.push(base);
            } else if name.ends_with(".cleaned") || name.ends_with(".tmp") {
                // Leftovers of an interrupted compaction or index write.
                let _ = fs::remove_file(entry.path());
            }
        }
        bases.sort_unstable();
        let recovery_point = read_recovery_point(dir);
        let now = now_ms();
        let mut segments = BTreeMap::new();
        let mut cut_at: Option<usize> = None;
        for (i, &base) in bases.iter().enumerate() {
            let last = i + 1 == bases.len();
            // A segment is known durable only as far as the recovery point:
            // one wholly below it is trusted, as is one whose saved indexes
            // and headers end at or below it (a clean shutdown); every
            // other one is validated batch by batch.
            let trust = if bases.get(i + 1).is_some_and(|next| *next <= recovery_point) {
                Trust::Sealed
            } else {
                Trust::Below(recovery_point)
            };
            let (seg, truncation) =
                Segment::open(dir, base, config.index_interval_bytes, trust, now)
                    .map_err(io_err("opening segment in"))?;
            if let Some(t) = &truncation {
                warn!(
                    dir = %dir.display(), segment = base, position = t.position,
                    discarded_bytes = t.discarded_bytes, reason = %t.reason,
                    "recovery truncated a torn or corrupt segment tail"
                );
            }
            segments.insert(base, seg);
            if truncation.is_some() && !last {
                cut_at = Some(i);
                break;
            }
        }
        if let Some(i) = cut_at {
            for &base in &bases[i + 1..] {
                warn!(dir = %dir.display(), segment = base, "removing segment after a corrupt one");
                let path = Segment::log_path(dir, base);
                let _ = fs::remove_file(&path);
                for ext in ["index", "timeindex", "txnindex"] {
                    let _ = fs::remove_file(path.with_extension(ext));
                }
            }
        }
        if segments.is_empty() {
            let seg = Segment::create(dir, 0, config.index_interval_bytes, now)
                .map_err(io_err("creating first segment in"))?;
            segments.insert(0, seg);
        }
        let next_offset = segments
            .values()
            .next_back()
            .expect("non-empty")
            .next_offset();
        let log_start_offset =
            (*segments.keys().next().expect("non-empty")).max(read_log_start(dir).min(next_offset));
        info!(dir = %dir.display(), log_start_offset, next_offset, segments = segments.len(), "log opened");
        Ok(Self {
            dir: dir.to_owned(),
            config,
            segments,
            log_start_offset,
            next_offset,
            flushed: Arc::new(Mutex::new(FlushMark {
                offset: recovery_point.clamp(log_start_offset, next_offset),
                truncations: 0,
            })),
            checkpointed: AtomicI64::new(recovery_point),
            #[cfg(test)]
            fail_next_fsync: Default::default(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn config(&self) -> &LogConfig {
        &self.config
    }
    /// Applies new topic settings (they take effect for future rolls,
    /// retention passes and flushes).
    pub fn set_config(&mut self, config: LogConfig) {
        self.config = config;
    }
    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }
    /// Log end offset: the offset the next record gets.
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }
    pub fn flushed_offset(&self) -> i64 {
        self.flushed.lock().offset
    }
    /// Total bytes of all segments.
    pub fn size_bytes(&self) -> u64 {
        self.segments.values().map(Segment::size).sum()
    }
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    fn active(&self) -> &Segment {
        self.segments.values().next_back().expect("never empty")
    }
    fn active_mut(&mut self) -> &mut Segment {
        self.segments.values_mut().next_back().expect("never empty")
    }

    /// Leader append: validates producer batches (lengths, magic, CRC,
    /// record count), assigns consecutive offsets from the log end and
    /// stamps `leader_epoch`, without re-encoding anything. `data` itself
    /// is neither changed nor copied: each batch goes to the file as its
    /// stamped first bytes followed by the rest of it.
    pub fn append(&mut self, data: &[u8], leader_epoch: i32) -> Result<AppendInfo, LogError> {
        let mut batches =
            batch::validate_all(data, self.config.max_batch_bytes, batch::validate_produced)?;
        let mut next = self.next_offset;
        for (_, h) in &mut batches {
            h.base_offset = next;
            h.partition_leader_epoch = leader_epoch;
            next = h.next_offset();
        }
        self.append_validated(data, &batches, segment::Stamp::FromHeaders)
    }

    /// Follower append: stores a leader's batches verbatim. They must pass
    /// the CRC check and continue the log (offsets at or past the log end,
    /// increasing).
    pub fn append_replicated(&mut self, data: &[u8]) -> Result<AppendInfo, LogError> {
        let batches = batch::validate_all(data, MAX_STORED_BATCH, batch::validate)?;
        let mut expected = self.next_offset;
        for (_, h) in &batches {
            if h.base_offset < expected {
                return Err(LogError::NonMonotonic {
                    offset: h.base_offset,
                    log_end: expected,
                });
            }
            expected = h.next_offset();
        }
        self.append_validated(data, &batches, segment::Stamp::AsIs)
    }

    fn append_validated(
        &mut self,
        data: &[u8],
        batches: &[(usize, BatchHeader)],
        stamp: segment::Stamp,
    ) -> Result<AppendInfo, LogError> {
        let first = batches
            .first()
            .expect("validate_all returns at least one")
            .1;
        let last = batches.last().expect("non-empty").1;
        let now = now_ms();
        self.maybe_roll(
            data.len() as u64,
            first.base_offset,
            last.last_offset(),
            now,
        )?;
        let dir = self.dir.clone();
        self.active_mut()
            .append(data, batches, stamp)
            .map_err(|e| LogError::io(format!("appending to {}", dir.display()), e))?;
        self.next_offset = last.next_offset();
        APPENDS.fetch_add(1, Ordering::AcqRel);
        Ok(AppendInfo {
            base_offset: first.base_offset,
            last_offset: last.last_offset(),
            next_offset: self.next_offset,
            batches: batches.len(),
            bytes: data.len(),
            max_timestamp: batches
                .iter()
                .map(|(_, h)| h.max_timestamp)
                .max()
                .unwrap_or(-1),
        })
    }

    /// Rolls to a new segment when the active one would outgrow
    /// `segment.bytes`, is older than `segment.ms`, or cannot index the new
    /// offsets relative to its base.
    fn maybe_roll(
        &mut self,
        incoming: u64,
        first_offset: i64,
        last_offset: i64,
        now: i64,
    ) -> Result<(), LogError> {
        let active = self.active();
        if active.is_empty() {
            if active.base_offset() != first_offset && active.next_offset() != first_offset {
                // An empty segment whose base does not match (a follower
                // appending past a compaction gap) is replaced.
                return self.replace_empty_active(first_offset, now);
            }
            return Ok(());
        }
        let too_big = active.size() + incoming > self.config.segment_bytes
            || active.size() + incoming > u64::from(u32::MAX);
        let too_old = now - active.created_ms() > self.config.segment_ms;
        let offsets_overflow = last_offset - active.base_offset() > i64::from(u32::MAX);
        if too_big || too_old || offsets_overflow {
            self.roll(first_offset, now)?;
        }
        Ok(())
    }

    fn replace_empty_active(&mut self, base: i64, now: i64) -> Result<(), LogError> {
        let dir = self.dir.clone();
        let seg = Segment::create(&dir, base, self.config.index_interval_bytes, now)
            .map_err(|e| LogError::io(format!("creating segment in {}", dir.display()), e))?;
        let (old_base, old) = self.segments.pop_last().expect("never empty");
        let _ = old.delete_files();
        if self.segments.is_empty() && old_base == self.log_start_offset {
            self.log_start_offset = base;
        }
        self.segments.insert(base, seg);
        Ok(())
    }

    /// Writes the active segment's index files and starts a new segment at
    /// `base`. The old segment's data is not fsynced here (that would stall
    /// the append for a whole segment's worth of dirty pages): the next
    /// flush covers it, and until the recovery point passes it, recovery
    /// validates it batch by batch.
    ///
    /// All or nothing: the new file is created first, so that a failure
    /// (a full disk) never leaves the active segment sealed, its indexes
    /// only in files, while it is still appended to.
    fn roll(&mut self, base: i64, now: i64) -> Result<(), LogError> {
        let dir = self.dir.clone();
        let ctx = |e| LogError::io(format!("rolling segment in {}", dir.display()), e);
        let seg =
            Segment::create(&dir, base, self.config.index_interval_bytes, now).map_err(ctx)?;
        if let Err(e) = self.active_mut().save_indexes() {
            let _ = seg.delete_files();
            return Err(ctx(e));
        }
        self.segments.insert(base, seg);
        Ok(())
    }

    /// Reads whole batches starting with the one holding `offset`: at most
    /// `max_bytes` but at least one batch, only batches entirely below
    /// `max_offset` (the high watermark for consumers, the log end for
    /// followers). An offset below the log start or past the log end is an
    /// error; the log end itself gives an empty result.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        max_offset: i64,
    ) -> Result<ReadResult, LogError> {
        if offset < self.log_start_offset || offset > self.next_offset {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start: self.log_start_offset,
                log_end: self.next_offset,
            });
        }
        let upper = max_offset.min(self.next_offset);
        let empty = ReadResult {
            data: Bytes::new(),
            next_offset: offset,
        };
        if offset >= upper {
            return Ok(empty);
        }
        let first_base = self
            .segments
            .range(..=offset)
            .next_back()
            .map_or(self.log_start_offset, |(b, _)| *b);
        for seg in self.segments.range(first_base..).map(|(_, s)| s) {
            if seg.base_offset() >= upper {
                break;
            }
            let slice = seg
                .read(offset, max_bytes, upper)
                .map_err(|e| LogError::io(format!("reading {}", self.dir.display()), e))?;
            if let Some(ReadSlice {
                data, next_offset, ..
            }) = slice
            {
                return Ok(ReadResult {
                    data: Bytes::from(data),
                    next_offset,
                });
            }
        }
        Ok(empty)
    }

    /// First offset whose record timestamp is >= `timestamp`, with that
    /// record's timestamp; `None` when every record is older.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(i64, i64)>, LogError> {
        let ctx = |e| LogError::io(format!("timestamp lookup in {}", self.dir.display()), e);
        for seg in self.segments.values() {
            let Some((pos, header)) = seg.find_by_timestamp(timestamp).map_err(ctx)? else {
                continue;
            };
            // Off the hot path: decode the one batch to find the exact record.
            let bytes = seg.read_batch(pos, &header).map_err(ctx)?;
            let mut buf = Bytes::from(bytes);
            let set = RecordBatchDecoder::decode(&mut buf).map_err(|e| LogError::Corrupt {
                dir: self.dir.display().to_string(),
                reason: format!("undecodable batch at offset {}: {e}", header.base_offset),
            })?;
            let found = set
                .records
                .iter()
                .find(|r| r.timestamp >= timestamp)
                .map(|r| (r.offset, r.timestamp));
            return Ok(found.or(Some((header.base_offset, header.max_timestamp))));
        }
        Ok(None)
    }

    /// Removes everything from the batch holding `offset` on (followers
    /// truncating to the leader's epoch end offset). The new log end is at
    /// most `offset`. Below the log start, the log is emptied and restarts
    /// at `offset`.
    pub fn truncate_to(&mut self, offset: i64) -> Result<(), LogError> {
        if offset >= self.next_offset {
            return Ok(());
        }
        if offset <= self.log_start_offset {
            return self.reset_to(offset);
        }
        let ctx = |e| LogError::io("truncating log".to_owned(), e);
        // Segments starting at or after `offset` go entirely; the one
        // holding `offset` is cut.
        while self.segments.len() > 1 && self.active().base_offset() >= offset {
            let (_, seg) = self.segments.pop_last().expect("len > 1");
            seg.delete_files().map_err(ctx)?;
        }
        self.active_mut().truncate_to(offset).map_err(ctx)?;
        self.next_offset = self.active().next_offset();
        self.lower_recovery_point(self.next_offset)?;
        info!(dir = %self.dir.display(), offset, next_offset = self.next_offset, "log truncated");
        Ok(())
    }

    /// After a truncation, data at or above `offset` is new and not durable:
    /// the recovery point on disk must not vouch for it.
    fn lower_recovery_point(&mut self, offset: i64) -> Result<(), LogError> {
        self.flushed.lock().truncated(offset);
        if self.checkpointed.load(Ordering::Acquire) > offset {
            self.write_recovery_point(offset, true)?;
        }
        Ok(())
    }

    /// Moves the log start offset forward to `offset` (DeleteRecords; at
    /// most the log end): records below it are no longer read, and
    /// segments entirely below it are deleted. The new start is written
    /// durably first. Returns whether it moved.
    pub fn advance_log_start(&mut self, offset: i64) -> Result<bool, LogError> {
        let offset = offset.min(self.next_offset);
        if offset <= self.log_start_offset {
            return Ok(false);
        }
        self.write_log_start(offset)?;
        self.log_start_offset = offset;
        let ctx = |e| LogError::io("deleting segments below the log start".to_owned(), e);
        let mut deleted = 0;
        while self.segments.len() > 1
            && self
                .segments
                .keys()
                .nth(1)
                .is_some_and(|next_base| *next_base <= offset)
        {
            let (_, seg) = self.segments.pop_first().expect("len > 1");
            seg.delete_files().map_err(ctx)?;
            deleted += 1;
        }
        info!(dir = %self.dir.display(), log_start_offset = offset, segments_deleted = deleted, "log start advanced");
        Ok(true)
    }

    fn write_log_start(&self, offset: i64) -> Result<(), LogError> {
        super::index::write_atomically(
            &self.dir.join(LOG_START_FILE),
            offset.to_string().as_bytes(),
        )
        .map_err(|e| {
            LogError::io(
                format!("writing the log start offset in {}", self.dir.display()),
                e,
            )
        })
    }

    /// Deletes all data and restarts the log empty at `offset` (a follower
    /// whose log is entirely behind the leader's log start).
    pub fn reset_to(&mut self, offset: i64) -> Result<(), LogError> {
        let ctx = |e| LogError::io("resetting log".to_owned(), e);
        // Keep one segment at all times: reuse a segment already based at
        // `offset` (emptied), else create the new one before deleting.
        if let Some(seg) = self.segments.get_mut(&offset) {
            seg.truncate_to(offset).map_err(ctx)?;
        } else {
            let seg = Segment::create(
                &self.dir,
                offset,
                self.config.index_interval_bytes,
                now_ms(),
            )
            .map_err(ctx)?;
            self.segments.insert(offset, seg);
        }
        let others: Vec<i64> = self
            .segments
            .keys()
            .copied()
            .filter(|b| *b != offset)
            .collect();
        for base in others {
            let seg = self.segments.remove(&base).expect("listed");
            seg.delete_files().map_err(ctx)?;
        }
        self.write_log_start(offset)?;
        self.log_start_offset = offset;
        self.next_offset = offset;
        {
            let mut mark = self.flushed.lock();
            mark.truncated(offset);
            mark.offset = offset;
        }
        self.write_recovery_point(offset, true)?;
        info!(dir = %self.dir.display(), offset, "log reset");
        Ok(())
    }

    /// Deletes whole segments by age (`retention.ms`, by each segment's
    /// newest record) and size (`retention.bytes`), oldest first, when the
    /// cleanup policy includes `delete`. An expired active segment is
    /// rolled first so its data can go too. The log start offset moves to
    /// the first remaining segment. The deleted segments come back still
    /// open: their disk space is freed when the returned [`Unlinked`] is
    /// dropped, which can take a while (a filesystem mounted with `discard`
    /// trims the blocks right then), so callers drop it after releasing the
    /// log's lock.
    pub fn enforce_retention(&mut self, now: i64) -> Result<(RetentionResult, Unlinked), LogError> {
        let mut result = RetentionResult::default();
        let mut unlinked = Unlinked(Vec::new());
        if !self.config.cleanup_policy.deletes() {
            return Ok((result, unlinked));
        }
        let expired = |seg: &Segment, cfg: &LogConfig| {
            cfg.retention_ms >= 0
                && seg.max_timestamp() >= 0
                && seg.max_timestamp() < now - cfg.retention_ms
        };
        if self.segments.len() == 1
            && !self.active().is_empty()
            && expired(self.active(), &self.config)
        {
            let next = self.next_offset;
            self.roll(next, now)?;
        }
        let mut total = self.size_bytes();
        while self.segments.len() > 1 {
            let first = self.segments.values().next().expect("len > 1");
            let over_size = self.config.retention_bytes >= 0
                && total.saturating_sub(first.size()) >= self.config.retention_bytes as u64;
            if !expired(first, &self.config) && !over_size {
                break;
            }
            let (_, seg) = self.segments.pop_first().expect("len > 1");
            seg.delete_files().map_err(|e| {
                LogError::io(format!("deleting segment in {}", self.dir.display()), e)
            })?;
            total -= seg.size();
            result.segments_deleted += 1;
            result.bytes_deleted += seg.size();
            unlinked.0.push(seg);
        }
        let first = *self.segments.keys().next().expect("never empty");
        if result.segments_deleted > 0 {
            self.log_start_offset = self.log_start_offset.max(first);
            info!(
                dir = %self.dir.display(), segments = result.segments_deleted,
                bytes = result.bytes_deleted, log_start_offset = self.log_start_offset,
                "retention deleted segments"
            );
        }
        Ok((result, unlinked))
    }

    /// Segments holding data at or above the flushed offset: the ones an
    /// fsync must cover.
    fn unflushed_files(&self) -> Vec<Arc<File>> {
        let flushed = self.flushed_offset();
        let mut files: Vec<Arc<File>> = self
            .segments
            .values()
            .rev()
            .take_while(|s| s.next_offset() > flushed || s.is_empty())
            .map(Segment::file)
            .collect();
        if files.is_empty() {
            files.push(self.active().file());
        }
        files
    }

    /// fsyncs everything appended so far and records the new recovery point
    /// on disk (segments wholly below it are trusted on the next start).
    pub fn flush(&self) -> Result<(), LogError> {
        self.sync_handle()
            .sync()
            .map_err(|e| LogError::io(format!("flushing {}", self.dir.display()), e))?;
        self.checkpoint()?;
        Ok(())
    }

    /// [`Self::flush`], then saves the active segment's indexes, so the
    /// next start trusts that segment instead of validating every batch of
    /// it (see [`Trust::Below`]). For a clean shutdown.
    pub fn flush_for_restart(&self) -> Result<(), LogError> {
        self.flush()?;
        self.active().save_indexes_for_restart().map_err(|e| {
            LogError::io(
                format!(
                    "saving the active segment's indexes in {}",
                    self.dir.display()
                ),
                e,
            )
        })
    }

    /// Writes the flushed offset to disk as the recovery point if it moved
    /// since last written. Returns whether it wrote.
    pub fn checkpoint(&self) -> Result<bool, LogError> {
        self.checkpoint_flushed(true)
    }

    /// [`Self::checkpoint`] without fsyncing the file: a crash may leave the
    /// older recovery point or a torn one that reads as none, so the next
    /// start validates more, never less.
    /// For the batched interval flush, whose next sync makes it durable.
    pub fn checkpoint_unsynced(&self) -> Result<bool, LogError> {
        self.checkpoint_flushed(false)
    }

    fn checkpoint_flushed(&self, durable: bool) -> Result<bool, LogError> {
        let flushed = self.flushed_offset();
        if flushed <= self.checkpointed.load(Ordering::Acquire) {
            return Ok(false);
        }
        self.write_recovery_point(flushed, durable)?;
        Ok(true)
    }

    fn write_recovery_point(&self, offset: i64, durable: bool) -> Result<(), LogError> {
        super::number_file::write(&self.dir.join(RECOVERY_POINT_FILE), offset, durable).map_err(
            |e| {
                LogError::io(
                    format!("writing recovery point in {}", self.dir.display()),
                    e,
                )
            },
        )?;
        self.checkpointed.store(offset, Ordering::Release);
        Ok(())
    }

    /// What to fsync to make everything below the log end durable: the
    /// files of the segments not yet flushed, the target offset, and the
    /// shared flushed-offset cell to advance. Lets group commit fsync
    /// without holding the log lock.
    pub fn sync_handle(&self) -> SyncHandle {
        SyncHandle {
            files: self.unflushed_files(),
            target: self.next_offset,
            truncations: self.flushed.lock().truncations,
            flushed: Arc::clone(&self.flushed),
            #[cfg(test)]
            fail: Arc::clone(&self.fail_next_fsync),
        }
    }

    /// Removes the whole log directory.
    pub fn delete(self) -> Result<(), LogError> {
        let dir = self.dir.clone();
        drop(self);
        fs::remove_dir_all(&dir).map_err(|e| LogError::io(format!("deleting {}", dir.display()), e))
    }

    /// Base offsets of the segments (oldest first).
    pub fn segment_bases(&self) -> Vec<i64> {
        self.segments.keys().copied().collect()
    }

    /// Largest record timestamp stored, -1 when the log is empty.
    pub fn max_timestamp(&self) -> i64 {
        self.segments
            .values()
            .filter(|s| !s.is_empty())
            .map(Segment::max_timestamp)
            .max()
            .unwrap_or(-1)
    }

    /// Headers of the stored batches from the segment holding `offset` on,
    /// oldest first (batches ending before `offset` in that segment
    /// included). Reads headers only, never records.
    pub fn batch_headers_from(&self, offset: i64) -> Result<Vec<BatchHeader>, LogError> {
        let first = self
            .segments
            .range(..=offset)
            .next_back()
            .map_or(self.log_start_offset, |(b, _)| *b);
        let mut out = Vec::new();
        for seg in self.segments.range(first..).map(|(_, s)| s) {
            let positions = seg
                .batch_positions()
                .map_err(|e| LogError::io(format!("scanning {}", self.dir.display()), e))?;
            out.extend(positions.into_iter().map(|(_, h)| h));
        }
        Ok(out)
    }

    /// The transactional data batches and markers of the whole log, oldest
    /// first (a producer's consecutive data batches in a segment merged),
    /// each with the base offset of its segment. From the segments'
    /// transaction indexes; a segment without one has its headers read.
    pub fn transaction_batches(&self) -> Result<Vec<(i64, TxnBatch)>, LogError> {
        let mut out = Vec::new();
        for (base, seg) in &self.segments {
            match seg.txn_batches() {
                Some(batches) => out.extend(batches.iter().map(|b| (*base, *b))),
                None => {
                    let scanned = seg
                        .scan_txns()
                        .map_err(|e| LogError::io(format!("scanning {}", self.dir.display()), e))?;
                    out.extend(scanned.entries().iter().map(|b| (*base, *b)));
                }
            }
        }
        Ok(out)
    }

    /// The base offset of the active segment (where the next append goes).
    pub fn active_segment_base(&self) -> i64 {
        self.active().base_offset()
    }

    /// Headers of the stored batches, oldest first, skipping whole
    /// segments the broker last wrote before `min_written_ms` (by the
    /// file's mtime, never by record timestamps: those are the clients'
    /// clocks, and an old CreateTime says nothing about when a batch was
    /// appended). The last two segments are always read. Reads headers
    /// only, never records.
    pub fn batch_headers_written_since(
        &self,
        min_written_ms: i64,
    ) -> Result<Vec<BatchHeader>, LogError> {
        let always_from = self.segments.len().saturating_sub(2);
        let ctx = |e| LogError::io(format!("scanning {}", self.dir.display()), e);
        let mut out = Vec::new();
        for (i, seg) in self.segments.values().enumerate() {
            if i < always_from && seg.last_written_ms().map_err(ctx)? < min_written_ms {
                continue;
            }
            let positions = seg.batch_positions().map_err(ctx)?;
            out.extend(positions.into_iter().map(|(_, h)| h));
        }
        Ok(out)
    }
}

/// The durable prefix of a log, and how many truncations it has seen.
#[derive(Debug)]
struct FlushMark {
    /// Everything below this offset is on disk.
    offset: i64,
    /// Bumped by every truncation. An fsync that started before one may
    /// have covered only records that are gone: the records appended at
    /// the same offsets since are not on disk, so it must not advance
    /// `offset`.
    truncations: u64,
}

impl FlushMark {
    /// The log was cut at `offset`: nothing from there on is durable, and
    /// fsyncs already running vouch for nothing.
    fn truncated(&mut self, offset: i64) {
        self.truncations += 1;
        self.offset = self.offset.min(offset);
    }
}

/// See [`PartitionLog::sync_handle`].
#[derive(Debug, Clone)]
pub struct SyncHandle {
    files: Vec<Arc<File>>,
    target: i64,
    /// The log's truncation count when the handle was made.
    truncations: u64,
    flushed: Arc<Mutex<FlushMark>>,
    #[cfg(test)]
    fail: Arc<std::sync::atomic::AtomicBool>,
}

impl SyncHandle {
    /// The log end offset this handle makes durable.
    pub fn target(&self) -> i64 {
        self.target
    }
    /// Everything below this offset is durable.
    pub fn flushed_offset(&self) -> i64 {
        self.flushed.lock().offset
    }
    /// Whether everything up to the target is already durable.
    pub fn is_done(&self) -> bool {
        self.flushed_offset() >= self.target
    }
    /// Records that a sync of the whole filesystem, begun after this
    /// handle was made, completed: advances the flushed offset as
    /// [`Self::sync`] would, unless the log was truncated since.
    pub fn synced_elsewhere(&self) {
        let mut mark = self.flushed.lock();
        if mark.truncations == self.truncations {
            mark.offset = mark.offset.max(self.target);
        }
    }

    /// Blocking fdatasync; advances the flushed offset on success, unless
    /// the log was truncated since the handle was made (what was synced
    /// may no longer be what the log holds below the target).
    pub fn sync(&self) -> io::Result<()> {
        if self.is_done() {
            return Ok(());
        }
        #[cfg(test)]
        if self.fail.swap(false, Ordering::AcqRel) {
            return Err(io::Error::from_raw_os_error(5));
        }
        for f in &self.files {
            f.sync_data()?;
        }
        self.synced_elsewhere();
        Ok(())
    }
}
