//! The partition layer: the local replicas of this broker and every client
//! request on them, free of protocol types. It sits on the log
//! ([`crate::log`]) and the per-replica replication state
//! ([`crate::replication`]); the adapters (gRPC, the Kafka listener), the
//! group coordinator and the cluster link call it from above.
//!
//! - [`Partition`] (this file) is one local replica: its [`PartitionLog`]
//!   behind a `parking_lot` lock (held only for one append or read call,
//!   never across an `.await`), its leader epoch, high watermark and the
//!   group commit that makes `flush=fsync` appends durable; reads for
//!   clients, offsets, and the background flush.
//! - `produce`: the produce path of a replica: one append step under the
//!   lock, one wait-for-acks step shared with retried duplicates.
//! - `replica`: its role (standalone, leader, follower, no leader): ISR
//!   and follower fetches as a leader, appending and truncating as a
//!   follower, and the wait for acks=all.
//! - [`producers`] keeps idempotent producers' sequence state, so a
//!   retried batch is answered with its first offset instead of being
//!   written twice.
//! - [`manager::ReplicaManager`] maps topics to partitions and routes every
//!   client request (produce, fetch, list offsets, metadata, topic admin);
//!   it answers topology questions standalone or from the controller's
//!   metadata.
//! - [`isr_due`]: the partitions led here whose ISR may change soon.
//! - [`store`]: the topics persisted in the data directory.
//! - [`tasks`] runs interval flush, retention and
//!   compaction in the background.
//! - [`error`](mod@error): why a request failed.
//!
//! High watermark (HW): consumers read only below it. A standalone replica
//! follows the flush policy: with `flush=replicated` HW is the log end
//! offset as soon as a batch is appended (Kafka's behaviour: acknowledged,
//! in the page cache); with `flush=fsync` HW is the fsynced offset, so a
//! consumer never sees a record that a crash could still take back. A
//! leader with followers takes the minimum log end over its ISR (counting
//! its own log only as far as it is fsynced under `flush=fsync`).

pub mod error;
pub mod hw_checkpoint;
pub mod isr_due;
pub mod manager;
mod produce;
pub mod producers;
mod replica;
mod role;
pub mod store;
pub mod tasks;
pub mod txns;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::RwLock;
use tokio::sync::watch;
use tracing::error;

pub use error::Error;
pub use hw_checkpoint::HighWatermarks;
pub use isr_due::IsrDue;

/// How often the batched interval flush (`tasks`) writes a partition's
/// recovery point.
const BATCHED_RECOVERY_POINT_INTERVAL: Duration = Duration::from_secs(5);
pub use produce::ProducerView;
pub use role::{IsrProposal, ReplicaRead, Role, RoleView};

use crate::log::batch::{self, BatchHeader};
use crate::log::{FlushPolicy, GroupCommit, LogConfig, LogError, PartitionLog, SyncHandle};
use crate::metrics::Metrics;
use crate::replication::epochs::EpochCache;
use producers::ProducerStates;
use txns::{AbortedTxn, PartitionTxns, TxnBatch};

/// How many replicas must have a write before it is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// Do not wait at all (Kafka acks=0): the append happens, nothing is
    /// awaited, no offset is returned.
    None,
    /// The leader appended it (and fsynced it with flush=fsync).
    Leader,
    /// Every in-sync replica has it. With one broker the ISR is the leader.
    All,
}

/// What a produce returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProduceResult {
    /// Offset of the first appended record; -1 with [`Acks::None`].
    pub base_offset: i64,
    pub log_end_offset: i64,
    pub log_start_offset: i64,
}

/// What a fetch returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchResult {
    /// Whole batches, verbatim.
    pub data: Bytes,
    pub high_watermark: i64,
    pub log_start_offset: i64,
}

/// What a consumer's read of one partition returns (see
/// [`Partition::read_for_client`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRead {
    /// Whole batches below the HW, verbatim; empty when diverging.
    pub data: Bytes,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    /// Set when the consumer's last fetched epoch ended before its fetch
    /// offset in this log: (largest common epoch, its end offset). The
    /// consumer must truncate there (KIP-320).
    pub diverging: Option<(i32, i64)>,
    /// The last stable offset: read_committed reads stop here.
    pub last_stable_offset: i64,
    /// For read_committed: the aborted transactions overlapping `data`.
    pub aborted: Vec<AbortedTxn>,
}

/// Which records a consumer reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Isolation {
    /// Everything below the high watermark.
    #[default]
    ReadUncommitted,
    /// Only below the last stable offset, with the aborted transactions.
    ReadCommitted,
}

/// Point-in-time state of a partition, for Metadata and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionState {
    pub leader_epoch: i32,
    pub log_start_offset: i64,
    pub high_watermark: i64,
    pub log_end_offset: i64,
    pub size_bytes: u64,
}

/// Counts a long poll in `rill_fetches_waiting` while it waits.
struct WaitingGuard<'a>(&'a Metrics);

impl<'a> WaitingGuard<'a> {
    fn new(metrics: &'a Metrics) -> Self {
        metrics.fetches_waiting.inc();
        Self(metrics)
    }
}

impl Drop for WaitingGuard<'_> {
    fn drop(&mut self) {
        self.0.fetches_waiting.dec();
    }
}

/// Lifecycle of a [`Partition`].
const OPEN: u8 = 0;
/// Its topic was deleted: requests fail with [`Error::TopicDeleted`].
const DELETED: u8 = 1;
/// The broker is shutting down: long polls return at once.
const CLOSING: u8 = 2;
/// An fsync failed: the page cache may have dropped acknowledged-to-be
/// data, so the partition refuses service until a restart recovers it.
const OFFLINE: u8 = 3;

/// One local partition replica.
#[derive(Debug)]
pub struct Partition {
    pub topic: Arc<str>,
    pub id: i32,
    /// The storage; locked only for the duration of one log call.
    log: RwLock<PartitionLog>,
    /// Epoch stamped into appended batches; 0 until the controller assigns
    /// epochs.
    leader_epoch: AtomicI32,
    /// High watermark; fetches waiting for data subscribe to it, so a HW
    /// advance wakes every long poll of this partition.
    high_watermark: watch::Sender<i64>,
    /// Shares one fsync among concurrent flush=fsync producers.
    group_commit: GroupCommit,
    /// `group_commit.syncs()` already added to the fsync counter.
    syncs_reported: AtomicU64,
    /// OPEN, DELETED, CLOSING or OFFLINE.
    state: AtomicU8,
    /// When the interval flusher last fsynced this log.
    last_flush: parking_lot::Mutex<Instant>,
    /// When a batched interval flush last wrote the recovery point.
    recovery_point_written: parking_lot::Mutex<Option<Instant>>,
    /// Standalone, leader (with follower state) or follower. Changed only
    /// while holding the log's write lock, so an append and a role change
    /// never interleave (lock order: log, then role).
    role: parking_lot::Mutex<Role>,
    /// Leader epoch -> start offset of this replica's log.
    epochs: parking_lot::Mutex<EpochCache>,
    /// Log end offset; replica fetches long-poll on it.
    log_end: watch::Sender<i64>,
    /// Idempotent producers' state; `None` until first needed (built by
    /// scanning the log) and after a truncation. Lock order: log, role,
    /// epochs, producers.
    producers: parking_lot::Mutex<Option<ProducerStates>>,
    /// Transactions in this partition (open ones, aborted index); `None`
    /// until first needed (built by scanning the log) and after a
    /// truncation. Lock order: after producers.
    txns: parking_lot::Mutex<Option<PartitionTxns>>,
    /// Producers whose transaction the coordinator confirmed includes this
    /// partition (id -> epoch), allowed to start their transaction here
    /// with their next transactional batch (KIP-890). A marker for the
    /// producer clears it, so a batch delayed past the end of its
    /// transaction cannot open a transaction nobody will end.
    verified: parking_lot::Mutex<std::collections::HashMap<i64, i16>>,
    /// Orders transactional produces of this partition from the check with
    /// the coordinator to the append (see [`Partition::txn_lane`]).
    txn_lane: Arc<tokio::sync::Mutex<()>>,
    metrics: Arc<Metrics>,
    /// Where this partition is marked for the ISR check.
    isr_due: Arc<IsrDue>,
    /// Marked in `isr_due` and not yet looked at.
    isr_marked: AtomicBool,
}

impl Partition {
    /// Wraps an opened log. Its HW starts at `hw`, the HW it last
    /// checkpointed ([`HighWatermarks::take`]); a standalone broker then
    /// raises it to the log end ([`Partition::serve_alone`]).
    pub fn new(
        topic: Arc<str>,
        id: i32,
        log: PartitionLog,
        hw: i64,
        metrics: Arc<Metrics>,
        isr_due: Arc<IsrDue>,
    ) -> Result<Self, Error> {
        let (high_watermark, _) = watch::channel(hw);
        let (log_end, _) = watch::channel(log.next_offset());
        let mut epochs = EpochCache::open(log.dir()).map_err(|e| Error::Log {
            topic: topic.to_string(),
            partition: id,
            source: LogError::io("reading the leader epoch cache".to_owned(), e),
        })?;
        // Entries past the recovered log end describe data that is gone
        // (or a truncation that did not reach the file before a crash).
        epochs.truncate_from_end(log.next_offset());
        rebuild_epochs(&mut epochs, &log).map_err(|source| Error::Log {
            topic: topic.to_string(),
            partition: id,
            source,
        })?;
        Ok(Self {
            topic,
            id,
            log: RwLock::new(log),
            leader_epoch: AtomicI32::new(0),
            high_watermark,
            group_commit: GroupCommit::default(),
            syncs_reported: AtomicU64::new(0),
            state: AtomicU8::new(OPEN),
            last_flush: parking_lot::Mutex::new(Instant::now()),
            recovery_point_written: parking_lot::Mutex::new(None),
            role: parking_lot::Mutex::new(Role::Standalone),
            epochs: parking_lot::Mutex::new(epochs),
            log_end,
            producers: parking_lot::Mutex::new(None),
            txns: parking_lot::Mutex::new(None),
            verified: parking_lot::Mutex::new(std::collections::HashMap::new()),
            txn_lane: Arc::new(tokio::sync::Mutex::new(())),
            metrics,
            isr_due,
            isr_marked: AtomicBool::new(false),
        })
    }

    /// Asks the ISR check to look at this partition soon (see [`isr_due`]).
    pub(crate) fn want_isr_check(&self) {
        if !self.isr_marked.swap(true, Ordering::AcqRel) {
            self.isr_due.mark(&self.topic, self.id);
        }
    }

    /// The ISR check is about to look at this partition: an event after
    /// this marks it again.
    pub fn isr_check_started(&self) {
        self.isr_marked.store(false, Ordering::Release);
    }

    fn log_error(&self, source: LogError) -> Error {
        Error::Log {
            topic: self.topic.to_string(),
            partition: self.id,
            source,
        }
    }

    fn check_state(&self) -> Result<(), Error> {
        match self.state.load(Ordering::Acquire) {
            DELETED => Err(Error::TopicDeleted(self.topic.to_string())),
            OFFLINE => Err(Error::PartitionOffline {
                topic: self.topic.to_string(),
                partition: self.id,
            }),
            _ => Ok(()),
        }
    }

    pub fn config(&self) -> LogConfig {
        self.log.read().config().clone()
    }

    /// Applies changed topic settings to this replica's log; they take
    /// effect for the next append, roll, retention pass and flush.
    pub fn set_config(&self, config: LogConfig) {
        self.log.write().set_config(config);
    }

    pub fn high_watermark(&self) -> i64 {
        *self.high_watermark.borrow()
    }

    /// A broker without a controller is the whole ISR of its partitions:
    /// everything that survived recovery is committed, so the HW is the
    /// log end again.
    pub fn serve_alone(&self) {
        let log = self.log.read();
        if matches!(&*self.role.lock(), Role::Standalone) {
            self.advance_high_watermark(log.next_offset());
        }
    }

    fn advance_high_watermark(&self, offset: i64) {
        self.high_watermark.send_if_modified(|hw| {
            if offset > *hw {
                *hw = offset;
                true
            } else {
                false
            }
        });
    }

    pub fn state(&self) -> PartitionState {
        let log = self.log.read();
        PartitionState {
            leader_epoch: self.leader_epoch.load(Ordering::Relaxed),
            log_start_offset: log.log_start_offset(),
            high_watermark: self.high_watermark(),
            log_end_offset: log.next_offset(),
            size_bytes: log.size_bytes(),
        }
    }

    fn not_leader(&self, leader: Option<i32>) -> Error {
        Error::NotLeader {
            topic: self.topic.to_string(),
            partition: self.id,
            leader,
        }
    }

    /// Makes everything below `target` durable through the group commit
    /// and advances the HW of flush=fsync partitions. An fsync failure
    /// takes the partition offline.
    async fn make_durable(&self, target: i64, kind: &'static str) -> Result<(), Error> {
        let started = Instant::now();
        let result = self
            .group_commit
            .wait_durable(target, || self.log.read().sync_handle())
            .await;
        self.metrics
            .fsync_seconds
            .with_label_values(&[kind])
            .observe(started.elapsed().as_secs_f64());
        let now = self.group_commit.syncs();
        let before = self.syncs_reported.fetch_max(now, Ordering::AcqRel);
        if now > before {
            self.metrics
                .fsyncs
                .with_label_values(&[kind])
                .inc_by(now - before);
        }
        match result {
            Ok(()) => {
                *self.last_flush.lock() = Instant::now();
                let log = self.log.read();
                let flushed = log.flushed_offset();
                if log.config().flush == FlushPolicy::Fsync {
                    // A leader counts its own log only as far as it is on
                    // disk; followers report what they fsynced.
                    match &mut *self.role.lock() {
                        Role::Leader(l) => {
                            if let Some(hw) = l.advance(flushed) {
                                self.advance_high_watermark(hw);
                            }
                        }
                        Role::Standalone => self.advance_high_watermark(flushed),
                        _ => {}
                    }
                }
                Ok(())
            }
            Err(e) => {
                self.take_offline("fsync failed", &e);
                Err(self.log_error(LogError::io("fsync".to_owned(), e)))
            }
        }
    }

    /// A disk error left this replica unable to trust its log: it stops
    /// serving and fetching (a leader hands its leadership over, see
    /// `offline_leadership`), and waiters on the HW wake to see it.
    fn take_offline(&self, what: &str, error: &dyn std::fmt::Display) {
        error!(topic = %self.topic, partition = self.id, %error, "{what}; taking the partition offline");
        self.state.store(OFFLINE, Ordering::Release);
        self.high_watermark.send_modify(|_| {});
        // A leader here must hand its leadership over.
        self.want_isr_check();
    }

    /// Reads whole batches from `offset`, below the HW, waiting up to
    /// `max_wait` until at least `min_bytes` are available.
    pub async fn fetch(
        &self,
        offset: i64,
        max_bytes: usize,
        min_bytes: usize,
        max_wait: Duration,
    ) -> Result<FetchResult, Error> {
        let deadline = tokio::time::Instant::now() + max_wait;
        let mut hw_changes = self.high_watermark.subscribe();
        loop {
            self.check_state()?;
            self.check_serves_clients()?;
            let high_watermark = *hw_changes.borrow_and_update();
            let (read, log_start_offset) = {
                let log = self.log.read();
                let read = log
                    .read(offset, max_bytes, high_watermark)
                    .map_err(|e| self.log_error(e))?;
                (read, log.log_start_offset())
            };
            let closing = self.state.load(Ordering::Acquire) == CLOSING;
            if read.data.len() >= min_bytes || closing {
                return Ok(self.fetched(read.data, high_watermark, log_start_offset));
            }
            let _waiting = WaitingGuard::new(&self.metrics);
            tokio::select! {
                changed = hw_changes.changed() => {
                    if changed.is_err() {
                        return Err(Error::TopicDeleted(self.topic.to_string()));
                    }
                }
                () = tokio::time::sleep_until(deadline) => {
                    return Ok(self.fetched(read.data, high_watermark, log_start_offset));
                }
            }
        }
    }

    /// The leader epoch clients must present: the current one of a leader
    /// or standalone broker.
    fn client_epoch(&self) -> Result<i32, Error> {
        match &*self.role.lock() {
            Role::Standalone => Ok(self.leader_epoch.load(Ordering::Relaxed)),
            Role::Leader(l) => Ok(l.leader_epoch()),
            Role::Follower { leader, .. } => Err(self.not_leader(Some(*leader))),
            Role::NoLeader { .. } => Err(self.not_leader(None)),
        }
    }

    /// Checks a client's `current_leader_epoch` (-1: no check) against
    /// this leader's: older is FENCED_LEADER_EPOCH, newer is
    /// UNKNOWN_LEADER_EPOCH. Returns the current epoch.
    pub fn check_leader_epoch(&self, requested: i32) -> Result<i32, Error> {
        let current = self.client_epoch()?;
        if requested >= 0 && requested < current {
            return Err(Error::FencedLeaderEpoch {
                topic: self.topic.to_string(),
                partition: self.id,
                requested,
                current,
            });
        }
        if requested > current {
            return Err(Error::UnknownLeaderEpoch {
                topic: self.topic.to_string(),
                partition: self.id,
                requested,
                current,
            });
        }
        Ok(current)
    }

    /// The largest epoch <= `epoch` in this log with its end offset, for
    /// clients. A standalone broker that never had a controller stamps
    /// every batch with its one epoch, which then spans the whole log.
    fn epoch_end_for_client(&self, epoch: i32, log_end: i64) -> (i32, i64) {
        let epochs = self.epochs.lock();
        if epochs.latest().is_none() {
            let own = self.leader_epoch.load(Ordering::Relaxed);
            return if epoch >= own {
                (own, log_end)
            } else {
                (-1, -1)
            };
        }
        epochs.end_offset_for(epoch, log_end)
    }

    /// OffsetForLeaderEpoch for a consumer: (largest epoch <= `epoch`, its
    /// end offset), after checking `current_leader_epoch`.
    pub fn epoch_end_offset(
        &self,
        current_leader_epoch: i32,
        epoch: i32,
    ) -> Result<(i32, i64), Error> {
        self.check_state()?;
        self.check_leader_epoch(current_leader_epoch)?;
        let log_end = self.log.read().next_offset();
        Ok(self.epoch_end_for_client(epoch, log_end))
    }

    /// The leader epoch of the batch holding `offset` (-1 when unknown).
    pub fn epoch_of_offset(&self, offset: i64) -> i32 {
        let epochs = self.epochs.lock();
        if epochs.latest().is_none() {
            return self.leader_epoch.load(Ordering::Relaxed);
        }
        epochs
            .entries()
            .iter()
            .rev()
            .find(|(_, start)| *start <= offset)
            .map_or(-1, |(e, _)| *e)
    }

    /// The latest epoch of this log (-1 when none).
    pub fn latest_epoch(&self) -> i32 {
        let epochs = self.epochs.lock();
        match epochs.latest() {
            Some((e, _)) => e,
            None => self.leader_epoch.load(Ordering::Relaxed),
        }
    }

    /// The first visible record with the largest timestamp: (offset,
    /// timestamp).
    pub fn offset_for_max_timestamp(&self) -> Result<Option<(i64, i64)>, Error> {
        self.check_state()?;
        self.check_serves_clients()?;
        let max = self.log.read().max_timestamp();
        if max < 0 {
            return Ok(None);
        }
        self.offset_for_timestamp(max)
    }

    /// A consumer's read without waiting: checks the leader epoch and, with
    /// `last_fetched_epoch` >= 0, whether the consumer's log diverged from
    /// this one; then reads whole batches from `offset` below the HW, at
    /// most `max_bytes` unless `at_least_one` allows one larger batch.
    #[allow(clippy::too_many_arguments)]
    pub fn read_for_client(
        &self,
        offset: i64,
        max_bytes: usize,
        at_least_one: bool,
        current_leader_epoch: i32,
        last_fetched_epoch: i32,
        isolation: Isolation,
    ) -> Result<ClientRead, Error> {
        self.check_state()?;
        self.check_leader_epoch(current_leader_epoch)?;
        let high_watermark = self.high_watermark();
        let log = self.log.read();
        let log_start_offset = log.log_start_offset();
        let last_stable_offset = self.stable_offset_locked(&log, high_watermark)?;
        let upper = match isolation {
            Isolation::ReadUncommitted => high_watermark,
            Isolation::ReadCommitted => last_stable_offset,
        };
        if last_fetched_epoch >= 0 {
            let (epoch, end) = self.epoch_end_for_client(last_fetched_epoch, log.next_offset());
            if epoch < last_fetched_epoch || end < offset {
                return Ok(ClientRead {
                    data: Bytes::new(),
                    high_watermark,
                    log_start_offset,
                    diverging: Some((epoch, end)),
                    last_stable_offset,
                    aborted: Vec::new(),
                });
            }
        }
        let read = log
            .read(offset, max_bytes, upper)
            .map_err(|e| self.log_error(e))?;
        // Under the log lock, so no truncation resets the state between
        // the read and the answer (a superset of what is returned below
        // is harmless: consumers only use the entries they meet).
        let aborted = match isolation {
            Isolation::ReadCommitted if !read.data.is_empty() => self
                .txns
                .lock()
                .as_ref()
                .map(|t| t.aborted_overlapping(offset, read.next_offset))
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        drop(log);
        let data = if at_least_one {
            read.data
        } else {
            whole_batches_within(read.data, max_bytes)
        };
        self.metrics
            .bytes_out
            .with_label_values(&[&self.topic])
            .inc_by(data.len() as u64);
        Ok(ClientRead {
            data,
            high_watermark,
            log_start_offset,
            diverging: None,
            last_stable_offset,
            aborted,
        })
    }

    /// A receiver that changes whenever the HW moves, the partition is
    /// deleted or the broker starts shutting down (consumer long polls).
    pub fn subscribe_high_watermark(&self) -> watch::Receiver<i64> {
        self.high_watermark.subscribe()
    }

    /// Whether the broker is shutting down (long polls return at once).
    pub fn is_closing(&self) -> bool {
        self.state.load(Ordering::Acquire) == CLOSING
    }

    fn fetched(&self, data: Bytes, high_watermark: i64, log_start_offset: i64) -> FetchResult {
        self.metrics
            .bytes_out
            .with_label_values(&[&self.topic])
            .inc_by(data.len() as u64);
        FetchResult {
            data,
            high_watermark,
            log_start_offset,
        }
    }

    /// Everything in the log, in chunks of whole batches of about
    /// `chunk` bytes, once all of it is committed: a new leader's log may
    /// end with records of the previous leader that become committed when
    /// the followers catch up (polled every `poll`). For coordinators
    /// loading the internal partition they just began to lead, where nothing
    /// else appends meanwhile.
    pub async fn read_all_committed(
        &self,
        stop: &tokio_util::sync::CancellationToken,
        poll: Duration,
        chunk: usize,
    ) -> Result<Vec<Bytes>, Error> {
        let end = loop {
            let s = self.state();
            if s.high_watermark >= s.log_end_offset {
                break s.high_watermark;
            }
            tokio::select! {
                () = stop.cancelled() => return Err(Error::ShuttingDown),
                () = tokio::time::sleep(poll) => {}
            }
        };
        let mut offset = self.earliest_offset()?;
        let mut out = Vec::new();
        while offset < end {
            let read = self.fetch(offset, chunk, 0, Duration::ZERO).await?;
            if read.data.is_empty() {
                break;
            }
            if let Some(last) = batch_headers(&read.data).last() {
                offset = last.next_offset();
            }
            out.push(read.data);
        }
        Ok(out)
    }

    /// Earliest stored offset.
    pub fn earliest_offset(&self) -> Result<i64, Error> {
        self.check_state()?;
        self.check_serves_clients()?;
        Ok(self.log.read().log_start_offset())
    }

    /// DeleteRecords (KIP-107) on the leader: moves the log start offset
    /// to `offset` (-1: the high watermark; never past it), durably, then
    /// waits up to `timeout` until every in-sync replica has deleted the
    /// records too. Returns the low watermark: the smallest log start
    /// offset of the in-sync replicas. A topic that only compacts refuses
    /// it (POLICY_VIOLATION), as in Kafka.
    pub async fn delete_records(&self, offset: i64, timeout: Duration) -> Result<i64, Error> {
        self.check_state()?;
        self.client_epoch()?;
        let target = {
            let mut log = self.log.write();
            if !log.config().cleanup_policy.deletes() {
                return Err(Error::PolicyViolation(format!(
                    "{}-{} only compacts (cleanup.policy=compact): records cannot be deleted",
                    self.topic, self.id
                )));
            }
            let hw = self.high_watermark();
            let target = if offset == -1 { hw } else { offset };
            if target < 0 || target > hw {
                return Err(Error::Log {
                    topic: self.topic.to_string(),
                    partition: self.id,
                    source: crate::log::LogError::OffsetOutOfRange {
                        offset: target,
                        log_start: log.log_start_offset(),
                        log_end: hw,
                    },
                });
            }
            log.advance_log_start(target)
                .map_err(|e| self.log_error(e))?;
            target
        };
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let low = self.low_watermark();
            if low >= target {
                return Ok(low);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::DeleteTimeout {
                    timeout_ms: timeout.as_millis() as u64,
                    offset: target,
                    low_watermark: low,
                });
            }
            self.check_state()?;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Latest offset visible to consumers (the HW).
    pub fn latest_offset(&self) -> Result<i64, Error> {
        self.check_state()?;
        self.check_serves_clients()?;
        Ok(self.high_watermark())
    }

    /// Latest offset visible to read_committed consumers (the LSO).
    pub fn last_stable_offset(&self) -> Result<i64, Error> {
        self.check_state()?;
        self.check_serves_clients()?;
        let log = self.log.read();
        self.stable_offset_locked(&log, self.high_watermark())
    }

    /// The LSO under `high_watermark`, building the transaction state from
    /// the log on first use (log lock held by the caller).
    fn stable_offset_locked(&self, log: &PartitionLog, high_watermark: i64) -> Result<i64, Error> {
        let mut slot = self.txns.lock();
        let txns = self.load_txns(log, &mut slot, high_watermark)?;
        Ok(txns.last_stable_offset(high_watermark))
    }

    /// The transaction state, built from the log on first use.
    fn load_txns<'a>(
        &self,
        log: &PartitionLog,
        slot: &'a mut Option<PartitionTxns>,
        high_watermark: i64,
    ) -> Result<&'a mut PartitionTxns, Error> {
        if slot.is_none() {
            let batches = log.transaction_batches().map_err(|e| self.log_error(e))?;
            let count = batches.len();
            let state = PartitionTxns::rebuild(batches, high_watermark);
            tracing::debug!(topic = %self.topic, partition = self.id, entries = count, aborted = state.aborted_count(), "transaction state rebuilt from the log's transaction indexes");
            *slot = Some(state);
        }
        Ok(slot.as_mut().expect("just built"))
    }

    /// Records the transactional batches and markers of appended `data`
    /// (stored in the segment based at `segment`), if the state is built.
    /// Their offsets are those in `data`, or, from a leader's append, the
    /// ones assigned from `base_offset` on.
    fn record_txn_batches(&self, segment: i64, data: &[u8], base_offset: Option<i64>) {
        let mut slot = self.txns.lock();
        let Some(txns) = slot.as_mut() else {
            return;
        };
        let mut pos = 0;
        let mut assigned = base_offset;
        while pos < data.len() {
            let Ok(mut h) = BatchHeader::parse(&data[pos..]) else {
                break;
            };
            if let Some(next) = assigned.as_mut() {
                h.base_offset = *next;
                *next = h.next_offset();
            }
            let len = h.total_len();
            let control = data
                .get(pos..pos + len)
                .and_then(|b| rill_client::batch::control_type(&h, b));
            if let Some(b) = TxnBatch::from_header(&h, control) {
                if b.control.is_some() {
                    self.verified.lock().remove(&b.producer_id);
                }
                txns.apply(segment, b);
            }
            pos += len;
        }
    }

    /// Whether a transactional batch of `producer_id` at `epoch` would
    /// open a transaction here, so the coordinator must confirm it first:
    /// no transaction of the producer is open here, or the open one has an
    /// older epoch (transaction version 2 bumps the epoch with every
    /// transaction; the batch belongs to the next transaction, whose start
    /// must wait for the previous one's marker).
    pub fn needs_txn_verification(&self, producer_id: i64, epoch: i16) -> Result<bool, Error> {
        self.check_state()?;
        let log = self.log.read();
        let mut slot = self.txns.lock();
        let txns = self.load_txns(&log, &mut slot, self.high_watermark())?;
        Ok(txns
            .open_txn(producer_id)
            .is_none_or(|open| open.producer_epoch < epoch))
    }

    /// The lane transactional produces of this partition take, in arrival
    /// order, from before the check with the coordinator until their batch
    /// is appended. A producer pipelines requests: without it, a later
    /// batch whose check finished first would be appended before the
    /// batch that opens the transaction, out of sequence.
    pub fn txn_lane(&self) -> Arc<tokio::sync::Mutex<()>> {
        Arc::clone(&self.txn_lane)
    }

    /// Records that the coordinator confirmed this partition is part of
    /// the ongoing transaction of `producer_id` at `epoch`.
    pub fn mark_txn_verified(&self, producer_id: i64, epoch: i16) {
        self.verified.lock().insert(producer_id, epoch);
    }

    /// The transactions open in this partition: (producer id, epoch, first
    /// offset, last offset), for DescribeProducers and hanging-transaction
    /// tooling.
    pub fn open_transactions(&self) -> Result<Vec<(i64, txns::OpenTxn)>, Error> {
        self.check_state()?;
        let log = self.log.read();
        let mut slot = self.txns.lock();
        let txns = self.load_txns(&log, &mut slot, self.high_watermark())?;
        Ok(txns.open_txns().collect())
    }

    /// First visible offset whose record timestamp is >= `timestamp_ms`,
    /// with that timestamp.
    pub fn offset_for_timestamp(&self, timestamp_ms: i64) -> Result<Option<(i64, i64)>, Error> {
        self.check_state()?;
        self.check_serves_clients()?;
        let found = self
            .log
            .read()
            .offset_for_timestamp(timestamp_ms)
            .map_err(|e| self.log_error(e))?;
        Ok(found.filter(|(offset, _)| *offset < self.high_watermark()))
    }

    /// Marks the partition deleted (after waiting for an append in
    /// progress) and wakes its long polls.
    fn mark_deleted(&self) {
        let _log = self.log.write();
        self.state.store(DELETED, Ordering::Release);
        self.high_watermark.send_modify(|_| {});
    }

    /// Makes long polls return at once (shutdown).
    fn mark_closing(&self) {
        let _ = self
            .state
            .compare_exchange(OPEN, CLOSING, Ordering::AcqRel, Ordering::Acquire);
        self.high_watermark.send_modify(|_| {});
    }

    /// Interval flush: fsyncs when the flush interval has passed and there
    /// is unflushed data. Returns whether it fsynced.
    async fn flush_if_due(self: &Arc<Self>, now: Instant) -> Result<bool, Error> {
        if self.state.load(Ordering::Acquire) == DELETED {
            return Ok(false);
        }
        let (dirty, due, target) = {
            let log = self.log.read();
            let dirty = log.flushed_offset() < log.next_offset();
            let interval = log.config().flush_interval;
            let due = now.duration_since(*self.last_flush.lock()) >= interval;
            (dirty, due, log.next_offset())
        };
        if !due {
            return Ok(false);
        }
        if dirty {
            self.make_durable(target, "interval").await?;
        }
        // Persist the recovery point (a no-op unless it moved), so a restart
        // trusts the segments below it instead of re-validating them. A new
        // leader epoch held in memory is saved first, off the runtime's
        // threads (a broker that just took over many leaderships saves
        // thousands).
        let saved = {
            let log = self.log.read();
            let unsaved = self.epochs.lock().is_unsaved();
            if !unsaved {
                log.checkpoint().map_err(|e| self.log_error(e))?;
            }
            !unsaved
        };
        if !saved {
            let me = Arc::clone(self);
            tokio::task::spawn_blocking(move || me.checkpoint_log())
                .await
                .map_err(|e| {
                    self.io_error("saving the leader epoch cache", std::io::Error::other(e))
                })??;
        }
        if !dirty {
            // Nothing to flush: the next check is one interval away, as
            // after a flush. Otherwise every idle partition would run the
            // checks above on every tick of the flusher, which was most of
            // an idle broker's CPU with 10,000 partitions.
            *self.last_flush.lock() = now;
        }
        Ok(dirty)
    }

    /// Whether this partition has unflushed appends and its `flush.ms` has
    /// passed since its last flush.
    fn flush_due(&self, now: Instant) -> bool {
        if self.state.load(Ordering::Acquire) == DELETED {
            return false;
        }
        let log = self.log.read();
        log.flushed_offset() < log.next_offset()
            && now.duration_since(*self.last_flush.lock()) >= log.config().flush_interval
    }

    /// Whether this partition has appends not yet made durable.
    fn has_unflushed(&self) -> bool {
        if self.state.load(Ordering::Acquire) == DELETED {
            return false;
        }
        let log = self.log.read();
        log.flushed_offset() < log.next_offset()
    }

    /// The sync handle of this partition's unflushed appends, if it has any
    /// (for a filesystem-wide sync, which covers partitions not yet due).
    fn unflushed_handle(&self) -> Option<SyncHandle> {
        if self.state.load(Ordering::Acquire) == DELETED {
            return None;
        }
        let log = self.log.read();
        (log.flushed_offset() < log.next_offset()).then(|| log.sync_handle())
    }

    /// After a filesystem-wide sync (`syncfs`) that began after `handle`
    /// was taken: everything below its target is durable. Moves the flushed
    /// offset, then writes the recovery point, at most every
    /// [`BATCHED_RECOVERY_POINT_INTERVAL`] and without fsyncing it (the
    /// next sync or the kernel's writeback makes it durable; until then a
    /// restart finds the older one and validates more, which is safe).
    /// With thousands of partitions, writing it every `flush.ms` was a
    /// large part of a broker's CPU. Blocking.
    fn synced_with_filesystem(&self, handle: &SyncHandle, now: Instant) -> Result<(), Error> {
        handle.synced_elsewhere();
        *self.last_flush.lock() = now;
        if self.state.load(Ordering::Acquire) == DELETED {
            return Ok(());
        }
        let point_due = {
            let mut written = self.recovery_point_written.lock();
            let due =
                written.is_none_or(|at| now.duration_since(at) >= BATCHED_RECOVERY_POINT_INTERVAL);
            if due {
                *written = Some(now);
            }
            due
        };
        if point_due {
            let log = self.log.read();
            let mut epochs = self.epochs.lock();
            // The sync that just ran began after any earlier unsynced save.
            epochs.synced();
            // A new epoch is written without fsyncs too (after taking over
            // thousands of leaderships, two fsyncs each were most of a
            // broker's work); the recovery point waits until the next sync
            // has made it durable, as it must never pass a batch whose
            // epoch the file lacks.
            epochs
                .save_unsynced()
                .map_err(|e| self.io_error("saving the leader epoch cache", e))?;
            if !epochs.is_unsaved() {
                log.checkpoint_unsynced().map_err(|e| self.log_error(e))?;
            }
        }
        Ok(())
    }

    /// Saves the epoch cache if it holds an unsaved epoch, then writes the
    /// recovery point: recovery re-reads epochs only from the recovery
    /// point on, so it must never pass a batch whose epoch the file lacks.
    /// Blocking. Under the log lock, as [`Partition::become_leader`]
    /// assigns, so no epoch can start between the save and the checkpoint.
    fn checkpoint_log(&self) -> Result<(), Error> {
        let log = self.log.read();
        self.save_epochs()?;
        log.checkpoint().map_err(|e| self.log_error(e))?;
        Ok(())
    }

    /// Writes the epoch cache if it holds an unsaved epoch. Call it holding
    /// the log lock, before moving the recovery point.
    fn save_epochs(&self) -> Result<(), Error> {
        self.epochs
            .lock()
            .save_if_unsaved()
            .map_err(|e| self.io_error("saving the leader epoch cache", e))
    }

    /// Flushes everything now (shutdown; the manager then writes the HW
    /// checkpoint of every replica). Blocking.
    fn flush_blocking(&self) -> Result<(), Error> {
        if self.state.load(Ordering::Acquire) == DELETED {
            return Ok(());
        }
        let log = self.log.read();
        self.save_epochs()?;
        log.flush_for_restart().map_err(|e| self.log_error(e))
    }
}

/// Adds the epochs of batches that survived recovery but are missing from
/// the epoch cache: a crash between a follower's append and the cache's
/// save, or a cache file lost with its directory entry. The cache is
/// complete below the recovery point (it is saved before the recovery point
/// moves past a batch), so only the batches from there on are read; an
/// empty cache reads the whole log.
fn rebuild_epochs(epochs: &mut EpochCache, log: &PartitionLog) -> Result<(), LogError> {
    let from = if epochs.latest().is_none() {
        log.log_start_offset()
    } else {
        log.flushed_offset()
    };
    for h in log.batch_headers_from(from)? {
        if h.partition_leader_epoch > epochs.latest_epoch() {
            // Saved with the next recovery point, which is what these
            // batches above the recovery point wait for.
            epochs.assign_unsaved(h.partition_leader_epoch, h.base_offset);
        }
    }
    Ok(())
}

/// Headers of the batches in `data`, as far as they parse (the log's
/// append validates everything and reports what does not).
pub fn batch_headers(data: &[u8]) -> Vec<BatchHeader> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let Ok(len) = batch::frame_len(&data[pos..], i32::MAX as usize) else {
            break;
        };
        let Ok(h) = BatchHeader::parse(&data[pos..]) else {
            break;
        };
        out.push(h);
        pos = pos.saturating_add(len);
    }
    out
}

/// The longest prefix of whole batches of `data` within `max_bytes`.
fn whole_batches_within(data: Bytes, max_bytes: usize) -> Bytes {
    let mut end = 0;
    for h in batch_headers(&data) {
        let next = end + h.total_len();
        if next > max_bytes || next > data.len() {
            break;
        }
        end = next;
    }
    data.slice(..end)
}

#[cfg(test)]
impl Partition {
    /// Replica 0 of topic `t` on a log opened in `dir`, for unit tests.
    pub(crate) fn open_for_test(dir: &std::path::Path, config: LogConfig) -> Arc<Self> {
        let log = PartitionLog::open(dir, config).expect("open");
        let metrics = Arc::new(Metrics::new());
        Arc::new(Self::new("t".into(), 0, log, 0, metrics, Arc::default()).expect("partition"))
    }
}

#[cfg(test)]
mod tests;
