//! Idempotent producer state of one partition replica (Kafka's producer
//! state, without transactions).
//!
//! An idempotent producer stamps every batch with its producer id, epoch
//! and the sequence number of its first record. For each producer id the
//! partition remembers the epoch and the sequence ranges and offsets of the
//! last [`MAX_BATCHES_PER_PRODUCER`] batches, which is enough to:
//!
//! - answer a retried batch (same epoch, same sequence range) with the
//!   offset it was first written at, without appending it again;
//! - refuse a batch that skips or repeats sequence numbers
//!   (OUT_OF_ORDER_SEQUENCE_NUMBER) and one from an older epoch
//!   (INVALID_PRODUCER_EPOCH);
//! - refuse, with the storage error and not as out of order, a batch that
//!   follows one whose append failed (disk full, I/O error) until that
//!   batch is retried: [`ProducerStates::record_failed`].
//!
//! Why the last rule: a client pipelines up to five requests. When the
//! first one fails in storage, the ones behind it no longer continue the
//! sequence. Answering them OUT_OF_ORDER_SEQUENCE_NUMBER makes librdkafka
//! conclude that sequence numbers were skipped and bump its producer epoch
//! (producer-wide), which re-sends every unacknowledged batch of every
//! partition under the new epoch from sequence 0, including batches that
//! are already in some log and only wait for their acknowledgement: those
//! are then written twice. Kafka never answers them out of order (its log
//! directory goes offline and every later request gets
//! KAFKA_STORAGE_ERROR); a retriable storage error makes the client retry
//! the failed batch first and the rest after it, with the same sequences.
//!
//! The state is a pure function of the log: [`ProducerStates::rebuild`]
//! computes it from stored batch headers (they carry producer id, epoch and
//! base sequence), so a replica that becomes leader, or a broker that
//! restarts, answers retries exactly as the previous leader would have.
//! [`crate::partition::Partition`] builds it on first use, keeps it current
//! on every append (leader and follower) and drops it when the log is
//! truncated. Producers idle for longer than [`PRODUCER_EXPIRATION_MS`]
//! are forgotten, as in Kafka (`producer.id.expiration.ms`); a forgotten
//! producer's next batch is accepted with any sequence.

use std::collections::{HashMap, VecDeque};

use thiserror::Error;

use crate::log::batch::BatchHeader;

/// Batches remembered per producer: Kafka clients keep at most five
/// requests in flight per connection with idempotence on.
pub const MAX_BATCHES_PER_PRODUCER: usize = 5;
/// A producer with no append for this long is forgotten (Kafka's
/// `producer.id.expiration.ms` default, one day).
pub const PRODUCER_EXPIRATION_MS: i64 = 24 * 3600 * 1000;
/// Appends between two sweeps of expired producers.
const EXPIRATION_SWEEP_EVERY: u32 = 4096;

/// Where one idempotent batch landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMeta {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
}

/// One producer id's state.
#[derive(Debug, Clone)]
struct ProducerEntry {
    epoch: i16,
    /// Oldest first, at most [`MAX_BATCHES_PER_PRODUCER`].
    batches: VecDeque<BatchMeta>,
    /// Wall clock (ms) of the last append, for expiration.
    last_append_ms: i64,
    /// A marker moved the producer to this epoch (transaction version 2
    /// bumps it with every transaction): its first batch must be sequence
    /// 0, so a later pipelined batch cannot be appended ahead of it.
    starts_at_zero: bool,
}

/// An idempotent batch whose append failed in storage and that has not
/// been appended since: the producer must retry it before anything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FailedAppend {
    epoch: i16,
    first_seq: i32,
    /// Wall clock (ms) of the failure, for expiration.
    at_ms: i64,
}

impl ProducerEntry {
    fn last_seq(&self) -> Option<i32> {
        self.batches.back().map(|b| b.last_seq)
    }
}

/// An idempotent batch about to be appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IncomingBatch {
    pub producer_id: i64,
    pub epoch: i16,
    pub first_seq: i32,
    pub last_seq: i32,
}

impl IncomingBatch {
    /// The idempotence fields of a batch header, `None` for a batch
    /// written without a producer id.
    pub fn from_header(h: &BatchHeader) -> Option<Self> {
        // A batch with a producer but no sequence (a transactional offset
        // commit of the group coordinator) is not an idempotent produce.
        (h.producer_id >= 0 && h.base_sequence >= 0 && !h.is_control()).then(|| Self {
            producer_id: h.producer_id,
            epoch: h.producer_epoch,
            first_seq: h.base_sequence,
            last_seq: last_sequence(h.base_sequence, h.last_offset_delta),
        })
    }
}

/// Why a batch was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SequenceError {
    #[error(
        "producer {producer_id} sent epoch {epoch}, older than its current epoch {current} (another instance took over)"
    )]
    StaleEpoch {
        producer_id: i64,
        epoch: i16,
        current: i16,
    },
    #[error(
        "out of order sequence number for producer {producer_id} epoch {epoch}: got {got}, expected {expected}"
    )]
    OutOfOrder {
        producer_id: i64,
        epoch: i16,
        got: i32,
        expected: i32,
    },
    /// The batch starting at `failed` could not be stored (disk full, I/O
    /// error); this one, which comes after it, is refused in the same way
    /// (KAFKA_STORAGE_ERROR, retriable and not persisted) rather than as
    /// out of order.
    #[error(
        "producer {producer_id} epoch {epoch}: the batch at sequence {failed} could not be stored, so the batch at sequence {got} cannot follow it yet; retry the failed batch first"
    )]
    AfterFailedAppend {
        producer_id: i64,
        epoch: i16,
        got: i32,
        failed: i32,
    },
}

/// What to do with an incoming request's batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Append them.
    Append,
    /// A batch was already written: answer with where it landed.
    Duplicate(BatchMeta),
}

/// The last sequence number of a batch starting at `base` with
/// `last_offset_delta`, wrapping after `i32::MAX` like Kafka.
pub fn last_sequence(base: i32, last_offset_delta: i32) -> i32 {
    if base < 0 {
        return base;
    }
    let last = i64::from(base) + i64::from(last_offset_delta);
    (last % (i64::from(i32::MAX) + 1)) as i32
}

/// `next` directly follows `last` (with wrap-around).
fn in_sequence(last: i32, next: i32) -> bool {
    i64::from(next) == i64::from(last) + 1 || (next == 0 && last == i32::MAX)
}

/// The state of every producer id that wrote to the partition.
#[derive(Debug, Clone, Default)]
pub struct ProducerStates {
    producers: HashMap<i64, ProducerEntry>,
    /// Producers whose last append attempt failed in storage.
    failed: HashMap<i64, FailedAppend>,
    appends_since_sweep: u32,
}

impl ProducerStates {
    /// Computes the state from the headers of the stored batches, oldest
    /// first. `now_ms` stands for their append time (the batches' own
    /// timestamps are the clients' clocks).
    pub fn rebuild<'a>(headers: impl IntoIterator<Item = &'a BatchHeader>, now_ms: i64) -> Self {
        let mut states = Self::default();
        for h in headers {
            if let Some(b) = IncomingBatch::from_header(h) {
                states.record(b, h.base_offset, h.last_offset(), now_ms);
            } else if h.is_control() && h.producer_id >= 0 {
                states.record_marker(h.producer_id, h.producer_epoch, now_ms);
            }
        }
        states
    }

    /// Every producer known: (id, epoch, last sequence (-1 when none),
    /// wall clock of its last append).
    pub fn entries(&self) -> impl Iterator<Item = (i64, i16, i32, i64)> + '_ {
        self.producers
            .iter()
            .map(|(id, e)| (*id, e.epoch, e.last_seq().unwrap_or(-1), e.last_append_ms))
    }

    /// Producer ids known.
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// Checks the idempotent batches of one request, in order, as if each
    /// were appended after the previous one. The first duplicate found
    /// answers the whole request (Kafka's rule); any error refuses it.
    pub fn check(&self, batches: &[IncomingBatch]) -> Result<SequenceCheck, SequenceError> {
        // Later batches of the request see the earlier ones: work on
        // copies of the entries involved.
        let mut staged: HashMap<i64, Option<ProducerEntry>> = HashMap::new();
        for b in batches {
            let first_of_producer = !staged.contains_key(&b.producer_id);
            let entry = staged
                .entry(b.producer_id)
                .or_insert_with(|| self.producers.get(&b.producer_id).cloned());
            let checked = check_one(entry.as_ref(), b);
            if let Ok(Some(dup)) = checked {
                return Ok(SequenceCheck::Duplicate(dup));
            }
            // A retry of the failed batch goes first; within the request,
            // the batches after it follow it.
            if first_of_producer {
                if let Some(f) = self.failed.get(&b.producer_id) {
                    if f.epoch == b.epoch && f.first_seq != b.first_seq {
                        return Err(SequenceError::AfterFailedAppend {
                            producer_id: b.producer_id,
                            epoch: b.epoch,
                            got: b.first_seq,
                            failed: f.first_seq,
                        });
                    }
                }
            }
            checked?;
            let meta = BatchMeta {
                first_seq: b.first_seq,
                last_seq: b.last_seq,
                first_offset: -1,
                last_offset: -1,
            };
            apply(entry, b.epoch, meta, 0);
        }
        Ok(SequenceCheck::Append)
    }

    /// Records an appended batch at its offsets.
    pub fn record(&mut self, b: IncomingBatch, first_offset: i64, last_offset: i64, now_ms: i64) {
        let meta = BatchMeta {
            first_seq: b.first_seq,
            last_seq: b.last_seq,
            first_offset,
            last_offset,
        };
        self.failed.remove(&b.producer_id);
        let mut slot = self.producers.remove(&b.producer_id);
        apply(&mut slot, b.epoch, meta, now_ms);
        if let Some(entry) = slot {
            self.producers.insert(b.producer_id, entry);
        }
        self.appends_since_sweep += 1;
        if self.appends_since_sweep >= EXPIRATION_SWEEP_EVERY {
            self.appends_since_sweep = 0;
            self.expire(now_ms);
        }
    }

    /// Records a transaction marker written for `producer_id` at `epoch`:
    /// a newer epoch (the coordinator fenced the producer, or bumped the
    /// epoch at the end of a transaction) becomes the producer's, so a
    /// batch of an older epoch is refused from now on, and the new epoch
    /// starts its sequences afresh.
    pub fn record_marker(&mut self, producer_id: i64, epoch: i16, now_ms: i64) {
        match self.producers.get_mut(&producer_id) {
            Some(e) if e.epoch >= epoch => e.last_append_ms = now_ms,
            known => {
                // A marker seen first (a rebuild that skipped the
                // producer's older segments) says nothing about sequences.
                let starts_at_zero = known.is_some();
                self.producers.insert(
                    producer_id,
                    ProducerEntry {
                        epoch,
                        batches: VecDeque::new(),
                        last_append_ms: now_ms,
                        starts_at_zero,
                    },
                );
            }
        }
    }

    /// Records that the idempotent batches of a request (as passed to
    /// [`Self::check`]) could not be stored: each producer's next batch
    /// must be the retry of its first failed one. Only for storage
    /// failures the client retries (disk full, I/O errors), never for a
    /// batch refused as invalid.
    pub fn record_failed(&mut self, batches: &[IncomingBatch], now_ms: i64) {
        for b in batches {
            let failure = FailedAppend {
                epoch: b.epoch,
                first_seq: b.first_seq,
                at_ms: now_ms,
            };
            match self.failed.get(&b.producer_id) {
                // A later batch of the same request, or a batch refused
                // because of an earlier failure: the earliest one counts.
                Some(f) if f.epoch == b.epoch => {}
                _ => {
                    self.failed.insert(b.producer_id, failure);
                }
            }
        }
    }

    /// Forgets producers idle for longer than [`PRODUCER_EXPIRATION_MS`].
    pub fn expire(&mut self, now_ms: i64) {
        self.producers
            .retain(|_, e| now_ms - e.last_append_ms < PRODUCER_EXPIRATION_MS);
        self.failed
            .retain(|_, f| now_ms - f.at_ms < PRODUCER_EXPIRATION_MS);
    }
}

/// Kafka's checks for one batch against the producer's entry: a retried
/// batch is a duplicate; an older epoch is fenced; a newer epoch must start
/// at sequence 0; the same epoch must continue the last sequence. A
/// producer without an entry (new, or forgotten) starts anywhere.
fn check_one(
    entry: Option<&ProducerEntry>,
    b: &IncomingBatch,
) -> Result<Option<BatchMeta>, SequenceError> {
    let Some(entry) = entry else {
        return Ok(None);
    };
    if b.epoch == entry.epoch {
        if let Some(dup) = entry
            .batches
            .iter()
            .find(|m| m.first_seq == b.first_seq && m.last_seq == b.last_seq)
        {
            return Ok(Some(*dup));
        }
    }
    if b.epoch < entry.epoch {
        return Err(SequenceError::StaleEpoch {
            producer_id: b.producer_id,
            epoch: b.epoch,
            current: entry.epoch,
        });
    }
    if b.epoch > entry.epoch {
        if b.first_seq != 0 {
            return Err(SequenceError::OutOfOrder {
                producer_id: b.producer_id,
                epoch: b.epoch,
                got: b.first_seq,
                expected: 0,
            });
        }
        return Ok(None);
    }
    match entry.last_seq() {
        Some(last) if !in_sequence(last, b.first_seq) => Err(SequenceError::OutOfOrder {
            producer_id: b.producer_id,
            epoch: b.epoch,
            got: b.first_seq,
            expected: last.wrapping_add(1).max(0),
        }),
        None if entry.starts_at_zero && b.first_seq != 0 => Err(SequenceError::OutOfOrder {
            producer_id: b.producer_id,
            epoch: b.epoch,
            got: b.first_seq,
            expected: 0,
        }),
        _ => Ok(None),
    }
}

/// Adds a batch to an entry; a new epoch starts the entry afresh.
fn apply(slot: &mut Option<ProducerEntry>, epoch: i16, meta: BatchMeta, now_ms: i64) {
    match slot {
        Some(e) if e.epoch == epoch => {
            if e.batches.len() == MAX_BATCHES_PER_PRODUCER {
                e.batches.pop_front();
            }
            e.batches.push_back(meta);
            e.last_append_ms = now_ms;
            e.starts_at_zero = false;
        }
        _ => {
            *slot = Some(ProducerEntry {
                epoch,
                batches: VecDeque::from([meta]),
                last_append_ms: now_ms,
                starts_at_zero: false,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    fn incoming(pid: i64, epoch: i16, first: i32, count: i32) -> IncomingBatch {
        IncomingBatch {
            producer_id: pid,
            epoch,
            first_seq: first,
            last_seq: last_sequence(first, count - 1),
        }
    }

    /// Appends like the partition does: check, then record at `offset`.
    fn append(s: &mut ProducerStates, b: IncomingBatch, offset: i64) -> SequenceCheck {
        let check = s.check(&[b]).expect("accepted");
        if check == SequenceCheck::Append {
            let n = i64::from(b.last_seq - b.first_seq);
            s.record(b, offset, offset + n, NOW);
        }
        check
    }

    #[test]
    fn given_retried_batches_when_checked_should_answer_with_their_first_offsets() {
        let mut s = ProducerStates::default();
        assert_eq!(
            append(&mut s, incoming(7, 0, 0, 3), 10),
            SequenceCheck::Append
        );
        assert_eq!(
            append(&mut s, incoming(7, 0, 3, 2), 13),
            SequenceCheck::Append
        );
        match s.check(&[incoming(7, 0, 0, 3)]).expect("dup") {
            SequenceCheck::Duplicate(m) => assert_eq!((m.first_offset, m.last_offset), (10, 12)),
            other => panic!("{other:?}"),
        }
        match s.check(&[incoming(7, 0, 3, 2)]).expect("dup") {
            SequenceCheck::Duplicate(m) => assert_eq!(m.first_offset, 13),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn given_a_gap_or_a_replay_beyond_five_batches_when_checked_should_be_out_of_order() {
        let mut s = ProducerStates::default();
        for i in 0..7 {
            append(&mut s, incoming(1, 0, i, 1), i64::from(i));
        }
        let err = s.check(&[incoming(1, 0, 9, 1)]).expect_err("gap");
        assert_eq!(
            err,
            SequenceError::OutOfOrder {
                producer_id: 1,
                epoch: 0,
                got: 9,
                expected: 7
            }
        );
        // Sequence 0 left the five remembered batches: it is no duplicate.
        assert!(matches!(
            s.check(&[incoming(1, 0, 0, 1)]),
            Err(SequenceError::OutOfOrder { .. })
        ));
        assert!(matches!(
            s.check(&[incoming(1, 0, 2, 1)]),
            Ok(SequenceCheck::Duplicate(_))
        ));
    }

    #[test]
    fn given_epochs_when_checked_should_fence_older_and_reset_on_newer() {
        let mut s = ProducerStates::default();
        append(&mut s, incoming(1, 3, 0, 5), 0);
        assert!(matches!(
            s.check(&[incoming(1, 2, 5, 1)]),
            Err(SequenceError::StaleEpoch { current: 3, .. })
        ));
        assert!(matches!(
            s.check(&[incoming(1, 4, 5, 1)]),
            Err(SequenceError::OutOfOrder { expected: 0, .. })
        ));
        assert_eq!(
            append(&mut s, incoming(1, 4, 0, 1), 5),
            SequenceCheck::Append
        );
        // The old epoch's batches are gone with it.
        assert!(matches!(
            s.check(&[incoming(1, 3, 0, 5)]),
            Err(SequenceError::StaleEpoch { .. })
        ));
    }

    #[test]
    fn given_a_failed_append_when_later_batches_are_checked_should_wait_for_its_retry() {
        let mut s = ProducerStates::default();
        append(&mut s, incoming(1, 0, 0, 1), 0);
        // Sequence 1 failed in storage; 2 was pipelined behind it.
        s.record_failed(&[incoming(1, 0, 1, 1)], NOW);
        assert!(matches!(
            s.check(&[incoming(1, 0, 2, 1)]),
            Err(SequenceError::AfterFailedAppend {
                got: 2,
                failed: 1,
                ..
            })
        ));
        // Retries of stored batches are still duplicates; other producers
        // and a new epoch are not affected.
        assert!(matches!(
            s.check(&[incoming(1, 0, 0, 1)]),
            Ok(SequenceCheck::Duplicate(_))
        ));
        assert_eq!(
            s.check(&[incoming(2, 0, 5, 1)]).expect("other producer"),
            SequenceCheck::Append
        );
        assert_eq!(
            s.check(&[incoming(1, 1, 0, 1)]).expect("new epoch"),
            SequenceCheck::Append
        );
        // The retry goes first, and the rest follows it.
        assert_eq!(
            append(&mut s, incoming(1, 0, 1, 1), 1),
            SequenceCheck::Append
        );
        assert_eq!(
            append(&mut s, incoming(1, 0, 2, 1), 2),
            SequenceCheck::Append
        );
    }

    #[test]
    fn given_a_failed_first_append_of_a_new_producer_when_a_later_batch_arrives_should_not_append_it()
     {
        let mut s = ProducerStates::default();
        s.record_failed(&[incoming(3, 0, 0, 2)], NOW);
        assert!(matches!(
            s.check(&[incoming(3, 0, 2, 1)]),
            Err(SequenceError::AfterFailedAppend { .. })
        ));
        assert_eq!(
            s.check(&[incoming(3, 0, 0, 2), incoming(3, 0, 2, 1)])
                .expect("retry and its successor in one request"),
            SequenceCheck::Append
        );
    }

    #[test]
    fn given_an_epoch_started_by_a_marker_when_checked_should_start_at_sequence_zero() {
        let mut s = ProducerStates::default();
        append(&mut s, incoming(1, 0, 0, 5), 0);
        s.record_marker(1, 1, NOW);
        assert!(matches!(
            s.check(&[incoming(1, 1, 5, 1)]),
            Err(SequenceError::OutOfOrder { expected: 0, .. })
        ));
        assert_eq!(
            append(&mut s, incoming(1, 1, 0, 5), 6),
            SequenceCheck::Append
        );
        assert_eq!(
            append(&mut s, incoming(1, 1, 5, 1), 11),
            SequenceCheck::Append
        );
        // A marker of a producer not seen before (a rebuild from recent
        // segments only) does not constrain its next sequence.
        s.record_marker(2, 3, NOW);
        assert_eq!(
            s.check(&[incoming(2, 3, 40, 1)]).expect("unconstrained"),
            SequenceCheck::Append
        );
    }

    #[test]
    fn given_an_unknown_producer_when_checked_should_accept_any_sequence() {
        let s = ProducerStates::default();
        assert_eq!(
            s.check(&[incoming(9, 0, 42, 1)]).expect("accepted"),
            SequenceCheck::Append
        );
    }

    #[test]
    fn given_several_batches_in_one_request_when_checked_should_see_the_earlier_ones() {
        let s = ProducerStates::default();
        let ok = [incoming(1, 0, 0, 2), incoming(1, 0, 2, 2)];
        assert_eq!(s.check(&ok).expect("in order"), SequenceCheck::Append);
        let gap = [incoming(1, 0, 0, 2), incoming(1, 0, 5, 2)];
        assert!(s.check(&gap).is_err());
    }

    #[test]
    fn given_sequences_near_the_limit_when_checked_should_wrap_like_kafka() {
        assert_eq!(last_sequence(i32::MAX - 1, 2), 0);
        let mut s = ProducerStates::default();
        append(&mut s, incoming(1, 0, i32::MAX, 1), 0);
        assert_eq!(
            s.check(&[incoming(1, 0, 0, 1)]).expect("wraps"),
            SequenceCheck::Append
        );
    }

    #[test]
    fn given_idle_producers_when_expired_should_be_forgotten() {
        let mut s = ProducerStates::default();
        s.record(incoming(1, 0, 0, 1), 0, 0, NOW - PRODUCER_EXPIRATION_MS - 1);
        s.record(incoming(2, 0, 0, 1), 1, 1, NOW);
        s.expire(NOW);
        assert_eq!(s.len(), 1);
    }
}
