//! The produce path of a [`Partition`]: a request is appended in one step
//! under the log lock, then waits for its acknowledgement in another.
//!
//! 1. [`Partition::append_locked`], with the log, role and producer-state
//!    locks held and no `.await`: checks the partition is open and led here
//!    (a follower or leaderless replica refuses with NOT_LEADER), refuses
//!    acks=all below `min.insync.replicas` (NOT_ENOUGH_REPLICAS), decides
//!    from the idempotent producers' sequences whether the batches are new
//!    or a retried duplicate, and for new batches appends them at the
//!    leader epoch, records them in the producer state (or records the
//!    failure, so pipelined batches behind it get the same storage error)
//!    and, with `flush=replicated`, advances the leader's HW.
//! 2. [`Partition::published`] makes a new append visible: the log end
//!    watchers, the metrics, the HW of an unreplicated partition, and the
//!    fsync of `flush=fsync` started in its own task.
//! 3. [`Partition::wait_for_acks`], shared by new appends and duplicates:
//!    nothing for acks=0; otherwise the fsync, then for acks=all on a
//!    replicated partition the HW passing the batch while the leader epoch
//!    holds (LEADERSHIP_LOST otherwise) and the ISR still has
//!    `min.insync.replicas` (NOT_ENOUGH_REPLICAS_AFTER_APPEND otherwise),
//!    all within the request's timeout.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use tokio::task::JoinHandle;

use super::producers::{IncomingBatch, PRODUCER_EXPIRATION_MS, ProducerStates, SequenceCheck};
use rill_client::batch::{ControlType, marker_batch};

use super::{Acks, Error, Partition, ProduceResult, Role, batch_headers};
use crate::log::batch::BatchHeader;
use crate::log::{AppendInfo, FlushPolicy, LogError, PartitionLog};

/// What a produce decided under the log lock.
enum Appended {
    /// The batches were appended.
    New {
        info: AppendInfo,
        flush: FlushPolicy,
        log_start: i64,
        replicated: bool,
        epoch: i32,
    },
    /// A retry of batches already in the log: nothing was appended.
    Duplicate(Duplicate),
}

/// How a produce becomes durable before it is acknowledged.
enum Fsync {
    /// `flush=replicated`: nothing to wait for here.
    None,
    /// A new append's fsync, running in its own task so that it completes
    /// (and the HW advances) even if the request is cancelled.
    Spawned(JoinHandle<Result<(), Error>>),
    /// A duplicate of `flush=fsync`: waits for the group commit to cover
    /// the original batch.
    Await,
}

/// An appended (or duplicate) produce waiting to be acknowledged.
struct PendingAcks {
    /// The answer once acknowledged.
    result: ProduceResult,
    /// Offset right after the batches: durable and replicated up to here.
    next_offset: i64,
    fsync: Fsync,
    /// Led with followers: acks=all waits for the ISR.
    replicated: bool,
    /// The leader epoch the batches were appended (first) at.
    epoch: i32,
}

/// Whether a header among `data`'s batches says control batch. Reads only
/// each batch's length and fixed header, so an ordinary produce is
/// checksummed once, by the log's append.
fn holds_control_header(data: &[u8]) -> bool {
    use crate::log::batch::{BatchHeader, frame_len};
    let mut rest = data;
    while !rest.is_empty() {
        let (Ok(len), Ok(header)) = (frame_len(rest, rest.len()), BatchHeader::parse(rest)) else {
            return false;
        };
        if header.is_control() {
            return true;
        }
        rest = &rest[len..];
    }
    false
}

impl Partition {
    /// Appends producer batches (validated and stamped by the log) and
    /// waits for what `acks` asks for.
    pub async fn produce(
        self: &Arc<Self>,
        data: impl Into<Bytes>,
        acks: Acks,
        timeout: Duration,
    ) -> Result<ProduceResult, Error> {
        let data = data.into();
        // A control header is confirmed by the full validation (CRC
        // included): a batch garbled on its way still gets the log's own
        // error (`CORRUPT_MESSAGE`, which clients retry), not this one.
        let control = holds_control_header(&data)
            && crate::log::batch::validate_all(&data, data.len(), crate::log::batch::validate)
                .is_ok();
        if control {
            return Err(Error::InvalidRequest(
                "control batches (transaction markers) are written only by the transaction coordinator"
                    .to_owned(),
            ));
        }
        self.append_and_ack(data, acks, timeout).await
    }

    /// Writes the marker that ends `producer_id`'s transaction in this
    /// partition (commit or abort) and waits until every in-sync replica
    /// has it. Returns the marker's offset.
    pub async fn write_marker(
        self: &Arc<Self>,
        producer_id: i64,
        producer_epoch: i16,
        kind: ControlType,
        coordinator_epoch: i32,
        timeout: Duration,
    ) -> Result<i64, Error> {
        let batch = marker_batch(
            producer_id,
            producer_epoch,
            kind,
            coordinator_epoch,
            wall_clock_ms(),
        );
        let result = self
            .append_and_ack(Bytes::copy_from_slice(&batch), Acks::All, timeout)
            .await?;
        Ok(result.base_offset)
    }

    /// Appends batches (client data or a marker) and waits for `acks`.
    async fn append_and_ack(
        self: &Arc<Self>,
        data: Bytes,
        acks: Acks,
        timeout: Duration,
    ) -> Result<ProduceResult, Error> {
        self.check_state()?;
        let pending = match self.append_locked(&data, acks)? {
            Appended::New {
                info,
                flush,
                log_start,
                replicated,
                epoch,
            } => self.published(info, flush, log_start, replicated, epoch),
            Appended::Duplicate(dup) => dup.pending(),
        };
        self.wait_for_acks(pending, acks, timeout).await
    }

    /// Step 1: checks and appends `data` under the log lock (see the
    /// module doc). Returns an error for anything refused; nothing is
    /// appended then.
    fn append_locked(&self, data: &[u8], acks: Acks) -> Result<Appended, Error> {
        let mut log = self.log.write();
        // Checked again under the lock: a delete marks the partition
        // while holding it, so nothing is appended after a delete.
        self.check_state()?;
        let mut role = self.role.lock();
        let (epoch, replicated) = self.append_epoch(&role, &log, acks)?;
        self.check_txn_start(&log, data)?;
        let idempotent = idempotent_batches(data);
        let mut producers = self.producers.lock();
        let duplicate =
            self.find_duplicate(&log, &mut producers, &idempotent, epoch, replicated)?;
        if let Some(dup) = duplicate {
            return Ok(Appended::Duplicate(dup));
        }
        let info = match log.append(data, epoch) {
            Ok(info) => info,
            Err(e) => {
                // The batch is not in the log. The producer's
                // pipelined batches behind it must get this
                // storage error too, not OUT_OF_ORDER_SEQUENCE
                // (see `producers`), until it is retried.
                if matches!(e, LogError::DiskFull { .. } | LogError::Io { .. }) {
                    if let Some(states) = producers.as_mut() {
                        states.record_failed(&idempotent, wall_clock_ms());
                    }
                }
                return Err(self.log_error(e));
            }
        };
        if let Some(states) = producers.as_mut() {
            record_batches(states, data, info.base_offset);
        }
        drop(producers);
        self.record_txn_batches(log.active_segment_base(), data, Some(info.base_offset));
        let flush = log.config().flush;
        if let Role::Leader(l) = &mut *role {
            if flush == FlushPolicy::Replicated {
                if let Some(hw) = l.advance(info.next_offset) {
                    self.advance_high_watermark(hw);
                }
            }
        }
        Ok(Appended::New {
            info,
            flush,
            log_start: log.log_start_offset(),
            replicated,
            epoch,
        })
    }

    /// Refuses a transactional batch that would open a transaction here
    /// without the coordinator's confirmation (see `verified`).
    fn check_txn_start(&self, log: &PartitionLog, data: &[u8]) -> Result<(), Error> {
        let transactional: Vec<BatchHeader> = batch_headers(data)
            .into_iter()
            .filter(|h| h.is_transactional() && !h.is_control() && h.producer_id >= 0)
            .collect();
        if transactional.is_empty() {
            return Ok(());
        }
        let hw = self.high_watermark();
        let mut slot = self.txns.lock();
        let txns = self.load_txns(log, &mut slot, hw)?;
        let verified = self.verified.lock();
        for h in transactional {
            match txns.open_txn(h.producer_id) {
                Some(open) if open.producer_epoch >= h.producer_epoch => continue,
                // The next transaction (a newer epoch) while the previous
                // one's marker has not landed here: it must not join it.
                Some(open) => {
                    return Err(Error::InvalidTxnState(format!(
                        "{}-{}: producer {} epoch {} starts a transaction before the marker of its epoch {} transaction landed",
                        self.topic, self.id, h.producer_id, h.producer_epoch, open.producer_epoch
                    )));
                }
                None => {}
            }
            match verified.get(&h.producer_id) {
                Some(epoch) if *epoch <= h.producer_epoch => {}
                _ => {
                    return Err(Error::InvalidTxnState(format!(
                        "{}-{}: producer {} epoch {} has no ongoing transaction that includes this partition",
                        self.topic, self.id, h.producer_id, h.producer_epoch
                    )));
                }
            }
        }
        Ok(())
    }

    /// The validation of a produce: the leader epoch to append at, and
    /// whether the partition is replicated (led with followers). A follower
    /// or leaderless replica refuses with NOT_LEADER; a leader refuses
    /// acks=all while its ISR is below `min.insync.replicas`
    /// (NOT_ENOUGH_REPLICAS).
    fn append_epoch(
        &self,
        role: &Role,
        log: &PartitionLog,
        acks: Acks,
    ) -> Result<(i32, bool), Error> {
        let (epoch, replicated) = match role {
            Role::Standalone => (
                self.leader_epoch.load(std::sync::atomic::Ordering::Relaxed),
                false,
            ),
            Role::Leader(l) => {
                let min = log.config().min_insync_replicas;
                if acks == Acks::All && (l.isr().len() as u32) < min {
                    return Err(Error::NotEnoughReplicas {
                        topic: self.topic.to_string(),
                        partition: self.id,
                        isr: l.isr().len(),
                        min,
                    });
                }
                (l.leader_epoch(), true)
            }
            Role::Follower { leader, .. } => return Err(self.not_leader(Some(*leader))),
            Role::NoLeader { .. } => return Err(self.not_leader(None)),
        };
        Ok((epoch, replicated))
    }

    /// The sequence decision of a produce: `None` when the batches are to
    /// be appended, the original's place when they are a retried duplicate
    /// of batches already in the log. Idempotent batches are checked
    /// against the producer state (built from the log on first use); a
    /// sequence error refuses the produce.
    fn find_duplicate(
        &self,
        log: &PartitionLog,
        producers: &mut Option<ProducerStates>,
        idempotent: &[IncomingBatch],
        epoch: i32,
        replicated: bool,
    ) -> Result<Option<Duplicate>, Error> {
        let duplicate = if idempotent.is_empty() {
            None
        } else {
            let states = self.load_producers(log, producers)?;
            let checked = states.check(idempotent).map_err(|source| Error::Sequence {
                topic: self.topic.to_string(),
                partition: self.id,
                source,
            })?;
            match checked {
                SequenceCheck::Append => None,
                SequenceCheck::Duplicate(dup) => Some(Duplicate {
                    first_offset: dup.first_offset,
                    next_offset: dup.last_offset + 1,
                    log_end_offset: log.next_offset(),
                    log_start_offset: log.log_start_offset(),
                    flush: log.config().flush,
                    replicated,
                    epoch,
                }),
            }
        };
        Ok(duplicate)
    }

    /// Step 2: makes a new append visible (log end, metrics, the HW of an
    /// unreplicated `flush=replicated` partition) and starts its fsync
    /// under `flush=fsync`.
    fn published(
        self: &Arc<Self>,
        info: AppendInfo,
        flush: FlushPolicy,
        log_start: i64,
        replicated: bool,
        epoch: i32,
    ) -> PendingAcks {
        self.log_end.send_replace(info.next_offset);
        self.metrics
            .bytes_in
            .with_label_values(&[&self.topic])
            .inc_by(info.bytes as u64);
        self.metrics
            .records_appended
            .with_label_values(&[&self.topic])
            .inc_by((info.next_offset - info.base_offset) as u64);

        let fsync = match flush {
            FlushPolicy::Replicated => {
                if !replicated {
                    self.advance_high_watermark(info.next_offset);
                }
                Fsync::None
            }
            // The fsync runs in its own task so that it completes (and the
            // HW advances) even if this request is cancelled.
            FlushPolicy::Fsync => {
                let me = Arc::clone(self);
                Fsync::Spawned(tokio::spawn(async move {
                    me.make_durable(info.next_offset, "group_commit").await
                }))
            }
        };
        PendingAcks {
            result: ProduceResult {
                base_offset: info.base_offset,
                log_end_offset: info.next_offset,
                log_start_offset: log_start,
            },
            next_offset: info.next_offset,
            fsync,
            replicated,
            epoch,
        }
    }

    /// Step 3, for new appends and duplicates alike: waits until the
    /// batches are as durable and replicated as `acks` asks, at most
    /// `timeout`.
    async fn wait_for_acks(
        &self,
        pending: PendingAcks,
        acks: Acks,
        timeout: Duration,
    ) -> Result<ProduceResult, Error> {
        let PendingAcks {
            result,
            next_offset,
            fsync,
            replicated,
            epoch,
        } = pending;
        if acks == Acks::None {
            return Ok(ProduceResult {
                base_offset: -1,
                ..result
            });
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let timed_out = || Error::Timeout {
            timeout_ms: timeout.as_millis() as u64,
            base_offset: result.base_offset,
        };
        match fsync {
            Fsync::None => {}
            Fsync::Spawned(task) => match tokio::time::timeout_at(deadline, task).await {
                Ok(joined) => joined.map_err(|e| {
                    self.log_error(LogError::io(
                        "waiting for fsync".to_owned(),
                        std::io::Error::other(e),
                    ))
                })??,
                Err(_) => return Err(timed_out()),
            },
            Fsync::Await => {
                tokio::time::timeout_at(deadline, self.make_durable(next_offset, "group_commit"))
                    .await
                    .map_err(|_| timed_out())??;
            }
        }
        if acks == Acks::All && replicated {
            self.wait_replicated(next_offset, result.base_offset, epoch, deadline)
                .await
                .map_err(|e| e.unwrap_or_else(timed_out))?;
        }
        Ok(result)
    }

    /// The producer state, built from the log headers on first use.
    pub(super) fn load_producers<'a>(
        &self,
        log: &PartitionLog,
        slot: &'a mut Option<ProducerStates>,
    ) -> Result<&'a mut ProducerStates, Error> {
        if slot.is_none() {
            let now = wall_clock_ms();
            let headers = log
                .batch_headers_written_since(now - PRODUCER_EXPIRATION_MS)
                .map_err(|e| self.log_error(e))?;
            let states = ProducerStates::rebuild(&headers, now);
            tracing::debug!(topic = %self.topic, partition = self.id, batches = headers.len(), producers = states.len(), "producer state rebuilt from the log");
            *slot = Some(states);
        }
        Ok(slot.as_mut().expect("just built"))
    }

    /// The producers of this partition as DescribeProducers shows them:
    /// every idempotent producer remembered, and every producer with a
    /// transaction open here (with its first offset).
    pub fn producers_view(&self) -> Result<Vec<ProducerView>, Error> {
        self.check_state()?;
        let log = self.log.read();
        let mut producers = self.producers.lock();
        let states = self.load_producers(&log, &mut producers)?;
        let mut out: std::collections::BTreeMap<i64, ProducerView> = states
            .entries()
            .map(|(id, epoch, last_sequence, last_timestamp)| {
                (
                    id,
                    ProducerView {
                        producer_id: id,
                        producer_epoch: epoch,
                        last_sequence,
                        last_timestamp,
                        current_txn_start_offset: -1,
                    },
                )
            })
            .collect();
        drop(producers);
        let hw = self.high_watermark();
        let mut slot = self.txns.lock();
        let txns = self.load_txns(&log, &mut slot, hw)?;
        for (id, open) in txns.open_txns() {
            let view = out.entry(id).or_insert(ProducerView {
                producer_id: id,
                producer_epoch: open.producer_epoch,
                last_sequence: -1,
                last_timestamp: -1,
                current_txn_start_offset: -1,
            });
            view.current_txn_start_offset = open.first_offset;
        }
        Ok(out.into_values().collect())
    }

    /// Forgets the producer state (the log was truncated); the next
    /// idempotent produce rebuilds it from what remains.
    pub(super) fn reset_producers(&self) {
        *self.producers.lock() = None;
        *self.txns.lock() = None;
    }
}

/// One producer of a partition, for DescribeProducers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerView {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub last_sequence: i32,
    pub last_timestamp: i64,
    /// First offset of its open transaction here, -1 when none.
    pub current_txn_start_offset: i64,
}

/// Where a retried batch was first written, and what answering it needs.
#[derive(Debug, Clone, Copy)]
struct Duplicate {
    first_offset: i64,
    /// Offset right after the original batch: it is acknowledged once
    /// durable (and replicated) up to here.
    next_offset: i64,
    log_end_offset: i64,
    log_start_offset: i64,
    flush: FlushPolicy,
    replicated: bool,
    epoch: i32,
}

impl Duplicate {
    /// Step 2 of a duplicate: nothing new to publish; it is acknowledged
    /// with the original's offsets once that is durable (and replicated).
    fn pending(self) -> PendingAcks {
        PendingAcks {
            result: ProduceResult {
                base_offset: self.first_offset,
                log_end_offset: self.log_end_offset,
                log_start_offset: self.log_start_offset,
            },
            next_offset: self.next_offset,
            fsync: match self.flush {
                FlushPolicy::Fsync => Fsync::Await,
                FlushPolicy::Replicated => Fsync::None,
            },
            replicated: self.replicated,
            epoch: self.epoch,
        }
    }
}

/// Milliseconds since the Unix epoch.
pub(super) fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The idempotent batches of a produce request.
fn idempotent_batches(data: &[u8]) -> Vec<IncomingBatch> {
    batch_headers(data)
        .iter()
        .filter_map(IncomingBatch::from_header)
        .collect()
}

/// Records the idempotent batches of `data`, appended from `base_offset`
/// on (their stored headers already carry their offsets when replicated).
fn record_batches(states: &mut ProducerStates, data: &[u8], base_offset: i64) {
    let now = wall_clock_ms();
    let mut next = base_offset;
    for h in batch_headers(data) {
        let first = next;
        let last = first + i64::from(h.last_offset_delta);
        next = last + 1;
        if let Some(b) = IncomingBatch::from_header(&h) {
            states.record(b, first, last, now);
        } else if h.is_control() && h.producer_id >= 0 {
            states.record_marker(h.producer_id, h.producer_epoch, now);
        }
    }
}

/// Records the idempotent batches of stored (replicated) `data` at the
/// offsets their headers carry.
pub(super) fn record_stored(states: &mut ProducerStates, data: &[u8]) {
    let now = wall_clock_ms();
    for h in batch_headers(data) {
        if let Some(b) = IncomingBatch::from_header(&h) {
            states.record(b, h.base_offset, h.last_offset(), now);
        } else if h.is_control() && h.producer_id >= 0 {
            states.record_marker(h.producer_id, h.producer_epoch, now);
        }
    }
}
