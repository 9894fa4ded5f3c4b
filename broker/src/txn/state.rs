//! The transaction state machine of one transactional id, free of I/O.
//!
//! Every request is a pure function from the stored [`TxnMeta`] (or none)
//! to a [`Step`]: the metadata to write to `__transaction_state` before
//! answering, or an error. The coordinator writes, then applies the new
//! metadata and answers; while a write is in flight the id is *pending*
//! and other requests for it get CONCURRENT_TRANSACTIONS, as in Kafka.
//!
//! States (Kafka's names):
//!
//! ```text
//!  Empty ──AddPartitions──► Ongoing ──EndTxn(commit)──► PrepareCommit ──markers──► CompleteCommit
//!    ▲                        │ └────EndTxn(abort)───► PrepareAbort ───markers──► CompleteAbort
//!    │                        └─timeout / new InitProducerId: epoch + 1, PrepareAbort
//!    └── InitProducerId (epoch + 1) from Empty or Complete*
//! ```
//!
//! `PrepareCommit` is the commit point: once it is written, the
//! transaction commits whatever fails afterwards, and a new coordinator
//! finishes writing its markers after a failover.
//!
//! Transaction version 2 (KIP-890 part 2, EndTxn v5+): the producer's
//! epoch goes up by one at the end of every transaction, the markers carry
//! the new epoch, and an empty transaction may be ended.

use std::collections::BTreeSet;

use kafka_protocol::ResponseError;
use serde::{Deserialize, Serialize};

/// Highest epoch a producer id is used with before a new id is handed out.
pub const MAX_EPOCH: i16 = i16::MAX - 1;

/// Where a transaction is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
}

impl TxnState {
    /// Kafka's name, as DescribeTransactions and ListTransactions show it.
    pub fn kafka_name(self) -> &'static str {
        match self {
            Self::Empty => "Empty",
            Self::Ongoing => "Ongoing",
            Self::PrepareCommit => "PrepareCommit",
            Self::PrepareAbort => "PrepareAbort",
            Self::CompleteCommit => "CompleteCommit",
            Self::CompleteAbort => "CompleteAbort",
        }
    }

    /// Markers are being written.
    pub fn is_preparing(self) -> bool {
        matches!(self, Self::PrepareCommit | Self::PrepareAbort)
    }
}

/// What `__transaction_state` stores for one transactional id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnMeta {
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// The epoch before the last bump (-1: none), so a producer retrying an
    /// InitProducerId or EndTxn whose answer it lost is recognized.
    pub last_producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    /// The partitions written in the current transaction (the offsets
    /// partition of a group included).
    pub partitions: BTreeSet<(String, i32)>,
    /// When the current transaction started (ms), -1 when none.
    pub start_ms: i64,
    pub update_ms: i64,
    /// 2 when the client ends transactions with epoch bumps (EndTxn v5+).
    #[serde(default = "one")]
    pub version: i16,
    /// Transaction version 2 with the epochs of `producer_id` used up: the
    /// producer id and epoch the client goes on with once this
    /// transaction completes (its markers still carry the old id).
    #[serde(default)]
    pub next_producer: Option<(i64, i16)>,
}

impl TxnMeta {
    /// The producer id and epoch the client uses after this transaction.
    pub fn continuing_producer(&self) -> (i64, i16) {
        self.next_producer
            .unwrap_or((self.producer_id, self.producer_epoch))
    }
}

fn one() -> i16 {
    1
}

/// A refused request: the Kafka error and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnError {
    pub code: ResponseError,
    pub message: String,
}

impl TxnError {
    fn new(code: ResponseError, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    fn concurrent(state: TxnState) -> Self {
        Self::new(
            ResponseError::ConcurrentTransactions,
            format!(
                "the transaction is {} ; retry when it completes",
                state.kafka_name()
            ),
        )
    }
}

/// What a request leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nothing to write: answer at once.
    Answer,
    /// Write `meta`, then answer. With `markers`, write the markers of the
    /// prepared transaction afterwards and then its completion.
    Write { meta: TxnMeta, markers: bool },
    /// Write `meta` (the fencing abort of the open transaction), write its
    /// markers and completion, and answer this request with
    /// CONCURRENT_TRANSACTIONS: the producer retries and then gets the
    /// new epoch.
    Fence { meta: TxnMeta },
}

/// A producer's identity as a request names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerRef {
    pub producer_id: i64,
    pub producer_epoch: i16,
}

/// Checks that `p` is the current producer of `meta`.
fn check_producer(meta: &TxnMeta, p: ProducerRef) -> Result<(), TxnError> {
    if meta.producer_id != p.producer_id {
        return Err(TxnError::new(
            ResponseError::InvalidProducerIdMapping,
            format!(
                "producer id {} is not the one of this transactional id ({})",
                p.producer_id, meta.producer_id
            ),
        ));
    }
    if meta.producer_epoch != p.producer_epoch {
        return Err(TxnError::new(
            ResponseError::ProducerFenced,
            format!(
                "producer epoch {} is not the current epoch {}: another producer with this transactional id took over",
                p.producer_epoch, meta.producer_epoch
            ),
        ));
    }
    Ok(())
}

/// The next (producer id, epoch) after `meta`'s: epoch + 1, or a new id
/// from `new_id` once the epoch space is used up.
fn bumped(meta: &TxnMeta, new_id: &mut dyn FnMut() -> Option<i64>) -> Option<(i64, i16)> {
    if meta.producer_epoch >= MAX_EPOCH {
        new_id().map(|id| (id, 0))
    } else {
        Some((meta.producer_id, meta.producer_epoch + 1))
    }
}

/// The metadata after aborting the open transaction with a bumped epoch
/// (fencing the producer of the old epoch).
fn fenced_abort(meta: &TxnMeta, now: i64) -> TxnMeta {
    TxnMeta {
        producer_epoch: meta.producer_epoch.saturating_add(1),
        last_producer_epoch: meta.producer_epoch,
        state: TxnState::PrepareAbort,
        update_ms: now,
        ..meta.clone()
    }
}

/// InitProducerId with a transactional id. `expected` is the producer a
/// KIP-360 client says it had (`None` for a fresh client); `new_id` hands
/// out a producer id.
pub fn init_producer(
    meta: Option<&TxnMeta>,
    timeout_ms: i32,
    expected: Option<ProducerRef>,
    now: i64,
    new_id: &mut dyn FnMut() -> Option<i64>,
) -> Result<Step, TxnError> {
    let Some(meta) = meta else {
        let id = new_id().ok_or_else(no_ids)?;
        return Ok(Step::Write {
            meta: TxnMeta {
                producer_id: id,
                producer_epoch: 0,
                last_producer_epoch: -1,
                timeout_ms,
                state: TxnState::Empty,
                partitions: BTreeSet::new(),
                start_ms: -1,
                update_ms: now,
                version: 1,
                next_producer: None,
            },
            markers: false,
        });
    };
    if let Some(p) = expected {
        let same = p.producer_id == meta.producer_id
            && (p.producer_epoch == meta.producer_epoch
                || p.producer_epoch == meta.last_producer_epoch);
        if !same {
            return Err(TxnError::new(
                ResponseError::ProducerFenced,
                format!(
                    "producer {} epoch {} is not the current producer of this transactional id",
                    p.producer_id, p.producer_epoch
                ),
            ));
        }
        // A retry of a bump whose answer was lost: answer the same again.
        if p.producer_epoch == meta.last_producer_epoch
            && meta.state == TxnState::Empty
            && meta.producer_id == p.producer_id
        {
            return Ok(Step::Answer);
        }
    }
    match meta.state {
        TxnState::Ongoing => Ok(Step::Fence {
            meta: fenced_abort(meta, now),
        }),
        TxnState::PrepareCommit | TxnState::PrepareAbort => Err(TxnError::concurrent(meta.state)),
        TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
            let (id, epoch) = bumped(meta, new_id).ok_or_else(no_ids)?;
            Ok(Step::Write {
                meta: TxnMeta {
                    producer_id: id,
                    producer_epoch: epoch,
                    last_producer_epoch: if id == meta.producer_id {
                        meta.producer_epoch
                    } else {
                        -1
                    },
                    timeout_ms,
                    state: TxnState::Empty,
                    partitions: BTreeSet::new(),
                    start_ms: -1,
                    update_ms: now,
                    version: meta.version,
                    next_producer: None,
                },
                markers: false,
            })
        }
    }
}

fn no_ids() -> TxnError {
    TxnError::new(
        ResponseError::CoordinatorNotAvailable,
        "no producer id could be allocated",
    )
}

/// AddPartitionsToTxn / AddOffsetsToTxn (the group's offsets partition).
pub fn add_partitions(
    meta: Option<&TxnMeta>,
    p: ProducerRef,
    partitions: &[(String, i32)],
    now: i64,
) -> Result<Step, TxnError> {
    let meta = meta.ok_or_else(unknown_id)?;
    check_producer(meta, p)?;
    match meta.state {
        TxnState::PrepareCommit | TxnState::PrepareAbort => Err(TxnError::concurrent(meta.state)),
        TxnState::Ongoing if partitions.iter().all(|tp| meta.partitions.contains(tp)) => {
            Ok(Step::Answer)
        }
        _ => {
            let starting = meta.state != TxnState::Ongoing;
            let mut next = meta.clone();
            if starting {
                next.partitions.clear();
                next.start_ms = now;
            }
            next.partitions.extend(partitions.iter().cloned());
            next.state = TxnState::Ongoing;
            next.update_ms = now;
            Ok(Step::Write {
                meta: next,
                markers: false,
            })
        }
    }
}

/// KIP-890 part 1: whether a partition leader may append the producer's
/// first transactional batch in `partition`.
pub fn verify_partition(
    meta: Option<&TxnMeta>,
    p: ProducerRef,
    partition: &(String, i32),
) -> Result<(), TxnError> {
    let meta = meta.ok_or_else(unknown_id)?;
    check_producer(meta, p)?;
    if meta.state == TxnState::Ongoing && meta.partitions.contains(partition) {
        Ok(())
    } else {
        Err(TxnError::new(
            ResponseError::InvalidTxnState,
            format!(
                "{}-{} is not part of an ongoing transaction of this producer (state {})",
                partition.0,
                partition.1,
                meta.state.kafka_name()
            ),
        ))
    }
}

fn unknown_id() -> TxnError {
    TxnError::new(
        ResponseError::InvalidProducerIdMapping,
        "the transactional id has no producer: call InitProducerId first",
    )
}

/// EndTxn. `v2`: the client uses transaction version 2 (EndTxn v5+), so
/// the epoch is bumped with the end of the transaction.
pub fn end_txn(
    meta: Option<&TxnMeta>,
    p: ProducerRef,
    commit: bool,
    v2: bool,
    now: i64,
    new_id: &mut dyn FnMut() -> Option<i64>,
) -> Result<Step, TxnError> {
    let meta = meta.ok_or_else(unknown_id)?;
    // A v2 client retrying an EndTxn whose answer it lost presents the
    // epoch before the bump.
    let retry_of_bump = v2
        && meta.producer_id == p.producer_id
        && p.producer_epoch == meta.last_producer_epoch
        && matches!(
            meta.state,
            TxnState::PrepareCommit
                | TxnState::PrepareAbort
                | TxnState::CompleteCommit
                | TxnState::CompleteAbort
        );
    if !retry_of_bump {
        check_producer(meta, p)?;
    }
    let (wanted_prepare, wanted_complete) = if commit {
        (TxnState::PrepareCommit, TxnState::CompleteCommit)
    } else {
        (TxnState::PrepareAbort, TxnState::CompleteAbort)
    };
    match meta.state {
        TxnState::Ongoing => {
            let mut next = meta.clone();
            next.state = wanted_prepare;
            next.update_ms = now;
            if v2 {
                next.version = 2;
                next.last_producer_epoch = meta.producer_epoch;
                next.producer_epoch = meta.producer_epoch.saturating_add(1);
                if meta.producer_epoch >= MAX_EPOCH - 1 {
                    // Epochs used up: the markers still carry the old id;
                    // the client goes on with a new one.
                    let id = new_id().ok_or_else(no_ids)?;
                    next.next_producer = Some((id, 0));
                }
            }
            Ok(Step::Write {
                meta: next,
                markers: true,
            })
        }
        s if s == wanted_complete => Ok(Step::Answer),
        s if s == wanted_prepare => Err(TxnError::concurrent(s)),
        TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort if v2 && !commit => {
            // Transaction version 2 may abort a transaction that wrote
            // nothing: the epoch still moves on.
            let mut next = meta.clone();
            let (id, epoch) = bumped(meta, new_id).ok_or_else(no_ids)?;
            next.producer_id = id;
            next.producer_epoch = epoch;
            next.last_producer_epoch = meta.producer_epoch;
            next.state = TxnState::CompleteAbort;
            next.partitions.clear();
            next.version = 2;
            next.update_ms = now;
            Ok(Step::Write {
                meta: next,
                markers: false,
            })
        }
        s => Err(TxnError::new(
            ResponseError::InvalidTxnState,
            format!(
                "cannot {} a transaction that is {}",
                if commit { "commit" } else { "abort" },
                s.kafka_name()
            ),
        )),
    }
}

/// The completion written once every marker of a prepared transaction is
/// in place.
pub fn completed(meta: &TxnMeta, now: i64) -> TxnMeta {
    let state = match meta.state {
        TxnState::PrepareCommit => TxnState::CompleteCommit,
        _ => TxnState::CompleteAbort,
    };
    let mut next = TxnMeta {
        state,
        partitions: BTreeSet::new(),
        start_ms: -1,
        update_ms: now,
        next_producer: None,
        ..meta.clone()
    };
    if let Some((id, epoch)) = meta.next_producer {
        next.producer_id = id;
        next.producer_epoch = epoch;
        next.last_producer_epoch = -1;
    }
    next
}

/// The abort of a transaction open past its timeout, fencing its producer.
pub fn timed_out(meta: &TxnMeta, now: i64) -> Option<TxnMeta> {
    (meta.state == TxnState::Ongoing
        && meta.start_ms >= 0
        && now > meta.start_ms + i64::from(meta.timeout_ms))
    .then(|| fenced_abort(meta, now))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_000_000;

    fn ids() -> impl FnMut() -> Option<i64> {
        let mut next = 100;
        move || {
            next += 1;
            Some(next)
        }
    }

    fn written(step: Result<Step, TxnError>) -> TxnMeta {
        match step.expect("accepted") {
            Step::Write { meta, .. } | Step::Fence { meta } => meta,
            Step::Answer => panic!("expected a write"),
        }
    }

    fn p(meta: &TxnMeta) -> ProducerRef {
        ProducerRef {
            producer_id: meta.producer_id,
            producer_epoch: meta.producer_epoch,
        }
    }

    fn tp(t: &str, n: i32) -> (String, i32) {
        (t.to_owned(), n)
    }

    #[test]
    fn given_a_full_transaction_when_committed_then_states_follow_kafka() {
        let mut new_id = ids();
        let m = written(init_producer(None, 60_000, None, NOW, &mut new_id));
        assert_eq!(
            (m.producer_id, m.producer_epoch, m.state),
            (101, 0, TxnState::Empty)
        );
        let m = written(add_partitions(
            Some(&m),
            p(&m),
            &[tp("a", 0), tp("a", 1)],
            NOW,
        ));
        assert_eq!(m.state, TxnState::Ongoing);
        assert_eq!(m.start_ms, NOW);
        // Adding what is already there writes nothing.
        assert_eq!(
            add_partitions(Some(&m), p(&m), &[tp("a", 1)], NOW + 1),
            Ok(Step::Answer)
        );
        let step = end_txn(Some(&m), p(&m), true, false, NOW + 2, &mut new_id).unwrap();
        let Step::Write {
            meta: prepared,
            markers: true,
        } = step
        else {
            panic!("{step:?}")
        };
        assert_eq!(prepared.state, TxnState::PrepareCommit);
        assert_eq!(prepared.partitions.len(), 2);
        // A concurrent EndTxn while markers are written: retry later.
        assert_eq!(
            end_txn(Some(&prepared), p(&prepared), true, false, NOW, &mut new_id)
                .unwrap_err()
                .code,
            ResponseError::ConcurrentTransactions
        );
        let done = completed(&prepared, NOW + 3);
        assert_eq!(done.state, TxnState::CompleteCommit);
        assert!(done.partitions.is_empty());
        // A retried commit is answered; an abort now is refused.
        assert_eq!(
            end_txn(Some(&done), p(&done), true, false, NOW, &mut new_id),
            Ok(Step::Answer)
        );
        assert_eq!(
            end_txn(Some(&done), p(&done), false, false, NOW, &mut new_id)
                .unwrap_err()
                .code,
            ResponseError::InvalidTxnState
        );
    }

    #[test]
    fn given_an_open_transaction_when_a_new_producer_initializes_then_the_old_one_is_fenced_and_aborted()
     {
        let mut new_id = ids();
        let m = written(init_producer(None, 60_000, None, NOW, &mut new_id));
        let old = p(&m);
        let m = written(add_partitions(Some(&m), old, &[tp("a", 0)], NOW));
        let step = init_producer(Some(&m), 60_000, None, NOW, &mut new_id).unwrap();
        let Step::Fence { meta: fencing } = step else {
            panic!("{step:?}")
        };
        assert_eq!(fencing.state, TxnState::PrepareAbort);
        assert_eq!(fencing.producer_epoch, 1);
        // The zombie can neither add partitions nor commit.
        for err in [
            add_partitions(Some(&fencing), old, &[tp("b", 0)], NOW).unwrap_err(),
            end_txn(Some(&fencing), old, true, false, NOW, &mut new_id).unwrap_err(),
        ] {
            assert_eq!(err.code, ResponseError::ProducerFenced);
        }
        // While the abort's markers are written the new producer waits.
        assert_eq!(
            init_producer(Some(&fencing), 60_000, None, NOW, &mut new_id)
                .unwrap_err()
                .code,
            ResponseError::ConcurrentTransactions
        );
        let aborted = completed(&fencing, NOW);
        let next = written(init_producer(
            Some(&aborted),
            60_000,
            None,
            NOW,
            &mut new_id,
        ));
        assert_eq!((next.producer_id, next.producer_epoch), (101, 2));
        assert_eq!(next.state, TxnState::Empty);
    }

    #[test]
    fn given_epochs_used_up_when_bumped_then_a_new_producer_id_starts_at_zero() {
        let mut new_id = ids();
        let mut m = written(init_producer(None, 1000, None, NOW, &mut new_id));
        m.producer_epoch = MAX_EPOCH;
        let next = written(init_producer(Some(&m), 1000, None, NOW, &mut new_id));
        assert_eq!((next.producer_id, next.producer_epoch), (102, 0));
    }

    #[test]
    fn given_a_timeout_when_passed_then_the_transaction_is_aborted_with_a_new_epoch() {
        let mut new_id = ids();
        let m = written(init_producer(None, 1000, None, NOW, &mut new_id));
        let m = written(add_partitions(Some(&m), p(&m), &[tp("a", 0)], NOW));
        assert_eq!(timed_out(&m, NOW + 1000), None);
        let aborting = timed_out(&m, NOW + 1001).expect("timed out");
        assert_eq!(aborting.state, TxnState::PrepareAbort);
        assert_eq!(aborting.producer_epoch, m.producer_epoch + 1);
        assert_eq!(completed(&aborting, NOW).state, TxnState::CompleteAbort);
    }

    #[test]
    fn given_partition_checks_when_not_in_the_transaction_then_refused() {
        let mut new_id = ids();
        let m = written(init_producer(None, 1000, None, NOW, &mut new_id));
        assert_eq!(
            verify_partition(Some(&m), p(&m), &tp("a", 0))
                .unwrap_err()
                .code,
            ResponseError::InvalidTxnState
        );
        let m = written(add_partitions(Some(&m), p(&m), &[tp("a", 0)], NOW));
        assert_eq!(verify_partition(Some(&m), p(&m), &tp("a", 0)), Ok(()));
        assert_eq!(
            verify_partition(Some(&m), p(&m), &tp("a", 1))
                .unwrap_err()
                .code,
            ResponseError::InvalidTxnState
        );
        assert_eq!(
            verify_partition(None, p(&m), &tp("a", 0)).unwrap_err().code,
            ResponseError::InvalidProducerIdMapping
        );
    }

    #[test]
    fn given_transaction_version_2_when_ended_then_the_epoch_moves_on_with_each_transaction() {
        let mut new_id = ids();
        let m = written(init_producer(None, 1000, None, NOW, &mut new_id));
        let m = written(add_partitions(Some(&m), p(&m), &[tp("a", 0)], NOW));
        let prepared = written(end_txn(Some(&m), p(&m), true, true, NOW, &mut new_id));
        assert_eq!(prepared.producer_epoch, 1);
        assert_eq!(prepared.last_producer_epoch, 0);
        let done = completed(&prepared, NOW);
        // The client's retry with the old epoch is answered, not fenced.
        assert_eq!(
            end_txn(Some(&done), p(&m), true, true, NOW, &mut new_id),
            Ok(Step::Answer)
        );
        // Aborting an empty transaction still bumps the epoch.
        let empty_abort = written(end_txn(
            Some(&done),
            p(&done),
            false,
            true,
            NOW,
            &mut new_id,
        ));
        assert_eq!(empty_abort.producer_epoch, 2);
        assert_eq!(empty_abort.state, TxnState::CompleteAbort);
    }

    #[test]
    fn given_a_kip360_retry_when_the_epoch_is_the_previous_one_then_it_is_answered_again() {
        let mut new_id = ids();
        let m0 = written(init_producer(None, 1000, None, NOW, &mut new_id));
        let m1 = written(init_producer(
            Some(&m0),
            1000,
            Some(p(&m0)),
            NOW,
            &mut new_id,
        ));
        assert_eq!(m1.producer_epoch, 1);
        assert_eq!(
            init_producer(Some(&m1), 1000, Some(p(&m0)), NOW, &mut new_id),
            Ok(Step::Answer)
        );
        let stranger = ProducerRef {
            producer_id: 5,
            producer_epoch: 0,
        };
        assert_eq!(
            init_producer(Some(&m1), 1000, Some(stranger), NOW, &mut new_id)
                .unwrap_err()
                .code,
            ResponseError::ProducerFenced
        );
    }
}
